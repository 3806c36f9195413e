// smtp_client_test.cpp: the smtp client's pure parts: server replies
// (multi-line, enhanced status codes), next-hop syntax, MX ordering, the
// EHLO keyword masks, smtp_tls_policy_maps values, the certificate
// verification texts, and the SASL client's first step with libsasl2.
#ifdef MTA_HAVE_SMTP_CLIENT
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <sasl/saslutil.h>

#include "config/config.hpp"
#include "dns/dns_resolver.hpp"
#include "sasl/cyrus_client.hpp"
#include "smtp/smtp_client.hpp"
#include "smtp/smtp_reply.hpp"
#include "tls/tls_verify.hpp"

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
TEST_CASE("smtp_tls_policy_maps values", "[smtp_client]") {
  const std::vector<std::string> vmatch{"hostname"}, smatch{"nexthop", "dot-nexthop"};
  TlsPolicy p = parse_tls_policy("verify", "k", vmatch, smatch);
  CHECK(p.level == TlsLevel::verify);
  CHECK(!p.invalid);
  CHECK(p.match == vmatch);
  p = parse_tls_policy("secure match=.example.com:mx.example.net protocols=!SSLv3:!TLSv1 ciphers=high", "k", vmatch,
                       smatch);
  CHECK(p.level == TlsLevel::secure);
  CHECK(p.match == std::vector<std::string>{".example.com", "mx.example.net"});
  CHECK(p.overrides.protocols == "!SSLv3:!TLSv1");
  CHECK(p.overrides.ciphers == "high");
  p = parse_tls_policy("secure", "k", vmatch, smatch);
  CHECK(p.match == smatch);
  // match= means nothing below verify.
  p = parse_tls_policy("encrypt match=x.example", "k", vmatch, smatch);
  CHECK(p.level == TlsLevel::encrypt);
  CHECK(p.match.empty());
  CHECK(parse_tls_policy("may", "k", vmatch, smatch).level == TlsLevel::may);
  CHECK(parse_tls_policy("none", "k", vmatch, smatch).level == TlsLevel::none);
  // Broken entries: no connection.
  CHECK(parse_tls_policy("verify frobnicate=yes", "k", vmatch, smatch).invalid);
  CHECK(parse_tls_policy("bogus", "k", vmatch, smatch).invalid);
  CHECK(parse_tls_policy("verify match", "k", vmatch, smatch).invalid);
  CHECK(parse_tls_policy("", "k", vmatch, smatch).invalid);
  CHECK(parse_tls_policy("fingerprint", "k", vmatch, smatch).level == TlsLevel::unsupported);
}

TEST_CASE("certificate verification failure texts (tls_log_verify_error)", "[smtp_client]") {
  mta::tls::VerifyState st;
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false).empty());
  st.depth = 0;
  st.error = X509_V_ERR_CERT_HAS_EXPIRED;
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false) ==
        "server certificate verification failed for h[a]:25: certificate has expired");
  st.error = X509_V_ERR_HOSTNAME_MISMATCH;
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false) ==
        "server certificate verification failed for h[a]:25: num=62:hostname mismatch");
  st.error = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false) ==
        "certificate verification failed for h[a]:25: self-signed certificate");
  st.depth = 1;
  st.error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
  st.issuer = "/CN=Other CA";
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false) ==
        "certificate verification failed for h[a]:25: untrusted issuer /CN=Other CA");
  st.error = X509_V_ERR_CERT_HAS_EXPIRED;
  CHECK(mta::tls::verify_error_text(st, "h[a]:25", false) ==
        "CA certificate verification failed for h[a]:25: certificate has expired");
}

TEST_CASE("SASL client: libsasl2 picks a mechanism under the security options", "[smtp_client]") {
  std::string error;
  REQUIRE(mta::sasl::init_client("", error));
  mta::sasl::SecurityOptions plain_ok;
  plain_ok.noanonymous = true;
  auto c = mta::sasl::Client::create("smtp", "relay.example", plain_ok, error);
  REQUIRE(c);
  std::string mech, reply;
  REQUIRE(c->first("PLAIN", "alice", "secret", mech, reply));
  CHECK(mech == "PLAIN");
  char decoded[128];
  unsigned len = 0;
  REQUIRE(sasl_decode64(reply.data(), static_cast<unsigned>(reply.size()), decoded, sizeof decoded, &len) == SASL_OK);
  std::string text(decoded, len);
  CHECK(text.substr(text.find('\0')) == std::string("\0alice\0secret", 13));
  // noplaintext (Postfix's default smtp_sasl_security_options) refuses PLAIN.
  mta::sasl::SecurityOptions strict;
  strict.noplaintext = strict.noanonymous = true;
  auto c2 = mta::sasl::Client::create("smtp", "relay.example", strict, error);
  REQUIRE(c2);
  CHECK(!c2->first("PLAIN LOGIN", "alice", "secret", mech, reply));
  CHECK(reply == "no mechanism available");
}

TEST_CASE("smtp settings: fallback relays, TLS match lists, SASL", "[smtp_client]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("mta-smtp-settings-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "main.cf") << "compatibility_level = 3.6\nmyhostname = vm.localdomain\n"
                                    "smtp_fallback_relay = [10.0.0.1]:587, backup.example\n"
                                    "smtp_tls_secure_cert_match = nexthop:.example.com\n"
                                    "smtp_sasl_auth_enable = yes\n"
                                    "smtp_sasl_password_maps = texthash:/nonexistent\n"
                                    "smtp_sasl_security_options = noanonymous\n"
                                    "smtp_sasl_mechanism_filter = plain, !login\n"
                                    "smtp_connection_cache_time_limit = 5s\n";
  mta::config::Config c = mta::config::Config::load(dir.string());
  Settings s = Settings::from_config(c, false);
  CHECK(s.fallback_relay == std::vector<std::string>{"[10.0.0.1]:587", "backup.example"});
  CHECK(s.tls_verify_match == std::vector<std::string>{"hostname"});
  CHECK(s.tls_secure_match == std::vector<std::string>{"nexthop", ".example.com"});
  CHECK(s.sasl_enable);
  CHECK(s.sasl_opts.noanonymous);
  CHECK(!s.sasl_opts.noplaintext);
  CHECK(s.sasl_tls_opts.noanonymous);  // $smtp_sasl_security_options
  CHECK(s.sasl_mech_filter == std::vector<std::string>{"plain", "!login"});
  // lmtp: no fallback relays, its own name space.
  Settings l = Settings::from_config(c, true);
  CHECK(l.fallback_relay.empty());
  CHECK(!l.sasl_enable);
  fs::remove_all(dir);
}

#endif
