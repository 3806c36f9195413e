// anvil: the connection count and request rate service (Postfix's
// anvil(8)), a multi server.  Each local server (smtpd) keeps one
// connection to private/anvil and asks, in the PLAIN attribute form (see
// ipc/anvil_proto.hpp for the exchange):
//
//   {request=connect|disconnect|message|recipient|newtls|newtls_status|
//    auth|lookup, ident=SERVICE:CLIENT_ADDR}  ->  {status=0, ...}
//
// after the announcement {protocol=anvil_protocol}.  The counting rules are
// remote_table.hpp's.  A malformed request drops the local server (and so
// its connection count), an unknown request name is answered with
// status=-1, as Postfix does.  Every anvil_status_update_time seconds and on
// exit the process logs the peaks ("statistics: max connection rate
// 2/60s for (smtp:192.0.2.1) at Nov 22 13:00:00").  One process holds all
// state: master.cf runs it with maxproc 1; it serves any number of
// requests (no max_use) and stays at least anvil_rate_time_unit seconds
// after its last client left (max_idle), so that rates survive a quiet spell.
//
// usage: anvil [generic daemon options] (started by master)
#include <event2/event.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <map>
#include <memory>

#include "anvil/remote_table.hpp"
#include "ipc/anvil_proto.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "server/server.hpp"

namespace ap = mta::ipc::anvil_proto;
using mta::anvil::RemoteTable;
using mta::ipc::AttrEncoder;
using mta::ipc::AttrReader;
using mta::ipc::Channel;
using mta::ipc::Errc;
using mta::ipc::Status;

namespace {

using Timer = mta::server::EventPtr;

class AnvilDaemon {
 public:
  void start(mta::server::ServerContext& ctx) {
    try {
      time_unit_ = static_cast<int>(std::clamp<long long>(ctx.config.get_time("anvil_rate_time_unit"), 1, 1 << 30));
      status_time_ = std::clamp<long long>(ctx.config.get_time("anvil_status_update_time"), 1, 1 << 30);
      ipc_timeout_ = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
      // Postfix's anvil: "don't exit before the sampling interval ends".
      idle_limit_ = std::max<long long>(ctx.config.get_time("max_idle"), time_unit_);
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
    table_ = std::make_unique<RemoteTable>(time_unit_);
  }

  void start_timers(mta::server::ServerContext& ctx) {
    ctx_ = &ctx;
    status_timer_.reset(event_new(ctx.base, -1, EV_PERSIST, &AnvilDaemon::on_status, this));
    timeval status{static_cast<time_t>(status_time_), 0};
    evtimer_add(status_timer_.get(), &status);
    sweep_timer_.reset(event_new(ctx.base, -1, EV_PERSIST, &AnvilDaemon::on_sweep, this));
    timeval sweep{std::min<time_t>(time_unit_, 60), 0};
    evtimer_add(sweep_timer_.get(), &sweep);
    idle_timer_.reset(evtimer_new(ctx.base, &AnvilDaemon::on_idle, this));
    arm_idle();
  }

  // Postfix names the stream after the service: "anvil socket".
  bool connected(int fd, const mta::server::ServerContext& ctx) {
    return clients_.add(fd, ctx.service_name + " socket", mta::ipc::proto::kProtoAnvil, mta::ipc::Format::plain, ipc_timeout_);
  }

  bool readable(int fd) {
    return clients_.serve(fd, [&](Channel& ch) { return serve_one(fd, ch); });
  }

  // The local server went away: its connection no longer counts.
  void disconnected(int fd) {
    table_->local_gone(fd, std::time(nullptr));
    clients_.remove(fd);
    arm_idle();
  }

  void log_statistics() {
    for (const std::string& line : table_->take_statistics()) mta::log::info("%s", line.c_str());
  }

 private:
  using Handler = Status (AnvilDaemon::*)(int fd, Channel& ch, const std::string& ident, time_t now);
  struct Command {
    std::string_view name;
    Handler handler;
  };

  // Reads one string attribute that must come next (strict, as anvil's
  // attr_scan_plain with ATTR_FLAG_STRICT).
  static Status read_string(AttrReader& r, std::string_view name, std::string& out) {
    AttrReader::Item item;
    if (Status st = r.seek(name, true, item); !st) return st;
    if (!item.has_value)
      return {Errc::malformed, "missing value for string attribute " + item.name + " from " + r.path()};
    out = std::move(item.value);
    return {};
  }

  Status serve_one(int fd, Channel& ch) {
    AttrReader& r = ch.reader();
    std::string request, ident;
    if (Status st = read_string(r, ap::kAttrRequest, request); !st) return st;
    if (Status st = read_string(r, ap::kAttrIdent, ident); !st) return st;
    if (Status st = r.finish_list(true); !st) {
      // Postfix warns about the extra attribute and still answers.
      if (st.code() != Errc::unexpected) return st;
      mta::log::warning("%s", st.message().c_str());
      if (Status rest = r.finish_list(false); !rest) return rest;
    }
    static constexpr std::array<Command, 8> kCommands{{
        {ap::kReqConnect, &AnvilDaemon::do_connect},
        {ap::kReqMessage, &AnvilDaemon::do_message},
        {ap::kReqRecipient, &AnvilDaemon::do_recipient},
        {ap::kReqNewtls, &AnvilDaemon::do_newtls},
        {ap::kReqDisconnect, &AnvilDaemon::do_disconnect},
        {ap::kReqNewtlsStatus, &AnvilDaemon::do_newtls_status},
        {ap::kReqAuth, &AnvilDaemon::do_auth},
        {ap::kReqLookup, &AnvilDaemon::do_lookup},
    }};
    const time_t now = std::time(nullptr);
    for (const Command& c : kCommands)
      if (c.name == request) return (this->*c.handler)(fd, ch, ident, now);
    mta::log::warning("unrecognized request: \"%s\", ignored", mta::ipc::printable(request).c_str());
    return reply(ch, {{ap::kAttrStatus, ap::kStatusFail}});
  }

  struct Value {
    std::string_view name;
    int value;
  };
  static Status reply(Channel& ch, std::initializer_list<Value> values) {
    AttrEncoder& enc = ch.writer().encoder();
    for (const Value& v : values)
      if (Status st = enc.num(v.name, static_cast<uint32_t>(v.value)); !st) return st;
    enc.end();
    if (Status st = ch.writer().send(); !st) return st;
    return ch.flush();
  }
  static Status reply_rate(Channel& ch, int rate) {
    return reply(ch, {{ap::kAttrStatus, ap::kStatusOk}, {ap::kAttrRate, rate}});
  }

  Status do_connect(int fd, Channel& ch, const std::string& ident, time_t now) {
    RemoteTable::ConnectReply r = table_->connect(fd, ident, now);
    mta::log::debug("connect: ident=%s count=%d rate=%d", ident.c_str(), r.count, r.rate);
    return reply(ch, {{ap::kAttrStatus, ap::kStatusOk}, {ap::kAttrCount, r.count}, {ap::kAttrRate, r.rate}});
  }
  Status do_disconnect(int fd, Channel& ch, const std::string& ident, time_t now) {
    table_->disconnect(fd, ident, now);
    mta::log::debug("disconnect: ident=%s", ident.c_str());
    return reply(ch, {{ap::kAttrStatus, ap::kStatusOk}});
  }
  Status do_message(int fd, Channel& ch, const std::string& ident, time_t now) {
    return reply_rate(ch, table_->message(fd, ident, now));
  }
  Status do_recipient(int fd, Channel& ch, const std::string& ident, time_t now) {
    return reply_rate(ch, table_->recipient(fd, ident, now));
  }
  Status do_newtls(int fd, Channel& ch, const std::string& ident, time_t now) {
    return reply_rate(ch, table_->newtls(fd, ident, now));
  }
  Status do_auth(int fd, Channel& ch, const std::string& ident, time_t now) {
    return reply_rate(ch, table_->auth(fd, ident, now));
  }
  Status do_newtls_status(int, Channel& ch, const std::string& ident, time_t now) {
    return reply_rate(ch, table_->newtls_status(ident, now));
  }
  Status do_lookup(int, Channel& ch, const std::string& ident, time_t now) {
    mta::anvil::Counters c = table_->lookup(ident, now);
    return reply(ch, {{ap::kAttrStatus, ap::kStatusOk},
                      {ap::kAttrCount, c.count},
                      {ap::kAttrRate, c.rate},
                      {ap::kAttrMail, c.mail},
                      {ap::kAttrRcpt, c.rcpt},
                      {ap::kAttrNewtls, c.newtls},
                      {ap::kAttrAuth, c.auth}});
  }

  void arm_idle() {
    if (!idle_timer_ || idle_limit_ <= 0) return;
    timeval tv{static_cast<time_t>(idle_limit_), 0};
    evtimer_add(idle_timer_.get(), &tv);
  }

  static void on_status(evutil_socket_t, short, void* arg) { static_cast<AnvilDaemon*>(arg)->log_statistics(); }
  static void on_sweep(evutil_socket_t, short, void* arg) {
    static_cast<AnvilDaemon*>(arg)->table_->expire(std::time(nullptr));
  }
  static void on_idle(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<AnvilDaemon*>(arg);
    if (self->ctx_->clients == 0) self->ctx_->request_exit();
  }

  std::unique_ptr<RemoteTable> table_;
  mta::ipc::ServerChannels clients_;
  int time_unit_ = 60;
  long long status_time_ = 600;
  long long idle_limit_ = 100;
  mta::ipc::Millis ipc_timeout_ = mta::ipc::kDefaultIpcTimeout;
  mta::server::ServerContext* ctx_ = nullptr;
  Timer status_timer_, sweep_timer_, idle_timer_;
};

}  // namespace

int main(int argc, char** argv) {
  AnvilDaemon daemon;
  mta::server::MultiServer server;
  // No max_use, and our own idle timer (at least anvil_rate_time_unit).
  server.long_running = true;
  server.pre_init = [&](mta::server::ServerContext& ctx) { daemon.start(ctx); };
  server.post_init = [&](mta::server::ServerContext& ctx) { daemon.start_timers(ctx); };
  server.connected = [&](int fd, mta::server::ServerContext& ctx) { return daemon.connected(fd, ctx); };
  server.readable = [&](int fd, mta::server::ServerContext&) { return daemon.readable(fd); };
  server.disconnected = [&](int fd, mta::server::ServerContext&) { daemon.disconnected(fd); };
  server.pre_exit = [&](mta::server::ServerContext&) { daemon.log_statistics(); };
  return mta::server::run_multi_server(argc, argv, server);
}
