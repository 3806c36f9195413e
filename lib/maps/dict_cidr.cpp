// dict_cidr.cpp: cidr: tables, IPv4 and IPv6 networks (cidr_table(5)).
//
// A rule is "network/prefix result" or "address result", optionally in
// brackets ("[2001:db8::]/32", "[2001:db8::/32]", "[::1]"), optionally
// negated with '!'; "if network" .. "endif" (also negated) nest.  The
// search is first match wins; an address only meets rules of its own family
// (a negated IPv4 rule never matches an IPv6 address).  A rule with a bad
// prefix, host bits set or a bad address is warned about with Postfix's
// text and skipped.  Lookup keys are plain addresses, no brackets.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <climits>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "maps/dict_types.hpp"
#include "maps/pattern_file.hpp"

namespace mta::maps {
namespace {

using AddrBytes = std::array<unsigned char, 16>;

int family_of(std::string_view addr) { return addr.find(':') != std::string_view::npos ? AF_INET6 : AF_INET; }
size_t byte_count(int family) { return family == AF_INET6 ? 16 : 4; }

bool parse_address(int family, const std::string& text, AddrBytes* out) {
  out->fill(0);
  return inet_pton(family, text.c_str(), out->data()) == 1;
}

// Keeps the first bits of addr, zeroes the rest.
void mask_bits(AddrBytes* addr, size_t bytes, int bits) {
  for (size_t i = 0; i < bytes; ++i) {
    int keep = bits - static_cast<int>(i * 8);
    if (keep >= 8) continue;
    (*addr)[i] = keep <= 0 ? 0 : static_cast<unsigned char>((*addr)[i] & (0xff << (8 - keep)));
  }
}

struct Network {
  int family = AF_INET;
  AddrBytes net{};
  int prefix = 0;

  bool contains(int addr_family, const AddrBytes& addr) const {
    if (addr_family != family) return false;
    AddrBytes masked = addr;
    mask_bits(&masked, byte_count(family), prefix);
    return std::memcmp(masked.data(), net.data(), byte_count(family)) == 0;
  }
};

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Postfix's cidr_match_parse(): returns the reason on error.
std::optional<std::string> parse_network(std::string_view text, Network* out) {
  std::string pattern;
  std::string_view mask_search;
  bool mask_in_brackets_tail = false;
  if (!text.empty() && text.front() == '[') {
    std::string_view inner = text.substr(1);
    size_t close = inner.find(']');
    if (close == std::string_view::npos)
      return "missing ']' character after \"[" + std::string(inner) + "\"";
    pattern = std::string(inner.substr(0, close));
    std::string_view after = inner.substr(close + 1);
    if (!after.empty() && after.front() != '/') return "garbage after \"[" + pattern + "]\"";
    if (!after.empty()) {
      mask_search = after;  // "[addr]/len"
      mask_in_brackets_tail = true;
    }
  } else {
    pattern = std::string(text);
  }
  std::optional<std::string> mask;
  if (mask_in_brackets_tail) {
    mask = std::string(mask_search.substr(1));
  } else if (size_t slash = pattern.find('/'); slash != std::string::npos) {
    mask = pattern.substr(slash + 1);
    pattern.resize(slash);
  }
  out->family = family_of(pattern);
  const int bits = static_cast<int>(byte_count(out->family) * 8);
  if (mask) {
    const char* error = nullptr;
    if (!all_digits(*mask)) {
      error = "bad mask value";
    } else {
      long value = 0;
      for (char c : *mask) value = value > INT_MAX / 10 ? long{INT_MAX} : value * 10 + (c - '0');
      out->prefix = static_cast<int>(value);
      if (out->prefix > bits)
        error = "bad mask length";
      else if (!parse_address(out->family, pattern, &out->net))
        error = "bad network value";
    }
    if (error) return std::string(error) + " in \"" + pattern + "/" + *mask + "\"";
    AddrBytes masked = out->net;
    mask_bits(&masked, byte_count(out->family), out->prefix);
    if (masked != out->net) {
      char shown[INET6_ADDRSTRLEN];
      inet_ntop(out->family, masked.data(), shown, sizeof shown);
      return "non-null host address bits in \"" + pattern + "/" + *mask + "\", perhaps you should use \"" +
             shown + "/" + std::to_string(out->prefix) + "\" instead";
    }
    return std::nullopt;
  }
  if (!parse_address(out->family, pattern, &out->net)) return "bad address pattern: \"" + pattern + "\"";
  out->prefix = bits;
  return std::nullopt;
}

class CidrDict : public Dict {
 public:
  CidrDict(std::string_view name, const std::vector<TableLine>& lines);

 protected:
  Result do_lookup(std::string_view key) override;

 private:
  enum class Op { match, if_, endif };
  struct Rule {
    Op op = Op::match;
    int lineno = 0;
    Network network;
    bool positive = true;
    std::string value;
    size_t endif = 0;  // IF: index of its ENDIF, or 0 when it has none
  };
  static std::optional<std::string> parse_rule(std::string_view line, int nesting, Rule* rule);

  std::vector<Rule> rules_;
};

std::string_view skip_negations(std::string_view p, bool* positive) {
  while (!p.empty() && (p.front() == '!' || is_ascii_space(p.front()))) {
    if (p.front() == '!') *positive = !*positive;
    p.remove_prefix(1);
  }
  return p;
}

std::optional<std::string> CidrDict::parse_rule(std::string_view p, int nesting, Rule* rule) {
  if (starts_with_keyword(p, "IF")) {
    p = skip_negations(p.substr(2), &rule->positive);
    if (p.empty()) return "no address pattern";
    rule->op = Op::if_;
    return parse_network(trim_blanks(p), &rule->network);
  }
  if (starts_with_keyword(p, "ENDIF")) {
    if (!trim_blanks(p.substr(5)).empty()) return "garbage after ENDIF";
    if (nesting == 0) return "ENDIF without IF";
    rule->op = Op::endif;
    return std::nullopt;
  }
  p = skip_negations(p, &rule->positive);
  size_t end = 0;
  while (end < p.size() && !is_ascii_space(p[end])) ++end;
  std::string_view pattern = p.substr(0, end);
  rule->value = std::string(trim_blanks(p.substr(end)));
  if (pattern.empty()) return "no address pattern";
  if (auto why = parse_network(pattern, &rule->network)) return why;
  if (rule->value.empty()) return "no lookup result";
  return std::nullopt;
}

CidrDict::CidrDict(std::string_view name, const std::vector<TableLine>& lines)
    : Dict("cidr", std::string(name), true) {
  std::vector<size_t> open_ifs;
  for (const TableLine& line : lines) {
    std::string_view text = trim_blanks(line.text);
    if (text.empty()) continue;
    RuleSource src{"cidr", name, line.lineno};
    Rule rule;
    rule.lineno = line.lineno;
    if (auto why = parse_rule(text, static_cast<int>(open_ifs.size()), &rule)) {
      src.warn("%s: skipping this rule", why->c_str());
      continue;
    }
    if (rule.op == Op::if_) {
      open_ifs.push_back(rules_.size());
    } else if (rule.op == Op::endif) {
      rules_[open_ifs.back()].endif = rules_.size();
      open_ifs.pop_back();
    }
    rules_.push_back(std::move(rule));
  }
  while (!open_ifs.empty()) {
    RuleSource{"cidr", name, rules_[open_ifs.back()].lineno}.warn("IF has no matching ENDIF");
    open_ifs.pop_back();
  }
}

Result CidrDict::do_lookup(std::string_view key_view) {
  std::string key(key_view.substr(0, key_view.find('\0')));
  int family = family_of(key);
  AddrBytes addr;
  if (!parse_address(family, key, &addr)) return Result::miss();
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    // A rule of the other address family never matches, negated or not.
    bool same_family = rule.network.family == family;
    bool holds = same_family && rule.network.contains(family, addr) == rule.positive;
    switch (rule.op) {
      case Op::match:
        if (holds) return Result::hit(rule.value);
        break;
      case Op::if_:
        if (holds) break;
        if (rule.endif == 0) return Result::miss();
        i = rule.endif;
        break;
      case Op::endif:
        break;
    }
  }
  return Result::miss();
}

}  // namespace

DictPtr open_cidr(std::string_view name, const OpenFlags& flags) {
  if (flags.create || flags.write)
    throw DictError("cidr:" + std::string(name) + " map requires O_RDONLY access mode");
  auto d = std::make_unique<CidrDict>(name, read_table_lines("cidr", name));
  if (!name.empty() && name.front() != '{') d->watch_file(std::string(name));
  return d;
}

}  // namespace mta::maps
