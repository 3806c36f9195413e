// smtpd_tls.cpp: STARTTLS (RFC 3207) and wrapper mode (smtps) on the
// session's bufferevent, with lib/tls's contexts and Postfix's replies and
// log lines (see smtpd_session.hpp).
//
// The handshake runs in an OpenSSL filter bufferevent stacked on the
// socket's.  Plaintext that a client pipelined behind STARTTLS is thrown
// away before the filter starts reading, so it is never executed as if it
// had come over TLS (CVE-2011-0411).
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>

#include "log/log.hpp"
#include "smtpd/smtpd_server.hpp"
#include "smtpd/smtpd_session.hpp"

namespace mta::smtpd {

bool Session::command_allowed_before_tls(unsigned flags) const {
  const tls::ServerContext* tls = server_.tls();
  bool required = tls ? tls->encrypt_required() : server_.tls_required();
  return tls_active_ || !required || (flags & kPreTls);
}

Session::Outcome Session::cmd_starttls(std::string_view args) {
  if (!args.empty()) {
    reply("501 5.5.4 Syntax: STARTTLS");
    return Outcome::failed;
  }
  if (tls_active_) {
    reply("554 5.5.1 Error: TLS already active");
    return Outcome::failed;
  }
  if (!server_.tls_offered() || server_.tls_wrapper_mode()) {
    reply("502 5.5.1 Error: command not implemented");
    return Outcome::failed;
  }
  if (!server_.tls()) {
    reply("454 4.3.0 TLS not available due to local problem");
    return Outcome::failed;
  }
  reply("220 2.0.0 Ready to start TLS");
  // RFC 3207: everything the client said before is forgotten.
  reset_transaction();
  helo_seen_ = ehlo_seen_ = false;
  facts_.helo.clear();
  facts_.helo_command.clear();
  // ... and so is an authentication (RFC 3207: the client starts again).
  facts_.sasl_method.clear();
  facts_.sasl_username.clear();
  facts_.sasl_sender.clear();
  struct evbuffer* in = bufferevent_get_input(bev_);
  if (size_t pending = evbuffer_get_length(in)) {
    log::info("%s: discarding %zu bytes of plaintext pipelined after STARTTLS", namaddr_.c_str(), pending);
    evbuffer_drain(in, pending);
  }
  if (holding_replies_) {
    // The error sleep holds the 220: TLS starts once it is out in plaintext.
    tls_after_sleep_ = true;
    return Outcome::pending;
  }
  flush_output();  // in plaintext, before the TLS filter takes the connection
  return start_tls() ? Outcome::pending : Outcome::failed;
}

// Stacks the OpenSSL filter on the connection; the handshake finishes in
// on_event (BEV_EVENT_CONNECTED or an error).
bool Session::start_tls() {
  SSL* ssl = server_.tls()->new_ssl(namaddr_);
  if (!ssl) {
    log::info("lost connection after STARTTLS from %s", namaddr_.c_str());
    close_after_output();
    return false;
  }
  struct bufferevent* filtered =
      bufferevent_openssl_filter_new(server_.base(), bev_, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!filtered) {
    SSL_free(ssl);
    log::warning("%s: cannot start TLS", namaddr_.c_str());
    close_after_output();
    return false;
  }
  ssl_ = ssl;
  phase_ = Phase::tls;
  set_bufferevent(filtered);
  timeval tv{static_cast<time_t>(server_.starttls_timeout()), 0};
  bufferevent_set_timeouts(bev_, &tv, &tv);
  return true;
}

void Session::starttls_handshake_done(bool ok) {
  size_t index = command_index("STARTTLS");
  bool wrapper = server_.tls_wrapper_mode();
  if (!ok) {
    // libevent has taken OpenSSL's errors off the queue: log them from it.
    std::vector<std::string> problems;
    while (unsigned long code = bufferevent_get_openssl_error(bev_)) {
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      problems.push_back(text);
    }
    if (problems.empty()) tls::log_errors();
    log::info("%s", tls::handshake_error_line(namaddr_, true, problems.empty() ? 0 : -1, errno).c_str());
    for (const std::string& p : problems) log::warning("TLS library problem: %s", p.c_str());
    log::info("lost connection after %s from %s", wrapper ? "CONNECT" : "STARTTLS", namaddr_.c_str());
    if (!wrapper) finish_command(index, Outcome::failed);
    destroy();
    return;
  }
  tls_active_ = true;
  tls_info_ = tls::describe(ssl_, true, server_.tls()->policy().fingerprint_digest);
  if (server_.tls()->policy().loglevel >= 1)
    log::info("%s", tls::connection_summary(tls_info_, namaddr_, SSL_session_reused(ssl_) == 1).c_str());
  facts_.tls_active = true;
  // The security options under TLS may offer other AUTH mechanisms.
  sasl_.reset();
  sasl_failed_open_ = false;
  timeval tv{static_cast<time_t>(server_.settings().timeout), 0};
  bufferevent_set_timeouts(bev_, &tv, &tv);
  phase_ = Phase::command;
  const SmtpdSettings& settings = server_.settings();
  int rate = 0;
  if (anvil_ && settings.newtls_rate_limit > 0 && SSL_session_reused(ssl_) != 1 &&
      anvil_->newtls(settings.service_name, facts_.client_addr, rate) && rate > settings.newtls_rate_limit) {
    log::warning("New TLS session rate limit exceeded: %d from %s for service %s", rate, namaddr_.c_str(),
                 settings.service_name.c_str());
    reply("421 4.7.0 " + settings.myhostname + " Error: too many new TLS sessions from " + namaddr_);
    return;
  }
  if (wrapper) {
    greet();  // the limits, the connect-time policy and the banner, over TLS
  } else {
    finish_command(index, Outcome::ok);
  }
  process_input();
}

std::string Session::tls_received_clause() const {
  if (!tls_active_ || !server_.tls() || !server_.settings().tls_received_header) return "";
  std::string out;
  for (const std::string& line : tls::received_header_lines(tls_info_, server_.tls()->policy().ask_client_cert))
    out += "\t" + line + "\n";
  return out;
}

}  // namespace mta::smtpd
