// access_map.hpp: the lookup orders of smtpd's check_*_access restrictions,
// as access(5) lists them.  The first key that a table knows decides
// (a DUNNO value included: it stops the search for partial keys); a table
// error stops the search and is returned.  Partial keys (parent domains,
// "user@", shortened networks) go to fixed-string tables only.
//
// Addresses: user+ext@domain, user@domain, domain, parent domains, user+ext@,
//   user@ (the extension by recipient_delimiter).
// Domains: domain, then parent domains as "example.com" (parent style,
//   parent_domain_matches_subdomains lists smtpd_access_maps) or
//   ".example.com".
// Hosts: the name and its parent domains, then the address and the
//   networks made by dropping its last octets (1.2.3.4, 1.2.3, 1.2, 1;
//   IPv6 by ":"-separated groups).
#pragma once

#include <string>
#include <string_view>

#include "maps/maps.hpp"

namespace mta::smtpd {

struct AccessHit {
  maps::Result result;  // found (value), not found, or error
  std::string key;      // the key that answered
};

AccessHit find_domain_access(const maps::Maps& table, std::string_view domain, bool parent_style);
AccessHit find_address_access(const maps::Maps& table, std::string_view address, std::string_view delimiters,
                              bool parent_style);
AccessHit find_network_access(const maps::Maps& table, std::string_view addr);
AccessHit find_host_access(const maps::Maps& table, std::string_view name, std::string_view addr, bool parent_style);

}  // namespace mta::smtpd
