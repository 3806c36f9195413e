// smtp: the SMTP and LMTP delivery agent (Postfix's smtp(8) and lmtp(8)).
//
// qmgr hands it one message and its recipients for one next hop at a time
// (lib/deliver's agent_session); the agent finds the servers, talks
// SMTP or LMTP to them and reports each recipient as sent, deferred or
// bounced, with Postfix's log lines:
//
//   QID: to=<r>, relay=host[addr]:port, delay=.., delays=a/b/c/d,
//       dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as XYZ)
//
// As in Postfix, the program name decides the protocol: started as "smtp"
// it speaks SMTP with the smtp_* parameters, whatever the service is called
// ("smtp", "relay"); under any other name (master.cf "lmtp unix - - y - -
// lmtp"; the build installs lmtp as a link to smtp) LMTP with the lmtp_*
// parameters.
// See smtp_client.hpp for what is implemented and what is not.
//
// usage: smtp [generic daemon options] (started by master)
#include <csignal>

#include "deliver/agent_session.hpp"
#include "dns/dnssec_probe.hpp"
#include "log/log.hpp"
#include "server/server.hpp"
#include "smtp/smtp_client.hpp"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<mta::smtp::Agent> agent;  // set up once, read-only configuration afterwards
  mta::server::SingleServer server;
  // As Postfix's smtp(8), before the chroot and while still root: the TLS
  // certificates and CA files, the SASL library and its plug-ins, and the
  // password and policy tables (sasl_passwd is usually root's, mode 0600).
  server.pre_init = [&](mta::server::ServerContext& ctx) {
    try {
      // As Postfix's smtp.c: any program name but "smtp" is LMTP.
      bool lmtp = ctx.program != "smtp";
      mta::smtp::Settings settings = mta::smtp::Settings::from_config(ctx.config, lmtp);
      std::unique_ptr<mta::tls::ClientContext> tls;
      if (settings.tls_level != mta::smtp::TlsLevel::none || !settings.tls_policy_maps.empty()) {
        std::string error;
        tls = mta::tls::ClientContext::create(ctx.config, settings.prefix, error);
      }
      agent = std::make_unique<mta::smtp::Agent>(std::move(settings), mta::deliver::ReporterConfig{}, std::move(tls));
      agent->set_service_name(ctx.service_name);
      mta::dns::process_dnssec_probe().set_spec(ctx.config.get("dnssec_probe"));
      ctx.table_changed = [&agent] { return agent->changed_table(); };
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  // After the chroot: queue_directory is then "/", where private/bounce is.
  server.post_init = [&](mta::server::ServerContext& ctx) {
    agent->set_reporter(mta::agent::reporter_config(ctx.config));
  };
  server.service = [&](int fd, mta::server::ServerContext& ctx) {
    mta::agent::serve_connection(fd, ctx.config, ctx.service_name + " socket",
                                 [&](mta::agent::Delivery& d) { return agent->deliver(d); }, ctx.next_request);
  };
  return mta::server::run_single_server(argc, argv, server);
}
