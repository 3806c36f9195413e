// smtpd_server.hpp: what all sessions of one smtpd process share: the
// settings, the access policy, the TLS and SASL contexts, the anvil
// client, and the list of live sessions (for "421 shutting down").
#pragma once

#include <memory>
#include <set>
#include <string>

#include "ipc/anvil_client.hpp"
#include "ipc/flush_client.hpp"
#include "maps/match_list.hpp"
#include "sasl/sasl_server.hpp"
#include "tls/tls_context.hpp"
#include "server/server.hpp"
#include "trivial-rewrite/interface_addresses.hpp"
#include "smtpd/smtpd_check.hpp"
#include "smtpd/smtpd_settings.hpp"

struct event_base;

namespace mta::smtpd {

class Session;
class DnsPool;

class Smtpd {
 public:
  Smtpd(server::ServerContext& ctx, SmtpdSettings settings, std::unique_ptr<sasl::ServerFactory> sasl,
        std::unique_ptr<tls::ServerContext> tls);
  ~Smtpd();

  server::ServerContext& context() { return ctx_; }
  struct event_base* base() { return ctx_.base; }
  const SmtpdSettings& settings() const { return settings_; }
  const config::Config& config() const { return ctx_.config; }
  // The access policy; null in stand-alone mode (sendmail -bs), where
  // Postfix applies no restrictions either.
  Checker* checker() { return checker_.get(); }
  bool stand_alone() const { return ctx_.stand_alone; }

  // TLS: the context (null when TLS is off or its set-up failed), and what
  // the configuration asks for even when the set-up failed.
  tls::ServerContext* tls() { return tls_.get(); }
  const tls::ServerContext* tls() const { return tls_.get(); }
  bool tls_offered() const { return tls_policy_.offered; }
  bool tls_required() const { return tls_policy_.encrypt_required; }
  bool tls_wrapper_mode() const { return tls_policy_.wrapper_mode; }
  long long starttls_timeout() const { return starttls_timeout_; }

  // SMTP AUTH, when smtpd_sasl_auth_enable is on (else null).
  sasl::ServerFactory* sasl() { return sasl_.get(); }
  // The per-client limits: a session's own connection to anvil (anvil
  // ties a connection count to the connection that reported it, so every
  // session needs one), or null when no limit is set or the client is in
  // smtpd_client_event_limit_exceptions.
  std::unique_ptr<ipc::AnvilClient> anvil_for(const SessionFacts& facts);

  // True when the client is exempt from smtpd_forbid_bare_newline.
  bool bare_newline_exempt(const SessionFacts& facts);
  // smtpd_authorized_verp_clients (and sendmail -bs): XVERP is offered and taken.
  bool verp_client(const SessionFacts& facts);
  const std::string& default_verp_delimiters() const { return verp_default_; }
  const std::string& verp_delimiter_filter() const { return verp_filter_; }
  // smtpd_forbidden_commands: an unknown command that ends the session.
  bool forbidden_command(std::string_view verb) const;
  // ETRN's client of the flush service; null when fast_flush_domains is
  // empty.
  const ipc::FlushClient* flush() const { return flush_.get(); }

  // The worker threads for blocking lookups (dns_pool.hpp).
  DnsPool& dns_pool() { return *dns_pool_; }
  // The worker threads for SASL steps (smtpd_auth.cpp), apart from the DNS
  // ones so that slow auth servers never hold up the sessions' lookups.
  DnsPool& sasl_pool() { return *sasl_pool_; }

  void add(Session* s) { sessions_.insert(s); }
  void remove(Session* s);
  // SIGTERM: every session gets 421 and the process leaves.
  void shutdown_all();
  std::string changed_table() const;

  // content_filter, for the envelope of every message.
  const std::string& content_filter() const { return content_filter_; }
  long long queue_minfree() const { return queue_minfree_; }
  // "local" or "remote": local_header_rewrite_clients.
  std::string rewrite_context(const SessionFacts& facts);

 private:
  server::ServerContext& ctx_;
  SmtpdSettings settings_;
  std::unique_ptr<Checker> checker_;
  std::unique_ptr<DnsPool> dns_pool_;
  std::set<Session*> sessions_;
  std::unique_ptr<sasl::ServerFactory> sasl_;
  std::unique_ptr<DnsPool> sasl_pool_;  // after sasl_: its workers stop first
  std::unique_ptr<tls::ServerContext> tls_;
  tls::ServerPolicy tls_policy_;
  long long starttls_timeout_ = 300;
  bool anvil_enabled_ = false;
  maps::HostList limit_exceptions_;
  maps::HostList bare_newline_exclusions_;
  maps::HostList verp_clients_;
  std::string verp_default_, verp_filter_;
  maps::MatchList forbidden_commands_;
  std::shared_ptr<const ipc::FlushClient> flush_;
  std::string content_filter_;
  long long queue_minfree_ = 0;
  std::vector<std::string> local_rewrite_clients_;
  rewrite::InterfaceAddresses interfaces_;
};

}  // namespace mta::smtpd
