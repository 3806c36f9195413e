// match_list.cpp: see match_list.hpp.
#include "trivial-rewrite/match_list.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config.hpp"

namespace mta::rewrite {
namespace {

constexpr int kMaxFileDepth = 10;

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Postfix's MATCH_DICTIONARY(): a colon, and not an address literal.
bool is_table(std::string_view pattern) {
  return !pattern.empty() && pattern[0] != '[' && pattern.find(':') != std::string_view::npos;
}

// The words of a pattern file: comments (# at the start of a line) and
// blank lines skipped, continuation lines joined as Postfix's readllines.
std::string file_words(std::istream& in) {
  std::string out, line;
  while (std::getline(in, line)) {
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    out += line;
    out += ' ';
  }
  return out;
}

}  // namespace

std::vector<std::string> split_patterns(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (is_blank(s[i]) || s[i] == ',')) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    int depth = 0;
    while (j < s.size() && (depth > 0 || (!is_blank(s[j]) && s[j] != ','))) {
      if (s[j] == '{') ++depth;
      else if (s[j] == '}' && depth > 0) --depth;
      ++j;
    }
    out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool match_parent_style(const config::Config& config, std::string_view parameter) {
  for (const std::string& name : split_patterns(config.get("parent_domain_matches_subdomains")))
    if (lowercase(name) == lowercase(parameter)) return true;
  return false;
}

MatchList::MatchList(std::string title, std::string_view patterns, Kind kind, bool parent_style)
    : title_(std::move(title)), kind_(kind), parent_style_(parent_style) {
  parse(patterns, false, 0);
}

void MatchList::parse(std::string_view patterns, bool negate, int depth) {
  for (const std::string& word : split_patterns(patterns)) {
    std::string_view item = word;
    bool neg = negate;
    while (!item.empty() && item[0] == '!') {
      neg = !neg;
      item.remove_prefix(1);
    }
    if (item.empty()) continue;
    Pattern p;
    p.negate = neg;
    if (item[0] == '/') {
      std::ifstream in{std::string(item)};
      if (in && depth < kMaxFileDepth) {
        parse(file_words(in), neg, depth + 1);
        continue;
      }
      std::string why = in ? std::string("too many nested files") : std::string(std::strerror(errno));
      p.text = std::string(item);
      p.dict = maps::make_surrogate("notfound", std::string(item), "open file " + std::string(item) + ": " + why);
    } else if (is_table(item)) {
      p.text = std::string(item);
      p.dict = maps::open_dict(item);
    } else {
      p.text = lowercase(item);
    }
    patterns_.push_back(std::move(p));
  }
}

Match MatchList::match_one(const Pattern& p, const std::string& name) const {
  if (p.dict) {
    auto lookup = [&](std::string_view key) -> Match {
      maps::Result r = p.dict->lookup(key);
      if (r.found()) return Match::yes;
      if (r.failed()) {
        error_ = p.dict->spec() + ": table lookup problem: " + r.error;
        return Match::error;
      }
      return Match::no;
    };
    Match m = lookup(name);
    if (m != Match::no || kind_ != Kind::hostname || p.dict->is_pattern()) return m;
    // Parent domains, in fixed-string tables only.
    for (size_t dot = name.find('.', 1); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      m = lookup(parent_style_ ? std::string_view(name).substr(dot + 1) : std::string_view(name).substr(dot));
      if (m != Match::no) return m;
    }
    return Match::no;
  }
  if (name == p.text) return Match::yes;
  if (kind_ != Kind::hostname || p.text.size() > name.size()) return Match::no;
  size_t pd = name.size() - p.text.size();
  if (parent_style_) {
    if (pd > 0 && name[pd - 1] == '.' && name.compare(pd, std::string::npos, p.text) == 0) return Match::yes;
  } else if (!p.text.empty() && p.text[0] == '.') {
    if (pd > 0 && name.compare(pd, std::string::npos, p.text) == 0) return Match::yes;
  }
  return Match::no;
}

Match MatchList::match(std::string_view name) const {
  error_.clear();
  const std::string folded = lowercase(name);
  for (const Pattern& p : patterns_) {
    switch (match_one(p, folded)) {
      case Match::yes: return p.negate ? Match::no : Match::yes;
      case Match::error: return Match::error;
      case Match::no: break;
    }
  }
  return Match::no;
}

std::string MatchList::changed_table() const {
  for (const Pattern& p : patterns_)
    if (p.dict && p.dict->has_changed()) return p.dict->spec();
  return {};
}

}  // namespace mta::rewrite
