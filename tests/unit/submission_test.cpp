// Unit tests for the submission library (cleanup/): RFC 822 address trees
// as Postfix's tok822 builds them, local-part quoting, the header table, the
// header/body splitter, dates, cleanup status texts, and a cleanup session
// run against a fake trivial-rewrite into a temporary queue.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "cleanup/cleanup_session.hpp"
#include "cleanup/cleanup_status.hpp"
#include "cleanup/header_reader.hpp"
#include "cleanup/header_table.hpp"
#include "cleanup/mail_date.hpp"
#include "cleanup/record_stream.hpp"
#include "cleanup/rfc822_tree.hpp"
#include "ipc/stream.hpp"
#include "queue/queue_file.hpp"
#include "queue/record.hpp"

using namespace mta;

namespace {

std::vector<std::string> addrs(std::string_view text) { return rfc822::address_list(text); }

std::string externalized(std::string_view text) { return rfc822::Tree::parse(text).externalize(); }

}  // namespace

TEST_CASE("rfc822: address lists as tok822 groups them", "[submission]") {
  CHECK(addrs("bob") == std::vector<std::string>{"bob"});
  CHECK(addrs("Bob Smith <bob@example.com>, carol") == std::vector<std::string>{"bob@example.com", "carol"});
  CHECK(addrs("\"john doe\"@example.com") == std::vector<std::string>{"john doe@example.com"});
  CHECK(addrs("friends: a, b@x;, undisclosed-recipients:;") == std::vector<std::string>{"a", "b@x"});
  CHECK(addrs("bob (Bob Smith) , (c) carol") == std::vector<std::string>{"bob", "carol"});
  CHECK(addrs("<@relay.example,@r2:dest@example.org>") == std::vector<std::string>{"@relay.example,@r2:dest@example.org"});
  // Missing commas are added between words.
  CHECK(addrs("a b c") == std::vector<std::string>{"a", "b", "c"});
  // Odd input is kept, as Postfix keeps it.
  CHECK(addrs("<<a@b") == std::vector<std::string>{"<<a@b"});
  CHECK(addrs("a@b@c") == std::vector<std::string>{"a@b@c"});
  CHECK(addrs("").empty());
  CHECK(addrs("<>").empty());
  CHECK(addrs("\"unterminated") == std::vector<std::string>{"unterminated"});
  int count = 0;
  CHECK(rfc822::first_address("a@x, b@y", &count) == "a@x");
  CHECK(count == 2);
}

TEST_CASE("rfc822: externalized as cleanup writes headers", "[submission]") {
  CHECK(externalized("Bob Smith <bob@example.com>, carol") == "Bob Smith <bob@example.com>, carol");
  CHECK(externalized("\"john doe\"@example.com") == "\"john doe\"@example.com");
  CHECK(externalized("a b") == "a, b");
  CHECK(externalized("bob   (Bob   Smith)") == "bob (Bob   Smith)");
  CHECK(rfc822::Tree::parse("a, b").externalize(true) == "a,\nb");
  CHECK(rfc822::Tree::scan("  Joe   User ").externalize() == "Joe User");

  rfc822::Tree tree = rfc822::Tree::parse("Bob <bob>, carol");
  std::vector<int> nodes = tree.addresses();
  REQUIRE(nodes.size() == 2);
  CHECK(tree.externalize_address(nodes[0]) == "bob");
  tree.replace_address(nodes[0], "bob@example.com");
  CHECK(tree.externalize() == "Bob <bob@example.com>, carol");
}

TEST_CASE("rfc822: local parts quoted and unquoted", "[submission]") {
  CHECK(rfc822::quote_local("john doe@example.com") == "\"john doe\"@example.com");
  CHECK(rfc822::quote_local("john.doe@example.com") == "john.doe@example.com");
  CHECK(rfc822::quote_local("a..b@x") == "\"a..b\"@x");
  CHECK(rfc822::quote_local(".a@x") == "\".a\"@x");
  CHECK(rfc822::quote_local("") == "\"\"");
  CHECK(rfc822::quote_local("@r:a b@x") == "@r:\"a b\"@x");
  CHECK(rfc822::quote_local("q\"x@y") == "\"q\\\"x\"@y");
  CHECK(rfc822::unquote_local("\"john doe\"@example.com") == "john doe@example.com");
  CHECK(rfc822::unquote_local("\"a\\\"b\"@x") == "a\"b@x");
  CHECK(rfc822::unquote_local("\"\"") == "");
}

TEST_CASE("header table: names, flags, the drop list", "[submission]") {
  message::HeaderTable t;
  const message::HeaderInfo* to = t.find("TO: x");
  REQUIRE(to);
  CHECK(to->type == message::HeaderType::to);
  CHECK((to->flags & message::header_flag::kExtract) != 0);
  REQUIRE(t.find("Resent-Cc : y"));
  CHECK((t.find("Resent-Cc : y")->flags & message::header_flag::kResent) != 0);
  CHECK(t.find("X-Other: z") == nullptr);
  CHECK((t.find("Bcc: b")->flags & message::header_flag::kDrop) == 0);
  t.set_drop_list("bcc, content-length, resent-bcc, return-path, x-secret");
  CHECK((t.find("Bcc: b")->flags & message::header_flag::kDrop) != 0);
  REQUIRE(t.find("X-Secret: s"));
  CHECK((t.find("X-Secret: s")->flags & message::header_flag::kDrop) != 0);

  CHECK(message::header_name_length("Subject: x") == 7);
  CHECK(message::header_name_length("Subject : x") == 7);
  CHECK(message::header_name_length(" Subject: x") == 0);
  CHECK(message::header_name_length("No colon") == 0);
  CHECK(message::header_name_length(": empty name") == 0);
  CHECK(message::header_name_length("Two words: x") == 0);
}

TEST_CASE("header reader: headers, continuations, the body", "[submission]") {
  std::vector<std::string> headers;
  std::vector<std::string> events;
  message::HeaderReader::Callbacks cb;
  cb.header = [&](std::string& h) { headers.push_back(h); };
  cb.headers_done = [&] { events.push_back("done"); };
  cb.body = [&](char type, std::string_view text) { events.push_back(std::string(1, type) + std::string(text)); };

  SECTION("an ordinary message") {
    message::HeaderReader r(1000, cb);
    r.record('N', "Subject: hi");
    r.record('N', "To: a,");
    r.record('N', "\tb");
    r.record('N', "");
    r.record('N', "body");
    r.end();
    CHECK(headers == std::vector<std::string>{"Subject: hi", "To: a,\n\tb"});
    CHECK(events == std::vector<std::string>{"done", "N", "Nbody"});
  }
  SECTION("no empty line before the body: one is added") {
    message::HeaderReader r(1000, cb);
    r.record('N', "Subject: hi");
    r.record('N', "body text");
    r.end();
    CHECK(events == std::vector<std::string>{"done", "N", "Nbody text"});
  }
  SECTION("headers only") {
    message::HeaderReader r(1000, cb);
    r.record('N', "Subject: hi");
    r.end();
    CHECK(headers.size() == 1);
    CHECK(events == std::vector<std::string>{"done"});
  }
  SECTION("an unterminated last line gets an end") {
    message::HeaderReader r(1000, cb);
    r.record('N', "");
    r.record('L', "last");
    r.end();
    CHECK(events == std::vector<std::string>{"done", "N", "Llast", "N"});
  }
  SECTION("a long header is cut at the limit") {
    message::HeaderReader r(10, cb);
    r.record('L', "X-Long: 12");
    r.record('N', "345");
    r.record('N', " more");
    r.record('N', "");
    r.end();
    REQUIRE(headers.size() == 1);
    CHECK(headers[0] == "X-Long: 12");
    CHECK(r.truncated());
  }
  SECTION("a line longer than a record continues the header") {
    message::HeaderReader r(1000, cb);
    r.record('L', "X-Long: abc");
    r.record('N', "def");
    r.end();
    CHECK(headers == std::vector<std::string>{"X-Long: abcdef"});
  }
}

TEST_CASE("mail_date and Message-Id stamps", "[submission]") {
  const char* saved = std::getenv("TZ");
  std::string old = saved ? saved : "";
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  CHECK(message::mail_date(1700000000) == "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)");
  CHECK(message::mail_date(1699000000) == "Fri,  3 Nov 2023 08:26:40 +0000 (UTC)");
  CHECK(message::message_id_stamp(1700000000) == "20231114221320");
  ::setenv("TZ", "CET-1", 1);
  ::tzset();
  CHECK(message::mail_date(1700000000) == "Tue, 14 Nov 2023 23:13:20 +0100 (CET)");
  if (saved)
    ::setenv("TZ", old.c_str(), 1);
  else
    ::unsetenv("TZ");
  ::tzset();
}

TEST_CASE("cleanup status texts", "[submission]") {
  using namespace message::cleanup_stat;
  CHECK(message::cleanup_strerror(0) == "Success");
  CHECK(message::cleanup_strerror(kHops) == "too many hops");
  CHECK(message::cleanup_strerror(kSize | kWrite) == "message file too big");
  CHECK(message::cleanup_strerror(kBad | kSize) == "internal protocol error");
  CHECK(message::cleanup_stat_detail(kRcpt).dsn == "5.1.0");
}

namespace {

// trivial-rewrite's "local" rule for the test: append @example.com.
class FakeRewriter : public cleanup::AddressRewriter {
 public:
  std::string rewrite(std::string_view, std::string_view address) override {
    ++calls;
    std::string a(address);
    if (a.empty() || a == "\"\"") return a;
    if (a.find('@') == std::string::npos) a += "@example.com";
    return a;
  }
  int calls = 0;
};

struct TempQueue {
  TempQueue() {
    char tmpl[] = "/tmp/submission-test.XXXXXX";
    dir = ::mkdtemp(tmpl);
    for (const char* q : {"incoming", "hold", "defer", "bounce"}) std::filesystem::create_directory(dir + "/" + q);
  }
  ~TempQueue() { std::filesystem::remove_all(dir); }
  std::string dir;
};

std::vector<std::string> content_of(const std::string& path, queue::Envelope* env) {
  std::string error;
  auto reader = queue::QueueFileReader::open(path, false, &error);
  REQUIRE(reader);
  REQUIRE(reader->read_envelope(env, &error));
  std::vector<std::string> lines;
  std::string line;
  REQUIRE(reader->read_content(*env, [&](char type, std::string_view text) {
    line += text;
    if (type == 'N') {
      lines.push_back(line);
      line.clear();
    }
    return true;
  }, &error));
  return lines;
}

}  // namespace

TEST_CASE("cleanup session: a local submission", "[submission]") {
  TempQueue q;
  queue::QueueLayout layout(q.dir);
  cleanup::CleanupSettings settings;
  settings.myhostname = "host.example.com";
  settings.headers.set_drop_list("bcc, content-length, resent-bcc, return-path");
  FakeRewriter rewriter;
  cleanup::AddressMapper mapper;
  cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
  std::string error;
  REQUIRE(s.open(&error));
  s.control(message::cleanup_flag::kMaskExternal);
  for (auto [type, data] : std::vector<std::pair<char, std::string>>{
           {'T', "1700000000 5"}, {'A', "rewrite_context=local"}, {'F', "Joe User"}, {'S', "joe"},
           {'M', ""}, {'N', "Received: by host (Postfix, from userid 0)"}, {'N', "Subject: test"},
           {'N', "To: Bob <bob>, carol@example.org"}, {'N', "Bcc: secret"}, {'N', "Return-Path: <x@y>"},
           {'N', "body line"}, {'X', ""}, {'R', "bob"}, {'R', "bob"}, {'R', ""}, {'E', ""}})
    s.record(type, data);
  CHECK(s.end_seen());
  REQUIRE(s.finish() == 0);

  std::string path = layout.path("incoming", s.queue_id());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  queue::Envelope env;
  std::vector<std::string> lines = content_of(path, &env);
  CHECK(env.sender == std::optional<std::string>("joe@example.com"));
  CHECK(env.fullname == std::optional<std::string>("Joe User"));
  REQUIRE(env.recipients.size() == 2);  // the duplicate "bob" is gone
  CHECK(env.recipients[0].address == "bob@example.com");
  CHECK(env.recipients[0].original == std::optional<std::string>("bob"));
  CHECK(env.recipients[0].dsn_orcpt == "rfc822;bob@example.com");
  CHECK(env.recipients[1].address == "MAILER-DAEMON@example.com");
  REQUIRE(lines.size() == 8);
  CHECK(lines[1] == "Subject: test");
  CHECK(lines[2] == "To: Bob <bob@example.com>, carol@example.org");
  CHECK(lines[3].starts_with("Message-Id: <"));
  CHECK(lines[3].ends_with("." + s.queue_id() + "@host.example.com>"));
  CHECK(lines[4].starts_with("Date: "));
  CHECK(lines[5] == "From: Joe User <joe@example.com>");
  CHECK(lines[6].empty());  // the missing empty line
  CHECK(lines[7] == "body line");
}

TEST_CASE("cleanup session: refusals", "[submission]") {
  TempQueue q;
  queue::QueueLayout layout(q.dir);
  cleanup::CleanupSettings settings;
  settings.myhostname = "host.example.com";
  FakeRewriter rewriter;
  cleanup::AddressMapper mapper;
  std::string error;
  using namespace message::cleanup_stat;

  SECTION("no recipients") {
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(0);
    for (auto [t, d] : std::vector<std::pair<char, std::string>>{{'T', "1 0"}, {'S', "a"}, {'M', ""}, {'X', ""}, {'E', ""}})
      s.record(t, d);
    CHECK(s.finish() == kRcpt);
    CHECK(std::filesystem::is_empty(q.dir + "/incoming"));
  }
  SECTION("a recipient before the sender") {
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(0);
    s.record('T', "1 0");
    s.record('R', "x");
    CHECK_FALSE(s.accepting());
    CHECK(s.finish() == kBad);
  }
  SECTION("too many hops, and the client cannot bounce") {
    settings.hopcount_limit = 2;
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(message::cleanup_flag::kBounce);  // but no bounce service: a write error, kept for later
    for (auto [t, d] : std::vector<std::pair<char, std::string>>{
             {'T', "1 0"}, {'S', "a"}, {'R', "b"}, {'M', ""}, {'N', "Received: one"}, {'N', "Received: two"},
             {'N', ""}, {'X', ""}, {'E', ""}})
      s.record(t, d);
    CHECK(s.finish() == kWrite);
    CHECK(std::filesystem::is_empty(q.dir + "/incoming"));
  }
  SECTION("message_size_limit") {
    settings.message_limit = 500;
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(0);
    s.record('T', "1 0");
    s.record('S', "a");
    s.record('R', "b");
    s.record('M', "");
    for (int i = 0; i < 50 && s.accepting(); ++i) s.record('N', "a line of text that adds up");
    CHECK_FALSE(s.accepting());
    CHECK(s.finish() == kSize);
  }
  SECTION("a disconnect before the end") {
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(0);
    s.record('T', "1 0");
    s.record('S', "a");
    s.protocol_error();
    CHECK(s.finish() == kBad);
    CHECK(std::filesystem::is_empty(q.dir + "/incoming"));
  }
}

// cleanup's record reader (cleanup/record_stream.hpp) over a socket (the
// cleanup protocol) and over a pipe (postdrop's input): records longer than
// a read buffer, a record cut short, a clean end.
TEST_CASE("record stream: long records, a record cut short, the end", "[submission]") {
  std::string big(200000, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  std::string bytes;
  mta::queue::append_record(bytes, 'N', "short");
  mta::queue::append_record(bytes, 'N', big);
  mta::queue::append_record(bytes, 'N', "");
  mta::queue::append_record(bytes, 'E', "");
  std::string cut = bytes;
  mta::queue::append_record(cut, 'N', std::string(5000, 'y'));
  cut.resize(cut.size() - 10);  // the last record's data ends early

  auto feed = [](int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      REQUIRE(n > 0);
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  };
  auto check = [&](auto& in, bool whole) {
    char type = 0;
    std::string data, error;
    using mta::message::RecordStatus;
    REQUIRE(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::ok);
    CHECK((type == 'N' && data == "short"));
    REQUIRE(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::ok);
    CHECK(data.size() == big.size());
    CHECK(data == big);
    REQUIRE(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::ok);
    CHECK((type == 'N' && data.empty()));
    REQUIRE(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::ok);
    CHECK(type == 'E');
    if (whole) {
      CHECK(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::eof);
    } else {
      CHECK(mta::message::read_record(in, "in", 0, &type, &data, &error) == RecordStatus::error);
      CHECK(error == "in: unexpected EOF in data, record type 78 length 5000");
    }
  };
  for (bool whole : {true, false}) {
    const std::string& input = whole ? bytes : cut;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    std::thread writer(feed, sv[1], input);
    mta::ipc::Stream stream(sv[0], "test socket");
    stream.set_timeout(std::chrono::seconds(5));
    check(stream, whole);
    writer.join();

    int p[2];
    REQUIRE(::pipe(p) == 0);
    std::thread pipe_writer(feed, p[1], input);
    mta::message::FdSource source(p[0]);
    check(source, whole);
    pipe_writer.join();
    ::close(p[0]);
  }
}
