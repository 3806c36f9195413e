// stream.hpp: a buffered byte stream over one file descriptor, with time
// limits, for the internal protocols (Postfix's VSTREAM with timed_ipc).
//
// Every read or write that has to wait for the descriptor waits at most the
// stream's timeout (Postfix's ipc_timeout, 3600s by default) and never past
// the stream's deadline, when one is set (a limit for a whole conversation,
// as Postfix's smtp client uses).  The outcome of I/O is one of: ok, EOF
// (the peer closed), timeout, or a system error; EOF and timeout are told
// apart, so that callers can say "premature end-of-input" or "timeout" as
// Postfix does.  The first failure is sticky until clear_state(): after it
// every read returns -1 and every write fails, so that a protocol reader
// that meets trouble halfway stops there.
//
// Writes are buffered until flush() (or until the buffer is large); they use
// MSG_NOSIGNAL on sockets, so that a peer that went away yields EPIPE
// instead of SIGPIPE.  The descriptor is never switched to non-blocking
// mode (it may be shared, e.g. passed by master): a socket is read and
// written with MSG_DONTWAIT and waited for with poll(2) only when it would
// block; a pipe or file is waited for before each system call.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mta::ipc {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Postfix's ipc_timeout default.
inline constexpr std::chrono::seconds kDefaultIpcTimeout{3600};

enum class IoState { ok, eof, timeout, error };

const char* to_string(IoState state);

class Stream {
 public:
  Stream() = default;
  // Takes the descriptor (closes it on destruction) unless owned is false.
  // name appears in messages, e.g. "private/rewrite socket" (VSTREAM_PATH).
  explicit Stream(int fd, std::string name = {}, bool owned = true);
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Per-operation limit; zero or negative means wait forever.
  void set_timeout(Millis timeout) { timeout_ = timeout; }
  Millis timeout() const { return timeout_; }
  // Absolute limit for all further I/O (until cleared).
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  void clear_deadline() { deadline_.reset(); }
  std::optional<Clock::time_point> deadline() const { return deadline_; }

  // Reading.  get() returns the next byte (0..255), or -1 at EOF, timeout
  // or error (see state()).
  int get() {
    if (rpos_ < rlen_) return static_cast<unsigned char>(rbuf_[rpos_++]);
    return fill_and_get();
  }
  // Appends exactly N bytes to OUT (memcpy from the buffer, refilling it as
  // needed); false at EOF/timeout/error with what came appended.
  bool append_exact(std::string& out, size_t n) {
    while (n > 0) {
      if (rpos_ == rlen_ && !fill()) return false;
      size_t take = std::min(n, rlen_ - rpos_);
      out.append(rbuf_.data() + rpos_, take);
      rpos_ += take;
      n -= take;
    }
    return true;
  }
  // The next byte without consuming it, or -1.
  int peek();
  // Reads up to and including delim; the delimiter is not stored.  Returns
  // the delimiter, or -1 at EOF/timeout/error (partial data stays in out),
  // or -2 when more than max_len bytes come before the delimiter.
  int read_until(char delim, std::string& out, size_t max_len);
  // Bytes already buffered (readable without waiting).
  size_t buffered() const { return rlen_ - rpos_; }
  // True when the peer has sent data or closed, without waiting: how an
  // idle client connection notices that the server went away.
  bool readable_now() const;

  // Writing: buffered until flush().  Both return false on failure.
  bool write(std::string_view data);
  bool put(char c) { return write(std::string_view(&c, 1)); }
  bool flush();
  size_t pending_output() const { return wbuf_.size(); }

  // Descriptor passing over a UNIX-domain stream socket, as Postfix's
  // unix_send_fd()/unix_recv_fd(): one data byte carries the descriptor
  // (SCM_RIGHTS), within the stream's timeout and deadline.  send_fd()
  // flushes pending output first; the descriptor stays the caller's.
  // recv_fd() returns the new descriptor (close-on-exec), or -1 (state()
  // says why; EOF, timeout, or EBADMSG when no descriptor came with the
  // byte).  Bytes already buffered come before the descriptor on the wire,
  // so recv_fd() refuses (EINVAL) while buffered() > 0: the protocols
  // that pass descriptors (scache, tlsproxy) alternate strictly, so the
  // buffer is empty at that point.
  bool send_fd(int fd);
  int recv_fd();

  IoState state() const { return state_; }
  bool failed() const { return state_ != IoState::ok; }
  bool timed_out() const { return state_ == IoState::timeout; }
  int error_number() const { return errno_; }
  // "timeout", "end-of-input", or the system error text.
  std::string error_text() const;
  void clear_state() { state_ = IoState::ok; errno_ = 0; }

  // Closes the descriptor (when owned) after trying to flush; returns
  // false when that flush failed.
  bool close();
  // Gives up ownership without closing; buffered data is discarded.
  int release();

 private:
  int fill_and_get();
  bool fill();
  bool wait_for(short events);
  void fail(IoState state, int err);
  void reset();

  static constexpr size_t kBufferSize = 8192;      // to begin with
  static constexpr size_t kMaxBufferSize = 65536;  // reading bulk data

  int fd_ = -1;
  bool owned_ = false;
  std::string name_;
  Millis timeout_ = kDefaultIpcTimeout;
  std::optional<Clock::time_point> deadline_;
  IoState state_ = IoState::ok;
  int errno_ = 0;
  std::string rbuf_;
  size_t rpos_ = 0;
  size_t rlen_ = 0;
  std::string wbuf_;
  bool not_socket_ = false;  // a pipe or file: wait before each read or write
};

// A deadline for the calls made while it lives (the earlier of it and any
// deadline already set); the previous deadline comes back afterwards.
//   { ipc::DeadlineGuard limit(ch.stream(), 30s); st = ch.request(req, rep); }
class DeadlineGuard {
 public:
  DeadlineGuard(Stream& stream, Millis budget) : stream_(stream), saved_(stream.deadline()) {
    auto until = Clock::now() + budget;
    if (!saved_ || until < *saved_) stream_.set_deadline(until);
  }
  ~DeadlineGuard() {
    if (saved_)
      stream_.set_deadline(*saved_);
    else
      stream_.clear_deadline();
  }
  DeadlineGuard(const DeadlineGuard&) = delete;
  DeadlineGuard& operator=(const DeadlineGuard&) = delete;

 private:
  Stream& stream_;
  std::optional<Clock::time_point> saved_;
};

}  // namespace mta::ipc
