// original_file.hpp: the queue file of the message a notification is
// about, as bounce(8) uses it: read for the facts of the report (sender,
// arrival time, size, content), held with a shared lock so that qmgr leaves
// it alone, and updated to mark recipients done (BOUNCE_FLAG_DELRCPT).
//
// Reading is a best effort, as in Postfix: a missing file or a damaged one
// gives a report with placeholders, never a lost notification.  Only a
// file that exists but cannot be opened or locked is an error (the system
// is in trouble; the client retries later).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "bounce/dsn_report.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::bounce {

class OriginalFile {
 public:
  // Opens QUEUE/ID (read-write, shared lock, without waiting) and reads it.
  // THREADED (enable_threaded_bounces) also looks for the Message-ID;
  // MAILER_DAEMON ("MAILER-DAEMON@$myhostname") stands for the null sender.
  // Of a message larger than SIZE_LIMIT (bounce_size_limit; 0: no limit)
  // only the header is read, as only the header can go back.
  // Null with a message on a real error; a missing file gives an object
  // whose info().present is false.
  static std::unique_ptr<OriginalFile> open(const queue::QueueLayout& layout, std::string_view queue,
                                            std::string_view id, bool threaded, const std::string& mailer_daemon,
                                            long size_limit, std::string* error);
  // The same from an open descriptor (tests).
  static OriginalMessage read(int fd, const std::string& name, bool threaded, const std::string& mailer_daemon,
                              long size_limit = 0);

  ~OriginalFile();
  OriginalFile(const OriginalFile&) = delete;
  OriginalFile& operator=(const OriginalFile&) = delete;

  const OriginalMessage& info() const { return info_; }
  // Marks the R record at OFFSET done ('D'), as deliver_completed().  A
  // recipient already done is left alone; anything else there is an error.
  bool mark_done(long offset, std::string* error);

 private:
  OriginalFile(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  int fd_ = -1;
  std::string name_;
  OriginalMessage info_;
};

}  // namespace mta::bounce
