// trivial-rewrite: the address rewriting and resolving daemon (Postfix's
// trivial-rewrite(8)), a multi server: each client (cleanup, qmgr, smtpd,
// ...) keeps one connection and asks, one request at a time:
//
//   {request=rewrite, rule=local|remote, address=EXTERNAL}
//       -> {flags=0, address=REWRITTEN}
//   {request=resolve|verify, sender=INTERNAL, address=INTERNAL}
//       -> {flags=0, transport, nexthop, recipient, flags=CLASS|...}
//
// after the announcement {protocol=trivial_rewrite_protocol} (see
// ipc/attr.hpp).  A malformed request, an unknown request or rule drops
// the client, as Postfix does.  What the answers are is engine.hpp's.
// Every 10 seconds the process checks its lookup tables and exits when one
// changed, so that master starts one that reads it ("table ... has changed
// -- restarting").
//
// usage: trivial-rewrite [generic daemon options] (started by master)
#include <event2/event.h>

#include <map>
#include <memory>

#include "ipc/dict_proxy.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "server/server.hpp"
#include "trivial-rewrite/engine.hpp"

namespace proto = mta::ipc::proto;
using mta::ipc::Channel;
using mta::ipc::Errc;
using mta::ipc::Status;

namespace {

// The process: the engine (read-only after start-up) and the connected
// clients, one channel each.
class RewriteDaemon {
 public:
  void start(mta::server::ServerContext& ctx) {
    try {
      ipc_timeout_ = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
      engine_ = std::make_unique<mta::rewrite::Engine>(ctx.config);
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  }

  // Every 10 seconds: exit when a table changed, so that master starts a
  // process that reads it.
  void watch_tables(mta::server::ServerContext& ctx) {
    ctx_ = &ctx;
    table_timer_ = evtimer_new(ctx.base, &RewriteDaemon::on_timer, this);
    arm_timer();
  }

  bool connected(int fd) {
    return clients_.add(fd, "rewrite socket", proto::kProtoTrivialRewrite, mta::ipc::Format::zero, ipc_timeout_);
  }

  // One request (or more, when the client sent them together); false
  // drops the client.
  bool readable(int fd) {
    return clients_.serve(fd, [&](Channel& ch) { return serve_one(ch); }, Errc::mismatch);
  }

  void disconnected(int fd) { clients_.remove(fd); }

 private:
  Status serve_one(Channel& ch) {
    proto::RequestName req;
    if (Status st = ch.read(req, {.strict = true, .more = true}); !st) return st;
    if (req.request == proto::kRewriteRequest) return serve_rewrite(ch);
    if (req.request == proto::kResolveRequest) return serve_resolve(ch, false);
    if (req.request == proto::kVerifyRequest) return serve_resolve(ch, true);
    mta::log::warning("bad command %.30s", mta::ipc::printable(req.request).c_str());
    return {Errc::mismatch, "bad command"};
  }

  Status serve_rewrite(Channel& ch) {
    proto::RewriteArgs args;
    if (Status st = ch.read(args); !st) return st;
    std::optional<std::string> result = engine_->rewrite(args.rule, args.address);
    if (!result) {
      mta::log::warning("unknown context: %s", args.rule.c_str());
      return {Errc::mismatch, "unknown context"};
    }
    mta::log::debug("`%s' `%s' -> `%s'", args.rule.c_str(), args.address.c_str(), result->c_str());
    return mta::ipc::reply(ch, proto::RewriteReply{0, *result});
  }

  Status serve_resolve(Channel& ch, bool verify) {
    proto::ResolveArgs args;
    if (Status st = ch.read(args); !st) return st;
    mta::rewrite::ResolveResult r = engine_->resolve(args.sender, args.address, verify);
    mta::log::debug("`%s' -> `%s' -> (`%s' `%s' `%s' `%d')", args.sender.c_str(), args.address.c_str(),
                    r.transport.c_str(), r.nexthop.c_str(), r.recipient.c_str(), r.flags);
    proto::ResolveReply reply;
    reply.server_flags = 0;
    reply.transport = std::move(r.transport);
    reply.nexthop = std::move(r.nexthop);
    reply.recipient = std::move(r.recipient);
    reply.flags = r.flags;
    return mta::ipc::reply(ch, reply);
  }

  void arm_timer() {
    timeval tv{10, 0};
    evtimer_add(table_timer_, &tv);
  }

  static void on_timer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<RewriteDaemon*>(arg);
    if (std::string table = self->engine_->changed_table(); !table.empty()) {
      mta::log::info("table %s has changed -- restarting", table.c_str());
      self->ctx_->request_exit();
      return;
    }
    self->arm_timer();
  }

  std::unique_ptr<mta::rewrite::Engine> engine_;
  mta::ipc::ServerChannels clients_;
  mta::ipc::Millis ipc_timeout_ = mta::ipc::kDefaultIpcTimeout;
  mta::server::ServerContext* ctx_ = nullptr;
  struct event* table_timer_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  mta::ipc::register_proxy_tables();  // proxy:TYPE:NAME tables, via private/proxymap
  RewriteDaemon daemon;
  mta::server::MultiServer server;
  server.pre_init = [&](mta::server::ServerContext& ctx) { daemon.start(ctx); };
  server.post_init = [&](mta::server::ServerContext& ctx) { daemon.watch_tables(ctx); };
  server.connected = [&](int fd, mta::server::ServerContext&) { return daemon.connected(fd); };
  server.readable = [&](int fd, mta::server::ServerContext&) { return daemon.readable(fd); };
  server.disconnected = [&](int fd, mta::server::ServerContext&) { daemon.disconnected(fd); };
  return mta::server::run_multi_server(argc, argv, server);
}
