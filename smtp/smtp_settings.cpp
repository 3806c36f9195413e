// smtp_settings.cpp: the smtp/lmtp parameters (Settings::from_config) and
// Postfix's EHLO keyword masks (smtp_discard_ehlo_keywords).
#include <strings.h>

#include <array>
#include <cctype>

#include "log/log.hpp"
#include "smtp/smtp_client.hpp"

namespace mta::smtp {
namespace {

// ehlo_mask.c's table, in its order.
constexpr std::array<const char*, 15> kEhloNames = {
    "8BITMIME", "AUTH", "ETRN", "PIPELINING", "SIZE", "VERP", "VRFY", "XCLIENT",
    "XFORWARD", "STARTTLS", "DSN", "SILENT-DISCARD", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"};

}  // namespace

unsigned ehlo_mask(const std::string& words) {
  unsigned mask = 0;
  std::string word;
  auto flush = [&] {
    for (size_t i = 0; i < kEhloNames.size() && !word.empty(); ++i)
      if (strcasecmp(word.c_str(), kEhloNames[i]) == 0) mask |= 1u << i;
    word.clear();
  };
  for (char c : words) {
    if (c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r') flush();
    else word += c;
  }
  flush();
  return mask;
}

std::string ehlo_mask_text(unsigned mask) {
  std::string out;
  for (size_t i = 0; i < kEhloNames.size(); ++i) {
    if (!(mask & (1u << i))) continue;
    if (!out.empty()) out += ' ';
    out += kEhloNames[i];
  }
  return out;
}

Settings Settings::from_config(const config::Config& c, bool lmtp) {
  Settings s;
  s.lmtp = lmtp;
  s.prefix = lmtp ? "lmtp" : "smtp";
  auto p = [&](const char* suffix) { return s.prefix + "_" + suffix; };
  s.myhostname = c.get("myhostname");
  s.helo_name = c.get(lmtp ? "lmtp_lhlo_name" : "smtp_helo_name");
  s.relayhost = c.get("relayhost");
  s.def_service = lmtp ? c.get("lmtp_tcp_port") : "smtp";
  s.connect_timeout = c.get_time(p("connect_timeout"));
  s.helo_timeout = c.get_time(lmtp ? "lmtp_lhlo_timeout" : "smtp_helo_timeout");
  s.mail_timeout = c.get_time(p("mail_timeout"));
  s.rcpt_timeout = c.get_time(p("rcpt_timeout"));
  s.data_init_timeout = c.get_time(p("data_init_timeout"));
  s.data_xfer_timeout = c.get_time(p("data_xfer_timeout"));
  s.data_done_timeout = c.get_time(p("data_done_timeout"));
  s.quit_timeout = c.get_time(p("quit_timeout"));
  s.rset_timeout = c.get_time(p("rset_timeout"));
  s.starttls_timeout = c.get_time(p("starttls_timeout"));
  s.mx_address_limit = static_cast<int>(c.get_int(p("mx_address_limit")));
  s.mx_session_limit = static_cast<int>(c.get_int(p("mx_session_limit")));
  s.randomize_addresses = c.get_bool(p("randomize_addresses"));
  s.address_preference = c.get(p("address_preference"));
  s.skip_quit_response = c.get_bool(p("skip_quit_response"));
  s.skip_5xx_greeting = c.get_bool(p("skip_5xx_greeting"));
  if (!lmtp) s.never_ehlo = c.get_bool("smtp_never_send_ehlo");
  if (lmtp) s.lmtp_assume_final = c.get_bool("lmtp_assume_final");
  s.ignore_mx_lookup_error = c.get_bool("ignore_mx_lookup_error");
  s.line_length_limit = static_cast<size_t>(c.get_int(p("line_length_limit")));
  s.line_limit = static_cast<size_t>(c.get_int("line_length_limit"));

  // DNS: disable_dns_lookups, smtp_dns_support_level, smtp_host_lookup.
  std::string support = c.get(p("dns_support_level"));
  s.dns_enabled = !c.get_bool("disable_dns_lookups") && support != "disabled";
  if (support == "dnssec") log::warning("%s = dnssec: DNSSEC validation is not implemented; using plain DNS", p("dns_support_level").c_str());
  s.lookup_dns = s.lookup_native = false;
  for (const std::string& w : c.get_list(p("host_lookup"))) {
    if (w == "dns") s.lookup_dns = true;
    else if (w == "native") s.lookup_native = true;
    else log::fatal("bad %s value: %s", p("host_lookup").c_str(), w.c_str());
  }
  if (!s.dns_enabled) {
    s.lookup_dns = false;
    s.lookup_native = true;
  }
  // inet_protocols.
  s.ipv4 = s.ipv6 = false;
  for (const std::string& w : c.get_list("inet_protocols")) {
    if (w == "all") s.ipv4 = s.ipv6 = true;
    else if (w == "ipv4") s.ipv4 = true;
    else if (w == "ipv6") s.ipv6 = true;
  }

  unsigned discard = ehlo_mask(c.get(p(lmtp ? "discard_lhlo_keywords" : "discard_ehlo_keywords")));
  s.discard_ehlo = discard;
  unsigned silent = 1u << 11;
  if (discard && !(discard & silent)) s.discard_ehlo_text = "discarding EHLO keywords: " + ehlo_mask_text(discard);

  // TLS: the level, or the legacy use_tls/enforce_tls.
  std::string level = c.get(p("tls_security_level"));
  if (level.empty()) level = c.get_bool(p("enforce_tls")) ? "encrypt" : c.get_bool(p("use_tls")) ? "may" : "none";
  if (level == "none") s.tls_level = TlsLevel::none;
  else if (level == "may") s.tls_level = TlsLevel::may;
  else if (level == "encrypt") s.tls_level = TlsLevel::encrypt;
  else if (level == "dane") {
    log::warning("%s = dane: DANE is not implemented by this smtp client; acting as \"may\"", p("tls_security_level").c_str());
    s.tls_level = TlsLevel::may;
  } else if (level == "verify" || level == "secure" || level == "fingerprint" || level == "dane-only") {
    log::warning("%s = %s is not implemented by this smtp client: mail is deferred", p("tls_security_level").c_str(), level.c_str());
    s.tls_level = TlsLevel::unsupported;
  } else {
    log::fatal("Invalid TLS level \"%s\"", level.c_str());
  }
  s.tls_note_starttls_offer = c.get_bool(p("tls_note_starttls_offer"));
  s.tls_fingerprint_digest = c.get(p("tls_fingerprint_digest"));
  s.tls_servername = c.get(p("tls_servername"));

  // Set but not implemented: say so.
  // Set in main.cf or by -o: an explicit value, or one other than the default.
  auto configured = [&](const std::string& name) -> std::optional<std::string> {
    std::optional<std::string> raw = c.lookup(name);
    if (c.explicit_value(name) || (raw && raw != c.default_value(name))) return c.get(name);
    return std::nullopt;
  };
  auto warn_if_set = [&](const std::string& name) {
    std::optional<std::string> v = configured(name);
    if (v && !v->empty())
      log::warning("%s is not implemented by this %s client: ignoring \"%s = %s\"", name.c_str(), s.prefix.c_str(), name.c_str(),
                   v->c_str());
  };
  auto warn_if_yes = [&](const std::string& name) {
    if (configured(name) && c.get_bool(name))
      log::warning("%s is not implemented by this %s client: ignoring \"%s = yes\"", name.c_str(), s.prefix.c_str(), name.c_str());
  };
  warn_if_yes(p("sasl_auth_enable"));
  for (const char* name : {"sasl_password_maps", "fallback_relay", "connection_cache_destinations",
                           "generic_maps", "header_checks", "body_checks",
                           "mime_header_checks", "nested_header_checks", "bind_address", "bind_address6",
                           "tls_per_site", "pix_workaround_maps", "dns_reply_filter", "reply_filter",
                           "delivery_status_filter"})
    warn_if_set(p(name));
  warn_if_set(lmtp ? "lmtp_discard_lhlo_keyword_address_maps" : "smtp_discard_ehlo_keyword_address_maps");
  warn_if_yes(p("tls_wrappermode"));
  warn_if_yes(p("send_xforward_command"));
  warn_if_yes(p("connection_cache_on_demand"));
  warn_if_yes(p("sender_dependent_authentication"));
  return s;
}

}  // namespace mta::smtp
