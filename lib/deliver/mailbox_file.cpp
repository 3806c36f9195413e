// mailbox_file.cpp: see mailbox_file.hpp.
#include "deliver/mailbox_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "log/log.hpp"

namespace mta::deliver {
namespace {

std::string errtext(int err) { return std::strerror(err); }

int fail(std::string* why, std::string text, int err) {
  if (why) *why = std::move(text);
  errno = err;
  return -1;
}

int open_existing(const std::string& path, int flags, struct stat* st, std::string* why) {
  int fd = ::open(path.c_str(), (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return fail(why, "cannot open file: " + errtext(err), err);
  }
  struct stat lst {};
  if (::fstat(fd, st) != 0) log::fatal("%s: bad open file status: %s", path.c_str(), std::strerror(errno));
  std::string problem;
  int err = EPERM;
  if (st->st_nlink != 1) {
    problem = "file has " + std::to_string(st->st_nlink) + " hard links";
  } else if (S_ISDIR(st->st_mode)) {
    problem = "file is a directory";
    err = EISDIR;
  } else if (::lstat(path.c_str(), &lst) != 0) {
    problem = "file status changed unexpectedly: " + errtext(errno);
  } else if (S_ISLNK(lst.st_mode)) {
    if (lst.st_uid == 0) return fd;  // root's symlinks (e.g. /dev/...) are trusted
    problem = "file is a symbolic link";
  } else if (st->st_dev != lst.st_dev || st->st_ino != lst.st_ino || st->st_nlink != lst.st_nlink ||
             st->st_mode != lst.st_mode) {
    problem = "file status changed unexpectedly";
  } else {
    return fd;
  }
  ::close(fd);
  return fail(why, problem, err);
}

int create_new(const std::string& path, int flags, mode_t mode, struct stat* st, uid_t uid, gid_t gid,
               std::string* why) {
  int fd = ::open(path.c_str(), flags | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    int err = errno;
    return fail(why, "cannot create file exclusively: " + errtext(err), err);
  }
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::fchown(fd, uid, gid) != 0)
    log::warning("%s: cannot change file ownership: %s", path.c_str(), std::strerror(errno));
  if (::fstat(fd, st) != 0) log::fatal("%s: bad open file status: %s", path.c_str(), std::strerror(errno));
  return fd;
}

// One kernel lock, tried like deliver_flock().
bool kernel_lock(int fd, bool use_fcntl, const LockPolicy& policy, std::string* why) {
  long long attempts = policy.attempts < 1 ? 1 : policy.attempts;
  for (long long i = 0; i < attempts; ++i) {
    if (i > 0) ::sleep(static_cast<unsigned>(policy.delay));
    int rc;
    if (use_fcntl) {
      struct flock fl {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      rc = ::fcntl(fd, F_SETLK, &fl);
    } else {
      rc = ::flock(fd, LOCK_EX | LOCK_NB);
    }
    if (rc == 0) return true;
    if (errno != EAGAIN && errno != EACCES && errno != EWOULDBLOCK) break;
  }
  int err = errno == EACCES ? EAGAIN : errno;
  if (why) *why = "unable to lock for exclusive access: " + errtext(err);
  errno = err;
  return false;
}

}  // namespace

int safe_open(const std::string& path, int flags, mode_t mode, struct stat* st, uid_t chown_uid, gid_t chown_gid,
              std::string* why) {
  switch (flags & (O_CREAT | O_EXCL)) {
    case 0:
      return open_existing(path, flags, st, why);
    case O_CREAT | O_EXCL:
      return create_new(path, flags, mode, st, chown_uid, chown_gid, why);
    case O_CREAT: {
      int fd = open_existing(path, flags, st, why);
      if (fd < 0 && errno == ENOENT) {
        fd = create_new(path, flags, mode, st, chown_uid, chown_gid, why);
        if (fd < 0 && errno == EEXIST) fd = open_existing(path, flags, st, why);
      }
      return fd;
    }
    default:
      log::panic("safe_open: O_EXCL flag without O_CREAT flag");
  }
}

int dot_lock(const std::string& path, const LockPolicy& policy, std::string* why) {
  const std::string lock_file = path + ".lock";
  long long tries = policy.attempts < 1 ? 1 : policy.attempts;
  for (long long count = 1;; ++count) {
    int fd = ::open(lock_file.c_str(), O_WRONLY | O_EXCL | O_CREAT | O_CLOEXEC, 0);
    if (fd >= 0) {
      ::close(fd);
      return 0;
    }
    if (count >= tries || errno != EEXIST) break;
    struct stat st {};
    if (::stat(lock_file.c_str(), &st) == 0 && std::time(nullptr) > st.st_ctime + policy.stale &&
        ::unlink(lock_file.c_str()) != 0 && errno != ENOENT)
      break;
    ::sleep(static_cast<unsigned>(policy.delay));
  }
  int err = errno;
  if (why) *why = "unable to create lock file " + lock_file + ": " + errtext(err);
  errno = err;
  return -1;
}

void dot_unlock(const std::string& path) {
  int saved = errno;
  (void)::unlink((path + ".lock").c_str());
  errno = saved;
}

std::unique_ptr<LockedMailbox> LockedMailbox::open(const std::string& path, int flags, mode_t mode, uid_t chown_uid,
                                                   gid_t chown_gid, const LockPolicy& policy,
                                                   const char* default_dsn, Dsn* why) {
  struct stat st {};
  std::string text;
  auto failed = [&](int err) {
    if (why) *why = Dsn::simple(mbox_dsn(err, default_dsn), text);
    return nullptr;
  };
  // The dotlock comes first (a file that does not exist yet is locked
  // too); stat() follows symlinks so that /dev/null is never dotlocked.
  bool dotlocked = false;
  if ((policy.mask & kLockDotlock) && (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode))) {
    if (dot_lock(path, policy, &text) == 0) {
      dotlocked = true;
    } else if (errno == EEXIST) {
      return failed(EAGAIN);
    } else if (policy.mask & kLockDotlockMayFail) {
      log::warning("%s", text.c_str());
    } else {
      return failed(errno);
    }
  }
  int fd = safe_open(path, flags | O_NONBLOCK, mode, &st, chown_uid, chown_gid, &text);
  if (fd < 0) {
    int err = errno;
    if (dotlocked) dot_unlock(path);
    return failed(err);
  }
  if (S_ISREG(st.st_mode)) {
    bool ok = ((policy.mask & kLockFlock) == 0 || kernel_lock(fd, false, policy, &text)) &&
              ((policy.mask & kLockFcntl) == 0 || kernel_lock(fd, true, policy, &text));
    if (!ok) {
      int err = errno;
      if (dotlocked) dot_unlock(path);
      ::close(fd);
      return failed(err);
    }
    // Someone (GNU pop3d) may have replaced the file while we waited.
    if (::fstat(fd, &st) != 0 || st.st_nlink != 1) {
      text = "target file status changed unexpectedly";
      log::warning("%s: file status changed unexpectedly", path.c_str());
      if (dotlocked) dot_unlock(path);
      ::close(fd);
      return failed(EAGAIN);
    }
  }
  return std::unique_ptr<LockedMailbox>(new LockedMailbox(path, fd, st, dotlocked));
}

LockedMailbox::~LockedMailbox() {
  if (fd_ >= 0) ::close(fd_);
  if (dotlocked_) dot_unlock(path_);
}

int LockedMailbox::take_fd() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

}  // namespace mta::deliver
