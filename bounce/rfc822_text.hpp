// rfc822_text.hpp: the small text rules that delivery status notifications
// follow, each as Postfix 3.7 applies it, so that our notices and logs are
// byte-identical to the real bounce daemon's:
//
//   quote_822_local   the local part of an address as an RFC 822 dot-string
//                     when it is one, else as a quoted-string (quote_822_local)
//   header_name_length  how many bytes of a line are a header name (is_header)
//   mail_date         "Sun, 22 Nov 2026 11:41:29 +0000 (UTC)" (mail_date)
//   line_wrap         long lines broken at blanks, continuation lines
//                     indented (line_wrap, as bounce_print_wrap calls it)
//   dsn_mail_name     $mail_name made into an RFC 822 atom ("X-Postfix")
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace mta::bounce {

// EIGHT_BIT_CLEAN (Postfix's QUOTE_FLAG_8BITCLEAN, the default) lets 8-bit
// bytes stand in a dot-string; without it they force quoting and are
// escaped.  The empty address comes back as "".
std::string quote_822_local(std::string_view address, bool eight_bit_clean = true);

// The length of the header name when LINE starts "name:" or "name :" (name:
// printable ASCII other than ':' and blanks), else 0.
size_t header_name_length(std::string_view line);
// A header line or the continuation of one (starts with a blank or tab).
bool is_header_or_continuation(std::string_view line);

// In the local time zone, as RFC 5322 wants it (day of month padded with a
// blank, as Postfix's strftime "%e").
std::string mail_date(std::time_t when);

// Postfix's line_wrap(): TEXT split at blanks into lines of at most WIDTH
// bytes where it can be (a longer word stays whole); every line after the
// first is indented by INDENT blanks (counted in the width); trailing
// blanks are dropped.  The lines come back with their indentation.
std::vector<std::string> line_wrap(std::string_view text, int width, int indent);

// Postfix's rule for the diagnostic type "X-$mail_name": every byte of
// " \t\r\n()<>@,;:\\\".[]" becomes '-'.
std::string dsn_mail_name(std::string_view mail_name);

// ASCII case-insensitive comparison (strcasecmp).
bool equal_ignore_case(std::string_view a, std::string_view b);

// Valid UTF-8 that is not plain ASCII (Postfix's test for "utf-8" address
// types in a report).
bool is_utf8_non_ascii(std::string_view text);

}  // namespace mta::bounce
