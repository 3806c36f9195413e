// dns_lookup.hpp: the DNS questions that smtpd's access policy asks
// (reject_unknown_*_domain, reject_unknown_helo_hostname, reject_rbl_client
// and reject_rhsbl_*), behind an interface that the tests replace.
//
// Known limit: the system implementation asks synchronously through the
// resolver library (res_query, with a short timeout and two tries), so a
// slow DNS server stalls every session of the smtpd process for that long;
// Postfix's smtpd is one process per client and blocks the same way.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace mta::smtpd {

enum class DnsStatus { ok, not_found, retry };

class DnsLookup {
 public:
  virtual ~DnsLookup() = default;
  // Does NAME have an MX, A or AAAA record (Postfix asks in that order and
  // stops at the first that exists)?
  virtual DnsStatus mail_host(const std::string& name) = 0;
  // Does NAME have an A or AAAA record or an MX record (HELO names)?
  virtual DnsStatus host(const std::string& name) { return mail_host(name); }
  // The A records of NAME, printable (DNS block lists).
  virtual DnsStatus a_records(const std::string& name, std::vector<std::string>& out) = 0;
  // The TXT records of NAME (the reason a block list gives).
  virtual DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) = 0;
};

// The resolver library, as configured in /etc/resolv.conf.
std::shared_ptr<DnsLookup> make_system_dns();

}  // namespace mta::smtpd
