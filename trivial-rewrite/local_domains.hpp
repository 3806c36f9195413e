// local_domains.hpp: Postfix's resolve_local(): is a domain this host's
// own?  Yes when mydestination lists it, or when it is an address literal
// ([192.0.2.1], [ipv6:...]) of one of inet_interfaces or proxy_interfaces.
// One trailing dot is ignored.  trivial-rewrite's resolver asks it for the
// local class; cleanup asks it for the "user" lookups of canonical and
// virtual alias tables (mail_addr_find's localpart_if_local).
#pragma once

#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "maps/match_list.hpp"
#include "trivial-rewrite/interface_addresses.hpp"

namespace mta::rewrite {

class LocalDomains {
 public:
  LocalDomains() = default;
  // INTERFACES replaces inet_interfaces/proxy_interfaces (for tests).
  explicit LocalDomains(const config::Config& config, std::optional<InterfaceAddresses> interfaces = {});

  // 1 local, 0 not, -1 a table error (logged as a warning).
  int resolve_local(std::string_view domain) const;
  const maps::MatchList& mydestination() const { return mydestination_; }

 private:
  maps::MatchList mydestination_;
  InterfaceAddresses interfaces_;
};

}  // namespace mta::rewrite
