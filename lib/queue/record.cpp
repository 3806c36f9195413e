// record.cpp: see record.hpp.
#include "queue/record.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace mta::queue {
namespace {

// Reads start small and double while they go on where the last one ended,
// up to kReadChunk: qmgr reads only the envelope at the start of a queue
// file and jumps past the content (it read 64 KB of a 100 KB message for
// under 1 KB of envelope), a delivery agent reads the content through.
constexpr size_t kFirstChunk = 4 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kWriteChunk = 64 * 1024;
constexpr int kReverseJumpLimit = 10000;
// Postfix decodes lengths into an int: five length bytes at most.
constexpr unsigned kMaxLengthShift = 32;

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}


struct TypeName {
  int type;
  std::string_view name;
};

// Postfix 3.7's rec_type_names, in its order (REC_TYPE_FILT shares 'L' with
// REC_TYPE_CONT and comes first, so 'L' prints as content_filter).
constexpr TypeName kTypeNames[] = {
    {-1, "end-of-file"},
    {-2, "error"},
    {rec::kSize, "message_size"},
    {rec::kTime, "message_arrival_time"},
    {rec::kCreateTime, "queue_file_create_time"},
    {rec::kFullName, "sender_fullname"},
    {rec::kInspector, "content_inspector"},
    {rec::kFilter, "content_filter"},
    {rec::kFrom, "sender"},
    {rec::kDone, "done_recipient"},
    {rec::kCanceled, "canceled_recipient"},
    {rec::kRcpt, "recipient"},
    {rec::kOrigRcpt, "original_recipient"},
    {rec::kWarn, "warning_message_time"},
    {rec::kAttr, "named_attribute"},
    {rec::kPointer, "pointer_record"},
    {rec::kKill, "killed_record"},
    {rec::kMessage, "message_content"},
    {rec::kCont, "unterminated_text"},
    {rec::kNorm, "regular_text"},
    {rec::kPadding, "padding"},
    {rec::kExtracted, "extracted_info"},
    {rec::kReturnReceipt, "return_receipt"},
    {rec::kErrorsTo, "errors_to"},
    {rec::kPriority, "priority"},
    {rec::kVerp, "verp_delimiters"},
    {rec::kEnd, "message_end"},
    {rec::kRedirect, "redirect_to"},
    {rec::kFlags, "flags"},
    {rec::kDsnRet, "dsn_return_flags"},
    {rec::kDsnEnvid, "dsn_envelope_id"},
    {rec::kDsnOrcpt, "dsn_original_recipient"},
    {rec::kDsnNotify, "dsn_notify_flags"},
};

}  // namespace

char attribute_record_type(std::string_view name) {
  if (name == attr::kDsnOrcpt) return rec::kDsnOrcpt;
  if (name == attr::kDsnNotify) return rec::kDsnNotify;
  if (name == attr::kDsnEnvid) return rec::kDsnEnvid;
  if (name == attr::kDsnRet) return rec::kDsnRet;
  if (name == attr::kCreateTime) return rec::kCreateTime;
  return 0;
}

std::string_view record_type_name(int type) {
  for (const TypeName& t : kTypeNames)
    if (t.type == type) return t.name;
  return "unknown_record_type";
}

std::string format_size_record(const SizeRecord& s) {
  char buf[6 * 21];
  std::snprintf(buf, sizeof buf, "%15ld %15ld %15ld %15ld %15ld %15ld", s.message_size, s.data_offset,
                s.rcpt_count, s.qmgr_flags, s.content_length, s.smtputf8);
  return buf;
}

std::optional<SizeRecord> parse_size_record(std::string_view text) {
  long values[6] = {};
  int n = 0;
  std::string_view rest = trim(text);
  while (!rest.empty()) {
    if (n == 6) return std::nullopt;
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    auto v = parse_number(rest.substr(0, end));
    if (!v) return std::nullopt;
    values[n++] = *v;
    rest = trim(rest.substr(end));
  }
  if (n == 0) return std::nullopt;
  SizeRecord s;
  s.message_size = values[0];
  s.data_offset = values[1];
  s.rcpt_count = values[2];
  s.qmgr_flags = values[3];
  s.content_length = values[4];
  s.smtputf8 = values[5];
  s.fields = n;
  return s;
}

std::string format_time_record(const timeval& tv) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%ld %ld", static_cast<long>(tv.tv_sec), static_cast<long>(tv.tv_usec));
  return buf;
}

std::optional<timeval> parse_time_record(std::string_view text) {
  std::string_view t = trim(text);
  size_t blank = 0;
  while (blank < t.size() && !is_space(t[blank])) ++blank;
  auto sec = parse_number(t.substr(0, blank));
  if (!sec || *sec < 0) return std::nullopt;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(*sec);
  std::string_view rest = trim(t.substr(blank));
  if (!rest.empty()) {
    auto usec = parse_number(rest);
    if (!usec || *usec < 0 || *usec > 999999) return std::nullopt;
    tv.tv_usec = static_cast<suseconds_t>(*usec);
  }
  return tv;
}

std::string format_fixed_number(long value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%15ld", value);
  return buf;
}

std::optional<long> parse_number(std::string_view text) {
  std::string_view t = trim(text);
  bool negative = false;
  if (!t.empty() && (t.front() == '-' || t.front() == '+')) {
    negative = t.front() == '-';
    t.remove_prefix(1);
  }
  if (t.empty()) return std::nullopt;
  long value = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    if (value > (LONG_MAX - (c - '0')) / 10) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

bool split_attribute(std::string_view text, std::string_view* name, std::string_view* value) {
  std::string_view t = text;
  while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
  size_t end = 0;
  while (end < t.size() && !is_space(t[end]) && t[end] != '=') ++end;
  if (end == 0) return false;
  size_t eq = end;
  while (eq < t.size() && is_space(t[eq])) ++eq;
  if (eq == t.size() || t[eq] != '=') return false;
  *name = t.substr(0, end);
  *value = trim(t.substr(eq + 1));
  return true;
}

size_t record_header_size(size_t payload_size) {
  size_t n = 2;
  while (payload_size >>= 7) ++n;
  return n;
}

void append_record(std::string& out, char type, std::string_view payload) {
  char head[1 + 10];  // the type and up to 10 length bytes (64 bits, 7 per byte)
  size_t n = 0;
  head[n++] = type;
  size_t len = payload.size();
  do {
    unsigned char byte = static_cast<unsigned char>(len & 0x7f);
    len >>= 7;
    if (len != 0) byte |= 0x80;
    head[n++] = static_cast<char>(byte);
  } while (len != 0);
  out.append(head, n);
  out.append(payload);
}

std::string encode_record(char type, std::string_view payload) {
  std::string out;
  out.reserve(record_header_size(payload.size()) + payload.size());
  append_record(out, type, payload);
  return out;
}

// ---------------------------------------------------------------- reading

RecordReader::RecordReader(int fd, std::string name, Options options)
    : fd_(fd), name_(std::move(name)), options_(options) {}

RecordReader RecordReader::from_buffer(std::string data, std::string name, Options options) {
  RecordReader r;
  r.name_ = std::move(name);
  r.options_ = options;
  r.buf_ = std::move(data);
  r.buf_len_ = r.buf_.size();
  r.memory_ = true;
  return r;
}

bool RecordReader::fill(off_t pos) {
  if (pos < 0) return false;
  if (pos >= buf_start_ && pos < buf_start_ + static_cast<off_t>(buf_len_)) return true;
  if (memory_) return false;
  // The buffer only grows (resizing it each time zero-filled 64 KB per
  // read); buf_len_ says how much of it is the file's.
  bool sequential = buf_len_ > 0 && pos == buf_start_ + static_cast<off_t>(buf_len_);
  chunk_ = sequential ? std::min(chunk_ * 2, kReadChunk) : kFirstChunk;
  if (buf_.size() < chunk_) buf_.resize(chunk_);
  for (;;) {
    ssize_t n = ::pread(fd_, buf_.data(), chunk_, pos);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error_ = name_ + ": read: " + std::strerror(errno);
      buf_len_ = 0;
      return false;
    }
    buf_len_ = static_cast<size_t>(n);
    buf_start_ = pos;
    return n > 0;
  }
}

int RecordReader::getc() {
  if (!fill(pos_)) return -1;
  unsigned char c = static_cast<unsigned char>(buf_[static_cast<size_t>(pos_ - buf_start_)]);
  ++pos_;
  return c;
}

ReadStatus RecordReader::fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);  // a read error says it better
  return ReadStatus::error;
}

bool RecordReader::follow_pointer(std::string_view payload) {
  auto target = parse_number(payload);
  if (!target || *target < 0) {
    fail(name_ + ": malformed pointer record value: " + std::string(payload));
    return false;
  }
  if (*target == 0) return true;  // a dummy pointer: read on
  if (*target <= last_jump_ && ++reverse_jumps_ > kReverseJumpLimit) {
    fail(name_ + ": too many reverse jump records");
    return false;
  }
  last_jump_ = *target;
  pos_ = static_cast<off_t>(*target);
  return true;
}

ReadStatus RecordReader::next(Record& record) {
  RecordView view;
  ReadStatus st = next(view);
  if (st == ReadStatus::ok) {
    record.type = view.type;
    record.offset = view.offset;
    record.data.assign(view.data);
  }
  return st;
}

// The usual case, a whole record (header and data) in the read buffer,
// parsed there; false leaves everything else (a record across reads, a bad
// length, the end) to the byte-at-a-time path of next().
bool RecordReader::next_in_buffer(RecordView& record) {
  if (pos_ < buf_start_ || pos_ >= buf_start_ + static_cast<off_t>(buf_len_)) return false;
  size_t at = static_cast<size_t>(pos_ - buf_start_);
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data()) + at;
  size_t avail = buf_len_ - at;
  unsigned long long len = 0;
  size_t i = 1;
  for (unsigned shift = 0;; shift += 7) {
    if (i >= avail || shift >= kMaxLengthShift) return false;
    unsigned char byte = p[i++];
    len |= static_cast<unsigned long long>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (len > INT_MAX || (options_.max_length > 0 && len > options_.max_length) || len > avail - i) return false;
  record.type = static_cast<char>(p[0]);
  record.offset = pos_;
  record.data = std::string_view(reinterpret_cast<const char*>(p + i), static_cast<size_t>(len));
  pos_ += static_cast<off_t>(i + len);
  return true;
}

ReadStatus RecordReader::next(RecordView& record) {
  error_.clear();
  for (;;) {
    if (!next_in_buffer(record)) {
      off_t start = pos_;
      int type = getc();
      if (type < 0) return error_.empty() ? ReadStatus::eof : ReadStatus::error;
      unsigned long long len = 0;
      for (unsigned shift = 0;; shift += 7) {
        if (shift >= kMaxLengthShift)
          return fail(name_ + ": too many length bits, record type " + std::to_string(type));
        int byte = getc();
        if (byte < 0)
          return fail(name_ + ": unexpected EOF reading length, record type " + std::to_string(type));
        len |= static_cast<unsigned long long>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) break;
      }
      if (len > INT_MAX || (options_.max_length > 0 && len > options_.max_length))
        return fail(name_ + ": illegal length " + std::to_string(len) + ", record type " +
                    std::to_string(type));
      record.type = static_cast<char>(type);
      record.offset = start;
      size_t want = static_cast<size_t>(len);
      if (want == 0 || (fill(pos_) && buf_len_ - static_cast<size_t>(pos_ - buf_start_) >= want)) {
        // All of it in the buffer after all (the header was not).
        record.data = std::string_view(buf_.data() + (want == 0 ? 0 : pos_ - buf_start_), want);
        pos_ += static_cast<off_t>(want);
      } else {
        // Copied a chunk at a time, so that a bogus length costs no more
        // memory than the file has bytes.
        spill_.clear();
        while (spill_.size() < want) {
          if (!fill(pos_))
            return fail(name_ + ": unexpected EOF in data, record type " + std::to_string(type) +
                        " length " + std::to_string(len));
          size_t at = static_cast<size_t>(pos_ - buf_start_);
          size_t n = std::min(want - spill_.size(), buf_len_ - at);
          spill_.append(buf_, at, n);
          pos_ += static_cast<off_t>(n);
        }
        record.data = spill_;
      }
    }
    if (record.type == rec::kPointer && options_.follow_pointers) {
      if (!follow_pointer(record.data)) return ReadStatus::error;
      continue;
    }
    if (record.type == rec::kPadding && options_.skip_padding) continue;
    return ReadStatus::ok;
  }
}

// ---------------------------------------------------------------- writing

bool pwrite_all(int fd, const void* data, size_t size, off_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

off_t RecordWriter::put(char type, std::string_view payload) {
  off_t at = offset();
  append_record(pending_, type, payload);
  if (pending_.size() >= kWriteChunk) flush();
  return at;
}

bool RecordWriter::flush() {
  if (!pending_.empty() && error_.empty()) {
    if (!pwrite_all(fd_, pending_.data(), pending_.size(), offset_))
      error_ = std::string("write: ") + std::strerror(errno);
  }
  offset_ += static_cast<off_t>(pending_.size());
  pending_.clear();
  return error_.empty();
}

// ---------------------------------------------------------------- in place

namespace {

bool read_exact(int fd, void* buf, size_t size, off_t offset) {
  char* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

std::string io_error(const char* what, off_t offset) {
  std::string text = std::string(what) + " at offset " + std::to_string(offset);
  return errno ? text + ": " + std::strerror(errno) : text + ": unexpected end of file";
}

}  // namespace

bool update_record_type(int fd, off_t offset, char new_type, std::string_view expected,
                        std::string* error) {
  char current = 0;
  if (!read_exact(fd, &current, 1, offset)) {
    if (error) *error = io_error("read", offset);
    return false;
  }
  if (!expected.empty() && expected.find(current) == std::string_view::npos) {
    if (error)
      *error = "record at offset " + std::to_string(offset) + " has type " +
               std::to_string(static_cast<unsigned char>(current)) + ", not one of \"" +
               std::string(expected) + "\"";
    return false;
  }
  if (!pwrite_all(fd, &new_type, 1, offset)) {
    if (error) *error = io_error("write", offset);
    return false;
  }
  return true;
}

bool update_record_payload(int fd, off_t offset, char type, std::string_view payload,
                           std::string* error) {
  unsigned char header[8] = {};
  size_t header_size = record_header_size(payload.size());
  if (header_size > sizeof header) {
    if (error) *error = "record payload too long: " + std::to_string(payload.size()) + " bytes";
    return false;
  }
  if (!read_exact(fd, header, header_size, offset)) {
    if (error) *error = io_error("read", offset);
    return false;
  }
  std::string want = encode_record(type, payload).substr(0, header_size);
  if (std::memcmp(header, want.data(), header_size) != 0) {
    if (error)
      *error = "record at offset " + std::to_string(offset) + " is not a " + std::to_string(payload.size()) +
               "-byte record of type " + std::to_string(static_cast<unsigned char>(type));
    return false;
  }
  if (!pwrite_all(fd, payload.data(), payload.size(), offset + static_cast<off_t>(header_size))) {
    if (error) *error = io_error("write", offset);
    return false;
  }
  return true;
}

}  // namespace mta::queue
