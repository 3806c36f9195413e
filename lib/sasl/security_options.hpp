// security_options.hpp: smtpd_sasl_security_options and
// smtpd_sasl_tls_security_options, as both back ends understand them.
//
// A value is a list of names separated by blanks or commas: noanonymous,
// noplaintext, noactive, nodictionary, mutual_auth, forward_secrecy (case
// does not matter, as in Postfix's name_mask).  An unknown name is an error
// that names it.  An empty value allows every mechanism.
#pragma once

#include <string>
#include <string_view>

namespace mta::sasl {

struct SecurityOptions {
  bool noanonymous = false;
  bool noplaintext = false;
  bool noactive = false;
  bool nodictionary = false;
  bool mutual_auth = false;
  bool forward_secrecy = false;
};

// False with error set on an unknown name; param names the parameter in the
// message ("smtpd_sasl_security_options").
bool parse_security_options(std::string_view value, std::string_view param, SecurityOptions& out,
                            std::string& error);

}  // namespace mta::sasl
