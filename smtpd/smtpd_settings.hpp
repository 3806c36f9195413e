// smtpd_settings.hpp: the main.cf parameters smtpd reads, once per process
// (after master.cf's -o overrides), in one immutable struct.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace mta::smtpd {

enum class BareNewline { no, normalize, reject };

struct SmtpdSettings {
  std::string service_name;  // master.cf service ("smtp", "submission")
  std::string myhostname;
  std::string mail_name;
  std::string banner;  // smtpd_banner, expanded
  std::string queue_directory;
  std::string cleanup_service;
  int cleanup_flags = 0;

  long long message_size_limit = 0;  // 0: none
  size_t line_length_limit = 2048;
  long long recipient_limit = 1000;
  long long recipient_overshoot_limit = 1000;
  long long timeout = 300;  // smtpd_timeout, seconds
  long long soft_error_limit = 10;
  long long hard_error_limit = 20;
  long long error_sleep_time = 1;
  long long junk_command_limit = 100;

  bool disable_vrfy = false;
  bool helo_required = false;
  bool strict_rfc821_envelopes = false;
  bool smtputf8_enable = true;
  bool forbid_unauth_pipelining = true;
  bool delay_open_until_valid_rcpt = true;
  bool peername_lookup = true;
  bool sasl_authenticated_header = false;
  bool tls_received_header = false;
  bool soft_bounce = false;
  BareNewline bare_newline = BareNewline::normalize;
  std::string bare_newline_exclusions;  // a host/address list
  int bare_newline_reject_code = 550;
  std::vector<std::string> discard_ehlo_keywords;  // lower case
  std::string null_access_lookup_key;

  // Per-client limits (anvil).
  long long connection_count_limit = 0, connection_rate_limit = 0, message_rate_limit = 0,
            recipient_rate_limit = 0, auth_rate_limit = 0, newtls_rate_limit = 0;

  // SMTP AUTH.
  bool sasl_enable = false;
  bool tls_auth_only = false;
  bool broken_sasl_auth_clients = false;
  long long sasl_response_limit = 12288;

  static SmtpdSettings from_config(const config::Config& config, const std::string& service_name);
  // Logs a warning for each parameter that is set but that smtpd does not
  // implement (the project's rule: never silently ignored).
  static void warn_unimplemented(const config::Config& config);
};

}  // namespace mta::smtpd
