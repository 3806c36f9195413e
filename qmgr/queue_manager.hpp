// queue_manager.hpp: qmgr's state: the active queue and its deliveries.
//
// Messages move incoming/ -> active/ (up to qmgr_message_active_limit
// messages and qmgr_message_recipient_limit recipients in memory), their
// recipients are resolved by trivial-rewrite, grouped by transport and
// destination into delivery requests of at most
// TRANSPORT_destination_recipient_limit recipients, and handed to the
// scheduling core (scheduler.hpp: slow start, failure feedback, dead
// destinations, round robin, process limits, rate delays), which says what
// goes next to the delivery agents (private/TRANSPORT, Postfix's delivery
// protocol).  An agent marks each recipient done in the queue file and
// reports failures to the bounce and defer services itself.  Mail for a dead
// destination or transport goes to the retry service (the error agent) with
// "delivery temporarily suspended: REASON", as Postfix's qmgr_defer_todo();
// qmgr defers recipients itself only when the agent fails or when even the
// retry service is dead.  defer_transports holds mail back ("deferred
// transport") except in the first queue scans after a flush ('F' trigger:
// postqueue -f, sendmail -q) and for files the flush service marked
// (postqueue -s, ETRN), which also revive their destinations.
// When a message has no delivery left (Postfix's qmgr_active_done()):
//   a bounce log (bounce/ID) exists: the bounce service sends the
//     notification;
//   a recipient asked for NOTIFY=SUCCESS (or sendmail -v, -bv): the trace
//     service sends the success notification from trace/ID;
//   a delivery was deferred: when the message is maximal_queue_lifetime old
//     (bounce_queue_lifetime for mail from the null sender) the defer
//     service turns the defer log into a bounce ("status=expired, returned
//     to sender"); else at delay_warning_time the sender is warned once; the
//     message goes to deferred/ with its file time set to the next attempt
//     (its age, between minimal_backoff_time and maximal_backoff_time);
//   otherwise the queue file is removed ("QID: removed").
// Deferred mail is scanned every queue_run_delay; hold/ is left alone.  At
// start, whatever a dead qmgr left in active/ goes back to incoming/: a
// crash can repeat a delivery, never lose one.
#pragma once

#include <event2/event.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/flush_client.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/rewrite_client.hpp"
#include "ipc/service.hpp"
#include "qmgr/conn_cache_policy.hpp"
#include "qmgr/scheduler.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "server/server.hpp"

namespace mta::qmgr {

struct Message;

struct Job {
  sched::EntryId id = 0;
  Message* message = nullptr;
  std::string transport;
  std::string queue;  // the scheduler's destination (next hop, or recipient)
  std::string nexthop;
  std::vector<size_t> recipients;  // indexes into message->envelope.recipients
  bool running = false;
  sched::Scheduler::Selection selection{};
  ipc::Channel channel;
  struct event* reply_event = nullptr;  // the agent's announcement, then its reply
  bool cache_counted = false;           // the request went out (ConnCachePolicy::select)
  bool reused = false;   // on an agent connection kept from an earlier delivery
  bool retried = false;  // a kept connection failed it; this is its new connection
};

// An agent connection kept between deliveries (QueueManager::park_agent).
struct IdleAgent {
  std::string transport;
  ipc::Channel channel;
  struct event* event = nullptr;  // EOF from the agent, or kAgentIdleTime
};

struct Message {
  std::string id;
  queue::Envelope envelope;
  ipc::proto::MsgStats stats;
  long data_size = 0;
  int jobs_left = 0;
  bool problem = false;         // something was deferred without a defer log (keep the message)
  bool agent_deferred = false;  // an agent replied that it deferred recipients
  bool redirected = false;      // a redirect record: one recipient stands for all
  bool override_defer_transports = false;  // QMGR_FLUSH_DFXP: activated by a flush
  bool flush_each = false;      // QMGR_FLUSH_EACH: a flushed file revives its destinations
  int trace_flags = 0;          // the trace_flags attribute (sendmail -v, -bv)
  off_t trace_flags_offset = -1;  // its record, when it asks only for a record of deliveries
  bool notify_success = false;  // some recipient has NOTIFY=SUCCESS
  long long rcpts_held = 0;     // recipients counted in recipients_in_memory_
};

class QueueManager {
 public:
  explicit QueueManager(server::ServerContext& ctx);
  ~QueueManager();

  void start();                           // recover active/, first scans, timers
  void trigger(std::string_view bytes);  // master's wakeup, postqueue -f, cleanup

 private:
  static void on_announce(evutil_socket_t fd, short what, void* arg);
  static void on_reply(evutil_socket_t fd, short what, void* arg);
  void send_request(Job* job);
  static void on_room(evutil_socket_t fd, short what, void* arg);
  static void on_idle_agent(evutil_socket_t fd, short what, void* arg);
  void park_agent(const std::string& transport, ipc::Channel channel);
  bool take_agent(Job* job);
  bool has_idle_agent(const std::string& transport);
  void reconnect(Job* job);
  bool recipients_touched(const Job& job, std::vector<size_t>* left) const;
  static void on_timer(evutil_socket_t, short, void* arg);
  static void on_sched_timer(evutil_socket_t, short, void* arg);

  // Scan flags (Postfix's QMGR_SCAN_ALL, QMGR_FLUSH_DFXP) for the next scan.
  static constexpr int kScanAll = 1 << 0;
  static constexpr int kFlushDfxp = 1 << 1;
  static constexpr int kMaxConnecting = 1;  // per transport (start_job)
  // How long an agent connection is kept for the transport's next delivery.
  static constexpr int kAgentIdleTime = 2;  // seconds

  bool room_for_more() const;
  // A queue scan in progress, as Postfix's qmgr_scan: the ready files not
  // yet moved to active/.  They are fed kFeedBatch at a time, with the
  // deliveries of those already in active/ started in between (one pass of
  // the event loop per batch), so that a full incoming/ does not hold back
  // the first delivery until all of it is in memory.  A scan asked for
  // while one is in progress runs when it ends.
  struct Scan {
    std::deque<std::string> ids;
    int flags = 0;        // kScanAll, kFlushDfxp
    bool again = false;   // scan again when this one is done
  };
  static constexpr size_t kFeedBatch = 10;
  void scan_incoming();
  void scan_deferred();
  void start_scan(bool incoming);
  void feed();
  static void on_feed(evutil_socket_t, short, void* arg);
  void activate(const std::string& id, int scan_flags);
  void resolve_and_plan(Message& m);
  bool filter_route(const Message& m, const queue::Recipient& r, ipc::proto::ResolveReply* reply) const;
  void queue_job(std::unique_ptr<Job> job);
  void retry_job(std::unique_ptr<Job> job, const sched::Dsn& why);
  void dispatch();
  void arm_sched_timer();
  bool start_job(Job* job);
  void finish_job(Job* job, const ipc::proto::DeliverReply* reply, const std::string& failure);
  void job_done(Job* job);
  void defer_recipients(Message& m, const std::vector<size_t>& which, const std::string& relay,
                        const std::string& status, const std::string& reason);
  void message_done(Message& m);
  long long transport_limit(const std::string& transport, std::string_view suffix, std::string_view fallback) const;
  long long transport_time(const std::string& transport, std::string_view suffix, std::string_view fallback) const;
  sched::Feedback transport_feedback(const std::string& transport, std::string_view suffix,
                                     std::string_view fallback) const;
  sched::TransportParams transport_params(const std::string& transport) const;
  void read_process_limits();
  void warn_unimplemented() const;

  server::ServerContext& ctx_;
  queue::QueueLayout layout_;
  std::string queue_dir_;
  ipc::ServiceClient resolver_;
  ipc::RecentAnswers<ipc::proto::ResolveReply> resolve_cache_;  // (sender, address) -> answer
  std::map<std::string, std::unique_ptr<Message>> active_;
  std::map<sched::EntryId, std::unique_ptr<Job>> jobs_;  // waiting and running
  // Per transport: connections to agents that have not announced
  // themselves yet (see start_job).
  std::map<std::string, int> connecting_;
  // Per transport: agent connections kept after a delivery, newest last.
  std::map<std::string, std::vector<std::unique_ptr<IdleAgent>>> idle_agents_;
  std::map<std::string, int> reuse_failures_;      // per transport, in a row (reconnect)
  std::map<std::string, double> no_reuse_until_;   // transports whose connections are not kept now
  static constexpr int kMaxReuseFailures = 3;
  static constexpr double kNoReuseTime = 300;  // seconds
  sched::EntryId next_job_id_ = 1;
  std::unique_ptr<sched::Scheduler> scheduler_;
  ConnCachePolicy conn_cache_;  // on-demand connection caching (DEL_REQ_FLAG_CONN_*)
  mutable std::map<std::string, long long, std::less<>> limits_;  // TRANSPORT_SUFFIX -> value
  std::map<std::string, int> process_limits_;  // master.cf: unix service -> maxproc
  std::vector<std::string> defer_transports_;
  std::string recipient_delimiter_;
  bool verp_bounces_off_ = false;  // disable_verp_bounces
  std::shared_ptr<const ipc::FlushClient> flush_;  // told about deferred mail (fast_flush_domains)
  int incoming_flags_ = 0, deferred_flags_ = 0;    // for the next scan of each queue
  Scan incoming_scan_, deferred_scan_;
  struct event* feed_event_ = nullptr;
  bool dispatching_ = false;
  bool dispatch_again_ = false;
  long long active_limit_, recipient_limit_;
  long long recipients_in_memory_ = 0;
  // A scan stopped for want of room: scan again when deliveries free some.
  bool incoming_backlog_ = false, deferred_backlog_ = false;
  void release_recipients(Message& m, long long n);
  void rescan_when_room();
  long long min_backoff_, max_backoff_, max_lifetime_, bounce_lifetime_, run_delay_;
  long long daemon_timeout_ = 0;  // qmgr_daemon_timeout: an agent's announcement, then its reply
  struct event* timer_ = nullptr;
  struct event* sched_timer_ = nullptr;
  time_t last_deferred_scan_ = 0;
  static QueueManager* owner_;  // the one queue manager of this process, for event callbacks
};

}  // namespace mta::qmgr
