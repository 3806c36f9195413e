// remote_table.cpp: anvil's counts, rate windows, per-local-server links
// and peaks (see remote_table.hpp for the rules).
#include "anvil/remote_table.hpp"

#include <climits>
#include <cstdio>

namespace mta::anvil {

namespace {

void bump(int& value) {
  if (value < INT_MAX) ++value;
}

}  // namespace

std::string time_of_day(time_t when) {
  struct tm tm {};
  localtime_r(&when, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%b %e %H:%M:%S", &tm);
  return std::string(buf, n);
}

void RemoteTable::reset_rates(Remote& r, time_t start) {
  r.c.rate = r.c.mail = r.c.rcpt = r.c.newtls = r.c.auth = 0;
  r.start = start;
}

void RemoteTable::drop_one(Remote& r, time_t now) {
  if (r.c.count > 0 && --r.c.count == 0) {
    r.expires = now + time_unit_;
    expiry_queue_.emplace(r.expires, r.ident);
  }
}

RemoteTable::Map::iterator RemoteTable::add_connection(LocalId local, std::string_view ident, time_t now) {
  auto it = remotes_.find(ident);
  if (it == remotes_.end()) {
    Remote r;
    r.ident = std::string(ident);
    r.c.count = 1;
    r.c.rate = 1;
    r.start = now;
    it = remotes_.emplace(r.ident, std::move(r)).first;
    if (remotes_.size() > cache_size_) {
      cache_size_ = remotes_.size();
      cache_time_ = now;
    }
  } else {
    Remote& r = it->second;
    if (r.start + time_unit_ < now) {
      reset_rates(r, now);
      r.c.rate = 1;
    } else {
      bump(r.c.rate);
    }
    r.expires = 0;  // counted again: no longer on its way out
    ++r.c.count;
  }
  // One remote connection per local server: the previous one is dropped
  // (anvil(8) BUGS: "state is kept only for the last reported client").
  auto [link, fresh] = locals_.try_emplace(local, ident);
  if (!fresh) {
    if (auto old = remotes_.find(link->second); old != remotes_.end()) drop_one(old->second, now);
    link->second = std::string(ident);
  }
  return it;
}

RemoteTable::ConnectReply RemoteTable::connect(LocalId local, std::string_view ident, time_t now) {
  expire(now);
  const Remote& r = add_connection(local, ident, now)->second;
  update_peak(conn_rate_, r.c.rate, ident, now);
  update_peak(conn_count_, r.c.count, ident, now);
  return {r.c.count, r.c.rate};
}

void RemoteTable::disconnect(LocalId local, std::string_view ident, time_t now) {
  expire(now);
  auto link = locals_.find(local);
  if (link == locals_.end() || link->second != ident) return;  // not this local server's
  if (auto it = remotes_.find(ident); it != remotes_.end()) drop_one(it->second, now);
  locals_.erase(link);
}

int RemoteTable::rate_event(LocalId local, std::string_view ident, time_t now, Kind kind) {
  expire(now);
  auto it = remotes_.find(ident);
  // Unknown (anvil restarted since the connect): counts as a connection
  // from this local server.
  if (it == remotes_.end()) it = add_connection(local, ident, now);
  Remote& r = it->second;
  if (r.start + time_unit_ < now) reset_rates(r, now);
  switch (kind) {
    case Kind::mail:
      bump(r.c.mail);
      update_peak(mail_rate_, r.c.mail, ident, now);
      return r.c.mail;
    case Kind::rcpt:
      bump(r.c.rcpt);
      update_peak(rcpt_rate_, r.c.rcpt, ident, now);
      return r.c.rcpt;
    case Kind::newtls:
      bump(r.c.newtls);
      update_peak(newtls_rate_, r.c.newtls, ident, now);
      return r.c.newtls;
    case Kind::auth:
      bump(r.c.auth);
      update_peak(auth_rate_, r.c.auth, ident, now);
      return r.c.auth;
  }
  return 0;
}

int RemoteTable::message(LocalId local, std::string_view ident, time_t now) {
  return rate_event(local, ident, now, Kind::mail);
}
int RemoteTable::recipient(LocalId local, std::string_view ident, time_t now) {
  return rate_event(local, ident, now, Kind::rcpt);
}
int RemoteTable::newtls(LocalId local, std::string_view ident, time_t now) {
  return rate_event(local, ident, now, Kind::newtls);
}
int RemoteTable::auth(LocalId local, std::string_view ident, time_t now) {
  return rate_event(local, ident, now, Kind::auth);
}

Counters RemoteTable::lookup(std::string_view ident, time_t now) {
  expire(now);
  auto it = remotes_.find(ident);
  if (it == remotes_.end()) return {};
  Remote& r = it->second;
  // Stale rates read as zero; the next event starts a new window.
  if (r.start != 0 && r.start + time_unit_ < now) reset_rates(r, 0);
  return r.c;
}

int RemoteTable::newtls_status(std::string_view ident, time_t now) { return lookup(ident, now).newtls; }

void RemoteTable::local_gone(LocalId local, time_t now) {
  auto link = locals_.find(local);
  if (link == locals_.end()) return;
  if (auto it = remotes_.find(link->second); it != remotes_.end()) drop_one(it->second, now);
  locals_.erase(link);
}

void RemoteTable::expire(time_t now) {
  while (!expiry_queue_.empty() && expiry_queue_.begin()->first <= now) {
    auto due = expiry_queue_.begin();
    auto it = remotes_.find(due->second);
    // Entries of idents that were connected again (or dropped again later)
    // are stale: only the current expiry time counts.
    if (it != remotes_.end() && it->second.c.count == 0 && it->second.expires == due->first) remotes_.erase(it);
    expiry_queue_.erase(due);
  }
}

time_t RemoteTable::next_expiry() const { return expiry_queue_.empty() ? 0 : expiry_queue_.begin()->first; }

void RemoteTable::update_peak(Peak& peak, int value, std::string_view ident, time_t now) {
  if (value <= peak.value) return;
  peak.value = value;
  if (peak.ident != ident) peak.ident = std::string(ident);
  peak.when = now;
}

std::vector<std::string> RemoteTable::take_statistics() {
  std::vector<std::string> lines;
  auto rate_line = [&](Peak& p, const char* what) {
    if (p.value <= 0) return;
    lines.push_back("statistics: max " + std::string(what) + " rate " + std::to_string(p.value) + "/" +
                    std::to_string(time_unit_) + "s for (" + p.ident + ") at " + time_of_day(p.when));
    p = Peak{};
  };
  rate_line(conn_rate_, "connection");
  if (conn_count_.value > 0) {
    lines.push_back("statistics: max connection count " + std::to_string(conn_count_.value) + " for (" +
                    conn_count_.ident + ") at " + time_of_day(conn_count_.when));
    conn_count_ = Peak{};
  }
  rate_line(mail_rate_, "message");
  rate_line(rcpt_rate_, "recipient");
  rate_line(newtls_rate_, "newtls");
  rate_line(auth_rate_, "auth");
  if (cache_size_ > 0) {
    lines.push_back("statistics: max cache size " + std::to_string(cache_size_) + " at " + time_of_day(cache_time_));
    cache_size_ = 0;
  }
  return lines;
}

}  // namespace mta::anvil
