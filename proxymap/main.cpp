// proxymap: the lookup table proxy server (Postfix's proxymap(8)), a multi
// server.  Clients (the proxy: table type, ipc/dict_proxy.hpp) connect to
// private/proxymap (read-only; tables approved by proxy_read_maps) or
// private/proxywrite (read-write; proxy_write_maps; master.cf runs it with
// maxproc 1), receive {protocol=proxymap_protocol}, and send requests
// {request=open|lookup|update|delete|sequence, table, flags, ...} (see
// ipc/proxy_proto.hpp); proxy_tables.hpp says how each is answered.
//
// The master.cf service name decides the mode and must be proxymap or
// proxywrite.  Tables are opened on first use and shared by all clients;
// the read-only service restarts ("table ... has changed -- restarting")
// when a table file changes, the read-write one never (its own updates
// change its files).  A request with a missing or unexpected attribute is
// answered with status 3 after the reader's warning; an unknown request
// name likewise, with "unrecognized request".
//
// usage: proxymap [generic daemon options] (started by master)
#include <map>
#include <memory>

#include "ipc/mail_proto.hpp"
#include "ipc/proxy_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "proxymap/proxy_tables.hpp"
#include "server/server.hpp"

namespace pp = mta::ipc::proxy_proto;
namespace proto = mta::ipc::proto;
using mta::ipc::Channel;
using mta::ipc::Errc;
using mta::ipc::Status;

namespace {

class ProxymapDaemon {
 public:
  void start(mta::server::ServerContext& ctx) {
    bool writer = ctx.service_name == proto::kServiceProxywrite;
    if (!writer && ctx.service_name != proto::kServiceProxymap)
      mta::log::fatal("service name must be one of %s or %s", std::string(proto::kServiceProxymap).c_str(),
                      std::string(proto::kServiceProxywrite).c_str());
    try {
      ipc_timeout_ = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
      tables_ = std::make_unique<mta::proxymap::ProxyTables>(
          ctx.config.get_list(writer ? "proxy_write_maps" : "proxy_read_maps"), writer);
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
    if (!writer) ctx.table_changed = [this] { return tables_->changed_table(); };
  }

  bool connected(int fd, const mta::server::ServerContext& ctx) {
    return clients_.add(fd, ctx.service_name + " socket", proto::kProtoProxymap, mta::ipc::Format::zero, ipc_timeout_);
  }

  bool readable(int fd) {
    return clients_.serve(fd, [&](Channel& ch) { return serve_one(ch); });
  }

  void disconnected(int fd) { clients_.remove(fd); }

 private:
  Status serve_one(Channel& ch) {
    proto::RequestName req;
    if (Status st = ch.read(req, {.strict = true, .more = true}); !st) return st;
    if (req.request == pp::kReqLookup) return serve<pp::LookupArgs>(ch, &mta::proxymap::ProxyTables::lookup);
    if (req.request == pp::kReqOpen) return serve<pp::OpenArgs>(ch, &mta::proxymap::ProxyTables::open);
    if (req.request == pp::kReqUpdate) return serve<pp::UpdateArgs>(ch, &mta::proxymap::ProxyTables::update);
    if (req.request == pp::kReqDelete) return serve<pp::DeleteArgs>(ch, &mta::proxymap::ProxyTables::remove);
    if (req.request == pp::kReqSequence)
      return serve<pp::SequenceArgs>(ch, &mta::proxymap::ProxyTables::sequence);
    mta::log::warning("unrecognized request: \"%s\", ignored", mta::ipc::printable(req.request).c_str());
    if (Status st = ch.reader().finish_list(false); !st) return st;
    return mta::ipc::reply(ch, pp::StatusReply{pp::kStatBad});
  }

  // Reads the arguments strictly; a malformed list gets status 3 (bad
  // request), as Postfix's attr_scan failure does, and the client stays.
  template <class Args, class Reply>
  Status serve(Channel& ch, Reply (mta::proxymap::ProxyTables::*handler)(const Args&)) {
    Args args;
    if (Status st = ch.read(args); !st) {
      Errc c = st.code();
      if (c != Errc::unexpected && c != Errc::missing && c != Errc::malformed && c != Errc::too_long) return st;
      mta::log::warning("%s", st.message().c_str());
      // An unexpected or malformed attribute leaves the rest of the list.
      if (c != Errc::missing) {
        if (Status rest = ch.reader().finish_list(false); !rest) return rest;
      }
      Reply bad;
      bad.status = pp::kStatBad;
      return mta::ipc::reply(ch, bad);
    }
    return mta::ipc::reply(ch, (tables_.get()->*handler)(args));
  }

  std::unique_ptr<mta::proxymap::ProxyTables> tables_;
  mta::ipc::ServerChannels clients_;
  mta::ipc::Millis ipc_timeout_ = mta::ipc::kDefaultIpcTimeout;
};

}  // namespace

int main(int argc, char** argv) {
  ProxymapDaemon daemon;
  mta::server::MultiServer server;
  // Tables are opened after the privilege drop, as Postfix's proxymap does
  // (post_jail_init): they are read as mail_owner.
  server.post_init = [&](mta::server::ServerContext& ctx) { daemon.start(ctx); };
  server.connected = [&](int fd, mta::server::ServerContext& ctx) { return daemon.connected(fd, ctx); };
  server.readable = [&](int fd, mta::server::ServerContext&) { return daemon.readable(fd); };
  server.disconnected = [&](int fd, mta::server::ServerContext&) { daemon.disconnected(fd); };
  return mta::server::run_multi_server(argc, argv, server);
}
