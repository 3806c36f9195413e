// smtp_address.hpp: the arguments of MAIL FROM and RCPT TO (RFC 5321
// section 4.1.2, with Postfix's leniency when strict_rfc821_envelopes is
// off): the path in angle brackets, or a bare address, then the ESMTP
// parameters.  Also the ESMTP xtext encoding (RFC 3461) that ORCPT and
// ENVID use.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mta::smtpd {

struct PathArgument {
  enum class Error { none, syntax, bad_address };
  Error error = Error::none;
  std::string given;     // the address as the client wrote it, without <> or source route
  std::string internal;  // unquoted (Postfix's internal form); "" for <>
  bool eight_bit = false;  // non-ASCII bytes in the address
  std::string bracketed;   // "<...>" as given, for Postfix's "Illegal address syntax" warning
  bool illegal = false;    // the brackets balance but the address inside is malformed
  std::vector<std::string> parameters;  // "SIZE=1000", "BODY=8BITMIME", ...
};

// TEXT is what follows the verb, e.g. "FROM:<a@b> SIZE=10"; KEYWORD is
// "FROM" or "TO".  error = syntax when the keyword and colon are missing;
// bad_address when the path is malformed.
PathArgument parse_path_argument(std::string_view text, std::string_view keyword, bool strict_rfc821);

// RFC 3461 xtext: "+HH" for bytes outside "!".."~", "+" and "=".
std::optional<std::string> xtext_decode(std::string_view text);
bool xtext_valid(std::string_view text);

}  // namespace mta::smtpd
