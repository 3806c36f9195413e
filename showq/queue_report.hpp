// queue_report.hpp: what showq(8) reports about the mail queue, as Postfix
// 3.7's showq does, independent of the connection it is sent over.
//
// The queues are walked in Postfix's order: maildrop (flat), then active,
// incoming, deferred and hold (descending into one-character hash
// directories), each in readdir order, so that a listing of the same
// directories is the same listing.  A file is reported only when it is a
// regular file whose owner bits are rwx (Postfix's mail_open_ok, looked up at
// the place where its queue ID says it belongs); files still being written
// are skipped.
//
// For each file: the arrival time (T record, else the file's mtime), the
// message size (first field of the C record, else the file size), whether it
// was force-expired (group execute bit), the sender (the null sender is
// empty_address_recipient) and the pending recipients (R records), addresses
// quoted as RFC 822 local parts and made printable.  When the message has a
// defer log, its recipients come first, each with the reason delivery was
// deferred, and are not listed again from the queue file (a duplicate filter
// of up to duplicate_filter_limit addresses, as Postfix).
//
// Paths are relative to the current directory (the daemon runs inside the
// queue directory, possibly chrooted there) unless a base directory is given.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/mail_proto.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::showq {

// Postfix's quote_822_local(): the local part of ADDRESS (after any source
// route, before the last '@') in double quotes, with '"', '\' and CR
// escaped, unless it is an RFC 822 dot-string (8-bit bytes are allowed in
// one).  The domain is left alone.
std::string quote_822_local(std::string_view address);

// One entry of a defer or bounce log, as Postfix's bounce_log_read() reads
// it: the recipient and the reason.  Both new-style ("name=value" lines) and
// old-style ("<recipient>: reason") entries; entries end at a blank line; an
// entry that the file ends in the middle of is dropped.  Lines are made
// printable first.  WARN receives Postfix's warnings about malformed lines.
struct LogEntry {
  std::string recipient;
  std::string reason;
};
std::vector<LogEntry> parse_bounce_log(std::string_view text, std::string_view path, bool utf8,
                                       const std::function<void(const std::string&)>& warn);

struct ReportOptions {
  std::string empty_address_recipient = "MAILER-DAEMON";
  long duplicate_filter_limit = 1000;  // 0: no limit
  bool utf8 = true;                    // smtputf8_enable: printable() keeps valid UTF-8
  bool verbose = false;                // log each record read
};

// The report for one queue file that is open on FD; false when there is
// nothing to report (no sender before the first recipient).  QUEUE and ID
// name it; ST is its lstat; DEFER_LOG is the path of its defer log.
bool report_queue_file(int fd, std::string_view queue, std::string_view id, const struct stat& st,
                       const std::string& defer_log, const ReportOptions& options,
                       ipc::proto::ShowqMessage* out);

// Walks the queues and calls EMIT for every message to report, in Postfix's
// order; EMIT returns false to stop (the client went away).  BASE is the
// queue directory ("" when it is the current directory); LAYOUT gives the
// hash levels.
void list_queue(const std::string& base, const queue::QueueLayout& layout, const ReportOptions& options,
                const std::function<bool(const ipc::proto::ShowqMessage&)>& emit);

}  // namespace mta::showq
