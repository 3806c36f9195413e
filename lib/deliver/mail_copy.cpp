// mail_copy.cpp: see mail_copy.hpp.
#include "deliver/mail_copy.hpp"

#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/record.hpp"

namespace mta::deliver {
namespace {

// RFC 822 dot-string check of Postfix's quote_822_local (8-bit clean).
bool is_dot_string(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.back() == '.') return false;
  for (size_t i = 0; i < local.size(); ++i) {
    auto ch = static_cast<unsigned char>(local[i]);
    if (ch == '.' && i + 1 < local.size() && local[i + 1] == '.') return false;
    if (ch == ' ' || ch < 32 || ch == 127) return false;
    if (std::strchr("()<>@,;:\\\"[]", ch) != nullptr && ch != 0) return false;
  }
  return true;
}

}  // namespace

std::string quote_822_local(std::string_view address) {
  size_t at = address.rfind('@');
  std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
  std::string out;
  if (local.empty() || is_dot_string(local)) {
    out = std::string(local);
  } else {
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\' || c == '\r') out += '\\';
      out += c;
    }
    out += '"';
  }
  if (at != std::string_view::npos) out.append(address.substr(at));
  return out;
}

std::string copy_prolog(const CopyEnvelope& env, int flags) {
  std::string out;
  if (flags & (kCopyFrom | kCopyReturnPath)) {
    std::string quoted = quote_822_local(env.sender);
    if (flags & kCopyFrom) {
      struct tm tm {};
      ::localtime_r(&env.now, &tm);
      char date[64];
      // asctime()'s fixed layout, without its newline.
      static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
      static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
      std::snprintf(date, sizeof date, "%.3s %.3s%3d %.2d:%.2d:%.2d %d", kDays[tm.tm_wday % 7],
                    kMonths[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, 1900 + tm.tm_year);
      out += "From ";
      out += env.sender.empty() ? std::string("MAILER-DAEMON") : quoted;
      out += "  ";
      out += date;
      out += '\n';
    }
    if (flags & kCopyReturnPath) {
      out += "Return-Path: <";
      if (!env.sender.empty()) out += quoted;
      out += ">\n";
    }
  }
  if ((flags & kCopyOrigRcpt) && !env.orig_rcpt.empty()) out += "X-Original-To: " + quote_822_local(env.orig_rcpt) + "\n";
  if (flags & kCopyDelivered) out += "Delivered-To: " + quote_822_local(env.delivered) + "\n";
  return out;
}

void ContentWriter::feed(char type, std::string_view text, std::string& out) {
  if (at_line_start_ && (flags_ & kCopyQuote) && text.substr(0, 5) == "From ") out += '>';
  out.append(text);
  at_line_start_ = type == queue::rec::kNorm;
  if (at_line_start_) out += '\n';
}

void ContentWriter::finish(std::string& out) {
  if (!at_line_start_) out += '\n';
  if (flags_ & kCopyBlank) out += '\n';
  at_line_start_ = true;
}

FileSink::FileSink(int fd, bool regular_file) : fd_(fd), regular_(regular_file) {
  if (regular_) {
    off_t end = ::lseek(fd_, 0, SEEK_END);
    start_ = end < 0 ? 0 : end;
  }
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

bool FileSink::flush_buffer() {
  if (!write_all(buffer_)) return false;
  buffer_.clear();
  return true;
}

bool FileSink::write_all(std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool FileSink::write(std::string_view bytes) {
  if (buffer_.empty() && bytes.size() >= kCopyChunk) return write_all(bytes);  // a bulk: no copy
  buffer_.append(bytes);
  if (buffer_.size() >= kCopyChunk) return flush_buffer();
  return true;
}

bool FileSink::finish() {
  bool ok = flush_buffer();
  int err = errno;
  if (ok && regular_ && ::fsync(fd_) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok && regular_) (void)::ftruncate(fd_, start_);
  if (::close(fd_) != 0 && ok) {
    ok = false;
    err = errno;
  }
  fd_ = -1;
  errno = err;
  return ok;
}

void FileSink::abandon() {
  if (fd_ < 0) return;
  int err = errno;
  buffer_.clear();
  if (regular_) (void)::ftruncate(fd_, start_);
  ::close(fd_);
  fd_ = -1;
  errno = err;
}

namespace {

const char* ioerr_text() { return sys_exits_detail(EX_IOERR)->text; }

}  // namespace

CopyResult mail_copy(int queue_fd, const std::string& queue_path, off_t data_offset, const CopyEnvelope& envelope,
                     int flags, CopySink& sink) {
  CopyResult result;
  std::string out = copy_prolog(envelope, flags);
  out.reserve(kCopyChunk + kCopySlack);  // filled to kCopyChunk without growing
  ContentWriter content(flags);
  queue::RecordReader in(queue_fd, queue_path);
  in.seek(data_offset);
  queue::RecordView rec;  // in place: the content is copied once, into out
  bool write_failed = false, read_failed = false, corrupt = false;
  int write_errno = 0, read_errno = 0;
  for (;;) {
    queue::ReadStatus st = in.next(rec);
    if (st != queue::ReadStatus::ok) {
      // A short or malformed file: Postfix's "bad record type" case.
      log::warning("%s", st == queue::ReadStatus::error ? in.error().c_str()
                                                         : (queue_path + ": unexpected end of queue file").c_str());
      corrupt = true;
      break;
    }
    if (rec.type == queue::rec::kExtracted) break;
    if (rec.type != queue::rec::kNorm && rec.type != queue::rec::kCont) {
      log::warning("bad record type: %d in message content", static_cast<int>(static_cast<unsigned char>(rec.type)));
      corrupt = true;
      break;
    }
    content.feed(rec.type, rec.data, out);
    if (out.size() >= kCopyChunk) {
      if (!sink.write(out)) {
        write_failed = true;
        write_errno = errno;
        break;
      }
      out.clear();
    }
  }
  if (corrupt) {
    // mark_corrupt(): qmgr moves a file with this mode to the corrupt queue.
    if (::fchmod(queue_fd, queue::kQueueFileCorrupt) != 0)
      log::warning("%s: cannot mark corrupt: %s", queue_path.c_str(), std::strerror(errno));
    sink.abandon();
    result.status = kCopyStatCorrupt;
    return result;
  }
  if (!write_failed) {
    content.finish(out);
    if (!sink.write(out)) {
      write_failed = true;
      write_errno = errno;
    }
  }
  if (!write_failed && !read_failed) {
    if (!sink.finish()) {
      write_failed = true;
      write_errno = errno;
    }
  } else {
    sink.abandon();
  }
  if (read_failed) {
    result.status |= kCopyStatRead;
    result.error = read_errno;
    bool again = read_errno == EAGAIN || read_errno == ESTALE;
    result.why = Dsn::unix_diag(again ? "4.3.0" : "5.3.0", ioerr_text(),
                                std::string("error reading message: ") + std::strerror(read_errno));
  }
  if (write_failed) {
    result.status |= kCopyStatWrite;
    result.error = write_errno;
    result.why = Dsn::unix_diag(mbox_dsn(write_errno, "5.3.0"), ioerr_text(),
                                std::string("error writing message: ") + std::strerror(write_errno));
  }
  return result;
}

}  // namespace mta::deliver
