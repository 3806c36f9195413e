// queue_manager.hpp: qmgr's state: the active queue and its deliveries.
//
// Messages move incoming/ -> active/ (up to qmgr_message_active_limit),
// their recipients are resolved by trivial-rewrite and grouped by transport
// and next hop into delivery jobs of at most
// TRANSPORT_destination_recipient_limit recipients, which go to the
// delivery agents (private/TRANSPORT) over Postfix's delivery protocol, at
// most TRANSPORT_destination_concurrency_limit at a time per destination.
// An agent marks each recipient done in the queue file and reports
// failures to the bounce and defer services itself; qmgr defers a job's
// recipients itself when the agent cannot be reached or fails, and when the
// transport is in defer_transports.  When a message has no job left:
//   a defer log (defer/ID) exists: the message goes to deferred/ with its
//     file time set to the next attempt (exponential backoff between
//     minimal_backoff_time and maximal_backoff_time), or, when it is older
//     than maximal_queue_lifetime (bounce_queue_lifetime for mail from the
//     null sender), the defer service turns the log into a bounce;
//   a bounce log (bounce/ID) exists: the bounce service sends the
//     notification;
//   then the queue file is removed ("QID: removed").
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
#include "ipc/service.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "server/server.hpp"

namespace mta::qmgr {

struct Message;

struct Job {
  Message* message = nullptr;
  std::string transport;
  std::string nexthop;
  std::vector<size_t> recipients;  // indexes into message->envelope.recipients
  ipc::Channel channel;
  struct event* reply_event = nullptr;
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
};

class QueueManager {
 public:
  explicit QueueManager(server::ServerContext& ctx);
  ~QueueManager();

  void start();                           // recover active/, first scans, timers
  void trigger(std::string_view bytes);  // master's wakeup, postqueue -f, cleanup

 private:
  static void on_reply(evutil_socket_t fd, short what, void* arg);
  static void on_timer(evutil_socket_t, short, void* arg);

  void scan_incoming();
  void scan_deferred(bool all);
  void activate(const std::string& id);
  void resolve_and_plan(Message& m);
  bool filter_route(const Message& m, const queue::Recipient& r, ipc::proto::ResolveReply* reply) const;
  void dispatch();
  bool start_job(std::unique_ptr<Job>& job);
  void finish_job(Job* job, const ipc::proto::DeliverReply* reply, const std::string& failure);
  void defer_recipients(Message& m, const std::vector<size_t>& which, const std::string& relay,
                        const std::string& status, const std::string& reason);
  void message_done(Message& m);
  long long transport_limit(const std::string& transport, std::string_view suffix, std::string_view fallback) const;
  std::string destination_key(const Job& j) const { return j.transport + "!" + j.nexthop; }

  server::ServerContext& ctx_;
  queue::QueueLayout layout_;
  std::string queue_dir_;
  ipc::ServiceClient resolver_;
  std::map<std::string, std::unique_ptr<Message>> active_;
  std::deque<std::unique_ptr<Job>> pending_;
  std::map<Job*, std::unique_ptr<Job>> running_;
  std::map<std::string, int> in_flight_;  // per transport!nexthop
  mutable std::map<std::string, long long, std::less<>> limits_;  // TRANSPORT_SUFFIX -> value
  std::vector<std::string> defer_transports_;
  std::shared_ptr<const ipc::FlushClient> flush_;  // told about deferred mail (fast_flush_domains)
  bool flush_once_ = false;
  bool dispatching_ = false;
  bool dispatch_again_ = false;  // postqueue -f: deliver even through defer_transports
  long long active_limit_;
  long long min_backoff_, max_backoff_, max_lifetime_, bounce_lifetime_, run_delay_;
  struct event* timer_ = nullptr;
  time_t last_deferred_scan_ = 0;
  static QueueManager* owner_;  // the one queue manager of this process, for event callbacks
};

}  // namespace mta::qmgr
