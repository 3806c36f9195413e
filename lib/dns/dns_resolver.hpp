// dns_resolver.hpp: DNS questions through the system's resolver library
// (res_nquery, configured by /etc/resolv.conf), as Postfix's dns_lookup(3):
// one query for one name and type, the answer's records of that type, and
// Postfix's status and reason texts:
//
//   ok          records found
//   not_found   the name does not exist, or has no record of that type
//               (Postfix's DNS_NOTFOUND)
//   fail        a permanent server failure (NO_RECOVERY: DNS_FAIL)
//   retry       a temporary failure: try again later (DNS_RETRY)
//   null_mx     an MX lookup found the RFC 7505 "null MX" (DNS_NULLMX)
//
// with `why` set as Postfix sets it, e.g. "Host or domain name not found.
// Name service error for name=nosuch.example type=MX: Host not found" or
// "Domain example.com does not accept mail (nullMX)".
//
// The resolver is set up at the first question, so a chrooted daemon reads
// the chroot's etc/resolv.conf (which "postfix start" copies there), and it
// keeps resolv.conf's timeouts and tries, as Postfix does.  Postfix has no
// parameter that names a name server; to use a test server, run the
// instance where /etc/resolv.conf names it (README: "Testing with a DNS
// server of your own"; tests/integration/smtp_dns.sh).
//
// Known limit: queries are synchronous, as in Postfix.  smtp serves one
// delivery per process, so a slow name server holds up that delivery only;
// smtpd serves many sessions per process and caps the wait with Limits
// (2 s, two tries).  sort_mx() is pure: MX preference order with equal
// preferences shuffled (RFC 5321 section 5.1).
#pragma once

#include <optional>
#include <string_view>
#include <random>
#include <string>
#include <vector>

namespace mta::dns {

enum class Status { ok, not_found, fail, retry, null_mx };

// ns_t_* values, spelled out so that users need not include arpa/nameser.h.
inline constexpr int kTypeA = 1;
inline constexpr int kTypeMx = 15;
inline constexpr int kTypeTxt = 16;
inline constexpr int kTypeAaaa = 28;
inline constexpr int kTypeCname = 5;
inline constexpr int kTypeTlsa = 52;

struct Record {
  int type = 0;
  std::string name;     // the owner name
  unsigned pref = 0;    // MX preference
  std::string data;     // MX: the exchange host; A/AAAA: printable address; TXT: the joined strings
};

// A TLSA record's RDATA (RFC 6698 section 2.1): certificate usage,
// selector, matching type and the association data.
struct Tlsa {
  unsigned usage = 0;
  unsigned selector = 0;
  unsigned mtype = 0;
  std::string data;  // raw bytes
};

// Splits a TLSA record's data; nullopt when it is shorter than the three
// octets of usage, selector and matching type (a truncated record).
std::optional<Tlsa> parse_tlsa(const Record& record);

// "A", "AAAA", "MX", "TXT", "TLSA", "CNAME", ... (Postfix's dns_strtype()),
// "typeN" for a type without a name here.
std::string type_name(int type);
// The type named NAME, in any case ("ns", "MX"); 0 when unknown.
int type_by_name(std::string_view name);

// Upper bounds on resolv.conf's timeout (seconds per try) and attempts;
// 0 keeps resolv.conf's value.  An event server that serves many sessions
// in one process (our smtpd) asks for short ones.
struct Limits {
  int timeout = 0;
  int attempts = 0;
};

class Resolver {
 public:
  explicit Resolver(Limits limits = {});
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // One question; records of TYPE are appended to OUT.
  Status query(const std::string& name, int type, std::vector<Record>& out, std::string* why = nullptr);
  // The same with DNSSEC asked for (RES_USE_DNSSEC | RES_USE_EDNS0 |
  // RES_TRUSTAD for this question only); see last_authenticated().
  Status query_dnssec(const std::string& name, int type, std::vector<Record>& out, std::string* why = nullptr);
  // True when the last answer (ok, or not_found by NODATA) carried the AD
  // bit.  Only meaningful after query_dnssec(): without the DO bit a
  // resolver does not set it, and glibc clears it without RES_TRUSTAD.
  bool last_authenticated() const { return authenticated_; }
  // True when the last not_found meant that the name does not exist at all (NXDOMAIN).
  bool last_nxdomain() const { return nxdomain_; }

 private:
  struct State;
  State* state_;
  Status ask(const std::string& name, int type, std::vector<Record>& out, std::string* why, unsigned long extra_options);
  Limits limits_;
  bool nxdomain_ = false;
  bool authenticated_ = false;
};

// Sorts MX records by preference; records of equal preference are
// shuffled with RNG.
void sort_mx(std::vector<Record>& mx, std::mt19937& rng);

}  // namespace mta::dns
