// smtp_client_test.cpp: the smtp client's pure parts: server replies
// (multi-line, enhanced status codes), next-hop syntax, MX ordering and
// the EHLO keyword masks.
#ifdef MTA_HAVE_SMTP_CLIENT
#include <catch2/catch.hpp>

#include <map>

#include "dns/dns_resolver.hpp"
#include "smtp/smtp_client.hpp"
#include "smtp/smtp_reply.hpp"

using namespace mta::smtp;

namespace {
Reply parse(std::initializer_list<const char*> lines) {
  ReplyReader r;
  bool done = false;
  for (const char* l : lines) done = r.add_line(l);
  REQUIRE(done);
  return r.take();
}
}  // namespace

TEST_CASE("smtp replies: code, enhanced status, multi-line text", "[smtp_client]") {
  Reply r = parse({"550 5.1.1 <u@x>: Recipient address rejected"});
  CHECK(r.code == 550);
  CHECK(r.dsn == "5.1.1");
  CHECK(r.flat() == "550 5.1.1 <u@x>: Recipient address rejected");

  // The status comes from the last line; lines are joined with spaces for the log.
  r = parse({"451-4.7.1 first line", "451 4.7.2 second line"});
  CHECK(r.code == 451);
  CHECK(r.dsn == "4.7.2");
  CHECK(r.text == "451-4.7.1 first line\n451 4.7.2 second line");
  CHECK(r.flat() == "451-4.7.1 first line 451 4.7.2 second line");

  // No status, or one of another class: X.0.0.
  CHECK(parse({"250 Ok"}).dsn == "2.0.0");
  CHECK(parse({"550 4.1.1 mismatch"}).dsn == "5.0.0");
  CHECK(parse({"421"}).dsn == "4.0.0");
  // 3xx and garbage: 5.5.0 (a protocol error when it comes where 2xx/4xx/5xx belongs).
  CHECK(parse({"354 go ahead"}).dsn == "5.5.0");
  ReplyReader g;
  CHECK_FALSE(g.add_line("garbage"));
  CHECK(g.add_line("250 ok"));
  Reply gr = g.take();
  CHECK(gr.code == 250);
  CHECK(gr.text == "garbage\n250 ok");
  // Non-printable bytes are censored.
  CHECK(parse({"550 bad\x01\xff"}).text == "550 bad??");
  // A status must be followed by white space or the end.
  CHECK(dsn_length("5.1.1 text") == 5);
  CHECK(dsn_length("5.1.10") == 6);
  CHECK(dsn_length("5.1.1x") == 0);
  CHECK(dsn_length("3.1.1") == 0);
}

TEST_CASE("smtp replies: the text stops growing at the line limit", "[smtp_client]") {
  ReplyReader r(20);
  CHECK_FALSE(r.add_line("250-0123456789012345"));
  CHECK_FALSE(r.add_line("250-more"));
  CHECK(r.add_line("250 end"));
  Reply rep = r.take();
  CHECK(rep.text == "250-0123456789012345");
  CHECK(rep.code == 250);
}

TEST_CASE("smtp next hops", "[smtp_client]") {
  std::string err;
  auto hop = parse_nexthop("example.com", "smtp", false, err);
  REQUIRE(hop);
  CHECK(hop->host == "example.com");
  CHECK(hop->port == 25);
  CHECK(hop->lookup_mx);

  hop = parse_nexthop("[mail.example.com]", "smtp", false, err);
  REQUIRE(hop);
  CHECK(hop->host == "mail.example.com");
  CHECK(hop->port == 25);
  CHECK_FALSE(hop->lookup_mx);

  hop = parse_nexthop("[127.0.0.1]:2525", "smtp", false, err);
  REQUIRE(hop);
  CHECK(hop->host == "127.0.0.1");
  CHECK(hop->port == 2525);
  CHECK_FALSE(hop->lookup_mx);

  hop = parse_nexthop("[::1]:2525", "smtp", false, err);
  REQUIRE(hop);
  CHECK(hop->host == "::1");
  CHECK(hop->port == 2525);

  hop = parse_nexthop("relay.example:587", "smtp", false, err);
  REQUIRE(hop);
  CHECK(hop->host == "relay.example");
  CHECK(hop->port == 587);
  CHECK(hop->lookup_mx);

  CHECK_FALSE(parse_nexthop("[127.0.0.1]:0", "smtp", false, err));
  CHECK(err == "bad network port in destination: [127.0.0.1]:0");
  CHECK_FALSE(parse_nexthop("[127.0.0.1]:70000", "smtp", false, err));
  CHECK_FALSE(parse_nexthop("[127.0.0.1", "smtp", false, err));

  // LMTP: unix:, inet:, bare names on lmtp_tcp_port, never MX.
  hop = parse_nexthop("unix:private/dovecot-lmtp", "24", true, err);
  REQUIRE(hop);
  CHECK(hop->unix_socket);
  CHECK(hop->path == "private/dovecot-lmtp");
  hop = parse_nexthop("inet:localhost:2424", "24", true, err);
  REQUIRE(hop);
  CHECK_FALSE(hop->unix_socket);
  CHECK(hop->host == "localhost");
  CHECK(hop->port == 2424);
  CHECK_FALSE(hop->lookup_mx);
  hop = parse_nexthop("mailhost", "24", true, err);
  REQUIRE(hop);
  CHECK(hop->port == 24);
  CHECK_FALSE(hop->lookup_mx);
}

TEST_CASE("MX records: preference order, equal preferences shuffled", "[smtp_client]") {
  std::vector<mta::dns::Record> base;
  for (auto [pref, host] : std::vector<std::pair<unsigned, const char*>>{
           {20, "b1"}, {10, "a1"}, {30, "c1"}, {10, "a2"}, {20, "b2"}, {10, "a3"}}) {
    mta::dns::Record r;
    r.type = mta::dns::kTypeMx;
    r.pref = pref;
    r.data = host;
    base.push_back(r);
  }
  std::map<std::string, int> first_seen;
  for (unsigned seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    auto mx = base;
    mta::dns::sort_mx(mx, rng);
    REQUIRE(mx.size() == 6);
    for (size_t i = 1; i < mx.size(); ++i) CHECK(mx[i - 1].pref <= mx[i].pref);
    CHECK(mx[0].data[0] == 'a');
    CHECK(mx[3].data[0] == 'b');
    CHECK(mx[5].data == "c1");
    first_seen[mx[0].data]++;
  }
  // Every one of the three best hosts comes first sometimes.
  CHECK(first_seen.size() == 3);
}

TEST_CASE("EHLO keyword masks (smtp_discard_ehlo_keywords)", "[smtp_client]") {
  unsigned m = ehlo_mask("pipelining, dsn  starttls");
  CHECK(ehlo_mask_text(m) == "PIPELINING STARTTLS DSN");
  CHECK(ehlo_mask("") == 0);
  CHECK(ehlo_mask_text(ehlo_mask("8bitmime SmtpUtf8 nonsense")) == "8BITMIME SMTPUTF8");
}
#endif
