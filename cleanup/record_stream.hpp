// record_stream.hpp: reading Postfix records from a pipe or a socket (the
// cleanup protocol, postdrop's input), as Postfix's rec_get_raw.
//
// A record is a type byte, the length in base 128 (low seven bits first),
// then the data.  End of input before a type byte is a clean end; anything
// cut short, a length of more than 32 bits, or one above MAX_LENGTH (when
// not 0) is an error with Postfix's message ("NAME: illegal length 5000,
// record type 78").  SOURCE is anything with int get() returning a byte or
// -1 at the end (ipc::Stream, FdSource below).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace mta::message {

enum class RecordStatus { ok, eof, error };

template <typename Source>
RecordStatus read_record(Source& in, const std::string& name, size_t max_length, char* type, std::string* data,
                         std::string* error) {
  data->clear();
  int t = in.get();
  if (t < 0) return RecordStatus::eof;
  *type = static_cast<char>(t);
  size_t len = 0;
  for (int shift = 0;; shift += 7) {
    if (shift >= 32) {
      *error = name + ": too many length bits, record type " + std::to_string(t);
      return RecordStatus::error;
    }
    int b = in.get();
    if (b < 0) {
      *error = name + ": unexpected EOF reading length, record type " + std::to_string(t);
      return RecordStatus::error;
    }
    len |= static_cast<size_t>(b & 0177) << shift;
    if ((b & 0200) == 0) break;
  }
  if (max_length > 0 && len > max_length) {
    *error = name + ": illegal length " + std::to_string(len) + ", record type " + std::to_string(t);
    while (len-- > 0 && in.get() >= 0) {
    }
    return RecordStatus::error;
  }
  data->reserve(len);
  if (!in.append_exact(*data, len)) {
    *error = name + ": unexpected EOF in data, record type " + std::to_string(t) + " length " + std::to_string(len);
    return RecordStatus::error;
  }
  return RecordStatus::ok;
}

// A buffered reader on a plain descriptor (a pipe).
class FdSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  int get() {
    if (pos_ == len_) {
      ssize_t n;
      do n = ::read(fd_, buf_, sizeof buf_);
      while (n < 0 && errno == EINTR);
      if (n <= 0) {
        if (n < 0) error_ = errno;
        return -1;
      }
      pos_ = 0;
      len_ = static_cast<size_t>(n);
    }
    return static_cast<unsigned char>(buf_[pos_++]);
  }
  // Appends exactly N bytes to OUT; false at the end or an error.
  bool append_exact(std::string& out, size_t n) {
    while (n > 0) {
      if (pos_ == len_) {
        if (get() < 0) return false;
        --pos_;
      }
      size_t take = std::min(n, len_ - pos_);
      out.append(buf_ + pos_, take);
      pos_ += take;
      n -= take;
    }
    return true;
  }
  int error() const { return error_; }

 private:
  int fd_;
  char buf_[65536];
  size_t pos_ = 0, len_ = 0;
  int error_ = 0;
};

}  // namespace mta::message
