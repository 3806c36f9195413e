// dict_pcre.cpp: pcre: tables, Perl-compatible regular expressions with
// PCRE2 (pcre_table(5)).
//
// Flags toggle PCRE2 options on top of the defaults CASELESS and DOTALL:
// i (caseless), m (multiline), s (dotall), x (extended), A (anchored),
// E (dollar matches only at the end), U (ungreedy); X was a PCRE1 option
// and is ignored with a warning, as Postfix built with PCRE2 does.  The
// table is read once, at open; a rule that does not parse or compile is
// warned about and skipped.  Read-only: no update, no sequence.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>

#include "maps/dict_types.hpp"
#include "maps/pattern_file.hpp"

namespace mta::maps {
namespace {

std::string pcre_error_text(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  if (n > 0) return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  return "unexpected pcre2 error code " + std::to_string(code);
}

struct CodeFree {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataFree {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

class PcrePattern : public CompiledPattern {
 public:
  PcrePattern(std::unique_ptr<pcre2_code, CodeFree> code, std::string map, int lineno)
      : code_(std::move(code)),
        data_(pcre2_match_data_create_from_pattern(code_.get(), nullptr)),
        map_(std::move(map)),
        lineno_(lineno) {
    uint32_t count = 0;
    pcre2_pattern_info(code_.get(), PCRE2_INFO_CAPTURECOUNT, &count);
    groups_ = count;
  }

  size_t group_count() const override { return groups_; }

  Outcome match(const std::string& subject,
                std::vector<std::optional<std::string_view>>* groups) const override {
    int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0,
                         data_.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return Outcome::no_match;
    if (rc < 0) {
      RuleSource{"pcre", map_, lineno_}.warn("%s", pcre_error_text(rc).c_str());
      return Outcome::error;
    }
    if (groups) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data_.get());
      size_t set = rc == 0 ? pcre2_get_ovector_count(data_.get()) : static_cast<size_t>(rc);
      for (size_t n = 0; n < groups->size() && n < set; ++n) {
        if (ov[2 * n] == PCRE2_UNSET || ov[2 * n + 1] <= ov[2 * n]) continue;  // adds nothing
        (*groups)[n] = std::string_view(subject).substr(ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
      }
    }
    return Outcome::match;
  }

 private:
  std::unique_ptr<pcre2_code, CodeFree> code_;
  std::unique_ptr<pcre2_match_data, MatchDataFree> data_;  // scratch space of one lookup at a time
  std::string map_;
  int lineno_;
  size_t groups_ = 0;
};

class PcreDialect : public PatternDialect {
 public:
  std::string_view type() const override { return "pcre"; }
  uint32_t default_options() const override { return PCRE2_CASELESS | PCRE2_DOTALL; }
  bool apply_flag(char flag, uint32_t* options, const RuleSource& src) const override {
    switch (flag) {
      case 'i': *options ^= PCRE2_CASELESS; return true;
      case 'm': *options ^= PCRE2_MULTILINE; return true;
      case 's': *options ^= PCRE2_DOTALL; return true;
      case 'x': *options ^= PCRE2_EXTENDED; return true;
      case 'A': *options ^= PCRE2_ANCHORED; return true;
      case 'E': *options ^= PCRE2_DOLLAR_ENDONLY; return true;
      case 'U': *options ^= PCRE2_UNGREEDY; return true;
      case 'X':
        src.warn("ignoring obsolete regexp option \"%c\"", flag);
        return true;
      default:
        src.warn("unknown regexp option \"%c\": skipping this rule", flag);
        return false;
    }
  }
  bool has_second_pattern() const override { return false; }
  std::string_view unclosed_verb() const override { return "ignoring"; }
  std::string_view zero_index_words() const override { return "out of range"; }
  bool trailing_backslash_closes() const override { return false; }

  std::unique_ptr<CompiledPattern> compile(const PatternText& pattern, bool,
                                           const RuleSource& src) const override {
    int error = 0;
    PCRE2_SIZE offset = 0;
    std::unique_ptr<pcre2_code, CodeFree> code(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.regexp.c_str()), PCRE2_ZERO_TERMINATED,
                      pattern.options, &error, &offset, nullptr));
    if (!code) {
      src.warn("error in regex at offset %lu: %s", static_cast<unsigned long>(offset),
               pcre_error_text(error).c_str());
      return nullptr;
    }
    return std::make_unique<PcrePattern>(std::move(code), std::string(src.map), src.lineno);
  }
};

const PcreDialect kPcreDialect;

}  // namespace

DictPtr open_pcre(std::string_view name, const OpenFlags& flags) {
  return open_pattern_table("pcre", kPcreDialect, name, flags);
}

}  // namespace mta::maps
