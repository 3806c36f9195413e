// smtpd_settings.cpp: see smtpd_settings.hpp.
#include "smtpd/smtpd_settings.hpp"

#include <algorithm>
#include <cctype>

#include "cleanup/cleanup_status.hpp"
#include "log/log.hpp"

namespace mta::smtpd {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

SmtpdSettings SmtpdSettings::from_config(const config::Config& config, const std::string& service_name) {
  SmtpdSettings s;
  s.service_name = service_name;
  s.myhostname = config.get("myhostname");
  s.mail_name = config.get("mail_name");
  s.banner = config.get("smtpd_banner");
  s.queue_directory = config.get("queue_directory");
  s.cleanup_service = config.get("cleanup_service_name");

  // What mail from outside gets from cleanup (Postfix: CLEANUP_FLAG_MASK_EXTERNAL
  // minus receive_override_options), and replies in SMTP form.
  namespace cflag = message::cleanup_flag;
  s.cleanup_flags = message::input_transp_cleanup(cflag::kMaskExternal | cflag::kSmtpReply,
                                                  config.get("receive_override_options"));

  s.message_size_limit = config.get_int("message_size_limit");
  s.line_length_limit = static_cast<size_t>(std::max<long long>(80, config.get_int("line_length_limit")));
  s.recipient_limit = config.get_int("smtpd_recipient_limit");
  s.recipient_overshoot_limit = config.get_int("smtpd_recipient_overshoot_limit");
  s.timeout = std::max<long long>(1, config.get_time("smtpd_timeout"));
  s.soft_error_limit = config.get_int("smtpd_soft_error_limit");
  s.hard_error_limit = config.get_int("smtpd_hard_error_limit");
  s.error_sleep_time = config.get_time("smtpd_error_sleep_time");
  s.junk_command_limit = config.get_int("smtpd_junk_command_limit");

  s.disable_vrfy = config.get_bool("disable_vrfy_command");
  s.helo_required = config.get_bool("smtpd_helo_required");
  s.strict_rfc821_envelopes = config.get_bool("strict_rfc821_envelopes");
  s.smtputf8_enable = config.get_bool("smtputf8_enable");
  s.forbid_unauth_pipelining = config.get_bool("smtpd_forbid_unauth_pipelining");
  s.delay_open_until_valid_rcpt = config.get_bool("smtpd_delay_open_until_valid_rcpt");
  s.peername_lookup = config.get_bool("smtpd_peername_lookup");
  s.sasl_authenticated_header = config.get_bool("smtpd_sasl_authenticated_header");
  s.tls_received_header = config.get_bool("smtpd_tls_received_header");
  s.soft_bounce = config.get_bool("soft_bounce");

  std::string bare = lower(config.get("smtpd_forbid_bare_newline"));
  if (bare == "no" || bare == "false") s.bare_newline = BareNewline::no;
  else if (bare == "normalize" || bare == "yes" || bare == "true") s.bare_newline = BareNewline::normalize;
  else if (bare == "reject") s.bare_newline = BareNewline::reject;
  else
    log::fatal("invalid smtpd_forbid_bare_newline value: \"%s\"", bare.c_str());
  s.bare_newline_exclusions = config.get("smtpd_forbid_bare_newline_exclusions");
  s.bare_newline_reject_code = static_cast<int>(config.get_int("smtpd_forbid_bare_newline_reject_code"));
  for (const std::string& k : config::split_list(config.get("smtpd_discard_ehlo_keywords")))
    s.discard_ehlo_keywords.push_back(lower(k));
  s.null_access_lookup_key = config.get("smtpd_null_access_lookup_key");
  s.connection_count_limit = config.get_int("smtpd_client_connection_count_limit");
  s.connection_rate_limit = config.get_int("smtpd_client_connection_rate_limit");
  s.message_rate_limit = config.get_int("smtpd_client_message_rate_limit");
  s.recipient_rate_limit = config.get_int("smtpd_client_recipient_rate_limit");
  s.auth_rate_limit = config.get_int("smtpd_client_auth_rate_limit");
  s.newtls_rate_limit = config.get_int("smtpd_client_new_tls_session_rate_limit");
  s.sasl_enable = config.get_bool("smtpd_sasl_auth_enable");
  s.tls_auth_only = config.get_bool("smtpd_tls_auth_only");
  s.broken_sasl_auth_clients = config.get_bool("broken_sasl_auth_clients");
  s.sasl_response_limit = config.get_int("smtpd_sasl_response_limit");
  return s;
}

void SmtpdSettings::warn_unimplemented(const config::Config& config) {
  static constexpr const char* kNotImplemented[] = {
      "smtpd_milters",         "smtpd_proxy_filter",          "smtpd_command_filter",
      "smtpd_reject_footer",   "smtpd_upstream_proxy_protocol", "smtpd_authorized_xclient_hosts",
      "smtpd_authorized_xforward_hosts",
  };
  for (const char* name : kNotImplemented) {
    std::string value;
    try {
      value = config.get(name);
    } catch (const config::ConfigError&) {
      continue;
    }
    if (!value.empty()) log::warning("%s is not implemented by this smtpd: ignoring \"%s = %s\"", name, name, value.c_str());
  }
}

}  // namespace mta::smtpd
