// smtpd_session.cpp: a session's input, output, limits and logs (see
// smtpd_session.hpp).
#include "smtpd/smtpd_session.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "log/log.hpp"
#include "smtpd/dns_pool.hpp"
#include "smtpd/smtp_address.hpp"
#include "smtpd/smtpd_server.hpp"

namespace mta::smtpd {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Postfix's printable escaping of client input in logs: \r, \n, \t and
// octal for other control bytes.
std::string escape_for_log(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\%03o", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), as Postfix's valid_utf8_string().
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
    if (n == 0 || i + n >= s.size()) return false;
    unsigned long cp = c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// A hostname as Postfix's valid_hostname() accepts it (for PTR answers).
bool plausible_hostname(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_') return false;
  return true;
}

void sockaddr_text(const sockaddr_storage& ss, std::string& addr, std::string& port, int& family) {
  char host[INET6_ADDRSTRLEN] = "";
  family = ss.ss_family;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = std::to_string(ntohs(in->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {  // ::ffff:1.2.3.4 is 1.2.3.4
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      family = AF_INET;
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    }
    port = std::to_string(ntohs(in6->sin6_port));
  } else {
    std::strcpy(host, "127.0.0.1");  // a UNIX-domain or stand-alone client
    port = "0";
    family = AF_INET;
  }
  addr = host;
}

}  // namespace

Session::Session(Smtpd& server, int fd) : server_(server), alive_(std::make_shared<Session*>(this)) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  client_addresses(fd);
  set_bufferevent(bufferevent_socket_new(server_.base(), fd, BEV_OPT_CLOSE_ON_FREE));
  sleep_timer_ = evtimer_new(server_.base(), &Session::on_sleep_done, this);
  flush_event_ = event_new(server_.base(), -1, 0, &Session::on_flush, this);
  wait_timer_ = evtimer_new(server_.base(), &Session::on_wait_timeout, this);
  server_.add(this);
}

Session::~Session() {
  *alive_ = nullptr;  // answers still with the worker pool find no session
  if (wait_cancelled_) *wait_cancelled_ = true;
  cleanup_.reset();
  if (wait_timer_) event_free(wait_timer_);
  if (sleep_timer_) event_free(sleep_timer_);
  if (flush_event_) event_free(flush_event_);
  if (bev_) bufferevent_free(bev_);
  server_.remove(this);
}

void Session::set_bufferevent(struct bufferevent* bev) {
  bev_ = bev;
  bufferevent_setcb(bev_, &Session::on_read, &Session::on_write, &Session::on_event, this);
  timeval tv{static_cast<time_t>(server_.settings().timeout), 0};
  bufferevent_set_timeouts(bev_, &tv, &tv);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void Session::client_addresses(int fd) {
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  peer_len_ = sizeof peer_;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer_), &peer_len_) != 0) peer_.ss_family = AF_UNSPEC;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) local.ss_family = AF_UNSPEC;
  sockaddr_text(peer_, facts_.client_addr, facts_.client_port, address_family_);
  int ignored = 0;
  sockaddr_text(local, facts_.server_addr, facts_.server_port, ignored);
  rfc_addr_ = address_family_ == AF_INET6 ? "IPv6:" + facts_.client_addr : facts_.client_addr;
  if (peer_.ss_family != AF_INET && peer_.ss_family != AF_INET6) {
    // Stand-alone (sendmail -bs): the local user, as Postfix names it.
    facts_.client_name = facts_.reverse_name = "localhost";
    facts_.name_status = facts_.reverse_name_status = 0;
  }
  namaddr_ = facts_.client_name + "[" + facts_.client_addr + "]";
}

namespace {

// The client's name: the PTR answer, confirmed by a forward lookup
// (Postfix's smtpd_peer.c).  Runs in a worker thread: it only fills in
// the result.
struct ClientName {
  std::string reverse_name;
  std::string name;
  int reverse_status = 5, name_status = 5;
  int forward_error = 0;  // getaddrinfo's, when the forward lookup failed
  bool mismatch = false;  // the forward lookup did not give the address
};

ClientName lookup_client_name(const sockaddr_storage& peer, socklen_t len, const std::string& addr) {
  ClientName out;
  char host[NI_MAXHOST];
  int rc = ::getnameinfo(reinterpret_cast<const sockaddr*>(&peer), len, host, sizeof host, nullptr, 0, NI_NAMEREQD);
  if (rc != 0 || !plausible_hostname(host)) {
    out.reverse_status = out.name_status = rc == EAI_AGAIN ? 4 : 5;
    return out;
  }
  out.reverse_name = host;
  out.reverse_status = 0;
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  int frc = ::getaddrinfo(host, nullptr, &hints, &res);
  bool confirmed = false;
  for (addrinfo* ai = res; frc == 0 && ai && !confirmed; ai = ai->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    std::string a, p;
    int f = 0;
    sockaddr_text(ss, a, p, f);
    confirmed = a == addr;
  }
  if (res) ::freeaddrinfo(res);
  if (confirmed) {
    out.name = host;
    out.name_status = 0;
  } else {
    out.name_status = frc == EAI_AGAIN ? 4 : 5;
    out.forward_error = frc;
    out.mismatch = true;
  }
  return out;
}

}  // namespace

void Session::start() {
  if (!server_.settings().peername_lookup || (peer_.ss_family != AF_INET && peer_.ss_family != AF_INET6)) {
    client_known();
    return;
  }
  // The lookup runs in the worker pool; the session says and reads
  // nothing until it is done (or smtpd_timeout passed: a temporary
  // failure, as a resolver that does not answer).
  auto result = std::make_shared<ClientName>();
  auto timed_out = std::make_shared<bool>(false);  // then the worker may still write *result
  std::shared_ptr<Session*> alive = alive_;
  unsigned long generation = wait_generation_ + 1;
  sockaddr_storage peer = peer_;
  socklen_t len = peer_len_;
  std::string addr = facts_.client_addr;
  begin_wait(
      1,
      [this, timed_out] {
        *timed_out = true;
        facts_.reverse_name_status = facts_.name_status = 4;
      },
      [this, result, timed_out] {
        if (*timed_out) {
          client_known();
          return;
        }
        const ClientName& r = *result;
        facts_.reverse_name_status = r.reverse_status;
        facts_.name_status = r.name_status;
        if (r.reverse_status == 0) facts_.reverse_name = r.reverse_name;
        if (r.name_status == 0) facts_.client_name = r.name;
        if (r.mismatch && r.forward_error == 0)
          log::warning("hostname %s does not resolve to address %s", r.reverse_name.c_str(),
                       facts_.client_addr.c_str());
        else if (r.mismatch)
          log::warning("hostname %s does not resolve to address %s: %s", r.reverse_name.c_str(),
                       facts_.client_addr.c_str(), ::gai_strerror(r.forward_error));
        client_known();
      });
  server_.dns_pool().submit([result, peer, len, addr](DnsLookup&) { *result = lookup_client_name(peer, len, addr); },
                            [alive, generation] {
                              if (Session* s = *alive) s->job_done(generation);
                            },
                            wait_cancelled_);
}

// The client's name is known (or its lookup failed).
void Session::client_known() {
  namaddr_ = facts_.client_name + "[" + facts_.client_addr + "]";
  log::info("connect from %s", namaddr_.c_str());
  bare_newline_exempt_ = server_.bare_newline_exempt(facts_);
  facts_.protocol = "SMTP";
  if (server_.tls_wrapper_mode()) {
    // smtps: TLS from the first byte; everything is said over it, so the
    // greeting (or a refusal) comes after the handshake.
    if (!server_.tls()) {
      log::warning("%s: TLS wrapper mode without a working TLS context: disconnecting", namaddr_.c_str());
      close_after_output();
      return;
    }
    start_tls();
    return;
  }
  greet();
}

// The per-client limits, the connect-time policy, then the banner.
void Session::greet() {
  const SmtpdSettings& settings = server_.settings();
  anvil_ = server_.anvil_for(facts_);
  int count = 0, rate = 0;
  if (anvil_ && anvil_->connect(settings.service_name, facts_.client_addr, count, rate)) {
    const char* what = nullptr;
    if (settings.connection_count_limit > 0 && count > settings.connection_count_limit) {
      log::warning("Connection concurrency limit exceeded: %d from %s for service %s", count, namaddr_.c_str(),
                   settings.service_name.c_str());
      what = "count";
    } else if (settings.connection_rate_limit > 0 && rate > settings.connection_rate_limit) {
      log::warning("Connection rate limit exceeded: %d from %s for service %s", rate, namaddr_.c_str(),
                   settings.service_name.c_str());
      what = "rate";
    }
    if (what) {
      reply("421 4.7.0 " + settings.myhostname + " Error: too many connections from " + namaddr_);
      close_after_output();
      return;
    }
  }
  connect_checks(false);
}

void Session::connect_checks(bool prefetched) {
  if (!prefetched && prefetch_dns(Stage::connect, facts_, [this] { connect_checks(true); })) return;
  if (auto refusal = policy(&Checker::check_connect)) {
    // smtpd_delay_reject = no: the client hears the refusal instead of the
    // greeting, and "503 access denied" for every command but QUIT.
    access_denied_ = *refusal;
    ++error_count_;
    reply(*refusal);
    return;
  }
  reply("220 " + server_.settings().banner);
}

void Session::shutdown() {
  if (closing_) return;
  reply("421 4.3.2 " + server_.settings().myhostname + " Service shutting down, closing transmission channel");
  close_after_output();
}

// ---- input

void Session::on_read(struct bufferevent*, void* self) { static_cast<Session*>(self)->process_input(); }

void Session::on_write(struct bufferevent*, void* self) {
  auto* s = static_cast<Session*>(self);
  if (s->closing_) s->destroy_when_flushed();
}

// Bytes written but not yet on the wire: with TLS, the filter passes them
// to the socket's bufferevent, which may still hold them.
size_t Session::output_pending() const {
  size_t n = pending_out_.size() + evbuffer_get_length(bufferevent_get_output(bev_));
  if (struct bufferevent* under = bufferevent_get_underlying(bev_))
    n += evbuffer_get_length(bufferevent_get_output(under));
  return n;
}

void Session::destroy_when_flushed() {
  if (holding_replies_) return;   // the error sleep ends first
  if (!pending_out_.empty()) return;  // flush_output() comes back here
  if (output_pending() == 0) {
    destroy();
    return;
  }
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    // Only the socket's buffer is left: look again shortly.
    timeval tv{0, 20000};
    evtimer_add(sleep_timer_, &tv);
  }
}

void Session::on_event(struct bufferevent*, short what, void* self) {
  auto* s = static_cast<Session*>(self);
  if (s->closing_) {
    s->destroy();
    return;
  }
  if (s->phase_ == Phase::tls) {
    if (what & BEV_EVENT_CONNECTED) s->starttls_handshake_done(true);
    else if (what & BEV_EVENT_TIMEOUT) {
      log::info("timeout after %s from %s", s->server_.tls_wrapper_mode() ? "CONNECT" : "STARTTLS",
                s->namaddr_.c_str());
      s->destroy();
    } else {
      s->starttls_handshake_done(false);
    }
    return;
  }
  if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
    // The client stopped reading: nothing more can reach it.
    log::info("timeout after %s from %s", s->last_command_.c_str(), s->namaddr_.c_str());
    s->destroy();
    return;
  }
  if (what & BEV_EVENT_TIMEOUT) {
    log::info("timeout after %s from %s", s->last_command_.c_str(), s->namaddr_.c_str());
    s->reply("421 4.4.2 " + s->server_.settings().myhostname + " Error: timeout exceeded");
    s->close_after_output();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    // The client left: what it had pipelined before leaving is still handled
    // (it may end with QUIT), then the session ends.
    s->process_input();
    if (s->phase_ == Phase::waiting && !s->closing_) {
      // A message is with cleanup: let it finish (and be logged) first.
      s->client_gone_ = true;
      bufferevent_disable(s->bev_, EV_READ | EV_WRITE);
      return;
    }
    if (!s->closing_) log::info("lost connection after %s from %s", s->last_command_.c_str(), s->namaddr_.c_str());
    s->destroy();
  }
}

void Session::pause_input() {
  input_paused_ = true;
  if (bev_) bufferevent_disable(bev_, EV_READ);
}

void Session::resume_input() {
  if (waiting_) return;  // end_wait() resumes
  input_paused_ = false;
  if (bev_ && !closing_) bufferevent_enable(bev_, EV_READ);
  process_input();
}

// Reads one line: false when no complete line is buffered.  A line longer
// than line_length_limit comes out truncated; the rest of it is skipped.
bool Session::read_line(std::string& line, bool& crlf, bool& truncated) {
  struct evbuffer* in = bufferevent_get_input(bev_);
  size_t limit = server_.settings().line_length_limit;
  // An AUTH response may be longer: smtpd_sasl_response_limit.
  if (phase_ == Phase::auth)
    limit = std::max(limit, static_cast<size_t>(server_.settings().sasl_response_limit) + 1);
  struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, nullptr);
  size_t have = evbuffer_get_length(in);
  if (skip_rest_of_line_) {
    // The first line_length_limit bytes of an overlong line are kept; the
    // rest goes before the command runs (what follows it, e.g. a BDAT
    // chunk, must not be taken for the rest of the line, nor the reverse).
    if (lf.pos < 0) {
      evbuffer_drain(in, have);
      return false;
    }
    evbuffer_drain(in, static_cast<size_t>(lf.pos) + 1);
    skip_rest_of_line_ = false;
    line = std::move(truncated_line_);
    truncated_line_.clear();
    crlf = true;
    truncated = true;
    return true;
  }
  truncated = false;
  if (lf.pos < 0 || static_cast<size_t>(lf.pos) > limit) {
    if (lf.pos < 0 && have <= limit) return false;
    truncated_line_.resize(limit);
    evbuffer_remove(in, truncated_line_.data(), limit);
    skip_rest_of_line_ = true;
    return read_line(line, crlf, truncated);
  }
  size_t n = static_cast<size_t>(lf.pos);
  line.resize(n);
  evbuffer_remove(in, line.data(), n);
  evbuffer_drain(in, 1);
  crlf = !line.empty() && line.back() == '\r';
  if (crlf) line.pop_back();
  return true;
}

void Session::process_input() {
  if (!bev_ || closing_ || input_paused_ || holding_replies_) return;
  while (!closing_ && !input_paused_ && !holding_replies_) {
    if (phase_ == Phase::data) {
      data_input();
      if (phase_ == Phase::data) return;  // needs more input
      continue;
    }
    if (phase_ == Phase::bdat) {
      bdat_input();
      if (phase_ == Phase::bdat) return;
      continue;
    }
    if (phase_ != Phase::command && phase_ != Phase::auth) return;
    // Postfix checks the error limit before it reads the next command.
    if (error_count_ >= server_.settings().hard_error_limit) {
      log::info("too many errors after %s from %s", last_command_.c_str(), namaddr_.c_str());
      reply("421 4.7.0 " + server_.settings().myhostname + " Error: too many errors");
      close_after_output();
      return;
    }
    std::string line;
    bool crlf = true, truncated = false;
    if (!read_line(line, crlf, truncated)) return;
    if (phase_ == Phase::auth) {
      auth_response(line);
      continue;
    }
    handle_command_line(std::move(line), crlf, truncated);
  }
}

std::string Session::pending_input_sample(size_t max) {
  struct evbuffer* in = bufferevent_get_input(bev_);
  size_t n = std::min(max, evbuffer_get_length(in));
  std::string bytes(n, '\0');
  evbuffer_copyout(in, bytes.data(), n);
  return escape_for_log(bytes);
}

void Session::handle_command_line(std::string line, bool crlf, bool truncated) {
  const SmtpdSettings& settings = server_.settings();
  if (truncated) {
    log::warning("%s: request longer than %zu: %.30s...", namaddr_.c_str(), settings.line_length_limit,
                 escape_for_log(line.substr(0, 30)).c_str());
  }
  if (!crlf && settings.bare_newline == BareNewline::reject && !bare_newline_exempt_) {
    log::info("disconnect: bare <LF> received from %s after %s", namaddr_.c_str(), last_command_.c_str());
    reply(std::to_string(settings.bare_newline_reject_code) + " 5.5.2 Error: bare <LF> received");
    close_after_output();
    return;
  }
  // The verb and its arguments.
  size_t start = 0;
  while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
  size_t verb_end = start;
  while (verb_end < line.size() && line[verb_end] != ' ' && line[verb_end] != '\t') ++verb_end;
  std::string verb = upper(std::string_view(line).substr(start, verb_end - start));
  std::string_view args = std::string_view(line).substr(verb_end);
  while (!args.empty() && (args.front() == ' ' || args.front() == '\t')) args.remove_prefix(1);
  while (!args.empty() && (args.back() == ' ' || args.back() == '\t')) args.remove_suffix(1);

  if (verb.empty()) {
    error_reply("500 5.5.2 Error: bad syntax");
    return;
  }
  if (settings.smtputf8_enable && !valid_utf8(line)) {
    error_reply("500 5.5.2 Error: bad UTF-8 syntax");
    return;
  }
  size_t index = command_index(verb);
  if (index == kCommandCount && server_.forbidden_command(verb)) {
    log::warning("non-SMTP command from %s: %.100s", namaddr_.c_str(), escape_for_log(line).c_str());
    reply("221 2.7.0 Error: I can break rules, too. Goodbye.");
    close_after_output();
    return;
  }
  if (index == kCommandCount) {
    ++unknown_total_;
    last_command_ = "UNKNOWN";
    error_reply("500 5.5.2 Error: command not recognized");
    return;
  }
  const Command& cmd = kCommands[index];
  ++counts_[index][1];

  // RFC 2920: a client may send ahead only after PIPELINING was offered,
  // and never past a command that must end a group.
  if (settings.forbid_unauth_pipelining && !server_.stand_alone() && ((cmd.flags & kLast) || !ehlo_seen_) &&
      evbuffer_get_length(bufferevent_get_input(bev_)) > 0) {
    log::info("improper command pipelining after %s from %s: %s", verb.c_str(), namaddr_.c_str(),
              pending_input_sample(100).c_str());
    reply("554 5.5.0 Error: SMTP protocol synchronization");
    close_after_output();
    return;
  }
  if (!access_denied_.empty() && verb != "QUIT") {
    error_reply("503 5.7.0 Error: access denied for " + namaddr_);
    return;
  }
  if (!command_allowed_before_tls(cmd.flags)) {
    error_reply("530 5.7.0 Must issue a STARTTLS command first");
    return;
  }
  last_command_ = verb;
  run_command(index, std::string(args), false);
}

// Runs a command's handler, once the DNS questions of its check are
// answered.
void Session::run_command(size_t index, std::string args, bool prefetched) {
  if (!prefetched && server_.checker() && server_.checker()->asks_dns()) {
    SessionFacts future;
    Stage stage = Stage::connect;
    if (command_facts(index, args, future, stage) &&
        prefetch_dns(stage, future, [this, index, args] { run_command(index, args, true); }))
      return;
  }
  const Command& cmd = kCommands[index];
  finish_command(index, (this->*cmd.handler)(args));
  if ((cmd.flags & kLimit) && junk_count_++ > server_.settings().junk_command_limit) ++error_count_;
}

// What the handler will put in facts_ before its check (smtpd_commands.cpp,
// smtpd_data.cpp), for the commands that check.
bool Session::command_facts(size_t index, std::string_view args, SessionFacts& f, Stage& stage) const {
  const SmtpdSettings& settings = server_.settings();
  std::string_view verb = kCommands[index].verb;
  f = facts_;
  if (verb == "HELO" || verb == "EHLO") {
    if (args.empty()) return false;
    f.helo = std::string(args);
    stage = Stage::helo;
    return true;
  }
  if (verb == "MAIL") {
    if (tx_active_ || bdat_active_) return false;
    PathArgument path = parse_path_argument(args, "FROM", settings.strict_rfc821_envelopes);
    if (path.error != PathArgument::Error::none) return false;
    f.have_sender = true;
    f.sender = path.internal;
    f.recipient.clear();
    stage = Stage::mail;
    return true;
  }
  if (verb == "RCPT") {
    if (!tx_active_ || bdat_active_) return false;
    PathArgument path = parse_path_argument(args, "TO", settings.strict_rfc821_envelopes);
    if (path.error != PathArgument::Error::none || path.internal.empty()) return false;
    f.recipient = path.internal;
    f.recipient_count = static_cast<int>(recipients_.size());
    stage = Stage::rcpt;
    return true;
  }
  if (verb == "VRFY") {
    if (settings.disable_vrfy || tx_active_ || args.empty()) return false;
    std::string addr(args);
    if (addr.size() >= 2 && addr.front() == '<' && addr.back() == '>') addr = addr.substr(1, addr.size() - 2);
    PathArgument path = parse_path_argument("TO:<" + addr + ">", "TO", false);
    if (path.error != PathArgument::Error::none || path.internal.empty()) return false;
    f.recipient = path.internal;
    stage = Stage::vrfy;
    return true;
  }
  if (verb == "ETRN") {
    if (tx_active_ || args.empty() || args.find(' ') != std::string_view::npos) return false;
    f.etrn_domain = std::string(args[0] == '@' || args[0] == '#' ? args.substr(1) : args);
    stage = Stage::etrn;
    return true;
  }
  if (verb == "DATA" || (verb == "BDAT" && !bdat_active_)) {
    if (!tx_active_ || recipients_.empty()) return false;
    f.recipient_count = static_cast<int>(recipients_.size());
    stage = Stage::data;
    return true;
  }
  return false;
}

std::optional<std::string> Session::policy(CheckMethod method) {
  Checker* checker = server_.checker();
  if (!checker) return std::nullopt;
  Checker::AnswerScope answers(*checker, dns_answers_);
  return (checker->*method)(facts_);
}

// ---- waiting for the worker pool

bool Session::prefetch_dns(Stage stage, const SessionFacts& facts, std::function<void()> then) {
  Checker* checker = server_.checker();
  if (!checker) return false;
  dns_answers_.trim();
  std::vector<DnsQuestion> missing;
  for (DnsQuestion& q : checker->dns_questions(facts, stage))
    if (!dns_answers_.find(q)) missing.push_back(std::move(q));
  if (missing.empty()) return false;
  std::shared_ptr<Session*> alive = alive_;
  unsigned long generation = wait_generation_ + 1;
  auto questions = std::make_shared<std::vector<DnsQuestion>>(missing);
  begin_wait(
      missing.size(),
      [this, questions] {
        // No answer within smtpd_timeout: a temporary failure.
        for (const DnsQuestion& q : *questions)
          if (!dns_answers_.find(q)) dns_answers_.add(q, unanswered());
      },
      std::move(then));
  for (DnsQuestion& q : missing) {
    auto answer = std::make_shared<DnsAnswer>();
    server_.dns_pool().submit([q, answer](DnsLookup& dns) { *answer = ask(dns, q); },
                              [alive, generation, q, answer] {
                                Session* s = *alive;
                                if (!s || s->wait_generation_ != generation || !s->waiting_) return;
                                s->dns_answers_.add(q, std::move(*answer));
                                s->job_done(generation);
                              },
                              wait_cancelled_);
  }
  return true;
}

void Session::begin_wait(size_t jobs, std::function<void()> on_timeout, std::function<void()> then) {
  ++wait_generation_;
  waiting_ = true;
  wait_cancelled_ = std::make_shared<std::atomic<bool>>(false);
  wait_outstanding_ = jobs;
  wait_timeout_ = std::move(on_timeout);
  wait_then_ = std::move(then);
  pause_input();
  timeval tv{static_cast<time_t>(std::max<long long>(1, server_.settings().timeout)), 0};
  evtimer_add(wait_timer_, &tv);
}

void Session::job_done(unsigned long generation) {
  if (!waiting_ || generation != wait_generation_) return;  // a wait that timed out
  if (--wait_outstanding_ == 0) end_wait();
}

void Session::on_wait_timeout(int, short, void* self) {
  auto* s = static_cast<Session*>(self);
  if (!s->waiting_) return;
  if (s->wait_timeout_) s->wait_timeout_();
  s->end_wait();
}

// Goes on where the wait began, then reads the client again unless what
// went on stopped that (a new wait, cleanup, TLS, the end).
void Session::end_wait() {
  evtimer_del(wait_timer_);
  waiting_ = false;
  ++wait_generation_;  // later answers of this wait are dropped
  if (wait_cancelled_) *wait_cancelled_ = true;  // and its jobs not yet started are not run
  std::function<void()> then = std::move(wait_then_);
  wait_then_ = nullptr;
  wait_timeout_ = nullptr;
  input_paused_ = false;
  if (closing_) return;  // "421 shutting down" while it waited
  std::shared_ptr<Session*> alive = alive_;
  then();
  // (During the error sleep, on_sleep_done() resumes: reading now would
  // let a pipelined QUIT and the client's close end the session before the
  // held replies go out.)
  if (!*alive || waiting_ || input_paused_ || closing_ || holding_replies_ || phase_ == Phase::waiting ||
      phase_ == Phase::tls)
    return;
  resume_input();
}

void Session::finish_command(size_t index, Outcome outcome) {
  if (outcome == Outcome::ok) ++counts_[index][0];
  else if (outcome == Outcome::failed) ++error_count_;
}

size_t Session::command_index(std::string_view verb) const {
  for (size_t i = 0; i < kCommandCount; ++i)
    if (verb == kCommands[i].verb) return i;
  return kCommandCount;
}

// ---- output

void Session::reply(std::string_view text) {
  if (!bev_) return;
  if (log::verbose_level() > 0) log::info("> %s: %.*s", namaddr_.c_str(), static_cast<int>(text.size()), text.data());
  const SmtpdSettings& settings = server_.settings();
  if (error_count_ >= settings.soft_error_limit && settings.error_sleep_time > 0 && !holding_replies_ &&
      !closing_) {
    // Slow down a client that makes many errors (smtpd_error_sleep_time):
    // this reply and everything after it waits.
    holding_replies_ = true;
    timeval tv{static_cast<time_t>(settings.error_sleep_time), 0};
    evtimer_add(sleep_timer_, &tv);
    bufferevent_disable(bev_, EV_READ);
  }
  std::string line(text);
  if (settings.soft_bounce && line.size() > 4 && line[0] == '5') {
    // soft_bounce: every permanent refusal becomes a temporary one.
    line[0] = '4';
    if (line.size() > 6 && line[4] == '5' && line[5] == '.') line[4] = '4';
  }
  bool hang_up = line.compare(0, 4, "421 ") == 0 || line.compare(0, 4, "521 ") == 0;
  line += "\r\n";
  if (holding_replies_) {
    held_replies_ += line;
  } else {
    pending_out_ += line;
    if (!flush_scheduled_) {
      // Replies made while handling one burst of input leave together,
      // once the current callback is done.
      flush_scheduled_ = true;
      event_active(flush_event_, EV_TIMEOUT, 0);
    }
  }
  if (hang_up) close_after_output();  // 421 and 521 end the session
}

void Session::on_flush(int, short, void* self) {
  auto* s = static_cast<Session*>(self);
  s->flush_scheduled_ = false;
  s->flush_output();
}

// Sends the replies: straight to the socket when nothing else waits to go
// out (no buffering, no write event), else through the bufferevent (always
// with TLS, where the filter encrypts).
void Session::flush_output() {
  if (!bev_ || pending_out_.empty()) return;
  struct evbuffer* out = bufferevent_get_output(bev_);
  size_t done = 0;
  if (!bufferevent_get_underlying(bev_) && evbuffer_get_length(out) == 0) {
    ssize_t n = ::send(bufferevent_getfd(bev_), pending_out_.data(), pending_out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) done = static_cast<size_t>(n);
  }
  if (done < pending_out_.size()) bufferevent_write(bev_, pending_out_.data() + done, pending_out_.size() - done);
  pending_out_.clear();
  if (closing_) destroy_when_flushed();
}

void Session::on_sleep_done(int, short, void* self) {
  auto* s = static_cast<Session*>(self);
  if (s->closing_ && !s->holding_replies_) {
    s->destroy_when_flushed();  // may delete s
    return;
  }
  s->holding_replies_ = false;
  s->pending_out_ += s->held_replies_;
  s->held_replies_.clear();
  if (s->closing_) {
    s->flush_output();  // ends the session once the replies are out: may delete s
    return;
  }
  s->flush_output();
  if (s->tls_after_sleep_) {
    s->tls_after_sleep_ = false;
    s->start_tls();  // the 220 has gone out in plaintext
    return;
  }
  s->resume_input();
}

void Session::error_reply(std::string_view text) {
  ++error_count_;
  reply(text);
}

void Session::close_after_output() {
  if (closing_) return;
  closing_ = true;
  phase_ = Phase::closing;
  bufferevent_disable(bev_, EV_READ);
  if (!holding_replies_ && output_pending() == 0) {
    // Let the event loop finish the current callback first.
    bufferevent_trigger(bev_, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
  } else if (!holding_replies_ && evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    timeval tv{0, 20000};
    evtimer_add(sleep_timer_, &tv);
  }
}

void Session::destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  if (anvil_) anvil_->disconnect(server_.settings().service_name, facts_.client_addr);
  log_disconnect();
  server::ServerContext& ctx = server_.context();
  delete this;
  if (ctx.client_done) ctx.client_done();
}

void Session::log_disconnect() {
  std::string stats;
  int ok = 0, total = 0;
  for (size_t i = 0; i < kCommandCount; ++i) {
    auto [good, all] = counts_[i];
    if (all == 0) continue;
    std::string name = kCommands[i].verb;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    stats += " " + name + "=" + std::to_string(good);
    if (good != all) stats += "/" + std::to_string(all);
    ok += good;
    total += all;
  }
  if (unknown_total_ > 0) stats += " unknown=0/" + std::to_string(unknown_total_);
  total += unknown_total_;
  stats += " commands=" + std::to_string(ok);
  if (ok != total || total == 0) stats += "/" + std::to_string(total);  // Postfix: "commands=0/0"
  log::info("disconnect from %s%s", namaddr_.c_str(), stats.c_str());
}

}  // namespace mta::smtpd
