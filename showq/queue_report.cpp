// queue_report.cpp: the queue walk and per-file report of queue_report.hpp.
#include "showq/queue_report.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <unordered_set>

#include "ipc/attr.hpp"
#include "log/log.hpp"
#include "queue/queue_id.hpp"
#include "queue/record.hpp"

namespace mta::showq {

namespace {

bool is_ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

bool is_822_dot_string(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.back() == '.') return false;
  for (size_t i = 0; i < local.size(); ++i) {
    auto ch = static_cast<unsigned char>(local[i]);
    if (ch == '.' && i + 1 < local.size() && local[i + 1] == '.') return false;
    if (ch == ' ' || ch < 0x20 || ch == 0x7F) return false;
    if (std::strchr("()<>@,;:\\\"[]", ch) != nullptr) return false;
  }
  return true;
}

// Postfix's split_nameval() on a line that starts with a name: blanks
// around the name and the value go; false without a '='.
bool split_name_value(std::string_view line, std::string_view* name, std::string_view* value) {
  size_t end = 0;
  while (end < line.size() && !is_space(line[end]) && line[end] != '=') ++end;
  size_t eq = end;
  while (eq < line.size() && is_space(line[eq])) ++eq;
  if (eq >= line.size() || line[eq] != '=') return false;
  *name = line.substr(0, end);
  std::string_view v = line.substr(eq + 1);
  while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
  *value = v;
  return true;
}

// The attribute names a bounce log entry may carry (bounce_log.c).
bool known_log_attribute(std::string_view name) {
  static constexpr std::string_view kNames[] = {"recipient", "original_recipient", "dsn_orig_rcpt", "notify_flags",
                                                "offset",    "status",             "action",        "diag_type",
                                                "diag_text", "mta_type",           "mta_mname",     "reason"};
  for (std::string_view n : kNames)
    if (n == name) return true;
  return false;
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// The whole file at PATH; false when it cannot be opened (ENOENT: no log).
bool read_small_file(const std::string& path, std::string* out, int* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = errno;
    return false;
  }
  FdCloser closer{fd};
  out->clear();
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = errno;
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string quote_822_local(std::string_view address) {
  size_t start = 0;
  if (!address.empty() && address.front() == '@') {
    size_t colon = address.find(':');
    if (colon != std::string_view::npos) start = colon + 1;
  }
  size_t end = address.rfind('@');
  if (end == std::string_view::npos || end < start) end = address.size();
  std::string_view local = address.substr(start, end - start);
  if (is_822_dot_string(local)) return std::string(address);
  std::string out(address.substr(0, start));
  out += '"';
  for (char c : local) {
    if (c == '"' || c == '\\' || c == '\r') out += '\\';
    out += c;
  }
  out += '"';
  out += address.substr(end);
  return out;
}

std::vector<LogEntry> parse_bounce_log(std::string_view text, std::string_view path, bool utf8,
                                       const std::function<void(const std::string&)>& warn) {
  std::vector<LogEntry> entries;
  LogEntry entry;
  bool found = false;
  auto finish = [&] {
    if (entry.recipient.empty()) entry.recipient = "(recipient address unavailable)";
    if (entry.reason.empty()) entry.reason = "(description unavailable)";
    entries.push_back(std::move(entry));
    entry = LogEntry{};
    found = false;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (raw.empty()) {
      if (found) finish();
      continue;
    }
    // Postfix reads C strings: a NUL ends the line.
    if (size_t nul = raw.find('\0'); nul != std::string_view::npos) raw = raw.substr(0, nul);
    std::string line = ipc::printable(raw, utf8);
    found = true;
    if (!line.empty() && is_ascii_alnum(line[0])) {
      std::string_view name, value;
      if (!split_name_value(line, &name, &value)) {
        warn(std::string(path) + ": malformed record: missing '=' after attribute name");
        continue;
      }
      if (name == "recipient") {
        entry.recipient = value.empty() ? "(MAILER-DAEMON)" : std::string(value);
      } else if (name == "reason") {
        entry.reason = std::string(value);
      } else if (!known_log_attribute(name)) {
        warn(std::string(path) + ": unknown attribute name: " + std::string(name) + ", ignored");
      }
      continue;
    }
    // The old form: "<recipient>: reason".
    if (line.empty() || line[0] != '<') {
      warn(std::string(path) + ": malformed record: " + line.substr(0, 30) + "...");
      continue;
    }
    size_t close = line.find(">: ", 1);
    if (close == std::string::npos) {
      warn(std::string(path) + ": malformed record: " + line.substr(0, 30) + "...");
      continue;
    }
    std::string recipient = line.substr(1, close - 1);
    entry.recipient = recipient.empty() ? "(MAILER-DAEMON)" : recipient;
    size_t why = close + 2;
    while (why < line.size() && is_space(line[why])) ++why;
    entry.reason = line.substr(why);
  }
  // An entry without its closing blank line is incomplete: dropped, as
  // bounce_log_read() does at end of file.
  return entries;
}

bool report_queue_file(int fd, std::string_view queue, std::string_view id, const struct stat& st,
                       const std::string& defer_log, const ReportOptions& options,
                       ipc::proto::ShowqMessage* out) {
  *out = ipc::proto::ShowqMessage{};
  const std::string id_text(id);
  queue::RecordReader reader(fd, std::string(queue) + "/" + id_text);
  queue::Record rec;
  long arrival_time = 0;
  long msg_size = static_cast<long>(st.st_size);
  bool msg_size_ok = false;
  int sender_seen = 0;
  std::unordered_set<std::string> dup_filter;
  bool have_filter = false;
  std::string quoted;

  while (reader.next(rec) == queue::ReadStatus::ok) {
    if (options.verbose) log::debug("record %c %s", rec.type, ipc::printable(rec.data, options.utf8).c_str());
    // Postfix's records are C strings: what follows a NUL is not seen.
    std::string_view start(rec.data.c_str());
    switch (rec.type) {
      case queue::rec::kTime:
        if (arrival_time == 0) arrival_time = std::atol(rec.data.c_str());
        break;
      case queue::rec::kSize:
        if (!msg_size_ok) {
          msg_size_ok = start.find_first_not_of("0123456789 ") == std::string_view::npos &&
                        (msg_size = std::atol(rec.data.c_str())) >= 0;
          if (!msg_size_ok) {
            log::warning("%s: malformed size record: %.100s -- using file size instead", id_text.c_str(),
                         ipc::printable(start, options.utf8).c_str());
            msg_size = static_cast<long>(st.st_size);
          }
        }
        break;
      case queue::rec::kFrom: {
        std::string_view sender = start.empty() ? std::string_view(options.empty_address_recipient) : start;
        quoted = ipc::printable(quote_822_local(sender), options.utf8);
        if (sender_seen++ > 0) {
          log::warning("%s: duplicate sender address: %s -- skipping remainder of this file", id_text.c_str(),
                       quoted.c_str());
          return true;
        }
        out->queue_name = std::string(queue);
        out->queue_id = id_text;
        out->arrival_time = arrival_time > 0 ? arrival_time : static_cast<long>(st.st_mtime);
        out->size = msg_size;
        out->forced_expire = (st.st_mode & S_IXGRP) != 0;
        out->sender = quoted;
        // The defer log's recipients, with their reasons, come first.
        // (A log that cannot be opened is no log, as bounce_log_open.)
        std::string text;
        int error = 0;
        if (read_small_file(defer_log, &text, &error)) {
          have_filter = true;
          auto warn = [](const std::string& w) { log::warning("%s", w.c_str()); };
          for (LogEntry& e : parse_bounce_log(text, defer_log, options.utf8, warn)) {
            if (options.duplicate_filter_limit == 0 ||
                static_cast<long>(dup_filter.size()) < options.duplicate_filter_limit)
              dup_filter.insert(e.recipient);
            out->recipients.push_back({std::move(e.recipient), std::move(e.reason)});
          }
        }
        break;
      }
      case queue::rec::kRcpt: {
        if (sender_seen == 0) {
          log::warning("%s: missing sender address: %s -- skipping remainder of this file", id_text.c_str(),
                       quoted.c_str());
          return false;
        }
        std::string_view rcpt = start.empty() ? std::string_view(options.empty_address_recipient) : start;
        quoted = ipc::printable(quote_822_local(rcpt), options.utf8);
        if (!have_filter || dup_filter.count(quoted) == 0) out->recipients.push_back({quoted, ""});
        break;
      }
      case queue::rec::kMessage:
        if (msg_size_ok) reader.seek(reader.offset() + msg_size);
        break;
      default:
        break;
    }
  }
  return sender_seen > 0;
}

namespace {

// A directory being read, and the one-character subdirectories below it
// (Postfix's scan_dir with push and pop).
class DirScanner {
 public:
  DirScanner(std::string path, bool recursive) : recursive_(recursive) { push(std::move(path)); }
  ~DirScanner() {
    while (!stack_.empty()) pop();
  }
  DirScanner(const DirScanner&) = delete;
  DirScanner& operator=(const DirScanner&) = delete;

  // The next queue file name, or "" at the end.
  std::string next() {
    while (!stack_.empty()) {
      errno = 0;
      const dirent* entry = stack_.back().dir ? ::readdir(stack_.back().dir) : nullptr;
      if (!entry) {
        pop();
        continue;
      }
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      if (recursive_ && name.size() == 1) {
        push(stack_.back().path + "/" + name);
        continue;
      }
      return name;
    }
    return {};
  }

 private:
  struct Level {
    std::string path;
    DIR* dir;
  };
  void push(std::string path) {
    DIR* d = ::opendir(path.c_str());
    if (!d && errno != ENOENT) log::warning("open directory %s: %s", path.c_str(), std::strerror(errno));
    stack_.push_back({std::move(path), d});
  }
  void pop() {
    if (stack_.back().dir) ::closedir(stack_.back().dir);
    stack_.pop_back();
  }

  bool recursive_;
  std::vector<Level> stack_;
};

}  // namespace

void list_queue(const std::string& base, const queue::QueueLayout& layout, const ReportOptions& options,
                const std::function<bool(const ipc::proto::ShowqMessage&)>& emit) {
  struct QueueInfo {
    std::string_view name;
    bool recursive;
  };
  static constexpr QueueInfo kQueues[] = {
      {queue::queue_name::kMaildrop, false}, {queue::queue_name::kActive, true},
      {queue::queue_name::kIncoming, true},  {queue::queue_name::kDeferred, true},
      {queue::queue_name::kHold, true},
  };
  const std::string prefix = base.empty() ? std::string() : base + "/";
  for (const QueueInfo& q : kQueues) {
    DirScanner scan(prefix + std::string(q.name), q.recursive);
    std::string saved_id;
    for (std::string id = scan.next(); !id.empty(); id = scan.next()) {
      if (id == saved_id) {
        log::warning("readdir loop on queue %s id %s", std::string(q.name).c_str(), id.c_str());
        break;
      }
      saved_id = id;
      // mail_open_ok(): the file where its ID says it is, complete.
      if (!queue::is_queue_file_name(id)) continue;
      const std::string relative = layout.relative_path(q.name, id);
      const std::string path = prefix + relative;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) log::warning("%s: %s", relative.c_str(), std::strerror(errno));
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        log::warning("%s: uid %ld: not a regular file", relative.c_str(), static_cast<long>(st.st_uid));
        continue;
      }
      if (!queue::is_ready_queue_file(st.st_mode)) continue;
      if (st.st_nlink > 1) {
        if (options.verbose)
          log::info("%s: uid %ld: file has %d links", relative.c_str(), static_cast<long>(st.st_uid),
                    static_cast<int>(st.st_nlink));
        else if (st.st_ctime < std::time(nullptr) - 60)
          log::warning("%s: uid %ld: file has %d links", relative.c_str(), static_cast<long>(st.st_uid),
                       static_cast<int>(st.st_nlink));
      }
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (errno != ENOENT) log::warning("open %s %s: %s", std::string(q.name).c_str(), id.c_str(), std::strerror(errno));
        continue;
      }
      FdCloser closer{fd};
      ipc::proto::ShowqMessage msg;
      if (report_queue_file(fd, q.name, id, st, prefix + layout.relative_path(queue::queue_name::kDefer, id),
                            options, &msg) &&
          !emit(msg))
        return;
    }
  }
}

}  // namespace mta::showq
