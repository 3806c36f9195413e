// queue_manager.cpp: see queue_manager.hpp.
#include "qmgr/queue_manager.hpp"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "deliver/delivery_status.hpp"
#include "log/log.hpp"

namespace mta::qmgr {
namespace {

namespace proto = ipc::proto;
using queue::queue_name::kActive;
using queue::queue_name::kBounce;
using queue::queue_name::kCorrupt;
using queue::queue_name::kDefer;
using queue::queue_name::kDeferred;
using queue::queue_name::kIncoming;

ipc::ClientOptions resolver_options() {
  ipc::ClientOptions o;
  o.protocol = std::string(proto::kProtoTrivialRewrite);
  o.max_attempts = 2;  // a dead resolver defers mail, it must not stall qmgr
  o.connect.attempts = 1;
  o.connect.timeout = std::chrono::seconds(60);
  return o;
}

std::string attribute(const queue::Envelope& env, std::string_view name) {
  const queue::Attribute* a = env.find_attribute(name);
  return a ? a->value : std::string();
}

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

QueueManager::QueueManager(server::ServerContext& ctx)
    : ctx_(ctx),
      layout_(queue::QueueLayout::from_config(ctx.config)),
      queue_dir_(ctx.config.get("queue_directory")),
      resolver_(queue_dir_, std::string(proto::kClassPrivate), std::string(proto::kServiceRewrite),
                resolver_options()) {
  defer_transports_ = ctx.config.get_list("defer_transports");
  flush_ = deliver::flush_client_from_config(ctx.config);
  active_limit_ = ctx.config.get_int("qmgr_message_active_limit");
  min_backoff_ = ctx.config.get_time("minimal_backoff_time");
  max_backoff_ = ctx.config.get_time("maximal_backoff_time");
  max_lifetime_ = ctx.config.get_time("maximal_queue_lifetime", 'd');
  bounce_lifetime_ = ctx.config.get_time("bounce_queue_lifetime", 'd');
  run_delay_ = ctx.config.get_time("queue_run_delay");
  owner_ = this;
}

QueueManager::~QueueManager() {
  if (timer_) event_free(timer_);
  for (auto& [job, owned] : running_)
    if (job->reply_event) event_free(job->reply_event);
}

void QueueManager::start() {
  // What a previous qmgr left in active/ is delivered again: at least once.
  std::vector<std::string> left;
  layout_.scan(kActive, [&](std::string_view id, const std::string&) { left.emplace_back(id); });
  for (const std::string& id : left) {
    std::string error;
    if (!layout_.move(id, kActive, kIncoming, &error)) log::warning("%s: %s", id.c_str(), error.c_str());
  }
  timer_ = evtimer_new(ctx_.base, &QueueManager::on_timer, this);
  timeval tv{1, 0};
  evtimer_add(timer_, &tv);
  scan_incoming();
  scan_deferred(false);
}

void QueueManager::trigger(std::string_view bytes) {
  bool incoming = false, deferred = false, all = false;
  for (char c : bytes) {
    switch (c) {
      case proto::kTriggerWakeup: incoming = true; break;
      case proto::kQmgrScanIncoming: incoming = true; break;
      case proto::kQmgrScanDeferred: deferred = true; break;
      case proto::kQmgrScanAll: incoming = deferred = all = true; break;
      case proto::kQmgrFlushDead: flush_once_ = true; break;
      default: break;
    }
  }
  if (incoming) scan_incoming();
  if (deferred || ::time(nullptr) - last_deferred_scan_ >= run_delay_) scan_deferred(all);
  if (all) flush_once_ = false;
}

void QueueManager::on_timer(evutil_socket_t, short, void* arg) {
  auto* q = static_cast<QueueManager*>(arg);
  if (::time(nullptr) - q->last_deferred_scan_ >= q->run_delay_) q->scan_deferred(false);
  q->scan_incoming();  // a trigger may have been lost while qmgr was busy
  timeval tv{std::min<long long>(q->run_delay_, 60), 0};
  evtimer_add(q->timer_, &tv);
}

void QueueManager::scan_incoming() {
  std::vector<std::string> ready;
  layout_.scan(kIncoming, [&](std::string_view id, const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && queue::is_ready_queue_file(st.st_mode)) ready.emplace_back(id);
  });
  for (const std::string& id : ready) {
    if (static_cast<long long>(active_.size()) >= active_limit_) break;
    std::string error;
    if (!layout_.move(id, kIncoming, kActive, &error)) {
      log::warning("%s: %s", id.c_str(), error.c_str());
      continue;
    }
    activate(id);
  }
  dispatch();
}

void QueueManager::scan_deferred(bool all) {
  last_deferred_scan_ = ::time(nullptr);
  std::vector<std::string> due;
  layout_.scan(kDeferred, [&](std::string_view id, const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0 || !queue::is_ready_queue_file(st.st_mode)) return;
    if (all || st.st_mtime <= last_deferred_scan_) due.emplace_back(id);
  });
  for (const std::string& id : due) {
    if (static_cast<long long>(active_.size()) >= active_limit_) break;
    std::string error;
    if (!layout_.move(id, kDeferred, kActive, &error)) {
      log::warning("%s: %s", id.c_str(), error.c_str());
      continue;
    }
    activate(id);
  }
  dispatch();
}

void QueueManager::activate(const std::string& id) {
  std::string path = layout_.path(kActive, id), error;
  auto msg = std::make_unique<Message>();
  msg->id = id;
  auto reader = queue::QueueFileReader::open(path, false, &error);
  if (!reader || !reader->read_envelope(&msg->envelope, &error)) {
    log::warning("%s: %s", id.c_str(), error.c_str());
    log::warning("saving corrupt file \"%s\" from queue \"%s\" to queue \"%s\"", id.c_str(),
                 std::string(kActive).c_str(), std::string(kCorrupt).c_str());
    ::chmod(path.c_str(), queue::kQueueFileCorrupt);
    layout_.move(id, kActive, kCorrupt);
    return;
  }
  reader.reset();
  // A new attempt: the reasons of the last one are history.
  ::unlink(layout_.path(kDefer, id).c_str());
  const queue::Envelope& env = msg->envelope;
  msg->data_size = env.size ? env.size->message_size : 0;
  long nrcpt = env.size ? env.size->rcpt_count : static_cast<long>(env.recipients.size());
  if (env.arrival) msg->stats.incoming_arrival = {env.arrival->tv_sec, env.arrival->tv_usec};
  msg->stats.active_arrival = deliver::now();
  log::info("%s: from=<%s>, size=%ld, nrcpt=%ld (queue active)", id.c_str(), env.sender.value_or("").c_str(),
            msg->data_size, nrcpt);
  Message& m = *msg;
  active_[id] = std::move(msg);
  resolve_and_plan(m);
}

long long QueueManager::transport_limit(const std::string& transport, std::string_view suffix,
                                        std::string_view fallback) const {
  // Asked for every pending job on every dispatch: parse each name once
  // (a reload starts a new qmgr, so the values never change under us).
  std::string name = transport + std::string(suffix);
  if (auto it = limits_.find(name); it != limits_.end()) return it->second;
  long long value = 1;
  try {
    value = ctx_.config.lookup(name) ? ctx_.config.get_int(name) : ctx_.config.get_int(fallback);
  } catch (const config::ConfigError& e) {
    log::warning("%s", e.what());
  }
  limits_.emplace(std::move(name), value);
  return value;
}

// A redirect record (header/body checks, access REDIRECT) overrides all
// else, but only once per message: the first pending recipient becomes the
// redirect address (rewritten to canonical form, then resolved) and the
// other recipients are not delivered (Postfix's qmgr_message_resolve).
// Otherwise a content filter record (FILTER, content_filter) replaces the
// resolver: every recipient goes to its transport and next hop; an empty
// next hop is default_filter_nexthop, else the recipient's domain, else
// $myhostname.
bool QueueManager::filter_route(const Message& m, const queue::Recipient& r, proto::ResolveReply* reply) const {
  const std::string& filter = *m.envelope.filter;
  size_t colon = filter.find(':');
  reply->flags = 0;
  reply->recipient = r.address;
  reply->transport = filter.substr(0, colon);
  reply->nexthop = colon == std::string::npos ? std::string() : filter.substr(colon + 1);
  if (reply->nexthop.empty()) reply->nexthop = ctx_.config.get("default_filter_nexthop");
  if (reply->nexthop.empty()) {
    size_t at = r.address.rfind('@');
    if (at != std::string::npos && at + 1 < r.address.size()) reply->nexthop = r.address.substr(at + 1);
    else reply->nexthop = ctx_.config.get("myhostname");
  }
  return !reply->transport.empty();
}

void QueueManager::resolve_and_plan(Message& m) {
  queue::Envelope& env = m.envelope;
  std::string sender = env.sender.value_or("");
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> groups;
  bool redirect_done = false;
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    queue::Recipient& r = env.recipients[i];
    if (!r.pending()) continue;
    if (env.redirect) {
      if (redirect_done) continue;
      redirect_done = true;
      m.redirected = true;
      proto::RewriteRequest rw;
      rw.rule = "local";
      rw.address = *env.redirect;
      proto::RewriteReply canon;
      if (ipc::Status st = resolver_.call(rw, canon); !st) {
        log::warning("%s", st.message().c_str());
        defer_recipients(m, {i}, "none", "4.3.0", "address resolver failure");
        continue;
      }
      r.address = canon.address;
    }
    proto::ResolveReply reply;
    ipc::Status st;
    if (!env.redirect && env.filter && filter_route(m, r, &reply)) {
      // The content filter replaces the resolver.
    } else {
      proto::ResolveRequest req;
      req.sender = sender;
      req.address = r.address;
      st = resolver_.call(req, reply);
      if (st && env.redirect && !(reply.flags & (proto::kResolveFlagFail | proto::kResolveFlagError)) &&
          !reply.recipient.empty())
        r.address = reply.recipient;
    }
    if (!st || (reply.flags & proto::kResolveFlagFail)) {
      if (!st) log::warning("%s", st.message().c_str());
      defer_recipients(m, {i}, "none", "4.3.0", "address resolver failure");
      continue;
    }
    if (reply.flags & proto::kResolveFlagError) {
      deliver::StatusLine line;
      line.queue_id = m.id;
      line.recipient = {r.original.value_or(""), r.address, static_cast<long>(r.offset), r.dsn_orcpt, r.dsn_notify};
      line.relay = "none";
      line.stats = m.stats;
      line.dsn.status = "5.1.3";
      line.dsn.reason = "bad address syntax";
      std::string error;
      if (deliver::bounce_append(queue_dir_, line, proto::kBounceFlagDelrcpt, &error)) continue;
      log::warning("%s: %s", m.id.c_str(), error.c_str());
      m.problem = true;
      continue;
    }
    bool held_back = !flush_once_ && std::find(defer_transports_.begin(), defer_transports_.end(),
                                               reply.transport) != defer_transports_.end();
    if (held_back) {
      defer_recipients(m, {i}, "none", "4.3.2", "deferred transport");
      continue;
    }
    groups[{reply.transport, reply.nexthop}].push_back(i);
  }
  for (auto& [dest, indexes] : groups) {
    long long limit = std::max<long long>(
        1, transport_limit(dest.first, "_destination_recipient_limit", "default_destination_recipient_limit"));
    for (size_t b = 0; b < indexes.size(); b += static_cast<size_t>(limit)) {
      auto job = std::make_unique<Job>();
      job->message = &m;
      job->transport = dest.first;
      job->nexthop = dest.second;
      size_t e = std::min(indexes.size(), b + static_cast<size_t>(limit));
      job->recipients.assign(indexes.begin() + static_cast<long>(b), indexes.begin() + static_cast<long>(e));
      ++m.jobs_left;
      pending_.push_back(std::move(job));
    }
  }
  if (m.jobs_left == 0) message_done(m);
}

void QueueManager::dispatch() {
  // A job that fails at once finishes inside start_job() and dispatches
  // again from there; the nested call only asks this loop to start over,
  // because pending_ may have changed under its iterator.
  if (dispatching_) {
    dispatch_again_ = true;
    return;
  }
  dispatching_ = true;
  do {
    dispatch_again_ = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      Job& j = **it;
      long long limit = transport_limit(j.transport, "_destination_concurrency_limit",
                                        "default_destination_concurrency_limit");
      if (limit > 0 && in_flight_[destination_key(j)] >= limit) {
        ++it;
        continue;
      }
      std::unique_ptr<Job> job = std::move(*it);
      it = pending_.erase(it);
      start_job(job);
      if (dispatch_again_) break;
    }
  } while (dispatch_again_);
  dispatching_ = false;
}

bool QueueManager::start_job(std::unique_ptr<Job>& owned) {
  Job* job = owned.get();
  Message& m = *job->message;
  ++in_flight_[destination_key(*job)];
  running_[job] = std::move(owned);
  ipc::ConnectOptions co;
  co.attempts = 1;
  co.timeout = std::chrono::seconds(ctx_.config.get_time("qmgr_daemon_timeout"));
  ipc::Status st = ipc::connect_service(job->channel, queue_dir_, proto::kClassPrivate, job->transport, co);
  if (st) st = job->channel.expect_announcement(proto::kProtoDeliver);
  if (!st) {
    log::warning("connect to transport %s/%s: %s", std::string(proto::kClassPrivate).c_str(),
                 job->transport.c_str(), st.message().c_str());
    finish_job(job, nullptr, "mail transport unavailable");
    return false;
  }
  const queue::Envelope& env = m.envelope;
  proto::DeliverRequest req;
  req.flags = proto::kDelReqFlagSuccess | proto::kDelReqFlagBounce;
  req.queue_name = std::string(kActive);
  req.queue_id = m.id;
  req.data_offset = static_cast<long>(env.data_offset);
  req.data_size = m.data_size;
  req.nexthop = job->nexthop;
  req.encoding = attribute(env, "encoding");
  req.smtputf8 = env.size ? static_cast<int>(env.size->smtputf8) : 0;
  req.sender = env.sender.value_or("");
  req.dsn_envid = env.dsn_envid.value_or("");
  req.dsn_ret = env.dsn_ret;
  req.stats = m.stats;
  req.stats.agent_handoff = deliver::now();
  req.client_name = attribute(env, "log_client_name");
  req.client_addr = attribute(env, "log_client_address");
  req.client_port = attribute(env, "log_client_port");
  req.client_proto = attribute(env, "log_protocol_name");
  req.client_helo = attribute(env, "log_helo_name");
  req.sasl_method = attribute(env, "sasl_method");
  req.sasl_username = attribute(env, "sasl_username");
  req.sasl_sender = attribute(env, "sasl_sender");
  req.log_ident = attribute(env, "log_ident");
  if (req.log_ident.empty()) req.log_ident = m.id;
  req.rewrite_context = attribute(env, "rewrite_context");
  for (size_t i : job->recipients) {
    const queue::Recipient& r = env.recipients[i];
    req.recipients.push_back({r.original.value_or(""), r.address, static_cast<long>(r.offset), r.dsn_orcpt,
                              r.dsn_notify});
  }
  req.recipient_count = static_cast<int>(req.recipients.size());
  st = proto::write_deliver_request(job->channel, req);
  if (st) st = job->channel.flush();
  if (!st) {
    log::warning("%s: %s", m.id.c_str(), st.message().c_str());
    finish_job(job, nullptr, "mail transport unavailable");
    return false;
  }
  job->reply_event = event_new(ctx_.base, job->channel.stream().fd(), EV_READ, &QueueManager::on_reply, job);
  timeval tv{static_cast<time_t>(ctx_.config.get_time("qmgr_daemon_timeout")), 0};
  event_add(job->reply_event, &tv);
  return true;
}

QueueManager* QueueManager::owner_ = nullptr;

void QueueManager::on_reply(evutil_socket_t, short what, void* arg) {
  Job* job = static_cast<Job*>(arg);
  QueueManager* q = owner_;
  if (what & EV_TIMEOUT) {
    q->finish_job(job, nullptr, "delivery agent timeout");
    return;
  }
  proto::DeliverReply reply;
  ipc::Status st = job->channel.read(reply);
  if (!st) {
    log::warning("%s socket: malformed response", job->channel.name().c_str());
    q->finish_job(job, nullptr, "unknown mail transport error");
    return;
  }
  if (reply.status != 0) job->message->agent_deferred = true;
  q->finish_job(job, &reply, {});
}

void QueueManager::finish_job(Job* job, const proto::DeliverReply* reply, const std::string& failure) {
  Message& m = *job->message;
  std::string key = destination_key(*job);
  if (--in_flight_[key] <= 0) in_flight_.erase(key);
  if (job->reply_event) {
    event_free(job->reply_event);
    job->reply_event = nullptr;
  }
  job->channel.close();
  if (!failure.empty()) {
    // Which of the job's recipients did the agent finish before it failed?
    std::set<off_t> done;
    std::string error;
    queue::Envelope now;
    auto reader = queue::QueueFileReader::open(layout_.path(kActive, m.id), false, &error);
    if (reader && reader->read_envelope(&now, &error))
      for (const queue::Recipient& r : now.recipients)
        if (!r.pending()) done.insert(r.offset);
    std::vector<size_t> left;
    for (size_t i : job->recipients)
      if (!done.count(m.envelope.recipients[i].offset)) left.push_back(i);
    defer_recipients(m, left, "none", "4.3.0", failure);
  } else if (reply && !reply->hop_status.status.empty()) {
    // The destination itself failed: its other jobs wait for the next run.
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (destination_key(**it) != key) {
        ++it;
        continue;
      }
      Job& other = **it;
      defer_recipients(*other.message, other.recipients, "none", reply->hop_status.status,
                       reply->hop_status.reason);
      Message& om = *other.message;
      it = pending_.erase(it);
      if (--om.jobs_left == 0 && &om != &m) message_done(om);
    }
  }
  std::unique_ptr<Job> owned = std::move(running_[job]);
  running_.erase(job);
  if (--m.jobs_left == 0) message_done(m);
  dispatch();
}

void QueueManager::defer_recipients(Message& m, const std::vector<size_t>& which, const std::string& relay,
                                    const std::string& status, const std::string& reason) {
  for (size_t i : which) {
    const queue::Recipient& r = m.envelope.recipients[i];
    deliver::StatusLine line;
    line.queue_id = m.id;
    line.recipient = {r.original.value_or(""), r.address, static_cast<long>(r.offset), r.dsn_orcpt, r.dsn_notify};
    line.relay = relay;
    line.stats = m.stats;
    line.dsn.status = status;
    line.dsn.reason = reason;
    std::string error;
    if (!deliver::defer_append(queue_dir_, line, 0, &error, flush_.get())) {
      log::warning("%s: defer service failure: %s", m.id.c_str(), error.c_str());
      m.problem = true;  // no defer log, but the message must stay
    }
  }
}

void QueueManager::message_done(Message& m) {
  const std::string id = m.id;
  const std::string sender = m.envelope.sender.value_or("");
  bool deferred = m.problem || m.agent_deferred || file_exists(layout_.path(kDefer, id));
  if (!deferred) {
    // The last word before a queue file goes: is every recipient finished?
    queue::Envelope now;
    std::string error;
    auto reader = queue::QueueFileReader::open(layout_.path(kActive, id), false, &error);
    if (!reader || !reader->read_envelope(&now, &error)) {
      log::warning("%s: %s", id.c_str(), error.c_str());
      deferred = true;
    } else if (size_t left = now.pending_recipients(); left > 0 && !m.redirected) {
      // (A redirected message is done when its one delivery is: Postfix
      // never delivers to the other recipients.)
      log::warning("%s: %zu recipient(s) not finished by the delivery agents; keeping the message", id.c_str(),
                   left);
      deferred = true;
      m.problem = true;
    }
  }
  auto notify = [&](std::string_view service, proto::BounceCommand command, int flags) {
    ipc::Channel ch;
    ipc::Status st = ipc::connect_service(ch, queue_dir_, proto::kClassPrivate, service);
    if (st) st = ch.expect_announcement(proto::kProtoBounce);
    proto::StatusReply reply;
    if (st) {
      proto::BounceNotifyRequest req;
      req.command = command;
      req.flags = flags;
      req.queue_name = std::string(kActive);
      req.queue_id = id;
      req.encoding = attribute(m.envelope, "encoding");
      req.smtputf8 = m.envelope.size ? static_cast<int>(m.envelope.size->smtputf8) : 0;
      req.sender = sender;
      req.dsn_envid = m.envelope.dsn_envid.value_or("");
      req.dsn_ret = m.envelope.dsn_ret;
      st = ch.request(req, reply);
    }
    if (!st || reply.status != 0) {
      log::warning("%s: %s service failure%s%s", id.c_str(), std::string(service).c_str(), st ? "" : ": ",
                   st ? "" : st.message().c_str());
      return false;
    }
    return true;
  };

  // Bounced recipients: the notification goes now (an empty log is just removed).
  std::string bounce_log = layout_.path(kBounce, id);
  struct stat st{};
  if (::stat(bounce_log.c_str(), &st) == 0) {
    if (st.st_size == 0) ::unlink(bounce_log.c_str());
    else if (!notify(proto::kServiceBounce, proto::BounceCommand::flush, proto::kBounceFlagNone)) deferred = true;
  }
  if (deferred) {
    long long age = ::time(nullptr) - m.stats.incoming_arrival.sec;
    long long lifetime = sender.empty() ? bounce_lifetime_ : max_lifetime_;
    if (age > lifetime && !m.problem) {
      // Too old: the defer log becomes a non-delivery notification, and the
      // bounce service marks those recipients done.
      log::info("%s: from=<%s>, status=expired, returned to sender", id.c_str(), sender.c_str());
      if (notify(proto::kServiceDefer, proto::BounceCommand::flush, proto::kBounceFlagDelrcpt)) deferred = false;
    } else if (m.envelope.warn_time && *m.envelope.warn_time > 0 && ::time(nullptr) >= *m.envelope.warn_time - 1) {
      // delay_warning_time passed: tell the sender once.
      if (notify(proto::kServiceDefer, proto::BounceCommand::warn, proto::kBounceFlagNone)) {
        std::string error;
        auto writer = queue::QueueFileReader::open(layout_.path(kActive, id), true, &error);
        if (!writer || !writer->update_warn_time(m.envelope, 0, &error))
          log::warning("%s: update warning time: %s", id.c_str(), error.c_str());
      }
    }
    if (deferred) {
      long long delay = std::clamp(age, min_backoff_, max_backoff_);
      std::string error;
      if (!layout_.move(id, kActive, kDeferred, &error)) {
        log::warning("%s: %s", id.c_str(), error.c_str());
      } else {
        time_t when = ::time(nullptr) + static_cast<time_t>(delay);
        utimbuf times{when, when};
        ::utime(layout_.path(kDeferred, id).c_str(), &times);
      }
      active_.erase(id);
      return;
    }
  }
  std::string error;
  if (!layout_.remove(kActive, id, &error)) log::warning("%s: remove: %s", id.c_str(), error.c_str());
  else log::info("%s: removed", id.c_str());
  active_.erase(id);
}

}  // namespace mta::qmgr
