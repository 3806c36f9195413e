// match_list.hpp: Postfix's pattern lists: match_list, string_list,
// domain_list (mydestination, virtual_alias_domains, relay_domains ...)
// and the host/address list namadr_list (mynetworks,
// smtpd_sasl_exceptions_networks, debug_peer_list ...).
//
// A list is words separated by commas or blanks ("{ ... }" kept together):
//   name          a literal, compared without case;
//   .example.com  (host lists) any subdomain of example.com;
//   type:table    a lookup table: the name matches when it is a key (the
//                 value is ignored); host lists also try the parent domains
//                 of the name, in fixed-string tables only;
//   /file/name    the patterns in that file (a file that cannot be read
//                 makes every match fail with the reason);
//   !pattern      a match ends the search with "no".
// The first pattern that matches decides.  A table that fails makes the
// match an error (never a "no"), so that the caller can defer instead of
// misrouting mail.
//
// With parent style (parent_domain_matches_subdomains names the
// parameter), "example.com" also matches its subdomains and tables are
// asked for "example.com" rather than ".example.com".
//
// HostList (namadr_list) matches a client's name AND address: each pattern
// is tried against the name as above, then against the address, where it
// may also be an address ("192.0.2.1", "[::1]"), a network
// ("10.0.0.0/8", "[2001:db8::]/32", "[::1]/128"), or a table that is asked
// for the address.  A network with host bits set ("10.1.2.3/8") never
// matches and makes the list report an error, as Postfix refuses it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "maps/dict.hpp"

namespace mta::config {
class Config;
}

namespace mta::maps {

enum class Match { no, yes, error };

class MatchList {
 public:
  enum class Kind { string, hostname };

  MatchList() = default;
  // title: the parameter name, for messages.
  MatchList(std::string title, std::string_view patterns, Kind kind, bool parent_style = false);

  bool empty() const { return patterns_.empty(); }
  const std::string& title() const { return title_; }
  // The outcome; after Match::error, error() says why.
  Match match(std::string_view name) const;
  const std::string& error() const { return error_; }
  // The spec of a table whose file changed since it was opened, or "".
  std::string changed_table() const;

 protected:
  struct Pattern {
    bool negate = false;
    std::string text;                  // lower case, for literals
    std::shared_ptr<maps::Dict> dict;  // for type:table and unreadable files
  };
  Match match_name(const Pattern& p, const std::string& name) const;
  Match lookup(const Pattern& p, std::string_view key) const;

  std::string title_;
  Kind kind_ = Kind::string;
  bool parent_style_ = false;
  std::vector<Pattern> patterns_;
  mutable std::string error_;

 private:
  void parse(std::string_view patterns, bool negate, int depth);
};

// Postfix's namadr_list: host names and network addresses.
class HostList : public MatchList {
 public:
  HostList() = default;
  HostList(std::string title, std::string_view patterns, bool parent_style = false)
      : MatchList(std::move(title), patterns, Kind::hostname, parent_style) {}

  // name: the client's host name ("unknown" when it has none); addr: its
  // printable address without brackets ("192.0.2.1", "::1").
  Match match(std::string_view name, std::string_view addr) const;

 private:
  Match match_addr(const Pattern& p, const std::string& addr) const;
};

// "addr/len" (the address may be in brackets: "[::1]/128") against addr.
// Returns Match::error (with *why) for a malformed network or one with
// host bits set.
Match match_network(std::string_view network, std::string_view addr, std::string* why = nullptr);

// Splits a list value on commas and blanks, keeping "{...}" together.
std::vector<std::string> split_patterns(std::string_view value);

// True when parent_domain_matches_subdomains names the parameter.
bool match_parent_style(const config::Config& config, std::string_view parameter);

}  // namespace mta::maps
