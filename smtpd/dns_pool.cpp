// dns_pool.cpp: see dns_pool.hpp.
#include "smtpd/dns_pool.hpp"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace mta::smtpd {

DnsPool::DnsPool(struct event_base* base, std::function<std::shared_ptr<DnsLookup>()> dns_factory)
    : base_(base), dns_factory_(std::move(dns_factory)) {
  wakeup_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeup_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  wakeup_event_ = event_new(base_, wakeup_fd_, EV_READ | EV_PERSIST, &DnsPool::on_wakeup, this);
  event_add(wakeup_event_, nullptr);
}

DnsPool::~DnsPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  ready_.notify_all();
  // A worker in the middle of a query finishes it first (the resolver's
  // limits bound that).
  for (std::thread& t : threads_) t.join();
  if (wakeup_event_) event_free(wakeup_event_);
  if (wakeup_fd_ >= 0) ::close(wakeup_fd_);
}

size_t DnsPool::threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return threads_.size();
}

void DnsPool::submit(std::function<void(DnsLookup&)> work, std::function<void()> done,
                     std::shared_ptr<const std::atomic<bool>> cancelled) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back({std::move(work), std::move(done), std::move(cancelled)});
    // One more worker when every one is busy: a slow name server then
    // holds up only the jobs that ask it.
    if (idle_ < queue_.size() && threads_.size() < kMaxThreads) threads_.emplace_back(&DnsPool::worker, this);
  }
  ready_.notify_one();
}

void DnsPool::worker() {
  std::shared_ptr<DnsLookup> dns = dns_factory_();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (!job.cancelled || !job.cancelled->load()) job.work(*dns);
    job.work = nullptr;  // what it holds goes here, in the worker
    lock.lock();
    finished_.push_back(std::move(job.done));
    std::uint64_t one = 1;
    ssize_t n = ::write(wakeup_fd_, &one, sizeof one);  // wakes the loop
    (void)n;
  }
}

void DnsPool::on_wakeup(int fd, short, void* self) {
  auto* pool = static_cast<DnsPool*>(self);
  std::uint64_t count = 0;
  ssize_t n = ::read(fd, &count, sizeof count);
  (void)n;
  std::vector<std::function<void()>> done;
  {
    std::lock_guard<std::mutex> lock(pool->mutex_);
    done.swap(pool->finished_);
  }
  for (std::function<void()>& f : done) f();
}

}  // namespace mta::smtpd
