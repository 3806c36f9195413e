// table_source.cpp: see table_source.hpp.
#include "maps/table_source.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config_file.hpp"
#include "log/log.hpp"
#include "maps/dict.hpp"

namespace mta::maps {
namespace {

using config::is_blank;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DictError("open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<config::LogicalLine> logical_lines(std::string_view text, const std::string& path) {
  std::vector<std::string> warnings;
  auto lines = config::split_logical_lines(text, path, &warnings);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  return lines;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// The right-hand side of an alias, re-written as Postfix's postalias does
// (it tokenizes the value as RFC 822 text and prints the tokens again):
// ", " after each comma, no blanks around the specials . @ : ; < >, one
// blank between words where the source had blanks, backslash escapes
// outside quotes removed.
std::string normalize_alias_value(std::string_view v) {
  enum Kind { word, special, comma };
  struct Token {
    std::string text;
    Kind kind;
    bool space_before;
  };
  std::vector<Token> tokens;
  bool space = false;
  size_t i = 0;
  auto is_special = [](char c) { return std::string_view("()<>@,;:\\\".[]").find(c) != std::string_view::npos; };
  while (i < v.size()) {
    char c = v[i];
    if (is_blank(c)) {
      space = true;
      ++i;
      continue;
    }
    Token t{"", word, space};
    space = false;
    if (c == '"' || c == '(' || c == '[') {
      char close = c == '"' ? '"' : c == '(' ? ')' : ']';
      size_t j = i + 1;
      int depth = 1;
      for (; j < v.size(); ++j) {
        if (v[j] == '\\' && j + 1 < v.size()) {
          ++j;
          continue;
        }
        if (c == '(' && v[j] == '(') ++depth;
        if (v[j] == close && --depth == 0) break;
      }
      t.text = std::string(v.substr(i, std::min(j + 1, v.size()) - i));
      i = j + 1;
    } else if (c == ',') {
      t = {",", comma, false};
      ++i;
    } else if (c == '<') {
      t.text = "<";
      t.kind = word;  // an angle address starts like a word: "Name <a@b>"
      ++i;
    } else if (is_special(c) && c != '\\') {
      t = {std::string(1, c), special, false};
      ++i;
    } else {
      while (i < v.size() && !is_blank(v[i]) && (!is_special(v[i]) || v[i] == '\\')) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        t.text += v[i++];
      }
      // A quoted string right after an atom belongs to it: |"/bin/cmd".
      if (i < v.size() && v[i] == '"') {
        size_t j = i + 1;
        while (j < v.size() && v[j] != '"') j += v[j] == '\\' ? 2 : 1;
        t.text += std::string(v.substr(i, std::min(j + 1, v.size()) - i));
        i = j + 1;
      }
    }
    tokens.push_back(std::move(t));
  }
  std::string out;
  for (size_t k = 0; k < tokens.size(); ++k) {
    const Token& t = tokens[k];
    if (k > 0) {
      const Token& p = tokens[k - 1];
      if (p.kind == comma) out += ' ';
      else if (p.kind == word && t.kind == word && t.space_before && p.text != "<") out += ' ';
    }
    out += t.text;
  }
  return out;
}

}  // namespace

std::vector<SourceEntry> parse_table_source(std::string_view text, const std::string& path) {
  std::vector<SourceEntry> out;
  for (const config::LogicalLine& l : logical_lines(text, path)) {
    size_t k = 0;
    while (k < l.text.size() && !is_blank(l.text[k])) ++k;
    std::string value = trim(std::string_view(l.text).substr(k));
    if (value.empty()) {
      log::warning("%s, line %d: expected format: key whitespace value", path.c_str(), l.line);
      continue;
    }
    out.push_back({l.text.substr(0, k), std::move(value), l.line});
  }
  return out;
}

std::vector<SourceEntry> parse_alias_source(std::string_view text, const std::string& path) {
  std::vector<SourceEntry> out;
  for (const config::LogicalLine& l : logical_lines(text, path)) {
    std::string_view s = l.text;
    std::string name;
    size_t i = 0;
    if (!s.empty() && s[0] == '"') {
      // A quoted name keeps its quotes out and may hold blanks and colons.
      size_t j = 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) ++j;
        name += s[j];
      }
      if (j >= s.size()) {
        log::warning("%s, line %d: unbalanced quote in alias name", path.c_str(), l.line);
        continue;
      }
      i = j + 1;
      while (i < s.size() && is_blank(s[i])) ++i;
    } else {
      while (i < s.size() && s[i] != ':' && !is_blank(s[i])) ++i;
      name = std::string(s.substr(0, i));
      while (i < s.size() && is_blank(s[i])) ++i;
    }
    if (i >= s.size() || s[i] != ':' || name.empty()) {
      log::warning("%s, line %d: need name:value pair", path.c_str(), l.line);
      continue;
    }
    std::string value = normalize_alias_value(trim(s.substr(i + 1)));
    if (value.empty()) {
      log::warning("%s, line %d: need name:value pair", path.c_str(), l.line);
      continue;
    }
    out.push_back({std::move(name), std::move(value), l.line});
  }
  return out;
}

std::vector<SourceEntry> read_table_source(const std::string& path) {
  return parse_table_source(read_all(path), path);
}

std::vector<SourceEntry> read_alias_source(const std::string& path) {
  return parse_alias_source(read_all(path), path);
}

}  // namespace mta::maps
