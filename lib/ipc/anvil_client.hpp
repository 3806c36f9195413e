// anvil_client.hpp: the client of the anvil service (Postfix's anvil_clnt),
// for smtpd's per-client limits (smtpd_client_connection_count_limit,
// ..._rate_limit, message, recipient, new-TLS and AUTH rates).
//
// One AnvilClient is one persistent connection to private/anvil in the
// PLAIN form (the protocol is in anvil_proto.hpp).  The connection is kept
// for the life of the object: anvil counts a process's connections by its
// connection and forgets them when it closes, so unlike the rewrite client
// there is no idle or age limit.  Each call sends ident SERVICE:ADDR (made
// printable) and returns true with the numbers, or false, after a warning,
// when anvil cannot be reached or answers with a non-zero status; the
// caller (smtpd) then does not enforce the limit.  A failed request is
// tried twice, as Postfix's attr_clnt does.
#pragma once

#include <string>
#include <string_view>

#include "ipc/attr.hpp"
#include "ipc/service.hpp"

namespace mta::ipc {

// lookup's answer.
struct AnvilCounts {
  int count = 0;   // simultaneous connections
  int rate = 0;    // connections per time unit
  int mail = 0;    // messages per time unit
  int rcpt = 0;    // recipients per time unit
  int newtls = 0;  // new TLS sessions per time unit
  int auth = 0;    // AUTH commands per time unit
  bool operator==(const AnvilCounts&) const = default;
};

class AnvilClient {
 public:
  // service: the master.cf name of the anvil service, under private/.
  explicit AnvilClient(std::string queue_directory, std::string service = "anvil",
                       Millis timeout = kDefaultIpcTimeout);

  bool connect(std::string_view service, std::string_view addr, int& count, int& rate);
  bool disconnect(std::string_view service, std::string_view addr);
  bool message(std::string_view service, std::string_view addr, int& rate);
  bool recipient(std::string_view service, std::string_view addr, int& rate);
  bool newtls(std::string_view service, std::string_view addr, int& rate);
  // The new-TLS rate without counting.
  bool newtls_status(std::string_view service, std::string_view addr, int& rate);
  bool auth(std::string_view service, std::string_view addr, int& rate);
  bool lookup(std::string_view service, std::string_view addr, AnvilCounts& counts);

  // Any request (tests and tools): the reply list as it came.
  Status request(const AttrList& req, AttrList& reply);
  // Closes the connection: anvil then forgets this process's connection.
  void close() { client_.disconnect(); }
  bool is_connected() const { return client_.connected(); }

  // SERVICE:ADDR, as anvil_clnt builds it (non-printable bytes become '?').
  static std::string ident(std::string_view service, std::string_view addr);

 private:
  // Sends {request, ident} and reads the reply; false (after a warning for
  // a failure to talk) unless status=0 and every wanted number came.
  bool call(std::string_view request, std::string_view service, std::string_view addr,
            std::initializer_list<std::pair<std::string_view, int*>> wanted);

  ServiceClient client_;
};

}  // namespace mta::ipc
