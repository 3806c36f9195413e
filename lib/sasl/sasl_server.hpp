// sasl_server.hpp: the server side of SMTP AUTH (Postfix's xsasl_server),
// with two back ends chosen by smtpd_sasl_type:
//   cyrus    libsasl2 in this process; its per-process configuration is
//            "$smtpd_sasl_path.conf" (smtpd.conf by default) looked up in
//            cyrus_sasl_config_path, else in Debian's "$config_directory/sasl"
//            (then /usr/lib/sasl); passwords via saslauthd, auxprop sasldb, ...
//   dovecot  Dovecot's auth client protocol over the socket smtpd_sasl_path:
//            "private/auth" (relative to queue_directory, as Postfix runs
//            there), an absolute path, "unix:PATH" or "inet:HOST:PORT".
//
// How smtpd uses it (every call is synchronous and bounded in time, as
// Postfix's own calls are):
//   once per process:  factory = ServerFactory::create(options_from_config(cfg), err)
//   per connection:    session = factory->open(params, err)   (again after STARTTLS,
//                      with tls_active, so that the TLS security options apply)
//   EHLO:              "AUTH " + session->mechanisms()  (omit AUTH when empty;
//                      last_error() then says why, e.g. the socket is down)
//   AUTH mech [ir]:    r = session->start(mech, ir, out)   ir: the base64 initial
//                      response as sent, "" when absent, "=" for an empty one
//   while r == more:   send "334 " + out; read a line; "*" aborts (smtpd's
//                      501 5.7.0, no call here); else r = session->next(line, out)
//   r == done:         235 2.7.0 Authentication successful; username() and
//                      method() for the log and the Received: header
//   r == failed:       535 5.7.8 Error: authentication failed: <out>; log
//                      "SASL <mech> authentication failed: <out>, sasl_username=<username()>"
//                      (username() is the name tried, when the back end knows it)
//   r == malformed:    the client's base64 does not decode: reply and log as
//                      for failed, with <out> as the reason
//   r == error:        454 4.7.0 Temporary authentication failure: <out>
// A session may run several AUTH exchanges (after a failure); a new start()
// abandons any exchange in progress.
//
// Threads: smtpd calls start() and next() from its worker threads, one call
// of a session at a time, and everything else from its event loop (never
// while a call of that session runs).  Different sessions' calls may run at
// once: cyrus gives each its own sasl_conn_t (and libsasl2 std::mutex
// callbacks), dovecot gives each exchange its own connection from the
// factory's pool.  A session may be destroyed in any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mta::config {
class Config;
}

namespace mta::sasl {

struct ServerOptions {
  std::string type = "cyrus";            // smtpd_sasl_type: cyrus | dovecot
  std::string path = "smtpd";            // smtpd_sasl_path: cyrus app name or dovecot socket
  std::string service = "smtp";          // smtpd_sasl_service
  std::string user_realm;                // smtpd_sasl_local_domain
  std::string security_options = "noanonymous";  // smtpd_sasl_security_options
  std::string tls_security_options = "noanonymous";  // smtpd_sasl_tls_security_options
  std::string config_directory = "/etc/postfix";
  std::string cyrus_config_path;         // cyrus_sasl_config_path ("" = $config_directory/sasl)
  std::string queue_directory = "/var/spool/postfix";  // base of a relative dovecot path
  std::string hostname;                  // myhostname (cyrus' server FQDN)
  int timeout_seconds = 10;              // bound on every dovecot connect/read/write
};

// Every value above from a loaded configuration (smtpd's parameters).
ServerOptions options_from_config(const config::Config& config);

// The connection as smtpd knows it.  Addresses are printable ("127.0.0.1",
// "::1"), ports decimal; any may be empty when unknown.
struct SessionParams {
  std::string client_addr, client_port;
  std::string server_addr, server_port;
  bool tls_active = false;
  unsigned tls_ssf = 0;  // TLS cipher strength in bits (cyrus SASL_SSF_EXTERNAL)
};

class ServerSession {
 public:
  enum class Result {
    done,       // authenticated: username() is set
    more,       // out: base64 challenge for "334 "
    failed,     // out: the reason for the reply and the log (535)
    malformed,  // out: the reason (the client's base64 does not decode)
    error,      // out: the reason for the log (454, temporary: back end down)
  };

  virtual ~ServerSession() = default;
  // Space-separated mechanism names allowed by the security options for
  // this session's TLS state; "" when none (last_error() says why).
  virtual std::string mechanisms() = 0;
  virtual Result start(std::string_view mechanism, std::string_view initial_response,
                       std::string& out) = 0;
  virtual Result next(std::string_view response, std::string& out) = 0;
  // After done: the authenticated name and the mechanism used.  After
  // failed: the name the client tried if the back end reported it, else "".
  virtual std::string username() = 0;
  virtual std::string method() = 0;
  // The reason the last mechanisms() call found nothing ("" if none).
  virtual std::string last_error() = 0;
};

class ServerFactory {
 public:
  virtual ~ServerFactory() = default;
  // nullptr with error set when the type is unknown, a security option is
  // unknown or the back end cannot initialise (Postfix would stop here).
  static std::unique_ptr<ServerFactory> create(const ServerOptions& options, std::string& error);
  // nullptr with error set when the back end refuses the session.
  virtual std::unique_ptr<ServerSession> open(const SessionParams& params, std::string& error) = 0;
};

// The implementations this build has: "cyrus", "dovecot" (postconf -a).
std::vector<std::string> server_types();

}  // namespace mta::sasl
