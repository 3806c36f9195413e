// smtp_client.hpp: the smtp(8) and lmtp(8) delivery agent's logic, as
// Postfix 3.7's smtp_connect.c, smtp_addr.c, smtp_proto.c, smtp_trouble.c:
//
//   destination   next hop from qmgr: "domain" (MX lookup: preference
//                 order, equal preferences shuffled, A/AAAA when there is
//                 no MX, a null MX bounces with 5.1.0), "[host]",
//                 "[host]:port", "host:port"; LMTP: "unix:/path",
//                 "inet:host:port", "host" (lmtp_tcp_port, no MX);
//                 smtp_host_lookup (dns, native), disable_dns_lookups,
//                 inet_protocols, smtp_mx_address_limit and
//                 smtp_mx_session_limit, smtp_randomize_addresses,
//                 smtp_address_preference;
//   fallback      smtp_fallback_relay: tried after the next hop's servers
//                 when recipients are left (soft errors, unreachable or
//                 unknown next hop); a hard error from it is made 4.3.5
//                 ("smtp_fallback_relay configuration problem");
//   the next server  a connection failure, a 4xx greeting or a 4xx reply
//                 to MAIL/RCPT/DATA keeps the recipients for the next
//                 address ("QID: host ... said: ..." at info level) unless
//                 it is the last one, where they are deferred;
//   TLS policy    smtp_tls_security_level, or per destination
//                 smtp_tls_policy_maps (the next hop as given, then its
//                 parent domains as ".domain"; attributes match=,
//                 protocols=, ciphers=): none, may, encrypt, verify
//                 (smtp_tls_verify_cert_match), secure
//                 (smtp_tls_secure_cert_match); names are checked by
//                 OpenSSL against smtp_tls_CAfile/CApath; an untrusted or
//                 mismatched certificate defers with 4.7.5 "Server
//                 certificate not verified" (3.7's text for both) after the
//                 "certificate verification failed" line; a bad policy
//                 entry defers without connecting (relay=none, 4.7.5
//                 "client TLS configuration problem"); "Verified"/"Trusted"/
//                 "Untrusted TLS connection established to ..." lines;
//   the protocol  greeting, EHLO (HELO fallback) or LHLO, STARTTLS per
//                 the TLS policy with Postfix's log lines, MAIL FROM with SIZE, BODY=8BITMIME/7BIT,
//                 SMTPUTF8, RET and ENVID when the server offers DSN, RCPT
//                 TO with NOTIFY and ORCPT, PIPELINING (MAIL, RCPTs and
//                 DATA in one batch; "." and QUIT together), DATA with dot
//                 stuffing, CR LF and smtp_line_length_limit, QUIT; LMTP:
//                 (8-bit MIME content goes out as quoted-printable when
//                 the server lacks 8BITMIME: disable_mime_output_conversion,
//                 lib/mime's downgrade; SIZE is then not announced);
//                 one reply per accepted recipient after the final dot;
//   SASL          smtp_sasl_auth_enable: AUTH after EHLO (after STARTTLS
//                 when TLS is used) when smtp_sasl_password_maps has
//                 "user:password" for the sender (with
//                 smtp_sender_dependent_authentication), the server's host
//                 name or the next hop as given ("[host]:port"); libsasl2
//                 picks the mechanism from the server's list, filtered by
//                 smtp_sasl_mechanism_filter, under
//                 smtp_sasl_security_options (plain text),
//                 smtp_sasl_tls_security_options (TLS) or
//                 smtp_sasl_tls_verified_security_options (verified TLS);
//                 failures defer ("SASL authentication failed; server H[A]
//                 said: 535 ...", 5xx made 4xx by smtp_sasl_auth_soft_bounce);
//   results       per recipient, through lib/deliver's StatusReporter, with
//                 Postfix's texts: "host H[A] said: 550 5.1.1 ... (in reply
//                 to RCPT TO command)", "connect to H[A]:P: Connection
//                 refused", "lost connection with H[A] while sending ...",
//                 "conversation with H[A] timed out while ...".
//
//   connection cache  (smtp_connect.c, smtp_reuse.c) with
//                 smtp_connection_cache_on_demand and qmgr's
//                 DEL_REQ_FLAG_CONN_LOAD/STORE, or always for the domains
//                 in smtp_connection_cache_destinations: before connecting,
//                 a connection saved under the next hop, then under each
//                 best-MX address (a backup MX: its address), probed with
//                 RSET; after a transaction a good plaintext session stays
//                 open (no QUIT) and goes to scache(8) under its address
//                 (the first one also under the next hop) for
//                 smtp_connection_cache_time_limit, until
//                 smtp_connection_reuse_time_limit after it was opened or
//                 smtp_connection_reuse_count_limit uses; the log line says
//                 "conn_use=N".  As Postfix 3.7 without tlsproxy, no TLS
//                 session and no SASL-authenticated session is cached, and
//                 nothing is looked up when the TLS level is not "none".
//
// Not implemented (a warning names each parameter that is set): the SASL
// 535 cache (smtp_sasl_auth_cache_name), smtp_sasl_type dovecot, TLS level
// fingerprint (mail is deferred rather than sent without the verification
// asked for; dane and dane-only: smtp_dane.hpp), TLS policy attributes other
// than match/protocols/ciphers, reuse of TLS connections
// (smtp_tls_connection_reuse, which needs tlsproxy(8)), generic maps, header/body checks, XFORWARD,
// bind addresses, MIME 8bit-to-7bit downgrade (8-bit mail goes as is to
// servers without 8BITMIME), finding ourselves in the MX list, the
// per-destination "hop status" reply to qmgr.
#pragma once

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "dns/dns_resolver.hpp"
#include "ipc/scache_client.hpp"
#include "maps/maps.hpp"
#include "maps/match_list.hpp"
#include "sasl/security_options.hpp"
#include "tls/tls_context.hpp"
#include "smtp/smtp_dane.hpp"

namespace mta::smtp {

// In Postfix's order; "unsupported" (fingerprint, dane-only, an invalid
// policy) defers the mail: "client TLS configuration problem".
enum class TlsLevel { none, may, encrypt, verify, secure, unsupported, dane, dane_only };  // dane*: resolved per host (smtp_dane.hpp)

// A level name as main.cf and smtp_tls_policy_maps spell it; nullopt when
// unknown.  Warns (naming `where`) for the levels that are not implemented.
std::optional<TlsLevel> parse_tls_level(const std::string& name, const std::string& where);

// One destination's TLS policy: the level, the certificate match patterns
// (verify, secure) and the "protocols="/"ciphers=" overrides.
struct TlsPolicy {
  TlsLevel level = TlsLevel::none;
  bool invalid = false;  // a bad policy entry: no connection, 4.7.5
  std::vector<std::string> match;
  tls::SessionOverrides overrides;
};

// Parses a smtp_tls_policy_maps value ("verify match=a:b protocols=...").
// Unknown attributes and levels are warned about (`where` names the table
// and the key, as Postfix) and make the policy invalid.
TlsPolicy parse_tls_policy(const std::string& value, const std::string& key, const std::vector<std::string>& verify_match,
                           const std::vector<std::string>& secure_match);

struct Settings {
  bool lmtp = false;
  std::string prefix = "smtp";  // parameter name space: smtp_* or lmtp_*
  std::string helo_name;
  std::string myhostname;
  std::string relayhost;
  std::vector<std::string> fallback_relay;  // smtp_fallback_relay (SMTP only)
  std::string def_service = "smtp";
  long long connect_timeout = 30, helo_timeout = 300, mail_timeout = 300, rcpt_timeout = 300;
  long long min_backoff = 300;  // minimal_backoff_time: plaintext after a failed handshake only then
  long long data_init_timeout = 120, data_xfer_timeout = 180, data_done_timeout = 600;
  long long quit_timeout = 300, rset_timeout = 20, starttls_timeout = 300;
  int mx_address_limit = 5;
  int mx_session_limit = 2;
  bool lookup_dns = true;     // smtp_host_lookup has dns (and DNS is not disabled)
  bool lookup_native = false;  // smtp_host_lookup has native
  bool dns_enabled = true;     // MX lookups: not disable_dns_lookups, smtp_dns_support_level != disabled
  bool ipv4 = true, ipv6 = true;
  std::string address_preference = "any";
  bool randomize_addresses = true;
  bool skip_quit_response = true;
  bool helpful_warnings = true;
  bool skip_5xx_greeting = true;
  bool never_ehlo = false;
  bool lmtp_assume_final = false;
  bool ignore_mx_lookup_error = false;
  size_t line_length_limit = 998;  // smtp_line_length_limit
  size_t line_limit = 2048;        // line_length_limit: reply lines
  // 8-bit to 7-bit MIME conversion for servers without 8BITMIME.
  // The MIME limits (header_size_limit, mime_nesting_limit,
  // mime_boundary_length_limit) are cleanup's and smtpd's: the real smtp,
  // given mime_nesting_limit = 1, still converts parts three levels deep
  // (tests/integration/smtp_mime_conv.sh), so lib/mime's defaults are used.
  bool mime_output_conversion = true;  // not disable_mime_output_conversion
  unsigned discard_ehlo = 0;       // smtp_discard_ehlo_keywords as a mask
  std::string discard_ehlo_text;   // "discarding EHLO keywords: ..." or ""
  TlsLevel tls_level = TlsLevel::none;
  bool tls_note_starttls_offer = false;
  std::string tls_fingerprint_digest = "sha256";
  std::string tls_servername;  // SNI: "", "hostname", "nexthop" or a name
  std::vector<std::string> tls_verify_match;  // smtp_tls_verify_cert_match
  std::vector<std::string> tls_secure_match;  // smtp_tls_secure_cert_match
  std::string tls_policy_maps;                // smtp_tls_policy_maps
  dane::Settings dane;                        // DANE: smtp_dns_support_level and friends

  // SASL client (smtp_sasl_*).
  bool sasl_enable = false;
  std::string sasl_password_maps;
  sasl::SecurityOptions sasl_opts, sasl_tls_opts, sasl_tlsv_opts;
  std::vector<std::string> sasl_mech_filter;  // empty: the server's list as is
  bool sasl_auth_soft_bounce = true;
  bool sender_dependent_auth = false;
  std::string cyrus_sasl_config_path;
  std::string recipient_delimiter;

  // Connection cache.
  bool cache_on_demand = true;            // smtp_connection_cache_on_demand
  std::string cache_destinations;         // smtp_connection_cache_destinations
  long long cache_time_limit = 2;         // smtp_connection_cache_time_limit (ttl in scache)
  long long reuse_time_limit = 300;       // smtp_connection_reuse_time_limit
  int reuse_count_limit = 0;              // smtp_connection_reuse_count_limit (0: none)
  std::string scache_service = "scache";  // connection_cache_service_name
  long long scache_timeout = 5;           // connection_cache_protocol_timeout

  // Reads main.cf (with -o overrides) in the smtp_* or lmtp_* name space;
  // warns about the parameters that are set but not implemented.
  static Settings from_config(const config::Config& config, bool lmtp);
};

// EHLO keywords (Postfix's ehlo_mask names, in its order).
unsigned ehlo_mask(const std::string& words);
std::string ehlo_mask_text(unsigned mask);

class Agent {
 public:
  Agent(Settings settings, deliver::ReporterConfig reporter, std::unique_ptr<tls::ClientContext> tls);
  // One delivery request: returns 0 when every recipient is finished, -1 otherwise.
  int deliver(agent::Delivery& delivery);

  const Settings& settings() const { return settings_; }
  dns::Resolver& resolver() { return resolver_; }
  std::mt19937& rng() { return rng_; }
  tls::ClientContext* tls() { return tls_.get(); }
  const maps::Maps& sasl_passwd() const { return sasl_passwd_; }
  const maps::Maps& tls_policy() const { return tls_policy_; }
  const deliver::ReporterConfig& reporter() const { return reporter_; }
  // After the chroot, where queue_directory is "/" (the status services).
  void set_reporter(deliver::ReporterConfig reporter) { reporter_ = std::move(reporter); }
  // A table that changed since it was opened (the skeleton restarts), or "".
  std::string changed_table() const;

  // Connection caching: the master.cf service name (part of the cache
  // labels), smtp_connection_cache_destinations, and the scache client
  // (connected on first use, under the queue directory the reporter uses).
  void set_service_name(std::string name) { service_name_ = std::move(name); }
  const std::string& service_name() const { return service_name_; }
  const maps::MatchList& cache_destinations() const { return cache_dest_; }
  bool scache_enabled() const { return !scache_ || !scache_->disabled(); }
  ipc::ScacheClient* scache();

 private:
  Settings settings_;
  deliver::ReporterConfig reporter_;
  std::unique_ptr<tls::ClientContext> tls_;
  maps::Maps sasl_passwd_;  // smtp_sasl_password_maps, when SASL is on
  maps::Maps tls_policy_;   // smtp_tls_policy_maps
  maps::MatchList cache_dest_;  // smtp_connection_cache_destinations
  std::string service_name_ = "smtp";
  std::unique_ptr<ipc::ScacheClient> scache_;
  dns::Resolver resolver_;
  std::mt19937 rng_;
};

// One server address of a next hop.
struct ServerAddress {
  std::string host;  // the name we looked up ("mx1.example.com", or the literal address)
  std::string addr;  // printable address
  int family = 0;    // AF_INET, AF_INET6
  unsigned pref = 0;
};

}  // namespace mta::smtp
