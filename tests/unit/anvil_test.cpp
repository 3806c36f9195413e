// anvil: the counting rules of anvil/remote_table.hpp.  The expected values
// are what the real Postfix 3.7 anvil answered to the same sequences
// (tests/integration/anvil_interop.sh replays such sequences against it).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_ANVIL)

#include "anvil/remote_table.hpp"
#include "ipc/anvil_client.hpp"

using mta::anvil::Counters;
using mta::anvil::RemoteTable;

namespace {

constexpr time_t T0 = 1700000000;

Counters counters(int count, int rate, int mail, int rcpt, int newtls, int auth) {
  return Counters{count, rate, mail, rcpt, newtls, auth};
}

}  // namespace

TEST_CASE("anvil: connect counts connections and the connection rate", "[anvil]") {
  RemoteTable t(60);
  auto r = t.connect(1, "smtp:1.2.3.4", T0);
  CHECK(r.count == 1);
  CHECK(r.rate == 1);
  r = t.connect(2, "smtp:1.2.3.4", T0 + 1);
  CHECK(r.count == 2);
  CHECK(r.rate == 2);
  r = t.connect(3, "smtp:1.2.3.4", T0 + 2);
  CHECK(r.count == 3);
  CHECK(r.rate == 3);
  // Another client is counted apart.
  r = t.connect(4, "smtp:5.6.7.8", T0 + 2);
  CHECK(r.count == 1);
  CHECK(r.rate == 1);
  CHECK(t.lookup("smtp:1.2.3.4", T0 + 3) == counters(3, 3, 0, 0, 0, 0));
  CHECK(t.lookup("smtp:9.9.9.9", T0 + 3) == Counters{});
  CHECK(t.size() == 2);
}

TEST_CASE("anvil: disconnect counts only for the local server that connected", "[anvil]") {
  RemoteTable t(60);
  t.connect(1, "smtp:a", T0);
  t.connect(2, "smtp:a", T0);
  t.disconnect(3, "smtp:a", T0);  // never connected it
  CHECK(t.lookup("smtp:a", T0).count == 2);
  t.disconnect(1, "smtp:b", T0);  // another ident
  CHECK(t.lookup("smtp:a", T0).count == 2);
  t.disconnect(1, "smtp:a", T0);
  CHECK(t.lookup("smtp:a", T0).count == 1);
  t.disconnect(1, "smtp:a", T0);  // twice: once only
  CHECK(t.lookup("smtp:a", T0).count == 1);
  t.disconnect(2, "smtp:a", T0);
  // Count zero; the rate stays until the entry expires.
  CHECK(t.lookup("smtp:a", T0) == counters(0, 2, 0, 0, 0, 0));
}

TEST_CASE("anvil: one remote connection per local server", "[anvil]") {
  RemoteTable t(60);
  // The same local server connecting the same ident twice still holds one.
  CHECK(t.connect(1, "smtp:a", T0).count == 1);
  auto r = t.connect(1, "smtp:a", T0);
  CHECK(r.count == 1);
  CHECK(r.rate == 2);
  CHECK(t.connect(2, "smtp:a", T0).count == 2);
  // A connect to another ident drops the previous one.
  CHECK(t.connect(1, "smtp:b", T0).count == 1);
  CHECK(t.lookup("smtp:a", T0).count == 1);
  // A rate event for an unknown ident counts as a connection of that local
  // server (anvil restarted after the connect) and drops its previous one.
  CHECK(t.message(1, "smtp:c", T0) == 1);
  CHECK(t.lookup("smtp:c", T0) == counters(1, 1, 1, 0, 0, 0));
  CHECK(t.lookup("smtp:b", T0).count == 0);
  // A rate event for a known ident changes no link.
  CHECK(t.recipient(2, "smtp:c", T0) == 1);
  CHECK(t.lookup("smtp:a", T0).count == 1);
  CHECK(t.lookup("smtp:c", T0).count == 1);
}

TEST_CASE("anvil: a local server that goes away drops its connection", "[anvil]") {
  RemoteTable t(60);
  t.connect(1, "smtp:a", T0);
  t.connect(2, "smtp:a", T0);
  t.local_gone(1, T0 + 1);
  CHECK(t.lookup("smtp:a", T0 + 1).count == 1);
  t.local_gone(1, T0 + 1);  // nothing left to drop
  CHECK(t.lookup("smtp:a", T0 + 1).count == 1);
  t.local_gone(2, T0 + 1);
  CHECK(t.lookup("smtp:a", T0 + 1).count == 0);
  t.local_gone(7, T0 + 1);  // never connected anything
  CHECK(t.size() == 1);
}

TEST_CASE("anvil: rate events and their replies", "[anvil]") {
  RemoteTable t(60);
  t.connect(1, "smtp:a", T0);
  CHECK(t.message(1, "smtp:a", T0) == 1);
  CHECK(t.recipient(1, "smtp:a", T0) == 1);
  CHECK(t.recipient(1, "smtp:a", T0) == 2);
  CHECK(t.newtls(1, "smtp:a", T0) == 1);
  CHECK(t.newtls_status("smtp:a", T0) == 1);
  CHECK(t.newtls_status("smtp:a", T0) == 1);  // reading does not count
  CHECK(t.auth(1, "smtp:a", T0) == 1);
  CHECK(t.lookup("smtp:a", T0) == counters(1, 1, 1, 2, 1, 1));
  // newtls_status of an unknown ident creates nothing.
  CHECK(t.newtls_status("smtp:z", T0) == 0);
  CHECK(t.size() == 1);
}

TEST_CASE("anvil: the rate window is fixed and restarts after time_unit", "[anvil]") {
  RemoteTable t(4);
  t.connect(1, "smtp:a", T0);
  t.message(1, "smtp:a", T0);
  t.connect(2, "smtp:a", T0 + 1);
  t.auth(2, "smtp:a", T0 + 2);
  CHECK(t.lookup("smtp:a", T0 + 4) == counters(2, 2, 1, 0, 0, 1));  // start + unit is not yet past
  // Stale: zero rates, the count stays.
  CHECK(t.lookup("smtp:a", T0 + 5) == counters(2, 0, 0, 0, 0, 0));
  // The next event starts a new window; the others stay at zero.
  CHECK(t.message(1, "smtp:a", T0 + 5) == 1);
  auto r = t.connect(2, "smtp:a", T0 + 5);
  CHECK(r.count == 2);
  CHECK(r.rate == 1);
  CHECK(t.lookup("smtp:a", T0 + 6) == counters(2, 1, 1, 0, 0, 0));
  // A connect after the window resets the other rates too.
  t.recipient(1, "smtp:a", T0 + 6);
  r = t.connect(3, "smtp:a", T0 + 20);
  CHECK(r.rate == 1);
  CHECK(t.lookup("smtp:a", T0 + 20) == counters(3, 1, 0, 0, 0, 0));
  // A rate event after the window resets the connection rate.
  CHECK(t.auth(1, "smtp:a", T0 + 30) == 1);
  CHECK(t.lookup("smtp:a", T0 + 30) == counters(3, 0, 0, 0, 0, 1));
}

TEST_CASE("anvil: an ident at count zero is forgotten time_unit seconds later", "[anvil]") {
  RemoteTable t(4);
  t.connect(1, "smtp:a", T0);
  t.recipient(2, "smtp:b", T0);  // unknown: a connection of local 2
  t.disconnect(2, "smtp:b", T0 + 1);
  CHECK(t.next_expiry() == T0 + 5);
  CHECK(t.lookup("smtp:b", T0 + 4) == counters(0, 1, 0, 1, 0, 0));
  CHECK(t.lookup("smtp:b", T0 + 5) == Counters{});
  CHECK(t.size() == 1);
  // Connected again before it expires: it stays.
  t.disconnect(1, "smtp:a", T0 + 6);
  t.connect(3, "smtp:a", T0 + 8);
  t.expire(T0 + 100);
  CHECK(t.size() == 1);
  CHECK(t.lookup("smtp:a", T0 + 100).count == 1);
  // Dropped, connected and dropped again: the later time counts.
  t.local_gone(3, T0 + 101);
  t.connect(3, "smtp:a", T0 + 102);
  t.local_gone(3, T0 + 103);
  t.expire(T0 + 105);
  CHECK(t.size() == 1);
  t.expire(T0 + 107);
  CHECK(t.size() == 0);
  CHECK(t.next_expiry() == 0);
}

TEST_CASE("anvil: statistics report the peaks since the last report", "[anvil]") {
  RemoteTable t(60);
  CHECK(t.take_statistics().empty());
  t.connect(1, "smtp:a", T0);
  t.connect(2, "smtp:a", T0 + 1);
  t.connect(3, "smtp:b", T0 + 2);
  t.message(1, "smtp:a", T0 + 3);
  t.recipient(1, "smtp:a", T0 + 3);
  t.recipient(1, "smtp:a", T0 + 4);
  t.recipient(3, "smtp:b", T0 + 5);
  t.recipient(3, "smtp:b", T0 + 5);  // a tie keeps the first
  t.newtls(3, "smtp:b", T0 + 6);
  t.auth(2, "smtp:a", T0 + 7);
  using mta::anvil::time_of_day;
  std::vector<std::string> want = {
      "statistics: max connection rate 2/60s for (smtp:a) at " + time_of_day(T0 + 1),
      "statistics: max connection count 2 for (smtp:a) at " + time_of_day(T0 + 1),
      "statistics: max message rate 1/60s for (smtp:a) at " + time_of_day(T0 + 3),
      "statistics: max recipient rate 2/60s for (smtp:a) at " + time_of_day(T0 + 4),
      "statistics: max newtls rate 1/60s for (smtp:b) at " + time_of_day(T0 + 6),
      "statistics: max auth rate 1/60s for (smtp:a) at " + time_of_day(T0 + 7),
      "statistics: max cache size 2 at " + time_of_day(T0 + 2),
  };
  CHECK(t.take_statistics() == want);
  CHECK(t.take_statistics().empty());
  // A connection made by a rate event counts for the cache, not for the
  // connection peaks.
  t.newtls(5, "smtp:c", T0 + 10);
  want = {"statistics: max newtls rate 1/60s for (smtp:c) at " + time_of_day(T0 + 10),
          "statistics: max cache size 3 at " + time_of_day(T0 + 10)};
  CHECK(t.take_statistics() == want);
}

TEST_CASE("anvil: time of day as ctime prints it", "[anvil]") {
  std::string s = mta::anvil::time_of_day(T0);
  REQUIRE(s.size() == 15);
  CHECK(s[3] == ' ');
  CHECK(s[6] == ' ');
  CHECK(s[9] == ':');
  CHECK(s[12] == ':');
}

TEST_CASE("anvil: the client's ident is SERVICE:ADDR, printable", "[anvil]") {
  using mta::ipc::AnvilClient;
  CHECK(AnvilClient::ident("smtp", "192.0.2.1") == "smtp:192.0.2.1");
  CHECK(AnvilClient::ident("submission", "2001:db8::1") == "submission:2001:db8::1");
  CHECK(AnvilClient::ident("smtp", "a\nb") == "smtp:a?b");
}

TEST_CASE("anvil: the client reports an unreachable service", "[anvil]") {
  mta::ipc::AnvilClient client("/nonexistent-queue-dir", "anvil", std::chrono::seconds(2));
  int count = -5, rate = -5;
  CHECK_FALSE(client.connect("smtp", "1.2.3.4", count, rate));
  mta::ipc::AnvilCounts counts;
  CHECK_FALSE(client.lookup("smtp", "1.2.3.4", counts));
  CHECK_FALSE(client.is_connected());
}

#endif
