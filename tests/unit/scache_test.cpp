// scache_test.cpp: descriptor passing (ipc::Stream::send_fd/recv_fd), the
// connection cache of scache(8) (scache/connection_cache.hpp), the scache
// protocol messages, and qmgr's on-demand caching flags
// (qmgr/conn_cache_policy.hpp).
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "ipc/attr.hpp"
#include "ipc/channel.hpp"
#include "ipc/scache_proto.hpp"
#include "ipc/stream.hpp"
#include "qmgr/conn_cache_policy.hpp"
#include "scache/connection_cache.hpp"

using namespace mta;
using namespace std::chrono_literals;

namespace {

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0); }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

// A pipe whose read end is passed around; what is written to the write end
// must come out of the passed descriptor.
std::string through(int read_fd, int write_fd, const std::string& text) {
  REQUIRE(::write(write_fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  char buf[64] = {};
  ssize_t n = ::read(read_fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

TEST_CASE("a descriptor passes over a unix stream socket, both ways", "[scache][ipc]") {
  SocketPair sp;
  ipc::Stream a(sp.fd[0], "a", false), b(sp.fd[1], "b", false);
  a.set_timeout(2s);
  b.set_timeout(2s);
  for (int round = 0; round < 2; ++round) {
    ipc::Stream& from = round == 0 ? a : b;
    ipc::Stream& to = round == 0 ? b : a;
    int p[2];
    REQUIRE(::pipe(p) == 0);
    // Attribute data first, read before the descriptor is sent: as in the
    // scache protocol, nothing may be in flight together with it (a plain
    // read of the byte that carries a descriptor would drop it).
    REQUIRE(from.write("before"));
    REQUIRE(from.flush());
    std::string got;
    for (int i = 0; i < 6; ++i) got += static_cast<char>(to.get());
    CHECK(got == "before");
    REQUIRE(to.buffered() == 0);
    REQUIRE(from.send_fd(p[0]));
    ::close(p[0]);
    int fd = to.recv_fd();
    REQUIRE(fd >= 0);
    CHECK(through(fd, p[1], "hello") == "hello");
    ::close(fd);
    ::close(p[1]);
  }
}

TEST_CASE("recv_fd fails on a byte without a descriptor, at EOF, and on timeout", "[scache][ipc]") {
  SECTION("no descriptor") {
    SocketPair sp;
    ipc::Stream s(sp.fd[1], "s", false);
    s.set_timeout(1s);
    REQUIRE(::write(sp.fd[0], "x", 1) == 1);
    CHECK(s.recv_fd() == -1);
    CHECK(s.state() == ipc::IoState::error);
  }
  SECTION("EOF") {
    SocketPair sp;
    ipc::Stream s(sp.fd[1], "s", false);
    ::close(sp.fd[0]);
    sp.fd[0] = -1;
    CHECK(s.recv_fd() == -1);
    CHECK(s.state() == ipc::IoState::eof);
  }
  SECTION("timeout") {
    SocketPair sp;
    ipc::Stream s(sp.fd[1], "s", false);
    s.set_timeout(50ms);
    CHECK(s.recv_fd() == -1);
    CHECK(s.timed_out());
  }
  SECTION("buffered data comes first") {
    SocketPair sp;
    ipc::Stream s(sp.fd[1], "s", false);
    s.set_timeout(1s);
    REQUIRE(::write(sp.fd[0], "ab", 2) == 2);
    CHECK(s.get() == 'a');
    CHECK(s.recv_fd() == -1);
  }
}

TEST_CASE("scache requests are Postfix's attribute lists", "[scache][ipc]") {
  SocketPair sp;
  ipc::Channel w(ipc::Stream(sp.fd[0], "w", false)), r(ipc::Stream(sp.fd[1], "r", false));
  r.stream().set_timeout(2s);
  ipc::scache::SaveDestRequest req;
  req.ttl = 2;
  req.dest_label = "smtp\n*\n[127.0.0.1]:25\n";
  req.dest_prop = "128";
  req.endp_label = "smtp\n*\n127.0.0.1\n25\n";
  REQUIRE(w.write(req));
  REQUIRE(w.flush());
  std::string expect = std::string("request\0save_dest\0ttl\0002\0label\0", 30) + req.dest_label + '\0' +
                       std::string("property\0", 9) + "128" + '\0' + std::string("label\0", 6) + req.endp_label +
                       '\0' + '\0';
  std::string got;
  for (size_t i = 0; i < expect.size(); ++i) got += static_cast<char>(r.stream().get());
  CHECK(got == expect);

  ipc::scache::FindDestReply rep{0, "128", "0\ndest\nhost\n127.0.0.1\n25\n0\n99"};
  REQUIRE(w.write(rep));
  REQUIRE(w.flush());
  ipc::scache::FindDestReply back;
  REQUIRE(r.read(back));
  CHECK(back.status == 0);
  CHECK(back.dest_prop == "128");
  CHECK(back.endp_prop == rep.endp_prop);
}

TEST_CASE("the connection cache: endpoints, destinations, expiry, sizes", "[scache]") {
  scache::ConnectionCache cache;
  auto t0 = scache::Clock::now();
  auto fd = [] { return scache::UniqueFd(::dup(0)); };

  SECTION("a miss") {
    CHECK_FALSE(cache.find_endp(t0, "e"));
    CHECK_FALSE(cache.find_dest(t0, "d"));
  }
  SECTION("an endpoint gives its most recent connection, once") {
    cache.save_endp(t0, 2, "e", "old", fd());
    cache.save_endp(t0, 2, "e", "new", fd());
    CHECK(cache.size().endp_count == 1);
    CHECK(cache.size().sess_count == 2);
    auto f = cache.find_endp(t0, "e");
    REQUIRE(f);
    CHECK(f->endp_prop == "new");
    CHECK(f->fd.get() >= 0);
    f = cache.find_endp(t0, "e");
    REQUIRE(f);
    CHECK(f->endp_prop == "old");
    CHECK_FALSE(cache.find_endp(t0, "e"));
    CHECK(cache.size().endp_count == 0);
  }
  SECTION("a destination leads to its endpoint's connection") {
    cache.save_endp(t0, 2, "e1", "p1", fd());
    cache.save_dest(t0, 2, "d", "128", "e0");  // no connection there
    cache.save_dest(t0, 2, "d", "0", "e1");
    CHECK(cache.size().dest_count == 1);
    auto f = cache.find_dest(t0, "d");
    REQUIRE(f);
    CHECK(f->dest_prop == "0");
    CHECK(f->endp_prop == "p1");
    CHECK_FALSE(cache.find_dest(t0, "d"));
  }
  SECTION("saving the same binding again updates it") {
    cache.save_dest(t0, 2, "d", "0", "e");
    cache.save_dest(t0 + 1s, 2, "d", "128", "e");
    cache.save_endp(t0 + 1s, 2, "e", "p", fd());
    auto f = cache.find_dest(t0 + 2500ms, "d");
    REQUIRE(f);
    CHECK(f->dest_prop == "128");
  }
  SECTION("what expired is gone") {
    cache.save_endp(t0, 1, "e", "p", fd());
    cache.save_dest(t0, 1, "d", "0", "e");
    REQUIRE(cache.next_expiry());
    CHECK(*cache.next_expiry() == t0 + 1s);
    CHECK_FALSE(cache.find_dest(t0 + 1s, "d"));
    cache.save_endp(t0, 1, "e2", "p", fd());
    cache.expire(t0 + 2s);
    CHECK(cache.size().endp_count == 0);
    CHECK(cache.size().sess_count == 0);
    CHECK(cache.size().dest_count == 0);
    CHECK_FALSE(cache.next_expiry());
  }
}

TEST_CASE("qmgr's on-demand caching flags follow Postfix's qmgr_entry_select", "[scache][qmgr]") {
  using ipc::proto::kDelReqFlagConnLoad;
  using ipc::proto::kDelReqFlagConnStore;
  const int both = kDelReqFlagConnLoad | kDelReqFlagConnStore;
  qmgr::ConnCachePolicy p;
  // A burst up to the initial concurrency: no caching yet.
  CHECK(p.select("smtp", "d", 1, 100.0) == 0);
  CHECK(p.select("smtp", "d", 2, 100.1) == 0);
  // One finished: the next delivery is back to back, caching turns on.
  p.done("smtp", "d", 100.5);
  CHECK(p.select("smtp", "d", 2, 100.6) == both);
  // Still busy elsewhere: stays on.
  p.done("smtp", "d", 101.0);
  p.done("smtp", "d", 101.0);
  CHECK(p.select("smtp", "d", 1, 101.5) == both);
  // Concurrent deliveries keep it on.
  CHECK(p.select("smtp", "d", 2, 105.0) == both);  // concurrent (busy 2)
  p.done("smtp", "d", 105.0);
  p.done("smtp", "d", 105.0);
  CHECK(p.select("smtp", "d", 1, 107.0) == 0);  // idle since 105: a fresh start
  // Other destinations are independent.
  CHECK(p.select("smtp", "e", 1, 107.0) == 0);
}
