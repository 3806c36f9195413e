// maildrop_file.hpp: reading a file from the maildrop queue, for pickup.
//
// postdrop writes what sendmail hands it, in three segments and without a
// size record:
//
//   T arrival time (postdrop's own), A rewrite_context=local, F full name,
//   S sender, V VERP delimiters, [A notify_flags=N] R recipient ...,
//   M, N/L content records, X, [R recipients for "sendmail -t"], E
//
// and makes it mode 0744 (0644 while written): user-submitted files are
// world-readable so that pickup, which runs as mail_owner, can open them
// and tell them from files that "postsuper -r" moved there (owned by
// mail_owner, not readable by others; those are whole queue files, with a
// size record, original recipients and done marks).
//
// The caller picks the files as pickup does: names that are queue file
// names, and is_ready_queue_file() (a file postdrop is still writing is
// 0644, and must not be mistaken for a broken one).  The reader applies
// pickup's rules: the file is opened without following
// a symbolic link and must be a regular file with one link; records longer
// than line_length_limit are errors; each segment holds only the record
// types Postfix allows there (the queue-file sets, which cover postdrop's);
// pointer records are followed and padding skipped; a sender is required;
// the file must end with E.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "queue/record.hpp"

namespace mta::queue {

enum class Segment { envelope, content, extracted };

struct MaildropInfo {
  struct stat st {};
  std::optional<std::string> sender;  // the first S record
  size_t recipients = 0;              // R records in either segment
};

struct MaildropOptions {
  size_t line_limit = 2048;  // line_length_limit
};

// Calls VISIT for every record but the segment markers (M, X, E), with the
// segment it is in; VISIT returns false to stop (the call then returns true
// with INFO filled in so far).
bool read_maildrop_file(const std::string& path, const MaildropOptions& options,
                        const std::function<bool(Segment, const Record&)>& visit, MaildropInfo* info,
                        std::string* error);

struct MaildropFile {
  MaildropInfo info;
  std::vector<Record> envelope;
  std::vector<Record> content;
  std::vector<Record> extracted;
};
bool load_maildrop_file(const std::string& path, MaildropFile* file, std::string* error,
                        const MaildropOptions& options = {});

// A file that "postsuper -r" requeued: owned by mail_owner and not readable
// by others (pickup then logs the original queue ID and skips Milters).
bool is_requeued_maildrop_file(const struct stat& st, uid_t mail_owner_uid);

}  // namespace mta::queue
