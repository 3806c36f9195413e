// expand.cpp: the expansion engine of expand.hpp.
#include "config/expand.hpp"

#include "config/compat_level.hpp"

namespace mta::config {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view skip_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// Position of the bracket that closes the one at s[open], or npos.
size_t matching_close(std::string_view s, size_t open) {
  char o = s[open];
  char c = o == '{' ? '}' : ')';
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == o) {
      ++depth;
    } else if (s[i] == c && --depth == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Takes "{text}" off the front of s (after blanks): the text, or nullopt.
std::optional<std::string_view> take_braced(std::string_view& s) {
  s = skip_space(s);
  if (s.empty() || s.front() != '{') return std::nullopt;
  size_t close = matching_close(s, 0);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view inner = s.substr(1, close - 1);
  s.remove_prefix(close + 1);
  return inner;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// <0, 0, >0 like strcmp; numbers compare as numbers.
int compare_values(const std::string& a, const std::string& b) {
  if (all_digits(a) && all_digits(b)) {
    std::string_view x = a, y = b;
    while (x.size() > 1 && x.front() == '0') x.remove_prefix(1);
    while (y.size() > 1 && y.front() == '0') y.remove_prefix(1);
    if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
    return x.compare(y);
  }
  return a.compare(b);
}

class Expander {
 public:
  explicit Expander(const MacroSource& source) : source_(source) {}

  std::string run(std::string_view text, int level) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      char c = text[i];
      if (c != '$') {
        out += c;
        ++i;
        continue;
      }
      char d = i + 1 < text.size() ? text[i + 1] : '\0';
      if (d == '$') {
        out += '$';
        i += 2;
      } else if (is_name_char(d)) {
        size_t j = i + 1;
        while (j < text.size() && is_name_char(text[j])) ++j;
        out += value_of(text.substr(i + 1, j - i - 1), level);
        i = j;
      } else if (d == '{' || d == '(') {
        size_t close = matching_close(text, i + 1);
        if (close == std::string_view::npos)
          throw ExpandError("truncated macro reference: " + quoted(text));
        out += braced(text.substr(i + 2, close - i - 2), text, level);
        i = close + 1;
      } else {
        throw ExpandError("empty macro name: " + quoted(text));
      }
    }
    return out;
  }

 private:
  std::string value_of(std::string_view name, int level) {
    if (level > kMaxMacroNesting)
      throw ExpandError("unreasonable macro call nesting: " + quoted(name));
    std::optional<std::string> raw = source_.lookup(name);
    if (!raw) {
      source_.undefined(name);
      return {};
    }
    return run(*raw, level + 1);
  }

  // The inside of ${...} or $(...); whole is the text being expanded.
  std::string braced(std::string_view inner, std::string_view whole, int level) {
    if (!skip_space(inner).empty() && skip_space(inner).front() == '{')
      return relational(skip_space(inner), whole, level);
    size_t n = 0;
    while (n < inner.size() && is_name_char(inner[n])) ++n;
    if (n == 0) throw ExpandError("empty macro name: " + quoted(whole));
    std::string_view name = inner.substr(0, n);
    std::string_view rest = inner.substr(n);
    if (rest.empty()) return value_of(name, level);
    char op = rest.front();
    if (op != '?' && op != ':')
      throw ExpandError("unknown operator '" + std::string(1, op) + "' in macro: " + quoted(whole));
    rest.remove_prefix(1);
    std::optional<std::string> raw = source_.lookup(name);
    if (!raw) source_.undefined(name);
    bool non_empty = raw && !raw->empty();

    std::string_view when_set, when_unset;
    std::string_view probe = rest;
    if (auto first = take_braced(probe)) {
      // Braced: ${name?{a}:{b}} ${name?{a}} ${name:{b}}
      std::string_view after = skip_space(probe);
      std::optional<std::string_view> second;
      if (op == '?' && !after.empty() && after.front() == ':') {
        after.remove_prefix(1);
        second = take_braced(after);
        if (!second) throw ExpandError("missing '{' after ':' in macro: " + quoted(whole));
      }
      if (!skip_space(after).empty())
        throw ExpandError("unexpected text after '}' in macro: " + quoted(whole));
      if (op == '?') {
        when_set = *first;
        when_unset = second.value_or(std::string_view{});
      } else {
        when_unset = *first;
      }
    } else if (op == '?') {
      when_set = rest;
    } else {
      when_unset = rest;
    }
    return run(non_empty ? when_set : when_unset, level);
  }

  std::string relational(std::string_view inner, std::string_view whole, int level) {
    std::string_view s = inner;
    auto left = take_braced(s);
    if (!left) throw ExpandError("truncated macro reference: " + quoted(whole));
    s = skip_space(s);
    std::string_view op;
    for (std::string_view candidate : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (s.substr(0, candidate.size()) == candidate) {
        op = candidate;
        break;
      }
    }
    if (op.empty())
      throw ExpandError(
          "\"==\" or \"!=\" or \"<\" or \"<=\" or \">=\" or \">\" expected at: \"..." +
          std::string(inner.substr(0, inner.size() - s.size())) + ">>>" + std::string(s) + "\"");
    s.remove_prefix(op.size());
    bool by_level = s.substr(0, 5) == "level";
    if (by_level) s.remove_prefix(5);
    auto right = take_braced(s);
    if (!right) throw ExpandError("\"{expression}\" expected at: \"..." + std::string(s) + "\"");

    std::string a = run(*left, level), b = run(*right, level);
    int cmp;
    if (by_level) {
      auto la = parse_compat_level(a), lb = parse_compat_level(b);
      if (!la) throw ExpandError("malformed compatibility level syntax: " + quoted(a));
      if (!lb) throw ExpandError("malformed compatibility level syntax: " + quoted(b));
      cmp = *la < *lb ? -1 : (*la == *lb ? 0 : 1);
    } else {
      cmp = compare_values(a, b);
    }
    bool truth = (op == "==" && cmp == 0) || (op == "!=" && cmp != 0) ||
                 (op == "<" && cmp < 0) || (op == "<=" && cmp <= 0) ||
                 (op == ">" && cmp > 0) || (op == ">=" && cmp >= 0);

    s = skip_space(s);
    if (s.empty()) return truth ? "true" : "";
    if (s.front() != '?') throw ExpandError("\"?\" expected at: \"..." + std::string(s) + "\"");
    s.remove_prefix(1);
    std::string_view probe = s;
    if (auto when_true = take_braced(probe)) {
      std::string_view after = skip_space(probe);
      std::string_view when_false;
      if (!after.empty() && after.front() == ':') {
        after.remove_prefix(1);
        auto f = take_braced(after);
        if (!f) throw ExpandError("\"{expression}\" expected at: \"..." + std::string(after) + "\"");
        when_false = *f;
      }
      if (!skip_space(after).empty())
        throw ExpandError("unexpected text at: \"..." + std::string(after) + "\"");
      return run(truth ? *when_true : when_false, level);
    }
    return truth ? run(skip_space(s), level) : std::string();
  }

  const MacroSource& source_;
};

}  // namespace

std::string expand(std::string_view text, const MacroSource& source) {
  return Expander(source).run(text, 0);
}

void for_each_reference(std::string_view text, const std::function<void(std::string_view)>& fn) {
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$') continue;
    char d = text[i + 1];
    if (d == '$') {
      ++i;
    } else if (is_name_char(d)) {
      size_t j = i + 1;
      while (j < text.size() && is_name_char(text[j])) ++j;
      fn(text.substr(i + 1, j - i - 1));
      i = j - 1;
    } else if (d == '{' || d == '(') {
      size_t j = i + 2;
      while (j < text.size() && is_name_char(text[j])) ++j;
      if (j > i + 2) fn(text.substr(i + 2, j - i - 2));
      i = i + 1;  // keep scanning inside: conditional text may refer to more
    }
  }
}

}  // namespace mta::config
