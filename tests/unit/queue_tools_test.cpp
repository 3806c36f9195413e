// The queue tools: showq's report (quoting, defer logs, the queue walk),
// postqueue's formats and checks, postsuper's operations on a scratch
// queue.  Byte-for-byte agreement with the real Postfix on real queues is
// tests/integration/queue_tools.sh; these pin the rules down.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "postqueue/destination.hpp"
#include "postqueue/queue_listing.hpp"
#include "postsuper/queue_super.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "queue/queue_id.hpp"
#include "showq/queue_report.hpp"

namespace fs = std::filesystem;
using mta::ipc::proto::ShowqMessage;

namespace {

struct ScratchQueue {
  fs::path path;
  ScratchQueue() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-qtools-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    for (const char* q : {"maildrop", "incoming", "active", "deferred", "hold", "defer", "bounce", "trace", "flush"})
      fs::create_directories(path / q);
  }
  ~ScratchQueue() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

struct Rcpt {
  std::string address;
  bool done = false;
};

// A complete queue file in QUEUE; returns its ID.
std::string make_message(const ScratchQueue& q, const std::string& queue, const std::string& sender,
                         const std::vector<Rcpt>& rcpts, long arrival = 1700000000, std::string extracted = "") {
  mta::queue::QueueLayout layout(q.str());
  std::string error;
  auto w = mta::queue::QueueFileWriter::create(layout, {}, &error);
  REQUIRE(w);
  w->put_size_placeholder();
  w->put_time({arrival, 250000});
  w->put_sender(sender);
  std::vector<off_t> offsets;
  for (const Rcpt& r : rcpts) offsets.push_back(w->put_recipient(r.address, r.address));
  w->begin_content();
  w->put_line("Subject: test");
  w->put_line("");
  w->put_line(std::string(3000, 'x'));
  w->begin_extracted();
  if (!extracted.empty()) w->put_recipient(extracted, extracted);
  w->put_end();
  std::string id = w->id();
  REQUIRE(w->finish(&error));
  std::string path = layout.path("incoming", id);
  for (size_t i = 0; i < rcpts.size(); ++i) {
    if (!rcpts[i].done) continue;
    auto r = mta::queue::QueueFileReader::open(path, true, &error);
    REQUIRE(r);
    mta::queue::Envelope env;
    REQUIRE(r->read_envelope(&env, &error));
    REQUIRE(r->mark_done(env.recipients[i], &error));
  }
  if (queue != "incoming") REQUIRE(layout.move(id, "incoming", queue, &error));
  return id;
}

void put_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<ShowqMessage> listing(const ScratchQueue& q, mta::showq::ReportOptions options = {}) {
  std::vector<ShowqMessage> out;
  mta::queue::QueueLayout layout(".");
  mta::showq::list_queue(q.str(), layout, options, [&](const ShowqMessage& m) {
    out.push_back(m);
    return true;
  });
  return out;
}

}  // namespace

TEST_CASE("showq quotes local parts as Postfix's quote_822_local") {
  using mta::showq::quote_822_local;
  CHECK(quote_822_local("user@example.com") == "user@example.com");
  CHECK(quote_822_local("first.last@example.com") == "first.last@example.com");
  CHECK(quote_822_local("john doe@example.com") == "\"john doe\"@example.com");
  CHECK(quote_822_local("x..y@example.com") == "\"x..y\"@example.com");
  CHECK(quote_822_local(".x@example.com") == "\".x\"@example.com");
  CHECK(quote_822_local("x.@example.com") == "\"x.\"@example.com");
  CHECK(quote_822_local("a\"b\\c@example.com") == "\"a\\\"b\\\\c\"@example.com");
  CHECK(quote_822_local("a=b{c}+d@example.com") == "a=b{c}+d@example.com");  // not RFC 5322 atext rules
  CHECK(quote_822_local("MAILER-DAEMON") == "MAILER-DAEMON");
  CHECK(quote_822_local("a@b@example.com") == "\"a@b\"@example.com");
  CHECK(quote_822_local("@route:a b@example.com") == "@route:\"a b\"@example.com");
  CHECK(quote_822_local("\xc3\xa9t\xc3\xa9@example.com") == "\xc3\xa9t\xc3\xa9@example.com");  // 8-bit clean
}

TEST_CASE("showq reads defer logs as bounce_log_read") {
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) { warnings.push_back(w); };
  std::string log =
      "<a@example.net>: old style reason\nrecipient=a@example.net\noffset=12\nstatus=4.0.0\naction=delayed\n"
      "reason=new reason\n\n"
      "<b@example.net>:   only old\n\n"
      "recipient=\nreason=null\n\n"
      "bogus line\n-bogus\nrecipient=c@example.net\nfuture=1\nreason=r\x01x\n\n"
      "recipient=unfinished@example.net\nreason=never ends\n";
  auto entries = mta::showq::parse_bounce_log(log, "defer/1/ID", true, warn);
  REQUIRE(entries.size() == 4);
  CHECK(entries[0].recipient == "a@example.net");
  CHECK(entries[0].reason == "new reason");
  CHECK(entries[1].recipient == "b@example.net");
  CHECK(entries[1].reason == "only old");
  CHECK(entries[2].recipient == "(MAILER-DAEMON)");
  CHECK(entries[3].recipient == "c@example.net");
  CHECK(entries[3].reason == "r?x");
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[0] == "defer/1/ID: malformed record: missing '=' after attribute name");
  CHECK(warnings[1] == "defer/1/ID: malformed record: -bogus...");
  CHECK(warnings[2] == "defer/1/ID: unknown attribute name: future, ignored");

  auto placeholders = mta::showq::parse_bounce_log("status=4.0.0\n\n", "x", true, warn);
  REQUIRE(placeholders.size() == 1);
  CHECK(placeholders[0].recipient == "(recipient address unavailable)");
  CHECK(placeholders[0].reason == "(description unavailable)");
}

TEST_CASE("showq reports pending recipients, defer log reasons first, in Postfix's queue order") {
  ScratchQueue q;
  std::string held = make_message(q, "hold", "h@example.org", {{"x@example.net"}});
  std::string deferred = make_message(q, "deferred", "", {{"a@example.net"}, {"b@example.net", true}, {"c d@example.net"}},
                                      1700000001, "e@example.net");
  std::string active = make_message(q, "active", "s@example.org", {{"r@example.net"}});
  mta::queue::QueueLayout layout(q.str());
  // A defer log that knows about c, and about one recipient twice.
  put_file(layout.path("defer", deferred),
           "recipient=\"c d\"@example.net\nreason=busy\n\nrecipient=zz@example.net\nreason=gone\n\n");
  // A file being written is not listed.
  std::string partial = make_message(q, "incoming", "p@example.org", {{"p@example.net"}});
  fs::permissions(layout.path("incoming", partial), fs::perms(0600));
  // Nor is a file in the wrong hash directory.
  std::string lost = make_message(q, "deferred", "l@example.org", {{"l@example.net"}});
  fs::create_directories(q.path / "deferred" / "_");
  fs::rename(layout.path("deferred", lost), q.path / "deferred" / "_" / lost);

  auto list = listing(q);
  REQUIRE(list.size() == 3);
  CHECK(list[0].queue_name == "active");
  CHECK(list[0].queue_id == active);
  CHECK(list[1].queue_name == "deferred");
  CHECK(list[2].queue_name == "hold");
  CHECK(list[2].queue_id == held);

  const ShowqMessage& d = list[1];
  CHECK(d.sender == "MAILER-DAEMON");
  CHECK(d.arrival_time == 1700000001);
  CHECK(d.forced_expire == 0);
  std::string file = slurp(layout.path("deferred", deferred));
  // The C record's first field: the message segment, not the file.
  CHECK(d.size > 3000);
  CHECK(d.size < static_cast<long>(file.size()));
  REQUIRE(d.recipients.size() == 4);
  CHECK(d.recipients[0].address == "\"c d\"@example.net");
  CHECK(d.recipients[0].reason == "busy");
  CHECK(d.recipients[1].address == "zz@example.net");
  CHECK(d.recipients[2].address == "a@example.net");
  CHECK(d.recipients[2].reason.empty());
  CHECK(d.recipients[3].address == "e@example.net");  // extracted segment

  mta::showq::ReportOptions options;
  options.empty_address_recipient = "postmaster";
  fs::permissions(layout.path("hold", held), fs::perms(0710));
  list = listing(q, options);
  CHECK(list[1].sender == "postmaster");
  CHECK(list[2].forced_expire == 1);
}

TEST_CASE("postqueue prints the mailq format of Postfix") {
  setenv("TZ", "UTC", 1);
  tzset();
  mta::postqueue::MailqFormatter f(false);
  CHECK(f.trailer() == "Mail queue is empty\n");
  ShowqMessage m;
  m.queue_name = "active";
  m.queue_id = "8B4ACA72918";
  m.arrival_time = 1700000000;
  m.size = 2048;
  m.sender = "alice@example.org";
  m.recipients = {{"bob@example.net", "deferred transport"}, {"carol@example.net", "deferred transport"},
                  {"dave@example.net", ""}};
  std::string text = f.message(m);
  CHECK(text ==
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
        "8B4ACA72918*    2048 Tue Nov 14 22:13:20  alice@example.org\n"
        "                                                          (deferred transport)\n"
        "                                         bob@example.net\n"
        "                                         carol@example.net\n"
        "                                                          (reason unavailable)\n"
        "                                         dave@example.net\n");
  m.queue_name = "hold";
  m.forced_expire = 1;
  m.size = 1024;
  m.recipients = {{"x@example.net", std::string(90, 'r')}};
  text = f.message(m);
  CHECK(text.rfind("\n8B4ACA72918!#    1024 Tue Nov 14 22:13:20  alice@example.org\n(" + std::string(90, 'r') + ")\n", 0) == 0);
  CHECK(f.trailer() == "\n-- 3 Kbytes in 2 Requests.\n");

  mta::postqueue::MailqFormatter l(true);
  m.queue_name = "deferred";
  m.forced_expire = 0;
  m.queue_id = "4jXSDc32TMz1bcmF";
  m.recipients = {{"bob@example.net", ""}};
  CHECK(l.message(m) ==
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n"
        "4jXSDc32TMz1bcmF      1024 Tue Nov 14 22:13:20 alice@example.org\n"
        "                                               bob@example.net\n");
  CHECK(l.trailer() == "\n-- 1 Kbytes in 1 Request.\n");
}

TEST_CASE("postqueue -j writes one JSON object per message, escaped as Postfix") {
  using mta::postqueue::json_quote;
  CHECK(json_quote("a\"b\\c/d", true) == "a\\\"b\\\\c/d");
  CHECK(json_quote("\b\f\n\r\t", true) == "\\b\\f\\n\\r\\t");
  CHECK(json_quote(std::string("\x01\x7f", 2), true) == "\\u0001\\u007F");
  CHECK(json_quote("\xc3\xa9", true) == "\xc3\xa9");
  CHECK(json_quote("\xc3\xa9", false) == "??");
  ShowqMessage m;
  m.queue_name = "deferred";
  m.queue_id = "ABC";
  m.arrival_time = 1795347597;
  m.size = 317;
  m.sender = "\"john doe\"@example.org";
  m.recipients = {{"u4@example.net", "deferred transport"}, {"x@example.net", ""}};
  CHECK(mta::postqueue::json_message(m, true) ==
        "{\"queue_name\": \"deferred\", \"queue_id\": \"ABC\", \"arrival_time\": 1795347597, \"message_size\": 317, "
        "\"forced_expire\": false, \"sender\": \"\\\"john doe\\\"@example.org\", \"recipients\": [{\"address\": "
        "\"u4@example.net\", \"delay_reason\": \"deferred transport\"}, {\"address\": \"x@example.net\"}]}\n");
  m.recipients.clear();
  m.forced_expire = 1;
  CHECK(mta::postqueue::json_message(m, true).find("\"forced_expire\": true, ") != std::string::npos);
  CHECK(mta::postqueue::json_message(m, true).find("\"recipients\": []}") != std::string::npos);
}

TEST_CASE("postqueue checks flush destinations and access lists as Postfix") {
  using namespace mta::postqueue;
  CHECK(valid_flush_destination("example.com"));
  CHECK(valid_flush_destination("a-b.example_x.com"));
  CHECK_FALSE(valid_flush_destination("bad site!"));
  CHECK_FALSE(valid_flush_destination("-a.com"));
  CHECK_FALSE(valid_flush_destination("a-.com"));
  CHECK_FALSE(valid_flush_destination("a..com"));
  CHECK_FALSE(valid_flush_destination("a.com."));
  CHECK_FALSE(valid_flush_destination("123.456"));
  CHECK_FALSE(valid_flush_destination(std::string(64, 'a') + ".com"));
  CHECK(valid_flush_destination("[1.2.3.4]"));
  CHECK(valid_flush_destination("[0.0.0.0]"));
  CHECK_FALSE(valid_flush_destination("[0.1.2.3]"));
  CHECK_FALSE(valid_flush_destination("[1.2.3.400]"));
  CHECK_FALSE(valid_flush_destination("[1.2.3]"));
  CHECK_FALSE(valid_flush_destination("[1.2.3.4]x"));
  CHECK(valid_flush_destination("[IPv6:2001:db8::1]"));
  CHECK(valid_flush_destination("[2001:db8::1]"));
  CHECK_FALSE(valid_flush_destination("[IPv6:2001:db8::g]"));

  CHECK(domain_list_match("t", "", "example.com", true) == ListMatch::no_match);
  CHECK(domain_list_match("t", "example.com", "EXAMPLE.com", true) == ListMatch::match);
  CHECK(domain_list_match("t", "example.com", "sub.example.com", true) == ListMatch::match);
  CHECK(domain_list_match("t", "example.com", "sub.example.com", false) == ListMatch::no_match);
  CHECK(domain_list_match("t", ".example.com", "sub.example.com", false) == ListMatch::match);
  CHECK(domain_list_match("t", ".example.com", "example.com", false) == ListMatch::no_match);
  CHECK(domain_list_match("t", "!sub.example.com, example.com", "sub.example.com", true) == ListMatch::no_match);
  CHECK(domain_list_match("t", "notexample.com", "example.com", true) == ListMatch::no_match);
  CHECK(domain_list_match("t", "example.com", "badexample.com", true) == ListMatch::no_match);

  CHECK(check_user_acl("t", "static:anyone", 12345).empty());
  CHECK(check_user_acl("t", "root", 0).empty());
  CHECK(check_user_acl("t", "!root, root", 0) == "root");
  CHECK(check_user_acl("t", "nobody", 0) == "root");
  CHECK(check_user_acl("t", "inline:{root=yes}", 0).empty());
}

TEST_CASE("postsuper reads inodes from queue file names as Postfix") {
  using namespace mta::postsuper;
  unsigned long inode = 0;
  bool long_form = false;
  REQUIRE(name_inode("8B4ACA72918", &inode, &long_form));
  CHECK_FALSE(long_form);
  CHECK(inode == 0xA72918);
  REQUIRE(name_inode("4jXSDc32TMz1bcmF", &inode, &long_form));
  CHECK(long_form);
  CHECK(inode == *mta::queue::safe_strtoul("1bcmF", 51));
  CHECK(fixed_queue_id("8B4ACA72918", 0x1F, false) == "8B4AC1F");
  CHECK(fixed_queue_id("4jXSDc32TMz1bcmF", 51, true) == "4jXSDc32TMz10");
  // Long to short: the microseconds in hex, then the inode.
  std::string want = mta::queue::queue_id_hash_key("4jXSDc32TMz1bcmF") + "1F";
  CHECK(fixed_queue_id("4jXSDc32TMz1bcmF", 0x1F, false) == want);
}

TEST_CASE("postsuper deletes, holds, releases, requeues and expires by queue ID") {
  using namespace mta::postsuper;
  ScratchQueue q;
  mta::queue::QueueLayout layout(q.str());
  std::string a = make_message(q, "deferred", "s@example.org", {{"r@example.net"}});
  std::string b = make_message(q, "active", "s@example.org", {{"r@example.net"}});
  put_file(layout.path("defer", a), "recipient=r@example.net\nreason=x\n\n");
  put_file(layout.path("bounce", a), "x");
  auto fatal = [](const std::string& text) { FAIL(text); };
  Superintendent super({}, q.str(), fatal);

  CHECK(super.hold_one(default_hold_queues(), a) == 1);
  CHECK(fs::exists(layout.path("hold", a)));
  CHECK(fs::exists(layout.path("defer", a)));  // logs stay
  CHECK(super.hold_one(default_hold_queues(), a) == 0);
  CHECK(super.release_one(default_release_queues(), a) == 1);
  CHECK(fs::exists(layout.path("deferred", a)));

  CHECK(super.expire_one(default_queues(), b, false) == 1);
  CHECK((fs::status(layout.path("active", b)).permissions() & fs::perms::group_exec) != fs::perms::none);
  CHECK(super.counters().expired == 1);
  CHECK(super.expire_one(default_queues(), b, false) == 1);
  CHECK(super.counters().expired == 1);  // once

  fs::last_write_time(layout.path("active", b), fs::file_time_type::clock::now() + std::chrono::hours(1));
  CHECK(super.requeue_one(default_queues(), b) == 1);
  std::string dropped = layout.path("maildrop", b);
  REQUIRE(fs::exists(dropped));
  struct stat st {};
  REQUIRE(::stat(dropped.c_str(), &st) == 0);
  CHECK(st.st_mtime <= std::time(nullptr));

  CHECK(super.delete_one(default_queues(), a) == 1);
  CHECK_FALSE(fs::exists(layout.path("deferred", a)));
  CHECK_FALSE(fs::exists(layout.path("defer", a)));
  CHECK_FALSE(fs::exists(layout.path("bounce", a)));
  CHECK(super.delete_one(default_queues(), a) == 0);
  CHECK(super.delete_one(default_queues(), "bad/id") == 0);
  CHECK(super.delete_one(default_queues(), b) == 1);  // maildrop too
}

TEST_CASE("postsuper's passes: mass operations and structure repair") {
  using namespace mta::postsuper;
  ScratchQueue q;
  mta::queue::QueueLayout layout(q.str());
  std::string a = make_message(q, "deferred", "s@example.org", {{"r@example.net"}});
  std::string b = make_message(q, "incoming", "s@example.org", {{"r@example.net"}});
  std::string c = make_message(q, "hold", "s@example.org", {{"r@example.net"}});
  auto fatal = [](const std::string& text) { FAIL(text); };
  Superintendent super({}, q.str(), fatal);

  super.pass(default_hold_queues(), action::kHoldAll);
  CHECK(super.counters().held == 2);
  CHECK(fs::exists(layout.path("hold", a)));
  CHECK(fs::exists(layout.path("hold", b)));
  super.pass(default_release_queues(), action::kReleaseAll);
  CHECK(super.counters().released == 3);
  CHECK(fs::exists(layout.path("deferred", c)));

  // A change of hash depth: files move, the old level goes.
  Settings deep;
  deep.hash_queue_depth = 2;
  Superintendent deeper(deep, q.str(), fatal);
  deeper.pass(default_queues(), action::kStruct | action::kPurge);
  mta::queue::QueueLayout layout2(q.str(), {"deferred", "defer"}, 2);
  CHECK(fs::exists(layout2.path("deferred", a)));
  CHECK(deeper.counters().position_mismatch == 3);
  CHECK(deeper.counters().inode_mismatch == 0);
  Superintendent shallow({}, q.str(), fatal);
  shallow.pass(default_queues(), action::kStruct);
  CHECK(fs::exists(layout.path("deferred", a)));
  CHECK_FALSE(fs::exists(fs::path(layout2.path("deferred", a)).parent_path()));

  // A name that does not match its inode is fixed in two passes.
  std::string renamed = a.substr(0, 5) + "FFFFF";
  fs::rename(layout.path("deferred", a), layout.path("deferred", renamed));
  Superintendent fixer({}, q.str(), fatal);
  fixer.pass(default_queues(), action::kStruct);
  CHECK(fixer.counters().inode_mismatch == 1);
  fixer.pass(default_queues(), action::kStruct);
  CHECK(fixer.counters().inode_fixed == 1);
  CHECK(fs::exists(layout.path("deferred", a)));

  // Old temporary files go; recent ones and complete ones stay.
  std::string tmp = q.str() + "/incoming/12345.678";
  std::ofstream(tmp) << "x";
  fs::permissions(tmp, fs::perms(0600));
  Superintendent purger({}, q.str(), fatal);
  purger.pass({"incoming"}, action::kPurge);
  CHECK(fs::exists(tmp));
  fs::last_write_time(tmp, fs::file_time_type::clock::now() - std::chrono::hours(24 * 8));
  purger.pass({"incoming"}, action::kPurge);
  CHECK_FALSE(fs::exists(tmp));

  super.pass(default_queues(), action::kDeleteAll);
  CHECK(super.counters().deleted == 3);
}
