// match_list.hpp: Postfix's pattern lists (match_list, string_list,
// domain_list), as the parameters mydestination, virtual_alias_domains,
// virtual_mailbox_domains and relay_domains use them.
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
// This belongs in lib/ once a second program needs it (smtpd, M4).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "maps/dict.hpp"

namespace mta::config {
class Config;
}

namespace mta::rewrite {

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

 private:
  struct Pattern {
    bool negate = false;
    std::string text;                 // lower case, for literals
    std::shared_ptr<maps::Dict> dict;  // for type:table and unreadable files
  };
  void parse(std::string_view patterns, bool negate, int depth);
  Match match_one(const Pattern& p, const std::string& name) const;

  std::string title_;
  Kind kind_ = Kind::string;
  bool parent_style_ = false;
  std::vector<Pattern> patterns_;
  mutable std::string error_;
};

// Splits a list value on commas and blanks, keeping "{...}" together.
std::vector<std::string> split_patterns(std::string_view value);

// True when parent_domain_matches_subdomains names the parameter.
bool match_parent_style(const config::Config& config, std::string_view parameter);

}  // namespace mta::rewrite
