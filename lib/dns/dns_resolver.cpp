// dns_resolver.cpp: see dns_resolver.hpp.
#include "dns/dns_resolver.hpp"
#include "dns/dnssec_probe.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <strings.h>

#include <algorithm>
#include <cstring>

namespace mta::dns {

struct Resolver::State {
  struct __res_state res;
  bool ok = false;
};

Resolver::Resolver(Limits limits) : state_(new State), limits_(limits) {
  std::memset(&state_->res, 0, sizeof state_->res);
}

Resolver::~Resolver() {
  if (state_->ok) res_nclose(&state_->res);
  delete state_;
}

namespace {

// The record types by name (Postfix's dns_strtype() and dns_type()).
constexpr struct {
  int type;
  const char* name;
} kTypeNames[] = {{kTypeA, "A"},      {2, "NS"},          {kTypeCname, "CNAME"}, {6, "SOA"},    {12, "PTR"},
                  {13, "HINFO"},      {kTypeMx, "MX"},    {kTypeTxt, "TXT"},     {kTypeAaaa, "AAAA"}, {33, "SRV"},
                  {35, "NAPTR"},      {43, "DS"},         {44, "SSHFP"},         {46, "RRSIG"}, {47, "NSEC"},
                  {48, "DNSKEY"},     {50, "NSEC3"},      {kTypeTlsa, "TLSA"},   {255, "ANY"},  {257, "CAA"}};

}  // namespace

std::string type_name(int type) {
  for (const auto& t : kTypeNames)
    if (t.type == type) return t.name;
  return "type" + std::to_string(type);
}

int type_by_name(std::string_view name) {
  for (const auto& t : kTypeNames)
    if (name.size() == std::strlen(t.name) && ::strncasecmp(name.data(), t.name, name.size()) == 0) return t.type;
  return 0;
}

namespace {

// Postfix's dns_strerror().
const char* h_error_text(int err) {
  switch (err) {
    case HOST_NOT_FOUND: return "Host not found";
    case TRY_AGAIN: return "Host not found, try again";
    case NO_RECOVERY: return "Non-recoverable error";
    case NO_DATA: return "Host found but no data record of requested type";
    default: return "Unknown error";
  }
}

}  // namespace

std::optional<Tlsa> parse_tlsa(const Record& record) {
  if (record.data.size() < 3) return std::nullopt;
  Tlsa t;
  t.usage = static_cast<unsigned char>(record.data[0]);
  t.selector = static_cast<unsigned char>(record.data[1]);
  t.mtype = static_cast<unsigned char>(record.data[2]);
  t.data = record.data.substr(3);
  return t;
}

Status Resolver::query(const std::string& name, int type, std::vector<Record>& out, std::string* why) {
  return ask(name, type, out, why, 0);
}

Status Resolver::query_dnssec(const std::string& name, int type, std::vector<Record>& out, std::string* why) {
#ifdef RES_TRUSTAD
  constexpr unsigned long kDnssec = RES_USE_DNSSEC | RES_USE_EDNS0 | RES_TRUSTAD;
#else
  constexpr unsigned long kDnssec = RES_USE_DNSSEC | RES_USE_EDNS0;
#endif
  Status st = ask(name, type, out, why, kDnssec);
  // The process's dnssec_probe (dnssec_probe.hpp) may ask a question of
  // its own; this answer's flags stay what the caller reads.
  const bool authenticated = authenticated_, nxdomain = nxdomain_;
  process_dnssec_probe().after_question(authenticated, [this](int t, const std::string& n, bool* v, std::string* w) {
    std::vector<Record> ignored;
    Status s = ask(n, t, ignored, w, kDnssec);
    *v = authenticated_;
    return s;
  });
  authenticated_ = authenticated;
  nxdomain_ = nxdomain;
  return st;
}

Status Resolver::ask(const std::string& name, int type, std::vector<Record>& out, std::string* why,
                     unsigned long extra_options) {
  nxdomain_ = false;
  authenticated_ = false;
  auto fail_text = [&](const char* text) {
    if (why) *why = "Host or domain name not found. Name service error for name=" + name + " type=" + type_name(type) + ": " + text;
  };
  // As Postfix's dns_query(): the resolver is set up at the first question
  // (after a chroot, so that the chroot's etc/resolv.conf counts), and again
  // at the next one when that failed.  Timeouts and tries are the
  // resolver's, from resolv.conf ("options timeout:N attempts:N"; glibc's
  // defaults are 5 s and 2): Postfix does not change them.
  if (!state_->ok) {
    std::memset(&state_->res, 0, sizeof state_->res);
    state_->ok = res_ninit(&state_->res) == 0;
    if (state_->ok && limits_.timeout > 0 && state_->res.retrans > limits_.timeout) state_->res.retrans = limits_.timeout;
    if (state_->ok && limits_.attempts > 0 && state_->res.retry > limits_.attempts) state_->res.retry = limits_.attempts;
  }
  if (!state_->ok) {
    if (why) *why = "Name service initialization failure";
    return Status::fail;
  }
  std::vector<unsigned char> answer(65536);  // zero: no reply yet (see the AD bit below)
  // The DNSSEC options hold for this question only, as in Postfix's
  // dns_query(), which saves and restores _res.options around it.
  const unsigned long saved_options = state_->res.options;
  state_->res.options |= extra_options;
  int len = res_nquery(&state_->res, name.c_str(), ns_c_in, type, answer.data(), static_cast<int>(answer.size()));
  state_->res.options = saved_options;
  // RFC 4035 section 3.2.3: the AD bit is the fourth octet's 0x20.  It
  // counts for a negative answer too (a validated NXDOMAIN or NODATA, for
  // which res_nquery() returns -1 with the reply in the buffer: its QR bit
  // says that one came), as in Postfix's dns_query().
  if (extra_options != 0 && (answer[2] & 0x80) != 0) authenticated_ = (answer[3] & 0x20) != 0;
  if (len < 0) {
    int err = state_->res.res_h_errno;
    fail_text(h_error_text(err));
    switch (err) {
      case HOST_NOT_FOUND: nxdomain_ = true; return Status::not_found;
      case NO_DATA: return Status::not_found;
      case NO_RECOVERY: return Status::fail;
      default: return Status::retry;
    }
  }
  ns_msg msg;
  if (ns_initparse(answer.data(), len, &msg) < 0) {
    if (why) *why = "Name service error for name=" + name + " type=" + type_name(type) + ": Malformed or unexpected name server reply";
    return Status::retry;
  }
  size_t before = out.size();
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) {
      if (why) *why = "Name service error for name=" + name + " type=" + type_name(type) + ": Malformed or unexpected name server reply";
      return Status::retry;
    }
    if (ns_rr_type(rr) != type) continue;  // CNAMEs on the way
    Record r;
    r.type = type;
    r.name = ns_rr_name(rr);
    const unsigned char* rdata = ns_rr_rdata(rr);
    size_t rdlen = ns_rr_rdlen(rr);
    if (type == kTypeA || type == kTypeAaaa) {
      char buf[INET6_ADDRSTRLEN];
      if ((type == kTypeA && rdlen != 4) || (type == kTypeAaaa && rdlen != 16)) continue;
      if (!inet_ntop(type == kTypeA ? AF_INET : AF_INET6, rdata, buf, sizeof buf)) continue;
      r.data = buf;
    } else if (type == kTypeMx) {
      if (rdlen < 3) continue;
      r.pref = static_cast<unsigned>(rdata[0] << 8 | rdata[1]);
      char host[NS_MAXDNAME];
      if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rdata + 2, host, sizeof host) < 0) continue;
      r.data = host;  // "" for the root (a null MX)
    } else if (type == kTypeTxt) {
      for (size_t j = 0; j < rdlen;) {  // character-strings, joined
        size_t n = rdata[j++];
        r.data.append(reinterpret_cast<const char*>(rdata) + j, std::min(n, rdlen - j));
        j += n;
      }
    } else {
      r.data.assign(reinterpret_cast<const char*>(rdata), rdlen);
    }
    out.push_back(std::move(r));
  }
  if (out.size() == before) {
    fail_text(h_error_text(NO_DATA));
    return Status::not_found;
  }
  // RFC 7505: a single MX whose exchange is the root, "." ("MX 0 .").
  if (type == kTypeMx && out.size() == before + 1 && (out.back().data.empty() || out.back().data == ".")) {
    if (why) *why = "Domain " + name + " does not accept mail (nullMX)";
    out.pop_back();
    return Status::null_mx;
  }
  return Status::ok;
}

void sort_mx(std::vector<Record>& mx, std::mt19937& rng) {
  std::shuffle(mx.begin(), mx.end(), rng);
  std::stable_sort(mx.begin(), mx.end(), [](const Record& a, const Record& b) { return a.pref < b.pref; });
}

}  // namespace mta::dns
