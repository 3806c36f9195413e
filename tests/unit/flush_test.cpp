// flush: the per-destination logs of flush/flush_log.hpp on a scratch
// queue, and lib/ipc's flush client without a service.  The file names
// and the moves are the real Postfix 3.7 flush(8)'s (checked against it by
// tests/integration/flush_interop.sh).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_FLUSH)

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "flush/flush_log.hpp"
#include "ipc/flush_client.hpp"

namespace fs = std::filesystem;
namespace fp = mta::ipc::flush_proto;
using mta::flush::FlushLogs;
using mta::flush::site_to_path;

namespace {

// A queue directory with the queues flush touches; removed at the end.
struct ScratchQueue {
  std::string dir;
  std::vector<std::string> triggers;
  ScratchQueue() {
    char tmpl[] = "/tmp/flush_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    for (const char* q : {"flush", "deferred", "incoming"}) fs::create_directory(dir + "/" + q);
  }
  ~ScratchQueue() { fs::remove_all(dir); }
  FlushLogs logs(long long purge_time = 7 * 86400) {
    return FlushLogs(mta::queue::QueueLayout(dir), purge_time,
                     [this](std::string_view bytes) { triggers.emplace_back(bytes); });
  }
  // A complete (mode 0700) queue file in the hashed deferred queue.
  std::string deferred(const std::string& id) {
    std::string d = dir + "/deferred/" + id.substr(0, 1);
    fs::create_directories(d);
    std::string path = d + "/" + id;
    std::ofstream(path) << "x";
    ::chmod(path.c_str(), 0700);
    return path;
  }
  std::string read(const std::string& rel) const {
    std::ifstream in(dir + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

}  // namespace

TEST_CASE("flush: a site's log is named as Postfix names it", "[flush]") {
  CHECK(site_to_path("example.net") == "example_net");
  CHECK(site_to_path("Example.NET") == "example_net");
  CHECK(site_to_path("[192.0.2.1]") == "_192_0_2_1_");
  CHECK(site_to_path("[IPv6:2001:db8::1]") == "_ipv6_2001_db8__1_");
  CHECK(site_to_path("my-host.example") == "my_host_example");
  CHECK_FALSE(site_to_path("b\xc3\xbcro.example").has_value());
}

TEST_CASE("flush: add appends queue IDs, send moves them and tells qmgr", "[flush]") {
  ScratchQueue q;
  FlushLogs logs = q.logs();
  CHECK(logs.add("site_test", "ABCDEF123") == fp::kStatOk);
  CHECK(logs.add("site_test", "ABCDEF124") == fp::kStatOk);
  CHECK(logs.add("site_test", "ABCDEF123") == fp::kStatOk);
  CHECK(q.read("flush/site_test") == "ABCDEF123\nABCDEF124\nABCDEF123\n");
  struct stat st {};
  REQUIRE(::stat((q.dir + "/flush/site_test").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(logs.add("bad/path", "ABCDEF123") == fp::kStatBad);

  q.deferred("ABCDEF123");  // ABCDEF124 is gone already
  CHECK(logs.send_path("site_test", true) == fp::kStatOk);
  CHECK(fs::exists(q.dir + "/incoming/ABCDEF123"));
  CHECK_FALSE(fs::exists(q.dir + "/deferred/A/ABCDEF123"));
  CHECK(q.read("flush/site_test").empty());
  CHECK(q.triggers == std::vector<std::string>{"F", "I"});

  // An empty log: nothing to move, no scan; a missing one: the same.
  q.triggers.clear();
  CHECK(logs.send_path("site_test", true) == fp::kStatOk);
  CHECK(logs.send_path("nothing_here", true) == fp::kStatOk);
  CHECK(q.triggers == std::vector<std::string>{"F"});
  CHECK(logs.send_path("", true) == fp::kStatBad);
}

TEST_CASE("flush: send_file moves one message and asks for an unthrottle", "[flush]") {
  ScratchQueue q;
  FlushLogs logs = q.logs();
  q.deferred("ABCDEF125");
  CHECK(logs.send_file("ABCDEF125") == fp::kStatOk);
  struct stat st {};
  REQUIRE(::stat((q.dir + "/incoming/ABCDEF125").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0740);
  CHECK(q.triggers == std::vector<std::string>{"I"});
  q.triggers.clear();
  CHECK(logs.send_file("NOSUCHID") == fp::kStatOk);
  CHECK(q.triggers.empty());
  CHECK(logs.send_file("bad.id") == fp::kStatBad);
}

TEST_CASE("flush: refresh sends unread logs and removes old empty ones", "[flush]") {
  ScratchQueue q;
  FlushLogs logs = q.logs(86400);
  q.deferred("ABCDEF126");
  CHECK(logs.add("old_test", "ABCDEF126") == fp::kStatOk);
  CHECK(logs.add("new_test", "ABCDEF127") == fp::kStatOk);
  std::ofstream(q.dir + "/flush/empty_old");
  std::ofstream(q.dir + "/flush/empty_new");
  const time_t now = std::time(nullptr);
  auto age = [&](const std::string& name, time_t atime, time_t mtime) {
    timeval tv[2] = {{atime, 0}, {mtime, 0}};
    REQUIRE(::utimes((q.dir + "/flush/" + name).c_str(), tv) == 0);
  };
  age("old_test", now - 7200, now - 7200);
  age("empty_old", now - 2 * 86400, now - 2 * 86400);
  logs.refresh(3600);
  CHECK(fs::exists(q.dir + "/incoming/ABCDEF126"));
  CHECK(q.read("flush/old_test").empty());
  CHECK(q.read("flush/new_test") == "ABCDEF127\n");
  CHECK_FALSE(fs::exists(q.dir + "/flush/empty_old"));
  CHECK(fs::exists(q.dir + "/flush/empty_new"));
  CHECK(q.triggers == std::vector<std::string>{"I"});  // a refresh does not unthrottle
}

TEST_CASE("flush client: unlisted sites are refused without asking", "[flush]") {
  mta::ipc::FlushClient client("/nonexistent", "example.net, .sub.example.org", true);
  CHECK(client.enabled());
  CHECK(client.add("other.example", "ABCDEF123") == fp::kStatDeny);
  CHECK(client.send_site("other.example") == fp::kStatDeny);
  // Listed, but no service: a failure.
  CHECK(client.send_site("example.net") == fp::kStatFail);
  mta::ipc::FlushClient off("/nonexistent", "", true);
  CHECK_FALSE(off.enabled());
  CHECK(off.refresh() == fp::kStatDeny);
  CHECK(off.purge() == fp::kStatDeny);
}

#endif
