// lib/maps/match_list: host/address lists (Postfix's namadr_list, as
// mynetworks uses it) and net/mask patterns.  The plain pattern lists are
// tested with trivial-rewrite (trivial_rewrite_test.cpp), their first user.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "maps/match_list.hpp"

using mta::maps::HostList;
using mta::maps::Match;
using mta::maps::match_network;

TEST_CASE("net/mask patterns, IPv4 and IPv6", "[match_list]") {
  CHECK(match_network("10.0.0.0/8", "10.1.2.3") == Match::yes);
  CHECK(match_network("10.0.0.0/8", "11.1.2.3") == Match::no);
  CHECK(match_network("192.0.2.128/25", "192.0.2.200") == Match::yes);
  CHECK(match_network("192.0.2.128/25", "192.0.2.127") == Match::no);
  CHECK(match_network("0.0.0.0/0", "203.0.113.1") == Match::yes);
  CHECK(match_network("192.0.2.1/32", "192.0.2.1") == Match::yes);
  CHECK(match_network("[::1]/128", "::1") == Match::yes);
  CHECK(match_network("[::1]/128", "::2") == Match::no);
  CHECK(match_network("[2001:db8::]/32", "2001:DB8:1::5") == Match::yes);
  CHECK(match_network("[2001:db8::]/32", "2001:db9::5") == Match::no);
  CHECK(match_network("[fe80::]/10", "febf::1") == Match::yes);
  CHECK(match_network("[fe80::]/10", "fec0::1") == Match::no);
  CHECK(match_network("10.0.0.0/8", "::1") == Match::no);  // other family
  std::string why;
  CHECK(match_network("10.1.2.3/8", "10.1.2.3", &why) == Match::error);
  CHECK(why == "non-null host address bits in \"10.1.2.3/8\", perhaps you should use \"10.0.0.0/8\" instead");
  CHECK(match_network("10.0.0.0/33", "10.0.0.1") == Match::error);
  CHECK(match_network("10.0.0/8", "10.0.0.1") == Match::error);
}

TEST_CASE("host/address lists: names, addresses, networks, tables, negation", "[match_list]") {
  HostList list("mynetworks",
                "127.0.0.0/8 [::1]/128, 192.0.2.7 [2001:db8::7] .trusted.example, !bad.partner.example, "
                "partner.example inline:{{198.51.100.9=x}, {table.example=y}}",
                true);
  CHECK(list.match("localhost", "127.0.0.1") == Match::yes);
  CHECK(list.match("unknown", "::1") == Match::yes);
  CHECK(list.match("unknown", "::2") == Match::no);
  CHECK(list.match("unknown", "192.0.2.7") == Match::yes);
  CHECK(list.match("unknown", "192.0.2.8") == Match::no);
  CHECK(list.match("unknown", "2001:db8::7") == Match::yes);
  // In parent style a pattern matches its subdomains without a dot, and
  // ".domain" matches nothing more than itself (Postfix's match_hostname).
  CHECK(list.match("a.trusted.example", "203.0.113.1") == Match::no);
  CHECK(list.match("mx.PARTNER.example", "203.0.113.1") == Match::yes);  // parent style
  CHECK(list.match("bad.partner.example", "203.0.113.1") == Match::no);
  CHECK(list.match("x.bad.partner.example", "203.0.113.1") == Match::no);
  CHECK(list.match("unknown", "198.51.100.9") == Match::yes);     // a table asked for the address
  CHECK(list.match("a.table.example", "203.0.113.1") == Match::yes);  // and for the name's parents

  HostList dotted("debug_peer_list", "example.com, .trusted.example", false);
  CHECK(dotted.match("example.com", "192.0.2.1") == Match::yes);
  CHECK(dotted.match("a.example.com", "192.0.2.1") == Match::no);
  CHECK(dotted.match("a.trusted.example", "192.0.2.1") == Match::yes);
  CHECK(dotted.match("trusted.example", "192.0.2.1") == Match::no);

  HostList broken("mynetworks", "10.1.2.3/8");
  CHECK(broken.match("unknown", "10.1.2.3") == Match::error);
  CHECK(broken.error().find("non-null host address bits") != std::string::npos);

  auto file = std::filesystem::temp_directory_path() / ("mta-namadr-" + std::to_string(getpid()));
  std::ofstream(file) << "# networks\n10.0.0.0/8\n\n  [2001:db8::]/32\n";
  HostList from_file("mynetworks", file.string());
  CHECK(from_file.match("unknown", "10.9.9.9") == Match::yes);
  CHECK(from_file.match("unknown", "2001:db8::1") == Match::yes);
  CHECK(from_file.match("unknown", "192.0.2.1") == Match::no);
  std::filesystem::remove(file);
}
