// flush_log.cpp: see flush_log.hpp.
#include "flush/flush_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "ipc/flush_proto.hpp"
#include "ipc/mail_proto.hpp"
#include "log/log.hpp"
#include "queue/queue_id.hpp"

namespace mta::flush {

namespace fp = ipc::flush_proto;
namespace qn = queue::queue_name;

namespace {

// How many queue IDs one send remembers to skip duplicates (Postfix's
// FLUSH_DUP_FILTER_SIZE): beyond that, duplicates are touched again.
constexpr size_t kDupFilterSize = 10000;

// A descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // close(2) with its result, for descriptors that were written.
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

bool set_times(const std::string& path, time_t when) {
  timeval tv[2] = {{when, 0}, {when, 0}};
  return ::utimes(path.c_str(), tv) == 0;
}

// The whole log, split into lines (a last line without '\n' counts).
bool read_lines(int fd, std::vector<std::string>& lines) {
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    if (nl == std::string::npos) nl = data.size();
    lines.emplace_back(data, start, nl - start);
    start = nl + 1;
  }
  return true;
}

}  // namespace

std::optional<std::string> site_to_path(std::string_view site) {
  std::string path;
  path.reserve(site.size());
  for (char c : site) {
    auto ch = static_cast<unsigned char>(c);
    if (ch >= 0x80) return std::nullopt;
    path += std::isalnum(ch) ? static_cast<char>(std::tolower(ch)) : '_';
  }
  log::debug("site %.*s to path %s", static_cast<int>(site.size()), site.data(), path.c_str());
  return path;
}

int FlushLogs::add(std::string_view path, std::string_view queue_id) const {
  if (!queue::is_queue_file_name(path)) return fp::kStatBad;
  const std::string file = layout_.path(qn::kFlush, path);
  const std::string name(path);
  Fd fd(::open(file.c_str(), O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) log::fatal("flush_add_path: open fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  if (::flock(fd.get(), LOCK_EX) != 0)
    log::fatal("flush_add_path: lock fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  // With 20 bits of microseconds and the inode in a queue ID, a stale entry
  // that names a new message is too rare to matter (Postfix's reasoning).
  std::string line(queue_id);
  line += '\n';
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    log::warning("write fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  if (::flock(fd.get(), LOCK_UN) != 0)
    log::fatal("flush_add_path: unlock fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  if (!fd.close()) log::warning("write fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  return fp::kStatOk;
}

bool FlushLogs::flush_one_file(std::string_view queue_id, time_t now, bool unthrottle_after) const {
  // Another flush process may have moved it to the incoming queue already.
  std::string_view where = qn::kDeferred;
  std::string path = layout_.path(where, queue_id);
  while (!set_times(path, now)) {
    if (errno != ENOENT)
      log::warning("flush_one_file: update %s time stamps: %s", layout_.relative_path(where, queue_id).c_str(),
                   errno_text().c_str());
    if (where == qn::kIncoming) return false;
    where = qn::kIncoming;
    path = layout_.path(where, queue_id);
  }
  if (unthrottle_after) {
    // fchmod on a descriptor, never chmod on a name that may have changed.
    Fd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd && errno == ENOENT && where == qn::kDeferred) {
      where = qn::kIncoming;
      path = layout_.path(where, queue_id);
      fd.reset(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    }
    if (!fd) {
      if (errno != ENOENT)
        log::warning("flush_one_file: open %s: %s", layout_.relative_path(where, queue_id).c_str(),
                     errno_text().c_str());
      return false;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return false;
    if (!queue::is_ready_queue_file(st.st_mode)) return false;
    if (::fchmod(fd.get(), (st.st_mode & 07777) | queue::kQueueFileUnthrottle) != 0)
      log::warning("flush_one_file: fchmod %s: %s", layout_.relative_path(where, queue_id).c_str(),
                   errno_text().c_str());
  }
  if (where != qn::kIncoming && !layout_.move(queue_id, where, qn::kIncoming) && errno != ENOENT)
    log::warning("%s: rename from %s to %s: %s", layout_.relative_path(where, queue_id).c_str(),
                 std::string(where).c_str(), std::string(qn::kIncoming).c_str(), errno_text().c_str());
  return true;
}

int FlushLogs::send_path(std::string_view path, bool unthrottle_before) const {
  if (!queue::is_queue_file_name(path)) return fp::kStatBad;
  const std::string file = layout_.path(qn::kFlush, path);
  const std::string name(path);
  Fd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno != ENOENT)
      log::fatal("flush_send_path: open fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
    return fp::kStatOk;  // no log: nothing queued for the site
  }
  if (::flock(fd.get(), LOCK_EX) != 0)
    log::fatal("flush_send_path: lock fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  // Unthrottle first, so that qmgr knows before it sees the first file.
  if (unthrottle_before) trigger_(std::string(1, ipc::proto::kQmgrFlushDead));

  std::vector<std::string> lines;
  if (!read_lines(fd.get(), lines))
    log::warning("flush_send_path: read fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  const time_t now = std::time(nullptr);
  std::unordered_set<std::string> seen;
  size_t count = 0;
  for (const std::string& id : lines) {
    ++count;
    if (!queue::is_queue_file_name(id)) {
      log::warning("bad queue id \"%.30s...\" in fast flush logfile %s", id.c_str(), name.c_str());
      continue;
    }
    if (seen.size() >= kDupFilterSize || seen.insert(id).second) {
      log::debug("flush_send_path: logfile %s: update queue file %s time stamps", name.c_str(), id.c_str());
      if (flush_one_file(id, now, false)) ++count;
    } else {
      log::debug("flush_send_path: logfile %s: skip queue file %s as duplicate", name.c_str(), id.c_str());
    }
  }
  if (count > 0 && ::ftruncate(fd.get(), 0) != 0)
    log::fatal("flush_send_path: truncate fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  // The refresh age is the access time, which a noatime mount never sets.
  (void)::futimens(fd.get(), nullptr);
  if (::flock(fd.get(), LOCK_UN) != 0)
    log::fatal("flush_send_path: unlock fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  if (!fd.close())
    log::warning("flush_send_path: read fast flush logfile %s: %s", name.c_str(), errno_text().c_str());
  if (count > 0) {
    log::debug("flush_send_path: requesting delivery for logfile %s", name.c_str());
    trigger_(std::string(1, ipc::proto::kQmgrScanIncoming));
  }
  return fp::kStatOk;
}

int FlushLogs::send_file(std::string_view queue_id) const {
  if (!queue::is_queue_file_name(queue_id)) return fp::kStatBad;
  log::debug("flush_send_file_service: requesting delivery for queue_id %.*s", static_cast<int>(queue_id.size()),
             queue_id.data());
  if (flush_one_file(queue_id, std::time(nullptr), true))
    trigger_(std::string(1, ipc::proto::kQmgrScanIncoming));
  return fp::kStatOk;
}

void FlushLogs::refresh(long long max_age) const {
  std::vector<std::string> names;
  std::string error;
  if (!layout_.scan(qn::kFlush, [&](std::string_view name, const std::string&) { names.emplace_back(name); },
                    &error))
    log::warning("flush_refresh_service: %s", error.c_str());
  const time_t now = std::time(nullptr);
  for (const std::string& name : names) {
    const std::string file = layout_.path(qn::kFlush, name);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      if (errno != ENOENT)
        log::warning("flush_refresh_service: stat %s: %s", layout_.relative_path(qn::kFlush, name).c_str(),
                     errno_text().c_str());
      continue;
    }
    if (st.st_size == 0) {
      if (st.st_mtime + purge_time_ < now) {
        if (::unlink(file.c_str()) != 0)
          log::warning("remove logfile %s: %s", layout_.relative_path(qn::kFlush, name).c_str(),
                       errno_text().c_str());
        else
          log::debug("flush_refresh_service: unlink %s, empty and unchanged for %lld days", name.c_str(),
                     purge_time_ / 86400);
      }
    } else if (st.st_atime + max_age < now) {
      log::debug("flush_refresh_service: flush logfile %s", name.c_str());
      (void)send_path(name, false);
    }
  }
}

}  // namespace mta::flush
