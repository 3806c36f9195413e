// pattern_file.hpp: what regexp, pcre and cidr tables share.
//
// Reading: a table is a file or, as in Postfix 3.7, inline text in the table
// name ("regexp:{ {rule-1}, {rule-2} }").  Either way it is cut into logical
// lines as Postfix's readllines() does: a line that starts with whitespace
// continues the previous one, lines whose first non-blank is '#' and blank
// lines are skipped (also between continuation lines), and text that starts
// with whitespace before any logical line is warned about and dropped.  Each
// logical line carries the number of its first physical line, for warnings.
//
// Rules: regexp_table(5) and pcre_table(5) share one syntax, parsed here:
// "/pattern/flags result", "!/pattern/flags result", any non-alphanumeric
// delimiter, "if /pattern/flags" .. "endif" (nesting), and $1, ${1}, $(1),
// $$ in the result.  The two types differ only in small ways that a
// PatternDialect describes (flag letters, regexp's "/p1/!/p2/" form, a few
// message words), and in the engine, which compiles and runs one pattern.
// A rule that does not parse or compile is warned about with Postfix's text
// ("regexp map NAME, line N: ...") and skipped; the rest of the table works.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maps/dict.hpp"

namespace mta::maps {

struct TableLine {
  int lineno = 0;  // first physical line
  std::string text;
};

// Cuts table text into logical lines; origin names the text in the warning
// about a leading continuation line (the file name, as Postfix prints it).
std::vector<TableLine> split_table_lines(std::string_view text, std::string_view origin);

// Reads the table "type:name" (a file, or inline text when name starts with
// '{').  Throws DictError with Postfix's message: "open NAME: No such file or
// directory", or "TYPE map: missing '}' in ..." for bad inline text.
std::vector<TableLine> read_table_lines(std::string_view type, std::string_view name);

// The inline form of a table name turned into one rule per line; nullopt
// with *error set when the braces do not balance (Postfix's extpar texts).
std::optional<std::string> inline_table_text(std::string_view name, std::string* error);

// Where a rule came from, for warnings: "TYPE map NAME, line N: ...".
struct RuleSource {
  std::string_view type;
  std::string_view map;
  int lineno = 0;
  void warn(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
};

// A result text with $n references, parsed when the table is loaded.
class Replacement {
 public:
  // Parses as Postfix's mac_parse() with the pattern tables' checks: only
  // numbers >= 1 may be referenced.  Warns and returns nullopt on error.
  static std::optional<Replacement> parse(std::string_view text, const RuleSource& src,
                                          std::string_view zero_index_words);
  size_t max_sub() const { return max_sub_; }
  // Expands with groups[n] the text matched by group n (nullopt: unset).
  // An unset or empty group adds nothing.
  std::string expand(const std::vector<std::optional<std::string_view>>& groups) const;

 private:
  struct Piece {
    std::string literal;  // when ref == 0
    size_t ref = 0;
  };
  std::vector<Piece> pieces_;
  size_t max_sub_ = 0;
};

// One compiled pattern of a regexp or pcre table.
class CompiledPattern {
 public:
  enum class Outcome { match, no_match, error };
  virtual ~CompiledPattern() = default;
  // The number of capturing groups.
  virtual size_t group_count() const = 0;
  // Matches subject; with groups non-null, fills (*groups)[0..size-1].  An
  // execution error is warned about by the engine and reported as error.
  virtual Outcome match(const std::string& subject,
                        std::vector<std::optional<std::string_view>>* groups) const = 0;
};

// A pattern as written, with its flags applied to the dialect's defaults.
struct PatternText {
  std::string regexp;
  uint32_t options = 0;
  bool positive = true;  // false after an odd number of '!'
};

// What makes regexp and pcre differ in the shared syntax.
class PatternDialect {
 public:
  virtual ~PatternDialect() = default;
  virtual std::string_view type() const = 0;  // "regexp", "pcre"
  virtual uint32_t default_options() const = 0;
  // Applies one flag letter; false (after warning) for an unknown letter.
  virtual bool apply_flag(char flag, uint32_t* options, const RuleSource& src) const = 0;
  // regexp: '!' ends the flags and starts a second pattern ("/p1/!/p2/").
  virtual bool has_second_pattern() const = 0;
  // Verb in "no closing regexp delimiter": "skipping" or "ignoring".
  virtual std::string_view unclosed_verb() const = 0;
  // regexp says "out-of-range" for $0, pcre "out of range".
  virtual std::string_view zero_index_words() const = 0;
  // regexp: a backslash that ends the line ends the pattern as a delimiter.
  virtual bool trailing_backslash_closes() const = 0;
  // Compiles; warns and returns null on error.  need_groups: the result
  // uses $n, so the engine must report groups.
  virtual std::unique_ptr<CompiledPattern> compile(const PatternText& pattern, bool need_groups,
                                                   const RuleSource& src) const = 0;
};

// The rules of one regexp or pcre table, searched first match wins.
class PatternRules {
 public:
  // no_regsub: rules whose result uses $n are refused (Postfix's
  // DICT_FLAG_NO_REGSUB, for tables such as alias_maps where a substitution
  // from the looked-up address would let a sender choose a file or command).
  PatternRules(const PatternDialect& dialect, std::string map, const std::vector<TableLine>& lines,
               bool no_regsub = false);
  // The expanded result of the first matching rule, or nullopt.
  std::optional<std::string> search(std::string_view key) const;

 private:
  enum class Op { match, if_, endif };
  struct Rule {
    Op op = Op::match;
    int lineno = 0;
    std::unique_ptr<CompiledPattern> first;
    bool first_positive = true;
    std::unique_ptr<CompiledPattern> second;  // regexp "/p1/!/p2/"
    bool second_positive = true;
    std::optional<Replacement> replacement;
    size_t endif = 0;  // IF: index of its ENDIF, or 0 when it has none
  };

  bool parse_pattern(const RuleSource& src, std::string_view* p, PatternText* out) const;
  std::optional<Rule> parse_rule(const RuleSource& src, std::string_view line, int nesting) const;
  std::optional<Rule> parse_match_rule(const RuleSource& src, std::string_view line) const;
  std::optional<Rule> parse_if_rule(const RuleSource& src, std::string_view line) const;
  bool holds(const CompiledPattern& pattern, bool positive, const std::string& key,
             std::vector<std::optional<std::string_view>>* groups) const;

  const PatternDialect& dialect_;
  std::string map_;
  bool no_regsub_ = false;
  std::vector<Rule> rules_;
};

// Opens a regexp-style table ("regexp:/file" or inline text) whose rules
// follow DIALECT: read-only, watched for changes when it is a file, and
// refusing $n results when flags.no_regsub is set.
DictPtr open_pattern_table(std::string_view type, const PatternDialect& dialect, std::string_view name,
                           const OpenFlags& flags);

// Postfix's character classes: ASCII only, whatever the locale.
inline bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool is_ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
// True when line starts with word (any case) followed by a non-alphanumeric.
bool starts_with_keyword(std::string_view line, std::string_view word);
std::string_view trim_blanks(std::string_view s);

}  // namespace mta::maps
