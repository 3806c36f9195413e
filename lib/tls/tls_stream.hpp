// tls_stream.hpp: the client side's byte stream: a connected socket that
// may be switched to TLS (STARTTLS), with Postfix's per-operation
// deadlines (smtp_timeout_setup: every read or write must make progress
// within the current timeout) and line reading with a length bound.
//
// Blocking semantics over a non-blocking socket and poll(2), so that
// OpenSSL's handshake, reads and writes all honour the same deadline.  An
// I/O failure throws IoError: kind eof (the peer closed or reset the
// connection, or a TLS record error) or timeout.  Written data is buffered
// until flush() or the next read, so that pipelined commands leave in one
// packet, as Postfix's vstreams do.
//
// start_tls() runs the client handshake and logs Postfix's lines on
// failure ("SSL_connect error to host[addr]:port: -1" and the "TLS library
// problem" warnings); SessionInfo (tls_session.hpp) then describes the
// session for the "... TLS connection established to ..." line.
#pragma once

#include <openssl/ssl.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace mta::tls {

class Stream {
 public:
  enum class Error { eof, timeout };
  struct IoError : std::runtime_error {
    Error kind;
    IoError(Error k, const std::string& what) : std::runtime_error(what), kind(k) {}
  };

  explicit Stream(int fd);  // takes ownership of the connected socket
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }
  void set_timeout(long long seconds) { timeout_ = seconds; }

  // One line without its CR LF.  Bytes past LIMIT are read and discarded;
  // returns false when that happened (the line was too long).  A last line
  // without a newline before the end of the connection is returned as is.
  bool read_line(std::string& line, size_t limit);
  void write(std::string_view data) { out_.append(data); }
  void flush();
  // Bytes written but not flushed.
  size_t pending() const { return out_.size(); }

  // The TLS handshake on the connection, with SSL (which the stream then
  // owns).  False after logging why when it fails; the stream must not be
  // used for further I/O then.
  bool start_tls(SSL* ssl, std::string_view namaddr);

 private:
  // One read of at most N bytes into BUF; 0 at the end of the stream.
  size_t read_some(char* buf, size_t n);
  void wait_for(short events, const char* what);

  int fd_;
  SSL* ssl_ = nullptr;
  long long timeout_ = 300;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  bool eof_ = false;
};

}  // namespace mta::tls
