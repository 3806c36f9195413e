// expand.hpp: main.cf macro expansion, as Postfix's mac_expand does it.
//
// Forms: $name ${name} $(name); $$ for a literal $; ${name?text} (text when
// name is non-empty) and ${name:text} (text when name is empty or undefined),
// each also with braced text ${name?{text1}:{text2}}; and the relational form
// ${{text1} OP {text2} ? {text3} : {text4}} with OP one of == != < <= > >=
// (numeric when both sides are decimal numbers, else byte order) or the
// compatibility-level forms <level <=level >level >=level.  Without "?..."
// a relational form yields "true" or "".  Expansion is recursive: a looked-up
// value is itself expanded, up to a nesting depth of 100.
//
// Errors (truncated reference, empty name, bad operator, loop) throw
// ExpandError whose what() is Postfix's warning text.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mta::config {

class ExpandError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MacroSource {
 public:
  virtual ~MacroSource() = default;
  // The raw (unexpanded) value of a parameter, or nullopt when undefined.
  virtual std::optional<std::string> lookup(std::string_view name) const = 0;
  // Called for each reference to an undefined parameter (postconf warns).
  virtual void undefined(std::string_view /*name*/) const {}
};

inline constexpr int kMaxMacroNesting = 100;

std::string expand(std::string_view text, const MacroSource& source);

// Names that a value refers to with $name, ${name...} or $(name...),
// including those inside conditional text (used to find user-defined
// parameters).  Malformed references are skipped, not reported.
void for_each_reference(std::string_view text, const std::function<void(std::string_view)>& fn);

inline bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace mta::config
