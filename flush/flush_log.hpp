// flush_log.hpp: the per-destination "fast flush" logs of flush(8), as
// Postfix 3.7 keeps them, so that a queue left by the real Postfix flushes
// the same way.
//
// A destination's log is $queue_directory/flush/NAME, where NAME is the
// site with letters and digits lower-cased and every other byte made '_'
// ("Example.NET" -> example_net, "[1.2.3.4]" -> _1_2_3_4_).  It holds one
// queue ID per line, appended under an exclusive flock(2) as mail for the
// site is deferred (mode 0600).  Sending a site moves each listed message
// that is still in the deferred queue to the incoming queue (after setting
// its time stamps to now), truncates the log, updates the log's time
// stamps (the refresh age is its access time) and, when the log listed
// anything, asks qmgr to scan the incoming queue ('I').  A send on behalf
// of a client (ETRN, postqueue -s) first asks qmgr to forget dead
// destinations and deferred transports for once ('F'); a refresh does not.
// Sending one message (postqueue -i) also sets its group-read bit, which
// asks qmgr to retry its destination at once.  A refresh sends every
// non-empty log not read for max_age seconds and removes empty logs not
// changed for fast_flush_purge_time.
//
// Failures to open or lock a log are fatal (the process exits and master
// starts another), as in Postfix; everything else is a warning.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "queue/queue_dirs.hpp"

namespace mta::flush {

// The log file name for SITE, or nullopt for a name that is not ASCII
// (Postfix converts IDNA names to A-labels; we refuse them instead).
std::optional<std::string> site_to_path(std::string_view site);

class FlushLogs {
 public:
  // Sends qmgr a trigger ("I", "F").
  using Trigger = std::function<void(std::string_view bytes)>;

  FlushLogs(queue::QueueLayout layout, long long purge_time, Trigger trigger)
      : layout_(std::move(layout)), purge_time_(purge_time), trigger_(std::move(trigger)) {}

  // The flush_proto status for each request; PATH is a site_to_path() name.
  int add(std::string_view path, std::string_view queue_id) const;
  int send_path(std::string_view path, bool unthrottle_before) const;
  int send_file(std::string_view queue_id) const;
  // Sends the logs unread for more than max_age seconds, purges old empty ones.
  void refresh(long long max_age) const;

 private:
  // Touches QUEUE_ID in the deferred (else the incoming) queue and moves it
  // to the incoming queue; false when it is in neither or not ready.
  bool flush_one_file(std::string_view queue_id, time_t now, bool unthrottle_after) const;

  queue::QueueLayout layout_;
  long long purge_time_;
  Trigger trigger_;
};

}  // namespace mta::flush
