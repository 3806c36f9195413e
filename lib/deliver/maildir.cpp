// maildir.cpp: see maildir.hpp.
#include "deliver/maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "deliver/user_privileges.hpp"
#include "log/log.hpp"

namespace mta::deliver {
namespace {

std::string host_name() {
  char buf[256];
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  buf[sizeof buf - 1] = 0;
  return buf;
}

int open_new(const std::string& path) { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); }

// Makes the new/ name of the written tmp/ file, and makes it last: the
// link, then an fsync of new/.  0, or an errno value with *why set.
int publish(const std::string& tmpfile, const std::string& newfile, const std::string& newdir,
            const std::string& curdir, const char* default_dsn, Dsn* why) {
  int rc = ::link(tmpfile.c_str(), newfile.c_str());
  if (rc != 0 && errno == ENOENT) {
    (void)make_dirs(curdir, 0700);
    if (make_dirs(newdir, 0700) == 0) rc = ::link(tmpfile.c_str(), newfile.c_str());
  }
  if (rc != 0) {
    int err = errno;
    *why = Dsn::simple(mbox_dsn(err, default_dsn), "create maildir file " + newfile + ": " + std::strerror(err));
    return err;
  }
  int dfd = ::open(newdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int err = 0;
  if (::fsync(dfd) != 0 && errno != EINVAL) {
    err = errno;
    *why = Dsn::simple(mbox_dsn(err, "4.3.0"), "sync maildir directory " + newdir + ": " + std::strerror(err));
    if (why->status[0] == '5') why->status = "4.3.0";
    (void)::unlink(newfile.c_str());
  }
  ::close(dfd);
  return err;
}

}  // namespace

bool LimitedFileSink::write(std::string_view bytes) {
  written_ += static_cast<long long>(bytes.size());
  if (limit_ > 0 && start_offset() + written_ > limit_) {
    errno = EFBIG;
    return false;
  }
  return FileSink::write(bytes);
}

int make_dirs(const std::string& path, mode_t mode) {
  std::string cur;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i + 1);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    i = j;
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return -1;
    struct stat st {};
    if (::stat(cur.c_str(), &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      return -1;
    }
  }
  return 0;
}

CopyResult deliver_maildir_file(const MaildirTarget& target, const QueuedContent& message, CopyEnvelope envelope) {
  timeval start{};
  ::gettimeofday(&start, nullptr);
  envelope.now = start.tv_sec;
  const std::string& path = target.path;
  const std::string newdir = path + "new/", tmpdir = path + "tmp/", curdir = path + "cur/";
  const std::string host = host_name();

  CopyResult copy;
  copy.status = kCopyStatWrite;
  int err = 0;
  set_eugid(target.uid, target.gid);
  // Postfix's tmp/ name is unique among live processes (our pid); a
  // leftover of a crashed delivery under the same name does not fail the
  // delivery: the name then gets a counter.
  const std::string tmpbase = tmpdir + std::to_string(start.tv_sec) + ".P" + std::to_string(::getpid());
  std::string tmpfile = tmpbase + "." + host;
  int fd = -1;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt > 0) tmpfile = tmpbase + "Q" + std::to_string(attempt) + "." + host;
    fd = open_new(tmpfile);
    if (fd < 0 && errno == ENOENT && make_dirs(tmpdir, 0700) == 0) fd = open_new(tmpfile);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) {
    err = errno;
    copy.why = Dsn::simple(mbox_dsn(err, target.default_dsn), "create maildir file " + tmpfile + ": " + std::strerror(err));
  } else {
    struct stat st {};
    if (::fstat(fd, &st) != 0) log::fatal("fstat %s: %s", tmpfile.c_str(), std::strerror(errno));
    char unique[128];
    std::snprintf(unique, sizeof unique, "%lu.V%lxI%lxM%lu.", static_cast<unsigned long>(start.tv_sec),
                  static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino),
                  static_cast<unsigned long>(start.tv_usec));
    const std::string newfile = newdir + unique + host;
    LimitedFileSink sink(fd, true, target.size_limit);
    copy = mail_copy(message.fd, message.path, message.data_offset, envelope, target.copy_flags, sink);
    err = copy.error;
    if (copy.status == 0) {
      if (int e = publish(tmpfile, newfile, newdir, curdir, target.default_dsn, &copy.why); e != 0) {
        err = e;
        copy.status = kCopyStatWrite;
      }
    }
    if (::unlink(tmpfile.c_str()) != 0) log::warning("remove %s: %s", tmpfile.c_str(), std::strerror(errno));
  }
  set_eugid(resting_uid(), resting_gid());

  if (copy.status != 0 && (copy.status & kCopyStatCorrupt) == 0) {
    // The maildir location is the administrator's (or the user's) doing:
    // say what would help.
    if (err == EACCES) {
      log::warning("maildir access problem for UID/GID=%lu/%lu: %s", static_cast<unsigned long>(target.uid),
                   static_cast<unsigned long>(target.gid), copy.why.reason.c_str());
      log::warning("perhaps you need to create the maildirs in advance");
    }
    copy.why.reason = "maildir delivery failed: " + copy.why.reason;
  }
  copy.error = err;
  return copy;
}

}  // namespace mta::deliver
