// conn_cache_policy.hpp: on-demand connection caching, as Postfix's
// qmgr_entry_select() and qmgr_entry_done() decide it.  qmgr adds the
// result to each delivery request's flags (DEL_REQ_FLAG_CONN_LOAD: take a
// cached connection; DEL_REQ_FLAG_CONN_STORE: save the connection after
// the delivery), and smtp(8) with smtp_connection_cache_on_demand obeys.
//
// Per destination queue: caching turns on (LOAD and STORE) once deliveries
// run back to back (one finished within the last second), that is, when the
// destination has a backlog; STORE turns off again when there is neither
// another delivery in progress nor a back-to-back one, while LOAD stays on
// so that the connections already cached are used up instead of new ones
// being made.  A destination that has been idle (nothing in progress and no
// delivery for more than a second) starts again without flags, as Postfix's
// queue, freed when empty, does.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "ipc/mail_proto.hpp"

namespace mta::qmgr {

class ConnCachePolicy {
 public:
  // A delivery to transport/queue is about to start; busy counts it too.
  // Returns the DEL_REQ_FLAG_CONN_* flags for its request.
  int select(const std::string& transport, const std::string& queue, int busy, double now) {
    long long t = static_cast<long long>(std::floor(now));
    State& st = states_[{transport, queue}];
    bool back_to_back = st.last_done + 1 >= t;
    if (st.running == 0 && !back_to_back) st.flags = 0;  // the queue was idle: a fresh start
    ++st.running;
    if (!(st.flags & ipc::proto::kDelReqFlagConnStore)) {
      if (back_to_back) st.flags |= ipc::proto::kDelReqFlagConnMask;
    } else if (!(busy > 1 || back_to_back)) {
      st.flags &= ~ipc::proto::kDelReqFlagConnStore;
    }
    return st.flags;
  }

  // A delivery to transport/queue finished (whatever its outcome).
  void done(const std::string& transport, const std::string& queue, double now) {
    long long t = static_cast<long long>(std::floor(now));
    auto it = states_.find({transport, queue});
    if (it == states_.end()) return;
    it->second.last_done = t;
    if (it->second.running > 0) --it->second.running;
    // Forget destinations that have been quiet for a while.
    if (states_.size() > 1000) std::erase_if(states_, [t](const auto& kv) {
      return kv.second.running == 0 && kv.second.last_done + 60 < t;
    });
  }

 private:
  struct State {
    int flags = 0;
    int running = 0;
    long long last_done = -10;
  };
  std::map<std::pair<std::string, std::string>, State> states_;
};

}  // namespace mta::qmgr
