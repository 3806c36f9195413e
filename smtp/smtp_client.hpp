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
//   the next server  a connection failure, a 4xx greeting or a 4xx reply
//                 to MAIL/RCPT/DATA keeps the recipients for the next
//                 address ("QID: host ... said: ..." at info level) unless
//                 it is the last one, where they are deferred;
//   the protocol  greeting, EHLO (HELO fallback) or LHLO, STARTTLS per
//                 smtp_tls_security_level none/may/encrypt with Postfix's
//                 log lines, MAIL FROM with SIZE, BODY=8BITMIME/7BIT,
//                 SMTPUTF8, RET and ENVID when the server offers DSN, RCPT
//                 TO with NOTIFY and ORCPT, PIPELINING (MAIL, RCPTs and
//                 DATA in one batch; "." and QUIT together), DATA with dot
//                 stuffing, CR LF and smtp_line_length_limit, QUIT; LMTP:
//                 one reply per accepted recipient after the final dot;
//   results       per recipient, through lib/deliver's StatusReporter, with
//                 Postfix's texts: "host H[A] said: 550 5.1.1 ... (in reply
//                 to RCPT TO command)", "connect to H[A]:P: Connection
//                 refused", "lost connection with H[A] while sending ...",
//                 "conversation with H[A] timed out while ...".
//
// Not implemented (a warning names each parameter that is set): SASL
// client, TLS levels verify/secure/fingerprint/dane-only (mail is deferred
// rather than sent without the verification asked for; dane acts as may),
// connection caching, smtp_fallback_relay, generic maps, header/body
// checks, XFORWARD, bind addresses, MIME 8bit-to-7bit downgrade (8-bit mail
// goes as is to servers without 8BITMIME), finding ourselves in the MX
// list, the per-destination "hop status" reply to qmgr.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "dns/dns_resolver.hpp"
#include "tls/tls_context.hpp"

namespace mta::smtp {

enum class TlsLevel { none, may, encrypt, unsupported };

struct Settings {
  bool lmtp = false;
  std::string prefix = "smtp";  // parameter name space: smtp_* or lmtp_*
  std::string helo_name;
  std::string myhostname;
  std::string relayhost;
  std::string def_service = "smtp";
  long long connect_timeout = 30, helo_timeout = 300, mail_timeout = 300, rcpt_timeout = 300;
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
  bool skip_5xx_greeting = true;
  bool never_ehlo = false;
  bool lmtp_assume_final = false;
  bool ignore_mx_lookup_error = false;
  size_t line_length_limit = 998;  // smtp_line_length_limit
  size_t line_limit = 2048;        // line_length_limit: reply lines
  unsigned discard_ehlo = 0;       // smtp_discard_ehlo_keywords as a mask
  std::string discard_ehlo_text;   // "discarding EHLO keywords: ..." or ""
  TlsLevel tls_level = TlsLevel::none;
  bool tls_note_starttls_offer = false;
  std::string tls_fingerprint_digest = "sha256";
  std::string tls_servername;  // SNI: "", "hostname", "nexthop" or a name

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
  const deliver::ReporterConfig& reporter() const { return reporter_; }

 private:
  Settings settings_;
  deliver::ReporterConfig reporter_;
  std::unique_ptr<tls::ClientContext> tls_;
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
