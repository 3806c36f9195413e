// pickup: the local mail pickup daemon, as Postfix 3.7's pickup(8).
//
// A trigger server (master.cf: "pickup unix n - y 60 1 pickup", woken up
// every 60 seconds by master and by postdrop after each submission).  On
// each wakeup it moves every complete maildrop file to the cleanup service
// (see maildrop_pickup.hpp).  It takes no command-line arguments of its own.
#include <ctime>
#include <memory>

#include "config/config.hpp"
#include "log/log.hpp"
#include "pickup/maildrop_pickup.hpp"
#include "queue/queue_dirs.hpp"
#include "server/server.hpp"

int main(int argc, char** argv) {
  std::unique_ptr<mta::pickup::MaildropPickup> pickup;
  mta::server::TriggerServer server;
  server.pre_init = [&pickup](mta::server::ServerContext& ctx) {
    try {
      mta::queue::QueueLayout configured = mta::queue::QueueLayout::from_config(ctx.config);
      // Before chroot: the passwd file is needed for mail_owner.  Paths are
      // relative to the queue directory, which is our working
      // directory (and our root when chrooted).
      std::vector<std::string> hashed;
      for (const std::string& q : ctx.config.get_list("hash_queue_names")) hashed.push_back(q);
      pickup = std::make_unique<mta::pickup::MaildropPickup>(
          mta::pickup::PickupSettings::from_config(ctx.config),
          mta::queue::QueueLayout(".", hashed, configured.hash_depth()));
    } catch (const mta::config::ConfigError& e) {
      mta::log::fatal("%s", e.what());
    }
    ::tzset();  // before chroot: the Received: date is local time
  };
  server.trigger = [&pickup](std::string_view, mta::server::ServerContext&) { pickup->scan(); };
  return mta::server::run_trigger_server(argc, argv, server);
}
