// mailbox_file.hpp: opening a mailbox (or /file/name) for exclusive
// appending, as Postfix's mbox_open(3) with safe_open(3), dot_lockfile(3)
// and deliver_flock(3).
//
// The methods of mailbox_delivery_lock: first "path.lock" (dotlock, for a
// regular or missing file; a lock older than stale_lock_time is broken),
// then the file is opened (or created) without following a non-root
// symlink, refusing hard-linked files and directories, and a regular file
// is locked with fcntl(2) and/or flock(2), each tried deliver_lock_attempts times deliver_lock_delay
// apart.  Failures come back as a DSN whose status follows the errno
// (mbox_dsn: a lock we could not get is 4.2.0) and whose reason is
// Postfix's text ("unable to lock for exclusive access: Resource
// temporarily unavailable").
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "deliver/status_reporter.hpp"

namespace mta::deliver {

// mailbox_delivery_lock methods.
inline constexpr int kLockFlock = 1 << 0;
inline constexpr int kLockFcntl = 1 << 1;
inline constexpr int kLockDotlock = 1 << 2;
inline constexpr int kLockDotlockMayFail = 1 << 3;  // file delivery: a dotlock we cannot make only warns

struct LockPolicy {
  int mask = 0;           // kLock* bits
  long long attempts = 20;
  long long delay = 1;    // seconds
  long long stale = 500;  // seconds
};

// Opens PATH the careful way (Postfix's safe_open); a new file gets MODE
// and, unless chown_uid/gid are -1, that owner.  -1 with *why_text set
// ("cannot open file: ...") and errno kept.
int safe_open(const std::string& path, int flags, mode_t mode, struct stat* st, uid_t chown_uid, gid_t chown_gid,
              std::string* why_text);

class LockedMailbox {
 public:
  // nullptr on failure, with *why set (status from mbox_dsn(errno, default_dsn)).
  static std::unique_ptr<LockedMailbox> open(const std::string& path, int flags, mode_t mode, uid_t chown_uid,
                                             gid_t chown_gid, const LockPolicy& policy, const char* default_dsn,
                                             Dsn* why);
  ~LockedMailbox();  // removes the dotlock (the kernel lock goes with the descriptor)
  LockedMailbox(const LockedMailbox&) = delete;
  LockedMailbox& operator=(const LockedMailbox&) = delete;

  // The descriptor, for the copy to take over (it closes it).
  int take_fd();
  const struct stat& stat_info() const { return st_; }
  const std::string& path() const { return path_; }

 private:
  LockedMailbox(std::string path, int fd, const struct stat& st, bool dotlocked)
      : path_(std::move(path)), fd_(fd), st_(st), dotlocked_(dotlocked) {}
  std::string path_;
  int fd_;
  struct stat st_;
  bool dotlocked_;
};

// dot_lockfile(): 0, or -1 with *why_text and errno set.
int dot_lock(const std::string& path, const LockPolicy& policy, std::string* why_text);
void dot_unlock(const std::string& path);

}  // namespace mta::deliver
