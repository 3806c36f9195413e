// original_file.cpp: see original_file.hpp.
#include "bounce/original_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bounce/rfc822_text.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

namespace mta::bounce {
namespace {

std::string trim_right(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  return s;
}

}  // namespace

std::unique_ptr<OriginalFile> OriginalFile::open(const queue::QueueLayout& layout, std::string_view queue,
                                                 std::string_view id, bool threaded,
                                                 const std::string& mailer_daemon, long size_limit,
                                                 std::string* error) {
  std::string path = layout.path(queue, id);
  std::string name = layout.relative_path(queue, id);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      *error = "open " + std::string(queue) + " " + std::string(id) + ": " + std::strerror(errno);
      return nullptr;
    }
    return std::unique_ptr<OriginalFile>(new OriginalFile(-1, name));
  }
  std::unique_ptr<OriginalFile> file(new OriginalFile(fd, name));
  // A shared lock, so that a restarted queue manager leaves the file alone.
  while (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    *error = "cannot get shared lock on " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  file->info_ = read(fd, name, threaded, mailer_daemon, size_limit);
  return file;
}

OriginalMessage OriginalFile::read(int fd, const std::string& name, bool threaded,
                                   const std::string& mailer_daemon, long size_limit) {
  OriginalMessage info;
  info.present = true;
  queue::RecordReader in(fd, name);
  queue::Record r;
  long orig_offs = 0;
  char prev_type = 0;
  bool all_headers_seen = false;
  bool skip_message_segment = false;
  bool in_envelope = true;
  while (in.next(r) == queue::ReadStatus::ok) {
    if (r.type == queue::rec::kSize) {
      if (info.message_size == 0) {
        long size = 0, offset = 0;
        std::sscanf(r.data.c_str(), "%ld %ld", &size, &offset);
        info.message_size = size < 0 ? 0 : size;
        orig_offs = offset < 0 ? 0 : offset;
      }
    } else if (r.type == queue::rec::kTime) {
      if (info.arrival_time == 0) info.arrival_time = std::max(0L, std::atol(r.data.c_str()));
    } else if (r.type == queue::rec::kFrom) {
      info.sender = quote_822_local(r.data.empty() ? mailer_daemon : r.data, false);
    } else if (r.type == queue::rec::kMessage) {
      if (info.sender.empty()) log::warning("%s: no sender before message content record", name.c_str());
      orig_offs = static_cast<long>(in.offset());
      if (!threaded)
        skip_message_segment = true;
      else
        in_envelope = false;
    } else if (!in_envelope && (r.type == queue::rec::kNorm || r.type == queue::rec::kCont)) {
      if (!threaded || all_headers_seen || prev_type == queue::rec::kCont) {
        // not useful
      } else if (size_t hlen = header_name_length(r.data); hlen > 0) {
        if (equal_ignore_case(r.data.substr(0, hlen), "message-id")) {
          std::string value = trim_right(r.data);
          size_t cp = hlen + 1;
          while (cp < value.size() && (value[cp] == ' ' || value[cp] == '\t')) ++cp;
          if (cp < value.size() && value[cp] == '<' && value.back() == '>')
            info.message_id = value.substr(cp);
          else
            log::warning("%s: ignoring malformed Message-ID", name.c_str());
        }
      } else if (!r.data.empty() && (r.data.front() == ' ' || r.data.front() == '\t')) {
        // the rest of a multi-line header
      } else {
        all_headers_seen = true;
        skip_message_segment = true;
      }
    } else if (r.type == queue::rec::kExtracted) {
      if (info.message_id.empty() && threaded) all_headers_seen = true;
      in_envelope = true;
    }
    prev_type = r.type;
    if (orig_offs > 0 && info.arrival_time > 0 && !info.sender.empty() &&
        (!threaded || all_headers_seen || !info.message_id.empty()))
      break;
    if (skip_message_segment) {
      in.seek(static_cast<off_t>(orig_offs + info.message_size));
      skip_message_segment = false;
    }
  }
  if (orig_offs <= 0) return info;
  // The content, as records (a long line stays split as it was).
  info.content_found = true;
  in.seek(static_cast<off_t>(orig_offs));
  const bool header_only = size_limit > 0 && (info.message_size <= 0 || info.message_size > size_limit);
  while (in.next(r) == queue::ReadStatus::ok && (r.type == queue::rec::kNorm || r.type == queue::rec::kCont)) {
    if (header_only && !is_header_or_continuation(r.data)) break;
    info.content.push_back({r.type, std::move(r.data)});
  }
  return info;
}

OriginalFile::~OriginalFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool OriginalFile::mark_done(long offset, std::string* error) {
  if (fd_ < 0 || offset <= 0) return true;
  std::string why;
  if (!queue::update_record_type(fd_, static_cast<off_t>(offset), queue::rec::kDone, "RD", &why)) {
    *error = "update queue file " + name_ + ": " + why;
    return false;
  }
  return true;
}

}  // namespace mta::bounce
