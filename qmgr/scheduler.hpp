// scheduler.hpp: qmgr's scheduling core, as Postfix's qmgr_transport.c,
// qmgr_queue.c and qmgr_entry.c schedule, without any I/O, so that it can be
// driven by the daemon and by unit tests alike (time is a parameter).
//
// Mail waits as entries (one delivery request each: one message, at most
// TRANSPORT_destination_recipient_limit recipients) in per-destination
// queues, one set of queues per transport.  A queue's name is the next hop,
// or, when the transport's recipient limit is 1, "localpart@nexthop" (the
// recipient: concurrency and rate delay then apply per recipient).
//
// select() picks the next entry: transports and then their queues are tried
// in round-robin order (the list is rotated past the one picked), so a
// destination with a thousand messages waiting never starves one with a
// single message.  A transport gives out at most its master.cf process limit
// of deliveries at a time; a queue at most its concurrency window.
//
// The window is Postfix's slow start: it starts at
// TRANSPORT_initial_destination_concurrency; each delivery that completes
// without a connection or handshake failure adds the positive feedback
// (constant "N", "N/M", or "N/concurrency") to a success counter and the
// window grows by one each time that counter reaches 1, as long as the
// window is below TRANSPORT_destination_concurrency_limit and below the busy
// count plus the initial concurrency.  A failure (the agent's hop status)
// subtracts the negative feedback and shrinks the window at the start of
// each such cycle, never below 1; it also adds 1/window to the failed
// pseudo-cohort count, and when that reaches
// TRANSPORT_destination_concurrency_failed_cohort_limit (not 0) the
// destination is dead: its waiting entries are handed back to be deferred
// ("delivery temporarily suspended: REASON" through the retry service),
// new mail for it is deferred the same way, and minimal_backoff_time later
// (or on a flush) it comes back to life with the initial concurrency.  A
// success resets the failed cohort count.  A transport whose agent crashes
// or cannot be reached is dead the same way, for all its destinations.
// TRANSPORT_destination_rate_delay makes the destination concurrency 1 and
// suspends the queue that long after each delivery;
// TRANSPORT_transport_rate_delay spaces deliveries over the transport.
// An empty queue that is neither dead nor suspended is forgotten, with its
// window (Postfix's qmgr_queue_done): the next mail starts slowly again.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mta::qmgr::sched {

// Concurrency feedback: "number", "number/number" or "number/concurrency",
// in the range 0..1 (Postfix's qmgr_feedback.c).
struct Feedback {
  double base = 1;
  bool per_concurrency = false;
  double at(int window) const { return per_concurrency ? base / (window > 0 ? window : 1) : base; }
};
std::optional<Feedback> parse_feedback(std::string_view text);

struct TransportParams {
  int dest_concurrency_limit = 20;  // 0: no limit
  int init_dest_concurrency = 5;
  Feedback positive, negative;
  double fail_cohort_limit = 1;  // 0: never dead
  int recipient_limit = 50;      // per delivery request; 1: per-recipient queues
  int process_limit = 100;       // master.cf maxproc; 0: no limit
  double dest_rate_delay = 0;    // seconds
  double transport_rate_delay = 0;
};

struct Dsn {
  std::string status;
  std::string reason;
};

using EntryId = std::uint64_t;

// The recipients of one message that resolved to one transport and next hop,
// split into delivery requests (Postfix's qmgr_message_assign).
struct ResolvedRecipient {
  size_t index = 0;         // the caller's recipient index
  std::string transport;
  std::string nexthop;
  std::string address;      // the resolved recipient (for per-recipient queues)
};
struct PlannedEntry {
  std::string transport;
  std::string queue;        // the scheduling destination
  std::string nexthop;
  std::vector<size_t> recipients;
};
// recipient_delimiter: extensions are stripped from per-recipient queue names.
// single_recipient: one recipient per delivery whatever the limit (a VERP
// message: each recipient gets its own sender), in the same queues.
std::vector<PlannedEntry> plan_entries(const std::vector<ResolvedRecipient>& recipients,
                                       const std::function<int(const std::string&)>& recipient_limit,
                                       std::string_view recipient_delimiter, bool single_recipient = false);
std::string queue_name(const std::string& nexthop, const std::string& address, int recipient_limit,
                       std::string_view recipient_delimiter);

class Scheduler {
 public:
  using ParamsFn = std::function<TransportParams(const std::string& transport)>;
  // dead_time: how long a dead destination or transport stays dead
  // (minimal_backoff_time).
  Scheduler(ParamsFn params, double dead_time);

  // destination_concurrency_feedback_debug: Postfix's window log lines.
  void set_debug_log(std::function<void(const std::string&)> log) { debug_ = std::move(log); }
  // transport_retry_time: how long a transport whose agent failed stays dead.
  void set_transport_dead_time(double seconds) { transport_dead_time_ = seconds; }

  // Queues an entry.  When the destination or the transport is dead, nothing
  // is queued: false, with the reason in *why.
  bool add(const std::string& transport, const std::string& queue, EntryId id, Dsn* why);

  struct Selection {
    EntryId id;
    std::string transport;
    std::string queue;
  };
  // The next entry to deliver now, or nothing; it counts as busy until done.
  // READY, when given, may hold back a transport for now (qmgr: while its
  // agents are still being connected).
  std::optional<Selection> select(double now, const std::function<bool(const std::string&)>& ready = {});

  // The outcome of a selected entry's delivery.
  //   ok: no connection or handshake failure (recipients may still be deferred)
  //   hop_failure: the agent's hop status (4.x.x): the destination failed;
  //     when it is now dead, its waiting entries are returned, to be
  //     deferred with *why ("delivery temporarily suspended: ...").
  //   transport_failure: the agent crashed or could not be reached; the
  //     transport is dead and all its waiting entries are returned.
  std::vector<EntryId> done_ok(const Selection& s, double now);
  std::vector<EntryId> done_hop_failure(const Selection& s, const Dsn& hop, double now, Dsn* why);
  std::vector<EntryId> done_transport_failure(const Selection& s, const Dsn& dsn, double now);

  // Entries removed before selection (e.g. the message went away).
  void cancel(const std::string& transport, const std::string& queue, EntryId id);

  // Timers: dead destinations and transports come back, suspended queues
  // resume.  Returns the time of the next timer, or 0 when none is set.
  double tick(double now);

  // A flush: forget every dead destination and transport (QMGR_FLUSH_ONCE).
  void enable_all();
  // A flushed message: its destination is given another chance (QMGR_FLUSH_EACH).
  void enable_queue(const std::string& transport, const std::string& queue);

  // For the daemon and the tests.
  bool is_dead(const std::string& transport, const std::string& queue) const;
  bool transport_dead(const std::string& transport) const;
  int window(const std::string& transport, const std::string& queue) const;  // -1: no such queue
  double fail_cohorts(const std::string& transport, const std::string& queue) const;
  int busy(const std::string& transport, const std::string& queue) const;
  int transport_busy(const std::string& transport) const;
  size_t waiting() const;  // entries not yet selected
  size_t dead_queue_count() const;

 private:
  struct Queue {
    std::string name;
    int window = 0;         // 0 with dead: throttled
    bool dead = false;
    double dead_until = 0;
    double suspended_until = 0;
    double success = 0, failure = 0, fail_cohorts = 0;
    int busy = 0;
    std::deque<EntryId> todo;
    Dsn dsn;
  };
  struct Transport {
    std::string name;
    TransportParams params;
    std::list<Queue> queues;  // round-robin order
    int busy = 0;
    bool dead = false;
    double dead_until = 0;
    double next_start = 0;  // transport_rate_delay
    Dsn dsn;
  };

  Transport& transport(const std::string& name);
  const Transport* find_transport(const std::string& name) const;
  Queue* find_queue(Transport& t, const std::string& name);
  const Queue* find_queue(const Transport& t, const std::string& name) const;
  Queue& queue(Transport& t, const std::string& name);
  void unthrottle(Transport& t, Queue& q);
  void throttle(Transport& t, Queue& q, const Dsn& dsn, double now);
  void finish(Transport& t, Queue& q, double now);
  void maybe_forget(Transport& t, const std::string& name);
  void log_window(const char* who, const Transport& t, const Queue& q) const;

  ParamsFn params_;
  double dead_time_;
  double transport_dead_time_ = -1;  // transport_retry_time; -1: dead_time_
  std::list<Transport> transports_;  // round-robin order
  std::function<void(const std::string&)> debug_;
};

}  // namespace mta::qmgr::sched
