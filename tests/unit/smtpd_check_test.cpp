// smtpd's access policy (smtpd/smtpd_check.hpp): every restriction, every
// access(5) action, the lookup orders, smtpd_delay_reject, reply codes and
// the log lines, with a fake trivial-rewrite resolver and a fake DNS.
// Expected replies and log lines are what the real Postfix 3.7.11 sent and
// logged for the same settings (driven through XCLIENT on a loopback
// instance started by postfix-oracle).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_SMTPD_CHECK)

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/rewrite_client.hpp"
#include "log/log.hpp"
#include "smtpd/restriction_list.hpp"
#include "smtpd/dns_lookup.hpp"
#include "smtpd/smtpd_check.hpp"

using namespace mta::smtpd;
namespace fs = std::filesystem;
namespace proto = mta::ipc::proto;

namespace {

// trivial-rewrite as the tests' main.cf would make it answer: pfo.example
// and localhost are local, valias.example virtual alias, vbox.example
// virtual mailbox, relay.example relay; an address without a domain gets
// @pfo.example; "fail.example" makes the service fail.
class FakeResolver : public mta::ipc::RewriteService {
 public:
  int calls = 0;
  std::string rewrite(std::string_view, std::string_view address) override { return std::string(address); }
  mta::ipc::ResolveResult resolve(std::string_view, std::string_view address) override {
    ++calls;
    mta::ipc::ResolveResult r;
    std::string addr(address);
    if (addr.find('@') == std::string::npos) addr += "@pfo.example";
    std::string domain = addr.substr(addr.rfind('@') + 1);
    r.recipient = addr;
    if (domain == "fail.example") {
      r.flags = proto::kResolveFlagFail;
    } else if (domain == "pfo.example" || domain == "localhost") {
      r.transport = "local";
      r.flags = proto::kResolveClassLocal | proto::kResolveFlagFinal;
    } else if (domain == "valias.example") {
      // As trivial-rewrite answers for the virtual alias class.
      r.transport = "error";
      r.nexthop = "5.1.1 User unknown in virtual alias table";
      r.flags = proto::kResolveClassAlias | proto::kResolveFlagFinal;
    } else if (domain == "bad.example") {
      r.transport = "error";  // relay_domains, and transport_maps: bad.example error:5.1.1 no such user here
      r.nexthop = "5.1.1 no such user here";
      r.flags = proto::kResolveClassRelay;
    } else if (domain == "vbox.example") {
      r.transport = "virtual";
      r.flags = proto::kResolveClassVirtual | proto::kResolveFlagFinal;
    } else if (domain == "relay.example") {
      r.transport = "relay";
      r.flags = proto::kResolveClassRelay;
    } else {
      r.transport = "smtp";
      r.flags = proto::kResolveClassDefault;
    }
    if (r.nexthop.empty()) r.nexthop = domain;
    return r;
  }
};

// Names in `hosts` exist; names in `retry` fail temporarily; `a`/`txt` hold
// block list answers.
class FakeDns : public DnsLookup {
 public:
  std::vector<std::string> hosts{"b.example", "y.example", "h.example"};
  std::vector<std::string> retry;
  std::vector<std::string> null_mx;  // MX 0 . (RFC 7505)
  std::map<std::string, std::vector<std::string>> a, txt;
  std::vector<std::string> asked;
  DnsStatus mail_host(const std::string& name) override {
    asked.push_back(name);
    for (const std::string& r : retry)
      if (r == name) return DnsStatus::retry;
    for (const std::string& r : null_mx)
      if (r == name) return DnsStatus::null_mx;
    for (const std::string& h : hosts)
      if (h == name) return DnsStatus::ok;
    return DnsStatus::not_found;
  }
  DnsStatus a_records(const std::string& name, std::vector<std::string>& out) override {
    asked.push_back(name);
    auto it = a.find(name);
    if (it == a.end()) return DnsStatus::not_found;
    out = it->second;
    return DnsStatus::ok;
  }
  DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) override {
    auto it = txt.find(name);
    if (it == txt.end()) return DnsStatus::not_found;
    out = it->second;
    return DnsStatus::ok;
  }
};

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-smtpd-check-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

const char* kBase =
    "compatibility_level = 3.6\n"
    "myhostname = mx.pfo.example\n"
    "mydestination = localhost, pfo.example\n"
    "mynetworks = 10.0.0.0/8, [2001:db8::]/32\n"
    "local_recipient_maps = inline:{alice=x}\n"
    "smtpd_delay_reject = no\n";

// A checker on kBase plus extra main.cf lines, logging into a file.
struct Fixture {
  TempDir dir;
  std::shared_ptr<FakeResolver> resolver = std::make_shared<FakeResolver>();
  std::shared_ptr<FakeDns> dns = std::make_shared<FakeDns>();
  std::unique_ptr<Checker> checker;
  SessionFacts facts;
  std::string log_path;

  explicit Fixture(const std::string& extra = {}) {
    dir.write("main.cf", std::string(kBase) + extra);
    log_path = (dir.path / "maillog").string();
    mta::log::init("smtpd");
    mta::log::set_stderr(false);
    mta::log::set_file(log_path);
    mta::config::Config config = mta::config::Config::load(dir.path.string());
    checker = std::make_unique<Checker>(config, Checker::Services{resolver, dns});
    client("c.example", "192.0.2.9");
    facts.protocol = "ESMTP";
  }
  ~Fixture() {
    mta::log::set_file("");
    mta::log::set_stderr(true);
  }
  void client(const std::string& name, const std::string& addr) {
    facts.client_name = facts.reverse_name = name;
    facts.client_addr = addr;
    facts.name_status = facts.reverse_name_status = name == "unknown" ? 5 : 0;
  }
  // The text after "postfix/smtpd[pid]: " of each log line since the last call.
  std::vector<std::string> logs() {
    std::ifstream in(log_path);
    std::vector<std::string> out;
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      if (n++ < seen) continue;
      size_t p = line.find("]: ");
      out.push_back(p == std::string::npos ? line : line.substr(p + 3));
    }
    seen = n;
    return out;
  }
  std::string last_log() {
    std::vector<std::string> l = logs();
    return l.empty() ? std::string() : l.back();
  }
  // Through HELO and MAIL, then RCPT: the RCPT reply or "".
  std::string rcpt(const std::string& to, const std::string& from = "a@b.example") {
    facts.helo = facts.helo.empty() ? "h.example" : facts.helo;
    facts.have_sender = true;
    facts.sender = from;
    facts.recipient = to;
    return checker->check_rcpt(facts).value_or("");
  }
  std::string mail(const std::string& from) {
    facts.have_sender = true;
    facts.sender = from;
    facts.recipient.clear();
    return checker->check_mail(facts).value_or("");
  }
  std::string helo(const std::string& name) {
    facts.helo = name;
    return checker->check_helo(facts).value_or("");
  }
  size_t seen = 0;
};

}  // namespace

TEST_CASE("default relay restrictions: defer_unauth_destination, local recipients", "[smtpd_check]") {
  Fixture f;
  CHECK(f.rcpt("x@y.example") == "454 4.7.1 <x@y.example>: Relay access denied");
  CHECK(f.last_log() ==
        "NOQUEUE: reject: RCPT from c.example[192.0.2.9]: 454 4.7.1 <x@y.example>: Relay access denied; "
        "from=<a@b.example> to=<x@y.example> proto=ESMTP helo=<h.example>");
  CHECK(f.rcpt("bob@pfo.example") ==
        "550 5.1.1 <bob@pfo.example>: Recipient address rejected: User unknown in local recipient table");
  CHECK(f.rcpt("alice@pfo.example").empty());
  CHECK_FALSE(f.rcpt("alice+ext@pfo.example").empty());  // no recipient_delimiter: alice+ext is not alice
  // mynetworks, IPv4 and IPv6, and SASL may relay.
  f.client("m.example", "10.1.2.3");
  CHECK(f.rcpt("x@y.example").empty());
  f.client("m.example", "2001:db8::5");
  CHECK(f.rcpt("x@y.example").empty());
  f.client("m.example", "2001:db9::5");
  CHECK(f.rcpt("x@y.example") == "454 4.7.1 <x@y.example>: Relay access denied");
  f.facts.sasl_username = "joe";
  CHECK(f.rcpt("x@y.example").empty());
  // relay_domains and the queue id in logs.
  f.facts.sasl_username.clear();
  f.facts.queue_id = "ABC123";
  CHECK(f.rcpt("x@relay.example").empty());
  CHECK(f.rcpt("x@y.example") == "454 4.7.1 <x@y.example>: Relay access denied");
  CHECK(f.last_log().rfind("ABC123: reject: RCPT from m.example[2001:db9::5]: 454 4.7.1", 0) == 0);
}

TEST_CASE("reject_unauth_destination and relay_domains_reject_code", "[smtpd_check]") {
  Fixture f("smtpd_relay_restrictions = reject_unauth_destination\n");
  CHECK(f.rcpt("x@y.example") == "554 5.7.1 <x@y.example>: Relay access denied");
  Fixture g("relay_domains_reject_code = 550\n");
  CHECK(g.rcpt("x@y.example") == "450 4.7.1 <x@y.example>: Relay access denied");  // defer_: code - 100
  Fixture h("smtpd_relay_restrictions = permit_auth_destination, reject\n");
  CHECK(h.rcpt("x@relay.example").empty());
  CHECK(h.rcpt("x@y.example") == "554 5.7.1 <x@y.example>: Recipient address rejected: Access denied");
  Fixture soft("soft_bounce = yes\nsmtpd_relay_restrictions = reject_unauth_destination\n");
  CHECK(soft.rcpt("x@y.example") == "454 4.7.1 <x@y.example>: Relay access denied");
  CHECK(soft.rcpt("bob@pfo.example") ==
        "450 4.1.1 <bob@pfo.example>: Recipient address rejected: User unknown in local recipient table");
}

TEST_CASE("recipient validation per address class", "[smtpd_check]") {
  Fixture f("virtual_alias_maps = inline:{al@valias.example=x, al2@vbox.example=y}\n"
            "virtual_mailbox_maps = inline:{box@vbox.example=x}\n"
            "relay_recipient_maps = inline:{r@relay.example=x}\n"
            "unknown_virtual_alias_reject_code = 551\n");
  CHECK(f.rcpt("al@valias.example").empty());
  CHECK(f.rcpt("x@valias.example") ==
        "551 5.1.1 <x@valias.example>: Recipient address rejected: User unknown in virtual alias table");
  // Whatever resolves to the error transport is refused with its text (the
  // real Postfix's answer for transport_maps "bad.example error:5.1.1 ...").
  CHECK(f.rcpt("b@bad.example") == "550 5.1.1 <b@bad.example>: Recipient address rejected: no such user here");
  CHECK(f.rcpt("box@vbox.example").empty());
  CHECK(f.rcpt("al2@vbox.example").empty());
  CHECK(f.rcpt("x@vbox.example") ==
        "550 5.1.1 <x@vbox.example>: Recipient address rejected: User unknown in virtual mailbox table");
  CHECK(f.rcpt("r@relay.example").empty());
  CHECK(f.rcpt("x@relay.example") ==
        "550 5.1.1 <x@relay.example>: Recipient address rejected: User unknown in relay recipient table");
  CHECK(f.rcpt("x@fail.example") == "451 4.3.0 <x@fail.example>: Temporary lookup failure");

  Fixture broken("local_recipient_maps = hash:/nonexistent/x\n");
  CHECK(broken.rcpt("alice@pfo.example") == "451 4.3.0 <alice@pfo.example>: Temporary lookup failure");
  Fixture off("smtpd_reject_unlisted_recipient = no\n");
  CHECK(off.rcpt("bob@pfo.example").empty());
  Fixture listed("smtpd_reject_unlisted_recipient = no\nsmtpd_recipient_restrictions = reject_unlisted_recipient\n");
  CHECK(listed.rcpt("bob@pfo.example") ==
        "550 5.1.1 <bob@pfo.example>: Recipient address rejected: User unknown in local recipient table");
  Fixture quiet("show_user_unknown_table_name = no\nunknown_local_recipient_reject_code = 450\n");
  CHECK(quiet.rcpt("bob@pfo.example") == "450 4.1.1 <bob@pfo.example>: Recipient address rejected: User unknown");
  Fixture sender("smtpd_reject_unlisted_sender = yes\n");
  CHECK(sender.mail("bob@pfo.example") ==
        "550 5.1.0 <bob@pfo.example>: Sender address rejected: User unknown in local recipient table");
  CHECK(sender.mail("alice@pfo.example").empty());
}

TEST_CASE("access(5) actions", "[smtpd_check]") {
  TempDir tables;
  std::string client = tables.write("client",
                                    "client.example 550 5.1.1 user thing\n"
                                    "192.0.2.10 REJECT go away\n"
                                    "192.0.2.11 DEFER_IF_PERMIT dip text\n"
                                    "192.0.2.12 DEFER_IF_REJECT\n"
                                    "192.0.2.13 HOLD\n"
                                    "192.0.2.14 DISCARD disc text\n"
                                    "192.0.2.15 FILTER smtp:[127.0.0.1]:10025\n"
                                    "192.0.2.16 WARN warn text\n"
                                    "192.0.2.17 INFO info text\n"
                                    "192.0.2.18 REDIRECT r@x.example\n"
                                    "192.0.2.19 PREPEND X-Foo: bar\n"
                                    "192.0.2.20 12345\n"
                                    "192.0.2.21 restrict1\n"
                                    "192.0.2.22 BCC b@x.example\n"
                                    "192.0.2.23 warn_if_reject reject\n"
                                    "192.0.2.24 DEFER_IF_PERMIT\n"
                                    "192.0.2.25 FOO bar\n"
                                    "192.0.2.26 HOLD hold text\n"
                                    "192.0.2.27 OK\n"
                                    "192.0.2.28 DEFER\n"
                                    "192.0.2.29 DEFER 4.2.0 text\n"
                                    "192.0.2.30 REJECT 5.7.0 with dsn\n"
                                    "192.0.2.31 421 go away now\n"
                                    "192.0.2.32 DUNNO\n"
                                    "192.0.2 REJECT network\n");
  Fixture f("smtpd_recipient_restrictions = check_client_access texthash:" + client +
            "\nsmtpd_restriction_classes = restrict1\nrestrict1 = reject_unauth_destination\n");
  auto at = [&](int n) {
    f.client("c.example", "192.0.2." + std::to_string(n));
    f.facts.actions = {};
    f.logs();
    return f.rcpt("alice@pfo.example");
  };
  const std::string tail = "; from=<a@b.example> to=<alice@pfo.example> proto=ESMTP helo=<h.example>";

  CHECK(at(10) == "554 5.7.1 <c.example[192.0.2.10]>: Client host rejected: go away");
  CHECK(at(11) == "450 4.7.1 <c.example[192.0.2.11]>: Client host rejected: dip text");
  CHECK(at(12).empty());
  CHECK(at(13).empty());
  CHECK(f.facts.actions.hold_reason == "<c.example[192.0.2.13]>: Client host triggers HOLD action");
  CHECK(f.last_log() == "NOQUEUE: hold: RCPT from c.example[192.0.2.13]: <c.example[192.0.2.13]>: Client host "
                        "triggers HOLD action" + tail);
  CHECK(at(14).empty());
  CHECK(f.facts.actions.discard_reason == "<c.example[192.0.2.14]>: Client host disc text");
  CHECK(f.last_log() == "NOQUEUE: discard: RCPT from c.example[192.0.2.14]: <c.example[192.0.2.14]>: Client host "
                        "disc text" + tail);
  f.facts.recipient = "x@y.example";  // after DISCARD, nothing else is checked
  CHECK_FALSE(f.checker->check_rcpt(f.facts).has_value());
  CHECK(at(15).empty());
  CHECK(f.facts.actions.filter == "smtp:[127.0.0.1]:10025");
  CHECK(f.last_log() == "NOQUEUE: filter: RCPT from c.example[192.0.2.15]: <c.example[192.0.2.15]>: Client host "
                        "triggers FILTER smtp:[127.0.0.1]:10025" + tail);
  CHECK(at(16).empty());
  CHECK(f.last_log() == "NOQUEUE: warn: RCPT from c.example[192.0.2.16]: warn text" + tail);
  CHECK(at(17).empty());
  CHECK(f.last_log() == "NOQUEUE: info: RCPT from c.example[192.0.2.17]: info text" + tail);
  CHECK(at(18).empty());
  CHECK(f.facts.actions.redirect == "r@x.example");
  CHECK(f.last_log() == "NOQUEUE: redirect: RCPT from c.example[192.0.2.18]: <c.example[192.0.2.18]>: Client host "
                        "triggers REDIRECT r@x.example" + tail);
  CHECK(at(19).empty());
  CHECK(f.facts.actions.prepend == std::vector<std::string>{"X-Foo: bar"});
  CHECK(f.logs().empty());
  CHECK(at(20).empty());
  CHECK(f.logs().empty());
  CHECK(at(21).empty());  // restrict1 = reject_unauth_destination: alice is local
  f.facts.recipient = "x@y.example";
  CHECK(f.checker->check_rcpt(f.facts).value_or("") == "454 4.7.1 <x@y.example>: Relay access denied");
  CHECK(at(22).empty());
  CHECK(f.facts.actions.bcc == std::vector<std::string>{"b@x.example"});
  CHECK(f.last_log() == "NOQUEUE: bcc: RCPT from c.example[192.0.2.22]: <c.example[192.0.2.22]>: Client host "
                        "triggers BCC b@x.example" + tail);
  CHECK(at(23).empty());
  CHECK(f.last_log() == "NOQUEUE: reject_warning: RCPT from c.example[192.0.2.23]: 554 5.7.1 "
                        "<c.example[192.0.2.23]>: Client host rejected: Access denied" + tail);
  CHECK(at(24) == "450 4.7.1 <c.example[192.0.2.24]>: Client host rejected: Service unavailable");
  CHECK(at(25) == "451 4.3.5 Server configuration error");
  std::vector<std::string> l = f.logs();
  REQUIRE(l.size() == 2);
  CHECK(l[0] == "warning: unknown smtpd restriction: \"FOO\"");
  CHECK(l[1] == "NOQUEUE: reject: RCPT from c.example[192.0.2.25]: 451 4.3.5 Server configuration error" + tail);
  CHECK(at(26).empty());
  CHECK(f.facts.actions.hold_reason == "<c.example[192.0.2.26]>: Client host hold text");
  CHECK(at(27).empty());
  CHECK(at(28) == "450 4.7.1 <c.example[192.0.2.28]>: Client host rejected: Access denied");
  CHECK(at(29) == "450 4.2.0 <c.example[192.0.2.29]>: Client host rejected: text");
  CHECK(at(30) == "554 5.7.0 <c.example[192.0.2.30]>: Client host rejected: with dsn");
  CHECK(at(31) == "421 4.7.1 <c.example[192.0.2.31]>: Client host rejected: go away now");
  CHECK(at(32).empty());                      // DUNNO stops the search before "192.0.2"
  CHECK(at(33) == "554 5.7.1 <c.example[192.0.2.33]>: Client host rejected: network");
  // The name comes first, and a status for an address becomes generic.
  f.client("client.example", "192.0.2.10");
  f.facts.actions = {};
  CHECK(f.rcpt("alice@pfo.example") == "550 5.0.0 <client.example[192.0.2.10]>: Client host rejected: user thing");
}

TEST_CASE("access lookup orders", "[smtpd_check]") {
  // Addresses: user+ext@domain, user@domain, domain, parents, user+ext@, user@.
  Fixture f("recipient_delimiter = +\n"
            "smtpd_sender_restrictions = check_sender_access inline:{"
            "{a+x@one.example=REJECT full}, {a@one.example=REJECT noext}, {two.example=REJECT domain}, "
            "{three.example=REJECT parent}, {u+y@=REJECT userext}, {u@=REJECT user}, "
            "{<>=REJECT null}, {sub.four.example=DUNNO}, {four.example=REJECT four}}\n");
  CHECK(f.mail("a+x@one.example") == "554 5.7.1 <a+x@one.example>: Sender address rejected: full");
  CHECK(f.mail("a+z@one.example") == "554 5.7.1 <a+z@one.example>: Sender address rejected: noext");
  CHECK(f.mail("a@two.example") == "554 5.7.1 <a@two.example>: Sender address rejected: domain");
  CHECK(f.mail("a@x.three.example") == "554 5.7.1 <a@x.three.example>: Sender address rejected: parent");
  CHECK(f.mail("u+y@nowhere.example") == "554 5.7.1 <u+y@nowhere.example>: Sender address rejected: userext");
  CHECK(f.mail("u+q@nowhere.example") == "554 5.7.1 <u+q@nowhere.example>: Sender address rejected: user");
  CHECK(f.mail("") == "554 5.7.1 <>: Sender address rejected: null");
  CHECK(f.mail("a@sub.four.example").empty());
  CHECK(f.mail("a@x.sub.four.example").empty());
  CHECK(f.mail("a@four.example") == "554 5.7.1 <a@four.example>: Sender address rejected: four");
  CHECK(f.mail("u") == "554 5.7.1 <u>: Sender address rejected: user");  // u@pfo.example after resolve

  // Without parent style, ".domain" keys match subdomains.
  Fixture dot("parent_domain_matches_subdomains =\n"
              "smtpd_sender_restrictions = check_sender_access inline:{{.three.example=REJECT dot}, "
              "{three.example=REJECT exact}}\n");
  CHECK(dot.mail("a@x.three.example") == "554 5.7.1 <a@x.three.example>: Sender address rejected: dot");
  CHECK(dot.mail("a@three.example") == "554 5.7.1 <a@three.example>: Sender address rejected: exact");

  // Hosts: name, parents, address, networks (IPv4 and IPv6); "unknown" too.
  Fixture h("smtpd_client_restrictions = check_client_access inline:{{example.net=REJECT name}, "
            "{198.51=REJECT net}, {2001:db8:1=REJECT net6}, {unknown=REJECT unknown}}\n");
  h.client("a.b.example.net", "192.0.2.1");
  CHECK(h.checker->check_connect(h.facts).value_or("") ==
        "554 5.7.1 <a.b.example.net[192.0.2.1]>: Client host rejected: name");
  CHECK(h.last_log() == "NOQUEUE: reject: CONNECT from a.b.example.net[192.0.2.1]: 554 5.7.1 "
                        "<a.b.example.net[192.0.2.1]>: Client host rejected: name; proto=ESMTP");
  h.client("x.example", "198.51.100.7");
  CHECK(h.checker->check_connect(h.facts).value_or("") == "554 5.7.1 <x.example[198.51.100.7]>: Client host rejected: net");
  h.client("x.example", "2001:db8:1::7");
  CHECK(h.checker->check_connect(h.facts).value_or("") == "554 5.7.1 <x.example[2001:db8:1::7]>: Client host rejected: net6");
  h.client("unknown", "192.0.2.9");
  CHECK(h.checker->check_connect(h.facts).value_or("") == "554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: unknown");

  // A table that fails, and a missing table argument.
  Fixture bad("smtpd_recipient_restrictions = check_recipient_access hash:/nonexistent/x\n");
  CHECK(bad.rcpt("alice@pfo.example") ==
        "451 4.3.5 <alice@pfo.example>: Recipient address rejected: Server configuration error");
  std::vector<std::string> l = bad.logs();
  REQUIRE(l.size() >= 2);
  CHECK(l[l.size() - 2] == "warning: hash:/nonexistent/x lookup error for \"alice@pfo.example\"");
  Fixture arg("smtpd_recipient_restrictions = check_recipient_access\n");
  CHECK(arg.rcpt("alice@pfo.example") == "451 4.3.5 Server configuration error");
  l = arg.logs();
  REQUIRE(l.size() == 2);
  CHECK(l[0] == "warning: restriction check_recipient_access: bad argument \"check_recipient_access\": "
                "need maptype:mapname");
}

TEST_CASE("status codes follow what was rejected", "[smtpd_check]") {
  Fixture f("smtpd_helo_restrictions = check_helo_access inline:{{h.example=550 5.1.1 user thing}}\n"
            "smtpd_sender_restrictions = check_sender_access inline:{{a@b.example=550 5.1.1 user thing}, "
            "{c@b.example=450 4.1.2 dom thing}}\n"
            "smtpd_recipient_restrictions = check_recipient_access inline:{{x@pfo.example=550 user thing}}\n");
  f.facts.helo_command = "EHLO";
  CHECK(f.helo("h.example") == "550 5.0.0 <h.example>: Helo command rejected: user thing");
  CHECK(f.last_log() == "NOQUEUE: reject: EHLO from c.example[192.0.2.9]: 550 5.0.0 <h.example>: Helo command "
                        "rejected: user thing; proto=ESMTP helo=<h.example>");
  f.facts.helo = "i.example";
  CHECK(f.mail("a@b.example") == "550 5.1.7 <a@b.example>: Sender address rejected: user thing");
  CHECK(f.mail("c@b.example") == "450 4.1.8 <c@b.example>: Sender address rejected: dom thing");
  CHECK(f.last_log() == "NOQUEUE: reject: MAIL from c.example[192.0.2.9]: 450 4.1.8 <c@b.example>: Sender "
                        "address rejected: dom thing; from=<c@b.example> proto=ESMTP helo=<i.example>");
  CHECK(f.rcpt("x@pfo.example", "d@b.example") == "550 5.7.1 <x@pfo.example>: Recipient address rejected: user thing");
}

TEST_CASE("simple restrictions and their codes", "[smtpd_check]") {
  Fixture f("smtpd_sender_restrictions = check_sender_access inline:{{a@b.example=reject}, "
            "{c@b.example=defer}, {d@b.example=defer_if_permit}}\n"
            "smtpd_data_restrictions = reject_multi_recipient_bounce, reject\n"
            "smtpd_etrn_restrictions = reject\n"
            "smtpd_end_of_data_restrictions = reject\n");
  CHECK(f.mail("a@b.example") == "554 5.7.1 <a@b.example>: Sender address rejected: Access denied");
  CHECK(f.mail("c@b.example") == "450 4.7.1 <c@b.example>: Sender address rejected: Access denied");
  CHECK(f.mail("d@b.example").empty());  // DEFER_IF_PERMIT (actions ignore case) waits for RCPT
  CHECK(f.rcpt("alice@pfo.example", "d@b.example") ==
        "450 4.7.1 <d@b.example>: Sender address rejected: Service unavailable");
  f.checker->reset_transaction(f.facts);

  f.facts.helo = "h.example";
  f.facts.have_sender = false;
  f.facts.etrn_domain = "foo.example";
  CHECK(f.checker->check_etrn(f.facts).value_or("") == "554 5.7.1 <foo.example>: Etrn command rejected: Access denied");
  CHECK(f.last_log() == "NOQUEUE: reject: ETRN from c.example[192.0.2.9]: 554 5.7.1 <foo.example>: Etrn command "
                        "rejected: Access denied; proto=ESMTP helo=<h.example>");
  f.facts.have_sender = true;
  f.facts.sender = "";
  f.facts.recipient = "";
  f.facts.recipient_count = 2;
  f.facts.queue_id = "8BFE8A72142";
  CHECK(f.checker->check_data(f.facts).value_or("") == "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce");
  CHECK(f.last_log() == "8BFE8A72142: reject: DATA from c.example[192.0.2.9]: 550 5.5.3 <DATA>: Data command "
                        "rejected: Multi-recipient bounce; from=<> proto=ESMTP helo=<h.example>");
  f.facts.sender = "a@b.example";
  f.facts.recipient = "alice@pfo.example";
  f.facts.recipient_count = 1;
  CHECK(f.checker->check_end_of_data(f.facts).value_or("") ==
        "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied");
  CHECK(f.last_log() == "8BFE8A72142: reject: END-OF-MESSAGE from c.example[192.0.2.9]: 554 5.7.1 <END-OF-MESSAGE>: "
                        "End-of-data rejected: Access denied; from=<a@b.example> to=<alice@pfo.example> "
                        "proto=ESMTP helo=<h.example>");

  Fixture m("smtpd_recipient_restrictions = reject_multi_recipient_bounce\n");
  m.facts.recipient_count = 0;
  CHECK(m.rcpt("alice@pfo.example", "").empty());
  m.facts.recipient_count = 1;
  CHECK(m.rcpt("alice@pfo.example", "") ==
        "550 5.5.3 <alice@pfo.example>: Recipient address rejected: Multi-recipient bounce");

  Fixture dip("smtpd_client_restrictions = defer_if_permit\nsmtpd_recipient_restrictions = permit\n");
  CHECK_FALSE(dip.checker->check_connect(dip.facts).has_value());
  CHECK(dip.rcpt("alice@pfo.example") == "450 4.7.0 <c.example[192.0.2.9]>: Client host rejected: defer_if_permit requested");
  Fixture dip2("smtpd_recipient_restrictions = defer_if_permit, reject\n");
  CHECK(dip2.rcpt("alice@pfo.example") == "554 5.7.1 <alice@pfo.example>: Recipient address rejected: Access denied");
  Fixture dir("smtpd_recipient_restrictions = defer_if_reject, reject\n");
  CHECK(dir.rcpt("alice@pfo.example") ==
        "450 4.7.0 <alice@pfo.example>: Recipient address rejected: defer_if_reject requested");
  Fixture warn("smtpd_recipient_restrictions = warn_if_reject reject_non_fqdn_recipient, reject_non_fqdn_recipient\n");
  warn.facts.sasl_username = "joe";  // past the relay restrictions
  CHECK(warn.rcpt("alice@pfo") == "504 5.5.2 <alice@pfo>: Recipient address rejected: need fully-qualified address");
  std::vector<std::string> l = warn.logs();
  REQUIRE(l.size() == 2);
  CHECK(l[0].rfind("NOQUEUE: reject_warning: RCPT from c.example[192.0.2.9]: 504 5.5.2 <alice@pfo>:", 0) == 0);

  Fixture unknown("smtpd_recipient_restrictions = foo_bar\n");
  CHECK(unknown.rcpt("alice@pfo.example") == "451 4.3.5 Server configuration error");
  l = unknown.logs();
  REQUIRE(l.size() == 2);
  CHECK(l[0] == "warning: unknown smtpd restriction: \"foo_bar\"");
  CHECK(l[1] == "NOQUEUE: reject: RCPT from c.example[192.0.2.9]: 451 4.3.5 Server configuration error; "
                "from=<a@b.example> to=<alice@pfo.example> proto=ESMTP helo=<h.example>");
}

TEST_CASE("syntax restrictions: non-FQDN and invalid names", "[smtpd_check]") {
  Fixture f("smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\n"
            "smtpd_sender_restrictions = reject_non_fqdn_sender\n"
            "smtpd_recipient_restrictions = reject_non_fqdn_recipient\n");
  f.facts.protocol = "SMTP";
  CHECK(f.helo("h") == "504 5.5.2 <h>: Helo command rejected: need fully-qualified hostname");
  CHECK(f.last_log() == "NOQUEUE: reject: HELO from c.example[192.0.2.9]: 504 5.5.2 <h>: Helo command rejected: "
                        "need fully-qualified hostname; proto=SMTP helo=<h>");
  CHECK(f.helo("h_x.example").empty());
  CHECK(f.helo("[1.2.3.4]").empty());
  CHECK(f.helo("[1.2.3]") == "501 5.5.2 <[1.2.3]>: Helo command rejected: invalid ip address");
  CHECK(f.helo("a..b") == "501 5.5.2 <a..b>: Helo command rejected: Invalid name");
  CHECK(f.helo("mx.example.").empty());
  f.facts.helo = "h.example";
  f.facts.sasl_username = "joe";  // past the relay restrictions
  CHECK(f.mail("a@b") == "504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address");
  CHECK(f.mail("a") == "504 5.5.2 <a>: Sender address rejected: need fully-qualified address");
  CHECK(f.mail("").empty());
  CHECK(f.rcpt("alice@pfo") == "504 5.5.2 <alice@pfo>: Recipient address rejected: need fully-qualified address");
}

TEST_CASE("smtpd_delay_reject and smtpd_helo_required", "[smtpd_check]") {
  Fixture f("smtpd_delay_reject = yes\nsmtpd_client_restrictions = reject\n");
  CHECK_FALSE(f.checker->check_connect(f.facts).has_value());
  CHECK(f.helo("h.example").empty());
  CHECK(f.mail("a@b").empty());
  CHECK(f.rcpt("alice@pfo.example", "a@b") == "554 5.7.1 <c.example[192.0.2.9]>: Client host rejected: Access denied");
  CHECK(f.last_log() == "NOQUEUE: reject: RCPT from c.example[192.0.2.9]: 554 5.7.1 <c.example[192.0.2.9]>: Client "
                        "host rejected: Access denied; from=<a@b> to=<alice@pfo.example> proto=ESMTP helo=<h.example>");
  f.facts.etrn_domain = "x.example";
  CHECK(f.checker->check_etrn(f.facts).value_or("") ==
        "554 5.7.1 <c.example[192.0.2.9]>: Client host rejected: Access denied");
  Fixture s("smtpd_delay_reject = yes\nsmtpd_sender_restrictions = reject_non_fqdn_sender\n");
  CHECK(s.mail("a@b").empty());
  CHECK(s.rcpt("alice@pfo.example", "a@b") == "504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address");
  Fixture h("smtpd_helo_required = yes\n");
  CHECK(h.mail("a@b.example") == "503 5.5.1 Error: send HELO/EHLO first");
  h.facts.helo = "h.example";
  CHECK(h.mail("a@b.example").empty());
}

TEST_CASE("client name restrictions and restriction classes", "[smtpd_check]") {
  Fixture f("smtpd_client_restrictions = reject_unknown_client_hostname\n"
            "smtpd_helo_restrictions = reject_unknown_reverse_client_hostname\n");
  f.client("unknown", "192.0.2.9");
  CHECK(f.checker->check_connect(f.facts).value_or("") ==
        "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.9]");
  f.facts.name_status = 4;
  CHECK(f.checker->check_connect(f.facts).value_or("") ==
        "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.9]");
  CHECK(f.helo("h.example") == "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.9]");
  f.client("c.example", "192.0.2.9");
  CHECK_FALSE(f.checker->check_connect(f.facts).has_value());

  Fixture r("smtpd_client_restrictions = check_reverse_client_hostname_access inline:{r.example=REJECT}\n");
  r.facts.reverse_name = "r.example";
  CHECK(r.checker->check_connect(r.facts).value_or("") ==
        "554 5.7.1 <r.example>: Unverified Client host rejected: Access denied");

  Fixture c("smtpd_recipient_restrictions = check_sender_access inline:{a@b.example=cls}\n"
            "smtpd_restriction_classes = cls\n"
            "cls = reject_unauth_destination, check_recipient_access inline:{alice@pfo.example=HOLD}\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n");
  CHECK(c.rcpt("x@y.example") == "554 5.7.1 <x@y.example>: Relay access denied");
  CHECK(c.rcpt("alice@pfo.example").empty());
  CHECK(c.last_log() == "NOQUEUE: hold: RCPT from c.example[192.0.2.9]: <alice@pfo.example>: Recipient address "
                        "triggers HOLD action; from=<a@b.example> to=<alice@pfo.example> proto=ESMTP helo=<h.example>");
  CHECK(c.rcpt("bob@pfo.example") ==
        "550 5.1.1 <bob@pfo.example>: Recipient address rejected: User unknown in local recipient table");
  CHECK(c.checker->client_in_mynetworks(c.facts) == false);
  c.client("m.example", "10.0.0.1");
  CHECK(c.checker->client_in_mynetworks(c.facts));
}

TEST_CASE("DNS restrictions through a fake resolver", "[smtpd_check]") {
  Fixture f("smtpd_sender_restrictions = reject_unknown_sender_domain\n"
            "smtpd_recipient_restrictions = reject_unknown_recipient_domain, reject_unknown_helo_hostname\n"
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n");
  f.facts.helo = "h.example";
  CHECK(f.mail("a@b.invalid") == "450 4.1.8 <a@b.invalid>: Sender address rejected: Domain not found");
  CHECK(f.mail("a@pfo.example").empty());  // local: no DNS
  CHECK(f.mail("a@b.example").empty());
  f.dns->retry.push_back("slow.example");
  CHECK(f.mail("a@slow.example").empty());  // a temporary failure defers if permitted at RCPT
  f.facts.sasl_username = "joe";
  CHECK(f.rcpt("x@y.example", "a@slow.example") == "450 4.1.8 <a@slow.example>: Sender address rejected: Domain not found");
  f.checker->reset_transaction(f.facts);
  CHECK(f.mail("a@b.example").empty());
  CHECK(f.rcpt("x@nonexist.invalid") == "450 4.1.2 <x@nonexist.invalid>: Recipient address rejected: Domain not found");
  f.facts.helo = "h.invalid";
  CHECK(f.rcpt("x@y.example") == "450 4.7.1 <h.invalid>: Helo command rejected: Host not found");

  Fixture rbl("smtpd_recipient_restrictions = reject_rbl_client zen.example, reject_rbl_client list.example=127.0.0.[2..4], "
              "reject_rhsbl_sender dbl.example\n");
  rbl.dns->a["9.2.0.192.list.example"] = {"127.0.0.10"};
  CHECK(rbl.rcpt("alice@pfo.example").empty());  // filtered out
  rbl.dns->a["9.2.0.192.zen.example"] = {"127.0.0.2"};
  rbl.dns->txt["9.2.0.192.zen.example"] = {"listed, see http://zen.example/"};
  CHECK(rbl.rcpt("alice@pfo.example") ==
        "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.example; listed, see http://zen.example/");
  CHECK(rbl.last_log() == "NOQUEUE: reject: RCPT from c.example[192.0.2.9]: 554 5.7.1 Service unavailable; Client host "
                          "[192.0.2.9] blocked using zen.example; listed, see http://zen.example/; from=<a@b.example> "
                          "to=<alice@pfo.example> proto=ESMTP helo=<h.example>");
  rbl.dns->a.erase("9.2.0.192.zen.example");
  rbl.dns->a["b.example.dbl.example"] = {"127.0.1.2"};
  CHECK(rbl.rcpt("alice@pfo.example") ==
        "554 5.7.1 Service unavailable; Sender address [b.example] blocked using dbl.example");
  TempDir replies;
  std::string reply_map = replies.write("rbl_reply", "zen.example 450 4.7.9 listed $rbl_what${rbl_reason?; $rbl_reason}\n");
  Fixture six("smtpd_recipient_restrictions = reject_rbl_client zen.example\n"
              "rbl_reply_maps = texthash:" + reply_map + "\n");
  six.client("c.example", "2001:db8::1");
  six.dns->a["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example"] = {"127.0.0.2"};
  CHECK(six.rcpt("alice@pfo.example") == "450 4.7.9 listed 2001:db8::1");
}

TEST_CASE("null MX (RFC 7505): reject_unknown_sender/recipient_domain refuse, HELO names pass", "[smtpd_check]") {
  // Postfix 3.7's reject_unknown_mailhost: fixed codes 550 5.7.27 (sender)
  // and 556 5.1.10 (recipient), not unknown_address_reject_code.
  const std::string lists = "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
                            "smtpd_recipient_restrictions = reject_unknown_recipient_domain, reject_unknown_helo_hostname, "
                            "permit\n"
                            "unknown_address_reject_code = 554\n";
  Fixture f(lists);
  f.dns->null_mx = {"nullmx.example", "h.nullmx.example"};
  f.client("m.example", "10.0.0.1");  // mynetworks: the relay restrictions let it through
  f.facts.helo = "h.example";
  CHECK(f.mail("a@nullmx.example") ==
        "550 5.7.27 <a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)");
  CHECK(f.last_log() == "NOQUEUE: reject: MAIL from m.example[10.0.0.1]: 550 5.7.27 <a@nullmx.example>: Sender "
                        "address rejected: Domain nullmx.example does not accept mail (nullMX); from=<a@nullmx.example> "
                        "proto=ESMTP helo=<h.example>");
  CHECK(f.rcpt("x@nullmx.example") ==
        "556 5.1.10 <x@nullmx.example>: Recipient address rejected: Domain nullmx.example does not accept mail (nullMX)");
  CHECK(f.rcpt("x@nosuch.invalid") ==
        "554 5.1.2 <x@nosuch.invalid>: Recipient address rejected: Domain not found");  // the parameter still applies here
  f.facts.helo = "h.nullmx.example";  // an MTA name may have a null MX
  CHECK(f.rcpt("x@b.example").empty());

  Fixture warn("smtpd_sender_restrictions = warn_if_reject reject_unknown_sender_domain\n");
  warn.dns->null_mx = {"nullmx.example"};
  warn.facts.helo = "h.example";
  CHECK(warn.mail("a@nullmx.example").empty());
  CHECK(warn.last_log() == "NOQUEUE: reject_warning: MAIL from c.example[192.0.2.9]: 550 5.7.27 <a@nullmx.example>: "
                           "Sender address rejected: Domain nullmx.example does not accept mail (nullMX); "
                           "from=<a@nullmx.example> proto=ESMTP helo=<h.example>");

  Fixture soft("smtpd_sender_restrictions = reject_unknown_sender_domain\nsoft_bounce = yes\n");
  soft.dns->null_mx = {"nullmx.example"};
  CHECK(soft.mail("a@nullmx.example") ==
        "450 4.7.27 <a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)");

  Fixture delayed("smtpd_sender_restrictions = reject_unknown_sender_domain\nsmtpd_delay_reject = yes\n");
  delayed.dns->null_mx = {"nullmx.example"};
  CHECK(delayed.mail("a@nullmx.example").empty());  // smtpd_delay_reject: refused at RCPT
  CHECK(delayed.rcpt("alice@pfo.example", "a@nullmx.example") ==
        "550 5.7.27 <a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)");
}

// The session asks Checker::dns_questions() in its worker pool, then runs
// the check with the answers in scope: the common DNS restrictions must
// find every answer there (no synchronous query from the event loop).
TEST_CASE("DNS prefetch: the questions of a stage answer its restrictions", "[smtpd_check]") {
  Fixture f("smtpd_delay_reject = yes\n"
            "smtpd_restriction_classes = dnsclass\n"
            "dnsclass = reject_rhsbl_helo dbl.example\n"
            "smtpd_client_restrictions = reject_rbl_client zen.example=127.0.0.[2..4], reject_rhsbl_client dbl.example\n"
            "smtpd_helo_restrictions = reject_unknown_helo_hostname, dnsclass\n"
            "smtpd_sender_restrictions = check_sender_access inline:{x@y=OK}, reject_unknown_sender_domain, "
            "reject_rhsbl_sender dbl.example\n"
            "smtpd_relay_restrictions = reject_unknown_recipient_domain, reject_rhsbl_recipient dbl.example, "
            "permit_mynetworks, reject_unauth_destination\n");
  f.dns->a["9.2.0.192.zen.example"] = {"127.0.0.10"};  // listed, but filtered out
  f.facts.helo = "h.example";
  f.facts.have_sender = true;
  f.facts.sender = "a@b.example";
  f.facts.recipient = "x@y.example";
  std::vector<DnsQuestion> questions = f.checker->dns_questions(f.facts, Stage::rcpt);
  std::vector<std::string> names;
  for (const DnsQuestion& q : questions) names.push_back(q.name);
  CHECK(names == std::vector<std::string>{"9.2.0.192.zen.example", "c.example.dbl.example", "h.example",
                                          "h.example.dbl.example", "b.example", "b.example.dbl.example",
                                          "y.example", "y.example.dbl.example"});
  DnsAnswers answers;
  for (const DnsQuestion& q : questions) answers.add(q, ask(*f.dns, q));
  f.dns->asked.clear();
  {
    Checker::AnswerScope scope(*f.checker, answers);
    CHECK(f.checker->check_rcpt(f.facts) ==
          std::optional<std::string>("554 5.7.1 <x@y.example>: Relay access denied"));
  }
  CHECK(f.dns->asked.empty());
  CHECK(f.checker->dns_misses() == 0);
  // A local recipient is not asked about (trivial-rewrite says local).
  f.facts.recipient = "alice@pfo.example";
  names.clear();
  for (const DnsQuestion& q : f.checker->dns_questions(f.facts, Stage::rcpt)) names.push_back(q.name);
  CHECK(std::find(names.begin(), names.end(), "pfo.example") == names.end());
  // Without the answers, each question is asked synchronously and counted.
  f.facts.recipient = "x@y.example";
  DnsAnswers none;
  {
    Checker::AnswerScope scope(*f.checker, none);
    f.checker->check_rcpt(f.facts);
  }
  CHECK(f.checker->dns_misses() >= 4);
  CHECK(!f.dns->asked.empty());
  // An unanswered question (the wait timed out) is a temporary failure.
  Fixture t("smtpd_sender_restrictions = reject_unknown_sender_domain\n");
  SessionFacts& tf = t.facts;
  tf.have_sender = true;
  tf.sender = "a@slow.example";
  DnsAnswers late;
  for (const DnsQuestion& q : t.checker->dns_questions(tf, Stage::mail)) late.add(q, unanswered());
  CHECK(late.size() == 1);
  Checker::AnswerScope scope(*t.checker, late);
  CHECK(t.mail("a@slow.example").empty());  // defer_if_permit, as for a DNS timeout
  t.facts.sasl_username = "joe";
  CHECK(t.rcpt("x@y.example", "a@slow.example") ==
        "450 4.1.8 <a@slow.example>: Sender address rejected: Domain not found");
  CHECK(t.checker->dns_misses() == 0);
}

TEST_CASE("DNS prefetch: no DNS restriction, no question", "[smtpd_check]") {
  Fixture f;
  f.facts.have_sender = true;
  f.facts.sender = "a@b.example";
  f.facts.recipient = "x@y.example";
  CHECK(f.checker->dns_questions(f.facts, Stage::rcpt).empty());
  CHECK(f.resolver->calls == 0);
}

#endif  // MTA_HAVE_SMTPD_CHECK

TEST_CASE("smtpd_dsn_fix: address statuses made to fit what is rejected (Postfix's table)") {
  using mta::smtpd::dsn_fix;
  CHECK(dsn_fix("5.1.1", "Sender address") == "5.1.7");
  CHECK(dsn_fix("4.1.2", "Sender address") == "4.1.8");
  CHECK(dsn_fix("4.1.5", "Sender address") == "4.1.0");
  CHECK(dsn_fix("5.1.7", "Recipient address") == "5.1.3");
  CHECK(dsn_fix("5.1.8", "Recipient address") == "5.1.2");
  CHECK(dsn_fix("5.1.9", "Recipient address") == "5.1.0");
  CHECK(dsn_fix("5.1.1", "Recipient address") == "5.1.1");
  CHECK(dsn_fix("5.1.1", "Client host") == "5.0.0");
  CHECK(dsn_fix("5.7.1", "Sender address") == "5.7.1");
}
