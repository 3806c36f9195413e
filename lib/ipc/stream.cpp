// stream.cpp: buffered descriptor I/O with per-operation timeouts and an
// optional deadline (see stream.hpp).
#include "ipc/stream.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mta::ipc {

const char* to_string(IoState state) {
  switch (state) {
    case IoState::ok: return "ok";
    case IoState::eof: return "end-of-input";
    case IoState::timeout: return "timeout";
    case IoState::error: return "error";
  }
  return "?";
}

Stream::Stream(int fd, std::string name, bool owned) : fd_(fd), owned_(owned), name_(std::move(name)) {
  if (name_.empty()) name_ = "fd " + std::to_string(fd);
}

Stream::~Stream() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Stream::Stream(Stream&& other) noexcept { *this = std::move(other); }

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    owned_ = other.owned_;
    name_ = std::move(other.name_);
    timeout_ = other.timeout_;
    deadline_ = other.deadline_;
    state_ = other.state_;
    errno_ = other.errno_;
    rbuf_ = std::move(other.rbuf_);
    rpos_ = other.rpos_;
    rlen_ = other.rlen_;
    wbuf_ = std::move(other.wbuf_);
    not_socket_ = other.not_socket_;
    other.fd_ = -1;
    other.owned_ = false;
    other.reset();
  }
  return *this;
}

void Stream::reset() {
  rbuf_.clear();
  rpos_ = rlen_ = 0;
  wbuf_.clear();
  state_ = IoState::ok;
  errno_ = 0;
  not_socket_ = false;
}

void Stream::fail(IoState state, int err) {
  if (state_ == IoState::ok) {
    state_ = state;
    errno_ = err;
  }
}

std::string Stream::error_text() const {
  switch (state_) {
    case IoState::ok: return "no error";
    case IoState::eof: return "end-of-input";
    case IoState::timeout: return "timeout";
    case IoState::error: return std::strerror(errno_);
  }
  return "?";
}

// Waits until the descriptor is ready for events, within the timeout and the
// deadline; records a timeout otherwise.
bool Stream::wait_for(short events) {
  for (;;) {
    int wait_ms = -1;
    auto now = Clock::now();
    if (timeout_.count() > 0) wait_ms = static_cast<int>(std::min<Millis::rep>(timeout_.count(), 1 << 30));
    if (deadline_) {
      auto left = std::chrono::duration_cast<Millis>(*deadline_ - now).count();
      if (left < 0) left = 0;
      if (wait_ms < 0 || left < wait_ms) wait_ms = static_cast<int>(std::min<Millis::rep>(left, 1 << 30));
    }
    pollfd pfd{fd_, events, 0};
    int n = ::poll(&pfd, 1, wait_ms);
    if (n > 0) return true;
    if (n == 0) {
      fail(IoState::timeout, ETIMEDOUT);
      return false;
    }
    if (errno != EINTR) {
      fail(IoState::error, errno);
      return false;
    }
  }
}

bool Stream::fill() {
  if (state_ != IoState::ok) return false;
  if (fd_ < 0) {
    fail(IoState::error, EBADF);
    return false;
  }
  if (rbuf_.size() < kBufferSize) rbuf_.resize(kBufferSize);
  for (;;) {
    // A socket is read first and waited for only when it has nothing
    // (one system call instead of two when the peer is ahead); a pipe or
    // file, which may block, is waited for first.
    ssize_t n = -1;
    if (!not_socket_) {
      n = ::recv(fd_, rbuf_.data(), rbuf_.size(), MSG_DONTWAIT);
      if (n < 0 && errno == ENOTSOCK) not_socket_ = true;
    }
    if (not_socket_) {
      if (!wait_for(POLLIN)) return false;
      n = ::read(fd_, rbuf_.data(), rbuf_.size());
    }
    if (n > 0) {
      rpos_ = 0;
      rlen_ = static_cast<size_t>(n);
      // A full buffer means bulk data (a message on its way to cleanup):
      // take more per call from now on.
      if (rlen_ == rbuf_.size() && rbuf_.size() < kMaxBufferSize) rbuf_.resize(rbuf_.size() * 2);
      return true;
    }
    if (n == 0) {
      fail(IoState::eof, 0);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(POLLIN)) return false;
      continue;
    }
    fail(IoState::error, errno);
    return false;
  }
}

int Stream::fill_and_get() {
  if (!fill()) return -1;
  return static_cast<unsigned char>(rbuf_[rpos_++]);
}

int Stream::peek() {
  if (rpos_ < rlen_ || fill()) return static_cast<unsigned char>(rbuf_[rpos_]);
  return -1;
}

int Stream::read_until(char delim, std::string& out, size_t max_len) {
  for (;;) {
    if (rpos_ >= rlen_ && !fill()) return -1;
    const char* start = rbuf_.data() + rpos_;
    size_t avail = rlen_ - rpos_;
    const void* hit = std::memchr(start, delim, avail);
    size_t take = hit ? static_cast<size_t>(static_cast<const char*>(hit) - start) : avail;
    if (out.size() + take > max_len) {
      // Consume what fits so that the caller's view matches the stream.
      size_t room = max_len - std::min(max_len, out.size());
      out.append(start, room);
      rpos_ += room;
      return -2;
    }
    out.append(start, take);
    rpos_ += take;
    if (hit) {
      ++rpos_;
      return static_cast<unsigned char>(delim);
    }
  }
}

bool Stream::readable_now() const {
  if (rpos_ < rlen_) return true;
  if (fd_ < 0) return false;
  pollfd pfd{fd_, POLLIN, 0};
  int n = ::poll(&pfd, 1, 0);
  return n > 0;
}

bool Stream::write(std::string_view data) {
  if (state_ != IoState::ok) return false;
  wbuf_.append(data);
  if (wbuf_.size() >= kBufferSize) return flush();
  return true;
}

bool Stream::flush() {
  if (state_ != IoState::ok) return false;
  if (fd_ < 0) {
    fail(IoState::error, EBADF);
    return false;
  }
  size_t done = 0;
  while (done < wbuf_.size()) {
    const char* p = wbuf_.data() + done;
    size_t len = wbuf_.size() - done;
    ssize_t n = -1;
    if (!not_socket_) {  // as in fill(): wait only when the socket is full
      n = ::send(fd_, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno == ENOTSOCK) not_socket_ = true;
    }
    if (not_socket_) {
      if (!wait_for(POLLOUT)) return false;
      n = ::write(fd_, p, len);
    }
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(POLLOUT)) return false;
      continue;
    }
    fail(IoState::error, n < 0 ? errno : EIO);
    wbuf_.erase(0, done);
    return false;
  }
  wbuf_.clear();
  return true;
}

bool Stream::close() {
  bool ok = true;
  if (fd_ >= 0 && !wbuf_.empty() && state_ == IoState::ok) ok = flush();
  if (owned_ && fd_ >= 0) {
    if (::close(fd_) < 0) ok = false;
  }
  fd_ = -1;
  owned_ = false;
  reset();
  return ok;
}

int Stream::release() {
  int fd = fd_;
  fd_ = -1;
  owned_ = false;
  reset();
  return fd;
}

}  // namespace mta::ipc
