// tls_stream.cpp: see tls_stream.hpp.
#include "tls/tls_stream.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "log/log.hpp"
#include "tls/tls_session.hpp"

namespace mta::tls {

Stream::Stream(int fd) : fd_(fd) { ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK); }

Stream::~Stream() {
  if (ssl_) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

void Stream::wait_for(short events, const char* what) {
  pollfd p{fd_, events, 0};
  long long ms = timeout_ > 0 ? timeout_ * 1000 : -1;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    int left = -1;
    if (ms >= 0) {
      long long spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
      if (spent >= ms) throw IoError(Error::timeout, std::string(what) + ": timeout");
      left = static_cast<int>(ms - spent);
    }
    int n = ::poll(&p, 1, left);
    if (n > 0) return;
    if (n == 0) throw IoError(Error::timeout, std::string(what) + ": timeout");
    if (errno != EINTR) throw IoError(Error::eof, std::string(what) + ": " + std::strerror(errno));
  }
}

size_t Stream::read_some(char* buf, size_t n) {
  if (!out_.empty()) flush();  // commands before their replies
  for (;;) {
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_read(ssl_, buf, static_cast<int>(n));
      if (r > 0) return static_cast<size_t>(r);
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) wait_for(POLLIN, "read");
      else if (e == SSL_ERROR_WANT_WRITE) wait_for(POLLOUT, "read");
      else if (e == SSL_ERROR_ZERO_RETURN) return 0;
      else {
        ERR_clear_error();
        throw IoError(Error::eof, "TLS read error");
      }
      continue;
    }
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r > 0) return static_cast<size_t>(r);
    if (r == 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) wait_for(POLLIN, "read");
    else if (errno != EINTR) throw IoError(Error::eof, std::string("read: ") + std::strerror(errno));
  }
}

bool Stream::read_line(std::string& line, size_t limit) {
  line.clear();
  bool fits = true;
  for (;;) {
    if (in_pos_ >= in_.size()) {
      if (eof_) {
        if (line.empty() && fits) throw IoError(Error::eof, "lost connection");
        break;
      }
      in_.resize(8192);
      in_pos_ = 0;
      size_t n = read_some(in_.data(), in_.size());
      in_.resize(n);
      if (n == 0) eof_ = true;
      continue;
    }
    size_t nl = in_.find('\n', in_pos_);
    size_t end = nl == std::string::npos ? in_.size() : nl;
    size_t take = end - in_pos_;
    if (line.size() + take > limit) {
      take = line.size() < limit ? limit - line.size() : 0;
      fits = false;
    }
    line.append(in_, in_pos_, take);
    in_pos_ = nl == std::string::npos ? in_.size() : nl + 1;
    if (nl != std::string::npos) break;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return fits;
}

void Stream::flush() {
  size_t done = 0;
  while (done < out_.size()) {
    size_t n = out_.size() - done;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_write(ssl_, out_.data() + done, static_cast<int>(n));
      if (r > 0) {
        done += static_cast<size_t>(r);
        continue;
      }
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_WRITE) wait_for(POLLOUT, "write");
      else if (e == SSL_ERROR_WANT_READ) wait_for(POLLIN, "write");
      else {
        ERR_clear_error();
        out_.clear();
        throw IoError(Error::eof, "TLS write error");
      }
      continue;
    }
    ssize_t r = ::send(fd_, out_.data() + done, n, MSG_NOSIGNAL);
    if (r > 0) {
      done += static_cast<size_t>(r);
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_for(POLLOUT, "write");
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      out_.clear();
      throw IoError(Error::eof, std::string("write: ") + std::strerror(errno));
    }
  }
  out_.clear();
}

bool Stream::start_tls(SSL* ssl, std::string_view namaddr) {
  ssl_ = ssl;
  SSL_set_fd(ssl_, fd_);
  in_.clear();
  in_pos_ = 0;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(ssl_);
    if (r == 1) return true;
    int e = SSL_get_error(ssl_, r);
    try {
      if (e == SSL_ERROR_WANT_READ) {
        wait_for(POLLIN, "handshake");
        continue;
      }
      if (e == SSL_ERROR_WANT_WRITE) {
        wait_for(POLLOUT, "handshake");
        continue;
      }
    } catch (const IoError&) {
      log::info("%s", handshake_error_line(namaddr, false, r, ETIMEDOUT).c_str());
      return false;
    }
    int saved = errno;
    log::info("%s", handshake_error_line(namaddr, false, r, saved).c_str());
    log_errors();
    return false;
  }
}

}  // namespace mta::tls
