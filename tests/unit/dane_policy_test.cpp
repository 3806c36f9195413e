// smtp/smtp_dane: the DANE policy decisions of Postfix's dane_init() for
// "dane" and "dane-only", against a fake DNS whose answers say whether
// they were DNSSEC-validated.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_SMTP_CLIENT)

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.hpp"
#include "log/log.hpp"
#include "log_capture.hpp"
#include "smtp/smtp_dane.hpp"

using namespace mta;
using namespace mta::smtp::dane;
namespace fs = std::filesystem;

namespace {

// Answers by "name/type"; anything else is NXDOMAIN.  Counts questions.
class FakeDns : public Dns {
 public:
  std::map<std::string, Answer> answers;
  std::vector<std::string> asked;
  void set(const std::string& name, int type, dns::Status status, bool ad, std::vector<std::string> data = {}) {
    Answer a;
    a.status = status;
    a.authenticated = ad;
    for (const std::string& d : data) {
      dns::Record r;
      r.type = type;
      r.name = name;
      r.data = d;
      a.records.push_back(r);
    }
    if (status != dns::Status::ok)
      a.why = "Host or domain name not found. Name service error for name=" + name + " type=" + dns::type_name(type) +
              ": Host not found, try again";
    answers[name + "/" + std::to_string(type)] = a;
  }
  Answer query(const std::string& name, int type) override {
    asked.push_back(name + "/" + dns::type_name(type));
    auto it = answers.find(name + "/" + std::to_string(type));
    if (it != answers.end()) return it->second;
    Answer a;
    a.status = dns::Status::not_found;
    return a;
  }
};

std::string tlsa(unsigned u, unsigned s, unsigned m, const std::string& data) {
  std::string out;
  out += static_cast<char>(u);
  out += static_cast<char>(s);
  out += static_cast<char>(m);
  return out + data;
}

Settings dnssec_settings() {
  Settings s;
  s.dnssec = true;
  std::string w;
  s.digests = *mta::tls::parse_dane_digests("sha512 sha256", w);
  return s;
}

Target mx_target(const std::string& domain, const std::string& host) {
  Target t;
  t.dest = domain;
  t.domain = domain;
  t.host = host;
  t.addr = "192.0.2.1";
  t.port = 25;
  return t;
}

using test::LogCapture;

const std::string kDigest(32, '\x11');

// A signed zone: MX, A and TLSA all validated.
void signed_zone(FakeDns& dns, const std::vector<std::string>& records) {
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, true, {"mx.example.org"});
  dns.set("mx.example.org", dns::kTypeA, dns::Status::ok, true, {"192.0.2.1"});
  dns.set("_25._tcp.mx.example.org", dns::kTypeTlsa, dns::Status::ok, true, records);
}

}  // namespace

TEST_CASE("dane: validated MX, host and usable TLSA: authenticated TLS", "[dane]") {
  FakeDns dns;
  signed_zone(dns, {tlsa(3, 1, 1, kDigest)});
  Policy policy(dnssec_settings(), dns);
  Decision d = policy.decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::dane);
  CHECK(d.authenticated());
  CHECK(d.base_domain == "mx.example.org");
  REQUIRE(d.tlsa.size() == 1);
  CHECK(d.tlsa[0].usage == 3);
  CHECK(d.tlsa[0].data == kDigest);
  // dane-only: the same.
  CHECK(policy.decide(Mode::dane_only, mx_target("example.org", "mx.example.org")).level == Level::dane);
  // Cached: asking again costs no DNS question.
  size_t asked = dns.asked.size();
  policy.decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(dns.asked.size() == asked);
}

TEST_CASE("dane: TLSA records that are all unusable mean mandatory unauthenticated TLS", "[dane]") {
  LogCapture log;
  FakeDns dns;
  signed_zone(dns, {tlsa(1, 1, 1, kDigest), tlsa(0, 0, 1, kDigest)});
  Policy policy(dnssec_settings(), dns);
  CHECK(policy.decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::encrypt);
  CHECK_THAT(log.text(), Catch::Contains(
      "warning: _25._tcp.mx.example.org unsupported TLSA certificate usage: 1 1 1 1111"));
  Decision only = policy.decide(Mode::dane_only, mx_target("example.org", "mx.example.org"));
  CHECK(only.level == Level::invalid);
  CHECK(only.status == "4.7.5");
  CHECK(only.reason == "TLSA records unusable");
}

TEST_CASE("dane: no TLSA records, or records that were not validated: may", "[dane]") {
  FakeDns dns;
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, true, {"mx.example.org"});
  dns.set("mx.example.org", dns::kTypeA, dns::Status::ok, true, {"192.0.2.1"});
  Policy policy(dnssec_settings(), dns);
  CHECK(policy.decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::may);
  Decision only = policy.decide(Mode::dane_only, mx_target("example.org", "mx.example.org"));
  CHECK(only.level == Level::invalid);
  CHECK(only.reason == "no TLSA records found");

  FakeDns forged;
  forged.set("example.org", dns::kTypeMx, dns::Status::ok, true, {"mx.example.org"});
  forged.set("mx.example.org", dns::kTypeA, dns::Status::ok, true, {"192.0.2.1"});
  forged.set("_25._tcp.mx.example.org", dns::kTypeTlsa, dns::Status::ok, false, {tlsa(3, 1, 1, kDigest)});
  Policy p2(dnssec_settings(), forged);
  CHECK(p2.decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::may);
}

TEST_CASE("dane: a host in an unsigned zone is not asked for TLSA", "[dane]") {
  FakeDns dns;
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, true, {"mx.unsigned.test"});
  dns.set("mx.unsigned.test", dns::kTypeA, dns::Status::ok, false, {"192.0.2.1"});
  dns.set("_25._tcp.mx.unsigned.test", dns::kTypeTlsa, dns::Status::ok, true, {tlsa(3, 1, 1, kDigest)});
  Settings s = dnssec_settings();
  Policy policy(s, dns);
  CHECK(policy.decide(Mode::dane, mx_target("example.org", "mx.unsigned.test")).level == Level::may);
  for (const std::string& q : dns.asked) CHECK(q.find("TLSA") == std::string::npos);
  // ... unless smtp_tls_force_insecure_host_tlsa_lookup = yes.
  s.force_tlsa = true;
  Policy forced(s, dns);
  CHECK(forced.decide(Mode::dane, mx_target("example.org", "mx.unsigned.test")).level == Level::dane);
}

TEST_CASE("dane: an insecure MX RRset per smtp_tls_dane_insecure_mx_policy", "[dane]") {
  FakeDns dns;
  signed_zone(dns, {tlsa(3, 1, 1, kDigest)});
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, false, {"mx.example.org"});
  Settings s = dnssec_settings();
  s.insecure_mx = InsecureMx::dane;
  Decision half = Policy(s, dns).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(half.level == Level::half_dane);
  CHECK(half.authenticated());
  s.insecure_mx = InsecureMx::encrypt;
  CHECK(Policy(s, dns).decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::encrypt);
  s.insecure_mx = InsecureMx::may;
  CHECK(Policy(s, dns).decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::may);
  s.insecure_mx = InsecureMx::dane;
  Decision only = Policy(s, dns).decide(Mode::dane_only, mx_target("example.org", "mx.example.org"));
  CHECK(only.level == Level::invalid);
  CHECK(only.reason == "non DNSSEC destination");
}

TEST_CASE("dane: a [host] next hop has no MX RRset to check", "[dane]") {
  FakeDns dns;
  signed_zone(dns, {tlsa(3, 1, 1, kDigest)});
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, false, {"mx.example.org"});  // not asked
  Target t = mx_target("[mx.example.org]:25", "mx.example.org");
  t.domain.clear();
  CHECK(Policy(dnssec_settings(), dns).decide(Mode::dane, t).level == Level::dane);
  for (const std::string& q : dns.asked) CHECK(q.find("/MX") == std::string::npos);
}

TEST_CASE("dane: a failed TLSA lookup defers the host", "[dane]") {
  LogCapture log;
  FakeDns dns;
  signed_zone(dns, {});
  dns.set("_25._tcp.mx.example.org", dns::kTypeTlsa, dns::Status::retry, false);
  Decision d = Policy(dnssec_settings(), dns).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::invalid);
  CHECK(d.status == "4.7.5");
  CHECK(d.reason == "TLSA lookup error for mx.example.org:25");
  // Asked twice, as Postfix's TLSA cache refreshes a failed entry at once.
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "_25._tcp.mx.example.org/TLSA") == 2);
  CHECK_THAT(log.text(), Catch::Contains("warning: DANE TLSA lookup problem: Host or domain name not found. Name "
                                         "service error for name=_25._tcp.mx.example.org type=TLSA: Host not found, "
                                         "try again"));
}

// An MX host that is an alias: its A answer's owner is the CNAME target.
void alias_host(FakeDns& dns, const std::string& alias, const std::string& target, bool ad) {
  dns.set("example.org", dns::kTypeMx, dns::Status::ok, true, {alias});
  dns.set(alias, dns::kTypeA, dns::Status::ok, ad, {"192.0.2.1"});
  dns.answers[alias + "/" + std::to_string(dns::kTypeA)].records[0].name = target;
}

TEST_CASE("dane: a validated alias: TLSA at the expanded name first, then at the alias", "[dane]") {
  FakeDns dns;
  alias_host(dns, "mx.example.org", "host.provider.example", true);
  dns.set("_25._tcp.host.provider.example", dns::kTypeTlsa, dns::Status::ok, true, {tlsa(2, 0, 1, kDigest)});
  Decision d = Policy(dnssec_settings(), dns).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::dane);
  CHECK(d.base_domain == "host.provider.example");
  // DANE-TA names: the base domain and the next-hop domain (Postfix's dane_init()).
  CHECK(d.match_names == std::vector<std::string>{"host.provider.example", "example.org"});
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "_25._tcp.mx.example.org/TLSA") == 0);

  FakeDns aliased;  // the next-hop domain is itself an alias: its MX records' owner is a name too
  alias_host(aliased, "mx.example.org", "host.provider.example", true);
  aliased.answers["example.org/" + std::to_string(dns::kTypeMx)].records[0].name = "mail-domain.example.";
  aliased.set("_25._tcp.host.provider.example", dns::kTypeTlsa, dns::Status::ok, true, {tlsa(2, 0, 1, kDigest)});
  d = Policy(dnssec_settings(), aliased).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.match_names == std::vector<std::string>{"host.provider.example", "mail-domain.example", "example.org"});

  FakeDns dns2;  // nothing at the expanded name: the alias's own records
  alias_host(dns2, "mx.example.org", "host.provider.example", true);
  dns2.set("_25._tcp.mx.example.org", dns::kTypeTlsa, dns::Status::ok, true, {tlsa(3, 1, 1, kDigest)});
  d = Policy(dnssec_settings(), dns2).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::dane);
  CHECK(d.base_domain == "mx.example.org");
  std::vector<std::string> order;
  for (const std::string& q : dns2.asked)
    if (q.find("/TLSA") != std::string::npos) order.push_back(q);
  CHECK(order == std::vector<std::string>{"_25._tcp.host.provider.example/TLSA", "_25._tcp.mx.example.org/TLSA"});
}

TEST_CASE("dane: an alias into an unsigned zone counts when the CNAME itself validates", "[dane]") {
  FakeDns dns;
  alias_host(dns, "mx.example.org", "host.unsigned.example", false);
  dns.set("mx.example.org", dns::kTypeCname, dns::Status::ok, true, {"host.unsigned.example"});
  dns.set("_25._tcp.mx.example.org", dns::kTypeTlsa, dns::Status::ok, true, {tlsa(3, 1, 1, kDigest)});
  Decision d = Policy(dnssec_settings(), dns).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::dane);
  CHECK(d.base_domain == "mx.example.org");
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "_25._tcp.host.unsigned.example/TLSA") == 0);

  FakeDns insecure;  // the CNAME is not validated either: no TLSA lookup at all
  alias_host(insecure, "mx.example.org", "host.unsigned.example", false);
  insecure.set("mx.example.org", dns::kTypeCname, dns::Status::ok, false, {"host.unsigned.example"});
  d = Policy(dnssec_settings(), insecure).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::may);
  CHECK(std::none_of(insecure.asked.begin(), insecure.asked.end(),
                     [](const std::string& q) { return q.find("/TLSA") != std::string::npos; }));
}

TEST_CASE("dane: the CNAME's own lookup failing defers, with Postfix's warning", "[dane]") {
  LogCapture log;
  FakeDns dns;
  alias_host(dns, "mx.example.org", "host.unsigned.example", false);  // no CNAME answer: "no longer a CNAME"
  Decision d = Policy(dnssec_settings(), dns).decide(Mode::dane, mx_target("example.org", "mx.example.org"));
  CHECK(d.level == Level::invalid);
  CHECK(d.status == "4.7.5");
  CHECK(d.reason == "TLSA lookup error for mx.example.org:25");
  CHECK_THAT(log.text(), Catch::Contains("warning: DNSSEC status lookup error for mx.example.org: no longer a CNAME"));
}

TEST_CASE("dane without DNSSEC lookups: may with a warning, dane-only defers", "[dane]") {
  LogCapture log;
  FakeDns dns;
  signed_zone(dns, {tlsa(3, 1, 1, kDigest)});
  Settings s = dnssec_settings();
  s.dnssec = false;
  Policy policy(s, dns);
  CHECK(policy.decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::may);
  CHECK_THAT(log.text(), Catch::Contains("warning: example.org: dane configured with dnssec lookups disabled"));
  Decision only = policy.decide(Mode::dane_only, mx_target("example.org", "mx.example.org"));
  CHECK(only.level == Level::invalid);
  CHECK(only.reason == "client TLS configuration problem");
  CHECK_THAT(log.text(), Catch::Contains("warning: example.org: dane-only configured with dnssec lookups disabled"));
  CHECK(dns.asked.empty());

  s.dnssec = true;
  s.ignore_mx_lookup_error = true;
  CHECK(Policy(s, dns).decide(Mode::dane, mx_target("example.org", "mx.example.org")).level == Level::may);
  CHECK_THAT(log.text(), Catch::Contains("warning: example.org: dane configured with MX lookup errors ignored"));
}

TEST_CASE("DANE settings from main.cf", "[dane]") {
  config::LoadOptions options;
  options.read_main_cf = false;
  config::Config c = config::Config::load(fs::temp_directory_path().string(), options);
  Settings s = Settings::from_config(c, "smtp");
  CHECK_FALSE(s.dnssec);
  CHECK(s.insecure_mx == InsecureMx::may);  // the default without "smtp_tls_security_level = dane"
  CHECK(s.digests.size() == 2);
  c.set_explicit("smtp_tls_security_level", "dane");
  c.set_explicit("smtp_dns_support_level", "dnssec");
  s = Settings::from_config(c, "smtp");
  CHECK(s.dnssec);
  CHECK(s.insecure_mx == InsecureMx::dane);
  c.set_explicit("smtp_tls_dane_insecure_mx_policy", "encrypt");
  CHECK(Settings::from_config(c, "smtp").insecure_mx == InsecureMx::encrypt);
}

#endif
