// lib/address: the two forms of an address and header address lists.
#include <catch2/catch.hpp>

#include "address/address.hpp"

using namespace mta::address;

namespace {
std::vector<std::string> texts(const std::vector<InternalAddress>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(a.text);
  return out;
}
}  // namespace

TEST_CASE("external and internal forms") {
  CHECK(to_internal("\"john doe\"@example.com").text == "john doe@example.com");
  CHECK(to_internal("\"a\\\"b\"@x").text == "a\"b@x");
  CHECK(to_internal("plain@example.com").text == "plain@example.com");
  CHECK(to_internal("\"at@sign\"@example.com").text == "at@sign@example.com");
  CHECK(to_internal("user").text == "user");
  CHECK(to_external("john doe@example.com").text == "\"john doe\"@example.com");
  CHECK(to_external("at@sign@example.com").text == "\"at@sign\"@example.com");
  CHECK(to_external("a\"b@x").text == "\"a\\\"b\"@x");
  CHECK(to_external("first.last@example.com").text == "first.last@example.com");
  CHECK(to_external(".lead@x").text == "\".lead\"@x");
  CHECK(to_external("two..dots@x").text == "\"two..dots\"@x");
  CHECK(to_external("user+tag@x").text == "user+tag@x");
  CHECK(to_external("").text.empty());
  // Round trip.
  for (std::string a : {"a b@c", "x\\y@z", "normal@d", "\"q\"@r"})
    CHECK(to_internal(to_external(a).text).text == a);
}

TEST_CASE("local and domain parts split at the last @") {
  CHECK(local_part("a@b@c") == "a@b");
  CHECK(domain_part("a@b@c") == "c");
  CHECK(domain_part("local") == "");
}

TEST_CASE("header address lists") {
  CHECK(texts(parse_header_addresses("John Doe <john@example.com>, jane@example.org (Jane)")) ==
        std::vector<std::string>{"john@example.com", "jane@example.org"});
  CHECK(texts(parse_header_addresses("\"Doe, John\" <john@example.com>")) ==
        std::vector<std::string>{"john@example.com"});
  CHECK(texts(parse_header_addresses("team: a@x, b@y;, c@z")) == std::vector<std::string>{"a@x", "b@y", "c@z"});
  CHECK(texts(parse_header_addresses("undisclosed-recipients:;")).empty());
  CHECK(texts(parse_header_addresses("<@relay.example:user@final.example>")) ==
        std::vector<std::string>{"user@final.example"});
  CHECK(texts(parse_header_addresses("\"john doe\"@example.com")) ==
        std::vector<std::string>{"john doe@example.com"});
  CHECK(texts(parse_header_addresses("root")) == std::vector<std::string>{"root"});
  CHECK(texts(parse_header_addresses("user@[192.0.2.1]")) == std::vector<std::string>{"user@[192.0.2.1]"});
  CHECK(texts(parse_header_addresses("  ")).empty());
  CHECK(texts(parse_header_addresses("a@x,,b@y")) == std::vector<std::string>{"a@x", "b@y"});
}
