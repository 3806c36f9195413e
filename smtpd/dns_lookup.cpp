// dns_lookup.cpp: DnsLookup through the resolver library (res_nquery); see
// dns_lookup.hpp for the known limit (synchronous queries).
#include "smtpd/dns_lookup.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <cstring>

namespace mta::smtpd {
namespace {

class SystemDns : public DnsLookup {
 public:
  SystemDns() {
    std::memset(&res_, 0, sizeof res_);
    ok_ = res_ninit(&res_) == 0;
    res_.retrans = 2;  // seconds per try
    res_.retry = 2;
  }
  ~SystemDns() override {
    if (ok_) res_nclose(&res_);
  }
  SystemDns(const SystemDns&) = delete;
  SystemDns& operator=(const SystemDns&) = delete;

  DnsStatus mail_host(const std::string& name) override {
    DnsStatus worst = DnsStatus::not_found;
    for (int type : {ns_t_mx, ns_t_a, ns_t_aaaa}) {
      std::vector<Record> rr;
      DnsStatus st = query(name, type, rr);
      if (st == DnsStatus::ok && !rr.empty()) return DnsStatus::ok;
      if (st == DnsStatus::retry) worst = DnsStatus::retry;
      if (st == DnsStatus::not_found && nxdomain_) return worst;  // the name does not exist at all
    }
    return worst;
  }
  DnsStatus host(const std::string& name) override {
    DnsStatus worst = DnsStatus::not_found;
    for (int type : {ns_t_a, ns_t_aaaa, ns_t_mx}) {
      std::vector<Record> rr;
      DnsStatus st = query(name, type, rr);
      if (st == DnsStatus::ok && !rr.empty()) return DnsStatus::ok;
      if (st == DnsStatus::retry) worst = DnsStatus::retry;
      if (st == DnsStatus::not_found && nxdomain_) return worst;
    }
    return worst;
  }
  DnsStatus a_records(const std::string& name, std::vector<std::string>& out) override {
    std::vector<Record> rr;
    DnsStatus st = query(name, ns_t_a, rr);
    for (const Record& r : rr) {
      if (r.data.size() != 4) continue;
      char buf[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, r.data.data(), buf, sizeof buf)) out.emplace_back(buf);
    }
    return st == DnsStatus::ok && out.empty() ? DnsStatus::not_found : st;
  }
  DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) override {
    std::vector<Record> rr;
    DnsStatus st = query(name, ns_t_txt, rr);
    for (const Record& r : rr) {  // character-strings, joined
      std::string text;
      for (size_t i = 0; i < r.data.size();) {
        size_t len = static_cast<unsigned char>(r.data[i++]);
        text.append(r.data, i, std::min(len, r.data.size() - i));
        i += len;
      }
      out.push_back(text);
    }
    return st == DnsStatus::ok && out.empty() ? DnsStatus::not_found : st;
  }

 private:
  struct Record {
    std::string data;
  };
  DnsStatus query(const std::string& name, int type, std::vector<Record>& out) {
    nxdomain_ = false;
    if (!ok_) return DnsStatus::retry;
    unsigned char answer[8192];
    int len = res_nquery(&res_, name.c_str(), ns_c_in, type, answer, sizeof answer);
    if (len < 0) {
      if (res_.res_h_errno == HOST_NOT_FOUND) {
        nxdomain_ = true;
        return DnsStatus::not_found;
      }
      return res_.res_h_errno == NO_DATA ? DnsStatus::not_found : DnsStatus::retry;
    }
    ns_msg msg;
    if (ns_initparse(answer, len, &msg) < 0) return DnsStatus::retry;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
      ns_rr rr;
      if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) return DnsStatus::retry;
      if (ns_rr_type(rr) != type) continue;
      out.push_back({std::string(reinterpret_cast<const char*>(ns_rr_rdata(rr)), ns_rr_rdlen(rr))});
    }
    return out.empty() ? DnsStatus::not_found : DnsStatus::ok;
  }

  struct __res_state res_;
  bool ok_ = false;
  bool nxdomain_ = false;
};

}  // namespace

std::shared_ptr<DnsLookup> make_system_dns() { return std::make_shared<SystemDns>(); }

}  // namespace mta::smtpd
