// smtpd_data.cpp: the mail transaction's records, DATA and BDAT content,
// and the end of a message (see smtpd_session.hpp).
//
// DATA ends only at CR LF "." CR LF (SMTP smuggling defence): with
// smtpd_forbid_bare_newline = normalize a line ending in a bare LF is
// content like any other line, but a "." line ends DATA only when it and
// the line before it ended in CR LF; with reject a bare LF ends the
// session with an error; with no (or for clients in
// smtpd_forbid_bare_newline_exclusions) a "." line ends DATA however it
// ended, as Postfix 3.7 did.  A bare CR never ends a line.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <cctype>
#include <cstring>

#include "address/address.hpp"
#include "cleanup/cleanup_status.hpp"
#include "cleanup/mail_date.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"
#include "smtpd/smtpd_server.hpp"
#include "smtpd/smtpd_session.hpp"

namespace mta::smtpd {

namespace rec = queue::rec;
namespace cstat = message::cleanup_stat;

namespace {
constexpr size_t kCleanupBacklog = 1 << 20;  // stop reading the client above this
}

bool Session::open_cleanup() {
  const SmtpdSettings& settings = server_.settings();
  cleanup_ = std::make_unique<CleanupStream>();
  int flags = settings.cleanup_flags;
  if (smtputf8_) flags |= message::cleanup_flag::kSmtputf8;
  std::string error;
  bool opened = server_.stand_alone()
                    ? cleanup_->open_postdrop(server_.base(), server_.config().get("command_directory"),
                                              server_.config().get("config_directory"), &error)
                    : cleanup_->open(server_.base(), settings.queue_directory, settings.cleanup_service, flags, &error);
  if (!opened) {
    log::warning("%s: cannot connect to the %s service: %s", namaddr_.c_str(), settings.cleanup_service.c_str(),
                 error.c_str());
    cleanup_.reset();
    return false;
  }
  cleanup_opened();
  return true;
}

// The queue ID is known: log it and start the envelope.
void Session::cleanup_opened() {
  facts_.queue_id = cleanup_->queue_id();
  if (!facts_.sasl_method.empty()) {
    log::info("%s: client=%s, sasl_method=%s, sasl_username=%s", facts_.queue_id.c_str(), namaddr_.c_str(),
              facts_.sasl_method.c_str(), facts_.sasl_username.c_str());
  } else {
    log::info("%s: client=%s", facts_.queue_id.c_str(), namaddr_.c_str());
  }
  write_envelope_start();
}

// The first accepted recipient opens the cleanup conversation without
// blocking the process: the RCPT reply waits for cleanup's announcement
// (master may first have to start a cleanup), and so does further input.
void Session::open_cleanup_for(PendingRecipient rcpt) {
  const SmtpdSettings& settings = server_.settings();
  cleanup_ = std::make_unique<CleanupStream>();
  int flags = settings.cleanup_flags;
  if (smtputf8_) flags |= message::cleanup_flag::kSmtputf8;
  phase_ = Phase::waiting;
  bufferevent_disable(bev_, EV_READ);
  opening_inline_ = true;
  cleanup_->open_async(server_.base(), settings.queue_directory, settings.cleanup_service, flags,
                       [this, rcpt](bool ok, const std::string& error) {
                         size_t index = command_index("RCPT");
                         phase_ = Phase::command;
                         if (ok) {
                           cleanup_opened();
                           write_recipient(rcpt.internal, rcpt.given, rcpt.notify, rcpt.orcpt);
                           recipients_.push_back(rcpt.internal);
                           reply("250 2.1.5 Ok");
                         } else {
                           log::warning("%s: cannot connect to the %s service: %s", namaddr_.c_str(),
                                        server_.settings().cleanup_service.c_str(), error.c_str());
                           cleanup_.reset();
                           reply("451 4.3.0 Error: queue file write error");
                         }
                         facts_.recipient.clear();
                         finish_command(index, ok ? Outcome::ok : Outcome::failed);
                         if (opening_inline_) return;  // cmd_rcpt is still on the stack
                         if (client_gone_) {
                           log::info("lost connection after RCPT from %s", namaddr_.c_str());
                           destroy();
                           return;
                         }
                         bufferevent_enable(bev_, EV_READ);
                         process_input();
                       });
  opening_inline_ = false;
  if (phase_ == Phase::command) bufferevent_enable(bev_, EV_READ);  // it answered at once
}

void Session::write_envelope_start() {
  // Through postdrop (stand-alone), only what a local user may say:
  // postdrop sets the arrival time itself.
  bool local_user = server_.stand_alone();
  if (!local_user) {
    char time_text[64];
    std::snprintf(time_text, sizeof time_text, "%ld %ld", static_cast<long>(arrival_.tv_sec),
                  static_cast<long>(arrival_.tv_usec));
    cleanup_->record(rec::kTime, time_text);
    const std::string& filter = server_.content_filter();
    if (!filter.empty()) cleanup_->record(rec::kFilter, filter);
  }
  if (!body_.empty()) {
    std::string encoding = body_;
    for (char& c : encoding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    cleanup_->attribute("encoding", encoding);
  }
  if (!envid_.empty()) cleanup_->attribute("envelope_id", envid_);
  if (!ret_.empty()) cleanup_->attribute("ret_flags", (ret_[0] == 'F' || ret_[0] == 'f') ? "1" : "2");
  cleanup_->record(rec::kFrom, facts_.sender);
  if (!verp_.empty()) cleanup_->record(rec::kVerp, verp_);
  if (local_user) return;
  cleanup_->attribute("log_client_name", facts_.client_name);
  cleanup_->attribute("log_client_address", facts_.client_addr);
  cleanup_->attribute("log_client_port", facts_.client_port);
  cleanup_->attribute("log_message_origin", namaddr_);
  if (!facts_.helo.empty()) cleanup_->attribute("log_helo_name", facts_.helo);
  cleanup_->attribute("log_protocol_name", facts_.protocol);
  cleanup_->attribute("client_name", facts_.client_name);
  cleanup_->attribute("reverse_client_name", facts_.reverse_name);
  cleanup_->attribute("client_address", facts_.client_addr);
  cleanup_->attribute("client_port", facts_.client_port);
  cleanup_->attribute("server_address", facts_.server_addr);
  cleanup_->attribute("server_port", facts_.server_port);
  if (!facts_.helo.empty()) cleanup_->attribute("helo_name", facts_.helo);
  cleanup_->attribute("protocol_name", facts_.protocol);
  cleanup_->attribute("client_address_type", std::to_string(address_family_));
  cleanup_->attribute("rewrite_context", server_.rewrite_context(facts_));
  if (!facts_.sasl_method.empty()) {
    cleanup_->attribute("sasl_method", facts_.sasl_method);
    cleanup_->attribute("sasl_username", facts_.sasl_username);
    if (!facts_.sasl_sender.empty()) cleanup_->attribute("sasl_sender", facts_.sasl_sender);
  }
}

void Session::write_recipient(const std::string& internal, const std::string&, int notify, const std::string& orcpt) {
  if (notify) cleanup_->attribute("notify_flags", std::to_string(notify));
  cleanup_->attribute("dsn_orig_rcpt", orcpt);
  cleanup_->record(rec::kRcpt, internal);
}

void Session::reset_transaction() {
  cleanup_.reset();  // an unfinished message: cleanup discards it
  tx_active_ = tx_failed_ = false;
  recipients_.clear();
  ret_.clear();
  envid_.clear();
  verp_.clear();
  body_.clear();
  smtputf8_ = false;
  declared_size_ = 0;
  rcpt_total_ = 0;
  facts_.have_sender = false;
  facts_.sender.clear();
  facts_.recipient.clear();
  facts_.queue_id.clear();
  facts_.message_size = 0;
  facts_.recipient_count = 0;
  if (Checker* checker = server_.checker()) checker->reset_transaction(facts_);
  else facts_.actions = {};
  prev_crlf_ = true;
  prev_cont_ = saw_bare_lf_ = size_exceeded_ = false;
  content_size_ = 0;
  bdat_remaining_ = 0;
  bdat_last_ = bdat_active_ = bdat_discard_ = bdat_cr_ = false;
  bdat_line_.clear();
}

// The envelope's last records and the message's first lines: what the
// policy added (FILTER, REDIRECT, HOLD, DISCARD, PREPEND) and our Received.
void Session::begin_content() {
  const SessionFacts::Actions& a = facts_.actions;
  if (!a.filter.empty()) cleanup_->record(rec::kFilter, a.filter);
  if (!a.redirect.empty()) cleanup_->record(rec::kRedirect, a.redirect);
  int flags = 0;
  if (!a.hold_reason.empty()) flags |= message::cleanup_flag::kHold;
  if (!a.discard_reason.empty()) flags |= message::cleanup_flag::kDiscard;
  if (flags) cleanup_->record(rec::kFlags, std::to_string(flags));
  cleanup_->record(rec::kMessage, "");
  for (const std::string& header : a.prepend) cleanup_->record(rec::kNorm, header);
  std::string received = received_header_lines();
  size_t pos = 0;
  while (pos < received.size()) {
    size_t nl = received.find('\n', pos);
    cleanup_->record(rec::kNorm, std::string_view(received).substr(pos, nl - pos));
    pos = nl + 1;
  }
  prev_crlf_ = true;
  prev_cont_ = false;
}

std::string Session::received_header_lines() {
  const SmtpdSettings& settings = server_.settings();
  std::string h = "Received: from " + (facts_.helo.empty() ? facts_.client_name : facts_.helo) + " (" +
                  facts_.client_name + " [" + rfc_addr_ + "])\n";
  h += tls_received_clause();
  if (settings.sasl_authenticated_header && !facts_.sasl_username.empty())
    h += "\t(Authenticated sender: " + facts_.sasl_username + ")\n";
  std::string date = message::mail_date(arrival_.tv_sec);
  std::string by = "\tby " + settings.myhostname + " (" + settings.mail_name + ") with " + facts_.protocol + " id " +
                   facts_.queue_id;
  if (recipients_.size() == 1) {
    h += by + "\n\tfor <" + address::to_external(recipients_[0]).text + ">; " + date + "\n";
  } else {
    h += by + ";\n\t" + date + "\n";
  }
  return h;
}

Session::Outcome Session::cmd_data(std::string_view args) {
  if (bdat_active_) {
    reply("503 5.5.1 Error: DATA after BDAT");
    return Outcome::failed;
  }
  if (!tx_active_ || recipients_.empty()) {
    reply(tx_active_ ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command");
    return Outcome::failed;
  }
  if (!args.empty()) {
    reply("501 5.5.4 Syntax: DATA");
    return Outcome::failed;
  }
  facts_.recipient_count = static_cast<int>(recipients_.size());
  if (auto refusal = policy(&Checker::check_data)) {
    reply(*refusal);
    return Outcome::failed;
  }
  begin_content();
  content_size_ = 0;
  phase_ = Phase::data;
  reply("354 End data with <CR><LF>.<CR><LF>");
  return Outcome::pending;
}

void Session::data_input() {
  struct evbuffer* in = bufferevent_get_input(bev_);
  size_t limit = server_.settings().line_length_limit;
  std::string line;  // one buffer for all lines: no allocation per line
  while (phase_ == Phase::data && !closing_) {
    if (cleanup_ && cleanup_->pending() > kCleanupBacklog) {
      pause_input();
      cleanup_->on_drained([this] { resume_input(); });
      return;
    }
    if (data_lines_in_place(in, limit)) continue;
    struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, nullptr);
    size_t have = evbuffer_get_length(in);
    if (lf.pos < 0 || static_cast<size_t>(lf.pos) > limit) {
      if (lf.pos < 0 && have < limit) return;
      // A line longer than line_length_limit goes out in pieces; never
      // split a CR from its LF.
      size_t n = limit;
      line.resize(n);
      evbuffer_copyout(in, line.data(), n);
      if (line.back() == '\r') line.pop_back();
      evbuffer_drain(in, line.size());
      data_line(line, false, false);
      continue;
    }
    size_t n = static_cast<size_t>(lf.pos);
    line.resize(n);
    evbuffer_remove(in, line.data(), n);
    evbuffer_drain(in, 1);
    bool crlf = !line.empty() && line.back() == '\r';
    if (crlf) line.pop_back();
    data_line(line, crlf, true);
  }
}

// The complete lines at the front of the input's first contiguous piece,
// read where they are and drained together (per line, the input was
// searched, copied out and drained, with libevent's callbacks each time).
// False when there is none: a line that goes on in the next piece or is
// longer than the limit is left to the caller, which copies it out.
bool Session::data_lines_in_place(struct evbuffer* in, size_t limit) {
  evbuffer_iovec piece;
  if (evbuffer_peek(in, -1, nullptr, &piece, 1) < 1 || piece.iov_len == 0) return false;
  const char* base = static_cast<const char*>(piece.iov_base);
  size_t used = 0;
  while (used < piece.iov_len && phase_ == Phase::data && !closing_) {
    const char* lf = static_cast<const char*>(std::memchr(base + used, '\n', piece.iov_len - used));
    if (!lf) break;
    size_t n = static_cast<size_t>(lf - (base + used));
    if (n > limit) break;
    std::string_view line(base + used, n);
    bool crlf = !line.empty() && line.back() == '\r';
    if (crlf) line.remove_suffix(1);
    used += n + 1;
    if (line == ".") {
      // It may end the message: what follows is no longer DATA, and the
      // input is as it would be after this line when the session goes on.
      evbuffer_drain(in, used);
      data_line(".", crlf, true);
      return true;
    }
    data_line(line, crlf, true);
    if (cleanup_ && cleanup_->pending() > kCleanupBacklog) break;
  }
  if (used == 0) return false;
  evbuffer_drain(in, used);
  return true;
}

void Session::data_line(std::string_view line, bool crlf, bool complete) {
  const SmtpdSettings& settings = server_.settings();
  bool legacy = settings.bare_newline == BareNewline::no || bare_newline_exempt_;
  if (complete && !prev_cont_ && line == ".") {
    if (legacy || (crlf && prev_crlf_)) {
      end_of_message("DATA");
      return;
    }
  }
  if (complete && !crlf) {
    saw_bare_lf_ = true;
    if (settings.bare_newline == BareNewline::reject && !bare_newline_exempt_) {
      log::info("disconnect: bare <LF> received from %s after DATA", namaddr_.c_str());
      reply(std::to_string(settings.bare_newline_reject_code) + " 5.5.2 Error: bare <LF> received");
      close_after_output();
      return;
    }
  }
  if (!prev_cont_ && !line.empty() && line[0] == '.') line.remove_prefix(1);
  content_record(line, complete);
  prev_cont_ = !complete;
  if (complete) prev_crlf_ = crlf;
}

void Session::content_record(std::string_view text, bool complete) {
  content_size_ += static_cast<long long>(text.size()) + (complete ? 2 : 0);
  long long limit = server_.settings().message_size_limit;
  if (limit > 0 && content_size_ > limit) size_exceeded_ = true;
  if (size_exceeded_ || !cleanup_) return;
  cleanup_->record(complete ? rec::kNorm : rec::kCont, text);
}

Session::Outcome Session::cmd_bdat(std::string_view args) {
  // BDAT count [LAST]
  size_t space = args.find(' ');
  std::string_view count_text = args.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view() : args.substr(space + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  bool last = false;
  bool bad = count_text.empty() || count_text.size() > 18;
  for (char c : count_text)
    if (c < '0' || c > '9') bad = true;
  if (!rest.empty()) {
    if (rest.size() == 4 && (rest[0] | 0x20) == 'l' && (rest[1] | 0x20) == 'a' && (rest[2] | 0x20) == 's' &&
        (rest[3] | 0x20) == 't')
      last = true;
    else
      bad = true;
  }
  if (bad) {
    // The chunk size is unknown, so what follows cannot be told from
    // commands: the session cannot go on.
    log::warning("%s: malformed BDAT command syntax from %s: BDAT %.100s",
                 facts_.queue_id.empty() ? "NOQUEUE" : facts_.queue_id.c_str(), namaddr_.c_str(),
                 std::string(args).c_str());
    reply("521 5.5.4 Syntax: BDAT count [LAST]");
    close_after_output();
    return Outcome::failed;
  }
  bdat_chunk_ = std::strtoll(std::string(count_text).c_str(), nullptr, 10);
  bdat_remaining_ = bdat_chunk_;
  bdat_last_ = last;
  phase_ = Phase::bdat;
  if (bdat_discard_) {
    tx_fail_reply_ = "551 5.0.0 Discarded " + std::to_string(bdat_chunk_) + " bytes after earlier error";
    return Outcome::pending;
  }
  bool first = !bdat_active_;
  bdat_active_ = true;
  if (!tx_active_ || recipients_.empty()) {
    // The chunk is read and dropped, and so is every chunk up to LAST.
    tx_fail_reply_ = tx_active_ ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
    bdat_discard_ = true;
    return Outcome::pending;
  }
  if (first) {
    facts_.recipient_count = static_cast<int>(recipients_.size());
    if (auto refusal = policy(&Checker::check_data)) {
      tx_fail_reply_ = *refusal;
      bdat_discard_ = true;
      return Outcome::pending;
    }
    begin_content();
    content_size_ = 0;
  }
  return Outcome::pending;
}

void Session::bdat_input() {
  struct evbuffer* in = bufferevent_get_input(bev_);
  while (bdat_remaining_ > 0) {
    if (cleanup_ && cleanup_->pending() > kCleanupBacklog) {
      pause_input();
      cleanup_->on_drained([this] { resume_input(); });
      return;
    }
    size_t have = evbuffer_get_length(in);
    if (have == 0) return;
    size_t n = static_cast<size_t>(std::min<long long>(bdat_remaining_, static_cast<long long>(std::min<size_t>(have, 65536))));
    std::string bytes(n, '\0');
    evbuffer_remove(in, bytes.data(), n);
    bdat_remaining_ -= static_cast<long long>(n);
    if (!bdat_discard_) bdat_content(bytes, false);
  }
  phase_ = Phase::command;
  size_t index = command_index("BDAT");
  if (bdat_discard_) {
    std::string refusal = tx_fail_reply_;
    if (bdat_last_) reset_transaction();
    reply(refusal);
    finish_command(index, Outcome::failed);
    return;
  }
  if (bdat_last_) {
    bdat_content("", true);
    end_of_message("BDAT");
    return;
  }
  reply("250 2.0.0 Ok: " + std::to_string(bdat_chunk_) + " bytes");
  finish_command(index, Outcome::ok);
}

// BDAT content is not dot-stuffed; lines end in LF (a CR before it is
// dropped), and what is left at the end is the last line.
void Session::bdat_content(std::string_view bytes, bool flush) {
  size_t limit = server_.settings().line_length_limit;
  for (char c : bytes) {
    if (c == '\n') {
      if (!bdat_line_.empty() && bdat_line_.back() == '\r') bdat_line_.pop_back();
      content_record(bdat_line_, true);
      bdat_line_.clear();
      continue;
    }
    bdat_line_.push_back(c);
    if (bdat_line_.size() > limit) {
      std::string tail;
      if (bdat_line_.back() == '\r') {
        tail = "\r";
        bdat_line_.pop_back();
      }
      content_record(bdat_line_, false);
      bdat_line_ = tail;
    }
  }
  if (flush && !bdat_line_.empty()) {
    content_record(bdat_line_, true);
    bdat_line_.clear();
  }
}

void Session::end_of_message(std::string_view verb, bool prefetched) {
  size_t index = command_index(verb);
  phase_ = Phase::command;
  if (!prefetched && !size_exceeded_ &&
      prefetch_dns(Stage::end_of_data, facts_, [this, v = std::string(verb)] { end_of_message(v, true); }))
    return;
  if (size_exceeded_) {
    reset_transaction();
    reply("552 5.3.4 Message size exceeds fixed limit");
    finish_command(index, Outcome::failed);
    return;
  }
  if (auto refusal = policy(&Checker::check_end_of_data)) {
    reset_transaction();
    reply(*refusal);
    finish_command(index, Outcome::failed);
    return;
  }
  if (!cleanup_ || !cleanup_->is_open()) {
    reset_transaction();
    reply("451 4.3.0 Error: queue file write error");
    finish_command(index, Outcome::failed);
    return;
  }
  cleanup_->record(rec::kExtracted, "");
  cleanup_->record(rec::kEnd, "");
  phase_ = Phase::waiting;
  bufferevent_disable(bev_, EV_READ);
  std::string v(verb);
  cleanup_->finish([this, v](int status, const std::string& reason) { message_done(status, reason, v); });
}

void Session::message_done(int status, const std::string& reason, std::string verb) {
  size_t index = command_index(verb);
  std::string queue_id = facts_.queue_id;
  phase_ = Phase::command;
  std::string answer;
  if (status == 0) {
    answer = verb == "BDAT" ? "250 2.0.0 Ok: " + std::to_string(content_size_) + " bytes queued as " + queue_id
                            : "250 2.0.0 Ok: queued as " + queue_id;
  } else if (status & cstat::kBad) {
    answer = "451 4.3.0 Error: internal error " + std::to_string(status);
  } else if (status & cstat::kSize) {
    answer = "552 5.3.4 Message size exceeds fixed limit";
  } else if (status & cstat::kHops) {
    answer = "554 5.4.0 Error: too many hops";
  } else if (status & (cstat::kCont | cstat::kDefer | cstat::kNoPerm)) {
    // cleanup's reason is an SMTP reply (Milters) or "X.Y.Z text" (header
    // and body checks), to which Postfix adds the SMTP code of the status.
    bool smtp_reply = reason.size() >= 4 && std::isdigit(static_cast<unsigned char>(reason[0])) &&
                      std::isdigit(static_cast<unsigned char>(reason[1])) &&
                      std::isdigit(static_cast<unsigned char>(reason[2])) && (reason[3] == ' ' || reason[3] == '-');
    if (!reason.empty() && reason[0] >= '2' && reason[0] <= '5' && smtp_reply) answer = reason;
    else if (!reason.empty() && reason[0] >= '2' && reason[0] <= '5' && reason.size() > 1 && reason[1] == '.')
      answer = std::string(status & cstat::kDefer ? "451 " : "550 ") + reason;
    else if (status & cstat::kDefer) answer = "451 4.7.1 " + (reason.empty() ? std::string("Try again later") : reason);
    else answer = "550 5.7.1 " + (reason.empty() ? std::string("Message content rejected") : reason);
  } else if (status & cstat::kWrite) {
    answer = "451 4.3.0 Error: queue file write error";
  } else if (status & cstat::kRcpt) {
    answer = "554 5.5.1 Error: no valid recipients";
  } else {
    answer = "451 4.3.0 Error: internal error " + std::to_string(status);
  }
  reset_transaction();
  if (client_gone_) {
    if (status != 0) log::warning("%s: lost connection before the answer: %s", namaddr_.c_str(), answer.c_str());
    log::info("lost connection after %s from %s", verb == "BDAT" ? "BDAT" : "END-OF-MESSAGE", namaddr_.c_str());
    finish_command(index, status == 0 ? Outcome::ok : Outcome::failed);
    destroy();
    return;
  }
  reply(answer);
  finish_command(index, status == 0 ? Outcome::ok : Outcome::failed);
  bufferevent_enable(bev_, EV_READ);
  process_input();
}

}  // namespace mta::smtpd
