// dict_regexp.cpp: regexp: tables, POSIX regular expressions (regexp_table(5)).
//
// Patterns compile with regcomp(3).  Flags toggle: i (case-insensitive, on by
// default), x (extended syntax, on by default), m (REG_NEWLINE, off by
// default).  "/p1/!/p2/ result" matches when p1 matches and p2 does not.
// The table is read once, at open; a rule that does not parse or compile is
// warned about and skipped.  Read-only: no update, no sequence.
#include <regex.h>

#include <memory>
#include <string>

#include "maps/dict_types.hpp"
#include "maps/pattern_file.hpp"

namespace mta::maps {
namespace {

class RegexPattern : public CompiledPattern {
 public:
  // Takes a compiled re (regcomp() succeeded on it).
  RegexPattern(std::unique_ptr<regex_t> re, std::string map, int lineno)
      : re_(std::move(re)), map_(std::move(map)), lineno_(lineno) {}
  ~RegexPattern() override { regfree(re_.get()); }
  RegexPattern(const RegexPattern&) = delete;
  RegexPattern& operator=(const RegexPattern&) = delete;

  size_t group_count() const override { return re_->re_nsub; }

  Outcome match(const std::string& subject,
                std::vector<std::optional<std::string_view>>* groups) const override {
    std::vector<regmatch_t> pmatch(groups ? groups->size() : 0);
    int err = regexec(re_.get(), subject.c_str(), pmatch.size(), pmatch.empty() ? nullptr : pmatch.data(), 0);
    if (err == REG_NOMATCH) return Outcome::no_match;
    if (err != 0) {
      char text[256];
      regerror(err, re_.get(), text, sizeof text);
      RuleSource{"regexp", map_, lineno_}.warn("%s", text);
      return Outcome::error;
    }
    for (size_t n = 0; n < pmatch.size(); ++n) {
      const regmatch_t& m = pmatch[n];
      if (m.rm_so < 0 || m.rm_so == m.rm_eo) continue;  // unset or empty: adds nothing
      (*groups)[n] = std::string_view(subject).substr(static_cast<size_t>(m.rm_so),
                                                      static_cast<size_t>(m.rm_eo - m.rm_so));
    }
    return Outcome::match;
  }

 private:
  std::unique_ptr<regex_t> re_;
  std::string map_;
  int lineno_;
};

class RegexpDialect : public PatternDialect {
 public:
  std::string_view type() const override { return "regexp"; }
  uint32_t default_options() const override { return REG_EXTENDED | REG_ICASE; }
  bool apply_flag(char flag, uint32_t* options, const RuleSource& src) const override {
    switch (flag) {
      case 'i': *options ^= REG_ICASE; return true;
      case 'm': *options ^= REG_NEWLINE; return true;
      case 'x': *options ^= REG_EXTENDED; return true;
      default:
        src.warn("unknown regexp option \"%c\": skipping this rule", flag);
        return false;
    }
  }
  bool has_second_pattern() const override { return true; }
  std::string_view unclosed_verb() const override { return "skipping"; }
  std::string_view zero_index_words() const override { return "out-of-range"; }
  bool trailing_backslash_closes() const override { return true; }

  std::unique_ptr<CompiledPattern> compile(const PatternText& pattern, bool need_groups,
                                           const RuleSource& src) const override {
    auto re = std::make_unique<regex_t>();
    int flags = static_cast<int>(pattern.options) | (need_groups ? 0 : REG_NOSUB);
    int err = regcomp(re.get(), pattern.regexp.c_str(), flags);
    if (err != 0) {
      char text[256];
      regerror(err, re.get(), text, sizeof text);
      src.warn("%s", text);
      return nullptr;
    }
    return std::make_unique<RegexPattern>(std::move(re), std::string(src.map), src.lineno);
  }
};

const RegexpDialect kRegexpDialect;

}  // namespace

DictPtr open_regexp(std::string_view name, const OpenFlags& flags) {
  return open_pattern_table("regexp", kRegexpDialect, name, flags);
}

}  // namespace mta::maps
