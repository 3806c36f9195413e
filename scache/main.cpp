// scache: the shared connection cache server (Postfix's scache(8)).
//
// Delivery agents (smtp, lmtp) hand it open connections after a mail
// transaction, under a destination label (the next hop) and an endpoint
// label (the server address), and ask for them back before they connect
// (ipc/scache_proto.hpp has the requests; connection_cache.hpp the cache).
// Every ttl is capped at connection_cache_ttl_limit; an expired connection
// is closed without a protocol handshake, as in Postfix.
//
// One process holds the cache: master.cf runs it with maxproc 1.  It is a
// multi server without max_use, and exits when no client has been
// connected for max_idle seconds.  Every connection_cache_status_update_time
// seconds, and when it exits, it logs Postfix's statistics and starts a new
// interval:
//
//   statistics: start interval Nov 22 13:00:00
//   statistics: domain lookup hits=19 miss=1 success=95%
//   statistics: address lookup hits=0 miss=0 success=0%    (only with lookups)
//   statistics: max simultaneous domains=1 addresses=1 connection=5
//
// (nothing when nothing happened).
//
// usage: scache [generic daemon options] (started by master)
#include <event2/event.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <map>
#include <memory>

#include "ipc/mail_proto.hpp"
#include "ipc/scache_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "scache/connection_cache.hpp"
#include "server/server.hpp"

namespace sp = mta::ipc::scache;
using mta::ipc::Channel;
using mta::ipc::Errc;
using mta::ipc::Status;
using mta::scache::Clock;
using mta::scache::ConnectionCache;
using mta::scache::UniqueFd;

namespace {

using Timer = mta::server::EventPtr;

// Errors after which the client's stream is unusable: drop the client.
bool broken(const Status& st) {
  return st.code() == Errc::closed || st.code() == Errc::eof || st.code() == Errc::timeout || st.code() == Errc::io;
}

class ScacheDaemon {
 public:
  void configure(mta::server::ServerContext& ctx) {
    try {
      ttl_limit_ = static_cast<int>(std::clamp<long long>(ctx.config.get_time("connection_cache_ttl_limit"), 1, 1 << 30));
      status_time_ = std::clamp<long long>(ctx.config.get_time("connection_cache_status_update_time"), 1, 1 << 30);
      ipc_timeout_ = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
      idle_limit_ = ctx.config.get_time("max_idle");
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  }

  void start_timers(mta::server::ServerContext& ctx) {
    ctx_ = &ctx;
    start_time_ = std::time(nullptr);
    status_timer_.reset(event_new(ctx.base, -1, EV_PERSIST, &ScacheDaemon::on_status, this));
    timeval status{static_cast<time_t>(status_time_), 0};
    evtimer_add(status_timer_.get(), &status);
    expire_timer_.reset(evtimer_new(ctx.base, &ScacheDaemon::on_expire, this));
    idle_timer_.reset(evtimer_new(ctx.base, &ScacheDaemon::on_idle, this));
    arm_idle();
    // "postfix stop" terminates daemons: leave through the skeleton, so
    // that the statistics of the last interval are logged.
    term_event_.reset(evsignal_new(ctx.base, SIGTERM, &ScacheDaemon::on_term, this));
    evsignal_add(term_event_.get(), nullptr);
  }

  bool connected(int fd, const mta::server::ServerContext& ctx) {
    return clients_.add(fd, ctx.service_name + " socket", mta::ipc::proto::kProtoScache, mta::ipc::Format::zero, ipc_timeout_);
  }

  // As Postfix's scache_service(): requests until nothing more is buffered
  // (a client's trailing dummy may arrive together with its next request).
  bool readable(int fd) {
    if (!clients_.serve(fd, [&](Channel& ch) { return serve_one(ch); })) return false;
    arm_expire();
    return true;
  }

  void disconnected(int fd) {
    clients_.remove(fd);
    arm_idle();
  }

  // scache_status_dump(): log and reset.
  void log_statistics() {
    if (dest_hits_ || dest_miss_ || endp_hits_ || endp_miss_ || max_.dest_count || max_.endp_count || max_.sess_count) {
      char when[64] = "";
      const char* text = std::ctime(&start_time_);
      if (text) std::snprintf(when, sizeof when, "%.15s", text + 4);
      mta::log::info("statistics: start interval %s", when);
    }
    if (dest_hits_ || dest_miss_) {
      mta::log::info("statistics: domain lookup hits=%d miss=%d success=%d%%", dest_hits_, dest_miss_,
                     dest_hits_ * 100 / (dest_hits_ + dest_miss_));
      dest_hits_ = dest_miss_ = 0;
    }
    if (endp_hits_ || endp_miss_) {
      mta::log::info("statistics: address lookup hits=%d miss=%d success=%d%%", endp_hits_, endp_miss_,
                     endp_hits_ * 100 / (endp_hits_ + endp_miss_));
      endp_hits_ = endp_miss_ = 0;
    }
    if (max_.dest_count || max_.endp_count || max_.sess_count) {
      mta::log::info("statistics: max simultaneous domains=%d addresses=%d connection=%d", max_.dest_count,
                     max_.endp_count, max_.sess_count);
      max_ = {};
    }
    start_time_ = std::time(nullptr);
  }

 private:
  Status serve_one(Channel& ch) {
    mta::ipc::proto::RequestName req;
    if (Status st = ch.read(req, {.more = true}); !st) return st;
    if (req.request == sp::kReqSaveDest) return save_dest(ch);
    if (req.request == sp::kReqFindDest) return find_dest(ch);
    if (req.request == sp::kReqSaveEndp) return save_endp(ch);
    if (req.request == sp::kReqFindEndp) return find_endp(ch);
    mta::log::warning("unrecognized request: \"%s\", ignored", mta::ipc::printable(req.request).c_str());
    (void)ch.reader().finish_list(false);
    return mta::ipc::reply_status(ch, sp::kStatusBad);
  }

  // A request whose parameters did not parse: Postfix warns and answers
  // "bad"; a broken stream drops the client.
  template <class Reply>
  Status bad_request(Channel& ch, const Status& why, const char* myname, Reply reply) {
    if (broken(why)) return why;
    mta::log::warning("%s: bad or missing request parameter", myname);
    reply.status = sp::kStatusBad;
    return mta::ipc::reply(ch, reply);
  }

  int cap(int ttl) const { return std::min(ttl, ttl_limit_); }

  void sample_size() {
    mta::scache::CacheSize now = cache_.size();
    max_.dest_count = std::max(max_.dest_count, now.dest_count);
    max_.endp_count = std::max(max_.endp_count, now.endp_count);
    max_.sess_count = std::max(max_.sess_count, now.sess_count);
  }

  Status save_dest(Channel& ch) {
    sp::SaveDestArgs args;
    if (Status st = ch.read(args); !st || args.ttl <= 0)
      return bad_request(ch, st, "scache_save_dest_service", mta::ipc::proto::StatusReply{});
    cache_.save_dest(Clock::now(), cap(args.ttl), args.dest_label, args.dest_prop, args.endp_label);
    sample_size();
    return mta::ipc::reply_status(ch, sp::kStatusOk);
  }

  Status save_endp(Channel& ch) {
    sp::SaveEndpArgs args;
    if (Status st = ch.read(args); !st || args.ttl <= 0)
      return bad_request(ch, st, "scache_save_endp_service", mta::ipc::proto::StatusReply{});
    // CANT_WRITE_BEFORE_SENDING_FD: tell the client to send the descriptor.
    if (Status st = mta::ipc::reply(ch, sp::Dummy{}); !st) return st;
    int fd = ch.stream().recv_fd();
    if (fd < 0) {
      mta::log::warning("scache_save_endp_service: unable to receive file descriptor: %s",
                        ch.stream().error_text().c_str());
      if (ch.stream().failed()) return {Errc::io, "cannot receive file descriptor from " + ch.name()};
      return mta::ipc::reply_status(ch, sp::kStatusFail);
    }
    cache_.save_endp(Clock::now(), cap(args.ttl), args.endp_label, args.endp_prop, UniqueFd(fd));
    sample_size();
    return mta::ipc::reply_status(ch, sp::kStatusOk);
  }

  // Sends a found descriptor between the two dummies; our copy is closed
  // when `found` goes.
  static void hand_over(Channel& ch, mta::scache::Found& found, const char* myname) {
    sp::Dummy dummy;
    Status st = ch.read(dummy);
    if (st && !ch.stream().send_fd(found.fd.get()))
      st = Status{Errc::io, ch.stream().error_text()};
    if (st) st = ch.read(dummy);
    if (!st) mta::log::warning("%s: cannot send file descriptor: %s", myname, st.message().c_str());
  }

  Status find_dest(Channel& ch) {
    sp::FindArgs args;
    if (Status st = ch.read(args); !st)
      return bad_request(ch, st, "scache_find_dest_service", sp::FindDestReply{});
    std::optional<mta::scache::Found> found = cache_.find_dest(Clock::now(), args.label);
    if (!found) {
      ++dest_miss_;
      return mta::ipc::reply(ch, sp::FindDestReply{sp::kStatusFail, {}, {}});
    }
    ++dest_hits_;
    if (Status st = mta::ipc::reply(ch, sp::FindDestReply{sp::kStatusOk, found->dest_prop, found->endp_prop}); !st)
      return st;
    hand_over(ch, *found, "scache_find_dest_service");
    return ch.stream().failed() ? Status{Errc::io, ch.stream().error_text()} : Status{};
  }

  Status find_endp(Channel& ch) {
    sp::FindArgs args;
    if (Status st = ch.read(args); !st)
      return bad_request(ch, st, "scache_find_endp_service", sp::FindEndpReply{});
    std::optional<mta::scache::Found> found = cache_.find_endp(Clock::now(), args.label);
    if (!found) {
      ++endp_miss_;
      return mta::ipc::reply(ch, sp::FindEndpReply{sp::kStatusFail, {}});
    }
    ++endp_hits_;
    if (Status st = mta::ipc::reply(ch, sp::FindEndpReply{sp::kStatusOk, found->endp_prop}); !st) return st;
    hand_over(ch, *found, "scache_find_endp_service");
    return ch.stream().failed() ? Status{Errc::io, ch.stream().error_text()} : Status{};
  }

  // The expiry timer follows the earliest expiry in the cache.
  void arm_expire() {
    if (!expire_timer_) return;
    evtimer_del(expire_timer_.get());
    std::optional<Clock::time_point> next = cache_.next_expiry();
    if (!next) return;
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(*next - Clock::now()).count();
    if (wait < 1000) wait = 1000;
    timeval tv{static_cast<time_t>(wait / 1000000), static_cast<suseconds_t>(wait % 1000000)};
    evtimer_add(expire_timer_.get(), &tv);
  }

  void arm_idle() {
    if (!idle_timer_ || idle_limit_ <= 0) return;
    timeval tv{static_cast<time_t>(idle_limit_), 0};
    evtimer_add(idle_timer_.get(), &tv);
  }

  static void on_status(evutil_socket_t, short, void* arg) { static_cast<ScacheDaemon*>(arg)->log_statistics(); }
  static void on_expire(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ScacheDaemon*>(arg);
    self->cache_.expire(Clock::now());
    self->arm_expire();
  }
  static void on_term(evutil_socket_t, short, void* arg) { static_cast<ScacheDaemon*>(arg)->ctx_->request_exit(); }
  static void on_idle(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ScacheDaemon*>(arg);
    if (self->ctx_->clients == 0) self->ctx_->request_exit();
  }

  ConnectionCache cache_;
  mta::ipc::ServerChannels clients_;
  int ttl_limit_ = 2;
  long long status_time_ = 600;
  long long idle_limit_ = 100;
  mta::ipc::Millis ipc_timeout_ = mta::ipc::kDefaultIpcTimeout;
  mta::server::ServerContext* ctx_ = nullptr;
  time_t start_time_ = 0;
  int dest_hits_ = 0, dest_miss_ = 0, endp_hits_ = 0, endp_miss_ = 0;
  mta::scache::CacheSize max_;
  Timer status_timer_, expire_timer_, idle_timer_, term_event_;
};

}  // namespace

int main(int argc, char** argv) {
  ScacheDaemon daemon;
  mta::server::MultiServer server;
  // No max_use (Postfix sets var_use_limit = 0); the idle timer above
  // ends the process when no client is connected for max_idle.
  server.long_running = true;
  server.pre_init = [&](mta::server::ServerContext& ctx) { daemon.configure(ctx); };
  server.post_init = [&](mta::server::ServerContext& ctx) { daemon.start_timers(ctx); };
  server.connected = [&](int fd, mta::server::ServerContext& ctx) { return daemon.connected(fd, ctx); };
  server.readable = [&](int fd, mta::server::ServerContext&) { return daemon.readable(fd); };
  server.disconnected = [&](int fd, mta::server::ServerContext&) { daemon.disconnected(fd); };
  server.pre_exit = [&](mta::server::ServerContext&) { daemon.log_statistics(); };
  return mta::server::run_multi_server(argc, argv, server);
}
