// dns_lookup.cpp: DnsLookup through lib/dns's Resolver (the resolver
// library, res_nquery), the questions of the prefetch, and the DnsLookup
// that answers from a session's prefetched answers; see dns_lookup.hpp.
#include "smtpd/dns_lookup.hpp"

#include "dns/dns_resolver.hpp"
#include "log/log.hpp"

namespace mta::smtpd {
namespace {

class SystemDns : public DnsLookup {
 public:
  DnsStatus mail_host(const std::string& name) override {
    return first_found(name, {dns::kTypeMx, dns::kTypeA, dns::kTypeAaaa});
  }
  DnsStatus host(const std::string& name) override {
    return first_found(name, {dns::kTypeA, dns::kTypeAaaa, dns::kTypeMx});
  }
  DnsStatus a_records(const std::string& name, std::vector<std::string>& out) override {
    std::vector<dns::Record> rr;
    DnsStatus st = convert(resolver_.query(name, dns::kTypeA, rr));
    for (const dns::Record& r : rr) out.push_back(r.data);
    return st == DnsStatus::ok && out.empty() ? DnsStatus::not_found : st;
  }
  DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) override {
    std::vector<dns::Record> rr;
    DnsStatus st = convert(resolver_.query(name, dns::kTypeTxt, rr));
    for (const dns::Record& r : rr) out.push_back(r.data);
    return st == DnsStatus::ok && out.empty() ? DnsStatus::not_found : st;
  }

 private:
  static DnsStatus convert(dns::Status s) {
    switch (s) {
      case dns::Status::ok: return DnsStatus::ok;
      case dns::Status::not_found: return DnsStatus::not_found;
      case dns::Status::null_mx: return DnsStatus::null_mx;
      default: return DnsStatus::retry;
    }
  }
  // Asks for each type in turn and stops at the first that exists or at a
  // null MX (Postfix's DNS_REQ_FLAG_STOP_OK and _STOP_NULLMX); a name that
  // does not exist at all ends the search.
  DnsStatus first_found(const std::string& name, std::initializer_list<int> types) {
    DnsStatus worst = DnsStatus::not_found;
    for (int type : types) {
      std::vector<dns::Record> rr;
      DnsStatus st = convert(resolver_.query(name, type, rr));
      if (st == DnsStatus::ok || st == DnsStatus::null_mx) return st;
      if (st == DnsStatus::retry) worst = DnsStatus::retry;
      if (st == DnsStatus::not_found && resolver_.last_nxdomain()) return worst;
    }
    return worst;
  }

  dns::Resolver resolver_{dns::Limits{2, 2}};  // at most 2 s per try, two tries: one process serves many sessions
};

const char* kind_name(DnsQuestion::Kind kind) {
  switch (kind) {
    case DnsQuestion::Kind::mail_host: return "mail host";
    case DnsQuestion::Kind::host: return "host";
    case DnsQuestion::Kind::rbl: return "block list";
  }
  return "?";
}

}  // namespace

std::shared_ptr<DnsLookup> make_system_dns() { return std::make_shared<SystemDns>(); }

DnsAnswer ask(DnsLookup& dns, const DnsQuestion& q) {
  DnsAnswer a;
  switch (q.kind) {
    case DnsQuestion::Kind::mail_host: a.status = dns.mail_host(q.name); break;
    case DnsQuestion::Kind::host: a.status = dns.host(q.name); break;
    case DnsQuestion::Kind::rbl:
      // The reason (TXT) matters only for a listed name, as in reject_rbl.
      a.status = dns.a_records(q.name, a.a);
      if (a.status == DnsStatus::ok) a.txt_status = dns.txt_records(q.name, a.txt);
      break;
  }
  return a;
}

DnsAnswer unanswered() {
  DnsAnswer a;
  a.status = DnsStatus::retry;
  a.txt_status = DnsStatus::retry;
  return a;
}

const DnsAnswer* PrefetchedDns::find(DnsQuestion::Kind kind, const std::string& name, const char* what) {
  if (!answers_) return nullptr;  // no session's check runs (tests, sendmail -bs)
  if (const DnsAnswer* a = answers_->find({kind, name})) return a;
  ++misses_;
  log::debug("DNS answer not prefetched: %s %s (%s): asking synchronously", kind_name(kind), name.c_str(), what);
  return nullptr;
}

DnsStatus PrefetchedDns::mail_host(const std::string& name) {
  const DnsAnswer* a = find(DnsQuestion::Kind::mail_host, name, "MX/A/AAAA");
  return a ? a->status : base_->mail_host(name);
}

DnsStatus PrefetchedDns::host(const std::string& name) {
  const DnsAnswer* a = find(DnsQuestion::Kind::host, name, "A/AAAA/MX");
  return a ? a->status : base_->host(name);
}

DnsStatus PrefetchedDns::a_records(const std::string& name, std::vector<std::string>& out) {
  const DnsAnswer* a = find(DnsQuestion::Kind::rbl, name, "A");
  if (!a) return base_->a_records(name, out);
  out = a->a;
  return a->status;
}

DnsStatus PrefetchedDns::txt_records(const std::string& name, std::vector<std::string>& out) {
  // Asked only after a listed A answer: the same question fetched both.
  const DnsAnswer* a = find(DnsQuestion::Kind::rbl, name, "TXT");
  if (!a) return base_->txt_records(name, out);
  out = a->txt;
  return a->txt_status;
}

}  // namespace mta::smtpd
