// scheduler.cpp: see scheduler.hpp.
#include "qmgr/scheduler.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace mta::qmgr::sched {

namespace {

std::optional<double> parse_number(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') return std::nullopt;
  return v;
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool valid_dsn_status(const std::string& s) {
  // Postfix's dsn_valid(): digit "." 1-3 digits "." 1-3 digits, class 2, 4 or 5.
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2, n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++n;
  if (n < 1 || n > 3 || i >= s.size() || s[i] != '.') return false;
  ++i;
  n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++n;
  return n >= 1 && n <= 3 && i == s.size();
}

}  // namespace

std::optional<Feedback> parse_feedback(std::string_view text) {
  Feedback fb;
  size_t slash = text.find('/');
  std::optional<double> num = parse_number(text.substr(0, slash));
  if (!num) return std::nullopt;
  fb.base = *num;
  if (slash != std::string_view::npos) {
    std::string_view denom = text.substr(slash + 1);
    while (!denom.empty() && std::isspace(static_cast<unsigned char>(denom.front()))) denom.remove_prefix(1);
    while (!denom.empty() && std::isspace(static_cast<unsigned char>(denom.back()))) denom.remove_suffix(1);
    if (denom == "concurrency") {
      fb.per_concurrency = true;
    } else {
      std::optional<double> d = parse_number(denom);
      if (!d || *d <= 0) return std::nullopt;
      fb.base /= *d;
    }
  }
  if (fb.base < 0 || fb.base > 1) return std::nullopt;
  return fb;
}

std::string queue_name(const std::string& nexthop, const std::string& address, int recipient_limit,
                       std::string_view recipient_delimiter) {
  if (recipient_limit != 1) return lowercase(nexthop);
  // Postfix's qmgr_message_resolve(): the recipient localpart without its
  // extension, "@", the next hop (assumed equivalent to the domain).
  size_t at = address.rfind('@');
  std::string local = at == std::string::npos ? address : address.substr(0, at);
  if (!recipient_delimiter.empty()) {
    size_t cut = local.find_first_of(recipient_delimiter);
    if (cut != std::string::npos && cut > 0) local.resize(cut);
  }
  return lowercase(local + "@" + nexthop);
}

std::vector<PlannedEntry> plan_entries(const std::vector<ResolvedRecipient>& recipients,
                                       const std::function<int(const std::string&)>& recipient_limit,
                                       std::string_view recipient_delimiter, bool single_recipient) {
  // Recipients of one transport and queue share a delivery request until it
  // holds the transport's recipient limit; order is preserved.
  std::vector<PlannedEntry> out;
  std::map<std::pair<std::string, std::string>, size_t> open;  // (transport, queue) -> entry being filled
  for (const ResolvedRecipient& r : recipients) {
    int limit = std::max(1, recipient_limit(r.transport));
    std::string q = queue_name(r.nexthop, r.address, limit, recipient_delimiter);
    auto key = std::make_pair(r.transport, q);
    auto it = open.find(key);
    const size_t per_delivery = single_recipient ? 1 : static_cast<size_t>(limit);
    if (it == open.end() || out[it->second].recipients.size() >= per_delivery ||
        out[it->second].nexthop != r.nexthop) {
      out.push_back({r.transport, q, r.nexthop, {}});
      open[key] = out.size() - 1;
      it = open.find(key);
    }
    out[it->second].recipients.push_back(r.index);
  }
  return out;
}

Scheduler::Scheduler(ParamsFn params, double dead_time) : params_(std::move(params)), dead_time_(dead_time) {}

Scheduler::Transport& Scheduler::transport(const std::string& name) {
  for (Transport& t : transports_)
    if (t.name == name) return t;
  Transport& t = transports_.emplace_back();
  t.name = name;
  t.params = params_(name);
  // Postfix's qmgr_transport_create(): a rate delay means one delivery at a
  // time per destination, and the initial concurrency never exceeds the limit.
  if (t.params.dest_rate_delay > 0) t.params.dest_concurrency_limit = 1;
  if (t.params.init_dest_concurrency < 1) t.params.init_dest_concurrency = 1;
  if (t.params.dest_concurrency_limit > 0 && t.params.dest_concurrency_limit < t.params.init_dest_concurrency)
    t.params.init_dest_concurrency = t.params.dest_concurrency_limit;
  return t;
}

const Scheduler::Transport* Scheduler::find_transport(const std::string& name) const {
  for (const Transport& t : transports_)
    if (t.name == name) return &t;
  return nullptr;
}

Scheduler::Queue* Scheduler::find_queue(Transport& t, const std::string& name) {
  for (Queue& q : t.queues)
    if (q.name == name) return &q;
  return nullptr;
}

const Scheduler::Queue* Scheduler::find_queue(const Transport& t, const std::string& name) const {
  for (const Queue& q : t.queues)
    if (q.name == name) return &q;
  return nullptr;
}

Scheduler::Queue& Scheduler::queue(Transport& t, const std::string& name) {
  if (Queue* q = find_queue(t, name)) return *q;
  // New queues go first, as Postfix prepends them.
  Queue& q = t.queues.emplace_front();
  q.name = name;
  q.window = t.params.init_dest_concurrency;
  return q;
}

void Scheduler::log_window(const char* who, const Transport& t, const Queue& q) const {
  if (!debug_) return;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s: queue %s: limit %d window %d success %g failure %g fail_cohorts %g", who,
                q.name.c_str(), t.params.dest_concurrency_limit, q.window, q.success, q.failure, q.fail_cohorts);
  debug_(buf);
}

bool Scheduler::add(const std::string& transport_name, const std::string& queue_name_, EntryId id, Dsn* why) {
  Transport& t = transport(transport_name);
  if (t.dead) {
    if (why) *why = t.dsn;
    return false;
  }
  Queue& q = queue(t, queue_name_);
  if (q.dead) {
    if (why) *why = q.dsn;
    return false;
  }
  q.todo.push_back(id);
  return true;
}

std::optional<Scheduler::Selection> Scheduler::select(double now,
                                                     const std::function<bool(const std::string&)>& ready) {
  for (auto ti = transports_.begin(); ti != transports_.end(); ++ti) {
    Transport& t = *ti;
    if (t.dead) continue;
    if (ready && !ready(t.name)) continue;
    if (t.params.process_limit > 0 && t.busy >= t.params.process_limit) continue;
    if (t.params.transport_rate_delay > 0 && now < t.next_start) continue;
    for (auto qi = t.queues.begin(); qi != t.queues.end(); ++qi) {
      Queue& q = *qi;
      if (q.dead || q.todo.empty() || q.window <= q.busy) continue;
      if (q.suspended_until > 0 && now < q.suspended_until) continue;
      // Round robin: the one picked goes to the back of both lists.
      t.queues.splice(t.queues.end(), t.queues, qi);
      transports_.splice(transports_.end(), transports_, ti);
      Selection s{q.todo.front(), t.name, q.name};
      q.todo.pop_front();
      ++q.busy;
      ++t.busy;
      if (t.params.transport_rate_delay > 0) t.next_start = now + t.params.transport_rate_delay;
      return s;
    }
  }
  return std::nullopt;
}

void Scheduler::unthrottle(Transport& t, Queue& q) {
  q.fail_cohorts = 0;
  if (q.dead) {
    // Back from the almost grave: the best concurrency is anyone's guess.
    q.dead = false;
    q.dead_until = 0;
    q.dsn = {};
    q.window = q.busy > 0 ? q.busy : t.params.init_dest_concurrency;
    q.success = q.failure = 0;
    log_window("qmgr_queue_unthrottle", t, q);
    return;
  }
  const TransportParams& p = t.params;
  if ((p.dest_concurrency_limit == 0 || p.dest_concurrency_limit > q.window) &&
      q.window < q.busy + p.init_dest_concurrency) {
    double feedback = p.positive.at(q.window);
    q.success += feedback;
    while (q.success + feedback / 2 >= 1) {
      q.window += 1;
      q.success -= 1;
      q.failure = 0;
    }
    if (p.dest_concurrency_limit > 0 && q.window > p.dest_concurrency_limit) q.window = p.dest_concurrency_limit;
  }
  log_window("qmgr_queue_unthrottle", t, q);
}

void Scheduler::throttle(Transport& t, Queue& q, const Dsn& dsn, double now) {
  const TransportParams& p = t.params;
  q.fail_cohorts += 1.0 / q.window;
  if (p.fail_cohort_limit > 0 && q.fail_cohorts >= p.fail_cohort_limit) {
    q.dead = true;
    q.window = 0;
  }
  if (!q.dead) {
    double feedback = p.negative.at(q.window);
    q.failure -= feedback;
    while (q.failure - feedback / 2 < 0) {
      q.window -= 1;
      q.success = 0;
      q.failure += 1;
    }
    if (q.window < 1) q.window = 1;
  } else {
    q.dsn = dsn;
    q.dead_until = now + dead_time_;
  }
  log_window("qmgr_queue_throttle", t, q);
}

void Scheduler::finish(Transport& t, Queue& q, double now) {
  --q.busy;
  --t.busy;
  if (t.params.dest_rate_delay > 0) {
    // A rate-limited queue is suspended after each delivery, so that mail
    // trickles out (Postfix's qmgr_entry_done()).
    if (q.dead) unthrottle(t, q);
    q.suspended_until = now + t.params.dest_rate_delay;
  }
  maybe_forget(t, q.name);
}

void Scheduler::maybe_forget(Transport& t, const std::string& name) {
  for (auto it = t.queues.begin(); it != t.queues.end(); ++it) {
    if (it->name != name) continue;
    if (!it->dead && it->suspended_until == 0 && it->busy == 0 && it->todo.empty()) t.queues.erase(it);
    return;
  }
}

std::vector<EntryId> Scheduler::done_ok(const Selection& s, double now) {
  Transport& t = transport(s.transport);
  Queue& q = queue(t, s.queue);
  if (t.dead) {
    t.dead = false;
    t.dsn = {};
  }
  unthrottle(t, q);
  finish(t, q, now);
  return {};
}

std::vector<EntryId> Scheduler::done_hop_failure(const Selection& s, const Dsn& hop, double now, Dsn* why) {
  Transport& t = transport(s.transport);
  Queue& q = queue(t, s.queue);
  // Postfix's qmgr_deliver_update(): sanitize, then "delivery temporarily
  // suspended: " before the agent's reason.
  Dsn d = hop;
  if (!valid_dsn_status(d.status)) d.status = "4.0.0";
  if (d.reason.empty()) d.reason = "unknown error";
  d.reason = "delivery temporarily suspended: " + d.reason;
  std::vector<EntryId> out;
  if (!q.dead && (q.suspended_until == 0 || now >= q.suspended_until)) {
    throttle(t, q, d, now);
    if (q.dead) {
      out.assign(q.todo.begin(), q.todo.end());
      q.todo.clear();
    }
  }
  if (why) *why = d;
  finish(t, q, now);
  return out;
}

std::vector<EntryId> Scheduler::done_transport_failure(const Selection& s, const Dsn& dsn, double now) {
  Transport& t = transport(s.transport);
  Queue& q = queue(t, s.queue);
  if (!t.dead) {
    t.dead = true;
    t.dead_until = now + (transport_dead_time_ >= 0 ? transport_dead_time_ : dead_time_);
    t.dsn = dsn;
  }
  std::vector<EntryId> out;
  for (Queue& other : t.queues) {
    out.insert(out.end(), other.todo.begin(), other.todo.end());
    other.todo.clear();
  }
  finish(t, q, now);
  // Queues left empty by the deferral go away too.
  for (auto it = t.queues.begin(); it != t.queues.end();) {
    auto next = std::next(it);
    if (!it->dead && it->suspended_until == 0 && it->busy == 0 && it->todo.empty()) t.queues.erase(it);
    it = next;
  }
  return out;
}

void Scheduler::cancel(const std::string& transport_name, const std::string& queue_name_, EntryId id) {
  Transport& t = transport(transport_name);
  Queue* q = find_queue(t, queue_name_);
  if (!q) return;
  q->todo.erase(std::remove(q->todo.begin(), q->todo.end(), id), q->todo.end());
  maybe_forget(t, queue_name_);
}

double Scheduler::tick(double now) {
  double next = 0;
  auto consider = [&](double when) {
    if (when > now && (next == 0 || when < next)) next = when;
  };
  for (Transport& t : transports_) {
    if (t.dead && now >= t.dead_until) {
      t.dead = false;
      t.dsn = {};
    }
    if (t.dead) consider(t.dead_until);
    if (t.params.transport_rate_delay > 0) consider(t.next_start);
    for (auto it = t.queues.begin(); it != t.queues.end();) {
      auto next_it = std::next(it);
      Queue& q = *it;
      if (q.dead && now >= q.dead_until) unthrottle(t, q);
      if (q.suspended_until > 0 && now >= q.suspended_until) q.suspended_until = 0;
      if (q.dead) consider(q.dead_until);
      if (q.suspended_until > 0) consider(q.suspended_until);
      if (!q.dead && q.suspended_until == 0 && q.busy == 0 && q.todo.empty()) t.queues.erase(it);
      it = next_it;
    }
  }
  return next;
}

void Scheduler::enable_all() {
  for (Transport& t : transports_) {
    t.dead = false;
    t.dsn = {};
    for (auto it = t.queues.begin(); it != t.queues.end();) {
      auto next = std::next(it);
      if (it->dead) unthrottle(t, *it);
      if (it->busy == 0 && it->todo.empty() && it->suspended_until == 0) t.queues.erase(it);
      it = next;
    }
  }
}

void Scheduler::enable_queue(const std::string& transport_name, const std::string& queue_name_) {
  Transport& t = transport(transport_name);
  if (Queue* q = find_queue(t, queue_name_); q && q->dead) unthrottle(t, *q);
}

bool Scheduler::is_dead(const std::string& transport_name, const std::string& queue_name_) const {
  const Transport* t = find_transport(transport_name);
  const Queue* q = t ? find_queue(*t, queue_name_) : nullptr;
  return q && q->dead;
}

bool Scheduler::transport_dead(const std::string& transport_name) const {
  const Transport* t = find_transport(transport_name);
  return t && t->dead;
}

int Scheduler::window(const std::string& transport_name, const std::string& queue_name_) const {
  const Transport* t = find_transport(transport_name);
  const Queue* q = t ? find_queue(*t, queue_name_) : nullptr;
  return q ? q->window : -1;
}

double Scheduler::fail_cohorts(const std::string& transport_name, const std::string& queue_name_) const {
  const Transport* t = find_transport(transport_name);
  const Queue* q = t ? find_queue(*t, queue_name_) : nullptr;
  return q ? q->fail_cohorts : 0;
}

int Scheduler::busy(const std::string& transport_name, const std::string& queue_name_) const {
  const Transport* t = find_transport(transport_name);
  const Queue* q = t ? find_queue(*t, queue_name_) : nullptr;
  return q ? q->busy : 0;
}

int Scheduler::transport_busy(const std::string& transport_name) const {
  const Transport* t = find_transport(transport_name);
  return t ? t->busy : 0;
}

size_t Scheduler::waiting() const {
  size_t n = 0;
  for (const Transport& t : transports_)
    for (const Queue& q : t.queues) n += q.todo.size();
  return n;
}

size_t Scheduler::dead_queue_count() const {
  size_t n = 0;
  for (const Transport& t : transports_)
    for (const Queue& q : t.queues) n += q.dead ? 1 : 0;
  return n;
}

}  // namespace mta::qmgr::sched
