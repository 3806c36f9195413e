// tls_context.hpp: SSL_CTX objects built from Postfix's TLS parameters.
//
// ServerContext is smtpd's (prefix "smtpd"): certificates from
// ${prefix}_tls_chain_files or the legacy cert/key, eccert/eckey and
// dcert/dkey pairs; protocols and cipher grade from the plain or the
// "mandatory" parameters as the security level asks; client certificates
// when asked for; session tickets with a key made when the context is
// created (OpenSSL's own, AES-256-CBC with HMAC-SHA256, as Postfix's default
// tls_session_ticket_cipher), off when ${prefix}_tls_session_cache_timeout
// is 0.  The SSL objects it makes are handed to libevent
// (bufferevent_openssl_socket_new for wrapper mode,
// bufferevent_openssl_filter_new for STARTTLS), which owns and frees them.
//
// ClientContext is the smtp client's (prefix "smtp"), deliberately small:
// protocols and ciphers per session (plain or mandatory, or a policy's
// overrides), an optional client certificate, CA files loaded so that
// SessionInfo::peer_trusted means something; the verification policy
// (name checks, what to do when they fail) is the caller's, with
// tls_verify.hpp.
//
// Errors: create() logs Postfix's warnings itself (e.g. `cannot get RSA
// private key from file "/x": disabling TLS support` followed by the "TLS
// library problem" lines) and returns nullptr with the first warning's text
// in `error`; callers must not log it again.  Postfix then keeps offering
// STARTTLS and answers it with 454; ServerPolicy tells smtpd what to offer
// whether or not the context could be built.  create() throws
// config::ConfigError for values that Postfix treats as fatal (a bad
// security level, a malformed number).  Parameters that we accept but do not
// implement are named in a warning when they are set: tls_server_sni_maps,
// ${prefix}_tls_session_cache_database (sessions resume by ticket or from a
// per-process cache), tls_ssl_options, tls_disable_workarounds, and a
// tls_session_ticket_cipher other than aes-256-cbc.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls/tls_policy.hpp"

namespace mta::config {
class Config;
}

namespace mta::tls {

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// What smtpd offers and demands, from ${prefix}_tls_security_level (none,
// may, encrypt; fingerprint, verify and secure warn and act as encrypt, as
// in Postfix) or, when that is empty, the legacy ${prefix}_use_tls and
// ${prefix}_enforce_tls.  Throws config::ConfigError `Invalid TLS level "x"`
// (Postfix's fatal) for other levels.
struct ServerPolicy {
  bool offered = false;           // STARTTLS (or wrapper mode) available
  bool encrypt_required = false;  // level encrypt, enforce_tls or wrapper mode
  bool mandatory = false;         // the mandatory protocols/ciphers apply
  bool wrapper_mode = false;      // ${prefix}_tls_wrappermode
  bool auth_only = false;         // ${prefix}_tls_auth_only
  bool ask_client_cert = false;   // ask_ccert, or req_ccert with TLS required
  bool require_client_cert = false;  // req_ccert with TLS required
  bool received_header = false;   // ${prefix}_tls_received_header
  int loglevel = 0;               // ${prefix}_tls_loglevel
  std::string fingerprint_digest;  // ${prefix}_tls_fingerprint_digest

  static ServerPolicy from_config(const config::Config& config, std::string_view prefix);
};

class ServerContext {
 public:
  static std::unique_ptr<ServerContext> create(const config::Config& config,
                                               std::string_view prefix, std::string& error);

  // A new server-side SSL (accept state) that the caller owns.  Returns
  // nullptr when the cipher settings are unusable, after logging Postfix's
  // per-session warning ("name[addr]: invalid cipher grade: \"x\"").
  SSL* new_ssl(std::string_view namaddr = {});

  const ServerPolicy& policy() const { return policy_; }
  bool encrypt_required() const { return policy_.encrypt_required; }
  bool offered() const { return policy_.offered; }
  bool auth_only() const { return policy_.auth_only; }
  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  const std::string& cipher_list() const { return cipher_list_; }  // TLS <= 1.2

 private:
  ServerContext() = default;
  ServerPolicy policy_;
  CtxPtr ctx_;
  std::string cipher_list_;
  std::string cipher_error_;  // set when the grade or exclusions are bad
  std::vector<std::string> cipher_error_details_;
};

// Per-destination overrides from smtp_tls_policy_maps ("protocols=",
// "ciphers="); empty: the main.cf settings of the level.
struct SessionOverrides {
  std::string protocols;  // a protocol list (':' or blanks between names)
  std::string ciphers;    // a cipher grade: export, low, medium, high, null
};

class ClientContext {
 public:
  static std::unique_ptr<ClientContext> create(const config::Config& config,
                                               std::string_view prefix, std::string& error);

  // A new client-side SSL (connect state), with the mandatory or the
  // opportunistic protocols and ciphers (or the overrides); SNI when
  // `servername` is set.  nullptr after logging a warning when those
  // settings are unusable.
  SSL* new_ssl(bool mandatory, std::string_view servername = {},
               std::string_view namaddr = {}, const SessionOverrides* overrides = nullptr);

  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  int loglevel() const { return loglevel_; }

 private:
  struct Settings {
    ProtocolPolicy protocols;
    std::string cipher_list;
    std::string error;  // set when the settings are unusable
  };
  ClientContext() = default;
  bool apply(SSL* ssl, const Settings& s, std::string_view namaddr) const;

  CtxPtr ctx_;
  Settings opportunistic_;
  Settings mandatory_;
  // Cipher lists per grade, with the opportunistic [0] or mandatory [1]
  // exclusions, for the "ciphers=" policy attribute.
  std::vector<std::pair<std::string, std::string>> grade_lists_[2];
  int loglevel_ = 0;
};

}  // namespace mta::tls
