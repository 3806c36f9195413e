// hostname_syntax.hpp: Postfix's syntax checks for host names and numeric
// addresses (valid_hostname, valid_hostaddr, valid_mailhost_literal), which
// decide when trivial-rewrite flags an address as bad.
//
// A host name: at most 255 bytes, labels of letters, digits, "_" and "-"
// of at most 63 bytes, separated by single dots, no hyphen at either end
// of a label, and not all numeric.  With SMTPUTF8 enabled, a name with
// non-ASCII bytes is accepted when it is valid UTF-8 and its ASCII bytes
// follow the same rules (Postfix converts it to an A-label with libicu
// first; we do not, so a name that IDNA would refuse may pass here).
// A numeric address: dotted-quad IPv4 (no leading zero octet, except
// 0.0.0.0) or IPv6 in Postfix's syntax, without the "IPv6:" prefix.  An
// address literal: "[" address "]", with "IPv6:" before an IPv6 address.
#pragma once

#include <string_view>

namespace mta::rewrite {

bool valid_hostname(std::string_view name);
bool valid_utf8_hostname(bool utf8_enabled, std::string_view name);
// With gripe, a bad address is logged as a warning in Postfix's words
// ("valid_ipv4_hostaddr: invalid octet value: 300.1.1.1").
bool valid_ipv4_hostaddr(std::string_view addr, bool gripe = false);
bool valid_ipv6_hostaddr(std::string_view addr, bool gripe = false);
bool valid_hostaddr(std::string_view addr);
// "1.2.3.4" or "IPv6:..." (case-insensitive prefix); on success *bare is the
// address without the prefix.
bool valid_mailhost_addr(std::string_view addr, std::string_view* bare = nullptr, bool gripe = false);
bool valid_mailhost_literal(std::string_view literal);

}  // namespace mta::rewrite
