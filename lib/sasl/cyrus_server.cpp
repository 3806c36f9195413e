// cyrus_server.cpp: smtpd_sasl_type = cyrus, on libsasl2.
//
// libsasl2 is initialised once per process (sasl_server_init with the
// application name smtpd_sasl_path, "smtpd"), so the first factory fixes the
// configuration: the library reads "<app>.conf" from the path our
// SASL_CB_GETCONFPATH callback returns: cyrus_sasl_config_path when set,
// else Debian's Postfix path "$config_directory/sasl:/usr/lib/sasl".  Create
// the factory before a chroot, as Postfix does, since plug-ins load then.
// Library messages go to our log with Postfix's prefixes ("SASL
// authentication problem: ...").  Each AUTH exchange gets a fresh sasl_conn_t
// with the session's security properties (smtpd_sasl_security_options, or
// smtpd_sasl_tls_security_options under TLS), max_ssf 0 (no SASL security
// layer on SMTP) and SASL_SSF_EXTERNAL set to the TLS cipher strength.
//
// Threads: smtpd runs start()/next() in its worker threads, one step of a
// session at a time, so each sasl_conn_t is used by one thread at a time
// (libsasl2's documented model).  The library's own global state (plug-in
// lists, some mechanisms' caches) is guarded by the mutex callbacks set
// below before sasl_server_init; its stock ones do nothing.  The log
// callback (cyrus_common.cpp) writes through lib/log, which is safe from
// any thread once configured: one write(2) per line, syslog(3) is
// thread-safe, and its settings do not change after start-up.
#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "log/log.hpp"
#include "sasl/cyrus_common.hpp"
#include "sasl/sasl_backends.hpp"

namespace mta::sasl {

namespace {

// Per-process libsasl2 state: the library keeps pointers to these.
std::string g_app_name;
std::string g_conf_path;
bool g_initialized = false;

sasl_callback_t g_callbacks[3];

// libsasl2's mutex callbacks: std::mutex, 0 (SASL_OK) on success.
void* mutex_alloc() { return new (std::nothrow) std::mutex; }
int mutex_lock(void* m) {
  static_cast<std::mutex*>(m)->lock();
  return SASL_OK;
}
int mutex_unlock(void* m) {
  static_cast<std::mutex*>(m)->unlock();
  return SASL_OK;
}
void mutex_free(void* m) { delete static_cast<std::mutex*>(m); }

struct ConnDeleter {
  void operator()(sasl_conn_t* c) const {
    if (c != nullptr) sasl_dispose(&c);
  }
};
using ConnPtr = std::unique_ptr<sasl_conn_t, ConnDeleter>;

std::string ip_port(const std::string& addr, const std::string& port) {
  return addr.empty() || port.empty() ? std::string() : addr + ";" + port;
}

class CyrusSession : public ServerSession {
 public:
  CyrusSession(const ServerOptions& options, const SecurityOptions& security, const SessionParams& params)
      : options_(options), security_(security), params_(params) {}

  // A new connection context with the session's properties.
  bool renew(std::string& error) {
    conn_.reset();
    sasl_conn_t* raw = nullptr;
    std::string local = ip_port(params_.server_addr, params_.server_port);
    std::string remote = ip_port(params_.client_addr, params_.client_port);
    int status = sasl_server_new(options_.service.c_str(),
                                 options_.hostname.empty() ? nullptr : options_.hostname.c_str(),
                                 options_.user_realm.empty() ? nullptr : options_.user_realm.c_str(),
                                 local.empty() ? nullptr : local.c_str(),
                                 remote.empty() ? nullptr : remote.c_str(), nullptr, 0, &raw);
    conn_.reset(raw);
    if (status != SASL_OK) {
      error = "SASL per-connection server initialization: " + cyrus_error_text(status);
      conn_.reset();
      return false;
    }
    sasl_security_properties_t props{};
    props.min_ssf = 0;
    props.max_ssf = 0;  // no SASL security layer: TLS does that job
    props.maxbufsize = 0;
    props.security_flags = security_flags(security_);
    if ((status = sasl_setprop(conn_.get(), SASL_SEC_PROPS, &props)) != SASL_OK) {
      error = "SASL per-connection security setup: " + cyrus_error_text(status);
      conn_.reset();
      return false;
    }
    sasl_ssf_t external = params_.tls_active ? params_.tls_ssf : 0;
    if ((status = sasl_setprop(conn_.get(), SASL_SSF_EXTERNAL, &external)) != SASL_OK) {
      error = "SASL per-connection security setup: " + cyrus_error_text(status);
      conn_.reset();
      return false;
    }
    return true;
  }

  std::string mechanisms() override {
    last_error_.clear();
    if (!conn_ && !renew(last_error_)) return "";
    const char* list = nullptr;
    unsigned len = 0;
    int count = 0;
    int status = sasl_listmech(conn_.get(), nullptr, "", " ", "", &list, &len, &count);
    if (status != SASL_OK || list == nullptr || count == 0 || len == 0) {
      last_error_ = "no applicable SASL mechanisms";
      return "";
    }
    return std::string(list, len);
  }

  Result start(std::string_view mechanism, std::string_view initial, std::string& out) override {
    out.clear();
    user_.clear();
    method_ = std::string(mechanism);
    in_progress_ = false;
    if (!renew(out)) return Result::error;
    std::string decoded;
    bool have_initial = !initial.empty();
    if (have_initial && initial != "=" && !decode(initial, decoded)) {
      out = "bad base64 encoding";  // Postfix: 501 5.5.2 Cannot decode response
      return Result::malformed;
    }
    log::debug("sasl_method %s%s", method_.c_str(), have_initial ? ", init_response" : "");
    const char* server_out = nullptr;
    unsigned server_len = 0;
    int status = sasl_server_start(conn_.get(), method_.c_str(), have_initial ? decoded.data() : nullptr,
                                   static_cast<unsigned>(decoded.size()), &server_out, &server_len);
    return outcome(status, server_out, server_len, out);
  }

  Result next(std::string_view response, std::string& out) override {
    out.clear();
    if (!in_progress_ || !conn_) {
      out = "no authentication in progress";
      return Result::error;
    }
    std::string decoded;
    if (!decode(response, decoded)) {
      in_progress_ = false;
      out = "bad base64 encoding";
      return Result::malformed;
    }
    const char* server_out = nullptr;
    unsigned server_len = 0;
    int status = sasl_server_step(conn_.get(), decoded.data(), static_cast<unsigned>(decoded.size()),
                                  &server_out, &server_len);
    return outcome(status, server_out, server_len, out);
  }

  std::string username() override { return user_; }
  std::string method() override { return method_; }
  std::string last_error() override { return last_error_; }

 private:
  static bool decode(std::string_view in, std::string& out) {
    out.assign(in.size() / 4 * 3 + 3, '\0');
    unsigned len = 0;
    if (sasl_decode64(in.data(), static_cast<unsigned>(in.size()), out.data(),
                      static_cast<unsigned>(out.size()), &len) != SASL_OK)
      return false;
    out.resize(len);
    return true;
  }

  Result outcome(int status, const char* server_out, unsigned server_len, std::string& out) {
    in_progress_ = false;
    if (status == SASL_OK) {
      const void* name = nullptr;
      if (sasl_getprop(conn_.get(), SASL_USERNAME, &name) != SASL_OK || name == nullptr) {
        out = "SASL_USERNAME not available";
        return Result::error;
      }
      user_ = static_cast<const char*>(name);
      return Result::done;
    }
    if (status == SASL_CONTINUE) {
      out.assign(server_len / 3 * 4 + 8, '\0');
      unsigned len = 0;
      if (sasl_encode64(server_out, server_len, out.data(), static_cast<unsigned>(out.size()), &len) !=
          SASL_OK) {
        out = "sasl_encode64 botch";
        return Result::error;
      }
      out.resize(len);
      in_progress_ = true;
      return Result::more;
    }
    out = cyrus_error_text(status);
    const void* name = nullptr;  // the name tried, when the mechanism got that far
    if (sasl_getprop(conn_.get(), SASL_USERNAME, &name) == SASL_OK && name != nullptr)
      user_ = static_cast<const char*>(name);
    // Back ends that are down (saslauthd, a database) are worth a retry.
    return status == SASL_TRYAGAIN || status == SASL_UNAVAIL ? Result::error : Result::failed;
  }

  ServerOptions options_;
  SecurityOptions security_;
  SessionParams params_;
  ConnPtr conn_;
  bool in_progress_ = false;
  std::string user_, method_, last_error_;
};

class CyrusFactory : public ServerFactory {
 public:
  CyrusFactory(const ServerOptions& options, const SecurityOptions& plain, const SecurityOptions& tls)
      : options_(options), plain_(plain), tls_(tls) {}

  std::unique_ptr<ServerSession> open(const SessionParams& params, std::string& error) override {
    log::debug("SASL service=%s, realm=%s", options_.service.c_str(),
               options_.user_realm.empty() ? "(null)" : options_.user_realm.c_str());
    auto session = std::make_unique<CyrusSession>(options_, params.tls_active ? tls_ : plain_, params);
    if (!session->renew(error)) return nullptr;
    return session;
  }

 private:
  ServerOptions options_;
  SecurityOptions plain_, tls_;
};

}  // namespace

std::unique_ptr<ServerFactory> create_cyrus_factory(const ServerOptions& options,
                                                    const SecurityOptions& plain,
                                                    const SecurityOptions& tls, std::string& error) {
  std::string app = options.path.empty() ? "smtpd" : options.path;
  if (g_initialized) {
    if (app != g_app_name)
      log::warning("SASL: already initialised as \"%s\"; ignoring smtpd_sasl_path \"%s\"",
                   g_app_name.c_str(), app.c_str());
    return std::make_unique<CyrusFactory>(options, plain, tls);
  }
  g_app_name = app;
  g_conf_path = !options.cyrus_config_path.empty() ? options.cyrus_config_path
                                                   : options.config_directory + "/sasl:/usr/lib/sasl";
  log::debug("SASL config file is %s.conf (path %s)", g_app_name.c_str(), g_conf_path.c_str());
  make_cyrus_callbacks(g_callbacks, &g_conf_path);
  sasl_set_mutex(&mutex_alloc, &mutex_lock, &mutex_unlock, &mutex_free);
  int status = sasl_server_init(g_callbacks, g_app_name.c_str());
  if (status != SASL_OK) {
    error = "SASL per-process initialization failed: " + cyrus_error_text(status);
    return nullptr;
  }
  g_initialized = true;
  return std::make_unique<CyrusFactory>(options, plain, tls);
}

}  // namespace mta::sasl
