// dns_pool.hpp: a few worker threads that run blocking lookups (the
// client's name at connect, the DNS questions of the access policy) off
// smtpd's event loop, so that one slow name server does not stall the
// other sessions of the process.
//
// A job is two functions: WORK runs in a worker thread and must touch
// nothing of the event loop (no sessions, no logging: it fills in its own
// result); DONE runs later in the event loop's thread.  Workers hand
// finished jobs back through an eventfd that the loop watches, so the
// libevent base is only ever used from its own thread.  Whoever submits a
// job for a session that may go away first checks, in DONE, that it still
// exists (see Session's wait token).
//
// Threads start at the first job (after the chroot and the privilege
// drop) and grow up to kMaxThreads while every one of them is busy.  Each
// worker has its own resolver state (make_system_dns()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "smtpd/dns_lookup.hpp"

struct event_base;
struct event;

namespace mta::smtpd {

class DnsPool {
 public:
  static constexpr size_t kMaxThreads = 8;

  // DNS_FACTORY makes each worker's DnsLookup (tests pass fakes).
  explicit DnsPool(struct event_base* base,
                   std::function<std::shared_ptr<DnsLookup>()> dns_factory = make_system_dns);
  ~DnsPool();
  DnsPool(const DnsPool&) = delete;
  DnsPool& operator=(const DnsPool&) = delete;

  // CANCELLED (may be null), once true, means that nobody waits for the
  // answer any more (the wait timed out, the session is gone): a job that
  // has not started by then skips WORK (no query, no authentication
  // attempt for a client that has had its reply), and DONE still runs in
  // the loop's thread.
  void submit(std::function<void(DnsLookup&)> work, std::function<void()> done,
              std::shared_ptr<const std::atomic<bool>> cancelled = nullptr);
  size_t threads() const;

 private:
  struct Job {
    std::function<void(DnsLookup&)> work;
    std::function<void()> done;
    std::shared_ptr<const std::atomic<bool>> cancelled;
  };
  void worker();
  static void on_wakeup(int fd, short what, void* self);

  struct event_base* base_;
  std::function<std::shared_ptr<DnsLookup>()> dns_factory_;
  int wakeup_fd_ = -1;
  struct event* wakeup_event_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> queue_;            // waiting for a worker
  std::vector<std::function<void()>> finished_;  // waiting for the loop
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace mta::smtpd
