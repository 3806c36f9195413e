// dovecot_server.cpp: smtpd_sasl_type = dovecot.  Connections to
// Dovecot's auth socket belong to the factory (one per smtpd process):
// one for the mechanism list that EHLO asks for, and a pool for AUTH
// requests.  smtpd runs each start()/next() in a worker thread (many
// sessions, one process), so an exchange takes a connection of its own
// from the pool for its whole length (a multi-step mechanism's CONT must go
// where its AUTH went) and gives it back when it ends: two sessions never
// share a connection at the same time, and a slow answer for one does not
// hold up another.  Connections are opened on first use and reopened once
// when lost between requests.  Every connect, read and write is bounded by
// ServerOptions::timeout_seconds.  Reasons for the log follow Postfix's
// xsasl_dovecot_server wording where it has one.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <strings.h>
#include <vector>

#include "log/log.hpp"
#include "sasl/dovecot_protocol.hpp"
#include "sasl/sasl_backends.hpp"

namespace mta::sasl {

namespace {

using Clock = std::chrono::steady_clock;
using dovecot::AuthReply;
using dovecot::Mechanism;

constexpr size_t kMaxLine = 65536;

std::string errno_text(int err) { return std::strerror(err); }

// Waits for fd to become ready for events until deadline; false on timeout
// (errno ETIMEDOUT) or error.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      errno = ETIMEDOUT;
      return false;
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

class Connection {
 public:
  Connection(std::string path, std::string queue_directory, int timeout)
      : path_(std::move(path)), queue_directory_(std::move(queue_directory)), timeout_(timeout) {}
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return fd_ >= 0; }
  const std::vector<Mechanism>& mechanisms() const { return mechs_; }
  unsigned next_id() { return ++last_id_; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
  }

  // Connects and completes the handshake unless already done.
  bool ensure(std::string& error) {
    if (fd_ >= 0 && !peer_closed()) return true;
    close();
    if (!connect_socket(error)) return false;
    if (!handshake(error)) {
      close();
      return false;
    }
    return true;
  }

  bool send(std::string_view data, std::string& error) {
    auto deadline = Clock::now() + std::chrono::seconds(timeout_);
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd_, POLLOUT, deadline))
        continue;
      error = errno_text(errno);
      close();
      return false;
    }
    return true;
  }

  // One line without its LF; false (connection closed) on EOF, timeout or
  // an overlong line, with error saying which.
  bool read_line(std::string& line, std::string& error) {
    auto deadline = Clock::now() + std::chrono::seconds(timeout_);
    while (true) {
      size_t lf = buffer_.find('\n');
      if (lf != std::string::npos) {
        line.assign(buffer_, 0, lf);
        buffer_.erase(0, lf + 1);
        return true;
      }
      if (buffer_.size() > kMaxLine) {
        error = "line too long";
        close();
        return false;
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        error = "connection closed";
        close();
        return false;
      }
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd_, POLLIN, deadline)) continue;
      error = errno == ETIMEDOUT ? "timeout after " + std::to_string(timeout_) + "s" : errno_text(errno);
      close();
      return false;
    }
  }

 private:
  // True when the server has closed an idle connection (EOF pending).
  bool peer_closed() {
    if (!buffer_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }

  bool connect_socket(std::string& error) {
    std::string where = path_;
    auto fail = [&](int err) {
      error = "SASL: Connect to Dovecot auth socket '" + path_ + "' failed: " + errno_text(err);
      if (fd_ >= 0) close();
      return false;
    };
    auto deadline = Clock::now() + std::chrono::seconds(timeout_);
    if (where.starts_with("inet:")) {
      std::string hostport = where.substr(5);
      size_t colon = hostport.rfind(':');
      if (colon == std::string::npos) return fail(EINVAL);
      std::string host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
        error = "SASL: Connect to Dovecot auth socket '" + path_ + "' failed: host or service not found";
        return false;
      }
      std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
      fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd_ < 0) return fail(errno);
      if (::connect(fd_, res->ai_addr, res->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) return fail(errno);
        if (!wait_fd(fd_, POLLOUT, deadline)) return fail(errno);
        int soerr = 0;
        socklen_t len = sizeof soerr;
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0) return fail(soerr);
      }
      return true;
    }
    if (where.starts_with("unix:")) where = where.substr(5);
    if (!where.starts_with("/")) where = queue_directory_ + "/" + where;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (where.size() >= sizeof addr.sun_path) return fail(ENAMETOOLONG);
    std::memcpy(addr.sun_path, where.c_str(), where.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return fail(errno);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (errno != EINPROGRESS && errno != EAGAIN) return fail(errno);
      if (!wait_fd(fd_, POLLOUT, deadline)) return fail(errno);
    }
    return true;
  }

  bool handshake(std::string& error) {
    std::string hello = "VERSION\t" + std::to_string(dovecot::kMajorVersion) + "\t" +
                        std::to_string(dovecot::kMinorVersion) + "\nCPID\t" +
                        std::to_string(::getpid()) + "\n";
    std::string why;
    if (!send(hello, why)) {
      error = "SASL: Couldn't send handshake: " + why;
      return false;
    }
    mechs_.clear();
    bool version_ok = false;
    std::string line;
    while (true) {
      if (!read_line(line, why)) {
        error = "SASL: Dovecot auth socket '" + path_ + "' handshake failed: " + why;
        return false;
      }
      log::debug("auth reply: %s", line.c_str());
      auto fields = dovecot::split_fields(line);
      if (fields[0] == "VERSION") {
        unsigned major = fields.size() > 1 ? static_cast<unsigned>(std::atoi(std::string(fields[1]).c_str())) : 0;
        if (major != dovecot::kMajorVersion) {
          error = "SASL: Protocol version mismatch (" + std::to_string(major) + " vs. " +
                  std::to_string(dovecot::kMajorVersion) + ")";
          return false;
        }
        version_ok = true;
      } else if (fields[0] == "MECH") {
        if (auto mech = dovecot::parse_mech(line)) mechs_.push_back(std::move(*mech));
      } else if (fields[0] == "SPID" && mechs_.empty()) {
        // The auth-master socket says SPID right after VERSION.
        error = "SASL: Connected to wrong auth socket (auth-master instead of auth-client)";
        return false;
      } else if (fields[0] == "DONE") {
        if (!version_ok) {
          error = "SASL: Protocol error: no VERSION from the Dovecot auth server";
          return false;
        }
        return true;
      }
    }
  }

  std::string path_, queue_directory_;
  int timeout_;
  int fd_ = -1;
  std::string buffer_;
  std::vector<Mechanism> mechs_;
  unsigned last_id_ = 0;
};

// The factory's connections (see the top of the file).  primary() is only
// used from the thread that owns the factory (smtpd's event loop); take()
// and give_back() from any thread.
class ConnectionPool {
 public:
  static constexpr size_t kMaxIdle = 8;

  ConnectionPool(std::string path, std::string queue_directory, int timeout)
      : path_(std::move(path)), queue_directory_(std::move(queue_directory)), timeout_(timeout),
        primary_(path_, queue_directory_, timeout_) {}

  Connection& primary() { return primary_; }

  std::unique_ptr<Connection> take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<Connection> conn = std::move(idle_.back());
        idle_.pop_back();
        return conn;
      }
    }
    return std::make_unique<Connection>(path_, queue_directory_, timeout_);
  }

  // A connection that was lost is dropped; so is one more than kMaxIdle.
  void give_back(std::unique_ptr<Connection> conn) {
    if (!conn || !conn->connected()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
  }

 private:
  std::string path_, queue_directory_;
  int timeout_;
  Connection primary_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

class DovecotSession : public ServerSession {
 public:
  DovecotSession(std::shared_ptr<ConnectionPool> pool, const SecurityOptions& security,
                 const SessionParams& params, std::string service)
      : pool_(std::move(pool)), security_(security), params_(params), service_(std::move(service)) {}
  ~DovecotSession() override { release(); }

  // The mechanism list comes from the primary connection.
  std::string mechanisms() override {
    last_error_.clear();
    Connection& primary = pool_->primary();
    if (!primary.ensure(last_error_)) return "";
    std::string list;
    for (const Mechanism& m : primary.mechanisms()) {
      if (dovecot::mechanism_allowed(m, security_)) {
        log::debug("keep mechanism: %s", m.name.c_str());
        if (!list.empty()) list += ' ';
        list += m.name;
      } else {
        log::debug("skip mechanism: %s", m.name.c_str());
      }
    }
    if (list.empty()) last_error_ = "no applicable SASL mechanisms";
    return list;
  }

  Result start(std::string_view mechanism, std::string_view initial, std::string& out) override {
    id_ = 0;
    user_.clear();
    method_.clear();
    last_challenge_.clear();
    out.clear();
    // A new exchange abandons the one in progress (its late answer, if
    // any, carries another id and is skipped).
    release();
    conn_ = pool_->take();
    std::string why;
    if (!conn_->ensure(why)) {
      out = why;
      release();
      return Result::error;
    }
    bool known = false;
    for (const Mechanism& m : conn_->mechanisms()) {
      if (dovecot::mechanism_allowed(m, security_) && m.name.size() == mechanism.size() &&
          strncasecmp(m.name.c_str(), mechanism.data(), mechanism.size()) == 0) {
        known = true;
        method_ = m.name;
      }
    }
    if (!known) {
      out = "Invalid authentication mechanism";
      release();
      return Result::failed;
    }
    dovecot::AuthRequest request;
    request.mechanism = method_;
    request.service = service_;
    request.local_ip = params_.server_addr;
    request.remote_ip = params_.client_addr;
    request.local_port = params_.server_port;
    request.remote_port = params_.client_port;
    request.secured = params_.tls_active;
    if (initial == "=") {
      request.initial_response = "";
    } else if (!initial.empty()) {
      if (!dovecot::is_valid_base64(initial)) {
        out = "Invalid base64 data in initial response";
        release();
        return Result::malformed;
      }
      request.initial_response = std::string(initial);
    }
    // A connection the server dropped since the handshake is retried once.
    for (int attempt = 0; attempt < 2; ++attempt) {
      request.id = conn_->next_id();
      if (conn_->send(dovecot::format_auth(request), why)) break;
      if (attempt == 1 || !conn_->ensure(why)) {
        out = "Connection lost to authentication server";
        release();
        return Result::error;
      }
    }
    id_ = request.id;
    return finish(await_reply(out));
  }

  Result next(std::string_view response, std::string& out) override {
    out.clear();
    if (id_ == 0 || !conn_) {
      out = "no authentication in progress";
      return Result::error;
    }
    if (!dovecot::is_valid_base64(response)) {
      id_ = 0;
      out = "Invalid base64 data in continued response";
      return finish(Result::malformed);
    }
    std::string why;
    if (!conn_->connected() || !conn_->send(dovecot::format_cont(id_, response), why)) {
      id_ = 0;
      out = "Connection lost to authentication server";
      return finish(Result::error);
    }
    return finish(await_reply(out));
  }

  std::string username() override { return user_; }
  std::string method() override { return method_; }
  std::string last_error() override { return last_error_; }

 private:
  // The exchange's connection goes back to the pool when it ends.
  Result finish(Result result) {
    if (result != Result::more) release();
    return result;
  }
  void release() { pool_->give_back(std::move(conn_)); }

  Result await_reply(std::string& out) {
    std::string line, why;
    while (true) {
      if (!conn_->read_line(line, why)) {
        id_ = 0;
        out = "Connection lost to authentication server (" + why + ")";
        return Result::error;
      }
      log::debug("auth reply: %s", line.c_str());
      auto reply = dovecot::parse_reply(line);
      if (!reply || reply->id != id_) continue;  // another (abandoned) request's answer
      switch (reply->kind) {
        case AuthReply::Kind::cont:
          if (!reply->data.empty() && !dovecot::is_valid_base64(reply->data)) {
            id_ = 0;
            out = "SASL: Protocol error: bad base64 challenge from the Dovecot auth server";
            return Result::error;
          }
          out = last_challenge_ = reply->data;
          return Result::more;
        case AuthReply::Kind::ok:
          id_ = 0;
          if (!reply->has_user || reply->user.empty()) {
            out = "missing Dovecot server OK username field";
            return Result::error;
          }
          user_ = reply->user;
          return Result::done;
        case AuthReply::Kind::fail:
          id_ = 0;
          if (reply->has_user) user_ = reply->user;  // the name tried, for the log
          // Without a reason Postfix logs the last challenge (the familiar
          // "SASL LOGIN authentication failed: UGFzc3dvcmQ6"); log tools match it.
          if (reply->temp) {
            out = reply->has_reason ? reply->reason : "Authentication backend error";
            return Result::error;
          }
          out = reply->has_reason ? reply->reason : last_challenge_;
          return Result::failed;
      }
    }
  }

  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> conn_;  // the exchange's, while one is in progress
  SecurityOptions security_;
  SessionParams params_;
  std::string service_;
  unsigned id_ = 0;  // the request in progress, 0 if none
  std::string user_, method_, last_challenge_, last_error_;
};

class DovecotFactory : public ServerFactory {
 public:
  DovecotFactory(const ServerOptions& options, const SecurityOptions& plain, const SecurityOptions& tls)
      : options_(options),
        plain_(plain),
        tls_(tls),
        pool_(std::make_shared<ConnectionPool>(options.path, options.queue_directory, options.timeout_seconds)) {}

  std::unique_ptr<ServerSession> open(const SessionParams& params, std::string&) override {
    log::debug("SASL service=%s, realm=%s", options_.service.c_str(),
               options_.user_realm.empty() ? "(null)" : options_.user_realm.c_str());
    return std::make_unique<DovecotSession>(pool_, params.tls_active ? tls_ : plain_, params,
                                            options_.service);
  }

 private:
  ServerOptions options_;
  SecurityOptions plain_, tls_;
  std::shared_ptr<ConnectionPool> pool_;
};

}  // namespace

std::unique_ptr<ServerFactory> create_dovecot_factory(const ServerOptions& options,
                                                      const SecurityOptions& plain,
                                                      const SecurityOptions& tls, std::string& error) {
  if (options.path.empty()) {
    error = "smtpd_sasl_path is empty: no Dovecot auth socket";
    return nullptr;
  }
  return std::make_unique<DovecotFactory>(options, plain, tls);
}

}  // namespace mta::sasl
