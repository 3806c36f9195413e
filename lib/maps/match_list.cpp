// match_list.cpp: Postfix's pattern lists and host/address lists; see
// match_list.hpp.
#include "maps/match_list.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config.hpp"

namespace mta::maps {
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
      p.dict = make_surrogate("notfound", std::string(item), "open file " + std::string(item) + ": " + why);
    } else if (is_table(item)) {
      p.text = std::string(item);
      p.dict = open_dict(item);
    } else {
      p.text = lowercase(item);
    }
    patterns_.push_back(std::move(p));
  }
}

Match MatchList::lookup(const Pattern& p, std::string_view key) const {
  Result r = p.dict->lookup(key);
  if (r.found()) return Match::yes;
  if (r.failed()) {
    error_ = p.dict->spec() + ": table lookup problem: " + r.error;
    return Match::error;
  }
  return Match::no;
}

Match MatchList::match_name(const Pattern& p, const std::string& name) const {
  if (p.dict) {
    Match m = lookup(p, name);
    if (m != Match::no || kind_ != Kind::hostname || p.dict->is_pattern()) return m;
    // Parent domains, in fixed-string tables only.
    for (size_t dot = name.find('.', 1); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      m = lookup(p, parent_style_ ? std::string_view(name).substr(dot + 1) : std::string_view(name).substr(dot));
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
    switch (match_name(p, folded)) {
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

}  // namespace mta::maps

namespace mta::maps {
namespace {

struct IpAddr {
  int family = 0;  // AF_INET or AF_INET6
  unsigned char bytes[16] = {};
  int bits() const { return family == AF_INET ? 32 : 128; }
};

bool parse_ip(std::string_view text, IpAddr& out) {
  std::string s(text);
  out.family = s.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  return inet_pton(out.family, s.c_str(), out.bytes) == 1;
}

std::string format_ip(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(a.family, a.bytes, buf, sizeof buf) ? std::string(buf) : std::string();
}

}  // namespace

Match match_network(std::string_view network, std::string_view addr, std::string* why) {
  auto fail = [&](std::string text) {
    if (why) *why = std::move(text);
    return Match::error;
  };
  std::string_view host = network, len;
  if (!network.empty() && network[0] == '[') {
    size_t close = network.find(']');
    if (close == std::string_view::npos) return fail("missing \"]\" in \"" + std::string(network) + "\"");
    host = network.substr(1, close - 1);
    std::string_view rest = network.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != '/') return fail("garbage after \"]\" in \"" + std::string(network) + "\"");
      len = rest.substr(1);
    }
  } else if (size_t slash = network.find('/'); slash != std::string_view::npos) {
    host = network.substr(0, slash);
    len = network.substr(slash + 1);
  }
  IpAddr net;
  if (!parse_ip(host, net)) return fail("bad net/mask pattern: \"" + std::string(network) + "\"");
  int mask = net.bits();
  if (!len.empty() || network.find('/') != std::string_view::npos) {
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string_view::npos)
      return fail("bad net/mask pattern: \"" + std::string(network) + "\"");
    mask = std::stoi(std::string(len));
    if (mask > net.bits()) return fail("bad net/mask pattern: \"" + std::string(network) + "\"");
  }
  // Host bits must be zero, as Postfix insists.
  IpAddr masked = net;
  for (int i = 0; i < net.bits() / 8; ++i) {
    int keep = std::min(8, std::max(0, mask - i * 8));
    masked.bytes[i] = static_cast<unsigned char>(masked.bytes[i] & (0xff00 >> keep));
  }
  if (std::memcmp(masked.bytes, net.bytes, sizeof net.bytes) != 0)
    return fail("non-null host address bits in \"" + std::string(network) + "\", perhaps you should use \"" +
                format_ip(masked) + "/" + std::to_string(mask) + "\" instead");
  IpAddr client;
  if (!parse_ip(addr, client) || client.family != net.family) return Match::no;
  for (int i = 0; i < net.bits() / 8; ++i) {
    int keep = std::min(8, std::max(0, mask - i * 8));
    if (keep == 0) break;
    unsigned m = 0xff00u >> keep;
    if (((client.bytes[i] ^ net.bytes[i]) & m & 0xffu) != 0) return Match::no;
  }
  return Match::yes;
}

Match HostList::match_addr(const Pattern& p, const std::string& addr) const {
  if (p.dict) return lookup(p, addr);
  std::string_view pat = p.text;
  if (pat.find('/') != std::string_view::npos) {
    std::string why;
    Match m = match_network(pat, addr, &why);
    if (m == Match::error) error_ = title_ + ": " + why;
    return m;
  }
  if (pat.size() > 2 && pat.front() == '[' && pat.back() == ']') pat = pat.substr(1, pat.size() - 2);
  return pat == addr ? Match::yes : Match::no;
}

Match HostList::match(std::string_view name, std::string_view addr) const {
  error_.clear();
  const std::string folded_name = lowercase(name);
  const std::string folded_addr = lowercase(addr);
  for (const Pattern& p : patterns_) {
    Match m = p.text.find('/') != std::string::npos && !p.dict ? Match::no : match_name(p, folded_name);
    if (m == Match::no) m = match_addr(p, folded_addr);
    switch (m) {
      case Match::yes: return p.negate ? Match::no : Match::yes;
      case Match::error: return Match::error;
      case Match::no: break;
    }
  }
  return Match::no;
}

}  // namespace mta::maps
