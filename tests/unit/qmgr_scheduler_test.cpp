// qmgr's scheduling core (qmgr/scheduler.hpp): slow start, failure
// feedback, dead destinations, round robin, recipient limits, rate delays.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "qmgr/scheduler.hpp"

using namespace mta::qmgr::sched;

namespace {

TransportParams params(int limit = 20, int init = 5, const char* pos = "1", const char* neg = "1",
                       double cohorts = 1) {
  TransportParams p;
  p.dest_concurrency_limit = limit;
  p.init_dest_concurrency = init;
  p.positive = *parse_feedback(pos);
  p.negative = *parse_feedback(neg);
  p.fail_cohort_limit = cohorts;
  return p;
}

// Fills a queue with n entries numbered from `first`.
void fill(Scheduler& s, const std::string& t, const std::string& q, int n, EntryId first) {
  for (int i = 0; i < n; ++i) REQUIRE(s.add(t, q, first + static_cast<EntryId>(i), nullptr));
}

// Selects until nothing more may start now.
std::vector<Scheduler::Selection> select_all(Scheduler& s, double now = 0) {
  std::vector<Scheduler::Selection> out;
  while (auto sel = s.select(now)) out.push_back(*sel);
  return out;
}

}  // namespace

TEST_CASE("feedback values parse as Postfix documents them", "[qmgr_scheduler]") {
  CHECK(parse_feedback("1")->base == 1);
  CHECK_FALSE(parse_feedback("1")->per_concurrency);
  CHECK(parse_feedback("1/4")->base == Approx(0.25));
  auto c = parse_feedback("1/concurrency");
  REQUIRE(c);
  CHECK(c->per_concurrency);
  CHECK(c->at(4) == Approx(0.25));
  CHECK_FALSE(parse_feedback("2"));
  CHECK_FALSE(parse_feedback("x/concurrency"));
  CHECK_FALSE(parse_feedback("1/0"));
}

TEST_CASE("slow start: the window starts at the initial concurrency and grows on success",
          "[qmgr_scheduler]") {
  // Deliveries complete one at a time and the freed slot is filled at once,
  // as in a busy queue: the window after each completion.
  auto run = [](Scheduler& s, int completions) {
    std::vector<int> windows;
    std::vector<Scheduler::Selection> busy = select_all(s);
    windows.push_back(static_cast<int>(busy.size()));
    for (int i = 0; i < completions; ++i) {
      s.done_ok(busy.front(), 0);
      busy.erase(busy.begin());
      for (auto& x : select_all(s)) busy.push_back(x);
      windows.push_back(s.window("smtp", "example.com"));
      CHECK(static_cast<int>(busy.size()) == windows.back());
    }
    return windows;
  };
  SECTION("1/concurrency: one more per successful pseudo-cohort") {
    Scheduler s([](const std::string&) { return params(20, 2, "1/concurrency"); }, 60);
    fill(s, "smtp", "example.com", 200, 1);
    auto w = run(s, 9);
    CHECK(w[0] == 2);  // initial_destination_concurrency
    CHECK(w[1] == 2);
    CHECK(w[2] == 3);  // after 2 successes at window 2
    CHECK(w[4] == 3);
    CHECK(w[5] == 4);  // after 3 more at window 3
    CHECK(w[9] == 5);  // after 4 more at window 4
  }
  SECTION("constant 1: one more per success, up to the limit") {
    Scheduler s([](const std::string&) { return params(6, 1, "1"); }, 60);
    fill(s, "smtp", "example.com", 50, 1);
    auto w = run(s, 8);
    CHECK(w[0] == 1);
    CHECK(w[1] == 2);
    CHECK(w[2] == 3);
    CHECK(w[5] == 6);
    CHECK(w[8] == 6);  // destination_concurrency_limit
  }
  SECTION("without a backlog the window does not run away") {
    Scheduler s([](const std::string&) { return params(20, 2, "1"); }, 60);
    fill(s, "smtp", "example.com", 200, 1);
    for (int round = 0; round < 5; ++round) {
      auto sel = select_all(s);
      for (auto& x : sel) s.done_ok(x, 0);  // all complete before new ones start
    }
    // The window stays within busy + initial concurrency.
    CHECK(s.window("smtp", "example.com") <= 2 + 2 + 5);
  }
}

TEST_CASE("failures shrink the window, never below 1", "[qmgr_scheduler]") {
  // No failed cohort limit: the destination never dies.
  Scheduler s([](const std::string&) { return params(20, 5, "1", "1/concurrency", 0); }, 60);
  fill(s, "smtp", "slow.example", 100, 1);
  auto sel = select_all(s);
  REQUIRE(sel.size() == 5);
  Dsn why;
  s.done_hop_failure(sel[0], {"4.4.1", "connect to x: Connection refused"}, 0, &why);
  CHECK(why.status == "4.4.1");
  CHECK(why.reason == "delivery temporarily suspended: connect to x: Connection refused");
  CHECK(s.window("smtp", "slow.example") == 4);  // decremented at the start of the cycle
  for (size_t i = 1; i < sel.size(); ++i) s.done_hop_failure(sel[i], {"4.4.1", "refused"}, 0, nullptr);
  int w = s.window("smtp", "slow.example");
  CHECK(w < 4);
  CHECK(w >= 1);
  for (int i = 0; i < 30; ++i) {
    auto more = select_all(s);
    for (auto& x : more) s.done_hop_failure(x, {"4.4.1", "refused"}, 0, nullptr);
  }
  CHECK(s.window("smtp", "slow.example") == 1);
  CHECK_FALSE(s.is_dead("smtp", "slow.example"));
  // A success resets the failed cohort count.
  auto one = select_all(s);
  REQUIRE(one.size() == 1);
  s.done_ok(one[0], 0);
  CHECK(s.fail_cohorts("smtp", "slow.example") == 0);
}

TEST_CASE("a destination is dead after the failed cohort limit; its mail is handed back",
          "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) { return params(20, 1, "1", "1", 2); }, 300);
  fill(s, "smtp", "dead.example", 10, 1);
  fill(s, "smtp", "live.example", 3, 100);
  auto sel = select_all(s);
  REQUIRE(sel.size() == 2);  // one each at concurrency 1
  auto dead_sel = sel[0].queue == "dead.example" ? sel[0] : sel[1];
  auto live_sel = sel[0].queue == "dead.example" ? sel[1] : sel[0];
  Dsn why;
  // First failed cohort at concurrency 1: fail_cohorts 1 < 2, still alive.
  auto back = s.done_hop_failure(dead_sel, {"4.4.1", "connect refused"}, 10, &why);
  CHECK(back.empty());
  CHECK_FALSE(s.is_dead("smtp", "dead.example"));
  auto again = s.select(10);
  REQUIRE(again);
  if (again->queue != "dead.example") {
    s.done_ok(*again, 10);
    again = s.select(10);
  }
  REQUIRE(again);
  REQUIRE(again->queue == "dead.example");
  back = s.done_hop_failure(*again, {"4.4.1", "connect refused"}, 10, &why);
  CHECK(s.is_dead("smtp", "dead.example"));
  CHECK(back.size() == 8);  // every waiting entry of the dead destination
  CHECK(why.reason == "delivery temporarily suspended: connect refused");
  // New mail for it is refused with the same reason; other mail flows.
  Dsn refused;
  CHECK_FALSE(s.add("smtp", "dead.example", 500, &refused));
  CHECK(refused.status == "4.4.1");
  CHECK(refused.reason == "delivery temporarily suspended: connect refused");
  s.done_ok(live_sel, 10);
  auto rest = select_all(s, 10);
  for (auto& x : rest) CHECK(x.queue == "live.example");
  // minimal_backoff_time later it is alive again, at the initial concurrency.
  CHECK(s.tick(20) == Approx(310));
  s.tick(311);
  CHECK_FALSE(s.is_dead("smtp", "dead.example"));
  CHECK(s.add("smtp", "dead.example", 501, nullptr));
  CHECK(s.window("smtp", "dead.example") == 1);
}

TEST_CASE("a flush revives dead destinations and transports", "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) { return params(20, 1, "1", "1", 1); }, 300);
  fill(s, "smtp", "a.example", 2, 1);
  auto sel = s.select(0);
  REQUIRE(sel);
  auto back = s.done_hop_failure(*sel, {"4.4.1", "refused"}, 0, nullptr);
  CHECK(back.size() == 1);
  CHECK(s.is_dead("smtp", "a.example"));
  s.enable_all();
  CHECK_FALSE(s.is_dead("smtp", "a.example"));
  CHECK(s.add("smtp", "a.example", 9, nullptr));
  // A transport failure kills the transport for all destinations.
  fill(s, "smtp", "b.example", 3, 20);
  auto x = s.select(0);
  REQUIRE(x);
  auto all = s.done_transport_failure(*x, {"4.3.0", "mail transport unavailable"}, 0);
  CHECK(all.size() == 3);  // 1 + 3 waiting, minus the one that failed
  CHECK(s.transport_dead("smtp"));
  Dsn why;
  CHECK_FALSE(s.add("smtp", "c.example", 40, &why));
  CHECK(why.reason == "mail transport unavailable");
  s.enable_queue("smtp", "a.example");
  CHECK(s.transport_dead("smtp"));
  s.tick(301);
  CHECK_FALSE(s.transport_dead("smtp"));
}

TEST_CASE("round robin: a destination with 1000 messages does not starve one with 1", "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) {
    TransportParams p = params(2, 2);
    p.process_limit = 3;
    return p;
  }, 60);
  fill(s, "slowpipe", "big.example", 1000, 1);
  fill(s, "slowpipe", "other.example", 5, 5000);
  REQUIRE(s.add("slowpipe", "small.example", 9999, nullptr));
  // The process limit (3) is shared; the big destination gets at most its
  // window (2), so the third process goes elsewhere at once.
  auto first = select_all(s);
  CHECK(first.size() == 3);
  std::map<std::string, int> per;
  for (auto& x : first) per[x.queue]++;
  CHECK(per["big.example"] <= 2);
  // Completing deliveries one at a time: the small destination gets its
  // turn within a few selections, long before the big one is done.
  int picks = 0, small_at = -1;
  std::vector<Scheduler::Selection> busy = first;
  for (auto& x : first)
    if (x.queue == "small.example") small_at = 0;
  while (small_at < 0 && picks < 20) {
    s.done_ok(busy.front(), 0);
    busy.erase(busy.begin());
    auto next = s.select(0);
    REQUIRE(next);
    ++picks;
    if (next->queue == "small.example") small_at = picks;
    busy.push_back(*next);
  }
  CHECK(small_at >= 0);
  CHECK(small_at <= 3);
  CHECK(s.waiting() > 900);
}

TEST_CASE("round robin between destinations alternates", "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) {
    TransportParams p = params(1, 1);
    p.process_limit = 1;
    return p;
  }, 60);
  fill(s, "t", "a", 10, 1);
  fill(s, "t", "b", 10, 100);
  fill(s, "t", "c", 10, 200);
  std::vector<std::string> order;
  for (int i = 0; i < 9; ++i) {
    auto x = s.select(0);
    REQUIRE(x);
    order.push_back(x->queue);
    CHECK_FALSE(s.select(0));  // process limit 1
    s.done_ok(*x, 0);
  }
  for (int i = 0; i + 3 <= 9; i += 3) {
    std::set<std::string> round(order.begin() + i, order.begin() + i + 3);
    CHECK(round.size() == 3);
  }
}

TEST_CASE("recipient limits split deliveries; limit 1 schedules per recipient", "[qmgr_scheduler]") {
  std::vector<ResolvedRecipient> rcpts;
  for (size_t i = 0; i < 7; ++i) rcpts.push_back({i, "smtp", "example.com", "u" + std::to_string(i) + "@example.com"});
  rcpts.push_back({7, "smtp", "other.org", "x@other.org"});
  rcpts.push_back({8, "local", "mail.test", "Joe+ext@mail.test"});
  rcpts.push_back({9, "local", "mail.test", "joe@mail.test"});
  auto limit = [](const std::string& t) { return t == "local" ? 1 : 3; };
  auto plan = plan_entries(rcpts, limit, "+");
  std::map<std::string, std::vector<size_t>> sizes;
  for (auto& e : plan) sizes[e.transport + "/" + e.queue].push_back(e.recipients.size());
  CHECK(sizes["smtp/example.com"] == std::vector<size_t>{3, 3, 1});
  CHECK(sizes["smtp/other.org"] == std::vector<size_t>{1});
  // Per-recipient queue, extension stripped, case folded: both go to one queue,
  // one recipient per delivery.
  CHECK(sizes["local/joe@mail.test"] == std::vector<size_t>{1, 1});
  CHECK(queue_name("Example.COM", "a@example.com", 50, "+") == "example.com");
}

TEST_CASE("rate delay: one delivery per destination per delay", "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) {
    TransportParams p = params(20, 5);
    p.dest_rate_delay = 10;
    return p;
  }, 60);
  fill(s, "t", "a", 3, 1);
  auto x = select_all(s, 0);
  REQUIRE(x.size() == 1);  // concurrency 1
  s.done_ok(x[0], 0);
  CHECK_FALSE(s.select(5));
  CHECK(s.tick(5) == Approx(10));
  s.tick(10);
  CHECK(s.select(10));
}

TEST_CASE("the process limit caps a transport's deliveries", "[qmgr_scheduler]") {
  Scheduler s([](const std::string&) {
    TransportParams p = params(20, 5);
    p.process_limit = 4;
    return p;
  }, 60);
  for (int d = 0; d < 10; ++d) fill(s, "t", "d" + std::to_string(d), 3, static_cast<EntryId>(d * 10));
  CHECK(select_all(s).size() == 4);
  CHECK(s.transport_busy("t") == 4);
}
