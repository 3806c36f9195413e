// qmgr: the queue manager (see queue_manager.hpp), a long-running trigger
// server: master's wakeup timer, cleanup's "new mail" and postqueue -f
// arrive as triggers on public/qmgr.
#include <memory>

#include "log/log.hpp"
#include "qmgr/queue_manager.hpp"
#include "server/server.hpp"

int main(int argc, char** argv) {
  static std::unique_ptr<mta::qmgr::QueueManager> manager;
  mta::server::TriggerServer s;
  s.long_running = true;
  s.post_init = [](mta::server::ServerContext& ctx) {
    try {
      manager = std::make_unique<mta::qmgr::QueueManager>(ctx);
      manager->start();
    } catch (const mta::config::ConfigError& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  s.trigger = [](std::string_view bytes, mta::server::ServerContext&) { manager->trigger(bytes); };
  s.pre_exit = [](mta::server::ServerContext&) { manager.reset(); };
  return mta::server::run_trigger_server(argc, argv, s);
}
