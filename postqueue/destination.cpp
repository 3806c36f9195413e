// destination.cpp: the checks of destination.hpp.
#include "postqueue/destination.hpp"

#include <arpa/inet.h>
#include <pwd.h>
#include <strings.h>

#include <fstream>
#include <vector>

#include "config/config.hpp"
#include "maps/maps.hpp"

namespace mta::postqueue {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool valid_ipv4(std::string_view addr) {
  if (addr.empty() || addr.front() == '.') return false;
  int bytes = 0;
  int value = 0;
  bool in_byte = false;
  for (size_t i = 0; i < addr.size(); ++i) {
    char c = addr[i];
    if (is_digit(c)) {
      if (!in_byte) {
        in_byte = true;
        value = 0;
        ++bytes;
      }
      value = value * 10 + (c - '0');
      if (value > 255) return false;
    } else if (c == '.') {
      if (!in_byte || i + 1 == addr.size()) return false;
      // 0.0.0.0 is allowed, 0.1.2.3 is not.
      if (bytes == 1 && value == 0 && addr.find_first_not_of("0.") != std::string_view::npos) return false;
      in_byte = false;
    } else {
      return false;
    }
  }
  return bytes == 4;
}

bool valid_ipv6(std::string_view addr) {
  if (addr.empty() || addr.size() >= INET6_ADDRSTRLEN) return false;
  unsigned char buf[16];
  return inet_pton(AF_INET6, std::string(addr).c_str(), buf) == 1;
}

// Patterns of a list; "/file" entries replaced by the words of the file.
std::vector<std::string> list_patterns(std::string_view list) {
  std::vector<std::string> out;
  for (const std::string& p : config::split_list(list)) {
    std::string_view bare = p;
    bool negate = false;
    while (!bare.empty() && bare.front() == '!') {
      negate = !negate;
      bare.remove_prefix(1);
    }
    if (!bare.empty() && bare.front() == '/') {
      std::ifstream in{std::string(bare)};
      std::string word;
      while (in >> word) out.push_back((negate ? "!" : "") + word);
      continue;
    }
    out.push_back(p);
  }
  return out;
}

bool is_table(std::string_view pattern) {
  return !pattern.empty() && pattern.front() != '[' && pattern.find(':') != std::string_view::npos;
}

}  // namespace

bool valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  size_t label = 0;
  bool non_numeric = false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool last = i + 1 == name.size();
    if (is_alnum(c) || c == '_') {
      if (++label > 63) return false;
      if (!is_digit(c)) non_numeric = true;
    } else if (c == '.') {
      if (label == 0 || last) return false;
      label = 0;
    } else if (c == '-') {
      non_numeric = true;
      if (++label == 1 || last || name[i + 1] == '.') return false;
    } else {
      return false;
    }
  }
  return non_numeric;
}

bool valid_mailhost_literal(std::string_view text) {
  if (text.empty() || text.front() != '[') return false;
  size_t close = text.find(']');
  if (close == std::string_view::npos || close + 1 != text.size()) return false;
  std::string_view addr = text.substr(1, close - 1);
  if (addr.size() >= 5 && strncasecmp(addr.data(), "IPv6:", 5) == 0) return valid_ipv6(addr.substr(5));
  if (addr.find(':') != std::string_view::npos) return valid_ipv6(addr);
  return valid_ipv4(addr);
}

bool valid_flush_destination(std::string_view site) {
  return !site.empty() && site.front() == '[' ? valid_mailhost_literal(site) : valid_hostname(site);
}

ListMatch domain_list_match(std::string_view title, std::string_view list, std::string_view domain,
                            bool parent_style) {
  for (const std::string& p : list_patterns(list)) {
    std::string_view pattern = p;
    bool negate = false;
    while (!pattern.empty() && pattern.front() == '!') {
      negate = !negate;
      pattern.remove_prefix(1);
    }
    bool hit = false;
    if (is_table(pattern)) {
      maps::Maps table{std::string(title), pattern};
      maps::Result r = maps::find_domain(table, domain, parent_style);
      if (r.failed()) return ListMatch::error;
      hit = r.found();
    } else if (domain.size() == pattern.size() && strncasecmp(domain.data(), pattern.data(), domain.size()) == 0) {
      hit = true;
    } else if (parent_style || (!pattern.empty() && pattern.front() == '.')) {
      // "example.com" (parent style) or ".example.com" at the end of a subdomain.
      if (domain.size() > pattern.size()) {
        size_t at = domain.size() - pattern.size();
        bool boundary = pattern.front() == '.' || domain[at - 1] == '.';
        hit = boundary && strncasecmp(domain.data() + at, pattern.data(), pattern.size()) == 0;
      }
    }
    if (hit) return negate ? ListMatch::no_match : ListMatch::match;
  }
  return ListMatch::no_match;
}

std::string check_user_acl(std::string_view title, std::string_view acl, unsigned uid) {
  if (acl.substr(0, 7) == "static:") return {};
  const passwd* pw = ::getpwuid(static_cast<uid_t>(uid));
  std::string name = pw ? pw->pw_name : "unknown";
  for (const std::string& p : list_patterns(acl)) {
    std::string_view pattern = p;
    bool negate = false;
    while (!pattern.empty() && pattern.front() == '!') {
      negate = !negate;
      pattern.remove_prefix(1);
    }
    bool hit = false;
    if (is_table(pattern)) {
      maps::Maps table{std::string(title), pattern};
      maps::Result r = table.find(name);
      if (r.failed()) return name;
      hit = r.found();
    } else {
      hit = name.size() == pattern.size() && strncasecmp(name.data(), pattern.data(), name.size()) == 0;
    }
    if (hit) return negate ? name : std::string();
  }
  return name;
}

}  // namespace mta::postqueue
