// hostname_syntax.cpp: see hostname_syntax.hpp.
#include "trivial-rewrite/hostname_syntax.hpp"

#include <cstddef>
#include <string>

#include "log/log.hpp"

namespace mta::rewrite {
namespace {

constexpr size_t kMaxHostnameLen = 255;
constexpr size_t kMaxLabelLen = 63;
constexpr size_t kMaxAddrStrLen = 46;  // INET6_ADDRSTRLEN, Postfix's MAI_HOSTADDR_STR

bool is_digit(int c) { return c >= '0' && c <= '9'; }
bool is_alnum(int c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Postfix's warnings name the function and show at most 100 bytes.
bool gripe_false(bool gripe, const char* function, const std::string& what, std::string_view addr) {
  if (gripe) {
    std::string shown(addr.substr(0, 100));
    mta::log::warning("%s: %s: %s", function, what.c_str(), shown.c_str());
  }
  return false;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return false;
    if (n > 0 && i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}

// valid_hostname's rules; non_ascii_ok lets bytes >= 0x80 count as letters.
bool hostname_rules(std::string_view name, bool non_ascii_ok) {
  if (name.empty()) return false;
  size_t label_length = 0;
  bool non_numeric = false;
  for (size_t i = 0; i < name.size(); ++i) {
    int ch = static_cast<unsigned char>(name[i]);
    bool last = i + 1 == name.size();
    if (is_alnum(ch) || ch == '_' || (non_ascii_ok && ch >= 0x80)) {
      if (++label_length > kMaxLabelLen) return false;
      if (!is_digit(ch)) non_numeric = true;
    } else if (ch == '.') {
      if (label_length == 0 || last) return false;
      label_length = 0;
    } else if (ch == '-') {
      ++label_length;
      if (label_length == 1 || last || name[i + 1] == '.') return false;
    } else {
      return false;
    }
  }
  if (!non_numeric) return false;
  return name.size() <= kMaxHostnameLen;
}

}  // namespace

bool valid_hostname(std::string_view name) { return hostname_rules(name, false); }

bool valid_utf8_hostname(bool utf8_enabled, std::string_view name) {
  bool ascii = true;
  for (char c : name)
    if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
  if (ascii || !utf8_enabled) return valid_hostname(name);
  return valid_utf8(name) && hostname_rules(name, true);
}

bool valid_ipv4_hostaddr(std::string_view addr, bool gripe) {
  constexpr const char* kName = "valid_ipv4_hostaddr";
  bool in_byte = false;
  int byte_count = 0;
  int byte_val = 0;
  for (size_t i = 0; i < addr.size(); ++i) {
    int ch = static_cast<unsigned char>(addr[i]);
    if (is_digit(ch)) {
      if (!in_byte) {
        in_byte = true;
        byte_val = 0;
        ++byte_count;
      }
      byte_val = byte_val * 10 + (ch - '0');
      if (byte_val > 255) return gripe_false(gripe, kName, "invalid octet value", addr);
    } else if (ch == '.') {
      if (!in_byte || i + 1 == addr.size()) return gripe_false(gripe, kName, "misplaced dot", addr);
      // 0.0.0.0 is allowed, 0.1.2.3 is not.
      if (byte_count == 1 && byte_val == 0 && addr.find_first_not_of("0.") != std::string_view::npos)
        return gripe_false(gripe, kName, "bad initial octet value", addr);
      in_byte = false;
    } else {
      return gripe_false(gripe, kName, "invalid character " + std::to_string(ch) + "(decimal)", addr);
    }
  }
  if (byte_count != 4) return gripe_false(gripe, kName, "invalid octet count", addr);
  return true;
}

bool valid_ipv6_hostaddr(std::string_view addr, bool gripe) {
  constexpr const char* kName = "valid_ipv6_hostaddr";
  int null_field = 0;
  int field = 0;
  size_t len = 0;
  size_t i = 0;
  auto at = [&](size_t k) { return k < addr.size() ? static_cast<unsigned char>(addr[k]) : 0; };
  for (;;) {
    int c = at(i);
    if (c == 0) {
      if (field < 2) return gripe_false(gripe, kName, "too few `:' in IPv6 address", addr);
      if (len == 0 && null_field != field - 1)
        return gripe_false(gripe, kName, "bad null last field in IPv6 address", addr);
      return true;
    }
    if (c == '.') {
      if (field < 2 || field > 6) return gripe_false(gripe, kName, "malformed IPv4-in-IPv6 address", addr);
      return valid_ipv4_hostaddr(addr.substr(i - len), gripe);
    }
    if (c == ':') {
      if (field == 0 && len == 0 && is_alnum(at(i + 1)))
        return gripe_false(gripe, kName, "bad null first field in IPv6 address", addr);
      if (++field > 7) return gripe_false(gripe, kName, "too many `:' in IPv6 address", addr);
      ++i;
      len = 0;
      if (at(i) == ':') {
        if (null_field > 0) return gripe_false(gripe, kName, "too many `::' in IPv6 address", addr);
        null_field = field;
      }
      continue;
    }
    len = 0;
    while (is_hex(at(i + len))) ++len;
    if (len > 4) return gripe_false(gripe, kName, "malformed IPv6 address", addr);
    if (len == 0)
      return gripe_false(gripe, kName, "invalid character " + std::to_string(c) + "(decimal) in IPv6 address", addr);
    i += len;
  }
}

bool valid_hostaddr(std::string_view addr) {
  if (addr.empty()) return false;
  return addr.find(':') != std::string_view::npos ? valid_ipv6_hostaddr(addr) : valid_ipv4_hostaddr(addr);
}

bool valid_mailhost_addr(std::string_view addr, std::string_view* bare, bool gripe) {
  constexpr std::string_view kPrefix = "IPv6:";
  bool v6 = addr.size() >= kPrefix.size();
  for (size_t i = 0; v6 && i < kPrefix.size(); ++i) {
    char a = addr[i], b = kPrefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) v6 = false;
  }
  std::string_view rest = v6 ? addr.substr(kPrefix.size()) : addr;
  bool ok = v6 ? valid_ipv6_hostaddr(rest, gripe) : valid_ipv4_hostaddr(rest, gripe);
  if (ok && bare) *bare = rest;
  return ok;
}

bool valid_mailhost_literal(std::string_view literal) {
  if (literal.empty() || literal[0] != '[') return false;
  size_t close = literal.find(']');
  if (close == std::string_view::npos || close + 1 != literal.size()) return false;
  if (close - 1 >= kMaxAddrStrLen) return false;
  return valid_mailhost_addr(literal.substr(1, close - 1));
}

}  // namespace mta::rewrite
