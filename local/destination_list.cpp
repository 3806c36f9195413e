// destination_list.cpp: see destination_list.hpp.
#include "local/destination_list.hpp"

#include <cstring>

namespace mta::local {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_special(char c) { return std::strchr("()<>@,;:\\\".[]", c) != nullptr && c != '\0'; }
bool is_ctl(char c) { return static_cast<unsigned char>(c) < 32 || c == 127; }

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

struct Piece {
  bool word;  // atom or quoted string; else a special character
  std::string text;
};

std::string internalize(const std::vector<Piece>& pieces) {
  std::string out;
  bool prev_word = false;
  for (const Piece& p : pieces) {
    if (p.word && prev_word) out += ' ';
    out += p.text;
    prev_word = p.word;
  }
  return out;
}

}  // namespace

std::vector<std::string> parse_destinations(std::string_view s) {
  std::vector<std::string> out;
  std::vector<Piece> cur, angle;
  bool in_angle = false, have_angle = false;
  auto flush = [&] {
    std::string addr = internalize(have_angle ? angle : cur);
    if (!addr.empty()) out.push_back(std::move(addr));
    cur.clear();
    angle.clear();
    in_angle = have_angle = false;
  };
  auto target = [&]() -> std::vector<Piece>& { return in_angle ? angle : cur; };

  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (is_blank(c)) {
      ++i;
    } else if (c == '"') {
      std::string text;
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        text += s[i];
      }
      if (i < s.size()) ++i;
      target().push_back({true, std::move(text)});
    } else if (c == '(') {
      int depth = 0;
      for (; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          ++i;
          continue;
        }
        if (s[i] == '(') ++depth;
        if (s[i] == ')' && --depth == 0) {
          ++i;
          break;
        }
      }
    } else if (c == ',') {
      if (in_angle) {
        angle.clear();  // a source route: @a,@b:user@c
      } else {
        flush();
      }
      ++i;
    } else if (c == ';') {
      flush();
      ++i;
    } else if (c == '<') {
      in_angle = have_angle = true;
      angle.clear();
      ++i;
    } else if (c == '>') {
      in_angle = false;
      ++i;
    } else if (c == ':' && target().empty() && starts_with_nocase(s.substr(i), ":include:")) {
      // ":include:/file" is one destination, not a group.
      size_t j = i + 9;
      while (j < s.size() && !is_blank(s[j]) && s[j] != ',') ++j;
      target().push_back({true, std::string(s.substr(i, j - i))});
      i = j;
    } else if (c == ':') {
      target().clear();  // a group name, or the source route before the mailbox
      ++i;
    } else if (c == '[') {
      size_t j = s.find(']', i);
      j = j == std::string_view::npos ? s.size() : j + 1;
      target().push_back({false, std::string(s.substr(i, j - i))});
      i = j;
    } else if (is_special(c) && c != '\\') {
      target().push_back({false, std::string(1, c)});
      ++i;
    } else {
      std::string text;
      while (i < s.size() && !is_blank(s[i]) && !is_ctl(s[i]) && (!is_special(s[i]) || s[i] == '\\')) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;  // a quoted pair: the character itself
        text += s[i++];
      }
      if (text.empty()) {
        ++i;  // a stray control character
        continue;
      }
      target().push_back({true, std::move(text)});
    }
  }
  flush();
  return out;
}

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

class Expander {
 public:
  Expander(const std::function<std::optional<std::string>(std::string_view)>& lookup, const std::string* filter)
      : lookup_(lookup), filter_(filter) {}

  void run(std::string_view text, int level) {
    if (level > 100) {
      result.error = true;
      return;
    }
    size_t i = 0;
    while (i < text.size() && !result.error) {
      char c = text[i];
      if (c != '$') {
        result.text += c;
        ++i;
        continue;
      }
      if (i + 1 >= text.size()) {
        result.error = true;
        return;
      }
      char n = text[i + 1];
      if (n == '$') {
        result.text += '$';
        i += 2;
      } else if (n == '{' || n == '(') {
        char open = n, close = n == '{' ? '}' : ')';
        int depth = 0;
        size_t j = i + 1;
        for (; j < text.size(); ++j) {
          if (text[j] == open) ++depth;
          if (text[j] == close && --depth == 0) break;
        }
        if (j >= text.size()) {
          result.error = true;
          return;
        }
        braced(text.substr(i + 2, j - i - 2), level);
        i = j + 1;
      } else if (name_char(n)) {
        size_t j = i + 1;
        while (j < text.size() && name_char(text[j])) ++j;
        plain(text.substr(i + 1, j - i - 1));
        i = j;
      } else {
        result.error = true;
      }
    }
  }

  ExpandOutcome result;

 private:
  std::optional<std::string> value(std::string_view name) {
    std::optional<std::string> v = lookup_(name);
    if (v && name == "extension") result.extension_matched = true;
    if (v && filter_) {
      for (char& ch : *v)
        if (filter_->find(ch) == std::string::npos) ch = '_';
    }
    return v;
  }

  void plain(std::string_view name) {
    std::optional<std::string> v = value(name);
    if (!v)
      result.undefined = true;
    else
      result.text += *v;
  }

  // Takes "{...}" from the front of text; nullopt when it does not start so.
  static std::optional<std::string_view> take_braced(std::string_view& text) {
    size_t k = 0;
    while (k < text.size() && is_blank(text[k])) ++k;
    if (k >= text.size() || text[k] != '{') return std::nullopt;
    int depth = 0;
    for (size_t j = k; j < text.size(); ++j) {
      if (text[j] == '{') ++depth;
      if (text[j] == '}' && --depth == 0) {
        std::string_view inner = text.substr(k + 1, j - k - 1);
        text.remove_prefix(j + 1);
        return inner;
      }
    }
    return std::nullopt;
  }

  void braced(std::string_view inner, int level) {
    size_t n = 0;
    while (n < inner.size() && name_char(inner[n])) ++n;
    if (n == 0) {
      result.error = true;
      return;
    }
    std::string_view name = inner.substr(0, n), rest = inner.substr(n);
    if (rest.empty()) {
      plain(name);
      return;
    }
    char op = rest.front();
    if (op != '?' && op != ':') {
      result.error = true;
      return;
    }
    rest.remove_prefix(1);
    std::optional<std::string> v = value(name);
    bool set = v && !v->empty();
    std::string_view when_set, when_unset;
    std::string_view probe = rest;
    if (auto first = take_braced(probe)) {
      std::string_view after = probe;
      while (!after.empty() && is_blank(after.front())) after.remove_prefix(1);
      std::optional<std::string_view> second;
      if (op == '?' && !after.empty() && after.front() == ':') {
        after.remove_prefix(1);
        second = take_braced(after);
        if (!second) {
          result.error = true;
          return;
        }
      }
      if (op == '?') {
        when_set = *first;
        if (second) when_unset = *second;
      } else {
        when_unset = *first;
      }
    } else if (op == '?') {
      when_set = rest;
    } else {
      when_unset = rest;
    }
    run(set ? when_set : when_unset, level + 1);
  }

  const std::function<std::optional<std::string>(std::string_view)>& lookup_;
  const std::string* filter_;
};

}  // namespace

ExpandOutcome expand_attributes(std::string_view pattern,
                                const std::function<std::optional<std::string>(std::string_view)>& lookup,
                                const std::string* filter) {
  Expander e(lookup, filter);
  e.run(pattern, 0);
  return e.result;
}

}  // namespace mta::local
