// maps.hpp: a list of lookup tables searched in order ("hash:/a, regexp:/b"),
// and the lookup orders that Postfix's callers use on it.
//
// find() returns the first table's answer that is not "not found"; an error
// in any table stops the search and is returned, so that a failing table
// defers mail rather than letting a later table decide.  Partial keys
// (user, @domain, parent domains) go to fixed-string tables only: pattern
// tables see whole keys, as in Postfix.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "maps/dict.hpp"

namespace mta::maps {

class Maps {
 public:
  Maps() = default;
  // title names the parameter the list came from, for messages.
  Maps(std::string title, std::string_view spec_list, const OpenFlags& flags = {});

  Result find(std::string_view key, bool fixed_only = false) const;
  bool empty() const { return dicts_.empty(); }
  const std::string& title() const { return title_; }
  const std::vector<DictPtr>& dicts() const { return dicts_; }
  bool has_changed() const;

 private:
  std::string title_;
  std::vector<DictPtr> dicts_;
};

// How to look up an address (Postfix's mail_addr_find strategies).
struct AddressLookup {
  std::string recipient_delimiter;  // e.g. "+"; empty: no extensions
  bool localpart_if_local = true;   // try "user" (and "user+ext") when the domain is local
  bool at_domain = true;            // try "@domain"
  std::function<bool(std::string_view domain)> is_local_domain;  // mydestination etc.
};

// user+ext@domain, user@domain, [user+ext, user when local], @domain.
// *matched_key, when given, receives the key that matched.
Result find_address(const Maps& maps, std::string_view address, const AddressLookup& how,
                    std::string* matched_key = nullptr);

// sub.example.com, then per match_subdomains: example.com, com (Postfix's
// parent_domain_matches_subdomains) or .example.com, .com.
Result find_domain(const Maps& maps, std::string_view domain, bool match_subdomains,
                   std::string* matched_key = nullptr);

}  // namespace mta::maps
