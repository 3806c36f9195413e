// local: the Postfix-compatible local delivery agent (local(8)).
//
// Usage: local [generic daemon options]   (started by master, unpriv = n)
//
// Delivers mail for the local domains that qmgr hands it: aliases
// (alias_maps), ~/.forward files (forward_path), "|command", "/file/name"
// and ":include:" destinations, and mailboxes: mbox files in
// mail_spool_directory or home_mailbox (locked per mailbox_delivery_lock),
// maildirs (home_mailbox ending in /), or mailbox_command.  Files and
// commands run with the rights of the recipient (or of the alias table or
// include file owner, or default_privs); between deliveries the process
// acts as mail_owner.  Results go to the bounce, defer and trace services
// and to the log, in Postfix's words.  See local_agent.hpp for the order
// of the delivery methods.
#include <signal.h>

#include <memory>
#include <optional>

#include "ipc/dict_proxy.hpp"
#include "local/delivery_service.hpp"
#include "local/local_settings.hpp"
#include "local/mail_services.hpp"
#include "deliver/user_privileges.hpp"
#include "log/log.hpp"
#include "server/server.hpp"

int main(int argc, char** argv) {
  mta::ipc::register_proxy_tables();  // proxy:TYPE:NAME tables, via private/proxymap
  using namespace mta;
  std::optional<local::Settings> settings;
  std::unique_ptr<local::AddressResolver> resolver;

  server::SingleServer srv;
  srv.pre_init = [&](server::ServerContext& ctx) {
    try {
      settings = local::load_settings(ctx.config, ctx.service_name);
    } catch (const config::ConfigError& e) {
      log::fatal("%s", e.what());
    }
    ::signal(SIGXFSZ, SIG_IGN);
  };
  srv.post_init = [&](server::ServerContext& ctx) {
    // Root most of the time only in name: mail_owner's rights until a
    // delivery needs a recipient's.
    if (local::can_switch_ids()) local::set_resting_ids(settings->owner_uid, settings->owner_gid);
    resolver = std::make_unique<local::AddressResolver>(*settings);
    ctx.table_changed = [&]() -> std::string {
      for (const maps::DictPtr& d : settings->alias_maps.dicts())
        if (d->has_changed()) return d->spec();
      return {};
    };
  };
  srv.service = [&](int fd, server::ServerContext& ctx) {
    local::serve_delivery_request(fd, *settings, *resolver, ctx.next_request);
  };
  return server::run_single_server(argc, argv, srv);
}
