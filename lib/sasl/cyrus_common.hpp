// cyrus_common.hpp: what the server (cyrus_server.cpp) and the client
// (cyrus_client.cpp) sides share of libsasl2: the process-wide callbacks
// (library messages into our log with Postfix's prefixes, "SASL
// authentication problem: ..."; the configuration path) and the text of a
// status code.  Internal to lib/sasl.
#pragma once

#include <sasl/sasl.h>

#include <string>

#include "sasl/security_options.hpp"

namespace mta::sasl {

// libsasl2 stores every callback as int (*)(void); the detour through
// void (*)(void) is the cast GCC accepts between function types.
template <typename F>
auto as_callback(F* f) {
  using Proc = int (*)();
  return reinterpret_cast<Proc>(reinterpret_cast<void (*)()>(f));
}

// smtpd_sasl_security_options / smtp_sasl_security_options as SASL_SEC_* bits.
unsigned security_flags(const SecurityOptions& options);

// Fills LIST with the log callback and, unless CONF_PATH is null, the
// GETCONFPATH callback that answers *CONF_PATH.  LIST and *CONF_PATH must
// live as long as the library (they are process-wide statics).
void make_cyrus_callbacks(sasl_callback_t (&list)[3], const std::string* conf_path);

// sasl_errstring(), or "SASL error N".
std::string cyrus_error_text(int status);

}  // namespace mta::sasl
