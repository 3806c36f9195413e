// dsn_report.hpp: the content of a delivery status notification, RFC 3464
// style, line for line as Postfix 3.7's bounce daemon writes it
// (bounce_notify_util.c):
//
//   From/Subject/To (from the template), [References/In-Reply-To],
//   Auto-Submitted, MIME-Version, Content-Type: multipart/report;
//   report-type=delivery-status; boundary="QUEUEID.TIME/myhostname"
//   [Content-Transfer-Encoding]
//
//   --boundary  text/plain: the template text, then one paragraph per
//               recipient "<rcpt> (expanded from <orig>): reason", wrapped
//   --boundary  message/delivery-status: Reporting-MTA,
//               [Original-Envelope-Id], X-Postfix-Queue-ID,
//               X-Postfix-Sender, Arrival-Date; then per recipient
//               Final-Recipient, [Original-Recipient], Action, Status,
//               [Remote-MTA], Diagnostic-Code, [Will-Retry-Until]
//   --boundary  the original message (message/rfc822) or its headers
//               (text/rfc822-headers), per RET and bounce_size_limit
//   --boundary--
//
// Only the content is made here: the Received and Date headers that lead
// it, and the envelope, come from post_mail.hpp.  Nothing here does I/O;
// the inputs are the log entries, the facts of the original message and
// the configuration values, so that a test can hold the bytes.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "bounce/bounce_log.hpp"
#include "bounce/bounce_template.hpp"

namespace mta::bounce {

// A line of content as a queue-file record: 'N' a line, 'L' a piece of a
// longer line that the next record continues (kept as the original had it).
struct ContentRecord {
  char type = 'N';
  std::string text;
  bool operator==(const ContentRecord&) const = default;
};

// What the original queue file tells (bounce_mail_alloc).
struct OriginalMessage {
  bool present = false;   // the queue file could be opened
  std::string sender;     // quoted; "MAILER-DAEMON@$myhostname" for the null sender; "" when no S record
  long arrival_time = 0;  // T record seconds; 0 when unknown
  long message_size = 0;  // first field of the size record
  bool content_found = false;            // a message content segment was found
  std::vector<ContentRecord> content;    // its records, up to the extracted segment
  std::string message_id;                // for enable_threaded_bounces, "<...>" or ""
};

// Everything a report needs besides the recipients.
struct ReportSettings {
  std::string queue_id;
  std::string myhostname;
  std::string mail_name = "Postfix";
  std::string boundary;                     // "%s.%lu/%s" of queue ID, time, myhostname
  std::optional<std::string> mime_encoding;  // "7bit", "8bit" or none (no CTE headers)
  int smtputf8 = 0;                         // SMTPUTF8 flags of the original
  std::string dsn_envid;
  long max_queue_time = 0;                  // maximal_queue_lifetime, for Will-Retry-Until
  long bounce_size_limit = 50000;
};

inline constexpr int kSmtputf8Requested = 1 << 0;

// The MIME encoding of a report (bounce_mail_alloc): 8bit with
// smtputf8_enable, else from the original's encoding ("8BITMIME", "7BIT",
// "" for none).  WARNING is set for an unknown encoding.
std::optional<std::string> report_mime_encoding(bool smtputf8_enable, const std::string& encoding,
                                                std::string* warning);

// "QUEUEID.TIME/myhostname".
std::string report_boundary(const std::string& queue_id, std::time_t now, const std::string& myhostname);

// One notification being written.
class DsnReport {
 public:
  DsnReport(const ReportSettings& settings, const Template& tmpl, const OriginalMessage& original,
            const std::vector<LogEntry>* log)
      : s_(settings), tmpl_(tmpl), orig_(original), log_(log) {}

  // bounce_header(): DEST is the envelope recipient of the notice.
  void header(const std::string& dest, bool postmaster_copy);
  // bounce_boilerplate(): the expanded template text.
  void boilerplate(const std::vector<std::string>& expanded_text);
  // bounce_diagnostic_log() / bounce_diagnostic_dsn(): the recipients whose
  // NOTIFY bits meet FILTER (or that have none); returns how many.
  int diagnostic_log(int notify_filter);
  void header_dsn();
  int diagnostic_dsn(int notify_filter);
  // One recipient (bounce_recipient_log, bounce_recipient_dsn).
  void recipient_log(const LogEntry& entry);
  void recipient_dsn(const LogEntry& entry);
  // bounce_original(): RET is kRetFull or kRetHdrs.
  void original(int ret);

  const std::vector<ContentRecord>& records() const { return out_; }
  std::vector<ContentRecord> take() { return std::move(out_); }

 private:
  void put(std::string text) { out_.push_back({'N', std::move(text)}); }
  void put_wrapped(const std::string& text);
  bool is_failure() const { return tmpl_.klass == TemplateClass::failure; }
  bool is_delay() const { return tmpl_.klass == TemplateClass::delay; }
  bool not_7bit() const { return s_.mime_encoding && *s_.mime_encoding != "7bit"; }

  const ReportSettings& s_;
  const Template& tmpl_;
  const OriginalMessage& orig_;
  const std::vector<LogEntry>* log_;  // null: no log file
  std::vector<ContentRecord> out_;
};

// The complete content of one notice, as the services compose it:
// header, [template text], the human-readable recipients, the delivery
// status part, and the original per RET.  COUNT says how many recipients
// it reports; a notice that reports none is not sent.
struct Notice {
  int count = 0;
  std::vector<ContentRecord> content;
};
Notice compose_notice(const ReportSettings& settings, const Template& tmpl, const std::vector<std::string>* text,
                      const OriginalMessage& original, const std::vector<LogEntry>* log, const std::string& dest,
                      bool postmaster_copy, int notify_filter, int ret);

}  // namespace mta::bounce
