// pattern_file.cpp: logical lines, inline tables, $n results and the
// if/endif rule list shared by the regexp and pcre tables.
#include "maps/pattern_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "log/log.hpp"

namespace mta::maps {

bool starts_with_keyword(std::string_view line, std::string_view word) {
  if (line.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    char c = line[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != word[i]) return false;
  }
  return line.size() == word.size() || !is_ascii_alnum(line[word.size()]);
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

namespace {

std::string_view skip_spaces(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  return s;
}

bool is_blank_or_comment(std::string_view line) {
  std::string_view rest = skip_spaces(line);
  return rest.empty() || rest.front() == '#';
}

}  // namespace

// As readllines(): a physical line that is blank or a comment never ends a
// logical line, so comments may sit between continuation lines.
std::vector<TableLine> split_table_lines(std::string_view text, std::string_view origin) {
  std::vector<TableLine> out;
  TableLine cur;
  bool open = false;
  int lineno = 0;
  auto finish = [&] {
    if (!open) return;
    open = false;
    // Everything downstream sees a C string in Postfix: text stops at a NUL.
    if (size_t nul = cur.text.find('\0'); nul != std::string::npos) cur.text.resize(nul);
    if (!cur.text.empty() && is_ascii_space(cur.text.front())) {
      std::string shown = cur.text.substr(0, 30);
      mta::log::warning("%.*s: logical line must not start with whitespace: \"%s%s\"",
                        static_cast<int>(origin.size()), origin.data(), shown.c_str(),
                        cur.text.size() > 30 ? "..." : "");
      return;
    }
    out.push_back(std::move(cur));
    cur = {};
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    if (is_blank_or_comment(line)) continue;
    if (open && !is_ascii_space(line.front())) finish();
    if (!open) {
      open = true;
      cur.lineno = lineno;
      cur.text.clear();
    }
    cur.text += line;
  }
  finish();
  return out;
}

// Postfix's extpar(): text must start with '{' and end at its balancing '}';
// with strip, blanks inside the braces go.
namespace {

std::optional<std::string_view> extract_braced(std::string_view text, bool strip, std::string* error) {
  if (text.empty() || text.front() != '{') {
    *error = "no '{' at start of text in \"" + std::string(text) + "\"";
    return std::nullopt;
  }
  int level = 0;
  size_t end = std::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '{') {
      ++level;
    } else if (text[i] == '}' && --level == 0) {
      end = i;
      break;
    }
  }
  if (end == std::string_view::npos) {
    *error = "missing '}' in \"" + std::string(text) + "\"";
    return std::nullopt;
  }
  if (end + 1 != text.size()) {
    *error = "syntax error after '}' in \"" + std::string(text) + "\"";
    return std::nullopt;
  }
  std::string_view inner = text.substr(1, end - 1);
  return strip ? trim_blanks(inner) : inner;
}

bool is_comma_space(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Postfix's mystrtokq() with ", \t\r\n" separators and {} grouping.
std::optional<std::string_view> next_braced_token(std::string_view* rest) {
  std::string_view s = *rest;
  while (!s.empty() && is_comma_space(s.front())) s.remove_prefix(1);
  if (s.empty()) {
    *rest = s;
    return std::nullopt;
  }
  int level = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '{') {
      ++level;
    } else if (level > 0 && c == '}') {
      --level;
    } else if (level == 0 && is_comma_space(c)) {
      break;
    }
  }
  std::string_view token = s.substr(0, i);
  *rest = i < s.size() ? s.substr(i + 1) : std::string_view{};
  return token;
}

}  // namespace

std::optional<std::string> inline_table_text(std::string_view name, std::string* error) {
  auto body = extract_braced(name, false, error);
  if (!body) return std::nullopt;
  std::string text;
  std::string_view rest = *body;
  while (auto token = next_braced_token(&rest)) {
    auto rule = extract_braced(*token, true, error);
    if (!rule) return std::nullopt;
    text.append(*rule);
    text += '\n';
  }
  return text;
}

std::vector<TableLine> read_table_lines(std::string_view type, std::string_view name) {
  std::string map(name);
  if (!name.empty() && name.front() == '{') {
    std::string error;
    auto text = inline_table_text(name, &error);
    if (!text) throw DictError(std::string(type) + " map: " + error);
    return split_table_lines(*text, name);
  }
  int fd = ::open(map.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DictError("open " + map + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a read error ends the table, as a VSTREAM error does
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return split_table_lines(text, name);
}

void RuleSource::warn(const char* fmt, ...) const {
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string body(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(body.data(), body.size() + 1, fmt, again);
  va_end(again);
  mta::log::warning("%.*s map %.*s, line %d: %s", static_cast<int>(type.size()), type.data(),
                    static_cast<int>(map.size()), map.data(), lineno, body.c_str());
}

// mac_parse() semantics: "$$" is a '$'; "$name" takes [A-Za-z0-9_]; "${..}"
// and "$(..)" take up to the balancing brace.  A bad reference name is
// reported and parsing goes on (every bad name gets its warning); a
// truncated or empty reference stops it.
std::optional<Replacement> Replacement::parse(std::string_view text, const RuleSource& src,
                                              std::string_view zero_index_words) {
  Replacement r;
  std::string literal;
  bool ok = true;
  std::string whole(text);
  auto flush = [&] {
    if (literal.empty()) return;
    r.pieces_.push_back({std::move(literal), 0});
    literal.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$') {
      literal += text[i++];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      literal += '$';
      i += 2;
      continue;
    }
    flush();
    ++i;
    std::string name;
    if (i < text.size() && (text[i] == '{' || text[i] == '(')) {
      char open = text[i], close = open == '{' ? '}' : ')';
      size_t start = ++i;
      int level = 1;
      size_t j = start;
      for (; j < text.size(); ++j) {
        if (text[j] == open) ++level;
        if (text[j] == close && --level == 0) break;
      }
      if (level > 0) {
        mta::log::warning("truncated macro reference: \"%s\"", whole.c_str());
        return std::nullopt;
      }
      name = std::string(text.substr(start, j - start));
      i = j + 1;
    } else {
      size_t j = i;
      while (j < text.size() && (is_ascii_alnum(text[j]) || text[j] == '_')) ++j;
      name = std::string(text.substr(i, j - i));
      i = j;
    }
    if (name.empty()) {
      mta::log::warning("empty macro name: \"%s\"", whole.c_str());
      return std::nullopt;
    }
    bool digits = true;
    for (char c : name) digits = digits && c >= '0' && c <= '9';
    if (!digits) {
      src.warn("non-numeric replacement index \"%s\"", name.c_str());
      ok = false;
      continue;
    }
    size_t n = 0;
    for (char c : name) n = n > INT_MAX / 10 ? size_t{INT_MAX} : n * 10 + static_cast<size_t>(c - '0');
    if (n < 1) {
      src.warn("%.*s replacement index \"%s\"", static_cast<int>(zero_index_words.size()),
               zero_index_words.data(), name.c_str());
      ok = false;
      continue;
    }
    r.pieces_.push_back({{}, n});
    if (n > r.max_sub_) r.max_sub_ = n;
  }
  flush();
  if (!ok) return std::nullopt;
  return r;
}

std::string Replacement::expand(const std::vector<std::optional<std::string_view>>& groups) const {
  std::string out;
  for (const Piece& p : pieces_) {
    if (p.ref == 0) {
      out += p.literal;
    } else if (p.ref < groups.size() && groups[p.ref]) {
      out += *groups[p.ref];
    }
  }
  return out;
}

PatternRules::PatternRules(const PatternDialect& dialect, std::string map,
                           const std::vector<TableLine>& lines, bool no_regsub)
    : dialect_(dialect), map_(std::move(map)), no_regsub_(no_regsub) {
  std::vector<size_t> open_ifs;  // indexes of IF rules waiting for ENDIF
  for (const TableLine& line : lines) {
    std::string_view text = trim_blanks(line.text);
    if (text.empty()) continue;
    RuleSource src{dialect_.type(), map_, line.lineno};
    std::optional<Rule> rule = parse_rule(src, text, static_cast<int>(open_ifs.size()));
    if (!rule) continue;
    if (rule->op == Op::if_) {
      open_ifs.push_back(rules_.size());
    } else if (rule->op == Op::endif) {
      rules_[open_ifs.back()].endif = rules_.size();
      open_ifs.pop_back();
    }
    rules_.push_back(std::move(*rule));
  }
  while (!open_ifs.empty()) {
    RuleSource src{dialect_.type(), map_, rules_[open_ifs.back()].lineno};
    src.warn("IF has no matching ENDIF");
    open_ifs.pop_back();
  }
}

std::optional<PatternRules::Rule> PatternRules::parse_rule(const RuleSource& src, std::string_view line,
                                                           int nesting) const {
  if (!is_ascii_alnum(line.front())) return parse_match_rule(src, line);
  if (starts_with_keyword(line, "IF")) return parse_if_rule(src, line.substr(2));
  if (starts_with_keyword(line, "ENDIF")) {
    if (nesting == 0) {
      src.warn("ignoring ENDIF without matching IF");
      return std::nullopt;
    }
    if (!skip_spaces(line.substr(5)).empty()) src.warn("ignoring extra text after ENDIF");
    Rule rule;
    rule.op = Op::endif;
    rule.lineno = src.lineno;
    return rule;
  }
  src.warn("ignoring unrecognized request");
  return std::nullopt;
}

// Negation operators, the delimited pattern and its flags; *p moves past them.
bool PatternRules::parse_pattern(const RuleSource& src, std::string_view* p, PatternText* out) const {
  std::string_view s = *p;
  out->positive = true;
  while (!s.empty() && (s.front() == '!' || is_ascii_space(s.front()))) {
    if (s.front() == '!') out->positive = !out->positive;
    s.remove_prefix(1);
  }
  if (s.empty()) {
    src.warn("no regexp: skipping this rule");
    return false;
  }
  char delim = s.front();
  s.remove_prefix(1);
  size_t i = 0;
  bool closed = false;
  while (i < s.size()) {
    if (s[i] == '\\') {
      if (i + 1 < s.size()) {
        i += 2;
        continue;
      }
      // A backslash at the very end: regexp takes it for the delimiter.
      closed = dialect_.trailing_backslash_closes();
      break;
    }
    if (s[i] == delim) {
      closed = true;
      break;
    }
    ++i;
  }
  if (!closed) {
    std::string_view verb = dialect_.unclosed_verb();
    src.warn("no closing regexp delimiter \"%c\": %.*s this rule", delim, static_cast<int>(verb.size()),
             verb.data());
    return false;
  }
  out->regexp = std::string(s.substr(0, i));
  s.remove_prefix(i + 1);
  out->options = dialect_.default_options();
  bool stop_at_bang = dialect_.has_second_pattern();
  while (!s.empty() && !is_ascii_space(s.front()) && !(stop_at_bang && s.front() == '!')) {
    if (!dialect_.apply_flag(s.front(), &out->options, src)) return false;
    s.remove_prefix(1);
  }
  *p = s;
  return true;
}

std::optional<PatternRules::Rule> PatternRules::parse_match_rule(const RuleSource& src,
                                                                 std::string_view line) const {
  std::string_view p = line;
  PatternText first, second;
  bool has_second = false;
  if (!parse_pattern(src, &p, &first)) return std::nullopt;
  if (dialect_.has_second_pattern() && !p.empty() && p.front() == '!') {
    if (!parse_pattern(src, &p, &second)) return std::nullopt;
    has_second = true;
  }
  p = skip_spaces(p);
  if (p.empty()) src.warn("no replacement text: using empty string");
  std::optional<Replacement> replacement = Replacement::parse(p, src, dialect_.zero_index_words());
  if (!replacement) {
    src.warn("bad replacement syntax: skipping this rule");
    return std::nullopt;
  }
  size_t max_sub = replacement->max_sub();
  if (max_sub > 0 && no_regsub_) {
    src.warn("regular expression substitution is not allowed: skipping this rule");
    return std::nullopt;
  }
  if (max_sub > 0 && !first.positive) {
    src.warn("$number found in negative match replacement text: skipping this rule");
    return std::nullopt;
  }
  Rule rule;
  rule.op = Op::match;
  rule.lineno = src.lineno;
  rule.first = dialect_.compile(first, max_sub > 0, src);
  if (!rule.first) return std::nullopt;
  if (max_sub > rule.first->group_count()) {
    src.warn("out of range replacement index \"%d\": skipping this rule", static_cast<int>(max_sub));
    return std::nullopt;
  }
  rule.first_positive = first.positive;
  if (has_second) {
    rule.second = dialect_.compile(second, false, src);
    if (!rule.second) return std::nullopt;
    rule.second_positive = second.positive;
  }
  rule.replacement = std::move(replacement);
  return rule;
}

std::optional<PatternRules::Rule> PatternRules::parse_if_rule(const RuleSource& src,
                                                              std::string_view line) const {
  std::string_view p = skip_spaces(line);
  PatternText pattern;
  if (!parse_pattern(src, &p, &pattern)) return std::nullopt;
  p = skip_spaces(p);
  if (!p.empty()) {
    std::string extra(p);
    src.warn("ignoring extra text after IF statement: \"%s\"", extra.c_str());
    src.warn("do not prepend whitespace to statements between IF and ENDIF");
  }
  Rule rule;
  rule.op = Op::if_;
  rule.lineno = src.lineno;
  rule.first = dialect_.compile(pattern, false, src);
  if (!rule.first) return std::nullopt;
  rule.first_positive = pattern.positive;
  return rule;
}

// A pattern that fails to execute never selects its rule, negated or not.
bool PatternRules::holds(const CompiledPattern& pattern, bool positive, const std::string& key,
                         std::vector<std::optional<std::string_view>>* groups) const {
  CompiledPattern::Outcome outcome = pattern.match(key, groups);
  if (outcome == CompiledPattern::Outcome::error) return false;
  return (outcome == CompiledPattern::Outcome::match) == positive;
}

std::optional<std::string> PatternRules::search(std::string_view key_view) const {
  // Postfix hands the engines a C string: the key stops at a NUL.
  std::string key(key_view.substr(0, key_view.find('\0')));
  std::vector<std::optional<std::string_view>> groups;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    switch (rule.op) {
      case Op::match: {
        size_t max_sub = rule.replacement->max_sub();
        groups.assign(max_sub > 0 ? max_sub + 1 : 0, std::nullopt);
        if (!holds(*rule.first, rule.first_positive, key, max_sub > 0 ? &groups : nullptr)) break;
        if (rule.second && !holds(*rule.second, rule.second_positive, key, nullptr)) break;
        return rule.replacement->expand(groups);
      }
      case Op::if_:
        if (holds(*rule.first, rule.first_positive, key, nullptr)) break;
        if (rule.endif == 0) return std::nullopt;  // IF without ENDIF: nothing after it applies
        i = rule.endif;
        break;
      case Op::endif:
        break;
    }
  }
  return std::nullopt;
}

namespace {

class PatternTableDict : public Dict {
 public:
  PatternTableDict(std::string_view type, const PatternDialect& dialect, std::string_view name,
                   const std::vector<TableLine>& lines, bool no_regsub)
      : Dict(std::string(type), std::string(name), true),
        rules_(dialect, std::string(name), lines, no_regsub) {}

 protected:
  Result do_lookup(std::string_view key) override {
    auto value = rules_.search(key);
    return value ? Result::hit(std::move(*value)) : Result::miss();
  }

 private:
  PatternRules rules_;
};

}  // namespace

DictPtr open_pattern_table(std::string_view type, const PatternDialect& dialect, std::string_view name,
                           const OpenFlags& flags) {
  if (flags.create || flags.write)
    throw DictError(std::string(type) + ":" + std::string(name) + " map requires O_RDONLY access mode");
  auto d = std::make_unique<PatternTableDict>(type, dialect, name, read_table_lines(type, name), flags.no_regsub);
  if (!name.empty() && name.front() != '{') d->watch_file(std::string(name));
  return d;
}

}  // namespace mta::maps
