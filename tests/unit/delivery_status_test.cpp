// lib/deliver: Postfix's delivery status line and its delay format.
#include <catch2/catch.hpp>

#include "deliver/delivery_status.hpp"

using mta::deliver::format_delay;

TEST_CASE("delays print as Postfix's format_tv does") {
  CHECK(format_delay(0, 0) == "0");
  CHECK(format_delay(0, 90000) == "0.09");
  CHECK(format_delay(0, 100000) == "0.1");
  CHECK(format_delay(0, 123000) == "0.12");
  CHECK(format_delay(0, 12300) == "0.01");
  CHECK(format_delay(0, 1000) == "0");
  CHECK(format_delay(1, 234000) == "1.2");
  CHECK(format_delay(9, 960000) == "10");
  CHECK(format_delay(12, 340000) == "12");
  CHECK(format_delay(123, 600000) == "124");
  CHECK(format_delay(0, 12300, 3) == "0.012");
}

TEST_CASE("the status line has Postfix's shape") {
  mta::deliver::StatusLine l;
  l.queue_id = "3F2A1C0D9E";
  l.recipient.address = "user@example.com";
  l.recipient.orig_addr = "alias@example.com";
  l.relay = "local";
  l.stats.incoming_arrival = {1000, 0};
  l.stats.active_arrival = {1000, 10000};
  l.stats.agent_handoff = {1000, 10000};
  l.stats.deliver_done = {1000, 100000};
  l.dsn.status = "2.0.0";
  l.dsn.reason = "delivered to maildir";
  l.status = "sent";
  CHECK(mta::deliver::format_status(l) ==
        "3F2A1C0D9E: to=<user@example.com>, orig_to=<alias@example.com>, relay=local, delay=0.1, "
        "delays=0.01/0/0/0.09, dsn=2.0.0, status=sent (delivered to maildir)");
  l.recipient.orig_addr = "USER@example.com";  // the same address: no orig_to
  CHECK(mta::deliver::format_status(l).find("orig_to") == std::string::npos);
}
