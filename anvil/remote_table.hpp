// remote_table.hpp: anvil's bookkeeping (Postfix's anvil(8)): per
// (service, client) ident a connection count and, within a fixed window of
// anvil_rate_time_unit seconds, the connection, message, recipient, new-TLS
// and AUTH rates; which ident each local server process (one anvil client
// connection) has registered; and the peak values that the daemon logs as
// "statistics: ..." lines.  No sockets, no clock: every call takes the time
// (seconds, as Postfix's event_time()), so the unit tests drive it.
//
// What it promises, as the real Postfix 3.7 anvil does (checked against it
// by tests/integration/anvil_interop.sh):
//  - a rate window starts with the first event and is reset by the first
//    event more than time_unit seconds later (not a moving average); a
//    stale window reads as zero rates;
//  - a local server holds at most one remote connection: a connect (or a
//    rate event for an unknown ident, "postfix reload after connect") from
//    a local server forgets its previous one; disconnect counts only for
//    the local server that connected; a local server that goes away drops
//    its connection;
//  - an ident whose count reached zero is forgotten time_unit seconds later;
//  - peaks are kept from one status report to the next.
#pragma once

#include <ctime>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mta::anvil {

// What lookup reports (all zero for an unknown ident).
struct Counters {
  int count = 0;   // simultaneous connections
  int rate = 0;    // connections in the current window
  int mail = 0;    // messages
  int rcpt = 0;    // recipients
  int newtls = 0;  // new (uncached) TLS sessions
  int auth = 0;    // AUTH commands
  bool operator==(const Counters&) const = default;
};

// A local server: one anvil client connection (the daemon uses its
// descriptor).
using LocalId = int;

class RemoteTable {
 public:
  explicit RemoteTable(int time_unit) : time_unit_(time_unit > 0 ? time_unit : 1) {}

  int time_unit() const { return time_unit_; }

  struct ConnectReply {
    int count = 0;
    int rate = 0;
  };
  ConnectReply connect(LocalId local, std::string_view ident, time_t now);
  void disconnect(LocalId local, std::string_view ident, time_t now);
  // The rate events: the new rate of that kind.
  int message(LocalId local, std::string_view ident, time_t now);
  int recipient(LocalId local, std::string_view ident, time_t now);
  int newtls(LocalId local, std::string_view ident, time_t now);
  int auth(LocalId local, std::string_view ident, time_t now);
  // Reads without counting.
  int newtls_status(std::string_view ident, time_t now);
  Counters lookup(std::string_view ident, time_t now);

  // The local server went away: its connection is dropped.
  void local_gone(LocalId local, time_t now);
  // Forgets idents whose count has been zero for time_unit seconds.  Every
  // request calls it first; the daemon also calls it from a timer.
  void expire(time_t now);
  // When the next ident expires (0: none waits).
  time_t next_expiry() const;

  size_t size() const { return remotes_.size(); }

  // The "statistics: ..." lines for the peaks since the last call (none
  // when nothing happened), and the peaks start over.
  std::vector<std::string> take_statistics();

 private:
  struct Remote {
    std::string ident;
    Counters c;
    time_t start = 0;    // the rate window's start; 0: no window
    time_t expires = 0;  // count 0: when the entry goes
  };
  struct Peak {
    int value = 0;
    std::string ident;
    time_t when = 0;
  };
  enum class Kind { mail, rcpt, newtls, auth };

  using Map = std::map<std::string, Remote, std::less<>>;

  void reset_rates(Remote& r, time_t start);
  // Postfix's anvil_remote_conn_update(): a new connection from local.
  Map::iterator add_connection(LocalId local, std::string_view ident, time_t now);
  void drop_one(Remote& r, time_t now);
  int rate_event(LocalId local, std::string_view ident, time_t now, Kind kind);
  static void update_peak(Peak& peak, int value, std::string_view ident, time_t now);

  int time_unit_;
  Map remotes_;
  std::map<LocalId, std::string> locals_;  // local server -> the ident it connected
  std::multimap<time_t, std::string> expiry_queue_;  // (when, ident) of idents at count 0
  Peak conn_rate_, conn_count_, mail_rate_, rcpt_rate_, newtls_rate_, auth_rate_;
  size_t cache_size_ = 0;
  time_t cache_time_ = 0;
};

// ctime()'s "Mon dd hh:mm:ss" (local time), as in anvil's log lines.
std::string time_of_day(time_t when);

}  // namespace mta::anvil
