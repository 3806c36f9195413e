// dsn_report.cpp: see dsn_report.hpp.
#include "bounce/dsn_report.hpp"

#include "bounce/rfc822_text.hpp"

namespace mta::bounce {
namespace {

constexpr int kWrapWidth = 79;
constexpr int kWrapIndent = 4;

bool notify_selected(const LogEntry& e, int filter) { return e.rcpt.dsn_notify == 0 || (e.rcpt.dsn_notify & filter); }

}  // namespace

std::optional<std::string> report_mime_encoding(bool smtputf8_enable, const std::string& encoding,
                                                std::string* warning) {
  if (smtputf8_enable) return "8bit";
  if (encoding == "8BITMIME") return "8bit";
  if (encoding == "7BIT") return "7bit";
  if (!encoding.empty() && warning) *warning = "unknown encoding: " + encoding.substr(0, 200);
  return std::nullopt;
}

std::string report_boundary(const std::string& queue_id, std::time_t now, const std::string& myhostname) {
  return queue_id + "." + std::to_string(static_cast<unsigned long>(now)) + "/" + myhostname;
}

void DsnReport::put_wrapped(const std::string& text) {
  for (std::string& line : line_wrap(text, kWrapWidth, kWrapIndent)) put(std::move(line));
}

void DsnReport::header(const std::string& dest, bool postmaster_copy) {
  put("From: " + tmpl_.from);
  put("Subject: " + (tmpl_.postmaster_subject && postmaster_copy ? *tmpl_.postmaster_subject : tmpl_.subject));
  put("To: " + quote_822_local(dest));
  if (!orig_.message_id.empty()) {
    put("References: " + orig_.message_id);
    put("In-Reply-To: " + orig_.message_id);
  }
  put(std::string("Auto-Submitted: ") + (postmaster_copy ? "auto-generated" : "auto-replied"));
  put("MIME-Version: 1.0");
  put("Content-Type: multipart/report; report-type=delivery-status;");
  put("\tboundary=\"" + s_.boundary + "\"");
  if (s_.mime_encoding)
    put("Content-Transfer-Encoding: " + (*s_.mime_encoding == "7bit" ? tmpl_.mime_encoding : *s_.mime_encoding));
  put("");
  put("This is a MIME-encapsulated message.");
  put("");
  put("--" + s_.boundary);
  put("Content-Description: Notification");
  put("Content-Type: text/plain; charset=" +
      (!equal_ignore_case(tmpl_.charset, "us-ascii") ? tmpl_.charset : not_7bit() ? "utf-8" : "us-ascii"));
  if (not_7bit()) put("Content-Transfer-Encoding: " + *s_.mime_encoding);
  put("");
}

void DsnReport::boilerplate(const std::vector<std::string>& expanded_text) {
  for (const std::string& line : expanded_text) put(line);
}

void DsnReport::recipient_log(const LogEntry& e) {
  put("");
  if (!e.rcpt.orig_addr.empty())
    put_wrapped("<" + e.rcpt.address + "> (expanded from <" + e.rcpt.orig_addr + ">): " + e.dsn.reason);
  else
    put_wrapped("<" + e.rcpt.address + ">: " + e.dsn.reason);
}

int DsnReport::diagnostic_log(int notify_filter) {
  if (!log_) {
    // No log: still say something, so that a bounce is not lost.
    if (!is_failure()) return 0;
    put("");
    put("\t--- Delivery report unavailable ---");
    return 1;
  }
  int count = 0;
  for (const LogEntry& e : *log_) {
    if (!notify_selected(e, notify_filter)) continue;
    ++count;
    recipient_log(e);
  }
  return count;
}

void DsnReport::header_dsn() {
  const std::string mail_name = dsn_mail_name(s_.mail_name);
  const bool global = (s_.smtputf8 & kSmtputf8Requested) != 0;
  put("");
  put("--" + s_.boundary);
  put("Content-Description: Delivery report");
  put(std::string("Content-Type: message/") + (global ? "global-" : "") + "delivery-status");
  if (not_7bit() && global) put("Content-Transfer-Encoding: " + *s_.mime_encoding);
  put("");
  put("Reporting-MTA: dns; " + s_.myhostname);
  if (!s_.dsn_envid.empty()) put("Original-Envelope-Id: " + s_.dsn_envid);
  put("X-" + mail_name + "-Queue-ID: " + s_.queue_id);
  if (!orig_.sender.empty())
    put("X-" + mail_name + "-Sender: " + (s_.smtputf8 && is_utf8_non_ascii(orig_.sender) ? "utf-8" : "rfc822") +
        "; " + orig_.sender);
  if (orig_.arrival_time > 0) put("Arrival-Date: " + mail_date(orig_.arrival_time));
}

void DsnReport::recipient_dsn(const LogEntry& e) {
  const auto& r = e.rcpt;
  const auto& d = e.dsn;
  auto type_of = [&](const std::string& a) { return s_.smtputf8 && is_utf8_non_ascii(a) ? "utf-8" : "rfc822"; };
  put("");
  put(std::string("Final-Recipient: ") + type_of(r.address) + "; " + r.address);
  // Postfix always reports an Original-Recipient when it knows one (RFC 3464
  // 6.3.d notwithstanding; see bounce_notify_util.c).
  if (!r.dsn_orcpt.empty())
    put("Original-Recipient: " + r.dsn_orcpt);
  else if (!r.orig_addr.empty())
    put(std::string("Original-Recipient: ") + type_of(r.orig_addr) + "; " + r.orig_addr);
  put("Action: " + (is_failure() ? std::string("failed") : d.action));
  put("Status: " + d.status);
  if (!d.mtype.empty() && !d.mname.empty()) put_wrapped("Remote-MTA: " + d.mtype + "; " + d.mname);
  if (!d.dtype.empty() && !d.dtext.empty())
    put_wrapped("Diagnostic-Code: " + d.dtype + "; " + d.dtext);
  else
    put_wrapped("Diagnostic-Code: X-" + dsn_mail_name(s_.mail_name) + "; " + d.reason);
  if (is_delay()) put("Will-Retry-Until: " + mail_date(orig_.arrival_time + s_.max_queue_time));
}

int DsnReport::diagnostic_dsn(int notify_filter) {
  if (!log_) return is_failure() ? 1 : 0;
  int count = 0;
  for (const LogEntry& e : *log_) {
    if (!notify_selected(e, notify_filter)) continue;
    ++count;
    recipient_dsn(e);
  }
  return count;
}

void DsnReport::original(int ret) {
  bool headers_only = ret == kRetHdrs;
  // A large message goes back as headers only, not cut mid-MIME.
  if (s_.bounce_size_limit > 0 && orig_.present &&
      (orig_.message_size <= 0 || orig_.message_size > s_.bounce_size_limit))
    headers_only = true;
  const bool global = (s_.smtputf8 & kSmtputf8Requested) != 0;
  put("");
  put("--" + s_.boundary);
  put(std::string("Content-Description: ") + (is_failure() || is_delay() ? "Undelivered " : "") +
      (headers_only ? "Message Headers" : "Message"));
  if (global)
    put(std::string("Content-Type: message/") + (headers_only ? "global-headers" : "global"));
  else
    put(std::string("Content-Type: ") + (headers_only ? "text/rfc822-headers" : "message/rfc822"));
  if (not_7bit()) put("Content-Transfer-Encoding: " + *s_.mime_encoding);
  put("");
  if (!orig_.present || !orig_.content_found) {
    // As Postfix: the placeholder, and no closing boundary.
    put("\t--- Undelivered message unavailable ---");
    return;
  }
  // cleanup removes Return-Path; header_checks like to see one.
  put("Return-Path: <" + orig_.sender + ">");
  for (const ContentRecord& r : orig_.content) {
    if (headers_only && !is_header_or_continuation(r.text)) break;
    out_.push_back(r);
  }
  put("");
  put("--" + s_.boundary + "--");
}

Notice compose_notice(const ReportSettings& settings, const Template& tmpl, const std::vector<std::string>* text,
                      const OriginalMessage& original, const std::vector<LogEntry>* log, const std::string& dest,
                      bool postmaster_copy, int notify_filter, int ret) {
  DsnReport report(settings, tmpl, original, log);
  report.header(dest, postmaster_copy);
  if (text) report.boilerplate(*text);
  Notice notice;
  notice.count = report.diagnostic_log(notify_filter);
  if (notice.count <= 0) return notice;
  report.header_dsn();
  if (report.diagnostic_dsn(notify_filter) <= 0) {
    notice.count = 0;
    return notice;
  }
  report.original(ret);
  notice.content = report.take();
  return notice;
}

}  // namespace mta::bounce
