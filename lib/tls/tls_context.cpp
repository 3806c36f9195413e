// tls_context.cpp: server and client SSL_CTX set-up from main.cf parameters.
#include "tls/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <strings.h>

#include <algorithm>
#include <optional>

#include "config/config.hpp"
#include "log/log.hpp"
#include "tls/tls_certkey.hpp"
#include "tls/tls_session.hpp"

namespace mta::tls {
namespace {

constexpr long long kMinSessionTimeout = 120;          // Postfix's floor, seconds
constexpr long long kMaxSessionTimeout = 100 * 86400;  // "cannot exceed 100 days"

std::string param(std::string_view prefix, std::string_view suffix) {
  return std::string(prefix) + std::string(suffix);
}

// Logs a failure the way Postfix does (the warning, then OpenSSL's errors)
// and hands the warning back for `error`.
std::nullptr_t fail(std::string& error, std::string text) {
  log::warning("%s", text.c_str());
  log_errors();
  error = std::move(text);
  return nullptr;
}

void warn_unimplemented(const config::Config& config, std::string_view name,
                        std::string_view what_happens) {
  std::string value = config.get(name);
  if (value.empty()) return;
  log::warning("%.*s = %s: not implemented; %.*s", static_cast<int>(name.size()), name.data(),
               value.c_str(), static_cast<int>(what_happens.size()), what_happens.data());
}

// Sets the ECDHE groups from tls_eecdh_auto_curves, skipping names that
// this OpenSSL does not know, as Postfix does.
void set_groups(SSL_CTX* ctx, const config::Config& config) {
  std::string usable;
  for (const std::string& name : config.get_list("tls_eecdh_auto_curves")) {
    std::string candidate = usable.empty() ? name : usable + ":" + name;
    if (SSL_CTX_set1_groups_list(ctx, candidate.c_str()) == 1) usable = candidate;
  }
  ERR_clear_error();
  if (usable.empty()) {
    log::warning("none of the curves in tls_eecdh_auto_curves are supported; using OpenSSL's");
    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:X448:P-521:P-384");
    ERR_clear_error();
  }
}

// DHE parameters: the file when it loads, else OpenSSL's built-in groups.
void set_dh(SSL_CTX* ctx, const std::string& file) {
  if (!file.empty()) {
    if (BIO* bio = BIO_new_file(file.c_str(), "r")) {
      EVP_PKEY* dh = PEM_read_bio_Parameters(bio, nullptr);
      BIO_free(bio);
      if (dh != nullptr && SSL_CTX_set0_tmp_dh_pkey(ctx, dh) == 1) return;
      EVP_PKEY_free(dh);
    }
    ERR_clear_error();
    log::warning("cannot load DH parameters from file %s: using compiled-in defaults",
                 file.c_str());
  }
  SSL_CTX_set_dh_auto(ctx, 1);
}

// Session cache and tickets from the timeout (0 turns both off).
void set_sessions(SSL_CTX* ctx, const config::Config& config, std::string_view prefix) {
  long long timeout = config.get_time(param(prefix, "_tls_session_cache_timeout"));
  std::string ticket_cipher = config.get("tls_session_ticket_cipher");
  if (timeout <= 0) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    return;
  }
  timeout = std::clamp(timeout, kMinSessionTimeout, kMaxSessionTimeout);
  SSL_CTX_set_timeout(ctx, static_cast<long>(timeout));
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  std::string id_context(prefix);
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(id_context.data()),
                                 static_cast<unsigned int>(id_context.size()));
  if (ticket_cipher.empty()) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  } else if (strcasecmp(ticket_cipher.c_str(), "aes-256-cbc") != 0) {
    log::warning("tls_session_ticket_cipher = %s: not implemented; using aes-256-cbc",
                 ticket_cipher.c_str());
  }
  warn_unimplemented(config, param(prefix, "_tls_session_cache_database"),
                     "sessions resume by ticket or from a per-process cache");
}

int verify_accept_all(int, X509_STORE_CTX*) { return 1; }  // the result is in SessionInfo

// Protocols, options and groups that server and client share.
void set_common(SSL_CTX* ctx, const config::Config& config) {
  // No renegotiation (Postfix: neither side needs it, and it only opens doors).
  SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  set_groups(ctx, config);
  warn_unimplemented(config, "tls_ssl_options", "no extra OpenSSL options are set");
  warn_unimplemented(config, "tls_disable_workarounds", "all OpenSSL bug workarounds stay on");
}

bool set_protocols(SSL_CTX* ctx, const ProtocolPolicy& p) {
  SSL_CTX_set_options(ctx, p.ssl_options());
  return SSL_CTX_set_min_proto_version(ctx, p.min_version) == 1 &&
         SSL_CTX_set_max_proto_version(ctx, p.max_version) == 1;
}

bool load_ca(SSL_CTX* ctx, const config::Config& config, std::string_view prefix,
             std::string& error) {
  std::string ca_file = config.get(param(prefix, "_tls_CAfile"));
  std::string ca_path = config.get(param(prefix, "_tls_CApath"));
  if (ca_file.empty() && ca_path.empty()) return true;
  if (SSL_CTX_load_verify_locations(ctx, ca_file.empty() ? nullptr : ca_file.c_str(),
                                    ca_path.empty() ? nullptr : ca_path.c_str()) != 1) {
    error = "cannot load Certification Authority data, CAfile=\"" + ca_file + "\", CApath=\"" +
            ca_path + "\": disabling TLS support";
    return false;
  }
  return true;
}

// Keys and certificates: chain files when set, else the legacy pairs.
// `required` is false for a client, whose certificate is optional.
bool load_certificates(SSL_CTX* ctx, const config::Config& config, std::string_view prefix,
                       bool required, std::string& error) {
  std::string chain = config.get(param(prefix, "_tls_chain_files"));
  std::string cert = config.get(param(prefix, "_tls_cert_file"));
  std::string eccert = config.get(param(prefix, "_tls_eccert_file"));
  std::string dcert = config.get(param(prefix, "_tls_dcert_file"));
  if (!chain.empty()) {
    if (!cert.empty() || !eccert.empty() || !dcert.empty()) {
      std::string p(prefix);
      log::warning("Both %s_tls_chain_files and one or more of the legacy  %s_tls_cert_file, "
                   "%s_tls_eccert_file or %s_tls_dcert_file are non-empty; the legacy  "
                   "parameters will be ignored",
                   p.c_str(), p.c_str(), p.c_str(), p.c_str());
    }
    if (load_chain_files(ctx, config::split_list(chain), error)) return true;
    error += ": disabling TLS support";
    return false;
  }
  if (cert.empty() && eccert.empty() && dcert.empty()) {
    if (required) error = "No server certs available. TLS won't be enabled";
    return !required;
  }
  struct Pair {
    std::string cert;
    std::string key_param;
    std::string_view algorithm;
  };
  const Pair pairs[] = {{cert, "_tls_key_file", "RSA"},
                        {dcert, "_tls_dkey_file", "DSA"},
                        {eccert, "_tls_eckey_file", "ECDSA"}};
  for (const Pair& p : pairs) {
    if (p.cert.empty()) continue;
    std::string key = config.get(param(prefix, p.key_param));
    if (key.empty()) key = p.cert;
    if (!load_cert_and_key(ctx, p.cert, key, p.algorithm, error)) return false;
  }
  return true;
}

// Builds one cipher list; on failure `error` and `details` hold the warnings.
std::string make_cipher_list(SSL_CTX* ctx, const config::Config& config, std::string_view grade,
                             std::string_view exclusions, std::string& error,
                             std::vector<std::string>& details) {
  std::optional<std::string> list = cipher_list(config, grade, exclusions, error);
  if (!list) return {};
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(ctx, list->c_str()) != 1) {
    error = "error setting cipher grade: \"" + std::string(grade) + "\"";
    details = drain_errors();
    return {};
  }
  return *list;
}

void log_session_warning(std::string_view namaddr, const std::string& text,
                         const std::vector<std::string>& details) {
  if (namaddr.empty())
    log::warning("%s", text.c_str());
  else
    log::warning("%.*s: %s", static_cast<int>(namaddr.size()), namaddr.data(), text.c_str());
  for (const std::string& line : details) log::warning("%s", line.c_str());
}

}  // namespace

ServerPolicy ServerPolicy::from_config(const config::Config& config, std::string_view prefix) {
  ServerPolicy p;
  bool use = config.get_bool(param(prefix, "_use_tls"));
  bool enforce = config.get_bool(param(prefix, "_enforce_tls"));
  std::string level_param = param(prefix, "_tls_security_level");
  std::string level = config.get(level_param);
  if (!level.empty()) {
    auto is = [&](const char* name) { return strcasecmp(level.c_str(), name) == 0; };
    if (is("fingerprint") || is("verify") || is("secure")) {
      log::warning("%s: unsupported TLS level \"%s\", using \"encrypt\"", level_param.c_str(),
                   level.c_str());
      use = enforce = true;
    } else if (is("encrypt")) {
      use = enforce = true;
    } else if (is("may")) {
      use = true;
      enforce = false;
    } else if (is("none")) {
      use = enforce = false;
    } else {
      throw config::ConfigError("Invalid TLS level \"" + level + "\"");
    }
  }
  p.wrapper_mode = config.get_bool(param(prefix, "_tls_wrappermode"));
  p.mandatory = enforce;
  p.encrypt_required = enforce || p.wrapper_mode;
  p.offered = use || p.encrypt_required;
  p.auth_only = config.get_bool(param(prefix, "_tls_auth_only"));
  bool req = config.get_bool(param(prefix, "_tls_req_ccert"));
  p.require_client_cert = req && p.encrypt_required;
  p.ask_client_cert = config.get_bool(param(prefix, "_tls_ask_ccert")) || p.require_client_cert;
  if (req && !p.encrypt_required)
    log::warning("Can't require client certs unless TLS is required");
  p.received_header = config.get_bool(param(prefix, "_tls_received_header"));
  p.loglevel = static_cast<int>(config.get_int(param(prefix, "_tls_loglevel")));
  p.fingerprint_digest = config.get(param(prefix, "_tls_fingerprint_digest"));
  return p;
}

std::unique_ptr<ServerContext> ServerContext::create(const config::Config& config,
                                                     std::string_view prefix,
                                                     std::string& error) {
  std::unique_ptr<ServerContext> self(new ServerContext);
  self->policy_ = ServerPolicy::from_config(config, prefix);
  const ServerPolicy& policy = self->policy_;

  std::string proto_param = param(prefix, policy.mandatory ? "_tls_mandatory_protocols"
                                                           : "_tls_protocols");
  std::string proto_list = config.get(proto_param);
  std::optional<ProtocolPolicy> protocols = parse_protocols(proto_list);
  if (!protocols)
    return fail(error, "Invalid TLS protocol list \"" + proto_list + "\": disabling TLS support");

  ERR_clear_error();
  self->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!self->ctx_) return fail(error, "cannot allocate server SSL_CTX: disabling TLS support");
  SSL_CTX* ctx = self->ctx_.get();
  set_common(ctx, config);
  if (!set_protocols(ctx, *protocols))
    return fail(error, "Invalid TLS protocol list \"" + proto_list + "\": disabling TLS support");
  if (config.get_bool("tls_preempt_cipherlist"))
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);

  std::string why;
  if (!load_certificates(ctx, config, prefix, true, why)) return fail(error, why);
  if (!load_ca(ctx, config, prefix, why)) return fail(error, why);
  if (policy.ask_client_cert) {
    std::string ca_file = config.get(param(prefix, "_tls_CAfile"));
    if (!ca_file.empty()) {
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str()))
        SSL_CTX_set_client_CA_list(ctx, names);
      ERR_clear_error();
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_accept_all);
    long long depth = config.get_int(param(prefix, "_tls_ccert_verifydepth"));
    SSL_CTX_set_verify_depth(ctx, static_cast<int>(depth + 1));
  }
  set_dh(ctx, config.get(param(prefix, "_tls_dh1024_param_file")));
  set_sessions(ctx, config, prefix);
  warn_unimplemented(config, "tls_server_sni_maps", "the default certificates serve every name");

  // The cipher grade is checked now, but as in Postfix a bad one fails each
  // session (with a warning naming the client), not the whole context.
  std::string grade = config.get(param(prefix, policy.mandatory ? "_tls_mandatory_ciphers"
                                                                : "_tls_ciphers"));
  std::string exclusions =
      server_exclusions(config, prefix, policy.mandatory, policy.ask_client_cert);
  self->cipher_list_ = make_cipher_list(ctx, config, grade, exclusions, self->cipher_error_,
                                        self->cipher_error_details_);
  ERR_clear_error();
  return self;
}

SSL* ServerContext::new_ssl(std::string_view namaddr) {
  if (!cipher_error_.empty()) {
    log_session_warning(namaddr, cipher_error_, cipher_error_details_);
    return nullptr;
  }
  SSL* ssl = SSL_new(ctx_.get());
  if (ssl == nullptr) {
    log_errors();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

std::unique_ptr<ClientContext> ClientContext::create(const config::Config& config,
                                                     std::string_view prefix,
                                                     std::string& error) {
  std::unique_ptr<ClientContext> self(new ClientContext);
  ERR_clear_error();
  self->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!self->ctx_) return fail(error, "cannot allocate client SSL_CTX: disabling TLS support");
  SSL_CTX* ctx = self->ctx_.get();
  set_common(ctx, config);
  self->loglevel_ = static_cast<int>(config.get_int(param(prefix, "_tls_loglevel")));

  std::string why;
  if (!load_certificates(ctx, config, prefix, false, why)) return fail(error, why);
  if (!load_ca(ctx, config, prefix, why)) return fail(error, why);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // verification policy: later
  long long timeout = config.get_time(param(prefix, "_tls_session_cache_timeout"));
  if (timeout <= 0) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  warn_unimplemented(config, param(prefix, "_tls_session_cache_database"),
                     "client sessions are not resumed");

  auto settings = [&](bool mandatory, Settings& s) {
    std::string list = config.get(param(prefix, mandatory ? "_tls_mandatory_protocols"
                                                          : "_tls_protocols"));
    if (std::optional<ProtocolPolicy> p = parse_protocols(list))
      s.protocols = *p;
    else
      s.error = "Invalid TLS protocol list \"" + list + "\": aborting TLS session";
    std::string grade = config.get(param(prefix, mandatory ? "_tls_mandatory_ciphers"
                                                           : "_tls_ciphers"));
    std::string exclusions = config.get(param(prefix, "_tls_exclude_ciphers"));
    if (mandatory) {
      std::string more = config.get(param(prefix, "_tls_mandatory_exclude_ciphers"));
      if (!more.empty()) exclusions += (exclusions.empty() ? "" : " ") + more;
    }
    std::string cipher_error;
    std::vector<std::string> details;
    s.cipher_list = make_cipher_list(ctx, config, grade, exclusions, cipher_error, details);
    if (s.error.empty()) s.error = cipher_error;
  };
  settings(false, self->opportunistic_);
  settings(true, self->mandatory_);
  for (int m = 0; m < 2; ++m) {
    std::string exclusions = config.get(param(prefix, "_tls_exclude_ciphers"));
    if (m == 1) {
      std::string more = config.get(param(prefix, "_tls_mandatory_exclude_ciphers"));
      if (!more.empty()) exclusions += (exclusions.empty() ? "" : " ") + more;
    }
    for (const char* grade : {"export", "low", "medium", "high", "null"}) {
      std::string cipher_error;
      std::vector<std::string> details;
      std::string list = make_cipher_list(ctx, config, grade, exclusions, cipher_error, details);
      if (cipher_error.empty()) self->grade_lists_[m].emplace_back(grade, list);
    }
  }
  ERR_clear_error();
  return self;
}

bool ClientContext::apply(SSL* ssl, const Settings& s, std::string_view namaddr) const {
  if (!s.error.empty()) {
    log_session_warning(namaddr, s.error, {});
    return false;
  }
  SSL_set_options(ssl, s.protocols.ssl_options());
  return SSL_set_min_proto_version(ssl, s.protocols.min_version) == 1 &&
         SSL_set_max_proto_version(ssl, s.protocols.max_version) == 1 &&
         SSL_set_cipher_list(ssl, s.cipher_list.c_str()) == 1;
}

SSL* ClientContext::new_ssl(bool mandatory, std::string_view servername,
                            std::string_view namaddr, const SessionOverrides* overrides) {
  SSL* ssl = SSL_new(ctx_.get());
  if (ssl == nullptr) {
    log_errors();
    return nullptr;
  }
  Settings settings = mandatory ? mandatory_ : opportunistic_;
  if (overrides && !overrides->protocols.empty()) {
    std::string list = overrides->protocols;
    for (char& c : list)
      if (c == ':') c = ' ';
    if (std::optional<ProtocolPolicy> p = parse_protocols(list))
      settings.protocols = *p;
    else
      settings.error = "Invalid TLS protocol list \"" + overrides->protocols + "\": aborting TLS session";
  }
  if (overrides && !overrides->ciphers.empty() && settings.error.empty()) {
    settings.error = "invalid cipher grade: \"" + overrides->ciphers + "\"";
    for (const auto& [grade, list] : grade_lists_[mandatory ? 1 : 0]) {
      if (strcasecmp(grade.c_str(), overrides->ciphers.c_str()) != 0) continue;
      settings.cipher_list = list;
      settings.error.clear();
    }
  }
  bool ok = apply(ssl, settings, namaddr);
  if (ok && !servername.empty())
    ok = SSL_set_tlsext_host_name(ssl, std::string(servername).c_str()) == 1;
  if (!ok) {
    log_errors();
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

}  // namespace mta::tls
