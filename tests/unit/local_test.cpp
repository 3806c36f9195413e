// local/: the pure parts of the local delivery agent: the delivery log
// line (through lib/deliver), DSN codes from errno and exit codes, the message
// copy (From_ line, headers, >From quoting, the final newline and blank
// line, the file cut back on failure), mailbox opening and locking, alias
// and .forward list parsing, $name expansion, Delivered-To scanning.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "deliver/status_reporter.hpp"
#include "local/destination_list.hpp"
#include "local/local_agent.hpp"
#include "local/local_settings.hpp"
#include "deliver/mailbox_file.hpp"
#include "deliver/mail_copy.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"

using namespace mta::local;
using namespace mta::deliver;
namespace fs = std::filesystem;
namespace proto = mta::ipc::proto;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-local-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A queue file with MESSAGE lines (the last one without a newline when it
// has no trailing '\n'), written as cleanup would.
struct QueueFixture {
  TempDir dir;
  std::string path;
  long data_offset = 0;
  explicit QueueFixture(const std::vector<std::string>& lines, size_t line_limit = 2048) {
    fs::create_directories(dir.path / "incoming");
    mta::queue::QueueLayout layout(dir.str());
    std::string error;
    auto w = mta::queue::QueueFileWriter::create(layout, {}, &error);
    REQUIRE(w);
    timeval tv{1700000000, 0};
    w->put_size_placeholder();
    w->put_time(tv);
    w->put_sender("s@example.org");
    w->put_recipient("u@example.org", "u@example.org");
    w->begin_content();
    for (const std::string& l : lines) w->put_line(l, line_limit);
    w->begin_extracted();
    w->put_end();
    data_offset = w->data_offset();
    path = w->path();
    REQUIRE(w->finish(&error));
  }
};

struct ScopedTz {
  ScopedTz() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
};

}  // namespace

TEST_CASE("the delivery log line has Postfix's shape") {
  proto::MsgStats stats;
  stats.incoming_arrival = {1000, 0};
  stats.active_arrival = {1000, 20000};
  stats.agent_handoff = {1000, 30000};
  proto::Recipient rcpt;
  rcpt.address = "alice@example.org";
  rcpt.orig_addr = "team@example.org";
  Dsn dsn = Dsn::simple("2.0.0", "delivered to maildir");
  timeval now{1000, 130000};
  CHECK(delivery_log_text("4ABCDEF", stats, rcpt, "local", dsn, "sent", now, 2) ==
        "4ABCDEF: to=<alice@example.org>, orig_to=<team@example.org>, relay=local, delay=0.13, "
        "delays=0.02/0.01/0/0.1, dsn=2.0.0, status=sent (delivered to maildir)");
  rcpt.orig_addr = "Alice@Example.org";  // the same but for case: not shown
  CHECK(delivery_log_text("Q", stats, rcpt, "local", dsn, "sent", now, 2).find("orig_to") == std::string::npos);
}

TEST_CASE("DSN codes from errno values and from sysexits") {
  CHECK(std::string(mbox_dsn(EAGAIN, "5.2.0")) == "4.2.0");
  CHECK(std::string(mbox_dsn(ENOSPC, "5.2.0")) == "4.3.0");
  CHECK(std::string(mbox_dsn(EFBIG, "5.2.0")) == "5.2.2");
  CHECK(std::string(mbox_dsn(EDQUOT, "5.2.0")) == "5.2.2");
  CHECK(std::string(mbox_dsn(EACCES, "5.2.0")) == "5.2.0");
  REQUIRE(sys_exits_detail(67));
  CHECK(std::string(sys_exits_detail(67)->dsn) == "5.1.1");
  CHECK(std::string(sys_exits_detail(67)->text) == "user unknown");
  CHECK(std::string(sys_exits_detail(75)->dsn) == "4.3.0");
  CHECK(std::string(sys_exits_detail(78)->dsn) == "5.3.5");
  CHECK(sys_exits_detail(1) == nullptr);
  CHECK(sys_exits_detail(0) == nullptr);
}

TEST_CASE("local parts are quoted as RFC 822 wants") {
  CHECK(quote_822_local("user@example.org") == "user@example.org");
  CHECK(quote_822_local("a b@example.org") == "\"a b\"@example.org");
  CHECK(quote_822_local("a..b@x") == "\"a..b\"@x");
  CHECK(quote_822_local("say\"hi@x") == "\"say\\\"hi\"@x");
  CHECK(quote_822_local("user+ext@x") == "user+ext@x");
  CHECK(quote_822_local("") == "");
}

TEST_CASE("the prolog: From_ line, Return-Path, X-Original-To, Delivered-To") {
  ScopedTz tz;
  CopyEnvelope env{"s@example.org", "Orig@example.org", "u@example.org", 1762000000};
  CHECK(copy_prolog(env, kCopyMbox) ==
        "From s@example.org  Sat Nov  1 12:26:40 2025\n"
        "Return-Path: <s@example.org>\n"
        "X-Original-To: Orig@example.org\n"
        "Delivered-To: u@example.org\n");
  env.sender.clear();
  env.orig_rcpt.clear();
  CHECK(copy_prolog(env, kCopyMbox & ~kCopyDelivered) ==
        "From MAILER-DAEMON  Sat Nov  1 12:26:40 2025\nReturn-Path: <>\n");
  CHECK(copy_prolog(env, kCopyToFile | kCopyReturnPath | kCopyOrigRcpt | kCopyDelivered) ==
        "Return-Path: <>\nDelivered-To: u@example.org\n");
}

TEST_CASE("content: >From quoting at line starts, continued lines, the final newline") {
  std::string out;
  ContentWriter w(kCopyMbox);
  w.feed('N', "Subject: x", out);
  w.feed('N', "", out);
  w.feed('N', "From me", out);
  w.feed('L', "From ", out);  // a long line in two records: quoted once
  w.feed('N', "From again", out);
  w.feed('N', ">From already", out);
  w.feed('L', "no newline", out);
  w.finish(out);
  CHECK(out == "Subject: x\n\n>From me\n>From From again\n>From already\nno newline\n\n");
  std::string plain;
  ContentWriter m(kCopyToFile);
  m.feed('N', "From x", plain);
  m.finish(plain);
  CHECK(plain == "From x\n");
}

TEST_CASE("mail_copy copies a queue file into a file, and cuts it back on failure") {
  ScopedTz tz;
  QueueFixture q({"Subject: test", "", "From here", "body"});
  TempDir d;
  std::string box = d.str() + "/box";
  write_all(box, "old\n");
  CopyEnvelope env{"s@example.org", "", "u@example.org", 1762000000};
  {
    int fd = ::open(box.c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    FileSink sink(fd, true);
    int qfd = ::open(q.path.c_str(), O_RDONLY);
    CopyResult r = mail_copy(qfd, q.path, q.data_offset, env, kCopyMbox, sink);
    ::close(qfd);
    CHECK(r.status == 0);
  }
  CHECK(read_all(box) ==
        "old\nFrom s@example.org  Sat Nov  1 12:26:40 2025\nReturn-Path: <s@example.org>\n"
        "Delivered-To: u@example.org\nSubject: test\n\n>From here\nbody\n\n");

  // A sink that refuses the data (as a full disk would): the file keeps its old length.
  struct FailingSink : FileSink {
    using FileSink::FileSink;
    bool write(std::string_view) override {
      errno = ENOSPC;
      return false;
    }
  };
  size_t before = read_all(box).size();
  int fd = ::open(box.c_str(), O_WRONLY | O_APPEND);
  FailingSink sink(fd, true);
  int qfd = ::open(q.path.c_str(), O_RDONLY);
  CopyResult r = mail_copy(qfd, q.path, q.data_offset, env, kCopyMbox, sink);
  ::close(qfd);
  CHECK(r.status == kCopyStatWrite);
  CHECK(r.why.status == "4.3.0");
  CHECK(r.why.reason == "error writing message: No space left on device");
  CHECK(read_all(box).size() == before);
}

TEST_CASE("mail_copy marks a damaged queue file corrupt") {
  QueueFixture q({"Subject: x", "", "body"});
  // Cut the file in the middle of its content.
  REQUIRE(::truncate(q.path.c_str(), q.data_offset + 5) == 0);
  TempDir d;
  std::string box = d.str() + "/box";
  int fd = ::open(box.c_str(), O_WRONLY | O_CREAT, 0600);
  FileSink sink(fd, true);
  int qfd = ::open(q.path.c_str(), O_RDWR);
  CopyResult r = mail_copy(qfd, q.path, q.data_offset, {"s@x", "", "u@x", 0}, kCopyMbox, sink);
  ::close(qfd);
  CHECK(r.status == kCopyStatCorrupt);
  struct stat st {};
  REQUIRE(::stat(q.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == mta::queue::kQueueFileCorrupt);
  CHECK(read_all(box).empty());
}

TEST_CASE("Delivered-To: headers of the primary header are collected, folded") {
  QueueFixture q({"Received: from x", "Delivered-To: Alice@Example.org ", "X-Other: y",
                  "delivered-to:\tbob@example.org", "", "Delivered-To: body@example.org"});
  int fd = ::open(q.path.c_str(), O_RDONLY);
  auto found = read_delivered_to(fd, q.path, q.data_offset);
  ::close(fd);
  CHECK(found.size() == 2);
  CHECK(found.count("alice@example.org") == 1);
  CHECK(found.count("bob@example.org") == 1);
}

TEST_CASE("mailboxes are opened carefully and locked") {
  TempDir d;
  LockPolicy policy{kLockFcntl | kLockDotlock, 1, 0, 500};
  std::string box = d.str() + "/box";
  Dsn why;
  {
    auto mp = LockedMailbox::open(box, O_APPEND | O_WRONLY | O_CREAT, 0600, static_cast<uid_t>(-1),
                                  static_cast<gid_t>(-1), policy, "5.2.0", &why);
    REQUIRE(mp);
    CHECK(fs::exists(box + ".lock"));
    CHECK(S_ISREG(mp->stat_info().st_mode));
  }
  CHECK(!fs::exists(box + ".lock"));  // released

  // Someone else holds the dotlock: try again later.
  write_all(box + ".lock", "");
  auto held = LockedMailbox::open(box, O_APPEND | O_WRONLY | O_CREAT, 0600, static_cast<uid_t>(-1),
                                  static_cast<gid_t>(-1), policy, "5.2.0", &why);
  CHECK(!held);
  CHECK(why.status == "4.2.0");
  CHECK(why.reason == "unable to create lock file " + box + ".lock: File exists");
  fs::remove(box + ".lock");

  // A hard-linked file is refused.
  fs::create_hard_link(box, d.str() + "/other");
  auto linked = LockedMailbox::open(box, O_APPEND | O_WRONLY | O_CREAT, 0600, static_cast<uid_t>(-1),
                                    static_cast<gid_t>(-1), policy, "5.2.0", &why);
  CHECK(!linked);
  CHECK(why.status == "5.2.0");
  CHECK(why.reason == "file has 2 hard links");

  // A directory is refused.
  fs::create_directory(d.str() + "/dir");
  auto dir = LockedMailbox::open(d.str() + "/dir", O_APPEND | O_WRONLY | O_CREAT, 0600, static_cast<uid_t>(-1),
                                 static_cast<gid_t>(-1), LockPolicy{kLockFcntl, 1, 0, 500}, "5.2.0", &why);
  CHECK(!dir);
  CHECK(why.reason.find("cannot open file") == 0);  // open(O_WRONLY) of a directory fails first
}

TEST_CASE("alias values and .forward lines become destinations as tok822 parses them") {
  using V = std::vector<std::string>;
  CHECK(parse_destinations("alice, bob") == V{"alice", "bob"});
  CHECK(parse_destinations("alice,,bob,") == V{"alice", "bob"});
  CHECK(parse_destinations("\"|/usr/bin/procmail -f-\"") == V{"|/usr/bin/procmail -f-"});
  CHECK(parse_destinations("|exit 67") == V{"|exit 67"});
  CHECK(parse_destinations("/var/log/mail.txt") == V{"/var/log/mail.txt"});
  CHECK(parse_destinations("/home/u/Maildir/") == V{"/home/u/Maildir/"});
  CHECK(parse_destinations(":include:/etc/mail/list, root") == V{":include:/etc/mail/list", "root"});
  CHECK(parse_destinations(":INCLUDE:/x") == V{":INCLUDE:/x"});
  CHECK(parse_destinations("Alice Smith <alice@example.org>, bob (the builder)") == V{"alice@example.org", "bob"});
  CHECK(parse_destinations("staff: a, b;, c") == V{"a", "b", "c"});
  CHECK(parse_destinations("\\bob") == V{"bob"});
  CHECK(parse_destinations("\"a b\"@example.org") == V{"a b@example.org"});
  CHECK(parse_destinations("~/mail/inbox") == V{"~/mail/inbox"});
  CHECK(parse_destinations("  ").empty());
}

TEST_CASE("$name expansion of forward_path and friends") {
  std::map<std::string, std::string> vars{{"user", "joe"}, {"home", "/home/joe"}, {"domain", "x.org"}};
  auto lookup = [&](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  std::string filter = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  ExpandOutcome e = expand_attributes("$home/.forward", lookup, &filter);
  CHECK(e.text == "/home/joe/.forward");
  CHECK(!e.undefined);
  e = expand_attributes("$home/.forward${recipient_delimiter}${extension}", lookup, &filter);
  CHECK(e.undefined);  // no extension: this forward_path entry is skipped
  CHECK(!e.extension_matched);
  vars["extension"] = "list;rm -rf";
  vars["recipient_delimiter"] = "+";
  e = expand_attributes("$home/.forward${recipient_delimiter}${extension}", lookup, &filter);
  CHECK(e.text == "/home/joe/.forward+list_rm_-rf");
  CHECK(e.extension_matched);
  CHECK(expand_attributes("${extension?+$extension}", lookup, nullptr).text == "+list;rm -rf");
  CHECK(expand_attributes("${shell:/bin/sh}", lookup, nullptr).text == "/bin/sh");
  CHECK(expand_attributes("${domain?{in $domain}:{nowhere}}", lookup, nullptr).text == "in x.org");
  CHECK(expand_attributes("${shell?{x}:{nowhere}}", lookup, nullptr).text == "nowhere");
  CHECK(expand_attributes("cost $$5", lookup, nullptr).text == "cost $5");
  CHECK(expand_attributes("bad ${user", lookup, nullptr).error);
  CHECK(expand_attributes("bad $", lookup, nullptr).error);
}

TEST_CASE("local(8)'s list parameters") {
  CHECK(parse_expand_mask("allow_mail_to_files", "alias, forward") == (kExpandAlias | kExpandForward));
  CHECK(parse_expand_mask("allow_mail_to_files", "") == 0);
  CHECK(parse_expand_mask("allow_mail_to_commands", "Include") == kExpandInclude);
  CHECK_THROWS_WITH(parse_expand_mask("allow_mail_to_files", "alias, bogus"),
                    "unknown allow_mail_to_files value \"bogus\" in \"alias, bogus\"");
  CHECK(parse_lock_mask("fcntl, dotlock") == (kLockFcntl | kLockDotlock));
  CHECK(parse_lock_mask("flock") == kLockFlock);
  CHECK(parse_delivered_header_mask("command, file, forward") ==
        (kDeliveredHdrCommand | kDeliveredHdrFile | kDeliveredHdrForward));
  CHECK(parse_ext_prop_mask("canonical, virtual") == (kExtPropCanonical | kExtPropVirtual));
  CHECK(local_alias_maps_spec("hash:/etc/aliases, nis:mail.aliases") == "hash:/etc/aliases");
  CHECK(local_alias_maps_spec("proxy:hash:/etc/aliases texthash:/x") == "hash:/etc/aliases, texthash:/x");
}
