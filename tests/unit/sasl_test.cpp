// lib/sasl: the pure parts: security option lists, Dovecot's auth protocol
// lines (escaping, MECH flags against the options, requests, replies),
// base64 validation and the choice of back end.  The exchanges with real
// peers are in tests/integration/sasl_server.sh.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_SASL)

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "sasl/dovecot_protocol.hpp"
#include "sasl/sasl_server.hpp"
#include "sasl/security_options.hpp"

using namespace mta::sasl;
namespace dc = mta::sasl::dovecot;

TEST_CASE("security options: names, separators, case, errors") {
  SecurityOptions o;
  std::string error;
  REQUIRE(parse_security_options("noplaintext, noanonymous", "smtpd_sasl_security_options", o, error));
  CHECK(o.noplaintext);
  CHECK(o.noanonymous);
  CHECK_FALSE(o.noactive);
  REQUIRE(parse_security_options(" NoActive\tnodictionary,,mutual_auth forward_secrecy ", "x", o, error));
  CHECK(o.noactive);
  CHECK(o.nodictionary);
  CHECK(o.mutual_auth);
  CHECK(o.forward_secrecy);
  CHECK_FALSE(o.noanonymous);  // every parse starts afresh
  REQUIRE(parse_security_options("", "x", o, error));
  CHECK_FALSE(o.noplaintext);
  CHECK_FALSE(parse_security_options("noanonymous, bogus", "smtpd_sasl_security_options", o, error));
  CHECK(error == "unknown smtpd_sasl_security_options value \"bogus\" in \"noanonymous, bogus\"");
}

TEST_CASE("dovecot: tab escaping round-trips") {
  std::string raw = std::string("a\tb\nc\rd") + '\001' + "e";
  std::string escaped = dc::tab_escape(raw);
  CHECK(escaped == std::string("a\001tb\001nc\001rd\0011e"));
  CHECK(escaped.find('\t') == std::string::npos);
  CHECK(dc::tab_unescape(escaped) == raw);
  CHECK(dc::tab_unescape("plain") == "plain");
}

TEST_CASE("dovecot: MECH lines and the security options") {
  auto plain = dc::parse_mech("MECH\tPLAIN\tplaintext");
  REQUIRE(plain);
  CHECK(plain->name == "PLAIN");
  CHECK(plain->plaintext);
  auto anon = dc::parse_mech("MECH\tANONYMOUS\tanonymous");
  auto cram = dc::parse_mech("MECH\tCRAM-MD5\tdictionary\tactive");
  auto gss = dc::parse_mech("MECH\tGSSAPI\tmutual-auth\tforward-secrecy\tnewflag");
  auto priv = dc::parse_mech("MECH\tOAUTH\tprivate");
  REQUIRE(anon);
  REQUIRE(cram);
  REQUIRE(gss);
  REQUIRE(priv);
  CHECK_FALSE(dc::parse_mech("SPID\t12"));
  CHECK_FALSE(dc::parse_mech("MECH"));

  SecurityOptions none;
  CHECK(dc::mechanism_allowed(*plain, none));
  CHECK(dc::mechanism_allowed(*anon, none));
  CHECK_FALSE(dc::mechanism_allowed(*priv, none));  // never advertised

  SecurityOptions o;
  o.noplaintext = true;
  o.noanonymous = true;
  CHECK_FALSE(dc::mechanism_allowed(*plain, o));
  CHECK_FALSE(dc::mechanism_allowed(*anon, o));
  CHECK(dc::mechanism_allowed(*cram, o));
  o.nodictionary = true;
  CHECK_FALSE(dc::mechanism_allowed(*cram, o));

  SecurityOptions strong;
  strong.mutual_auth = true;
  strong.forward_secrecy = true;
  CHECK(dc::mechanism_allowed(*gss, strong));
  CHECK_FALSE(dc::mechanism_allowed(*cram, strong));
  SecurityOptions active;
  active.noactive = true;
  CHECK_FALSE(dc::mechanism_allowed(*cram, active));
  CHECK(dc::mechanism_allowed(*plain, active));
}

TEST_CASE("dovecot: base64 validation") {
  CHECK(dc::is_valid_base64(""));
  CHECK(dc::is_valid_base64("AGFsaWNlAHNlY3JldA=="));
  CHECK(dc::is_valid_base64("YWxpY2U="));
  CHECK(dc::is_valid_base64("YWJj"));
  CHECK_FALSE(dc::is_valid_base64("YWJ"));
  CHECK_FALSE(dc::is_valid_base64("!!!!"));
  CHECK_FALSE(dc::is_valid_base64("YQ=a"));
  CHECK_FALSE(dc::is_valid_base64("Y==="));
  CHECK_FALSE(dc::is_valid_base64("YWJj\tx"));
}

TEST_CASE("dovecot: AUTH and CONT requests") {
  dc::AuthRequest r;
  r.id = 7;
  r.mechanism = "PLAIN";
  r.service = "smtp";
  r.local_ip = "192.0.2.1";
  r.remote_ip = "2001:db8::1";
  r.local_port = "25";
  r.remote_port = "51234";
  CHECK(dc::format_auth(r) ==
        "AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=2001:db8::1\tlport=25\trport=51234\n");
  r.secured = true;
  r.initial_response = "AGFsaWNlAHNlY3JldA==";
  r.local_port.clear();
  r.remote_port.clear();
  CHECK(dc::format_auth(r) ==
        "AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=2001:db8::1\tsecured"
        "\tresp=AGFsaWNlAHNlY3JldA==\n");
  r.initial_response = "";
  CHECK(dc::format_auth(r).ends_with("\tsecured\tresp=\n"));
  CHECK(dc::format_cont(7, "YWxpY2U=") == "CONT\t7\tYWxpY2U=\n");
}

TEST_CASE("dovecot: OK, CONT and FAIL replies") {
  auto ok = dc::parse_reply("OK\t3\tuser=alice\tother=x");
  REQUIRE(ok);
  CHECK(ok->kind == dc::AuthReply::Kind::ok);
  CHECK(ok->id == 3);
  CHECK(ok->has_user);
  CHECK(ok->user == "alice");

  auto cont = dc::parse_reply("CONT\t4\tVXNlcm5hbWU6");
  REQUIRE(cont);
  CHECK(cont->kind == dc::AuthReply::Kind::cont);
  CHECK(cont->data == "VXNlcm5hbWU6");
  auto empty = dc::parse_reply("CONT\t4\t");
  REQUIRE(empty);
  CHECK(empty->data.empty());

  auto fail = dc::parse_reply("FAIL\t5\tuser=bob\treason=Account\001tlocked\ttemp");
  REQUIRE(fail);
  CHECK(fail->kind == dc::AuthReply::Kind::fail);
  CHECK(fail->user == "bob");
  CHECK(fail->has_reason);
  CHECK(fail->reason == "Account\tlocked");
  CHECK(fail->temp);
  auto bare = dc::parse_reply("FAIL\t6");
  REQUIRE(bare);
  CHECK_FALSE(bare->has_reason);
  CHECK_FALSE(bare->temp);

  CHECK_FALSE(dc::parse_reply("DONE"));
  CHECK_FALSE(dc::parse_reply("OK\tx\tuser=a"));
  CHECK_FALSE(dc::parse_reply("OK\t\tuser=a"));
  CHECK_FALSE(dc::parse_reply("MECH\tPLAIN"));
}

TEST_CASE("factory: type and option errors") {
  ServerOptions o;
  std::string error;
  o.type = "bogus";
  CHECK_FALSE(ServerFactory::create(o, error));
  CHECK(error == "unsupported SASL server implementation: bogus");
  o.type = "dovecot";
  o.security_options = "noplaintext, nosuch";
  CHECK_FALSE(ServerFactory::create(o, error));
  CHECK(error.find("\"nosuch\"") != std::string::npos);
  o.security_options = "noanonymous";
  o.path = "/nonexistent/auth";
  o.timeout_seconds = 1;
  auto factory = ServerFactory::create(o, error);
  REQUIRE(factory);
  auto session = factory->open(SessionParams{}, error);
  REQUIRE(session);
  CHECK(session->mechanisms().empty());
  CHECK(session->last_error() ==
        "SASL: Connect to Dovecot auth socket '/nonexistent/auth' failed: No such file or directory");
  std::string out;
  CHECK(session->start("PLAIN", "", out) == ServerSession::Result::error);
  CHECK(out.find("failed: No such file or directory") != std::string::npos);
  CHECK(server_types() == std::vector<std::string>{"cyrus", "dovecot"});
}

namespace {

// A scripted Dovecot auth server on a unix socket: the handshake, then for
// each AUTH or CONT line the next reply ("%" stands for the request id;
// "CLOSE" drops the connection).  Every wait is bounded.
class FakeDovecot {
 public:
  FakeDovecot(std::string path, std::deque<std::string> replies)
      : path_(std::move(path)), replies_(std::move(replies)) {
    ::unlink(path_.c_str());
    listener_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 4) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeDovecot() {
    thread_.join();
    ::close(listener_);
    ::unlink(path_.c_str());
  }

 private:
  static bool read_line(int fd, std::string& buffer, std::string& line) {
    while (buffer.find('\n') == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return false;
      char chunk[512];
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    size_t lf = buffer.find('\n');
    line = buffer.substr(0, lf);
    buffer.erase(0, lf + 1);
    return true;
  }
  static void write_all(int fd, const std::string& text) {
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return;
  }

  // Every connection at once (the factory keeps one for the mechanism
  // list and takes others for requests); replies go out in the order the
  // requests come in.
  void run() {
    struct Client {
      int fd;
      std::string buffer;
    };
    std::vector<Client> clients;
    while (!replies_.empty()) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (const Client& c : clients) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 5000) <= 0) break;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept(listener_, nullptr, nullptr);
        if (fd >= 0) clients.push_back({fd, {}});
      }
      for (size_t i = 1; i < fds.size() && !replies_.empty(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Client& c = clients[i - 1];
        std::string line;
        bool open = read_line(c.fd, c.buffer, line);
        while (open && !replies_.empty()) {
          if (line.starts_with("CPID")) {
            write_all(c.fd, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                            "SPID\t1\nCUID\t1\nCOOKIE\tabc\nDONE\n");
          } else if (line.starts_with("AUTH\t") || line.starts_with("CONT\t")) {
            std::string id = line.substr(5, line.find('\t', 5) - 5);
            std::string reply = replies_.front();
            replies_.pop_front();
            if (reply == "CLOSE") {
              open = false;
              break;
            }
            for (size_t at; (at = reply.find('%')) != std::string::npos;) reply.replace(at, 1, id);
            write_all(c.fd, reply + "\n");
          }
          if (c.buffer.find('\n') == std::string::npos) break;
          open = read_line(c.fd, c.buffer, line);
        }
        if (!open) {
          ::close(c.fd);
          c.fd = -1;
        }
      }
      std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
    }
    for (const Client& c : clients) ::close(c.fd);
  }

  std::string path_;
  std::deque<std::string> replies_;
  int listener_ = -1;
  std::thread thread_;
};

}  // namespace

TEST_CASE("dovecot session: replies, stray ids, temp failures, reconnection") {
  std::string path = "/tmp/mta-sasl-test-" + std::to_string(::getpid());
  FakeDovecot server(path, {
                               "FAIL\t999\nOK\t%\tuser=alice",   // another request's answer first
                               "FAIL\t%\tuser=alice\treason=Account locked",
                               "FAIL\t%\ttemp",
                               "CONT\t%\tVXNlcm5hbWU6",
                               "CLOSE",                          // lost during the exchange
                               "OK\t%\tuser=bob",                // on a new connection
                               "OK\t%",
                           });
  ServerOptions o;
  o.type = "dovecot";
  o.path = path;
  o.timeout_seconds = 5;
  std::string error, out;
  auto factory = ServerFactory::create(o, error);
  REQUIRE(factory);
  auto session = factory->open(SessionParams{"192.0.2.9", "4000", "192.0.2.1", "25", false, 0}, error);
  REQUIRE(session);
  CHECK(session->mechanisms() == "PLAIN LOGIN");
  using R = ServerSession::Result;
  CHECK(session->start("plain", "AGFsaWNlAHNlY3JldA==", out) == R::done);
  CHECK(session->username() == "alice");
  CHECK(session->method() == "PLAIN");
  CHECK(session->start("PLAIN", "AGFsaWNlAHNlY3JldA==", out) == R::failed);
  CHECK(out == "Account locked");
  CHECK(session->username() == "alice");  // the name tried, for the log
  CHECK(session->start("PLAIN", "AGFsaWNlAHNlY3JldA==", out) == R::error);
  CHECK(out == "Authentication backend error");
  CHECK(session->start("LOGIN", "", out) == R::more);
  CHECK(out == "VXNlcm5hbWU6");
  CHECK(session->next("YWxpY2U=", out) == R::error);
  CHECK(out.starts_with("Connection lost to authentication server"));
  CHECK(session->next("YWxpY2U=", out) == R::error);  // nothing in progress now
  CHECK(session->start("PLAIN", "=", out) == R::done);
  CHECK(session->username() == "bob");
  CHECK(session->start("CRAM-MD5", "", out) == R::failed);
  CHECK(out == "Invalid authentication mechanism");
  CHECK(session->start("PLAIN", "AGFsaWNlAHNlY3JldA==", out) == R::error);
  CHECK(out == "missing Dovecot server OK username field");
}

#endif  // MTA_HAVE_SASL
