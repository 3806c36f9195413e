// connection_cache.hpp: the connection cache that scache(8) keeps (Postfix's
// scache_multi.c), without the protocol, so that the unit tests can drive
// it with a clock of their own.
//
//   endpoint label -> connections (descriptor, properties, expiry); the
//                     most recently saved connection is found first;
//   destination label -> bindings (destination properties, endpoint label,
//                     expiry); find_dest() tries the bindings in order and
//                     returns the first endpoint that has a connection.
//
// A lookup hands the connection over (it leaves the cache); expired
// connections are closed, and empty endpoints and destinations disappear,
// at lookups and at expire().  size() is what scache's "max simultaneous"
// statistics sample.  Header-only: the daemon is its one user.
#pragma once

#include <unistd.h>

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mta::scache {

using Clock = std::chrono::steady_clock;

// Owns one descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

struct CacheSize {
  int dest_count = 0;
  int endp_count = 0;
  int sess_count = 0;
};

// What a successful lookup hands over.
struct Found {
  UniqueFd fd;
  std::string dest_prop;  // empty for find_endp
  std::string endp_prop;
};

class ConnectionCache {
 public:
  void save_endp(Clock::time_point now, int ttl, const std::string& label, const std::string& prop, UniqueFd fd) {
    endpoints_[label].push_front(Session{std::move(fd), prop, now + std::chrono::seconds(ttl)});
  }

  // Rebinds when the destination already names this endpoint.
  void save_dest(Clock::time_point now, int ttl, const std::string& dest_label, const std::string& dest_prop,
                 const std::string& endp_label) {
    std::vector<Binding>& list = destinations_[dest_label];
    auto expires = now + std::chrono::seconds(ttl);
    for (Binding& b : list) {
      if (b.endp_label == endp_label) {
        b.dest_prop = dest_prop;
        b.expires = expires;
        return;
      }
    }
    list.push_back(Binding{dest_prop, endp_label, expires});
  }

  std::optional<Found> find_endp(Clock::time_point now, const std::string& label) {
    auto it = endpoints_.find(label);
    if (it == endpoints_.end()) return std::nullopt;
    std::deque<Session>& list = it->second;
    std::optional<Found> found;
    while (!list.empty() && !found) {
      Session s = std::move(list.front());
      list.pop_front();
      if (s.expires > now) found = Found{std::move(s.fd), {}, std::move(s.prop)};
    }
    if (list.empty()) endpoints_.erase(it);
    return found;
  }

  std::optional<Found> find_dest(Clock::time_point now, const std::string& label) {
    auto it = destinations_.find(label);
    if (it == destinations_.end()) return std::nullopt;
    std::vector<Binding>& list = it->second;
    std::optional<Found> found;
    for (size_t i = 0; i < list.size() && !found;) {
      if (list[i].expires <= now) {
        list.erase(list.begin() + static_cast<long>(i));
        continue;
      }
      found = find_endp(now, list[i].endp_label);
      if (found) found->dest_prop = list[i].dest_prop;
      ++i;
    }
    if (list.empty()) destinations_.erase(it);
    return found;
  }

  // Closes what has expired.
  void expire(Clock::time_point now) {
    for (auto it = endpoints_.begin(); it != endpoints_.end();) {
      std::deque<Session>& list = it->second;
      for (auto s = list.begin(); s != list.end();) s = s->expires <= now ? list.erase(s) : s + 1;
      it = list.empty() ? endpoints_.erase(it) : std::next(it);
    }
    for (auto it = destinations_.begin(); it != destinations_.end();) {
      std::vector<Binding>& list = it->second;
      std::erase_if(list, [now](const Binding& b) { return b.expires <= now; });
      it = list.empty() ? destinations_.erase(it) : std::next(it);
    }
  }

  // The earliest expiry, if anything is cached.
  std::optional<Clock::time_point> next_expiry() const {
    std::optional<Clock::time_point> next;
    auto take = [&next](Clock::time_point t) {
      if (!next || t < *next) next = t;
    };
    for (const auto& [label, list] : endpoints_)
      for (const Session& s : list) take(s.expires);
    for (const auto& [label, list] : destinations_)
      for (const Binding& b : list) take(b.expires);
    return next;
  }

  CacheSize size() const {
    CacheSize out;
    out.dest_count = static_cast<int>(destinations_.size());
    out.endp_count = static_cast<int>(endpoints_.size());
    for (const auto& [label, list] : endpoints_) out.sess_count += static_cast<int>(list.size());
    return out;
  }

 private:
  struct Session {
    UniqueFd fd;
    std::string prop;
    Clock::time_point expires;
  };
  struct Binding {
    std::string dest_prop;
    std::string endp_label;
    Clock::time_point expires;
  };
  std::map<std::string, std::deque<Session>> endpoints_;
  std::map<std::string, std::vector<Binding>> destinations_;
};

}  // namespace mta::scache
