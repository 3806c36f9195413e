// lib/sasl from several threads, as smtpd's SASL worker pool uses it: two
// sessions of one Dovecot factory authenticate at the same time, a slow
// answer for one does not hold up the other, and a multi-step exchange
// keeps its own connection while another session's request comes and goes.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_SASL)

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "sasl/sasl_server.hpp"

using namespace mta::sasl;

namespace {

// A Dovecot auth server with a thread per connection: PLAIN as
// "\0user\0secret" is OK (after 1.5 s for user "slow"); LOGIN asks for the
// user name with a CONT, then says OK for the name it got on the same
// connection (a CONT on another connection is a protocol error: FAIL).
class ThreadedDovecot {
 public:
  explicit ThreadedDovecot(std::string path) : path_(std::move(path)) {
    ::unlink(path_.c_str());
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 8) == 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~ThreadedDovecot() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : workers_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listener_);
    ::unlink(path_.c_str());
  }
  int connections() const { return connections_; }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard<std::mutex> lock(mutex_);
      fds_.push_back(fd);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static std::string decode(const std::string& b64) {
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned bits = 0, value = 0;
    for (char c : b64) {
      size_t i = chars.find(c);
      if (i == std::string::npos) break;
      value = (value << 6) | static_cast<unsigned>(i);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += static_cast<char>((value >> bits) & 0xff);
      }
    }
    return out;
  }

  static void say(int fd, const std::string& text) {
    if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) return;
  }

  void serve(int fd) {
    std::string buffer, login_id;
    say(fd, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t1\nDONE\n");
    for (;;) {
      size_t lf;
      while ((lf = buffer.find('\n')) == std::string::npos) {
        char chunk[512];
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      std::string line = buffer.substr(0, lf);
      buffer.erase(0, lf + 1);
      std::vector<std::string> f;
      for (size_t at = 0;;) {
        size_t tab = line.find('\t', at);
        f.push_back(line.substr(at, tab - at));
        if (tab == std::string::npos) break;
        at = tab + 1;
      }
      if (f[0] == "AUTH" && f.size() > 2 && f[2] == "PLAIN") {
        std::string resp;
        for (const std::string& a : f)
          if (a.starts_with("resp=")) resp = decode(a.substr(5));
        std::string user = resp.substr(1, resp.find('\0', 1) - 1);
        if (user == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        say(fd, "OK\t" + f[1] + "\tuser=" + user + "\n");
      } else if (f[0] == "AUTH" && f.size() > 2 && f[2] == "LOGIN") {
        login_id = f[1];
        say(fd, "CONT\t" + f[1] + "\tVXNlcm5hbWU6\n");
      } else if (f[0] == "CONT" && f.size() > 2) {
        if (f[1] == login_id) say(fd, "OK\t" + f[1] + "\tuser=" + decode(f[2]) + "\n");
        else say(fd, "FAIL\t" + f[1] + "\treason=CONT on the wrong connection\n");
      }
    }
  }

  std::string path_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> workers_;
};

std::string plain(const std::string& user) {
  // "\0" user "\0secret", base64 (the names here are short and fixed).
  if (user == "slow") return "AHNsb3cAc2VjcmV0";
  if (user == "fast") return "AGZhc3QAc2VjcmV0";
  return "AGFsaWNlAHNlY3JldA==";
}

}  // namespace

TEST_CASE("dovecot sessions in several threads: no head-of-line blocking, exchanges keep their connection") {
  std::string path = "/tmp/mta-sasl-threads-" + std::to_string(::getpid());
  ThreadedDovecot server(path);
  ServerOptions o;
  o.type = "dovecot";
  o.path = path;
  o.timeout_seconds = 5;
  std::string error;
  auto factory = ServerFactory::create(o, error);
  REQUIRE(factory);
  SessionParams params{"192.0.2.9", "4000", "192.0.2.1", "25", false, 0};
  auto slow = factory->open(params, error);
  auto fast = factory->open(params, error);
  auto login = factory->open(params, error);
  REQUIRE(slow);
  REQUIRE(fast);
  REQUIRE(login);
  CHECK(slow->mechanisms() == "PLAIN LOGIN");  // the primary connection, in this thread
  using R = ServerSession::Result;
  using Clock = std::chrono::steady_clock;

  auto t0 = Clock::now();
  auto slow_done = std::async(std::launch::async, [&] {
    std::string out;
    R r = slow->start("PLAIN", plain("slow"), out);
    return std::make_pair(r, Clock::now() - t0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // A LOGIN exchange is in progress (its connection is held) while
  // another session authenticates.
  std::string out;
  CHECK(login->start("LOGIN", "", out) == R::more);
  CHECK(out == "VXNlcm5hbWU6");
  CHECK(fast->start("PLAIN", plain("fast"), out) == R::done);
  auto fast_time = Clock::now() - t0;
  CHECK(fast->username() == "fast");
  CHECK(login->next("Ym9i", out) == R::done);  // "bob"
  CHECK(login->username() == "bob");
  auto [slow_result, slow_time] = slow_done.get();
  CHECK(slow_result == R::done);
  CHECK(slow->username() == "slow");
  CHECK(fast_time < std::chrono::milliseconds(1000));
  CHECK(fast_time < slow_time);
  // Finished exchanges give their connection back: one more AUTH in each
  // session opens nothing new.
  int opened = server.connections();
  CHECK(opened <= 4);  // the primary one and at most one per concurrent exchange
  CHECK(fast->start("PLAIN", plain("fast"), out) == R::done);
  CHECK(slow->start("PLAIN", plain("alice"), out) == R::done);
  CHECK(slow->username() == "alice");
  CHECK(server.connections() == opened);
}

#endif  // MTA_HAVE_SASL
