// flush: the fast flush service (Postfix's flush(8)), a single server on
// public/flush.  It keeps, for each destination of fast_flush_domains, a
// log of the queue IDs of its deferred mail (flush_log.hpp), so that ETRN,
// "postqueue -s site" and "sendmail -qRsite" deliver just that mail.
//
// After the announcement {protocol=queue_flush_protocol} the client sends
// one request (ipc/flush_proto.hpp) and gets {status=N}:
//
//   add site queue_id    append the ID to the site's log
//   send_site site       move the site's listed deferred mail to the
//                        incoming queue and tell qmgr (F, then I)
//   send_file queue_id   the same for one message
//   rfrsh, purge         answered at once, then: send the logs unread for
//                        fast_flush_refresh_time (purge: all of them) and
//                        remove the empty ones unchanged for
//                        fast_flush_purge_time
//
// A site that fast_flush_domains does not list gets status 4 (DENY), one
// whose lookup fails -1; a malformed request, site or queue ID 3.  A
// request of at most two bytes is master's wakeup ("1000?" in master.cf),
// read as a string and treated as a refresh; an unknown request name gets
// no reply, as the real daemon does.
//
// usage: flush [generic daemon options] (started by master)
#include <algorithm>
#include <memory>
#include <string>

#include "flush/flush_log.hpp"
#include "ipc/flush_proto.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"
#include "maps/match_list.hpp"
#include "queue/queue_id.hpp"
#include "server/master_protocol.hpp"
#include "server/server.hpp"

namespace fp = mta::ipc::flush_proto;
using mta::ipc::AttrReader;
using mta::ipc::Channel;
using mta::ipc::Status;

namespace {

// A master trigger is at most this long ("W" and its NUL).
constexpr size_t kTriggerMax = 2;

class FlushDaemon {
 public:
  // Before the chroot: tables in fast_flush_domains open here.
  void pre_init(mta::server::ServerContext& ctx) {
    try {
      domains_ = std::make_unique<mta::maps::MatchList>(
          "fast_flush_domains", ctx.config.get("fast_flush_domains"), mta::maps::MatchList::Kind::hostname,
          mta::maps::match_parent_style(ctx.config, "fast_flush_domains"));
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
    ctx.table_changed = [this] { return domains_->changed_table(); };
  }

  // After the chroot: queue_directory is where the queues are now.
  void post_init(mta::server::ServerContext& ctx) {
    try {
      refresh_time_ = std::max<long long>(1, ctx.config.get_time("fast_flush_refresh_time"));
      long long purge_time = std::max<long long>(1, ctx.config.get_time("fast_flush_purge_time"));
      ipc_timeout_ = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
      std::string queue_dir = ctx.config.get("queue_directory");
      std::string qmgr = ctx.config.get("queue_service_name");
      mta::ipc::ConnectOptions trigger_options{.timeout = std::chrono::seconds(ctx.config.get_time("trigger_timeout")),
                                               .attempts = 1,
                                               .warn = false};
      logs_ = std::make_unique<mta::flush::FlushLogs>(
          mta::queue::QueueLayout::from_config(ctx.config), purge_time,
          [queue_dir, qmgr, trigger_options](std::string_view bytes) {
            // mail_trigger(): a qmgr that is down finds the mail on its next scan.
            if (Status st = mta::ipc::send_trigger(queue_dir, mta::ipc::proto::kClassPublic, qmgr, bytes,
                                                   trigger_options);
                !st)
              mta::log::warning("%s", st.message().c_str());
          });
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  }

  void serve(int fd, const mta::server::ServerContext& ctx) {
    Channel ch = mta::ipc::server_channel(fd, ctx.service_name + " socket", mta::ipc::Format::zero, ipc_timeout_);
    if (Status st = ch.announce(mta::ipc::proto::kProtoFlush); !st) {
      mta::log::warning("%s", st.message().c_str());
      return;
    }
    std::string request;
    if (!receive(ch, request)) {
      (void)reply(ch, fp::kStatBad);
      return;
    }
    if (request == fp::kReqAdd) {
      std::string site, queue_id;
      int status = fp::kStatBad;
      if (read_args(ch, {{fp::kAttrSite, &site}, {fp::kAttrQueueId, &queue_id}}) &&
          mta::queue::is_queue_file_name(queue_id))
        status = add_service(site, queue_id);
      (void)reply(ch, status);
    } else if (request == fp::kReqSendSite) {
      std::string site;
      int status = fp::kStatBad;
      if (read_args(ch, {{fp::kAttrSite, &site}})) status = send_service(site);
      (void)reply(ch, status);
    } else if (request == fp::kReqSendFile) {
      std::string queue_id;
      int status = fp::kStatBad;
      if (read_args(ch, {{fp::kAttrQueueId, &queue_id}})) status = logs_->send_file(queue_id);
      (void)reply(ch, status);
    } else if (request == fp::kReqRefresh || request == std::string(1, mta::server::kWakeupTrigger)) {
      (void)reply(ch, fp::kStatOk);
      logs_->refresh(refresh_time_);
    } else if (request == fp::kReqPurge) {
      (void)reply(ch, fp::kStatOk);
      logs_->refresh(0);
    }
    // Any other request: no reply, as the real daemon.
  }

 private:
  // The request name: a short string for master's trigger, else the first
  // attribute of a list (left open for the arguments).
  bool receive(Channel& ch, std::string& request) {
    mta::ipc::Stream& s = ch.stream();
    if (s.peek() < 0 && s.timed_out()) {
      mta::log::warning("timeout while waiting for data from %s", ch.name().c_str());
      return false;
    }
    if (s.buffered() <= kTriggerMax) {
      s.clear_state();
      if (s.read_until('\0', request, 100) < 0 && request.empty()) {
        mta::log::warning("end-of-input while reading request from %s", ch.name().c_str());
        return false;
      }
      return true;
    }
    AttrReader::Item item;
    if (Status st = ch.reader().seek(fp::kAttrRequest, true, item); !st) {
      mta::log::warning("%s", st.message().c_str());
      return false;
    }
    request = std::move(item.value);
    return true;
  }

  struct Arg {
    std::string_view name;
    std::string* value;
  };
  // The rest of the request list, strictly in this order.  An extra
  // attribute at the end is a warning only, as Postfix's attr_scan() then
  // has what it wanted.
  static bool read_args(Channel& ch, std::initializer_list<Arg> args) {
    AttrReader& r = ch.reader();
    for (const Arg& a : args) {
      AttrReader::Item item;
      if (Status st = r.seek(a.name, true, item); !st) {
        mta::log::warning("%s", st.message().c_str());
        return false;
      }
      *a.value = std::move(item.value);
    }
    if (Status st = r.finish_list(true); !st) mta::log::warning("%s", st.message().c_str());
    return true;
  }

  static Status reply(Channel& ch, int status) { return mta::ipc::reply_status(ch, status); }

  // The site's log name, or the status that refuses it.
  int site_path(const std::string& site, std::string& path) const {
    switch (domains_->match(site)) {
      case mta::maps::Match::yes: break;
      case mta::maps::Match::no: return fp::kStatDeny;
      case mta::maps::Match::error:
        mta::log::warning("%s: %s", domains_->title().c_str(), domains_->error().c_str());
        return fp::kStatFail;
    }
    std::optional<std::string> p = mta::flush::site_to_path(site);
    if (!p) return fp::kStatDeny;
    path = std::move(*p);
    return fp::kStatOk;
  }

  int add_service(const std::string& site, const std::string& queue_id) const {
    mta::log::debug("flush_add_service: site %s queue_id %s", site.c_str(), queue_id.c_str());
    std::string path;
    if (int st = site_path(site, path); st != fp::kStatOk) return st;
    return logs_->add(path, queue_id);
  }

  int send_service(const std::string& site) const {
    mta::log::debug("flush_send_service: site %s", site.c_str());
    std::string path;
    if (int st = site_path(site, path); st != fp::kStatOk) return st;
    return logs_->send_path(path, true);
  }

  std::unique_ptr<mta::maps::MatchList> domains_;
  std::unique_ptr<mta::flush::FlushLogs> logs_;
  long long refresh_time_ = 12 * 3600;
  mta::ipc::Millis ipc_timeout_ = mta::ipc::kDefaultIpcTimeout;
};

}  // namespace

int main(int argc, char** argv) {
  FlushDaemon daemon;
  mta::server::SingleServer server;
  server.pre_init = [&](mta::server::ServerContext& ctx) { daemon.pre_init(ctx); };
  server.post_init = [&](mta::server::ServerContext& ctx) { daemon.post_init(ctx); };
  server.service = [&](int fd, mta::server::ServerContext& ctx) { daemon.serve(fd, ctx); };
  return mta::server::run_single_server(argc, argv, server);
}
