// bounce_log.cpp: see bounce_log.hpp.
#include "bounce/bounce_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "bounce/rfc822_text.hpp"
#include "ipc/attr.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

namespace mta::bounce {
namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// RAII descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool lock_exclusive(int fd, const LockPolicy& policy) {
  for (int i = 0;; ++i) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || i + 1 >= policy.attempts) return false;
    std::this_thread::sleep_for(policy.delay);
  }
}

bool starts_alnum(std::string_view s) {
  if (s.empty()) return false;
  char c = s.front();
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

void neuter(ipc::proto::Recipient& r, bool utf8) {
  r.address = ipc::printable(r.address, utf8);
  r.orig_addr = ipc::printable(r.orig_addr, utf8);
  r.dsn_orcpt = ipc::printable(r.dsn_orcpt, utf8);
}

void neuter(ipc::proto::Dsn& d, bool utf8) {
  for (std::string* s : {&d.status, &d.dtype, &d.dtext, &d.mtype, &d.mname, &d.action, &d.reason})
    *s = ipc::printable(*s, utf8);
}

std::string format_log_entry(const ipc::proto::Recipient& rcpt, const ipc::proto::Dsn& dsn, bool old_style_line) {
  std::string out = "\n";
  std::string quoted = rcpt.address.empty() ? std::string() : quote_822_local(rcpt.address);
  if (old_style_line) out += "<" + quoted + ">: " + dsn.reason + "\n";
  out += "recipient=" + (rcpt.address.empty() ? std::string("<>") : quoted) + "\n";
  if (!rcpt.orig_addr.empty() && !equal_ignore_case(rcpt.address, rcpt.orig_addr))
    out += "original_recipient=" + quote_822_local(rcpt.orig_addr) + "\n";
  if (rcpt.offset > 0) out += "offset=" + std::to_string(rcpt.offset) + "\n";
  if (!rcpt.dsn_orcpt.empty()) out += "dsn_orig_rcpt=" + rcpt.dsn_orcpt + "\n";
  if (rcpt.dsn_notify != 0) out += "notify_flags=" + std::to_string(rcpt.dsn_notify) + "\n";
  if (!dsn.status.empty()) out += "status=" + dsn.status + "\n";
  if (!dsn.action.empty()) out += "action=" + dsn.action + "\n";
  if (!dsn.dtype.empty() && !dsn.dtext.empty()) out += "diag_type=" + dsn.dtype + "\ndiag_text=" + dsn.dtext + "\n";
  if (!dsn.mtype.empty() && !dsn.mname.empty()) out += "mta_type=" + dsn.mtype + "\nmta_mname=" + dsn.mname + "\n";
  if (!dsn.reason.empty()) out += "reason=" + dsn.reason + "\n";
  out += "\n";
  return out;
}

bool append_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id, std::string_view text,
                const LockPolicy& lock, std::string* error) {
  std::string where = std::string(log) + " " + std::string(id);
  std::string path = layout.path(log, id);
  queue::QueueLayout::make_parent_dirs(path);
  Fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    *error = errno_text("open file " + where);
    return false;
  }
  if (!lock_exclusive(fd.get(), lock)) {
    *error = errno_text("lock file " + where);
    return false;
  }
  off_t orig_length = ::lseek(fd.get(), 0, SEEK_END);
  if (orig_length < 0) {
    *error = errno_text("seek file " + where);
    return false;
  }
  if (!write_all(fd.get(), text) || ::fsync(fd.get()) != 0) {
    *error = errno_text("append file " + where);
    if (::ftruncate(fd.get(), orig_length) != 0) *error = errno_text("truncate file " + where);
    return false;
  }
  if (::close(fd.release()) != 0) *error = errno_text("append file " + where);  // warning only
  return true;
}

std::vector<LogEntry> parse_log(std::string_view text, std::string_view log_name, std::string_view label, bool utf8,
                                std::vector<std::string>* warnings) {
  std::vector<LogEntry> entries;
  auto warn = [&](const std::string& w) {
    if (warnings) warnings->push_back(w);
  };
  const bool defer = log_name == queue::queue_name::kDefer;
  LogEntry cur;
  bool found = false;
  auto finish = [&] {
    auto& r = cur.rcpt;
    auto& d = cur.dsn;
    if (r.address.empty()) r.address = "(recipient address unavailable)";
    if (d.status.empty()) d.status = defer ? "4.0.0" : "5.0.0";
    if (d.action.empty()) d.action = defer ? "delayed" : "failed";
    if (d.reason.empty()) d.reason = "(description unavailable)";
    entries.push_back(std::move(cur));
    cur = LogEntry{};
    found = false;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    bool terminated = nl != std::string_view::npos;
    std::string_view raw = text.substr(pos, terminated ? nl - pos : std::string_view::npos);
    pos = terminated ? nl + 1 : text.size();
    if (raw.empty()) {
      if (found) finish();
      continue;
    }
    std::string line = ipc::printable(raw, utf8);
    found = true;
    if (starts_alnum(line)) {
      std::string_view name, value;
      if (!queue::split_attribute(line, &name, &value)) {
        warn(std::string(label) + ": malformed record: missing '=' after attribute name");
        continue;
      }
      std::string v(value);
      auto& r = cur.rcpt;
      auto& d = cur.dsn;
      if (name == "recipient") {
        r.address = v.empty() ? "(MAILER-DAEMON)" : v;
      } else if (name == "original_recipient") {
        r.orig_addr = v.empty() ? "(MAILER-DAEMON)" : v;
      } else if (name == "dsn_orig_rcpt") {
        r.dsn_orcpt = v;
      } else if (name == "notify_flags") {
        int n = std::atoi(v.c_str());
        if (n > 0 && notify_mask_ok(n)) r.dsn_notify = n;
      } else if (name == "offset") {
        long n = std::atol(v.c_str());
        if (n > 0) r.offset = n;
      } else if (name == "status") {
        d.status = v;
      } else if (name == "action") {
        d.action = v;
      } else if (name == "diag_type") {
        d.dtype = v;
      } else if (name == "diag_text") {
        d.dtext = v;
      } else if (name == "mta_type") {
        d.mtype = v;
      } else if (name == "mta_mname") {
        d.mname = v;
      } else if (name == "reason") {
        d.reason = v;
      } else {
        warn(std::string(label) + ": unknown attribute name: " + std::string(name) + ", ignored");
      }
      continue;
    }
    // An old-style "<recipient>: text" line.
    size_t end = line.size() > 1 && line.front() == '<' ? line.find(">: ", 1) : std::string::npos;
    if (end == std::string::npos) {
      warn(std::string(label) + ": malformed record: " + line.substr(0, 30) + "...");
      continue;
    }
    std::string rcpt = line.substr(1, end - 1);
    cur.rcpt.address = rcpt.empty() ? "(MAILER-DAEMON)" : rcpt;
    size_t t = end + 2;
    while (t < line.size() && (line[t] == ' ' || line[t] == '\t')) ++t;
    cur.dsn.reason = line.substr(t);
  }
  // An entry without its closing blank line is incomplete: dropped, as Postfix does.
  return entries;
}

LogRead read_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id, bool utf8,
                 std::vector<LogEntry>* entries, std::string* error) {
  std::string path = layout.path(log, id);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return LogRead::missing;
    *error = errno_text("open " + std::string(log) + " " + std::string(id));
    return LogRead::error;
  }
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = errno_text("read " + std::string(log) + " " + std::string(id));
      return LogRead::error;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  std::vector<std::string> warnings;
  *entries = parse_log(text, log, layout.relative_path(log, id), utf8, &warnings);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  return LogRead::ok;
}

bool remove_log(const queue::QueueLayout& layout, std::string_view log, std::string_view id, std::string* error) {
  std::string path = layout.path(log, id);
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return true;
  *error = errno_text("remove " + std::string(log) + " " + std::string(id));
  return false;
}

}  // namespace mta::bounce
