// server.hpp: the skeletons every daemon starts through, as Postfix's.
//
// A daemon is a main() that fills in callbacks and calls one of:
//   run_single_server   one client at a time per process (cleanup, local, ...)
//   run_multi_server    many clients per process, a callback per readable
//                       client (trivial-rewrite, ...)
//   run_trigger_server  wake-up triggers from a fifo or unix socket (pickup,
//                       qmgr)
// The skeleton parses the command line that master gives (see
// master_protocol.hpp) plus -o name=value, -v (more logging) and -D (stop
// in a debugger: logs the pid and waits for SIGCONT); loads main.cf from
// MAIL_CONFIG; sets up logging; chdirs to queue_directory; calls pre_init
// (still root: open what needs privileges); chroots and drops privileges to
// mail_owner when master.cf says so and it runs as root (refusing a
// mail_owner that is missing or has uid 0); calls post_init; and then
// serves until max_use clients, max_idle seconds without a client, or until
// master goes away.  Run by an ordinary user it skips chroot and setuid,
// so an instance runs unprivileged for development.
//
// -S (stand-alone, for tests): serve the connected socket on descriptor 0
// once and exit, without master.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

#include <event2/event.h>

namespace mta::server {

// A libevent event (timer, signal) freed with its owner.
struct EventDeleter {
  void operator()(struct event* ev) const {
    if (ev) event_free(ev);
  }
};
using EventPtr = std::unique_ptr<struct event, EventDeleter>;

struct ServerContext {
  std::string program;       // e.g. "cleanup"
  std::string service_name;  // master.cf service name, e.g. "cleanup"
  std::string service_type;  // inet unix fifo pass
  // The master.cf command words after the options (pipe's "flags=...
  // user=... argv=command ...").
  std::vector<std::string> attributes;
  config::Config config;     // with -o overrides applied
  struct event_base* base = nullptr;  // the process's event loop
  // -S: serving standard input once, without master (sendmail -bs).
  bool stand_alone = false;
  // Multi servers: how many clients are connected now (maintained by the skeleton).
  int clients = 0;
  // Ask the skeleton to stop after the current event (daemon found a reason).
  std::function<void()> request_exit;
  // Event servers (MultiServer::adopt): the daemon calls this when a client
  // it adopted is gone.
  std::function<void()> client_done;
  // Set by a daemon that uses lookup tables: the name of a table whose file
  // changed since it was opened, or "".  Checked after every client; the
  // process then exits so that master starts one that reads the new table
  // (Postfix: "table ... has changed -- restarting").
  std::function<std::string()> table_changed;
  // Single servers whose client may send several requests on one
  // connection (the delivery agents, with qmgr): called when a request is
  // done.  Waits for FD to become readable (the next request, or the
  // client's close); each request counts as one use toward max_use.  False: this process is to take
  // no more (max_use reached, a table changed, master is gone or has
  // reloaded, or max_idle passed without a request); the service then
  // returns and the skeleton closes the connection.
  std::function<bool(int fd)> next_request;
};

struct Callbacks {
  std::function<void(ServerContext&)> pre_init;   // root, before chroot and setuid
  std::function<void(ServerContext&)> post_init;  // after
  std::function<void(ServerContext&)> pre_exit;
  bool long_running = false;  // ignore max_idle and max_use (qmgr)
};

struct SingleServer : Callbacks {
  // Serves one connected client to the end; the skeleton closes fd after.
  std::function<void(int fd, ServerContext&)> service;
};

struct MultiServer : Callbacks {
  // Called when a client has data (or EOF); return false to close it.
  std::function<bool(int fd, ServerContext&)> readable;
  // Called when a client connects (may send a greeting); return false to refuse.
  std::function<bool(int fd, ServerContext&)> connected;
  std::function<void(int fd, ServerContext&)> disconnected;
  // An event server (smtpd): the daemon takes each connected descriptor
  // and serves it with its own events, calling ServerContext::client_done
  // when the client is gone; readable/connected/disconnected are then
  // unused.  max_clients (0 = no cap) is how many clients one process
  // serves at once: at the cap it stops accepting and tells master it is
  // busy, so that master starts another process as load grows.
  std::function<void(int fd, ServerContext&)> adopt;
  int max_clients = 0;
};

struct TriggerServer : Callbacks {
  // The bytes of one trigger (e.g. "W" from master's wakeup timer).
  std::function<void(std::string_view trigger, ServerContext&)> trigger;
};

int run_single_server(int argc, char** argv, const SingleServer& server);
int run_multi_server(int argc, char** argv, const MultiServer& server);
int run_trigger_server(int argc, char** argv, const TriggerServer& server);

}  // namespace mta::server
