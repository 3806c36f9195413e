// smtpd_server.cpp: see smtpd_server.hpp.
#include "smtpd/smtpd_server.hpp"

#include "deliver/delivery_status.hpp"
#include "log/log.hpp"
#include "smtpd/dns_pool.hpp"
#include "smtpd/smtpd_session.hpp"

namespace mta::smtpd {

Smtpd::Smtpd(server::ServerContext& ctx, SmtpdSettings settings, std::unique_ptr<sasl::ServerFactory> sasl,
             std::unique_ptr<tls::ServerContext> tls)
    : ctx_(ctx), settings_(std::move(settings)),
      checker_(ctx.stand_alone ? nullptr : std::make_unique<Checker>(ctx.config)),
      dns_pool_(std::make_unique<DnsPool>(ctx.base)), sasl_(std::move(sasl)),
      sasl_pool_(std::make_unique<DnsPool>(ctx.base)), tls_(std::move(tls)) {
  tls_policy_ = tls_ ? tls_->policy() : tls::ServerPolicy::from_config(ctx.config, "smtpd");
  starttls_timeout_ = std::max<long long>(1, ctx.config.get_time("smtpd_starttls_timeout"));
  // Postfix talks to anvil when any per-client limit is set (the
  // connection count limit is, by default).
  if (!ctx.stand_alone && (settings_.connection_count_limit > 0 || settings_.connection_rate_limit > 0 ||
      settings_.message_rate_limit > 0 || settings_.recipient_rate_limit > 0 ||
      settings_.auth_rate_limit > 0 || settings_.newtls_rate_limit > 0))
    anvil_enabled_ = true;
  limit_exceptions_ = maps::HostList("smtpd_client_event_limit_exceptions",
                                     ctx.config.get("smtpd_client_event_limit_exceptions"),
                                     maps::match_parent_style(ctx.config, "smtpd_client_event_limit_exceptions"));
  content_filter_ = ctx.config.get("content_filter");
  queue_minfree_ = ctx.config.get_int("queue_minfree");
  local_rewrite_clients_ = config::split_list(ctx.config.get("local_header_rewrite_clients"));
  interfaces_ = rewrite::InterfaceAddresses::from_config(ctx.config);
  for (const std::string& c : local_rewrite_clients_) {
    if (c != "permit_inet_interfaces" && c != "permit_mynetworks" && c != "permit_sasl_authenticated" &&
        c != "static:all")
      log::warning("local_header_rewrite_clients: \"%s\" is not implemented; ignored", c.c_str());
  }
  bare_newline_exclusions_ = maps::HostList("smtpd_forbid_bare_newline_exclusions",
                                            settings_.bare_newline_exclusions,
                                            maps::match_parent_style(ctx.config, "smtpd_forbid_bare_newline_exclusions"));
  verp_clients_ = maps::HostList("smtpd_authorized_verp_clients", ctx.config.get("smtpd_authorized_verp_clients"),
                                 maps::match_parent_style(ctx.config, "smtpd_authorized_verp_clients"));
  verp_default_ = ctx.config.get("default_verp_delimiters");
  verp_filter_ = ctx.config.get("verp_delimiter_filter");
  forbidden_commands_ = maps::MatchList("smtpd_forbidden_commands", ctx.config.get("smtpd_forbidden_commands"),
                                        maps::MatchList::Kind::string);
  flush_ = deliver::flush_client_from_config(ctx.config);
}

Smtpd::~Smtpd() = default;

void Smtpd::remove(Session* s) { sessions_.erase(s); }

void Smtpd::shutdown_all() {
  std::set<Session*> all = sessions_;
  for (Session* s : all) s->shutdown();
}

std::string Smtpd::changed_table() const { return checker_ ? checker_->changed_table() : std::string(); }

bool Smtpd::bare_newline_exempt(const SessionFacts& facts) {
  if (ctx_.stand_alone) return true;  // a local user's own submission
  maps::Match m = bare_newline_exclusions_.match(facts.client_name, facts.client_addr);
  if (m == maps::Match::error)
    log::warning("smtpd_forbid_bare_newline_exclusions: %s", bare_newline_exclusions_.error().c_str());
  return m == maps::Match::yes;
}

bool Smtpd::verp_client(const SessionFacts& facts) {
  // sendmail -bs: Postfix matches the local client as localhost/127.0.0.1.
  maps::Match m = ctx_.stand_alone ? verp_clients_.match("localhost", "127.0.0.1")
                                   : verp_clients_.match(facts.client_name, facts.client_addr);
  if (m == maps::Match::error)
    log::warning("smtpd_authorized_verp_clients: %s", verp_clients_.error().c_str());
  return m == maps::Match::yes;
}

std::unique_ptr<ipc::AnvilClient> Smtpd::anvil_for(const SessionFacts& facts) {
  if (!anvil_enabled_) return nullptr;
  maps::Match m = limit_exceptions_.match(facts.client_name, facts.client_addr);
  if (m == maps::Match::error)
    log::warning("smtpd_client_event_limit_exceptions: %s", limit_exceptions_.error().c_str());
  if (m == maps::Match::yes) return nullptr;
  return std::make_unique<ipc::AnvilClient>(settings_.queue_directory, "anvil", std::chrono::seconds(10));
}

bool Smtpd::forbidden_command(std::string_view verb) const {
  return forbidden_commands_.match(verb) == maps::Match::yes;
}

std::string Smtpd::rewrite_context(const SessionFacts& facts) {
  if (ctx_.stand_alone) return "local";
  for (const std::string& c : local_rewrite_clients_) {
    if (c == "static:all") return "local";
    if (c == "permit_inet_interfaces" && interfaces_.contains(facts.client_addr)) return "local";
    if (c == "permit_mynetworks" && checker_ && checker_->client_in_mynetworks(facts)) return "local";
    if (c == "permit_sasl_authenticated" && !facts.sasl_username.empty()) return "local";
  }
  return "remote";
}

}  // namespace mta::smtpd
