// scache_client.hpp: the client side of the connection cache service
// (Postfix's scache_clnt.c), for delivery agents that save and reuse
// connections (smtp, lmtp).  The protocol is in scache_proto.hpp.
//
// One persistent connection to private/NAME (connection_cache_service_name)
// with connection_cache_protocol_timeout for all I/O.  As in Postfix, a
// request that fails is tried once more after a second ("problem talking
// to service ..."); when that fails too, caching is off for the rest of the
// process ("disabling connection caching") and every call is a no-op or a
// miss.  save_endp() always closes the descriptor it is given; the find
// calls return a descriptor (the caller owns it) or -1.
#pragma once

#include <memory>
#include <string>

#include "ipc/service.hpp"

namespace mta::ipc {

class ScacheClient {
 public:
  ScacheClient(std::string queue_directory, std::string service, Millis timeout);

  void save_dest(int ttl, const std::string& dest_label, const std::string& dest_prop, const std::string& endp_label);
  void save_endp(int ttl, const std::string& endp_label, const std::string& endp_prop, int fd);
  int find_dest(const std::string& dest_label, std::string& dest_prop, std::string& endp_prop);
  int find_endp(const std::string& endp_label, std::string& endp_prop);

  bool disabled() const { return !client_; }

 private:
  // Runs one exchange with Postfix's retry; on the final failure, disables
  // the cache.  Returns whether the exchange completed.
  bool exchange(const std::function<Status(Channel&)>& body);

  std::unique_ptr<ServiceClient> client_;
};

}  // namespace mta::ipc
