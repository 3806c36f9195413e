// smtp_dane.hpp: the smtp client's DANE policy per next hop and server
// host, as Postfix 3.7's dane_init() and dane_incompat() in
// smtp_tls_policy.c and tls_dane_resolve() in tls_dane.c decide it for the
// security levels "dane" and "dane-only" (main.cf or smtp_tls_policy_maps):
//
//   configuration  smtp_dns_support_level must be "dnssec" and
//                  smtp_host_lookup must include "dns", MX lookup errors
//                  must not be ignored (ignore_mx_lookup_error), and
//                  tls_dane_digests must be valid; otherwise "dane" warns
//                  ("example.com: dane configured with dnssec lookups
//                  disabled") and acts as "may", and "dane-only" warns and
//                  defers (4.7.5 "client TLS configuration problem");
//   the MX RRset   a host found through an MX lookup whose answer was not
//                  DNSSEC-validated: "may" (smtp_tls_dane_insecure_mx_policy
//                  = may, and always for dane-only, which defers: 4.7.5
//                  "non DNSSEC destination"), "encrypt", or DANE that logs
//                  "Trusted" instead of "Verified" (policy "dane");
//   TLSA           looked up at _PORT._tcp.HOST only when the host's
//                  address records were validated (first at the name they
//                  are the records of, when HOST is a CNAME), or when HOST
//                  is a validated CNAME into an unsigned zone, or with
//                  smtp_tls_force_insecure_host_tlsa_lookup; a validated
//                  answer with usable records (tls::usable_tlsa()):
//                  mandatory TLS authenticated by them; records that are
//                  all unusable: "encrypt" (mandatory, unauthenticated);
//                  none, or an answer that was not validated: "may"
//                  (dane-only defers: "no TLSA records found", "TLSA
//                  records unusable"); a failed lookup (SERVFAIL, timeout)
//                  logs "DANE TLSA lookup problem: ..." and defers the host
//                  with 4.7.5 "TLSA lookup error for HOST:PORT".
//
// The DNS comes through the Dns interface so that unit tests need no
// network; ResolverDns asks the system's resolver with RES_USE_DNSSEC and
// reads the AD bit (dns::Resolver::query_dnssec()).  Decisions are cached
// for a minute per next hop, host, port and level, as Postfix caches its
// policies and TLSA RRsets per process.
//
// A server host that is an alias (a validated CNAME) has its TLSA records
// looked up at the CNAME-expanded name first, then at its own (RFC 7672
// section 2.2.2, as Postfix).  A numeric "[address]" next hop never has
// TLSA records.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dns/dns_resolver.hpp"
#include "tls/tls_dane.hpp"

namespace mta::config {
class Config;
}

namespace mta::smtp::dane {

// One DNSSEC-aware answer.
struct Answer {
  dns::Status status = dns::Status::not_found;
  bool authenticated = false;  // the AD bit of the reply
  std::vector<dns::Record> records;
  std::string why;  // dns::Resolver's text when not ok
};

class Dns {
 public:
  virtual ~Dns() = default;
  // NAME and TYPE, asked with DNSSEC (the DO bit; the AD bit kept).
  virtual Answer query(const std::string& name, int type) = 0;
};

// The system's resolver (resolv.conf names the validating server).
class ResolverDns : public Dns {
 public:
  Answer query(const std::string& name, int type) override;

 private:
  dns::Resolver resolver_;
};

enum class Mode { dane, dane_only };
enum class InsecureMx { may, encrypt, dane };

struct Settings {
  bool dnssec = false;                  // ${prefix}_dns_support_level = dnssec
  bool dns_host_lookup = true;          // ${prefix}_host_lookup includes dns
  bool ignore_mx_lookup_error = false;  // ignore_mx_lookup_error (SMTP only)
  bool smtp_mode = true;                // false for LMTP
  InsecureMx insecure_mx = InsecureMx::dane;  // ${prefix}_tls_dane_insecure_mx_policy
  bool force_tlsa = false;  // ${prefix}_tls_force_insecure_host_tlsa_lookup
  bool digests_ok = true;   // tls_dane_digests parsed
  std::vector<tls::DaneDigest> digests;

  // From main.cf.  An invalid smtp_tls_dane_insecure_mx_policy is fatal,
  // as in Postfix; an invalid tls_dane_digests is warned about here and
  // disables DANE.
  static Settings from_config(const config::Config& config, std::string_view prefix);
};

// The effective level for one server host.
enum class Level {
  may,        // opportunistic TLS
  encrypt,    // mandatory TLS, no authentication
  dane,       // mandatory TLS, authenticated by the TLSA records: "Verified"
  half_dane,  // the same through an insecure MX lookup: "Trusted"
  invalid,    // do not connect: status/reason say why
};

struct Decision {
  Level level = Level::may;
  std::string status;  // invalid: "4.7.5"
  std::string reason;  // invalid: "TLSA lookup error for mx.example.com:25"
  std::string base_domain;               // the TLSA base domain (and SNI name)
  std::vector<std::string> match_names;  // reference names for DANE-TA chains
  std::vector<tls::TlsaRecord> tlsa;     // the usable records
  bool authenticated() const { return level == Level::dane || level == Level::half_dane; }
};

struct Target {
  std::string dest;    // the next hop as given ("example.com", "[mx.example]:587")
  std::string domain;  // the domain looked up for MX records; "" for [host]
  std::string host;    // the server's host name
  std::string addr;    // the address about to be used (picks A or AAAA)
  unsigned port = 25;
};

class Policy {
 public:
  Policy(Settings settings, Dns& dns) : settings_(std::move(settings)), dns_(dns) {}

  Decision decide(Mode mode, const Target& target);
  const Settings& settings() const { return settings_; }

 private:
  Decision compute(Mode mode, const Target& target);

  Settings settings_;
  Dns& dns_;
  struct Cached {
    Decision decision;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Cached> cache_;
};

// "dane" or "dane-only" as Postfix's policy_name() spells them.
const char* mode_name(Mode mode);

}  // namespace mta::smtp::dane
