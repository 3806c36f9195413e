// atomic_file.cpp: see atomic_file.hpp.
#include "config/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/config_file.hpp"

namespace mta::config {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
 private:
  int fd_;
};

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw ConfigError(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

void replace_file_atomically(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (fd.get() < 0) fail("open", tmp);
  if (::flock(fd.get(), LOCK_EX) != 0) fail("lock", tmp);
  bool ok = false;
  struct Cleanup {
    const std::string& tmp;
    bool& ok;
    ~Cleanup() { if (!ok) ::unlink(tmp.c_str()); }
  } cleanup{tmp, ok};
  if (::ftruncate(fd.get(), 0) != 0) fail("truncate", tmp);
  struct stat old{};
  if (::stat(path.c_str(), &old) == 0) {
    if (::fchmod(fd.get(), old.st_mode & 07777) != 0) fail("chmod", tmp);
    if (geteuid() == 0 && ::fchown(fd.get(), old.st_uid, old.st_gid) != 0) fail("chown", tmp);
  }
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write", tmp);
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) fail("fsync", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + tmp + " to", path);
  ok = true;
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  Fd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

}  // namespace mta::config
