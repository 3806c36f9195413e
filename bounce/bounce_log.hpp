// bounce_log.hpp: the per-message delivery status logs in
// $queue_directory/bounce, defer and trace, in Postfix 3.7's file format,
// so that the real Postfix (showq, bounce, qmgr) reads ours and we read
// theirs.
//
// A log is a sequence of entries, one per recipient status, each framed by
// blank lines.  Postfix 3.7 writes (bounce_append_service.c):
//
//   <empty line>
//   <user@example.com>: reason text           only with
//                                             backwards_bounce_logfile_compatibility
//   recipient=user@example.com                quoted local part; "<>" for the
//                                             null address
//   original_recipient=Alias@example.com      when set and different (ignoring case)
//   offset=449                                of the R record, when > 0
//   dsn_orig_rcpt=rfc822;user@example.com     when set
//   notify_flags=12                           DSN NOTIFY bits, when not 0
//   status=4.4.1                              when set
//   action=delayed                            when set
//   diag_type=smtp / diag_text=550 ...        both or neither
//   mta_type=dns / mta_mname=mx.example.com   both or neither
//   reason=try again later                    when set
//   <empty line>
//
// Every value is made printable first (control bytes, and bytes that are
// not UTF-8 where smtputf8_enable allows it, become '?').  Appends are
// atomic for readers: the file is opened with O_APPEND, locked exclusively
// (flock, deliver_lock_attempts tries deliver_lock_delay apart), written,
// fsync'd, and cut back to its old length when anything fails.
//
// The reader accepts the old "<rcpt>: text" entries, the new name=value
// entries, and mixtures, as Postfix's bounce_log_read() does, and fills in
// the same placeholders for missing fields (status 4.0.0/delayed for defer
// logs, 5.0.0/failed otherwise; "(recipient address unavailable)",
// "(description unavailable)").  An entry is complete only when a blank
// line ends it (a log cut short loses its last, partial entry).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/mail_proto.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::bounce {

// DSN NOTIFY bits (dsn_mask.h) and RET values.
inline constexpr int kNotifyNever = 1 << 0;
inline constexpr int kNotifySuccess = 1 << 1;
inline constexpr int kNotifyFailure = 1 << 2;
inline constexpr int kNotifyDelay = 1 << 3;
inline constexpr int kNotifyAny = kNotifySuccess | kNotifyFailure | kNotifyDelay;
inline constexpr int kNotifyOverride = kNotifyAny | kNotifyNever;  // report every recipient
inline constexpr int kRetFull = 1;
inline constexpr int kRetHdrs = 2;
// A NOTIFY mask that a queue file or log may hold (DSN_NOTIFY_OK).
inline bool notify_mask_ok(int v) { return v == kNotifyNever || (v != 0 && v == (v & kNotifyAny)); }

struct LogEntry {
  ipc::proto::Recipient rcpt;  // address as logged (quoted local part)
  ipc::proto::Dsn dsn;
};

// Makes every field printable, as bounce(8) does with a request before
// acting on it.
void neuter(ipc::proto::Recipient& rcpt, bool utf8);
void neuter(ipc::proto::Dsn& dsn, bool utf8);

// The text of one entry (see above); fields must already be printable.
std::string format_log_entry(const ipc::proto::Recipient& rcpt, const ipc::proto::Dsn& dsn,
                             bool old_style_line);

struct LockPolicy {
  int attempts = 20;                           // deliver_lock_attempts
  std::chrono::milliseconds delay{1000};       // deliver_lock_delay
};

// Appends TEXT to the log LOG (bounce, defer or trace) of queue ID ID,
// creating it (mode 0600) and missing hash directories.  False with
// Postfix's words ("open file defer 5EEA9A72754: ...") on failure; the
// file is then as it was.
bool append_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id,
                std::string_view text, const LockPolicy& lock, std::string* error);

// Parses a whole log.  LOG_NAME chooses the compatibility status ("defer"
// or another), LABEL names the file in warnings.  Malformed lines are
// skipped with a warning in WARNINGS (Postfix's text).
std::vector<LogEntry> parse_log(std::string_view text, std::string_view log_name, std::string_view label,
                                bool utf8, std::vector<std::string>* warnings = nullptr);

enum class LogRead { ok, missing, error };
// Reads and parses the log; missing when there is none.
LogRead read_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id, bool utf8,
                 std::vector<LogEntry>* entries, std::string* error);

// Removes the log; a missing log is not an error.
bool remove_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id, std::string* error);

}  // namespace mta::bounce
