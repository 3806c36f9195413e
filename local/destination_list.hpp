// destination_list.hpp: the right-hand side of an alias, and the lines of
// .forward and :include: files, split into destinations as Postfix's
// tok822_parse() and tok822_internalize() do.
//
// A list is separated by commas; each element is an address, "|command",
// "/file/name", "~/file" or ":include:/file/name".  Double quotes protect
// blanks and commas ("|/usr/bin/procmail -f-") and disappear; comments in
// parentheses go; "Name <addr>" yields addr; a group "name: a, b;" yields
// its members; words separated by blanks are joined by one blank.  Empty
// elements are skipped.
//
// Also the $name expansion of forward_path, command_execution_directory and
// luser_relay (Postfix's local_expand): $user $home $shell $recipient
// $extension $domain $local $recipient_delimiter, with ${name?text},
// ${name:text} and ${name?{text}:{text}}; values are censored with a
// character filter (forward_expansion_filter etc.).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mta::local {

std::vector<std::string> parse_destinations(std::string_view text);

struct ExpandOutcome {
  std::string text;
  bool error = false;              // bad syntax (MAC_PARSE_ERROR)
  bool undefined = false;          // a plain $name had no value (MAC_PARSE_UNDEF)
  bool extension_matched = false;  // $extension was used and defined
};

// LOOKUP returns a name's value or nullopt; FILTER, when given, lists the
// characters allowed in values (others become '_').
ExpandOutcome expand_attributes(std::string_view pattern,
                                const std::function<std::optional<std::string>(std::string_view)>& lookup,
                                const std::string* filter);

}  // namespace mta::local
