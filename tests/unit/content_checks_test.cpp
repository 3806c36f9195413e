// Unit tests for cleanup's content inspection: the MIME state machine
// (lib/mime, Postfix's mime_state), the header/body check actions
// (cleanup/content_checks, Postfix's cleanup_act) and a cleanup session
// that applies regexp: header_checks and body_checks to a message.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "cleanup/cleanup_session.hpp"
#include "cleanup/cleanup_status.hpp"
#include "cleanup/content_checks.hpp"
#include "mime/mime_state.hpp"
#include "queue/queue_file.hpp"

using namespace mta;
using mime::HeaderClass;

namespace {

// What the machine reported, one string per event.
struct Trace {
  std::vector<std::string> events;
  int errors = 0;
  mime::MimeState make(mime::MimeOptions opt = {}) {
    mime::MimeState::Callbacks cb;
    cb.header = [this](HeaderClass cls, std::string& h) {
      const char* c = cls == HeaderClass::primary ? "MAIN" : cls == HeaderClass::multipart ? "MULT" : "NEST";
      events.push_back(std::string(c) + " " + h);
    };
    cb.headers_done = [this] { events.push_back("END"); };
    cb.body = [this](char type, std::string_view text, long long offset) {
      events.push_back("BODY " + std::string(1, type) + " " + std::to_string(offset) + " " + std::string(text));
    };
    cb.error = [this](int e, std::string_view) { errors |= e; };
    return mime::MimeState(opt, std::move(cb));
  }
};

void feed(mime::MimeState& m, const std::vector<std::string>& lines) {
  for (const std::string& l : lines) m.record('N', l);
  m.end();
}

}  // namespace

TEST_CASE("mime: primary header, folded lines, the body", "[content_checks]") {
  Trace t;
  mime::MimeState m = t.make();
  feed(m, {"Subject: one", " two", "X-Name : value", "", "body 1", "body 2"});
  CHECK(t.events == std::vector<std::string>{"MAIN Subject: one\n two", "MAIN X-Name: value", "END", "BODY N 0 ",
                                             "BODY N 1 body 1", "BODY N 8 body 2"});
}

TEST_CASE("mime: a body without the empty line gets one", "[content_checks]") {
  Trace t;
  mime::MimeState m = t.make();
  feed(m, {"Subject: x", "not a header"});
  CHECK(t.events == std::vector<std::string>{"MAIN Subject: x", "END", "BODY N 0 ", "BODY N 1 not a header"});
}

TEST_CASE("mime: multipart parts, nested messages, offsets per part", "[content_checks]") {
  Trace t;
  mime::MimeState m = t.make();
  feed(m, {"Content-Type: multipart/mixed; boundary=\"BB\"", "Subject: s", "", "preamble", "--BB",
           "Content-Type: text/plain", "", "part one", "--BB", "Content-Type: message/rfc822", "",
           "Subject: inner", "", "inner body", "--BB--", "epilogue"});
  CHECK(t.events == std::vector<std::string>{
                        "MAIN Content-Type: multipart/mixed; boundary=\"BB\"", "MAIN Subject: s", "END",
                        "BODY N 0 ", "BODY N 1 preamble", "BODY N 10 --BB",
                        "MULT Content-Type: text/plain", "BODY N 0 ", "BODY N 1 part one", "BODY N 10 --BB",
                        "MULT Content-Type: message/rfc822", "BODY N 0 ", "NEST Subject: inner", "BODY N 0 ",
                        "BODY N 1 inner body", "BODY N 0 --BB--", "BODY N 7 epilogue"});
}

TEST_CASE("mime: disabled, everything after the primary header is body", "[content_checks]") {
  Trace t;
  mime::MimeOptions opt;
  opt.disable_mime = true;
  mime::MimeState m = t.make(opt);
  feed(m, {"Content-Type: multipart/mixed; boundary=BB", "", "--BB", "Content-Type: text/plain", "", "x"});
  CHECK(t.events == std::vector<std::string>{"MAIN Content-Type: multipart/mixed; boundary=BB", "END", "BODY N 0 ",
                                             "BODY N 1 --BB", "BODY N 6 Content-Type: text/plain", "BODY N 31 ",
                                             "BODY N 32 x"});
}

TEST_CASE("mime: long lines, truncated headers, the nesting limit", "[content_checks]") {
  SECTION("an L record continues a header and a body line") {
    Trace t;
    mime::MimeState m = t.make();
    m.record('L', "Subject: a");
    m.record('N', "b");
    m.record('N', "");
    m.record('L', "xx");
    m.end();  // the unterminated last line is terminated
    CHECK(t.events == std::vector<std::string>{"MAIN Subject: ab", "END", "BODY N 0 ", "BODY L 1 xx", "BODY N 4 "});
  }
  SECTION("header_size_limit") {
    Trace t;
    mime::MimeOptions opt;
    opt.header_limit = 12;
    mime::MimeState m = t.make(opt);
    feed(m, {"Subject: 0123456789", " more"});
    CHECK(t.events.front() == "MAIN Subject: 012");
  }
  SECTION("mime_nesting_limit") {
    Trace t;
    mime::MimeOptions opt;
    opt.nesting_limit = 1;
    opt.report_nesting = true;
    mime::MimeState m = t.make(opt);
    feed(m, {"Content-Type: multipart/mixed; boundary=a", "", "--a", "Content-Type: multipart/mixed; boundary=b", "",
             "--b", "Content-Type: multipart/mixed; boundary=c", "", "x"});
    CHECK(t.errors == mime::mime_err::kNesting);
    CHECK(mime::mime_error_detail(t.errors).text == "MIME nesting exceeds safety limit");
  }
  SECTION("strict_8bitmime_body") {
    Trace t;
    mime::MimeOptions opt;
    opt.report_8bit_in_7bit_body = true;
    mime::MimeState m = t.make(opt);
    feed(m, {"Subject: x", "", "caf\xc3\xa9"});
    CHECK(t.errors == mime::mime_err::k8bitIn7bitBody);
  }
}

TEST_CASE("content checks: action words and DSN codes", "[content_checks]") {
  cleanup::CheckAction a = cleanup::split_action("REJECT  go away\tnow");
  CHECK(a.command == "REJECT");
  CHECK(a.text == "go away\tnow");
  CHECK(cleanup::split_action("dunno").text.empty());
  CHECK(cleanup::dsn_prepend("5.7.1", "spam") == "5.7.1 spam");
  CHECK(cleanup::dsn_prepend("5.7.1", "4.7.0 later") == "4.7.0 later");
  CHECK(cleanup::dsn_prepend("5.7.1", "550 no") == "5.7.1 550 no");
  CHECK(cleanup::dsn_prepend("5.7.1", "5.7.1x") == "5.7.1 5.7.1x");
}

TEST_CASE("content checks: what each action does", "[content_checks]") {
  namespace cflag = message::cleanup_flag;
  namespace cstat = message::cleanup_stat;
  int flags = cflag::kFilter, errs = 0;
  std::string reason;
  std::optional<std::string> filter, redirect;
  std::vector<std::string> bcc;
  cleanup::CheckTarget target{flags, errs, reason, filter, redirect, bcc};
  std::string sender = "a@b", rcpt = "c@d";
  cleanup::CheckLogFacts facts;
  facts.queue_id = "ABC123";
  facts.sender = &sender;
  facts.recipient = &rcpt;
  auto act = [&](std::string_view value, std::string_view context = "header") {
    return cleanup::act(facts, target, context, "Subject: spam", value, "header_checks");
  };

  SECTION("REJECT without text") {
    act("REJECT");
    CHECK(reason == "5.7.1 message content rejected");
    CHECK(errs == cstat::kCont);
    CHECK((flags & cflag::kFilter) == 0);
  }
  SECTION("REJECT with text, and with a 4.x.x code") {
    act("reject Go away");
    CHECK(reason == "5.7.1 Go away");
    CHECK(errs == cstat::kCont);
    act("REJECT 4.7.0 later");
    CHECK(reason == "4.7.0 later");
    CHECK((errs & cstat::kDefer) != 0);
  }
  SECTION("HOLD once, DISCARD, PASS") {
    act("HOLD");
    CHECK((flags & cflag::kHold) != 0);
    act("DISCARD bye");
    CHECK((flags & cflag::kDiscard) != 0);
    CHECK((flags & cflag::kFilter) == 0);
    CHECK(errs == 0);
  }
  SECTION("FILTER, REDIRECT, BCC need their arguments") {
    act("FILTER");
    act("FILTER nocolon");
    CHECK(!filter);
    act("FILTER smtp:[127.0.0.1]:10025");
    CHECK(filter == std::optional<std::string>("smtp:[127.0.0.1]:10025"));
    act("REDIRECT nobody");
    CHECK(!redirect);
    act("REDIRECT x@y");
    CHECK(redirect == std::optional<std::string>("x@y"));
    CHECK((flags & cflag::kFilter) == 0);
    act("BCC z@y");
    CHECK(bcc == std::vector<std::string>{"z@y"});
  }
  SECTION("PREPEND, REPLACE, IGNORE, STRIP, DUNNO") {
    CHECK(act("PREPEND X-Tag: 1").prepend == std::optional<std::string>("X-Tag: 1"));
    CHECK(!act("PREPEND not a header").prepend);  // a header must precede a header
    CHECK(act("PREPEND any text", "body").prepend == std::optional<std::string>("any text"));
    cleanup::CheckOutcome r = act("REPLACE Subject: clean");
    CHECK(r.kind == cleanup::CheckOutcome::replace);
    CHECK(r.replacement == "Subject: clean");
    CHECK(act("REPLACE bad").kind == cleanup::CheckOutcome::keep);
    CHECK(act("IGNORE").kind == cleanup::CheckOutcome::drop);
    CHECK(act("strip").kind == cleanup::CheckOutcome::drop);
    CHECK(act("DUNNO").kind == cleanup::CheckOutcome::keep);
    CHECK(act("OK").kind == cleanup::CheckOutcome::keep);
    CHECK(act("BOGUS").kind == cleanup::CheckOutcome::keep);
    CHECK(errs == 0);
  }
}

TEST_CASE("content checks: Postfix's log line", "[content_checks]") {
  std::string sender = "a@b", rcpt = "c@d", proto = "ESMTP", helo = "client";
  cleanup::CheckLogFacts f;
  f.queue_id = "4XyZ";
  f.origin = "localhost[127.0.0.1]";
  f.sender = &sender;
  f.recipient = &rcpt;
  f.proto = &proto;
  f.helo = &helo;
  CHECK(cleanup::act_log_line(f, "reject", "header", "Subject: spam", "5.7.1 message content rejected") ==
        "4XyZ: reject: header Subject: spam from localhost[127.0.0.1]; from=<a@b> to=<c@d> proto=ESMTP "
        "helo=<client>: 5.7.1 message content rejected");
  cleanup::CheckLogFacts local;
  local.queue_id = "Q";
  local.sender = &sender;
  CHECK(cleanup::act_log_line(local, "hold", "body", std::string(300, 'x'), "") ==
        "Q: hold: body " + std::string(200, 'x') + " from local; from=<a@b>");
}

namespace {

class PlainRewriter : public cleanup::AddressRewriter {
 public:
  std::string rewrite(std::string_view, std::string_view address) override { return std::string(address); }
};

struct CheckQueue {
  CheckQueue() {
    char tmpl[] = "/tmp/content-checks-test.XXXXXX";
    dir = ::mkdtemp(tmpl);
    for (const char* q : {"incoming", "hold", "defer", "bounce"}) std::filesystem::create_directory(dir + "/" + q);
    std::ofstream(dir + "/header_checks") << "/^Subject: reject/ REJECT no thanks\n"
                                             "/^Subject: hold/ HOLD\n"
                                             "/^Subject: discard/ DISCARD\n"
                                             "/^Subject: filter/ FILTER error:filtered\n"
                                             "/^Subject: redirect/ REDIRECT other@example.com\n"
                                             "/^Subject: replace/ REPLACE Subject: replaced\n"
                                             "/^X-Drop:/ IGNORE\n"
                                             "/name=.*\\.exe/ REJECT no exe\n";
    std::ofstream(dir + "/body_checks") << "/^bad word/ REJECT body refused\n/^prepend here/ PREPEND inserted\n";
  }
  ~CheckQueue() { std::filesystem::remove_all(dir); }
  std::string dir;
};

}  // namespace

TEST_CASE("cleanup session: header and body checks", "[content_checks]") {
  namespace cstat = message::cleanup_stat;
  CheckQueue q;
  queue::QueueLayout layout(q.dir);
  cleanup::CleanupSettings settings;
  settings.myhostname = "host.example.com";
  auto tables = std::make_shared<cleanup::ContentCheckTables>();
  tables->header = std::make_unique<maps::Maps>("header_checks", "regexp:" + q.dir + "/header_checks");
  tables->mime_header = std::make_unique<maps::Maps>("mime_header_checks", "regexp:" + q.dir + "/header_checks");
  tables->nested_header = std::make_unique<maps::Maps>("nested_header_checks", "regexp:" + q.dir + "/header_checks");
  tables->body = std::make_unique<maps::Maps>("body_checks", "regexp:" + q.dir + "/body_checks");
  tables->body_limit = 100;
  settings.checks = tables;
  PlainRewriter rewriter;
  cleanup::AddressMapper mapper;
  std::string error;

  // Runs one message with content LINES; returns the status.
  auto run = [&](std::vector<std::string> lines, int flags, std::string* id = nullptr,
                 std::string* reason = nullptr) {
    cleanup::CleanupSession s(settings, layout, rewriter, mapper, nullptr);
    REQUIRE(s.open(&error));
    s.control(flags);
    for (auto [t, d] : std::vector<std::pair<char, std::string>>{
             {'T', "1700000000 0"}, {'S', "a@example.com"}, {'R', "b@example.com"}, {'M', ""}})
      s.record(t, d);
    for (const std::string& l : lines) s.record('N', l);
    for (char t : {'X', 'E'}) s.record(t, "");
    int status = s.finish();
    if (id) *id = s.queue_id();
    if (reason) *reason = s.reason();
    return status;
  };
  int filter = message::cleanup_flag::kFilter;

  SECTION("REJECT from header_checks, and no checks without the FILTER flag") {
    std::string reason;
    CHECK(run({"Subject: reject me", "", "x"}, filter, nullptr, &reason) == cstat::kCont);
    CHECK(reason == "5.7.1 no thanks");
    CHECK(std::filesystem::is_empty(q.dir + "/incoming"));
    CHECK(run({"Subject: reject me", "", "x"}, 0) == 0);
  }
  SECTION("mime_header_checks on an attachment, body_checks inside a part, only within the limit") {
    std::vector<std::string> head = {"Content-Type: multipart/mixed; boundary=XX", "", "--XX",
                                     "Content-Type: text/plain", ""};
    std::vector<std::string> exe = head;
    exe.insert(exe.end(), {"hi", "--XX", "Content-Type: application/octet-stream; name=a.exe", "", "AAAA", "--XX--"});
    CHECK(run(exe, filter) == cstat::kCont);
    std::vector<std::string> late = head;  // past body_checks_size_limit in the first part
    late.insert(late.end(), {std::string(120, 'f'), "bad word", "--XX", "", "ok"});
    CHECK(run(late, filter) == 0);
    std::vector<std::string> second = late;  // the limit counts per part
    second.push_back("bad word");
    CHECK(run(second, filter) == cstat::kCont);
  }
  SECTION("HOLD, DISCARD, FILTER, REDIRECT, REPLACE, IGNORE, PREPEND") {
    std::string id;
    CHECK(run({"Subject: hold", "", "x"}, filter, &id) == 0);
    CHECK(std::filesystem::exists(layout.path("hold", id)));
    CHECK(run({"Subject: discard", "", "x"}, filter, &id) == 0);
    CHECK(std::filesystem::is_empty(q.dir + "/incoming"));
    // REDIRECT ends the inspection: it comes last.
    CHECK(run({"Subject: filter", "Subject: replace", "X-Drop: 1", "Subject: redirect", "", "prepend here"}, filter,
              &id) == 0);
    queue::Envelope env;
    std::string path = layout.path("incoming", id);
    auto reader = queue::QueueFileReader::open(path, false, &error);
    REQUIRE(reader);
    REQUIRE(reader->read_envelope(&env, &error));
    CHECK(env.filter == std::optional<std::string>("error:filtered"));
    CHECK(env.redirect == std::optional<std::string>("other@example.com"));
    std::vector<std::string> lines;
    REQUIRE(reader->read_content(env, [&](char, std::string_view text) {
      lines.emplace_back(text);
      return true;
    }, &error));
    CHECK(std::find(lines.begin(), lines.end(), "Subject: replaced") != lines.end());
    CHECK(std::find(lines.begin(), lines.end(), "X-Drop: 1") == lines.end());
    CHECK(std::find(lines.begin(), lines.end(), "inserted") == lines.end());  // not inspected any more
    reader.reset();
    CHECK(run({"Subject: x", "", "prepend here"}, filter, &id) == 0);
    reader = queue::QueueFileReader::open(layout.path("incoming", id), false, &error);
    REQUIRE(reader);
    queue::Envelope env2;
    REQUIRE(reader->read_envelope(&env2, &error));
    lines.clear();
    REQUIRE(reader->read_content(env2, [&](char, std::string_view text) {
      lines.emplace_back(text);
      return true;
    }, &error));
    auto at = std::find(lines.begin(), lines.end(), "inserted");
    REQUIRE(at != lines.end());
    CHECK(*(at + 1) == "prepend here");
  }
}
