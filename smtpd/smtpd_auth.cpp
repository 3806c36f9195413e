// smtpd_auth.cpp: SMTP AUTH (RFC 4954) over lib/sasl, with Postfix 3.7's
// replies and log lines (see smtpd_session.hpp).
//
// Each SASL step (the server's start and next: a round trip to saslauthd
// or Dovecot's auth server, which may sit on PAM or LDAP) runs in the SASL
// worker pool (dns_pool.hpp) while the session waits with its input
// paused, so a slow auth server stalls only the sessions that asked it;
// Postfix gets the same from one session per process.  The job holds the
// session's ServerSession (shared), so either may go first; one session
// runs one step at a time, which is all the back ends need (lib/sasl).
// The wait is bounded by smtpd_timeout, as the DNS waits are: a step that
// outlives it is a temporary failure, and the session drops that
// ServerSession (the worker still has it) so the next AUTH opens another.
#include <algorithm>
#include <cctype>
#include <memory>
#include <string>

#include "log/log.hpp"
#include "smtpd/dns_pool.hpp"
#include "smtpd/smtpd_server.hpp"
#include "smtpd/smtpd_session.hpp"

namespace mta::smtpd {

using Result = sasl::ServerSession::Result;

// The session's SASL server, opened on first use (and again after
// STARTTLS, when other security options apply); null when AUTH is off or
// the back end refused the session.
sasl::ServerSession* Session::sasl_session() {
  sasl::ServerFactory* factory = server_.sasl();
  if (!factory || !server_.settings().sasl_enable) return nullptr;
  if (!sasl_ && !sasl_failed_open_) {
    sasl::SessionParams params;
    params.client_addr = facts_.client_addr;
    params.client_port = facts_.client_port;
    params.server_addr = facts_.server_addr;
    params.server_port = facts_.server_port;
    params.tls_active = tls_active_;
    std::string error;
    sasl_ = factory->open(params, error);
    if (!sasl_) {
      log::warning("%s: SASL server session: %s", namaddr_.c_str(), error.c_str());
      sasl_failed_open_ = true;
    }
  }
  return sasl_.get();
}

Session::Outcome Session::cmd_auth(std::string_view args) {
  const SmtpdSettings& settings = server_.settings();
  if (!settings.sasl_enable || !server_.sasl() || (settings.tls_auth_only && !tls_active_)) {
    reply("503 5.5.1 Error: authentication not enabled");
    return Outcome::failed;
  }
  if (tx_active_) {
    reply("503 5.5.1 Error: MAIL transaction in progress");
    return Outcome::failed;
  }
  if (!facts_.sasl_username.empty()) {
    reply("503 5.5.1 Error: already authenticated");
    return Outcome::failed;
  }
  size_t space = args.find(' ');
  std::string mechanism(args.substr(0, space));
  std::string initial(space == std::string_view::npos ? std::string_view() : args.substr(space + 1));
  while (!initial.empty() && initial.front() == ' ') initial.erase(0, 1);
  if (mechanism.empty() || initial.find(' ') != std::string::npos) {
    reply("501 5.5.4 Syntax: AUTH mechanism");
    return Outcome::failed;
  }
  for (char& c : mechanism) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int rate = 0;
  if (anvil_ && settings.auth_rate_limit > 0 && anvil_->auth(settings.service_name, facts_.client_addr, rate) &&
      rate > settings.auth_rate_limit) {
    log::warning("AUTH command rate limit exceeded: %d from %s for service %s", rate, namaddr_.c_str(),
                 settings.service_name.c_str());
    reply("450 4.7.1 Error: too many AUTH commands from " + facts_.client_addr);
    return Outcome::failed;
  }
  sasl::ServerSession* sasl = sasl_session();
  if (!sasl) {
    reply("454 4.7.0 Temporary authentication failure: SASL server unavailable");
    return Outcome::failed;
  }
  sasl_mechanism_ = mechanism;
  auth_step([mechanism, initial](sasl::ServerSession& server, std::string& out) {
    return server.start(mechanism, initial, out);
  });
  return Outcome::pending;
}

// One client line during an AUTH exchange.
void Session::auth_response(const std::string& line) {
  size_t index = command_index("AUTH");
  if (static_cast<long long>(line.size()) > server_.settings().sasl_response_limit) {
    phase_ = Phase::command;
    reply("500 5.5.6 SASL response limit exceeded");
    finish_command(index, Outcome::failed);
    return;
  }
  if (line == "*") {
    phase_ = Phase::command;
    reply("501 5.7.0 Authentication aborted");
    finish_command(index, Outcome::failed);
    return;
  }
  if (!sasl_) {  // cannot happen: the 334 came from it
    phase_ = Phase::command;
    reply("454 4.7.0 Temporary authentication failure: SASL server unavailable");
    finish_command(index, Outcome::failed);
    return;
  }
  auth_step([line](sasl::ServerSession& server, std::string& out) { return server.next(line, out); });
}

void Session::auth_step(AuthStep step) {
  struct Answer {
    Result result = Result::error;
    std::string out;
  };
  auto answer = std::make_shared<Answer>();  // written by the worker only
  auto timed_out = std::make_shared<bool>(false);
  std::shared_ptr<sasl::ServerSession> server = sasl_;
  std::shared_ptr<Session*> alive = alive_;
  unsigned long generation = wait_generation_ + 1;
  begin_wait(
      1, [timed_out] { *timed_out = true; },
      [this, answer, timed_out, server] {
        Outcome outcome;
        if (*timed_out) {
          // The worker still uses SERVER: never again from here.
          if (sasl_ == server) sasl_.reset();
          long long limit = std::max<long long>(1, server_.settings().timeout);
          outcome = auth_result(*server, Result::error,
                                "timeout after " + std::to_string(limit) + "s waiting for the authentication server");
        } else {
          outcome = auth_result(*server, answer->result, answer->out);
        }
        if (outcome != Outcome::pending) finish_command(command_index("AUTH"), outcome);
      });
  // The completion keeps SERVER too, so that when the session has gone
  // its last reference is dropped in the loop's thread.
  server_.sasl_pool().submit(
      [step = std::move(step), server, answer](DnsLookup&) { answer->result = step(*server, answer->out); },
      [alive, generation, server] {
        if (Session* s = *alive) s->job_done(generation);
      },
      wait_cancelled_);
}

Session::Outcome Session::auth_result(sasl::ServerSession& server, Result result, const std::string& out) {
  switch (result) {
    case Result::more:
      phase_ = Phase::auth;
      reply("334 " + out);
      return Outcome::pending;
    case Result::done:
      phase_ = Phase::command;
      facts_.sasl_method = server.method().empty() ? sasl_mechanism_ : server.method();
      facts_.sasl_username = server.username();
      facts_.protocol = tls_active_ ? "ESMTPSA" : "ESMTPA";
      reply("235 2.7.0 Authentication successful");
      return Outcome::ok;
    case Result::failed:
    case Result::malformed: {
      phase_ = Phase::command;
      std::string user = server.username();
      if (user.empty())
        log::warning("%s: SASL %s authentication failed: %s", namaddr_.c_str(), sasl_mechanism_.c_str(), out.c_str());
      else
        log::warning("%s: SASL %s authentication failed: %s, sasl_username=%s", namaddr_.c_str(),
                     sasl_mechanism_.c_str(), out.c_str(), user.c_str());
      reply("535 5.7.8 Error: authentication failed: " + out);
      return Outcome::failed;
    }
    case Result::error:
      phase_ = Phase::command;
      log::warning("%s: SASL %s authentication failed: %s", namaddr_.c_str(), sasl_mechanism_.c_str(), out.c_str());
      reply("454 4.7.0 Temporary authentication failure: " + out);
      return Outcome::failed;
  }
  return Outcome::failed;
}

}  // namespace mta::smtpd
