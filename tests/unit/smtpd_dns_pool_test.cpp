// smtpd's worker pool for blocking lookups (smtpd/dns_pool.hpp): a slow
// job does not hold up a fast one, finished jobs come back in the event
// loop's thread, and a pool that goes away with a job in flight neither
// crashes nor runs that job's completion.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_SMTPD_CHECK)

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "smtpd/dns_pool.hpp"

using namespace mta::smtpd;

namespace {

// "slow.example" takes 300 ms; everything else exists at once.
class SleepyDns : public DnsLookup {
 public:
  DnsStatus mail_host(const std::string& name) override {
    if (name == "slow.example") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return name == "nosuch.example" ? DnsStatus::not_found : DnsStatus::ok;
  }
  DnsStatus a_records(const std::string&, std::vector<std::string>&) override { return DnsStatus::not_found; }
  DnsStatus txt_records(const std::string&, std::vector<std::string>&) override { return DnsStatus::not_found; }
};

struct Base {
  struct event_base* base = event_base_new();
  ~Base() { event_base_free(base); }
  // Runs the loop until DONE or a time limit.
  bool run_until(const std::function<bool()>& done, int ms = 5000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done() && std::chrono::steady_clock::now() < end) {
      timeval tv{0, 20000};
      event_base_loopexit(base, &tv);
      event_base_dispatch(base);
    }
    return done();
  }
};

}  // namespace

TEST_CASE("DNS pool: a slow question does not hold up a fast one", "[smtpd_dns_pool]") {
  Base b;
  DnsPool pool(b.base, [] { return std::make_shared<SleepyDns>(); });
  std::vector<std::string> order;
  std::vector<DnsAnswer> answers(3);
  const std::thread::id loop = std::this_thread::get_id();
  bool all_in_loop = true;
  auto submit = [&](size_t i, const std::string& name) {
    DnsQuestion q{DnsQuestion::Kind::mail_host, name};
    auto answer = std::make_shared<DnsAnswer>();
    pool.submit([q, answer](DnsLookup& dns) { *answer = ask(dns, q); },
                [&, i, name, answer] {
                  all_in_loop = all_in_loop && std::this_thread::get_id() == loop;
                  answers[i] = *answer;
                  order.push_back(name);
                });
  };
  submit(0, "slow.example");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the slow one is under way
  submit(1, "fast.example");
  submit(2, "nosuch.example");
  REQUIRE(b.run_until([&] { return order.size() == 3; }));
  CHECK(order.back() == "slow.example");
  CHECK(all_in_loop);
  CHECK(answers[0].status == DnsStatus::ok);
  CHECK(answers[1].status == DnsStatus::ok);
  CHECK(answers[2].status == DnsStatus::not_found);
  CHECK(pool.threads() >= 2);
  CHECK(pool.threads() <= DnsPool::kMaxThreads);
}

TEST_CASE("DNS pool: going away with a job in flight", "[smtpd_dns_pool]") {
  Base b;
  std::atomic<bool> ran{false};
  bool done = false;
  {
    DnsPool pool(b.base, [] { return std::make_shared<SleepyDns>(); });
    pool.submit([&](DnsLookup& dns) { dns.mail_host("slow.example"); ran = true; }, [&] { done = true; });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }  // joins the worker, drops the completion
  CHECK(ran);
  b.run_until([] { return false; }, 100);
  CHECK(!done);
}

#endif  // MTA_HAVE_SMTPD_CHECK
