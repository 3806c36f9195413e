// bounce/: the delivery status logs (format, parsing), the text rules, the
// templates and the composition of notifications, held against what the
// real Postfix 3.7 bounce daemon wrote for the same input.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "address/address.hpp"
#include "bounce/bounce_log.hpp"
#include "bounce/bounce_service.hpp"
#include "bounce/bounce_template.hpp"
#include "bounce/dsn_report.hpp"
#include "bounce/original_file.hpp"
#include "bounce/post_mail.hpp"
#include "bounce/rfc822_text.hpp"
#include "config/config.hpp"
#include "queue/queue_file.hpp"

using namespace mta;
using namespace mta::bounce;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-bounce-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary | std::ios::trunc) << text;
  }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Times as the real bounce printed them (UTC).
struct UtcZone {
  UtcZone() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
};

config::Config test_config(const TempDir& d, const std::string& extra = "") {
  d.write("main.cf", "compatibility_level = 3.6\nmyhostname = vm.localdomain\n" + extra);
  return config::Config::load(d.str());
}

std::string join(const std::vector<ContentRecord>& records) {
  std::string out;
  for (const ContentRecord& r : records) out += r.text + (r.type == 'N' ? "\n" : "");
  return out;
}

ipc::proto::Recipient rcpt(const std::string& address, long offset = 0, const std::string& orcpt = "",
                           int notify = 0, const std::string& orig = "") {
  ipc::proto::Recipient r;
  r.address = address;
  r.orig_addr = orig;
  r.offset = offset;
  r.dsn_orcpt = orcpt;
  r.dsn_notify = notify;
  return r;
}

ipc::proto::Dsn dsn(const std::string& status, const std::string& action, const std::string& reason) {
  ipc::proto::Dsn d;
  d.status = status;
  d.action = action;
  d.reason = reason;
  return d;
}

}  // namespace

TEST_CASE("a defer log entry is byte for byte what the real bounce daemon wrote") {
  // From a real Postfix 3.7 instance: queue/defer/5/5EEA9A72754.
  const std::string real =
      "\n"
      "<y@defer.example>: try again later\n"
      "recipient=y@defer.example\n"
      "offset=449\n"
      "dsn_orig_rcpt=rfc822;y@defer.example\n"
      "notify_flags=12\n"
      "status=4.4.1\n"
      "action=delayed\n"
      "reason=try again later\n"
      "\n";
  auto r = rcpt("y@defer.example", 449, "rfc822;y@defer.example", 12, "y@defer.example");
  auto d = dsn("4.4.1", "delayed", "try again later");
  CHECK(format_log_entry(r, d, true) == real);
  // Without backwards_bounce_logfile_compatibility there is no "<rcpt>: text" line.
  CHECK(format_log_entry(r, d, false) == real.substr(0, 1) + real.substr(real.find("recipient=")));
}

TEST_CASE("log entries: optional fields, quoting, the null address") {
  ipc::proto::Dsn d = dsn("5.1.1", "failed", "unknown user: \"a b\"");
  d.dtype = "smtp";
  d.dtext = "550 5.1.1 no such user";
  d.mtype = "dns";
  d.mname = "mx.example.net";
  std::string e = format_log_entry(rcpt("a b@example.com", 0, "", 0, "Alias@example.com"), d, false);
  CHECK(e ==
        "\nrecipient=\"a b\"@example.com\noriginal_recipient=Alias@example.com\nstatus=5.1.1\naction=failed\n"
        "diag_type=smtp\ndiag_text=550 5.1.1 no such user\nmta_type=dns\nmta_mname=mx.example.net\n"
        "reason=unknown user: \"a b\"\n\n");
  // An original recipient that differs only in case is not logged; the
  // null address is "<>"; a diagnostic type without text is left out.
  ipc::proto::Dsn half = dsn("4.0.0", "", "");
  half.dtype = "smtp";
  CHECK(format_log_entry(rcpt("", 0, "", 0, ""), half, true) == "\n<>: \nrecipient=<>\nstatus=4.0.0\n\n");
  CHECK(format_log_entry(rcpt("U@x", 0, "", 0, "u@X"), dsn("", "", "r"), false) == "\nrecipient=U@x\nreason=r\n\n");
}

TEST_CASE("neutered fields: control bytes become '?'") {
  auto r = rcpt("a\nb@x");
  auto d = dsn("5.0.0", "failed", "bad\ttab\r\n");
  neuter(r, true);
  neuter(d, true);
  CHECK(r.address == "a?b@x");
  CHECK(d.reason == "bad?tab??");
}

TEST_CASE("the log reader reads what the writer writes, and Postfix's placeholders") {
  std::string text = format_log_entry(rcpt("y@defer.example", 449, "rfc822;y@defer.example", 12),
                                      dsn("4.4.1", "delayed", "try again later"), true) +
                     format_log_entry(rcpt("z@x", 0, "", 0, "alias@x"), dsn("", "", ""), false);
  std::vector<std::string> warnings;
  auto entries = parse_log(text, "defer", "defer/5/5EEA9A72754", true, &warnings);
  REQUIRE(entries.size() == 2);
  CHECK(warnings.empty());
  CHECK(entries[0].rcpt.address == "y@defer.example");
  CHECK(entries[0].rcpt.offset == 449);
  CHECK(entries[0].rcpt.dsn_orcpt == "rfc822;y@defer.example");
  CHECK(entries[0].rcpt.dsn_notify == 12);
  CHECK(entries[0].dsn.status == "4.4.1");
  CHECK(entries[0].dsn.action == "delayed");
  CHECK(entries[0].dsn.reason == "try again later");
  // Missing status and action come from the log's kind; a missing reason is described.
  CHECK(entries[1].rcpt.orig_addr == "alias@x");
  CHECK(entries[1].dsn.status == "4.0.0");
  CHECK(entries[1].dsn.action == "delayed");
  CHECK(entries[1].dsn.reason == "(description unavailable)");
  auto bounced = parse_log(text, "bounce", "bounce/X", true);
  CHECK(bounced[1].dsn.status == "5.0.0");
  CHECK(bounced[1].dsn.action == "failed");
}

TEST_CASE("the log reader takes old-style entries, skips bad lines, drops a cut-off entry") {
  std::string text =
      "<old@x>: the old way\n\n"        // Postfix < 2.3
      "<>: from the null sender\n\n"
      "\nrecipient=\n-bogus line\nnot-a-pair\nwhat=ever\nreason=r\nnotify_flags=99\n\n"
      "recipient=cut@x\nreason=no blank line after me\n";
  std::vector<std::string> warnings;
  auto entries = parse_log(text, "bounce", "bounce/ID", true, &warnings);
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].rcpt.address == "old@x");
  CHECK(entries[0].dsn.reason == "the old way");
  CHECK(entries[0].dsn.status == "5.0.0");
  CHECK(entries[1].rcpt.address == "(MAILER-DAEMON)");
  CHECK(entries[2].rcpt.address == "(MAILER-DAEMON)");
  CHECK(entries[2].rcpt.dsn_notify == 0);  // 99 is not a NOTIFY mask
  CHECK(warnings == std::vector<std::string>{"bounce/ID: malformed record: -bogus line...",
                                             "bounce/ID: malformed record: missing '=' after attribute name",
                                             "bounce/ID: unknown attribute name: what, ignored"});
}

TEST_CASE("append_log creates the hashed log, appends, and read_log/remove_log find it") {
  TempDir d;
  queue::QueueLayout layout(d.str());
  std::string error;
  std::string e1 = format_log_entry(rcpt("a@x", 10), dsn("4.0.0", "delayed", "one"), true);
  std::string e2 = format_log_entry(rcpt("b@x", 20), dsn("4.0.0", "delayed", "two"), true);
  REQUIRE(append_log(layout, "defer", "5EEA9A72754", e1, {}, &error));
  REQUIRE(append_log(layout, "defer", "5EEA9A72754", e2, {}, &error));
  std::string path = d.str() + "/defer/5/5EEA9A72754";
  CHECK(read_all(path) == e1 + e2);
  CHECK((fs::status(path).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  std::vector<LogEntry> entries;
  REQUIRE(read_log(layout, "defer", "5EEA9A72754", true, &entries, &error) == LogRead::ok);
  CHECK(entries.size() == 2);
  CHECK(remove_log(layout, "defer", "5EEA9A72754", &error));
  CHECK(read_log(layout, "defer", "5EEA9A72754", true, &entries, &error) == LogRead::missing);
  CHECK(remove_log(layout, "defer", "5EEA9A72754", &error));  // already gone: fine
  // A log that cannot be created is an error with Postfix's words.
  fs::create_directories(d.path / "bounce");
  fs::permissions(d.path / "bounce", fs::perms::none);
  if (::geteuid() != 0) {
    CHECK_FALSE(append_log(layout, "bounce", "ABC", e1, {}, &error));
    CHECK(error.rfind("open file bounce ABC: ", 0) == 0);
  }
  fs::permissions(d.path / "bounce", fs::perms::owner_all);
}

TEST_CASE("quote_822_local quotes local parts that are not dot-strings") {
  CHECK(quote_822_local("user@example.com") == "user@example.com");
  CHECK(quote_822_local("first.last@x") == "first.last@x");
  CHECK(quote_822_local("a b@x") == "\"a b\"@x");
  CHECK(quote_822_local("a..b@x") == "\"a..b\"@x");
  CHECK(quote_822_local(".a@x") == "\".a\"@x");
  CHECK(quote_822_local("a.@x") == "\"a.\"@x");
  CHECK(quote_822_local("a\"b\\c@x") == "\"a\\\"b\\\\c\"@x");
  CHECK(quote_822_local("a@b@x") == "\"a@b\"@x");
  CHECK(quote_822_local("@x") == "\"\"@x");
  CHECK(quote_822_local("") == "\"\"");
  CHECK(quote_822_local("MAILER-DAEMON") == "MAILER-DAEMON");
  CHECK(quote_822_local("j\xc3\xb6rg@x") == "j\xc3\xb6rg@x");
  CHECK(quote_822_local("j\xc3\xb6rg@x", false) == "\"j\\\xc3\\\xb6rg\"@x");
  CHECK(quote_822_local("@a,@b:c d@x") == "@a,@b:\"c d\"@x");
}

TEST_CASE("line_wrap breaks as Postfix's line_wrap does") {
  CHECK(line_wrap("short", 79, 4) == std::vector<std::string>{"short"});
  std::string reason =
      "<someone@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 <someone@example.com>: "
      "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)";
  CHECK(line_wrap(reason, 79, 4) ==
        std::vector<std::string>{
            "<someone@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1",
            "    <someone@example.com>: Recipient address rejected: User unknown in virtual",
            "    mailbox table (in reply to RCPT TO command)"});
  // A word longer than the line stays whole; blanks at a break go.
  std::string longword(100, 'x');
  CHECK(line_wrap("a " + longword + "   b", 79, 4) == std::vector<std::string>{"a", "    " + longword, "    b"});
  CHECK(line_wrap("", 79, 4) == std::vector<std::string>{""});
}

TEST_CASE("mail_date, header names, mail_name as an atom") {
  UtcZone utc;
  CHECK(mail_date(1795347689) == "Sun, 22 Nov 2026 11:41:29 +0000 (UTC)");
  CHECK(mail_date(1796115600) == "Tue,  1 Dec 2026 09:00:00 +0000 (UTC)");
  CHECK(header_name_length("Subject: x") == 7);
  CHECK(header_name_length("Subject : x") == 7);
  CHECK(header_name_length("Sub ject: x") == 0);
  CHECK(header_name_length(" Subject: x") == 0);
  CHECK(header_name_length(": x") == 0);
  CHECK(header_name_length("body text") == 0);
  CHECK(is_header_or_continuation("\tcontinued"));
  CHECK_FALSE(is_header_or_continuation(""));
  CHECK(dsn_mail_name("Postfix") == "Postfix");
  CHECK(dsn_mail_name("My Mail (v1)") == "My-Mail--v1-");
  CHECK(mta::address::verp_sender("+=", "owner@list.example", "user@example.com") == "owner+user=example.com@list.example");
  CHECK(mta::address::verp_sender("+=", "owner", "user") == "owner+user");
}

TEST_CASE("the built-in templates are Postfix 3.7's, as postconf -t shows them") {
  Templates t = default_templates();
  std::string dump = dump_templates(t);
  CHECK(dump.rfind("failure_template = <<EOF\nCharset: us-ascii\nFrom: Mail Delivery System <MAILER-DAEMON>\n"
                   "Subject: Undelivered Mail Returned to Sender\nPostmaster-Subject: Postmaster Copy: Undelivered "
                   "Mail\n\nThis is the mail system at host $myhostname.\n",
                   0) == 0);
  CHECK(dump.find("\nEOF\n\ndelay_template = <<EOF\n") != std::string::npos);
  CHECK(dump.find("success_template = <<EOF\nCharset: us-ascii\nFrom: Mail Delivery System <MAILER-DAEMON>\n"
                  "Subject: Successful Mail Delivery Report\n\n") != std::string::npos);
  const std::string tail = "                   The mail system\nEOF\n";
  REQUIRE(dump.size() > tail.size());
  CHECK(dump.substr(dump.size() - tail.size()) == tail);
  CHECK(t.failure.text.size() == 11);
  CHECK_FALSE(t.success.postmaster_subject);
  CHECK(*t.delay.postmaster_subject == "Postmaster Warning: Delayed Mail");
}

TEST_CASE("template text expands main.cf parameters and time units") {
  TempDir d;
  config::Config c = test_config(d, "delay_warning_time = 4h\nmaximal_queue_lifetime = 3d\n");
  Templates t = default_templates();
  std::vector<std::string> lines, warnings;
  std::string error;
  REQUIRE(expand_template_text(t.delay, c, &lines, &warnings, &error));
  CHECK(lines[0] == "This is the mail system at host vm.localdomain.");
  CHECK(lines[6] == "Your message could not be delivered for more than 4 hour(s).");
  CHECK(lines[7] == "It will be retried until it is 3 day(s) old.");
  CHECK(warnings.empty());
  // A value that rounds to zero is noted, as Postfix does.
  config::Config c2 = test_config(d, "delay_warning_time = 30m\n");
  REQUIRE(expand_template_text(t.delay, c2, &lines, &warnings, &error));
  CHECK(lines[6] == "Your message could not be delivered for more than 0 hour(s).");
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[0] == "[built-in]: zero result in delay template conversion of parameter \"delay_warning_time_hours\"");
  // An undefined name or an unknown unit is an error.
  Template bad = t.success;
  bad.text = {"$no_such_parameter_here"};
  CHECK_FALSE(expand_template_text(bad, c, &lines, &warnings, &error));
  CHECK(error == "[built-in]: undefined $name in success template: $no_such_parameter_here");
  bad.text = {"${delay_warning_time_fortnights}"};
  CHECK_FALSE(expand_template_text(bad, c, &lines, &warnings, &error));
  CHECK(error == "[built-in]: unrecognized suffix \"fortnights\" in parameter \"delay_warning_time_fortnights\"");
}

TEST_CASE("bounce_template_file replaces templates, and unusable ones are ignored with a warning") {
  Templates t = default_templates();
  std::vector<std::string> warnings;
  std::string error;
  const std::string file =
      "# site templates\n"
      "failure_template = <<EOF\n"
      "Charset: utf-8\n"
      "From: Postmaster <postmaster>\n"
      "Subject: Returned mail\n"
      "\n"
      "Die Nachricht an $myhostname ging nicht: \xc3\xa4rgerlich.\n"
      "EOF\n"
      "\n"
      "delay_template = <<EOF\n"
      "Bogus: header\n"
      "\n"
      "text\n"
      "EOF\n"
      "verify_template = <<EOF\n"
      "Postmaster-Subject: no such thing here\n"
      "\n"
      "text\n"
      "EOF\n"
      "junk_template = <<EOF\n"
      "EOF\n";
  REQUIRE(load_templates(file, "/etc/postfix/bounce.cf", t, &warnings, &error));
  CHECK(t.failure.origin == "/etc/postfix/bounce.cf");
  CHECK(t.failure.charset == "utf-8");
  CHECK(t.failure.mime_encoding == "8bit");
  CHECK(t.failure.from == "Postmaster <postmaster>");
  CHECK(t.failure.text == std::vector<std::string>{"Die Nachricht an $myhostname ging nicht: \xc3\xa4rgerlich."});
  CHECK(*t.failure.postmaster_subject == "Postmaster Copy: Undelivered Mail");
  CHECK(t.delay.origin == "[built-in]");
  CHECK(warnings == std::vector<std::string>{
                        "/etc/postfix/bounce.cf: unknown \"Bogus\" header label in delay template -- ignoring this "
                        "template",
                        "/etc/postfix/bounce.cf: inapplicable \"Postmaster-Subject\" header label in verify template "
                        "-- ignoring this template",
                        "/etc/postfix/bounce.cf, line 22: unknown template name: junk_template -- ignoring this "
                        "template"});
  CHECK_FALSE(load_templates("failure_template <<EOF\n", "f", t, &warnings, &error));
  CHECK(error == "f, line 2: missing '=' after attribute name: \"failure_template <<EOF\"");
  CHECK_FALSE(load_templates("failure_template = << \nx\n", "f", t, &warnings, &error));
  CHECK(error == "f, line 2: missing end marker after <<");
}

namespace {

// The original message of the real bounce below: queue ID A2630A7239F,
// received over SMTP with RET=HDRS ENVID=e1 NOTIFY=FAILURE,DELAY.
OriginalMessage real_original() {
  OriginalMessage m;
  m.present = true;
  m.sender = "sender@localhost";
  m.arrival_time = 1795347689;
  m.message_size = 333;
  m.content_found = true;
  for (const char* line :
       {"Received: from [127.0.0.1] (localhost [127.0.0.1])", "\tby vm.localdomain (Postfix) with ESMTP id A2630A7239F",
        "\tfor <nosuchuser@localhost>; Sun, 22 Nov 2026 11:41:29 +0000 (UTC)", "Subject: test bounce",
        "From: Sender <sender@localhost>", "To: nosuch@localhost", "Message-ID: <abc@x>",
        "Date: Sun, 22 Nov 2026 11:41:29 +0000 (UTC)", "", "hello body"})
    m.content.push_back({'N', line});
  return m;
}

ReportSettings real_settings() {
  ReportSettings s;
  s.queue_id = "A2630A7239F";
  s.myhostname = "vm.localdomain";
  s.boundary = report_boundary("A2630A7239F", 1795347689, "vm.localdomain");
  s.mime_encoding = report_mime_encoding(true, "", nullptr);
  s.dsn_envid = "e1";
  s.max_queue_time = 5 * 86400;
  return s;
}

// What the real Postfix 3.7 bounce daemon sent to cleanup for that message
// (the delivered notice minus what cleanup and local added: Received, Date,
// Message-Id, the qualified From, Return-Path and Delivered-To).
const char* const kRealNotice = R"(From: Mail Delivery System <MAILER-DAEMON>
Subject: Undelivered Mail Returned to Sender
To: sender@localhost
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="A2630A7239F.1795347689/vm.localdomain"
Content-Transfer-Encoding: 8bit

This is a MIME-encapsulated message.

--A2630A7239F.1795347689/vm.localdomain
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host vm.localdomain.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<nosuchuser@localhost>: unknown user: "nosuchuser"

--A2630A7239F.1795347689/vm.localdomain
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; vm.localdomain
Original-Envelope-Id: e1
X-Postfix-Queue-ID: A2630A7239F
X-Postfix-Sender: rfc822; sender@localhost
Arrival-Date: Sun, 22 Nov 2026 11:41:29 +0000 (UTC)

Final-Recipient: rfc822; nosuchuser@localhost
Original-Recipient: rfc822;nosuchuser@localhost
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; unknown user: "nosuchuser"

--A2630A7239F.1795347689/vm.localdomain
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <sender@localhost>
Received: from [127.0.0.1] (localhost [127.0.0.1])
	by vm.localdomain (Postfix) with ESMTP id A2630A7239F
	for <nosuchuser@localhost>; Sun, 22 Nov 2026 11:41:29 +0000 (UTC)
Subject: test bounce
From: Sender <sender@localhost>
To: nosuch@localhost
Message-ID: <abc@x>
Date: Sun, 22 Nov 2026 11:41:29 +0000 (UTC)

--A2630A7239F.1795347689/vm.localdomain--
)";

std::vector<LogEntry> real_log() {
  return parse_log(format_log_entry(rcpt("nosuchuser@localhost", 335, "rfc822;nosuchuser@localhost", 12),
                                    dsn("5.1.1", "failed", "unknown user: \"nosuchuser\""), true),
                   "bounce", "bounce/A2630A7239F", true);
}

}  // namespace

TEST_CASE("a non-delivery notice is what the real bounce daemon sent") {
  UtcZone utc;
  TempDir d;
  config::Config c = test_config(d);
  Templates t = default_templates();
  std::vector<std::string> text, warnings;
  std::string error;
  REQUIRE(expand_template_text(t.failure, c, &text, &warnings, &error));
  OriginalMessage orig = real_original();
  std::vector<LogEntry> log = real_log();
  ReportSettings s = real_settings();
  Notice n = compose_notice(s, t.failure, &text, orig, &log, "sender@localhost", false, kNotifyFailure, kRetHdrs);
  CHECK(n.count == 1);
  CHECK(join(n.content) == kRealNotice);
  // RET=FULL: the whole message, as message/rfc822.
  Notice full = compose_notice(s, t.failure, &text, orig, &log, "sender@localhost", false, kNotifyFailure, kRetFull);
  std::string f = join(full.content);
  CHECK(f.find("Content-Description: Undelivered Message\nContent-Type: message/rfc822\n") != std::string::npos);
  CHECK(f.find("Date: Sun, 22 Nov 2026 11:41:29 +0000 (UTC)\n\nhello body\n\n--A2630A7239F") != std::string::npos);
  // Above bounce_size_limit only the headers go back.
  s.bounce_size_limit = 100;
  CHECK(join(compose_notice(s, t.failure, &text, orig, &log, "sender@localhost", false, kNotifyFailure, kRetFull)
                 .content)
            .find("Content-Type: text/rfc822-headers") != std::string::npos);
}

TEST_CASE("notices: postmaster copies, NOTIFY filters, delay reports, missing pieces") {
  UtcZone utc;
  Templates t = default_templates();
  OriginalMessage orig = real_original();
  ReportSettings s = real_settings();
  s.mime_encoding = report_mime_encoding(false, "", nullptr);  // smtputf8 off, no encoding: no CTE headers
  std::vector<LogEntry> log = real_log();

  // The postmaster copy: its own subject, no template text, auto-generated.
  Notice pm = compose_notice(s, t.failure, nullptr, orig, &log, "postmaster", true, kNotifyOverride, kRetHdrs);
  std::string p = join(pm.content);
  CHECK(p.rfind("From: Mail Delivery System <MAILER-DAEMON>\nSubject: Postmaster Copy: Undelivered Mail\n"
                "To: postmaster\nAuto-Submitted: auto-generated\n",
                0) == 0);
  CHECK(p.find("This is the mail system") == std::string::npos);
  CHECK(p.find("Content-Transfer-Encoding") == std::string::npos);
  CHECK(p.find("Content-Type: text/plain; charset=us-ascii\n\n\n<nosuchuser@localhost>: unknown user") !=
        std::string::npos);

  // NOTIFY=DELAY only: no failure notice for that recipient.
  log[0].rcpt.dsn_notify = kNotifyDelay;
  CHECK(compose_notice(s, t.failure, nullptr, orig, &log, "s@x", false, kNotifyFailure, kRetFull).count == 0);
  // A delay warning: Action from the log, Will-Retry-Until, "Undelivered" headers.
  log[0].dsn = dsn("4.4.1", "delayed", "try again later");
  Notice w = compose_notice(s, t.delay, nullptr, orig, &log, "s@x", false, kNotifyDelay, kRetHdrs);
  std::string ws = join(w.content);
  CHECK(w.count == 1);
  CHECK(ws.find("Subject: Delayed Mail (still being retried)\n") != std::string::npos);
  CHECK(ws.find("Action: delayed\nStatus: 4.4.1\nDiagnostic-Code: X-Postfix; try again later\n"
                "Will-Retry-Until: Fri, 27 Nov 2026 11:41:29 +0000 (UTC)\n") != std::string::npos);
  CHECK(ws.find("Content-Description: Undelivered Message Headers\n") != std::string::npos);

  // Remote MTA and SMTP diagnostics; an expanded-from address; long lines wrap.
  std::vector<LogEntry> smtp = parse_log(
      format_log_entry(rcpt("u@example.net", 0, "", 0, "alias@example.org"),
                       [] {
                         auto d = dsn("5.1.1", "failed", "host mx.example.net[192.0.2.1] said: 550 5.1.1 "
                                                         "<u@example.net>: Recipient address rejected: User "
                                                         "unknown (in reply to RCPT TO command)");
                         d.dtype = "smtp";
                         d.dtext = "550 5.1.1 <u@example.net>: Recipient address rejected: User unknown";
                         d.mtype = "dns";
                         d.mname = "mx.example.net";
                         return d;
                       }(),
                       true),
      "bounce", "b", true);
  std::string sm = join(compose_notice(s, t.failure, nullptr, orig, &smtp, "s@x", false, kNotifyFailure, kRetHdrs)
                            .content);
  // (Continuation lines count their indent in the 79 columns.)
  CHECK(sm.find("\n<u@example.net> (expanded from <alias@example.org>): host\n"
                "    mx.example.net[192.0.2.1] said: 550 5.1.1 <u@example.net>: Recipient\n"
                "    address rejected: User unknown (in reply to RCPT TO command)\n") != std::string::npos);
  CHECK(sm.find("Final-Recipient: rfc822; u@example.net\nOriginal-Recipient: rfc822; alias@example.org\n"
                "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.net\n"
                "Diagnostic-Code: smtp; 550 5.1.1 <u@example.net>: Recipient address rejected:\n"
                "    User unknown\n") != std::string::npos);

  // No log and no original: placeholders, still a notice (a failure is never lost).
  OriginalMessage none;
  Notice blind = compose_notice(s, t.failure, nullptr, none, nullptr, "s@x", false, kNotifyFailure, kRetFull);
  std::string b = join(blind.content);
  CHECK(blind.count == 1);
  CHECK(b.find("\n\t--- Delivery report unavailable ---\n") != std::string::npos);
  CHECK(b.find("X-Postfix-Sender") == std::string::npos);
  const std::string unavailable = "Content-Type: message/rfc822\n\n\t--- Undelivered message unavailable ---\n";
  REQUIRE(b.size() > unavailable.size());
  CHECK(b.substr(b.size() - unavailable.size()) == unavailable);  // and no closing boundary, as Postfix
  // ... but a delay warning without a log says nothing.
  CHECK(compose_notice(s, t.delay, nullptr, none, nullptr, "s@x", false, kNotifyDelay, kRetHdrs).count == 0);
}

TEST_CASE("the original queue file: sender, arrival, size, content records") {
  TempDir d;
  fs::create_directories(d.path / "incoming");
  queue::QueueLayout layout(d.str());
  std::string error;
  auto w = queue::QueueFileWriter::create(layout, {}, &error);
  REQUIRE(w);
  w->put_size_placeholder();
  w->put_time({1795347689, 250000});
  w->put_sender("a b@example.org");
  off_t r1 = w->put_recipient("x@example.net", "x@example.net");
  w->begin_content();
  w->put_line("Subject: hi");
  w->put_line("Message-ID: <id@x>");
  w->put_line("");
  w->put_line(std::string(3000, 'L'), 2048);
  w->begin_extracted();
  w->put_end();
  std::string id = w->id();
  REQUIRE(w->finish(&error));

  auto f = OriginalFile::open(layout, "incoming", id, false, "MAILER-DAEMON@h", 0, &error);
  REQUIRE(f);
  const OriginalMessage& m = f->info();
  CHECK(m.present);
  CHECK(m.sender == "\"a b\"@example.org");
  CHECK(m.arrival_time == 1795347689);
  CHECK(m.message_size > 0);
  REQUIRE(m.content.size() == 5);
  CHECK(m.content[0] == ContentRecord{'N', "Subject: hi"});
  CHECK(m.content[3].type == 'L');  // a long line stays split as it was
  CHECK(m.content[3].text.size() == 2048);
  CHECK(m.content[4] == ContentRecord{'N', std::string(952, 'L')});
  CHECK(m.message_id.empty());
  // Above the size limit only the header is read (only it can go back).
  auto small = OriginalFile::open(layout, "incoming", id, false, "MAILER-DAEMON@h", 100, &error);
  CHECK(small->info().content.size() == 2);
  auto threaded = OriginalFile::open(layout, "incoming", id, true, "MAILER-DAEMON@h", 0, &error);
  CHECK(threaded->info().message_id == "<id@x>");

  // DELRCPT: R becomes D at the logged offset; again is harmless.
  REQUIRE(f->mark_done(static_cast<long>(r1), &error));
  REQUIRE(f->mark_done(static_cast<long>(r1), &error));
  queue::QueueMessage qm;
  REQUIRE(queue::load_queue_file(layout.path("incoming", id), &qm, &error));
  CHECK(qm.envelope.pending_recipients() == 0);
  // The null sender is reported as MAILER-DAEMON@$myhostname.
  auto w2 = queue::QueueFileWriter::create(layout, {}, &error);
  REQUIRE(w2);
  w2->put_size_placeholder();
  w2->put_time({1795347689, 0});
  w2->put_sender("");
  w2->put_recipient("x@example.net", "x@example.net");
  w2->begin_content();
  w2->put_line("Subject: bounce");
  w2->begin_extracted();
  w2->put_end();
  std::string id2 = w2->id();
  REQUIRE(w2->finish(&error));
  CHECK(OriginalFile::open(layout, "incoming", id2, false, "MAILER-DAEMON@h", 0, &error)->info().sender ==
        "MAILER-DAEMON@h");
  // A missing file is not an error: the notice says the message is unavailable.
  auto gone = OriginalFile::open(layout, "deferred", "ABCDEF12345", false, "MAILER-DAEMON@h", 0, &error);
  REQUIRE(gone);
  CHECK_FALSE(gone->info().present);
}

TEST_CASE("post_mail_head: the Received and Date headers of a notice") {
  UtcZone utc;
  auto head = post_mail_head("0709EA72146", "vm.localdomain", "Postfix", 1795348194);
  CHECK(join(head) ==
        "Received: by vm.localdomain (Postfix)\n\tid 0709EA72146; Sun, 22 Nov 2026 11:49:54 +0000 (UTC)\n"
        "Date: Sun, 22 Nov 2026 11:49:54 +0000 (UTC)\n");
}
