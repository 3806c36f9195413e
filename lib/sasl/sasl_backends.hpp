// sasl_backends.hpp: the constructors of the two back ends, for
// sasl_server.cpp's dispatch on smtpd_sasl_type (internal to lib/sasl).
#pragma once

#include <memory>
#include <string>

#include "sasl/sasl_server.hpp"
#include "sasl/security_options.hpp"

namespace mta::sasl {

// plain: the options for sessions without TLS; tls: with TLS.
std::unique_ptr<ServerFactory> create_cyrus_factory(const ServerOptions& options,
                                                    const SecurityOptions& plain,
                                                    const SecurityOptions& tls, std::string& error);
std::unique_ptr<ServerFactory> create_dovecot_factory(const ServerOptions& options,
                                                      const SecurityOptions& plain,
                                                      const SecurityOptions& tls, std::string& error);

}  // namespace mta::sasl
