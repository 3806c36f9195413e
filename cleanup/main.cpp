// cleanup: canonicalizes and enqueues a message, as Postfix 3.7's
// cleanup(8); a single server on public/cleanup (master.cf:
// "cleanup unix n - y - 0 cleanup").
//
// The conversation (Postfix's cleanup protocol, so that Postfix's pickup
// and smtpd can use us and ours can use Postfix's cleanup):
//   server: {protocol=cleanup_protocol, queue_id=ID}
//   client: {flags=N}, then queue-file records through the end record E
//   server: {status=N, reason=TEXT}   (after the queue file is on disk)
// Then, ours only, a client may ask for the next message on the same
// connection: {request=next_message}, and the conversation starts again
// with a new queue ID (smtpd keeps its connection between messages, as
// qmgr keeps its agents'); each message counts toward max_use, and a
// process that is to take no more (max_use, a changed table, a reload)
// closes instead, as does one that hears nothing for max_idle.
// What happens to the message is in cleanup_session.hpp.  A client that
// goes away early, or sends something that is not a record, gets its
// message thrown away (status "internal protocol error" if it still
// listens).  SIGTERM (postfix stop) removes an unfinished queue file.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "cleanup/address_mapping.hpp"
#include "cleanup/address_rewriting.hpp"
#include "cleanup/cleanup_session.hpp"
#include "cleanup/record_stream.hpp"
#include "config/config.hpp"
#include "ipc/dict_proxy.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "server/server.hpp"
#include "trivial-rewrite/local_domains.hpp"

namespace {

// The queue file being written, for the SIGTERM handler.
char g_path[4096];
volatile sig_atomic_t g_have_path = 0;

void on_sigterm(int sig) {
  if (g_have_path) ::unlink(g_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct Daemon {
  mta::cleanup::CleanupSettings settings;
  std::unique_ptr<mta::queue::QueueLayout> layout;
  std::unique_ptr<mta::cleanup::TrivialRewriteClient> rewriter;
  std::unique_ptr<mta::rewrite::LocalDomains> local_domains;  // resolve_local() for table lookups
  mta::cleanup::AddressMapper mapper;  // canonical, masquerading, virtual aliases, bcc
  std::unique_ptr<mta::cleanup::BounceClient> bounce;
  std::unique_ptr<mta::cleanup::BounceClient> trace;
  size_t max_record = 0;

  void serve(int fd, mta::server::ServerContext& ctx);
  bool serve_message(mta::ipc::Channel& ch);
};

void Daemon::serve(int fd, mta::server::ServerContext& ctx) {
  mta::ipc::Channel ch = mta::ipc::server_channel(fd, "cleanup socket");
  while (serve_message(ch) && ctx.next_request && ctx.next_request(fd)) {
    mta::ipc::proto::CleanupNext next;
    if (!ch.read(next).ok()) break;  // not ours to understand: the client goes
  }
}

// One message; true when its conversation ended as it should (the reply
// is out), so that the client may ask for another.
bool Daemon::serve_message(mta::ipc::Channel& ch) {
  mta::cleanup::CleanupSession session(settings, *layout, *rewriter, mapper, bounce.get());
  session.set_trace_client(trace.get());
  std::string error;
  if (!session.open(&error)) {
    mta::log::warning("%s", error.c_str());
    return false;
  }
  std::snprintf(g_path, sizeof g_path, "%s", session.file_path().c_str());
  g_have_path = 1;

  mta::ipc::Status st = ch.write(mta::ipc::proto::CleanupHello{session.queue_id()});
  if (st.ok()) st = ch.flush();
  mta::ipc::proto::CleanupOpen open;
  if (st.ok()) st = ch.read(open);
  if (!st.ok()) {
    session.protocol_error();
    open.flags = 0;
  }
  session.control(open.flags);

  char type = 0;
  std::string data;
  bool clean_read = st.ok();
  while (clean_read && session.accepting()) {
    mta::message::RecordStatus rs = mta::message::read_record(ch.stream(), ch.name(), max_record, &type, &data, &error);
    if (rs != mta::message::RecordStatus::ok) {
      if (rs == mta::message::RecordStatus::error) mta::log::warning("%s", error.c_str());
      session.protocol_error();
      clean_read = false;
      break;
    }
    session.record(type, data);
    if (type == 'E') break;
  }
  // Keep reading after a problem until the client is ready for our answer.
  while (clean_read && type != 'E') {
    if (mta::message::read_record(ch.stream(), ch.name(), max_record, &type, &data, &error) !=
        mta::message::RecordStatus::ok)
      break;
  }
  if (ch.stream().timed_out())
    mta::log::warning("%s: read timeout on %s", session.queue_id().c_str(), ch.name().c_str());

  int status = session.finish();
  g_have_path = 0;
  bool timed_out = ch.stream().timed_out();
  ch.stream().clear_state();
  mta::ipc::Status sent = mta::ipc::reply(ch, mta::ipc::proto::CleanupReply{status, session.reason()});
  return clean_read && type == 'E' && !timed_out && sent.ok();
}

}  // namespace

int main(int argc, char** argv) {
  mta::ipc::register_proxy_tables();  // proxy:TYPE:NAME tables, via private/proxymap
  Daemon daemon;
  mta::server::SingleServer server;
  server.pre_init = [&daemon](mta::server::ServerContext& ctx) {
    try {
      daemon.settings = mta::cleanup::CleanupSettings::from_config(ctx.config);
      mta::queue::QueueLayout configured = mta::queue::QueueLayout::from_config(ctx.config);
      // Relative paths: the queue directory is our working directory, and
      // our root when chrooted.
      daemon.layout = std::make_unique<mta::queue::QueueLayout>(".", ctx.config.get_list("hash_queue_names"),
                                                                configured.hash_depth());
      daemon.rewriter = std::make_unique<mta::cleanup::TrivialRewriteClient>(ctx.config.get("rewrite_service_name"));
      daemon.bounce = mta::cleanup::make_bounce_client(ctx.config.get("bounce_service_name"));
      daemon.trace = mta::cleanup::make_bounce_client(ctx.config.get("trace_service_name"));
      daemon.local_domains = std::make_unique<mta::rewrite::LocalDomains>(ctx.config);
      daemon.mapper = mta::cleanup::AddressMapper(ctx.config, *daemon.rewriter, *daemon.local_domains);
      ctx.table_changed = [&daemon] {
        std::string t = daemon.mapper.changed_table();
        if (t.empty() && daemon.settings.checks) t = daemon.settings.checks->changed_table();
        return t;
      };
      daemon.max_record = std::max<size_t>(daemon.settings.line_limit, size_t{1} << 20);
      // Postfix's input flow control (a token from qmgr per message, waited
      // for up to in_flow_delay) is not implemented: say so when an
      // administrator set it, rather than ignore it silently.
      if (ctx.config.explicit_value("in_flow_delay") && ctx.config.get_time("in_flow_delay") > 0)
        mta::log::warning("in_flow_delay is not implemented: cleanup does not slow down submissions "
                          "while qmgr falls behind");
    } catch (const mta::config::ConfigError& e) {
      mta::log::fatal("%s", e.what());
    }
    ::signal(SIGTERM, on_sigterm);
    ::tzset();  // before chroot: Date: and Received: use local time
  };
  server.service = [&daemon](int fd, mta::server::ServerContext& ctx) { daemon.serve(fd, ctx); };
  return mta::server::run_single_server(argc, argv, server);
}
