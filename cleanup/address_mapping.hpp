// address_mapping.hpp: the table-driven address changes of Postfix 3.7's
// cleanup(8) (cleanup_map11.c, cleanup_map1n.c, cleanup_masquerade.c,
// cleanup_addr.c, mail_addr_map.c, mail_addr_find.c, mail_addr_crunch.c).
//
// One-to-one mappings (canonical), for each address class that
// canonical_classes, sender_canonical_classes and
// recipient_canonical_classes name:
//   sender:    sender_canonical_maps, then canonical_maps
//   recipient: recipient_canonical_maps, then canonical_maps
// then masquerading (masquerade_domains, for masquerade_classes, except the
// local parts in masquerade_exceptions): user@host.sub.example.com becomes
// user@example.com for the first listed parent domain; a domain listed
// with "!" is left alone.  A table maps the address again and again until
// it maps to itself or 10 rounds were made ("unreasonable ... map
// nesting"); a multi-valued result uses its first address.
//
// One-to-many mapping (virtual_alias_maps) of each envelope recipient,
// recursively: every address of a result is expanded again, until an
// address expands to nothing, or to a list that holds itself, within
// virtual_alias_recursion_limit levels, virtual_alias_expansion_limit
// addresses, and virtual_alias_address_length_limit bytes per address;
// beyond them, or on a table error, the message is refused for now
// ("4.6.0 Alias expansion error").
//
// Lookups (mail_addr_find): user+ext@domain, user@domain, and when the
// domain is $myorigin or local (resolve_local) user+ext and user, then
// @domain; pattern tables see only the whole address.  A result
// "@otherdomain" keeps the local part.  Each address of a result is made
// canonical in the "local" rewriting context (trivial-rewrite), and an
// address extension that the table did not match is appended to it when
// propagate_unmatched_extensions says so (canonical, virtual).
//
// Also here: sender_bcc_maps and recipient_bcc_maps lookups.
//
// Addresses are internal (unquoted) for envelopes; header addresses are
// looked at in their external (quoted) form, as Postfix's *_tree functions.
// Errors are reported as cleanup status bits (cleanup_status.hpp) and a
// reason for the client.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cleanup/address_rewriting.hpp"
#include "config/config.hpp"
#include "maps/maps.hpp"
#include "maps/match_list.hpp"

namespace mta::rewrite {
class LocalDomains;
}

namespace mta::cleanup {

// canonical_classes and masquerade_classes bits (CLEANUP_CANON_FLAG_*).
inline constexpr int kClassEnvFrom = 1 << 0;
inline constexpr int kClassEnvRcpt = 1 << 1;
inline constexpr int kClassHdrFrom = 1 << 2;
inline constexpr int kClassHdrRcpt = 1 << 3;
// propagate_unmatched_extensions bits that cleanup uses.
inline constexpr int kExtPropCanonical = 1 << 0;
inline constexpr int kExtPropVirtual = 1 << 1;

// "envelope_sender, header_recipient" -> bits; throws config::ConfigError
// on an unknown word, naming PARAMETER.
int parse_address_classes(std::string_view parameter, std::string_view value);
int parse_ext_prop_for_cleanup(std::string_view value);

// What one mapping step did to the message: status bits and the reason.
struct MapOutcome {
  int errs = 0;
  std::string reason;
};

class AddressMapper {
 public:
  // Maps nothing (what a client without CLEANUP_FLAG_MAP_OK gets anyway).
  AddressMapper();
  // From main.cf.  CANON makes lookup results canonical ("local" context);
  // LOCAL answers resolve_local().  Both must outlive the mapper.
  AddressMapper(const config::Config& config, AddressRewriter& canon, const rewrite::LocalDomains& local);
  ~AddressMapper();
  AddressMapper(AddressMapper&&) noexcept;
  AddressMapper& operator=(AddressMapper&&) noexcept;

  // Envelope addresses (internal form); true when the address changed.
  bool envelope_sender(std::string& address, const std::string& queue_id, MapOutcome& out) const;
  bool envelope_recipient(std::string& address, const std::string& queue_id, MapOutcome& out) const;
  // Header addresses (external form).
  bool header_sender(std::string& address, const std::string& queue_id, MapOutcome& out) const;
  bool header_recipient(std::string& address, const std::string& queue_id, MapOutcome& out) const;

  // virtual_alias_maps; ADDRESS itself when there is nothing to expand
  // (or, after an error, ADDRESS unexpanded with OUT set).
  bool has_virtual_aliases() const;
  std::vector<std::string> expand_recipient(const std::string& address, const std::string& queue_id,
                                            MapOutcome& out) const;

  // sender_bcc_maps, recipient_bcc_maps (extensions ignored).
  std::optional<std::string> sender_bcc(const std::string& sender, const std::string& queue_id, MapOutcome& out) const;
  std::optional<std::string> recipient_bcc(const std::string& recipient, const std::string& queue_id,
                                           MapOutcome& out) const;

  // The spec of a table that changed since it was opened (for the server
  // skeleton's "table has changed -- restarting"), or "".
  std::string changed_table() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mta::cleanup
