// sasl_server.cpp: the choice of back end by smtpd_sasl_type, and smtpd's
// parameters gathered into ServerOptions.
#include "sasl/sasl_server.hpp"

#include "config/config.hpp"
#include "sasl/sasl_backends.hpp"

namespace mta::sasl {

ServerOptions options_from_config(const config::Config& config) {
  ServerOptions o;
  o.type = config.get("smtpd_sasl_type");
  o.path = config.get("smtpd_sasl_path");
  o.service = config.get("smtpd_sasl_service");
  o.user_realm = config.get("smtpd_sasl_local_domain");
  o.security_options = config.get("smtpd_sasl_security_options");
  o.tls_security_options = config.get("smtpd_sasl_tls_security_options");
  o.config_directory = config.get("config_directory");
  o.cyrus_config_path = config.get("cyrus_sasl_config_path");
  o.queue_directory = config.get("queue_directory");
  o.hostname = config.get("myhostname");
  return o;
}

std::vector<std::string> server_types() { return {"cyrus", "dovecot"}; }

std::unique_ptr<ServerFactory> ServerFactory::create(const ServerOptions& options, std::string& error) {
  SecurityOptions plain, tls;
  if (!parse_security_options(options.security_options, "smtpd_sasl_security_options", plain, error) ||
      !parse_security_options(options.tls_security_options, "smtpd_sasl_tls_security_options", tls,
                              error))
    return nullptr;
  if (options.type == "cyrus") return create_cyrus_factory(options, plain, tls, error);
  if (options.type == "dovecot") return create_dovecot_factory(options, plain, tls, error);
  error = "unsupported SASL server implementation: " + options.type;
  return nullptr;
}

}  // namespace mta::sasl
