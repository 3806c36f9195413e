// address.hpp: mail addresses in their two forms, and RFC 822 header parsing.
//
// Postfix keeps an address in two forms, and so do we: the external form is
// what travels in SMTP and headers ("\"john doe\"@example.com"), the internal
// form is what tables and delivery see (john doe@example.com: the local part
// unquoted).  The types keep them apart; converting between them is explicit.
//
// parse_header_addresses() reads an address-list header value (To, Cc, From,
// ...) as Postfix's tok822 does: display names, comments, groups and route
// addresses are stripped, and each address comes out in internal form.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mta::address {

struct ExternalAddress {
  std::string text;  // "\"john doe\"@example.com"
};

struct InternalAddress {
  std::string text;  // john doe@example.com
};

// "\"a b\"@x" -> a b@x; backslash escapes removed; the domain as is.
InternalAddress to_internal(std::string_view external);
// a b@x -> "a b"@x: the local part quoted when it needs to be (RFC 5322
// atext and dots, no leading, trailing or double dot), the domain as is.
ExternalAddress to_external(std::string_view internal);

// The local part and the domain of an internal address (split at the last @).
std::string_view local_part(std::string_view internal);
std::string_view domain_part(std::string_view internal);  // empty when there is no @

// Every address of an address-list header value, in internal form, in order.
std::vector<InternalAddress> parse_header_addresses(std::string_view value);

// RFC 822 tokens, for callers that rewrite headers (cleanup, M5).
enum class TokenKind { atom, quoted, comment, literal, special };
struct Token {
  TokenKind kind;
  std::string text;  // atom text; quoted/comment/literal contents without delimiters; special char
};
std::vector<Token> tokenize(std::string_view text);

// Postfix's verp_sender(): prefix@origin with delimiters "+=" and the
// recipient user@domain becomes prefix+user=domain@origin.  qmgr sends
// each recipient of a VERP message with such a sender, and the bounce
// service returns each failure to one.
std::string verp_sender(std::string_view delimiters, std::string_view sender, std::string_view recipient);

}  // namespace mta::address
