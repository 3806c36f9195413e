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

std::optional<TlsLevel> parse_tls_level(const std::string& level, const std::string& where) {
  if (level == "none") return TlsLevel::none;
  if (level == "may") return TlsLevel::may;
  if (level == "encrypt") return TlsLevel::encrypt;
  if (level == "verify") return TlsLevel::verify;
  if (level == "secure") return TlsLevel::secure;
  if (level == "dane") return TlsLevel::dane;
  if (level == "dane-only") return TlsLevel::dane_only;
  if (level == "fingerprint") {
    log::warning("%s = %s is not implemented by this smtp client: mail is deferred", where.c_str(), level.c_str());
    return TlsLevel::unsupported;
  }
  return std::nullopt;
}

TlsPolicy parse_tls_policy(const std::string& value, const std::string& key, const std::vector<std::string>& verify_match,
                           const std::vector<std::string>& secure_match) {
  TlsPolicy policy;
  std::vector<std::string> words;
  std::string w;
  for (char ch : value + " ") {
    if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\n' || ch == '\r') {
      if (!w.empty()) words.push_back(w);
      w.clear();
    } else {
      w += ch;
    }
  }
  if (words.empty()) {
    log::warning("%s: missing TLS security level", key.c_str());
    policy.invalid = true;
    return policy;
  }
  std::optional<TlsLevel> level = parse_tls_level(words[0], key);
  if (!level) {
    log::warning("%s: invalid TLS security level: \"%s\"", key.c_str(), words[0].c_str());
    policy.invalid = true;
    return policy;
  }
  policy.level = *level;
  if (policy.level == TlsLevel::verify) policy.match = verify_match;
  if (policy.level == TlsLevel::secure) policy.match = secure_match;
  for (size_t i = 1; i < words.size(); ++i) {
    size_t eq = words[i].find('=');
    std::string name = words[i].substr(0, eq);
    std::string val = eq == std::string::npos ? "" : words[i].substr(eq + 1);
    if (eq == std::string::npos) {
      log::warning("%s: malformed attribute/value pair: \"%s\"", key.c_str(), words[i].c_str());
      policy.invalid = true;
      return policy;
    }
    if (strcasecmp(name.c_str(), "match") == 0) {
      if (policy.level != TlsLevel::verify && policy.level != TlsLevel::secure) continue;  // ignored, as Postfix
      policy.match.clear();
      size_t pos = 0;
      while (pos <= val.size()) {
        size_t colon = val.find(':', pos);
        if (colon == std::string::npos) colon = val.size();
        if (colon > pos) policy.match.push_back(val.substr(pos, colon - pos));
        pos = colon + 1;
      }
    } else if (strcasecmp(name.c_str(), "protocols") == 0) {
      policy.overrides.protocols = val;
    } else if (strcasecmp(name.c_str(), "ciphers") == 0) {
      policy.overrides.ciphers = val;
    } else if (strcasecmp(name.c_str(), "exclude") == 0 || strcasecmp(name.c_str(), "tafile") == 0 ||
               strcasecmp(name.c_str(), "servername") == 0 || strcasecmp(name.c_str(), "connection_reuse") == 0 ||
               strcasecmp(name.c_str(), "enable_rpk") == 0) {
      log::warning("%s: TLS policy attribute \"%s\" is not implemented by this smtp client: ignored", key.c_str(),
                   name.c_str());
    } else {
      log::warning("%s: invalid attribute name: \"%s\"", key.c_str(), name.c_str());
      policy.invalid = true;
      return policy;
    }
  }
  return policy;
}

Settings Settings::from_config(const config::Config& c, bool lmtp) {
  Settings s;
  s.lmtp = lmtp;
  s.prefix = lmtp ? "lmtp" : "smtp";
  auto p = [&](const char* suffix) { return s.prefix + "_" + suffix; };
  s.myhostname = c.get("myhostname");
  s.helo_name = c.get(lmtp ? "lmtp_lhlo_name" : "smtp_helo_name");
  s.relayhost = c.get("relayhost");
  if (!lmtp)
    for (const std::string& w : c.get_list("smtp_fallback_relay")) s.fallback_relay.push_back(w);
  s.def_service = c.get(lmtp ? "lmtp_tcp_port" : "smtp_tcp_port");
  s.connect_timeout = c.get_time(p("connect_timeout"));
  s.min_backoff = c.get_time("minimal_backoff_time");
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
  s.helpful_warnings = c.get_bool("helpful_warnings");
  s.skip_5xx_greeting = c.get_bool(p("skip_5xx_greeting"));
  if (!lmtp) s.never_ehlo = c.get_bool("smtp_never_send_ehlo");
  if (lmtp) s.lmtp_assume_final = c.get_bool("lmtp_assume_final");
  s.ignore_mx_lookup_error = c.get_bool("ignore_mx_lookup_error");
  s.line_length_limit = static_cast<size_t>(c.get_int(p("line_length_limit")));
  s.line_limit = static_cast<size_t>(c.get_int("line_length_limit"));
  s.mime_output_conversion = !c.get_bool("disable_mime_output_conversion");

  // DNS: disable_dns_lookups, smtp_dns_support_level, smtp_host_lookup.
  std::string support = c.get(p("dns_support_level"));
  s.dns_enabled = !c.get_bool("disable_dns_lookups") && support != "disabled";
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
  if (level.empty())
    level = c.get_bool(p("enforce_tls")) ? (c.get_bool(p("tls_enforce_peername")) ? "verify" : "encrypt")
            : c.get_bool(p("use_tls"))   ? "may"
                                         : "none";
  std::optional<TlsLevel> parsed = parse_tls_level(level, p("tls_security_level"));
  if (!parsed) log::fatal("Invalid TLS level \"%s\"", level.c_str());
  s.tls_level = *parsed;
  auto match_list = [&](const std::string& name) {
    std::vector<std::string> out;
    std::string v = c.get(name), w;
    for (char ch : v + " ") {
      if (ch == ' ' || ch == '\t' || ch == ',' || ch == ':' || ch == '\n' || ch == '\r') {
        if (!w.empty()) out.push_back(w);
        w.clear();
      } else {
        w += ch;
      }
    }
    return out;
  };
  s.tls_verify_match = match_list(p("tls_verify_cert_match"));
  s.tls_secure_match = match_list(p("tls_secure_cert_match"));
  s.tls_policy_maps = c.get(p("tls_policy_maps"));
  s.dane = dane::Settings::from_config(c, s.prefix);
  s.tls_note_starttls_offer = c.get_bool(p("tls_note_starttls_offer"));
  s.tls_fingerprint_digest = c.get(p("tls_fingerprint_digest"));
  s.tls_servername = c.get(p("tls_servername"));

  // SASL client.
  s.sasl_enable = c.get_bool(p("sasl_auth_enable"));
  s.sasl_password_maps = c.get(p("sasl_password_maps"));
  s.sasl_auth_soft_bounce = c.get_bool(p("sasl_auth_soft_bounce"));
  s.sender_dependent_auth = !lmtp && c.get_bool(p("sender_dependent_authentication"));
  s.cyrus_sasl_config_path = c.get("cyrus_sasl_config_path");
  s.recipient_delimiter = c.get("recipient_delimiter");
  for (const std::string& w : c.get_list(p("sasl_mechanism_filter"))) s.sasl_mech_filter.push_back(w);
  if (s.sasl_enable) {
    std::string error;
    if (!sasl::parse_security_options(c.get(p("sasl_security_options")), p("sasl_security_options"), s.sasl_opts, error) ||
        !sasl::parse_security_options(c.get(p("sasl_tls_security_options")), p("sasl_tls_security_options"),
                                      s.sasl_tls_opts, error) ||
        !sasl::parse_security_options(c.get(p("sasl_tls_verified_security_options")),
                                      p("sasl_tls_verified_security_options"), s.sasl_tlsv_opts, error))
      log::fatal("%s", error.c_str());
    if (c.get(p("sasl_type")) != "cyrus") {
      log::warning("unsupported SASL client implementation: %s", c.get(p("sasl_type")).c_str());
      log::fatal("SASL library initialization");
    }
  }

  // Connection cache (scache).
  s.cache_on_demand = c.get_bool(p("connection_cache_on_demand"));
  s.cache_destinations = c.get(p("connection_cache_destinations"));
  s.cache_time_limit = c.get_time(p("connection_cache_time_limit"));
  s.reuse_time_limit = c.get_time(p("connection_reuse_time_limit"));
  s.reuse_count_limit = static_cast<int>(c.get_int(p("connection_reuse_count_limit")));
  s.scache_service = c.get("connection_cache_service_name");
  s.scache_timeout = c.get_time("connection_cache_protocol_timeout");

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
  if (s.sasl_enable) warn_if_set(p("sasl_auth_cache_name"));
  for (const char* name : {"generic_maps", "header_checks", "body_checks",
                           "mime_header_checks", "nested_header_checks", "bind_address", "bind_address6",
                           "tls_per_site", "pix_workaround_maps", "dns_reply_filter", "reply_filter",
                           "delivery_status_filter"})
    warn_if_set(p(name));
  warn_if_set(lmtp ? "lmtp_discard_lhlo_keyword_address_maps" : "smtp_discard_ehlo_keyword_address_maps");
  warn_if_yes(p("tls_wrappermode"));
  warn_if_yes(p("send_xforward_command"));
  // TLS connection reuse needs tlsproxy(8), which does not exist here:
  // TLS sessions are never cached (plaintext ones are).
  if (configured(p("tls_connection_reuse")) && c.get_bool(p("tls_connection_reuse")))
    log::warning("%s is not implemented by this %s client (no tlsproxy): TLS connections are not reused; ignoring \"%s = yes\"",
                 p("tls_connection_reuse").c_str(), s.prefix.c_str(), p("tls_connection_reuse").c_str());
  return s;
}

}  // namespace mta::smtp
