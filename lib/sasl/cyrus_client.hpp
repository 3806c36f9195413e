// cyrus_client.hpp: the SMTP client side of SASL (smtp_sasl_type = cyrus),
// on libsasl2, as Postfix's xsasl_cyrus_client.c.
//
// init_client() runs sasl_client_init once per process (library messages
// go to our log with Postfix's "SASL authentication problem: ..."
// prefixes; cyrus_sasl_config_path, when set, is where plug-ins look for
// their configuration).  A Client is one AUTH exchange: libsasl2 picks the
// mechanism from the server's list under the security options
// (smtp_sasl_security_options and friends), with max_ssf 0 (no SASL
// security layer on SMTP); the user name serves as both authentication and
// authorization identity.  Texts are base64 on the wire; first() and
// next() take and give them encoded.  A failure leaves libsasl2's text
// ("no mechanism available", "authentication failure") in `reply`, which
// the smtp client puts into "SASL authentication failed; cannot
// authenticate to server X: <text>".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "sasl/security_options.hpp"

typedef struct sasl_conn sasl_conn_t;

namespace mta::sasl {

// Once per process, before a chroot (plug-ins load then).  False with
// error set when libsasl2 refuses.
bool init_client(std::string_view config_path, std::string& error);

class Client {
 public:
  // service is the program name ("smtp"), server_name the host we talk to.
  static std::unique_ptr<Client> create(std::string_view service, std::string_view server_name,
                                        const SecurityOptions& options, std::string& error);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Chooses a mechanism from MECHANISMS (the server's, blank separated) and
  // computes the initial response (base64, "" when there is none).
  bool first(std::string_view mechanisms, std::string_view user, std::string_view password,
             std::string& mechanism, std::string& reply);
  // Answers one base64 server challenge.
  bool next(std::string_view challenge, std::string& reply);

 private:
  Client() = default;
  bool encode(const char* data, unsigned len, std::string& reply);
  sasl_conn_t* conn_ = nullptr;
  std::string user_;
  std::string password_;
  std::unique_ptr<unsigned char[]> secret_;  // sasl_secret_t for SASL_CB_PASS
  struct Callbacks;
  std::unique_ptr<Callbacks> callbacks_;
};

}  // namespace mta::sasl
