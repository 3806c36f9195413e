// queue_manager.cpp: see queue_manager.hpp.
#include "qmgr/queue_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "address/address.hpp"
#include "config/master_cf.hpp"
#include "deliver/delivery_status.hpp"
#include "deliver/status_reporter.hpp"
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

double now_seconds() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// The retry service: the error agent that defers instead of bouncing.
constexpr std::string_view kRetryTransport = "retry";

}  // namespace

QueueManager::QueueManager(server::ServerContext& ctx)
    : ctx_(ctx),
      layout_(queue::QueueLayout::from_config(ctx.config)),
      queue_dir_(ctx.config.get("queue_directory")),
      resolver_(queue_dir_, std::string(proto::kClassPrivate), std::string(proto::kServiceRewrite),
                resolver_options()) {
  defer_transports_ = ctx.config.get_list("defer_transports");
  recipient_delimiter_ = ctx.config.get("recipient_delimiter");
  verp_bounces_off_ = ctx.config.get_bool("disable_verp_bounces");
  flush_ = deliver::flush_client_from_config(ctx.config);
  active_limit_ = ctx.config.get_int("qmgr_message_active_limit");
  recipient_limit_ = ctx.config.get_int("qmgr_message_recipient_limit");
  min_backoff_ = ctx.config.get_time("minimal_backoff_time");
  max_backoff_ = ctx.config.get_time("maximal_backoff_time");
  max_lifetime_ = ctx.config.get_time("maximal_queue_lifetime", 'd');
  bounce_lifetime_ = ctx.config.get_time("bounce_queue_lifetime", 'd');
  run_delay_ = ctx.config.get_time("queue_run_delay");
  daemon_timeout_ = ctx.config.get_time("qmgr_daemon_timeout");
  read_process_limits();
  scheduler_ = std::make_unique<sched::Scheduler>(
      [this](const std::string& t) { return transport_params(t); }, static_cast<double>(min_backoff_));
  scheduler_->set_transport_dead_time(static_cast<double>(ctx.config.get_time("transport_retry_time")));
  if (ctx.config.get_bool("destination_concurrency_feedback_debug"))
    scheduler_->set_debug_log([](const std::string& line) { log::info("%s", line.c_str()); });
  owner_ = this;
}

QueueManager::~QueueManager() {
  if (timer_) event_free(timer_);
  if (sched_timer_) event_free(sched_timer_);
  if (feed_event_) event_free(feed_event_);
  for (auto& [id, job] : jobs_)
    if (job->reply_event) event_free(job->reply_event);
  for (auto& [transport, list] : idle_agents_)
    for (auto& idle : list) event_free(idle->event);
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
  sched_timer_ = evtimer_new(ctx_.base, &QueueManager::on_sched_timer, this);
  feed_event_ = evtimer_new(ctx_.base, &QueueManager::on_feed, this);
  timeval tv{1, 0};
  evtimer_add(timer_, &tv);
  scan_incoming();
  scan_deferred();
}

// Postfix's qmgr_trigger_event(): identical requests collapse; a flush
// ('F') revives dead destinations and transports at once and lets the next
// scan of each queue ignore defer_transports; 'A' makes the next scans
// ignore file times; 'I', 'W' and 'D' start scans.
void QueueManager::trigger(std::string_view bytes) {
  bool incoming = false, deferred = false;
  for (char c : bytes) {
    switch (c) {
      case proto::kTriggerWakeup: incoming = true; break;
      case proto::kQmgrScanIncoming: incoming = true; break;
      case proto::kQmgrScanDeferred: deferred = true; break;
      case proto::kQmgrScanAll:
        incoming_flags_ |= kScanAll;
        deferred_flags_ |= kScanAll;
        break;
      case proto::kQmgrFlushDead:
        scheduler_->enable_all();
        incoming_flags_ |= kFlushDfxp;
        deferred_flags_ |= kFlushDfxp;
        break;
      default: break;
    }
  }
  if (incoming) scan_incoming();
  if (deferred || ::time(nullptr) - last_deferred_scan_ >= run_delay_) scan_deferred();
  dispatch();
}

void QueueManager::on_timer(evutil_socket_t, short, void* arg) {
  auto* q = static_cast<QueueManager*>(arg);
  if (::time(nullptr) - q->last_deferred_scan_ >= q->run_delay_) q->scan_deferred();
  q->scan_incoming();  // a trigger may have been lost while qmgr was busy
  timeval tv{std::min<long long>(q->run_delay_, 60), 0};
  evtimer_add(q->timer_, &tv);
}

void QueueManager::on_sched_timer(evutil_socket_t, short, void* arg) {
  // A dead destination comes back, or a rate delay is over.
  static_cast<QueueManager*>(arg)->dispatch();
}

// Postfix keeps at most qmgr_message_active_limit messages and about
// qmgr_message_recipient_limit recipients in memory (but always at least
// one message, so that a huge one still moves).
bool QueueManager::room_for_more() const {
  if (static_cast<long long>(active_.size()) >= active_limit_) return false;
  return active_.empty() || recipient_limit_ <= 0 || recipients_in_memory_ < recipient_limit_;
}

void QueueManager::scan_incoming() {
  start_scan(true);
  feed();
}

void QueueManager::scan_deferred() {
  start_scan(false);
  feed();
}

// The ready files of incoming/ or of deferred/ (those whose time has come,
// or all of them after 'A'), unless a scan of that queue is in progress:
// then it runs again when that one ends.
void QueueManager::start_scan(bool incoming) {
  Scan& scan = incoming ? incoming_scan_ : deferred_scan_;
  int& flags = incoming ? incoming_flags_ : deferred_flags_;
  if (!scan.ids.empty()) {
    // As Postfix's qmgr_scan_request(): a flush applies to the rest of
    // the scan in progress as well as to the next one.
    scan.flags |= flags & kFlushDfxp;
    scan.again = true;
    return;
  }
  scan.flags = flags;
  flags = 0;
  scan.again = false;
  if (incoming) {
    incoming_backlog_ = false;
  } else {
    deferred_backlog_ = false;
    last_deferred_scan_ = ::time(nullptr);
  }
  bool all = (scan.flags & kScanAll) != 0;
  time_t last = last_deferred_scan_;
  layout_.scan(incoming ? kIncoming : kDeferred, [&](std::string_view id, const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0 || !queue::is_ready_queue_file(st.st_mode)) return;
    if (incoming || all || st.st_mtime <= last) scan.ids.emplace_back(id);
  });
}

// Moves up to kFeedBatch files of the scans in progress into active/,
// taking from incoming/ and deferred/ in turn as Postfix's qmgr_loop()
// does, then starts deliveries; the rest follows on the next pass of the
// event loop.  A scan that runs out of room stops, and starts again when
// deliveries free some (rescan_when_room).
void QueueManager::feed() {
  size_t moved = 0;
  bool more = true;
  while (moved < kFeedBatch && more) {
    more = false;
    for (bool incoming : {true, false}) {
      Scan& scan = incoming ? incoming_scan_ : deferred_scan_;
      if (scan.ids.empty()) continue;
      if (!room_for_more()) {
        (incoming ? incoming_backlog_ : deferred_backlog_) = true;
        // The scan when there is room covers the rest, with this one's
        // flags (a deferred scan after 'A' must not go back to file times).
        (incoming ? incoming_flags_ : deferred_flags_) |= scan.flags;
        scan.ids.clear();
        scan.again = false;
        continue;
      }
      std::string id = std::move(scan.ids.front());
      scan.ids.pop_front();
      std::string error;
      if (!layout_.move(id, incoming ? kIncoming : kDeferred, kActive, &error))
        log::warning("%s: %s", id.c_str(), error.c_str());
      else
        activate(id, scan.flags);
      ++moved;
      more = more || !scan.ids.empty();
    }
  }
  for (bool incoming : {true, false}) {
    Scan& scan = incoming ? incoming_scan_ : deferred_scan_;
    if (scan.ids.empty() && scan.again) start_scan(incoming);
  }
  dispatch();
  if (!incoming_scan_.ids.empty() || !deferred_scan_.ids.empty()) {
    timeval now{0, 0};
    evtimer_add(feed_event_, &now);
  }
}

void QueueManager::on_feed(evutil_socket_t, short, void* arg) { static_cast<QueueManager*>(arg)->feed(); }

void QueueManager::activate(const std::string& id, int scan_flags) {
  std::string path = layout_.path(kActive, id), error;
  auto msg = std::make_unique<Message>();
  msg->id = id;
  msg->override_defer_transports = (scan_flags & kFlushDfxp) != 0;
  // The flush service marks the files of a site it flushes (postqueue -s,
  // ETRN): their destinations get another chance and defer_transports does
  // not hold them back (Postfix's MAIL_QUEUE_STAT_UNTHROTTLE).
  if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && (st.st_mode & queue::kQueueFileUnthrottle)) {
    msg->override_defer_transports = msg->flush_each = true;
    ::chmod(path.c_str(), st.st_mode & 07777 & ~queue::kQueueFileUnthrottle);
  }
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
  msg->trace_flags = std::atoi(attribute(env, "trace_flags").c_str());
  // sendmail -v: once its report is sent, the record goes (below), so that
  // a later attempt of a deferred message does not report again.
  if ((msg->trace_flags & deliver::kTraceFlagsMask) == proto::kDelReqFlagRecordDelivery)
    if (const queue::Attribute* a = env.find_attribute("trace_flags")) msg->trace_flags_offset = a->offset;
  msg->notify_success = env.size && (env.size->qmgr_flags & queue::qmgr_flag::kNotifySuccess);
  for (const queue::Recipient& r : env.recipients)
    if (r.dsn_notify & deliver::kDsnNotifySuccess) msg->notify_success = true;
  msg->rcpts_held = static_cast<long long>(env.recipients.size());
  recipients_in_memory_ += msg->rcpts_held;
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

long long QueueManager::transport_time(const std::string& transport, std::string_view suffix,
                                       std::string_view fallback) const {
  std::string name = transport + std::string(suffix);
  if (auto it = limits_.find(name); it != limits_.end()) return it->second;
  long long value = 0;
  try {
    value = ctx_.config.lookup(name) ? ctx_.config.get_time(name) : ctx_.config.get_time(fallback);
  } catch (const config::ConfigError& e) {
    log::warning("%s", e.what());
  }
  limits_.emplace(std::move(name), value);
  return value;
}

sched::Feedback QueueManager::transport_feedback(const std::string& transport, std::string_view suffix,
                                                 std::string_view fallback) const {
  std::string name = transport + std::string(suffix);
  std::string value;
  if (auto v = ctx_.config.lookup(name)) {
    value = ctx_.config.get(name);
  } else {
    name = std::string(fallback);
    value = ctx_.config.get(fallback);
  }
  if (auto fb = sched::parse_feedback(value)) return *fb;
  log::warning("%s: ignoring malformed or unreasonable feedback: %s", name.c_str(), value.c_str());
  return sched::Feedback{1, false};
}

// The scheduler asks once per transport (a reload starts a new qmgr).
sched::TransportParams QueueManager::transport_params(const std::string& t) const {
  sched::TransportParams p;
  p.dest_concurrency_limit = static_cast<int>(std::max<long long>(
      0, transport_limit(t, "_destination_concurrency_limit", "default_destination_concurrency_limit")));
  p.init_dest_concurrency = static_cast<int>(std::max<long long>(
      1, transport_limit(t, "_initial_destination_concurrency", "initial_destination_concurrency")));
  p.recipient_limit = static_cast<int>(std::max<long long>(
      1, transport_limit(t, "_destination_recipient_limit", "default_destination_recipient_limit")));
  p.fail_cohort_limit = static_cast<double>(std::max<long long>(
      0, transport_limit(t, "_destination_concurrency_failed_cohort_limit",
                         "default_destination_concurrency_failed_cohort_limit")));
  p.positive = transport_feedback(t, "_destination_concurrency_positive_feedback",
                                  "default_destination_concurrency_positive_feedback");
  p.negative = transport_feedback(t, "_destination_concurrency_negative_feedback",
                                  "default_destination_concurrency_negative_feedback");
  p.dest_rate_delay =
      static_cast<double>(transport_time(t, "_destination_rate_delay", "default_destination_rate_delay"));
  p.transport_rate_delay =
      static_cast<double>(transport_time(t, "_transport_rate_delay", "default_transport_rate_delay"));
  auto it = process_limits_.find(t);
  p.process_limit = it != process_limits_.end() ? it->second
                                                : static_cast<int>(ctx_.config.get_int("default_process_limit"));
  return p;
}

// Postfix's qmgr learns a transport's process limit by waiting for a free
// agent; ours connects synchronously, so it reads master.cf's maxproc of
// the unix service (0: no limit, "-": default_process_limit) and never asks
// for more agents than that at a time.
void QueueManager::read_process_limits() {
  std::string path = ctx_.config.master_cf_path();
  std::ifstream in(path);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> warnings;
  try {
    long long fallback = ctx_.config.get_int("default_process_limit");
    for (const config::MasterEntry& e : config::parse_master_cf(text.str(), path, &warnings)) {
      if (e.type != "unix") continue;
      int limit = e.process_limit == "-" ? static_cast<int>(fallback) : std::atoi(e.process_limit.c_str());
      process_limits_[e.service] = limit;
    }
  } catch (const config::ConfigError& e) {
    log::warning("%s", e.what());
  }
  warn_unimplemented();
}

// Postfix's preemptive job scheduler (delivery slots) is not implemented:
// mail is scheduled per destination, round robin (scheduler.hpp).  Its
// parameters, when set in main.cf or master.cf, are named in a warning.
void QueueManager::warn_unimplemented() const {
  static constexpr std::string_view kSlotParams[] = {"_delivery_slot_cost", "_delivery_slot_loan",
                                                     "_delivery_slot_discount", "_minimum_delivery_slots"};
  for (const auto& [name, value] : ctx_.config.explicit_values()) {
    for (std::string_view suffix : kSlotParams) {
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        log::warning("%s is not implemented by this qmgr (no preemptive job scheduler): ignoring \"%s = %s\"",
                     name.c_str(), name.c_str(), value.c_str());
        break;
      }
    }
  }
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
  std::vector<sched::ResolvedRecipient> resolved;
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
    // (Address verification probes skip the content filter, as in Postfix.)
    if (!env.redirect && env.filter && !(m.trace_flags & deliver::kTraceOnlyMask) && filter_route(m, r, &reply)) {
      // The content filter replaces the resolver.
    } else {
      // Postfix's resolve_clnt remembers its last answer; the same
      // sender and recipient come back message after message.
      if (const proto::ResolveReply* known = resolve_cache_.find(sender, r.address)) {
        reply = *known;
      } else {
        proto::ResolveRequest req;
        req.sender = sender;
        req.address = r.address;
        st = resolver_.call(req, reply);
        if (st && !(reply.flags & proto::kResolveFlagFail)) resolve_cache_.remember(sender, r.address, reply);
      }
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
    // defer_transports, unless a flush lifted it for this message.
    bool held_back = !m.override_defer_transports &&
                     std::find(defer_transports_.begin(), defer_transports_.end(), reply.transport) !=
                         defer_transports_.end();
    if (held_back) {
      defer_recipients(m, {i}, "none", "4.3.2", "deferred transport");
      continue;
    }
    resolved.push_back({i, reply.transport, reply.nexthop, r.address});
  }
  auto recipient_limit = [this](const std::string& t) {
    return static_cast<int>(
        transport_limit(t, "_destination_recipient_limit", "default_destination_recipient_limit"));
  };
  std::vector<std::unique_ptr<Job>> jobs;
  // A VERP message goes one recipient at a time (Postfix's single_rcpt).
  // (Postfix ignores VERP for the null sender.)
  const bool verp = env.verp.has_value() && env.verp->size() == 2 && !sender.empty();
  for (sched::PlannedEntry& e : sched::plan_entries(resolved, recipient_limit, recipient_delimiter_, verp)) {
    auto job = std::make_unique<Job>();
    job->id = next_job_id_++;
    job->message = &m;
    job->transport = std::move(e.transport);
    job->queue = std::move(e.queue);
    job->nexthop = std::move(e.nexthop);
    job->recipients = std::move(e.recipients);
    ++m.jobs_left;
    jobs.push_back(std::move(job));
  }
  // Counted first, queued next: a job that fails at once must not finish
  // the message while its siblings are still being queued.
  ++m.jobs_left;
  for (auto& job : jobs) {
    if (m.flush_each) scheduler_->enable_queue(job->transport, job->queue);
    queue_job(std::move(job));
  }
  if (--m.jobs_left == 0) message_done(m);
}

// A job joins its destination's queue, or, when the destination or its
// transport is dead, goes to the retry service at once.
void QueueManager::queue_job(std::unique_ptr<Job> job) {
  sched::Dsn why;
  if (scheduler_->add(job->transport, job->queue, job->id, &why)) {
    sched::EntryId id = job->id;
    jobs_[id] = std::move(job);
    return;
  }
  retry_job(std::move(job), why);
}

// Postfix's qmgr_defer_todo(): the retry service (the error agent in defer
// mode) defers the recipients with the reason as its next hop, so that it
// is logged asynchronously; when even that is dead, qmgr defers them itself.
void QueueManager::retry_job(std::unique_ptr<Job> job, const sched::Dsn& why) {
  if (job->transport != kRetryTransport) {
    job->transport = std::string(kRetryTransport);
    job->nexthop = why.status + " " + why.reason;
    job->queue = job->nexthop;
    sched::Dsn retry_why;
    if (scheduler_->add(job->transport, job->queue, job->id, &retry_why)) {
      sched::EntryId id = job->id;
      jobs_[id] = std::move(job);
      return;
    }
  }
  defer_recipients(*job->message, job->recipients, "none", why.status, why.reason);
  Job* raw = job.get();
  jobs_[raw->id] = std::move(job);
  job_done(raw);
}

void QueueManager::dispatch() {
  // A job that fails at once finishes inside start_job() and dispatches
  // again from there; the nested call only asks this loop to go on.
  if (dispatching_) {
    dispatch_again_ = true;
    return;
  }
  dispatching_ = true;
  do {
    dispatch_again_ = false;
    scheduler_->tick(now_seconds());
    auto ready = [this](const std::string& transport) {
      auto it = connecting_.find(transport);
      if (it == connecting_.end() || it->second < kMaxConnecting) return true;
      return has_idle_agent(transport);
    };
    while (auto sel = scheduler_->select(now_seconds(), ready)) {
      auto it = jobs_.find(sel->id);
      if (it == jobs_.end()) {
        log::warning("scheduler selected an unknown delivery request %llu", static_cast<unsigned long long>(sel->id));
        scheduler_->done_ok(*sel, now_seconds());
        continue;
      }
      Job* job = it->second.get();
      job->selection = *sel;
      job->running = true;
      start_job(job);
    }
  } while (dispatch_again_);
  dispatching_ = false;
  arm_sched_timer();
}

void QueueManager::arm_sched_timer() {
  double now = now_seconds();
  double next = scheduler_->tick(now);
  if (!sched_timer_) return;
  evtimer_del(sched_timer_);
  if (next <= 0) return;
  double wait = std::max(0.01, next - now);
  timeval tv{static_cast<time_t>(wait), static_cast<suseconds_t>((wait - static_cast<double>(static_cast<time_t>(wait))) * 1e6)};
  evtimer_add(sched_timer_, &tv);
}

bool QueueManager::start_job(Job* job) {
  if (!job->retried && take_agent(job)) {
    send_request(job);
    return true;
  }
  ipc::ConnectOptions co;
  co.attempts = 1;
  co.timeout = std::chrono::seconds(daemon_timeout_);
  ipc::Status st = ipc::connect_service(job->channel, queue_dir_, proto::kClassPrivate, job->transport, co);
  if (!st) {
    log::warning("connect to transport %s/%s: %s", std::string(proto::kClassPrivate).c_str(),
                 job->transport.c_str(), st.message().c_str());
    finish_job(job, nullptr, "mail transport unavailable");
    return false;
  }
  // The agent speaks first, once it has taken the connection.  When every
  // agent of the transport is busy, that takes a new process (master forks
  // and execs one): wait for it in the loop, not here, so that the other
  // deliveries go on (replies, new requests to idle agents) meanwhile.
  // As Postfix's qmgr_transport_alloc(), a transport waits for one agent
  // at a time, so that a burst of mail does not start the transport's whole
  // process limit at once: new processes start only while the ones there
  // cannot keep up.
  ++connecting_[job->transport];
  job->reply_event = event_new(ctx_.base, job->channel.stream().fd(), EV_READ, &QueueManager::on_announce, job);
  timeval tv{static_cast<time_t>(daemon_timeout_), 0};
  event_add(job->reply_event, &tv);
  return true;
}

void QueueManager::on_announce(evutil_socket_t, short what, void* arg) {
  Job* job = static_cast<Job*>(arg);
  QueueManager* q = owner_;
  event_free(job->reply_event);
  job->reply_event = nullptr;
  if (--q->connecting_[job->transport] <= 0) q->connecting_.erase(job->transport);
  ipc::Status st = (what & EV_TIMEOUT)
                       ? ipc::Status(ipc::Errc::timeout, "timeout on " + job->channel.name() +
                                                             " while reading input attribute name")
                       : job->channel.expect_announcement(proto::kProtoDeliver);
  if (!st) {
    log::warning("connect to transport %s/%s: %s", std::string(proto::kClassPrivate).c_str(),
                 job->transport.c_str(), st.message().c_str());
    q->finish_job(job, nullptr, "mail transport unavailable");
    return;
  }
  q->send_request(job);
  q->dispatch();  // the transport may take its next delivery
}

void QueueManager::send_request(Job* job) {
  Message& m = *job->message;
  const queue::Envelope& env = m.envelope;
  proto::DeliverRequest req;
  // Postfix: the message's trace flags (sendmail -v, -bv) and the default
  // "delete done recipients" flags.
  req.flags = (m.trace_flags & deliver::kTraceFlagsMask) | proto::kDelReqFlagSuccess | proto::kDelReqFlagBounce;
  req.flags |= conn_cache_.select(job->transport, job->selection.queue,
                                  scheduler_->busy(job->transport, job->selection.queue), now_seconds());
  job->cache_counted = true;
  req.queue_name = std::string(kActive);
  req.queue_id = m.id;
  req.data_offset = static_cast<long>(env.data_offset);
  req.data_size = m.data_size;
  req.nexthop = job->nexthop;
  req.encoding = attribute(env, "encoding");
  req.smtputf8 = env.size ? static_cast<int>(env.size->smtputf8) : 0;
  req.sender = env.sender.value_or("");
  if (env.verp && env.verp->size() == 2 && !req.sender.empty() && !job->recipients.empty()) {
    // VERP: the sender names the (original) recipient of this delivery.
    const queue::Recipient& first = env.recipients[job->recipients.front()];
    const std::string& rcpt = first.original.value_or("").empty() ? first.address : *first.original;
    req.sender = address::verp_sender(*env.verp, req.sender, rcpt);
  }
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
  ipc::Status st = proto::write_deliver_request(job->channel, req);
  if (st) st = job->channel.flush();
  if (!st && job->reused) return reconnect(job);  // the agent had left
  if (!st) {
    log::warning("%s: %s", m.id.c_str(), st.message().c_str());
    finish_job(job, nullptr, "mail transport unavailable");
    return;
  }
  job->reply_event = event_new(ctx_.base, job->channel.stream().fd(), EV_READ, &QueueManager::on_reply, job);
  timeval tv{static_cast<time_t>(daemon_timeout_), 0};
  event_add(job->reply_event, &tv);
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
  if (st && job->reused) q->reuse_failures_.erase(job->transport);
  if (!st && job->reused && (st.code() == ipc::Errc::closed || st.code() == ipc::Errc::io))
    return q->reconnect(job);  // the agent left without a word
  if (!st) {
    log::warning("%s socket: malformed response", job->channel.name().c_str());
    q->finish_job(job, nullptr, "unknown mail transport error");
    return;
  }
  if (reply.status != 0) job->message->agent_deferred = true;
  q->finish_job(job, &reply, {});
}

// Postfix's qmgr_deliver_update(): a reply with a hop status (the agent
// could not connect or complete the handshake) is negative feedback for the
// destination; any other reply is positive feedback; an agent that cannot
// be reached or crashes makes the transport dead for a while.  What the
// scheduler hands back (the waiting mail of what just died) goes to retry.
void QueueManager::finish_job(Job* job, const proto::DeliverReply* reply, const std::string& failure) {
  Message& m = *job->message;
  if (job->reply_event) {
    event_free(job->reply_event);
    job->reply_event = nullptr;
  }
  if (reply && failure.empty() && job->channel.is_open())
    park_agent(job->transport, std::move(job->channel));
  else
    job->channel.close();
  std::vector<sched::EntryId> back;
  sched::Dsn why;
  double now = now_seconds();
  // Only a delivery that conn_cache_.select() counted: one whose agent
  // never answered would end another delivery's count.
  if (job->cache_counted) conn_cache_.done(job->transport, job->selection.queue, now);
  if (!failure.empty()) {
    std::vector<size_t> left;
    recipients_touched(*job, &left);
    defer_recipients(m, left, "none", "4.3.0", failure);
    if (failure != "mail transport unavailable")
      log::warning("transport %s failure -- see a previous warning/fatal/panic logfile record for the problem "
                   "description",
                   job->transport.c_str());
    why = {"4.3.0", failure};
    back = scheduler_->done_transport_failure(job->selection, why, now);
  } else if (reply && reply->status != 0 && !reply->hop_status.status.empty()) {
    back = scheduler_->done_hop_failure(job->selection, {reply->hop_status.status, reply->hop_status.reason}, now,
                                        &why);
  } else {
    scheduler_->done_ok(job->selection, now);
  }
  job->running = false;
  for (sched::EntryId id : back) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    std::unique_ptr<Job> other = std::move(it->second);
    jobs_.erase(it);
    retry_job(std::move(other), why);
  }
  job_done(job);
  dispatch();
}

// Which of the job's recipients are still pending in the queue file (the
// agent marks each one it finishes); true when it finished any.
bool QueueManager::recipients_touched(const Job& job, std::vector<size_t>* left) const {
  const Message& m = *job.message;
  std::set<off_t> done;
  std::string error;
  queue::Envelope current;
  auto reader = queue::QueueFileReader::open(layout_.path(kActive, m.id), false, &error);
  if (reader && reader->read_envelope(&current, &error))
    for (const queue::Recipient& r : current.recipients)
      if (!r.pending()) done.insert(r.offset);
  bool touched = false;
  for (size_t i : job.recipients) {
    if (!done.count(m.envelope.recipients[i].offset)) left->push_back(i);
    else touched = true;
  }
  return touched;
}

// Agent connections are kept between deliveries: a request on a kept
// connection saves the connection, master's two status reports for it and
// the announcement (Postfix's qmgr connects anew for every delivery).  Our
// agents take requests one after another until their max_use, a reload or
// qmgr's close; an agent of Postfix's kind closes after one, which shows
// here as an EOF (the connection is dropped) or as a request that finds the
// agent gone: the request is then sent again on a new connection, once,
// unless the agent had finished a recipient of it (then it crashed, and the
// delivery is deferred as any failed one).
void QueueManager::park_agent(const std::string& transport, ipc::Channel channel) {
  if (auto it = no_reuse_until_.find(transport); it != no_reuse_until_.end()) {
    if (it->second > now_seconds()) {
      channel.close();
      return;
    }
    no_reuse_until_.erase(it);  // try again
  }
  auto idle = std::make_unique<IdleAgent>();
  idle->transport = transport;
  idle->channel = std::move(channel);
  idle->event = event_new(ctx_.base, idle->channel.stream().fd(), EV_READ, &QueueManager::on_idle_agent, idle.get());
  timeval tv{kAgentIdleTime, 0};
  event_add(idle->event, &tv);
  idle_agents_[transport].push_back(std::move(idle));
}

// True when the newest kept connection of TRANSPORT (the one take_agent()
// takes) still has its agent.  Newest first, the ones whose agent has left
// (it shows as readable: EOF) are dropped, and all of them while the
// transport's reuse is paused.
bool QueueManager::has_idle_agent(const std::string& transport) {
  auto it = idle_agents_.find(transport);
  if (it == idle_agents_.end()) return false;
  auto& list = it->second;
  auto paused = no_reuse_until_.find(transport);
  bool drop_all = paused != no_reuse_until_.end() && paused->second > now_seconds();
  while (!list.empty()) {
    IdleAgent& idle = *list.back();
    pollfd p{idle.channel.stream().fd(), POLLIN, 0};
    if (!drop_all && ::poll(&p, 1, 0) == 0) return true;
    event_free(idle.event);
    idle.channel.close();
    list.pop_back();
  }
  return false;
}

bool QueueManager::take_agent(Job* job) {
  if (!has_idle_agent(job->transport)) return false;
  auto& list = idle_agents_[job->transport];
  std::unique_ptr<IdleAgent> idle = std::move(list.back());
  list.pop_back();
  event_free(idle->event);
  job->channel = std::move(idle->channel);
  job->reused = true;
  log::debug("%s: reusing connection to %s/%s", job->message->id.c_str(), std::string(proto::kClassPrivate).c_str(),
             job->transport.c_str());
  return true;
}

void QueueManager::on_idle_agent(evutil_socket_t, short, void* arg) {
  // The agent closed (or sent what it should not), or the connection has
  // been idle for kAgentIdleTime: let the agent go.
  auto* idle = static_cast<IdleAgent*>(arg);
  auto& list = owner_->idle_agents_[idle->transport];
  auto it = std::find_if(list.begin(), list.end(), [idle](const auto& p) { return p.get() == idle; });
  if (it == list.end()) return;
  event_free(idle->event);
  idle->channel.close();
  list.erase(it);
}

void QueueManager::reconnect(Job* job) {
  std::string name = job->channel.name();
  if (job->reply_event) {
    event_free(job->reply_event);
    job->reply_event = nullptr;
  }
  job->channel.close();
  job->reused = false;
  job->retried = true;
  // Agents that serve one request per connection (Postfix's) fail every
  // reuse: after a few failures in a row, stop keeping the transport's
  // connections for a while.  (Ours fail one now and then: a reload, a
  // changed table, max_use; a reuse that works resets the count.)
  if (++reuse_failures_[job->transport] >= kMaxReuseFailures) {
    reuse_failures_.erase(job->transport);
    no_reuse_until_[job->transport] = now_seconds() + kNoReuseTime;
    log::debug("transport %s: agents take one request per connection", job->transport.c_str());
  }
  if (job->cache_counted) conn_cache_.done(job->transport, job->selection.queue, now_seconds());
  job->cache_counted = false;
  std::vector<size_t> left;
  if (recipients_touched(*job, &left)) {
    // The agent read the request and died in the middle of it.
    log::warning("%s socket: malformed response", name.c_str());
    finish_job(job, nullptr, "unknown mail transport error");
    return;
  }
  start_job(job);  // on failure it finishes the job itself
}

void QueueManager::job_done(Job* job) {
  Message& m = *job->message;
  // As Postfix, recipients leave the in-memory budget as their deliveries
  // end, so that one huge message does not hold back all other mail.
  release_recipients(m, static_cast<long long>(job->recipients.size()));
  jobs_.erase(job->id);  // job is gone from here on
  if (--m.jobs_left == 0) message_done(m);
}

void QueueManager::release_recipients(Message& m, long long n) {
  n = std::min(n, m.rcpts_held);
  m.rcpts_held -= n;
  recipients_in_memory_ -= n;
  rescan_when_room();
}

void QueueManager::rescan_when_room() {
  if ((incoming_backlog_ || deferred_backlog_) && room_for_more()) {
    // Not from inside this delivery's bookkeeping: on the next loop pass.
    timeval now{0, 0};
    event_base_once(ctx_.base, -1, EV_TIMEOUT, &QueueManager::on_room, this, &now);
  }
}

void QueueManager::on_room(evutil_socket_t, short, void* arg) {
  auto* q = static_cast<QueueManager*>(arg);
  if (q->incoming_backlog_ && q->room_for_more()) q->scan_incoming();
  if (q->deferred_backlog_ && q->room_for_more()) q->scan_deferred();
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
    // The agents mark a recipient done by rewriting its record's type byte,
    // at the offset read at activation: one byte per recipient (parsing
    // the whole envelope again was 29% of qmgr's instructions).
    size_t left = 0;
    const std::string path = layout_.path(kActive, id);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      log::warning("%s: open %s: %s", id.c_str(), path.c_str(), std::strerror(errno));
      deferred = true;
    }
    for (const queue::Recipient& r : m.envelope.recipients) {
      if (fd < 0 || !r.pending()) continue;  // finished before this attempt
      char type = 0;
      ssize_t n = ::pread(fd, &type, 1, r.offset);
      if (n != 1) {
        log::warning("%s: read %s: %s", id.c_str(), path.c_str(), n < 0 ? std::strerror(errno) : "unexpected EOF");
        deferred = true;
        break;
      }
      if (type == queue::rec::kRcpt) ++left;
    }
    if (fd >= 0) ::close(fd);
    if (!deferred && left > 0 && !m.redirected) {
      // (A redirected message is done when its one delivery is: Postfix
      // never delivers to the other recipients.)
      log::warning("%s: %zu recipient(s) not finished by the delivery agents; keeping the message", id.c_str(),
                   left);
      deferred = true;
      m.problem = true;
    }
  }
  // A VERP message's failures go to VERP addresses, one notice each
  // (bounce_flush_verp), unless disable_verp_bounces.
  const std::string verp_delims = m.envelope.verp && m.envelope.verp->size() == 2 && !verp_bounces_off_ &&
                                          !sender.empty()
                                      ? *m.envelope.verp
                                      : std::string();
  auto notify = [&](std::string_view service, proto::BounceCommand command, int flags) {
    ipc::Channel ch;
    ipc::Status st = ipc::connect_service(ch, queue_dir_, proto::kClassPrivate, service);
    if (st) st = ch.expect_announcement(proto::kProtoBounce);
    proto::StatusReply reply;
    if (st) {
      proto::BounceNotifyArgs args;
      args.flags = flags;
      args.queue_name = std::string(kActive);
      args.queue_id = id;
      args.encoding = attribute(m.envelope, "encoding");
      args.smtputf8 = m.envelope.size ? static_cast<int>(m.envelope.size->smtputf8) : 0;
      args.sender = sender;
      args.dsn_envid = m.envelope.dsn_envid.value_or("");
      args.dsn_ret = m.envelope.dsn_ret;
      if (command == proto::BounceCommand::flush && !verp_delims.empty()) {
        proto::BounceVerpRequest req;
        static_cast<proto::BounceNotifyArgs&>(req) = args;
        req.verp_delims = verp_delims;
        st = ch.request(req, reply);
      } else {
        proto::BounceNotifyRequest req;
        static_cast<proto::BounceNotifyArgs&>(req) = args;
        req.command = command;
        st = ch.request(req, reply);
      }
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
  // Success notices (NOTIFY=SUCCESS, also the "expanded" records cleanup
  // wrote for an alias) and sendmail -v / -bv reports: the trace service
  // sends what trace/ID holds; with NOTIFY=SUCCESS the file may not exist
  // (nothing delivered yet, or to other recipients), which it handles.
  // As Postfix, this runs after every attempt, not only the last one.
  if ((m.trace_flags & (proto::kDelReqFlagUserVrfy | proto::kDelReqFlagRecordDelivery)) || m.notify_success) {
    if (!notify(proto::kServiceTrace, proto::BounceCommand::trace, m.trace_flags & deliver::kTraceFlagsMask)) {
      log::warning("%s: trace logfile update error", id.c_str());
      deferred = true;
    } else if (m.trace_flags_offset >= 0) {
      // As Postfix's qmgr_active_done_25_trace_flush(): the report is out.
      std::string error;
      auto writer = queue::QueueFileReader::open(layout_.path(kActive, id), true, &error);
      if (!writer || !writer->kill_attribute(m.trace_flags_offset, &error))
        log::fatal("update queue file %s: %s", layout_.path(kActive, id).c_str(), error.c_str());
    }
  }
  if (deferred) {
    long long age = ::time(nullptr) - m.stats.incoming_arrival.sec;
    long long lifetime = sender.empty() ? bounce_lifetime_ : max_lifetime_;
    if (age >= lifetime && !m.problem) {
      // Too old: the defer log becomes a non-delivery notification.
      log::info("%s: from=<%s>, status=expired, returned to sender", id.c_str(), sender.c_str());
      if (notify(proto::kServiceDefer, proto::BounceCommand::flush, proto::kBounceFlagNone)) deferred = false;
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
      recipients_in_memory_ -= m.rcpts_held;
      active_.erase(id);  // m is gone from here on
      rescan_when_room();
      return;
    }
  }
  std::string error;
  if (!layout_.remove(kActive, id, &error)) log::warning("%s: remove: %s", id.c_str(), error.c_str());
  else log::info("%s: removed", id.c_str());
  recipients_in_memory_ -= m.rcpts_held;
  active_.erase(id);  // m is gone from here on
  rescan_when_room();
}

}  // namespace mta::qmgr
