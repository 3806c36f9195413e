// dns_lookup.cpp: DnsLookup through lib/dns's Resolver (the resolver
// library, res_nquery); see dns_lookup.hpp for the known limit
// (synchronous queries).
#include "smtpd/dns_lookup.hpp"

#include "dns/dns_resolver.hpp"

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
      case dns::Status::null_mx: return DnsStatus::ok;  // the name exists (and says it takes no mail)
      default: return DnsStatus::retry;
    }
  }
  // Asks for each type in turn and stops at the first that exists; a name
  // that does not exist at all ends the search.
  DnsStatus first_found(const std::string& name, std::initializer_list<int> types) {
    DnsStatus worst = DnsStatus::not_found;
    for (int type : types) {
      std::vector<dns::Record> rr;
      DnsStatus st = convert(resolver_.query(name, type, rr));
      if (st == DnsStatus::ok) return DnsStatus::ok;
      if (st == DnsStatus::retry) worst = DnsStatus::retry;
      if (st == DnsStatus::not_found && resolver_.last_nxdomain()) return worst;
    }
    return worst;
  }

  dns::Resolver resolver_{dns::Limits{2, 2}};  // at most 2 s per try, two tries: one process serves many sessions
};

}  // namespace

std::shared_ptr<DnsLookup> make_system_dns() { return std::make_shared<SystemDns>(); }

}  // namespace mta::smtpd
