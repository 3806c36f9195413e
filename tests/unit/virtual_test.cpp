// virtual/ and lib/deliver/maildir: the pure parts of the virtual(8)
// delivery agent: the table search order (mail_addr_find), the mailbox
// path and its kind, uid/gid numbers as atol() reads them, case folding,
// virtual_mailbox_lock and the start-up checks; and a maildir delivery
// (directories made on the way, the prolog, tmp/ left empty, the size
// limit, an unwritable location).
#ifdef MTA_HAVE_VIRTUAL
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "deliver/mailbox_file.hpp"
#include "deliver/maildir.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "virtual/virtual_agent.hpp"
#include "virtual/virtual_settings.hpp"

namespace fs = std::filesystem;
using mta::maps::Maps;
using namespace mta::virt;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-virtual-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

mta::config::Config load_config(const TempDir& dir, const std::string& text) {
  std::ofstream(dir.path / "main.cf") << "compatibility_level = 3.6\nmyhostname = mx.example.org\n"
                                         "mydestination = $myhostname, localhost\n"
                                      << text;
  return mta::config::Config::load(dir.str());
}

std::string found(const mta::maps::Result& r) { return r.found() ? r.value : r.failed() ? "ERROR" : "-"; }

}  // namespace

TEST_CASE("virtual: mail_addr_find order: full address, without extension, @domain") {
  Maps m("virtual_mailbox_maps",
         "inline:{ florin@gamers.com=gamers.com/florin/, florin+list@gamers.com=lists/, @catch.test=catch/ }");
  CHECK(found(find_recipient(m, "florin@gamers.com", "+", nullptr)) == "gamers.com/florin/");
  CHECK(found(find_recipient(m, "florin+list@gamers.com", "+", nullptr)) == "lists/");       // full first
  CHECK(found(find_recipient(m, "florin+other@gamers.com", "+", nullptr)) == "gamers.com/florin/");
  CHECK(found(find_recipient(m, "florin+other@gamers.com", "", nullptr)) == "-");  // no delimiter: no stripping
  CHECK(found(find_recipient(m, "florin-x@gamers.com", "+-", nullptr)) == "gamers.com/florin/");
  CHECK(found(find_recipient(m, "anyone@catch.test", "+", nullptr)) == "catch/");
  CHECK(found(find_recipient(m, "nobody@gamers.com", "+", nullptr)) == "-");
  CHECK(found(find_recipient(m, "florin@sub.gamers.com", "+", nullptr)) == "-");  // no parent domains
}

TEST_CASE("virtual: the bare local part is tried only for local domains") {
  TempDir dir;
  mta::config::Config config = load_config(dir, "");
  mta::rewrite::LocalDomains local(config, mta::rewrite::InterfaceAddresses::from_list({"127.0.0.1"}));
  Maps m("virtual_mailbox_maps", "inline:{ postmaster=pm/ }");
  CHECK(found(find_recipient(m, "postmaster@localhost", "+", &local)) == "pm/");
  CHECK(found(find_recipient(m, "postmaster+x@mx.example.org", "+", &local)) == "pm/");
  CHECK(found(find_recipient(m, "postmaster@gamers.com", "+", &local)) == "-");
}

TEST_CASE("virtual: pattern tables see the full address only; errors are errors") {
  TempDir dir;
  std::ofstream(dir.path / "re") << "/^florin@gamers\\.com$/ full/\n/^@gamers\\.com$/ domain/\n";
  Maps re("virtual_mailbox_maps", "regexp:" + (dir.path / "re").string());
  CHECK(found(find_recipient(re, "florin@gamers.com", "+", nullptr)) == "full/");
  CHECK(found(find_recipient(re, "other@gamers.com", "+", nullptr)) == "-");
  Maps failing("virtual_uid_maps", "fail:broken, static:5000");
  CHECK(find_recipient(failing, "florin@gamers.com", "+", nullptr).failed());
  Maps st("virtual_uid_maps", "static:5000");
  CHECK(found(find_recipient(st, "whoever@anywhere.test", "+", nullptr)) == "5000");
}

TEST_CASE("virtual: the mailbox path and its kind") {
  MailboxLocation md = mailbox_location("/var/vmail", "gamers.com/florin/");
  CHECK(md.path == "/var/vmail/gamers.com/florin/");
  CHECK(md.maildir);
  MailboxLocation mb = mailbox_location("/var/vmail", "example.net/mbox");
  CHECK(mb.path == "/var/vmail/example.net/mbox");
  CHECK_FALSE(mb.maildir);
  CHECK(mailbox_location("/", "x").path == "//x");  // Postfix concatenates, no clean-up
  // A result that climbs out of the base is refused (not in Postfix).
  CHECK(mailbox_location("/var/vmail", "../../etc/cron.d/x").escapes_base);
  CHECK(mailbox_location("/var/vmail", "example.net/../../root/").escapes_base);
  CHECK(mailbox_location("/var/vmail", "example.net/..").escapes_base);
  CHECK_FALSE(mailbox_location("/var/vmail", "example.net/..hidden/").escapes_base);
  CHECK_FALSE(mailbox_location("/var/vmail", "example.net/florin/").escapes_base);
}

TEST_CASE("virtual: uid and gid numbers as atol() reads them") {
  CHECK(table_number("5000") == 5000);
  CHECK(table_number("  42xyz") == 42);
  CHECK(table_number("-7") == -7);
  CHECK(table_number("+8") == 8);
  CHECK(table_number("abc") == 0);
  CHECK(table_number("") == 0);
}

TEST_CASE("virtual: recipients are folded to lower case") {
  CHECK(fold_address("Florin+Ext@Gamers.COM") == "florin+ext@gamers.com");
  CHECK(fold_address("\xc3\x89t\xc3\xa9@x") == "\xc3\x89t\xc3\xa9@x");  // 8-bit bytes kept
}

TEST_CASE("virtual: virtual_mailbox_lock and proxy: prefixes") {
  CHECK(parse_virtual_lock_mask("fcntl, dotlock") == (mta::deliver::kLockFcntl | mta::deliver::kLockDotlock));
  CHECK(parse_virtual_lock_mask("flock") == mta::deliver::kLockFlock);
  CHECK_THROWS_WITH(parse_virtual_lock_mask("fcntl, lockf"),
                    "unknown mailbox_delivery_lock value \"lockf\" in \"fcntl, lockf\"");
  CHECK(direct_maps_spec("proxy:hash:/etc/postfix/vmailbox, ldap:/x") == "hash:/etc/postfix/vmailbox, ldap:/x");
}

TEST_CASE("virtual: settings and Postfix's start-up checks") {
  TempDir dir;
  Settings s = load_settings(load_config(dir, "mail_owner = root\nvirtual_mailbox_base = /var/vmail\n"
                                              "virtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n"
                                              "virtual_mailbox_maps = proxy:inline:{a@b=c/}\n"),
                             "virtual");
  CHECK(s.mailbox_base == "/var/vmail");
  CHECK(s.minimum_uid == 100);
  CHECK(s.mailbox_limit == 51200000);
  CHECK(s.lock_mask == (mta::deliver::kLockFcntl | mta::deliver::kLockDotlock));
  CHECK(s.mailbox_maps.title() == "virtual_mailbox_maps");
  CHECK(found(s.mailbox_maps.find("a@b")) == "c/");
  TempDir d2;
  CHECK_THROWS_WITH(load_settings(load_config(d2, "mail_owner = root\nvirtual_mailbox_limit = 1000\n"), "virtual"),
                    "configuration error: virtual_mailbox_limit is smaller than message_size_limit");
  TempDir d3;
  CHECK_THROWS_WITH(
      load_settings(load_config(d3, "mail_owner = root\nmessage_size_limit = 0\n"), "virtual"),
      "configuration error: virtual_mailbox_limit is limited but message_size_limit is unlimited");
  TempDir d4;
  CHECK_NOTHROW(load_settings(load_config(d4, "mail_owner = root\nvirtual_mailbox_limit = 0\n"), "virtual"));
}

namespace {
// A queue file holding a small message, as cleanup writes one.
struct QueuedMessage {
  TempDir dir;
  mta::deliver::QueuedContent content;
  explicit QueuedMessage(const std::vector<std::string>& lines) {
    fs::create_directories(dir.path / "incoming");
    mta::queue::QueueLayout layout(dir.str());
    std::string error;
    auto w = mta::queue::QueueFileWriter::create(layout, {}, &error);
    REQUIRE(w);
    w->put_size_placeholder();
    w->put_time(timeval{1700000000, 0});
    w->put_sender("s@example.org");
    w->put_recipient("florin@gamers.com", "florin@gamers.com");
    w->begin_content();
    for (const std::string& l : lines) w->put_line(l, 2048);
    w->begin_extracted();
    w->put_end();
    content.data_offset = w->data_offset();
    content.path = w->path();
    REQUIRE(w->finish(&error));
    content.fd = ::open(content.path.c_str(), O_RDONLY);
    REQUIRE(content.fd >= 0);
  }
  ~QueuedMessage() { ::close(content.fd); }
};
}  // namespace

TEST_CASE("maildir: directories made on the way, the prolog, one file in new/") {
  QueuedMessage msg({"Subject: hi", "", "From the start", "body"});
  TempDir box;
  mta::deliver::MaildirTarget target;
  target.path = box.str() + "/gamers.com/florin/";
  target.uid = ::geteuid();
  target.gid = ::getegid();
  target.default_dsn = "4.2.0";
  mta::deliver::CopyEnvelope env{"s@example.org", "Florin@gamers.com", "florin@gamers.com", 0};
  mta::deliver::CopyResult r = mta::deliver::deliver_maildir_file(target, msg.content, env);
  REQUIRE(r.status == 0);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(target.path + "new")) files.push_back(e.path());
  REQUIRE(files.size() == 1);
  CHECK(fs::is_empty(target.path + "tmp"));
  CHECK(fs::is_directory(target.path + "cur"));
  CHECK(read_all(files[0]) ==
        "Return-Path: <s@example.org>\nX-Original-To: Florin@gamers.com\nDelivered-To: florin@gamers.com\n"
        "Subject: hi\n\nFrom the start\nbody\n");  // no >From quoting in a maildir
  struct stat st {};
  REQUIRE(::stat(files[0].c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  // TIME.VdevIinoMusec.HOST
  const std::string name = files[0].filename().string();
  CHECK(name.find(".V") != std::string::npos);
  CHECK(name.find('I', name.find(".V")) != std::string::npos);
}

TEST_CASE("maildir: the size limit is 5.2.2, an unusable location the caller's status") {
  QueuedMessage msg({"Subject: big", "", std::string(500, 'x')});
  TempDir box;
  mta::deliver::MaildirTarget target;
  target.path = box.str() + "/md/";
  target.uid = ::geteuid();
  target.gid = ::getegid();
  target.size_limit = 100;
  target.default_dsn = "4.2.0";
  mta::deliver::CopyResult r = mta::deliver::deliver_maildir_file(target, msg.content, {"s@x", "", "r@y", 0});
  CHECK(r.status != 0);
  CHECK(r.why.status == "5.2.2");
  CHECK(r.why.reason == "maildir delivery failed: error writing message: File too large");
  CHECK(fs::is_empty(target.path + "tmp"));
  CHECK((!fs::exists(target.path + "new") || fs::is_empty(target.path + "new")));

  // A plain file where the maildir's parent should be: ENOTDIR.
  std::ofstream(box.path / "file") << "x";
  target.path = box.str() + "/file/md/";
  target.size_limit = 0;
  r = mta::deliver::deliver_maildir_file(target, msg.content, {"s@x", "", "r@y", 0});
  CHECK(r.status != 0);
  CHECK(r.why.status == "4.2.0");
  CHECK(r.why.reason.rfind("maildir delivery failed: create maildir file " + box.str() + "/file/md/tmp/", 0) == 0);
  CHECK(r.why.reason.find(": Not a directory") != std::string::npos);
}

#endif  // MTA_HAVE_VIRTUAL
