// smtp_address.cpp: see smtp_address.hpp.
#include "smtpd/smtp_address.hpp"

#include <cctype>

#include "address/address.hpp"

namespace mta::smtpd {

namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(text[i])) != std::toupper(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

// The end of a path that starts at text[0] == '<': the index of the
// matching '>' outside quoted strings, or npos.
size_t path_end(std::string_view text) {
  bool quoted = false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    else if (!quoted && c == '>') return i;
    else if (!quoted && c == '<') return std::string_view::npos;
  }
  return std::string_view::npos;
}

// Checks the address and removes an RFC 5321 source route ("@a,@b:u@c"),
// which Postfix accepts and ignores.
bool clean_address(std::string& addr) {
  if (!addr.empty() && addr[0] == '@') {
    size_t colon = addr.find(':');
    if (colon == std::string::npos) return false;
    addr.erase(0, colon + 1);
    if (addr.empty()) return false;
  }
  bool quoted = false;
  size_t at = std::string::npos;
  for (size_t i = 0; i < addr.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(addr[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == '\\') {
      if (++i >= addr.size()) return false;
      continue;
    }
    if (c == '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (c == ' ' || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';')
      return false;
    if (c == '@') at = i;
  }
  if (quoted) return false;
  if (at != std::string::npos && (at == 0 || at + 1 == addr.size())) return false;  // "@x", "u@"
  return true;
}

}  // namespace

PathArgument parse_path_argument(std::string_view text, std::string_view keyword, bool strict_rfc821) {
  PathArgument out;
  if (!iequals_prefix(text, keyword) || text.size() <= keyword.size() || text[keyword.size()] != ':') {
    out.error = PathArgument::Error::syntax;
    return out;
  }
  std::string_view rest = text.substr(keyword.size() + 1);
  size_t skip = 0;
  while (skip < rest.size() && is_space(rest[skip])) ++skip;
  if (skip > 0 && strict_rfc821) {
    out.error = PathArgument::Error::bad_address;
    return out;
  }
  rest.remove_prefix(skip);
  if (rest.empty()) {
    out.error = PathArgument::Error::syntax;
    return out;
  }
  std::string addr;
  if (rest[0] == '<') {
    size_t end = path_end(rest);
    if (end == std::string_view::npos) {
      out.error = PathArgument::Error::bad_address;
      return out;
    }
    addr = std::string(rest.substr(1, end - 1));
    out.bracketed = std::string(rest.substr(0, end + 1));
    rest.remove_prefix(end + 1);
    if (!rest.empty() && !is_space(rest[0])) {
      out.error = PathArgument::Error::bad_address;
      return out;
    }
  } else {
    if (strict_rfc821) {
      out.error = PathArgument::Error::bad_address;
      return out;
    }
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    addr = std::string(rest.substr(0, end));
    out.bracketed = addr;
    rest.remove_prefix(end);
  }
  if (addr.find('\0') != std::string::npos) {  // Postfix's C strings end there: unbalanced
    out.error = PathArgument::Error::bad_address;
    return out;
  }
  if (!addr.empty() && !clean_address(addr)) {
    out.error = PathArgument::Error::bad_address;
    out.illegal = true;
    return out;
  }
  for (unsigned char c : addr)
    if (c >= 0x80) out.eight_bit = true;
  out.given = addr;
  out.internal = addr.empty() ? std::string() : std::string(address::to_internal(addr).text);
  while (!rest.empty()) {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    if (end > 0) out.parameters.emplace_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return out;
}

bool xtext_valid(std::string_view text) { return xtext_decode(text).has_value(); }

std::optional<std::string> xtext_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < '!' || c > '~' || c == '=') return std::nullopt;
    if (c != '+') {
      out.push_back(static_cast<char>(c));
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    auto hex = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'A' && h <= 'F') return h - 'A' + 10;
      return -1;
    };
    int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace mta::smtpd
