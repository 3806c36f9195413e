// trivial-rewrite: RFC 822 tokens, host name syntax, pattern lists, the
// rewrite and resolve rules, and error/discard's DSN text splitting.
// Expected values are what the real Postfix 3.7 answers for the same
// settings (tests/integration/trivial_rewrite_interop.sh compares the two
// on a much larger table).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_TRIVIAL_REWRITE)

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"
#include "trivial-rewrite/engine.hpp"
#include "trivial-rewrite/hostname_syntax.hpp"
#include "trivial-rewrite/interface_addresses.hpp"
#include "trivial-rewrite/tok822.hpp"
#include "trivial-rewrite/transport_table.hpp"

using namespace mta::rewrite;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-rewrite-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

const char* kBaseMainCf =
    "compatibility_level = 3.6\n"
    "myhostname = mx.example.org\n"
    "mydomain = example.org\n"
    "myorigin = $mydomain\n"
    "mydestination = $myhostname, localhost\n"
    "relay_domains = relay.example\n"
    "virtual_alias_domains = valias.example\n"
    "virtual_mailbox_domains = vbox.example\n"
    "virtual_transport = lmtp:unix:private/dovecot-lmtp\n";

// An engine for kBaseMainCf plus extra lines; 127.0.0.1 and 192.0.2.1 are
// the local interface addresses.
struct TestEngine {
  TempDir dir;
  std::unique_ptr<Engine> engine;
  explicit TestEngine(const std::string& extra = {}) {
    dir.write("main.cf", std::string(kBaseMainCf) + extra);
    mta::config::Config config = mta::config::Config::load(dir.path.string());
    engine = std::make_unique<Engine>(config, InterfaceAddresses::from_list({"127.0.0.1", "192.0.2.1"}));
  }
  std::string rewrite(const std::string& address, const std::string& rule = "local") const {
    return engine->rewrite(rule, address).value_or("(unknown rule)");
  }
  // "transport nexthop recipient flags"
  std::string resolve(const std::string& address, const std::string& sender = {}, bool verify = false) const {
    ResolveResult r = engine->resolve(sender, address, verify);
    return r.transport + " " + r.nexthop + " " + r.recipient + " " + std::to_string(r.flags);
  }
};

}  // namespace

TEST_CASE("tok822: scanning, internal and external forms, quoting local parts") {
  TokenList t = scan("\"a b\"@example.com");
  REQUIRE(t.size() == 5);
  CHECK(t[0].type == kQuoted);
  CHECK(t[0].text == "a b");
  CHECK(t[1].type == '@');
  CHECK(t[3].type == '.');
  CHECK(internalize(t) == "a b@example.com");
  CHECK(externalize(t) == "\"a b\"@example.com");

  CHECK(scan("a\\@b")[0].type == kQuoted);  // an escaped operator makes an atom a quoted string
  CHECK(scan("a\\@b")[0].text == "a@b");
  CHECK(scan("(comment) x")[0].type == kComment);
  CHECK(scan("(comment) x")[0].text == "(comment)");
  CHECK(scan("[1.2.3.4]")[0].type == kLiteral);
  CHECK(internalize(scan("a b")) == "a b");  // adjacent atoms keep a space
  CHECK(scan("  ").empty());

  CHECK(quote_local("first.last@x") == "first.last@x");
  CHECK(quote_local("a b@x") == "\"a b\"@x");
  CHECK(quote_local(".a@x") == "\".a\"@x");
  CHECK(quote_local("a..b@x") == "\"a..b\"@x");
  CHECK(quote_local("a%b!c@x") == "a%b!c@x");
  CHECK(quote_local("a\"b@x") == "\"a\\\"b\"@x");
  CHECK(quote_local("@a:b c@d") == "@a:\"b c\"@d");
  CHECK(quote_local("") == "\"\"");
  CHECK(quote_local("a@b", true) == "\"a@b\"");
}

TEST_CASE("host name and address syntax as Postfix checks it") {
  CHECK(valid_hostname("mx.example.com"));
  CHECK(valid_hostname("a_b.example"));
  CHECK_FALSE(valid_hostname(""));
  CHECK_FALSE(valid_hostname("a..b"));
  CHECK_FALSE(valid_hostname(".a"));
  CHECK_FALSE(valid_hostname("a."));
  CHECK_FALSE(valid_hostname("-a.b"));
  CHECK_FALSE(valid_hostname("a-.b"));
  CHECK_FALSE(valid_hostname("123"));
  CHECK_FALSE(valid_hostname("1.2.3.4"));
  CHECK_FALSE(valid_hostname("a b"));
  CHECK_FALSE(valid_hostname(std::string(64, 'a') + ".com"));
  CHECK(valid_hostname(std::string(63, 'a') + ".com"));
  CHECK(valid_utf8_hostname(true, "bücher.example"));
  CHECK_FALSE(valid_utf8_hostname(false, "bücher.example"));
  CHECK_FALSE(valid_utf8_hostname(true, "b\xff.example"));

  CHECK(valid_ipv4_hostaddr("192.0.2.1"));
  CHECK(valid_ipv4_hostaddr("0.0.0.0"));
  CHECK_FALSE(valid_ipv4_hostaddr("0.1.2.3"));
  CHECK_FALSE(valid_ipv4_hostaddr("1.2.3"));
  CHECK_FALSE(valid_ipv4_hostaddr("1.2.3.256"));
  CHECK(valid_ipv6_hostaddr("::1"));
  CHECK(valid_ipv6_hostaddr("2001:db8::1"));
  CHECK(valid_ipv6_hostaddr("::ffff:192.0.2.1"));
  CHECK_FALSE(valid_ipv6_hostaddr("1::2::3"));
  CHECK_FALSE(valid_ipv6_hostaddr("12345::1"));
  CHECK(valid_mailhost_literal("[192.0.2.1]"));
  CHECK(valid_mailhost_literal("[IPv6:::1]"));
  CHECK(valid_mailhost_literal("[ipv6:::1]"));
  CHECK_FALSE(valid_mailhost_literal("[::1]"));
  CHECK_FALSE(valid_mailhost_literal("[192.0.2.1]x"));
  CHECK_FALSE(valid_mailhost_literal("192.0.2.1"));
}

TEST_CASE("pattern lists: literals, subdomains, negation, tables, files") {
  MatchList hosts("relay_domains", "a.example, !b.a.example, .c.example, inline:{d.example=x}", MatchList::Kind::hostname);
  CHECK(hosts.match("A.Example") == Match::yes);
  CHECK(hosts.match("x.a.example") == Match::no);
  CHECK(hosts.match("x.c.example") == Match::yes);
  CHECK(hosts.match("c.example") == Match::no);
  CHECK(hosts.match("d.example") == Match::yes);
  CHECK(hosts.match("x.d.example") == Match::no);  // tables are asked for ".d.example"

  MatchList parent("relay_domains", "a.example, !b.a.example, inline:{d.example=x}", MatchList::Kind::hostname, true);
  CHECK(parent.match("x.a.example") == Match::yes);
  CHECK(parent.match("b.a.example") == Match::yes);  // a.example matches first: the first match decides
  CHECK(parent.match("x.d.example") == Match::yes);

  MatchList negated("relay_domains", "!b.a.example, a.example", MatchList::Kind::hostname, true);
  CHECK(negated.match("b.a.example") == Match::no);
  CHECK(negated.match("c.a.example") == Match::yes);

  MatchList strings("mydestination", "localhost, inline:{mail.example=1}", MatchList::Kind::string);
  CHECK(strings.match("LOCALHOST") == Match::yes);
  CHECK(strings.match("x.localhost") == Match::no);
  CHECK(strings.match("mail.example") == Match::yes);

  TempDir dir;
  std::string file = dir.write("domains", "# local domains\none.example two.example\n\n  three.example\n");
  MatchList from_file("mydestination", file, MatchList::Kind::string);
  CHECK(from_file.match("two.example") == Match::yes);
  CHECK(from_file.match("three.example") == Match::yes);
  CHECK(from_file.match("four.example") == Match::no);

  MatchList broken("mydestination", "hash:" + (dir.path / "missing").string(), MatchList::Kind::string);
  CHECK(broken.match("x.example") == Match::error);
  CHECK_FALSE(broken.error().empty());
  MatchList missing_file("mydestination", (dir.path / "nofile").string(), MatchList::Kind::string);
  CHECK(missing_file.match("x.example") == Match::error);

  CHECK(split_patterns("a, b  inline:{x=1, y=2},c") ==
        std::vector<std::string>{"a", "b", "inline:{x=1, y=2}", "c"});
}

TEST_CASE("interface addresses for [ip] literals") {
  InterfaceAddresses a = InterfaceAddresses::from_list({"127.0.0.1", "2001:db8::1"});
  CHECK(a.contains("127.0.0.1"));
  CHECK(a.contains("2001:DB8:0::1"));
  CHECK_FALSE(a.contains("127.0.0.2"));
  CHECK_FALSE(a.contains("not an address"));
}

TEST_CASE("transport_maps lookups and entry forms") {
  TransportTable t("transport_maps",
                   "inline:{user@ext.example=smtp:[a.example], ext.example=relay:, .sub.example=:[hop.example], "
                   "err.example=error:, noop.example=:, *=smtp:[wild.example]}",
                   false, "+");
  std::string transport = "smtp", nexthop = "x";
  CHECK(t.lookup("user+tag@ext.example", "ext.example", transport, nexthop) == TransportTable::Outcome::found);
  CHECK(transport + " " + nexthop == "smtp [a.example]");
  transport = "smtp", nexthop = "x";
  t.lookup("other@ext.example", "ext.example", transport, nexthop);
  CHECK(transport + " " + nexthop == "relay ext.example");
  transport = "smtp", nexthop = "x";
  t.lookup("u@a.sub.example", "a.sub.example", transport, nexthop);
  CHECK(transport + " " + nexthop == "smtp [hop.example]");
  transport = "smtp", nexthop = "x";
  t.lookup("u@err.example", "err.example", transport, nexthop);
  CHECK(transport + " " + nexthop == "error Address is undeliverable");
  transport = "smtp", nexthop = "x";
  t.lookup("u@noop.example", "noop.example", transport, nexthop);
  CHECK(transport + " " + nexthop == "smtp x");
  transport = "local", nexthop = "x";
  t.lookup("u@else.example", "else.example", transport, nexthop);
  CHECK(transport + " " + nexthop == "smtp [wild.example]");

  CHECK(strip_extension("user+tag@x", "+") == "user@x");
  CHECK(strip_extension("user@x", "+") == "");
  CHECK(strip_extension("owner-list@x", "-") == "");
  CHECK(strip_extension("postmaster@y", "+") == "");
  CHECK(strip_extension("postmaster+x@y", "+") == "postmaster@y");
}

TEST_CASE("rewrite: the local and remote rules") {
  TestEngine e;
  CHECK(e.rewrite("user") == "user@example.org");
  CHECK(e.rewrite("user@host") == "user@host");
  CHECK(e.rewrite("user@host.") == "user@host");
  CHECK(e.rewrite("user@host..") == "user@host..");
  CHECK(e.rewrite("site!user") == "user@site");
  CHECK(e.rewrite("a!b!user") == "b!user@a");
  CHECK(e.rewrite("!user") == "user@");
  CHECK(e.rewrite("user%domain") == "user@domain");
  CHECK(e.rewrite("user%a%b") == "user%a@b");
  CHECK(e.rewrite("@a,@b:user@c") == "user@c");
  CHECK(e.rewrite("a b@c") == "\"a b\"@c");
  CHECK(e.rewrite("\"a b\"@c") == "\"a b\"@c");
  CHECK(e.rewrite("@") == "\"\"");
  CHECK(e.rewrite("\"\"") == "\"\"");
  CHECK(e.rewrite("") == "");
  CHECK(e.rewrite("user", "remote") == "user");
  CHECK(e.rewrite("user", "bogus") == "(unknown rule)");

  TestEngine knobs(
      "swap_bangpath = no\nallow_percent_hack = no\nappend_dot_mydomain = yes\n"
      "remote_header_rewrite_domain = remote.example\n");
  CHECK(knobs.rewrite("site!user") == "site!user@example.org");
  CHECK(knobs.rewrite("user%domain") == "user%domain@example.org");
  CHECK(knobs.rewrite("user@host") == "user@host.example.org");
  CHECK(knobs.rewrite("user@[192.0.2.9]") == "user@[192.0.2.9]");
  CHECK(knobs.rewrite("user", "remote") == "user@remote.example");
}

TEST_CASE("resolve: address classes, transports and next hops") {
  TestEngine e;
  CHECK(e.resolve("user") == "local mx.example.org user@mx.example.org 256");
  CHECK(e.resolve("user@localhost") == "local mx.example.org user@localhost 256");
  CHECK(e.resolve("user@LocalHost.") == "local mx.example.org user@LocalHost 256");
  CHECK(e.resolve("") == "local mx.example.org MAILER-DAEMON@mx.example.org 256");
  CHECK(e.resolve("user@example.com") == "smtp example.com user@example.com 4096");
  CHECK(e.resolve("user@relay.example") == "relay relay.example user@relay.example 2048");
  CHECK(e.resolve("user@x.relay.example") == "relay x.relay.example user@x.relay.example 2048");
  CHECK(e.resolve("user@valias.example") == "error 5.1.1 User unknown in virtual alias table user@valias.example 512");
  CHECK(e.resolve("user@vbox.example") == "lmtp unix:private/dovecot-lmtp user@vbox.example 1024");
  CHECK(e.resolve("user@[127.0.0.1]") == "local mx.example.org user@[127.0.0.1] 256");
  CHECK(e.resolve("user@[192.0.2.1]") == "local mx.example.org user@[192.0.2.1] 256");
  CHECK(e.resolve("user@[10.0.0.1]") == "smtp [10.0.0.1] user@[10.0.0.1] 4096");
  // Routing through a local domain, and routing left in the local part.
  CHECK(e.resolve("user%remote.example@localhost") == "smtp remote.example user@remote.example 4096");
  CHECK(e.resolve("remote.example!user@localhost") == "smtp remote.example user@remote.example 4096");
  CHECK(e.resolve("a%b%c@localhost") == "smtp c a%b@c 4098");
  // Bad addresses.
  CHECK(e.resolve("user@1.2.3.4") == "CHANNEL NOT UPDATED NEXTHOP NOT UPDATED user@1.2.3.4 4100");
  CHECK(e.resolve("user@a..b") == "CHANNEL NOT UPDATED NEXTHOP NOT UPDATED user@a..b 4100");
  CHECK(e.resolve("-user@localhost") == "local mx.example.org -user@localhost 260");
  // The verify personality follows the address_verify_* parameters.
  CHECK(e.resolve("user@example.com", "", true) == "smtp example.com user@example.com 4096");

  TestEngine numeric("resolve_numeric_domain = yes\nallow_min_user = yes\nlocal_transport = local\n");
  CHECK(numeric.resolve("user@127.0.0.1") == "local [127.0.0.1] user@[127.0.0.1] 256");
  CHECK(numeric.resolve("user@10.0.0.1") == "smtp [10.0.0.1] user@[10.0.0.1] 4096");
  CHECK(numeric.resolve("-user@localhost") == "local localhost -user@localhost 256");

  TestEngine relayhost(
      "relayhost = [smarthost.example]:587\ndefault_transport = smtp\n"
      "address_verify_relayhost = [probe.example]\n");
  CHECK(relayhost.resolve("user@example.com") == "smtp [smarthost.example]:587 user@example.com 4096");
  CHECK(relayhost.resolve("user@relay.example") == "relay [smarthost.example]:587 user@relay.example 2048");
  CHECK(relayhost.resolve("user@example.com", "", true) == "smtp [probe.example] user@example.com 4096");
  CHECK(relayhost.resolve("user@localhost") == "local mx.example.org user@localhost 256");

  TestEngine deftransport("default_transport = smtp:[outbound.example]\nrelayhost = [ignored.example]\n");
  CHECK(deftransport.resolve("user@example.com") == "smtp [outbound.example] user@example.com 4096");
}

TEST_CASE("resolve: tables (transport, relocated, sender-dependent) and their failures") {
  TestEngine e(
      "transport_maps = inline:{example.com=smtp:[mx.example.com]:25, .sub.example.com=:[hop.example], "
      "gogu.org=smtp:[internal.gogu.org]}\n"
      "relocated_maps = inline:{moved@example.net=new@example.net}\n"
      "sender_dependent_relayhost_maps = inline:{alice@sender.example=[alice.example], <>=[bounces.example]}\n"
      "sender_dependent_default_transport_maps = inline:{bob@sender.example=relay:, dunno@sender.example=DUNNO}\n");
  CHECK(e.resolve("user@example.com") == "smtp [mx.example.com]:25 user@example.com 4096");
  CHECK(e.resolve("user@a.sub.example.com") == "smtp [hop.example] user@a.sub.example.com 4096");
  // The issue's example: a domain to an internal host, without MX lookups.
  CHECK(e.resolve("florin@gogu.org") == "smtp [internal.gogu.org] florin@gogu.org 4096");
  CHECK(e.resolve("florin@mail.gogu.org", "someone@example.com") == "smtp mail.gogu.org florin@mail.gogu.org 4096");
  CHECK(e.resolve("moved@example.net") == "error 5.1.6 User has moved to new@example.net moved@example.net 4096");
  CHECK(e.resolve("user@example.net", "alice@sender.example") == "smtp [alice.example] user@example.net 4096");
  CHECK(e.resolve("user@example.net", "") == "smtp [bounces.example] user@example.net 4096");
  CHECK(e.resolve("user@example.net", "bob@sender.example") == "relay example.net user@example.net 4096");
  CHECK(e.resolve("user@example.net", "dunno@sender.example") == "smtp example.net user@example.net 4096");
  // The virtual alias class keeps its "User unknown" whatever transport_maps says.
  CHECK(e.resolve("user@valias.example") == "error 5.1.1 User unknown in virtual alias table user@valias.example 512");

  TempDir dir;
  TestEngine broken("relay_domains = hash:" + (dir.path / "missing").string() + "\n");
  CHECK((broken.engine->resolve("", "user@example.com").flags & kFlagFail) != 0);
  CHECK(broken.engine->resolve("", "user@localhost").flags == kClassLocal);

  TestEngine null_transport("relay_transport =\n");
  CHECK((null_transport.engine->resolve("", "user@relay.example").flags & kFlagFail) != 0);
}

TEST_CASE("resolve_local and resolve_class") {
  TestEngine e;
  CHECK(e.engine->resolve_local("localhost") == 1);
  CHECK(e.engine->resolve_local("localhost.") == 1);
  CHECK(e.engine->resolve_local("localhost..") == 0);
  CHECK(e.engine->resolve_local("[127.0.0.1]") == 1);
  CHECK(e.engine->resolve_local("[10.0.0.1]") == 0);
  CHECK(e.engine->resolve_class("mx.example.org") == kClassLocal);
  CHECK(e.engine->resolve_class("valias.example") == kClassAlias);
  CHECK(e.engine->resolve_class("vbox.example") == kClassVirtual);
  CHECK(e.engine->resolve_class("relay.example") == kClassRelay);
  CHECK(e.engine->resolve_class("example.com") == kClassDefault);
}

#endif  // MTA_HAVE_TRIVIAL_REWRITE

#if defined(MTA_HAVE_SIMPLE_AGENT)

#include "deliver/agent_session.hpp"

TEST_CASE("error and discard: the status and text of the next hop (dsn_split)") {
  using mta::agent::dsn_split;
  auto split = [](const char* def, const char* text) {
    auto d = dsn_split(def, text);
    return d.status + "|" + d.text;
  };
  CHECK(split("5.0.0", "5.1.1 User unknown") == "5.1.1|User unknown");
  CHECK(split("5.0.0", "Go away") == "5.0.0|Go away");
  CHECK(split("2.0.0", "  2.7.0   filtered ") == "2.7.0|filtered ");
  CHECK(split("4.0.0", "4.4.1") == "4.4.1|");
  CHECK(split("5.0.0", "5.1.1x text") == "5.0.0|5.1.1x text");
  CHECK(split("5.0.0", "3.1.1 text") == "5.0.0|3.1.1 text");
  CHECK(split("5.0.0", "5.1234.1 text") == "5.0.0|5.1234.1 text");
  CHECK(mta::agent::dsn_valid("4.7.1 x") == 5);
  CHECK(mta::agent::dsn_valid("4.7") == 0);
  CHECK(mta::agent::trace_flags(3 | 256 | 1024) == (256 | 1024));
}

#endif  // MTA_HAVE_SIMPLE_AGENT
