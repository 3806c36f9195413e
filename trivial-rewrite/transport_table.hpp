// transport_table.hpp: transport_maps (transport(5)), the per-recipient and
// per-domain override of the transport and next hop that resolving applies
// last (Postfix's trivial-rewrite/transport.c).
//
// Lookup order for user+ext@sub.example.com: the full address (all
// tables), user@sub.example.com (fixed-string tables only, when there is
// an extension per recipient_delimiter), then sub.example.com,
// .example.com, .com (or example.com, com when transport_maps is named in
// parent_domain_matches_subdomains), then the "*" wildcard.  A value is
// "transport:nexthop": an empty transport keeps the current one (":" is a
// no-op, ":host" changes only the next hop); a transport without a next
// hop resets the next hop to the recipient domain, or for the error
// transport to "Address is undeliverable".  A table error is reported, so
// that the resolver answers with RESOLVE_FLAG_FAIL and mail is deferred.
#pragma once

#include <string>
#include <string_view>

#include "maps/maps.hpp"

namespace mta::rewrite {

class TransportTable {
 public:
  // title: transport_maps or address_verify_transport_maps.
  TransportTable(std::string title, std::string_view spec_list, bool parent_style, std::string recipient_delimiter);

  enum class Outcome { found, not_found, error };
  // address: the resolved recipient (user@domain); rcpt_domain: its domain.
  // On found, transport and nexthop are updated.
  Outcome lookup(std::string_view address, std::string_view rcpt_domain, std::string& transport,
                 std::string& nexthop) const;
  const std::string& title() const { return maps_.title(); }
  const std::string& error() const { return error_; }
  // The spec of a table whose file changed since it was opened, or "".
  std::string changed_table() const;

 private:
  Outcome find_entry(std::string_view key, bool fixed_only, std::string_view rcpt_domain, std::string& transport,
                     std::string& nexthop) const;

  maps::Maps maps_;
  bool parent_style_;
  std::string delimiters_;
  mutable std::string error_;
};

// Postfix's strip_addr(): user+ext@domain -> user@domain, or "" when there
// is no extension (or the local part is one that is never split).
std::string strip_extension(std::string_view address, std::string_view delimiters);

}  // namespace mta::rewrite
