// dnssec_probe_test.cpp: Postfix's dnssec_probe (dns/dnssec_probe.hpp):
// when it is asked, what it asks, and the warnings, with Postfix's texts.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dns/dnssec_probe.hpp"
#include "log_capture.hpp"

using namespace mta;
using mta::test::LogCapture;

namespace {

// A scripted resolver for the probe question: records what was asked.
struct FakeAsk {
  dns::Status status = dns::Status::ok;
  bool validated = false;
  std::string why;
  std::vector<std::pair<int, std::string>> asked;
  dns::DnssecProbe::Ask fn() {
    return [this](int type, const std::string& name, bool* v, std::string* w) {
      asked.emplace_back(type, name);
      *v = validated;
      *w = why;
      return status;
    };
  }
};

}  // namespace

TEST_CASE("dnssec_probe specs parse as qtype:qname", "[dnssec_probe]") {
  auto q = dns::parse_dnssec_probe("ns:.");
  REQUIRE(q);
  CHECK(q->type == 2);
  CHECK(q->name == ".");
  q = dns::parse_dnssec_probe("MX:example.org");
  REQUIRE(q);
  CHECK(q->type == dns::kTypeMx);
  CHECK(q->name == "example.org");
  CHECK_FALSE(dns::parse_dnssec_probe("ns"));
  CHECK_FALSE(dns::parse_dnssec_probe("ns:"));
  CHECK_FALSE(dns::parse_dnssec_probe(":."));
  CHECK_FALSE(dns::parse_dnssec_probe("nosuchtype:."));
}

TEST_CASE("dnssec_probe: a validated answer first means no probe", "[dnssec_probe]") {
  LogCapture log;
  dns::DnssecProbe probe;
  FakeAsk ask;
  probe.after_question(true, ask.fn());
  probe.after_question(false, ask.fn());
  CHECK(ask.asked.empty());
  CHECK(probe.available());
  CHECK(log.text().find("DNSSEC") == std::string::npos);
}

TEST_CASE("dnssec_probe: an answer that is not validated sends the probe once", "[dnssec_probe]") {
  LogCapture log;
  dns::DnssecProbe probe;
  FakeAsk ask;  // the probe's answer is not validated either
  probe.after_question(false, ask.fn());
  probe.after_question(false, ask.fn());
  REQUIRE(ask.asked.size() == 1);
  CHECK(ask.asked[0] == std::make_pair(2, std::string(".")));
  std::string text = log.text();
  CHECK(text.find("warning: DNSSEC validation may be unavailable\n") != std::string::npos);
  CHECK(text.find("warning: reason: dnssec_probe 'ns:.' received a response that is not DNSSEC validated\n") !=
        std::string::npos);
  CHECK_FALSE(probe.available());
}

TEST_CASE("dnssec_probe: a validated probe answer means no warning", "[dnssec_probe]") {
  LogCapture log;
  dns::DnssecProbe probe;
  FakeAsk ask;
  ask.validated = true;
  probe.after_question(false, ask.fn());
  CHECK(ask.asked.size() == 1);
  CHECK(probe.available());
  CHECK(log.text().find("warning") == std::string::npos);
}

TEST_CASE("dnssec_probe: a probe without an answer says why", "[dnssec_probe]") {
  LogCapture log;
  dns::DnssecProbe probe("soa:example.org");
  FakeAsk ask;
  ask.status = dns::Status::retry;
  ask.why = "Host or domain name not found. Name service error for name=example.org type=SOA: Host not found, try again";
  probe.after_question(false, ask.fn());
  REQUIRE(ask.asked.size() == 1);
  CHECK(ask.asked[0] == std::make_pair(6, std::string("example.org")));
  std::string text = log.text();
  CHECK(text.find("warning: DNSSEC validation may be unavailable\n") != std::string::npos);
  CHECK(text.find("warning: reason: dnssec_probe 'soa:example.org' received no response: Host or domain name not "
                  "found. Name service error for name=example.org type=SOA: Host not found, try again\n") !=
        std::string::npos);
  CHECK(text.find("not DNSSEC validated") == std::string::npos);
}

TEST_CASE("dnssec_probe: an empty spec turns it off", "[dnssec_probe]") {
  LogCapture log;
  dns::DnssecProbe probe("");
  FakeAsk ask;
  probe.after_question(false, ask.fn());
  CHECK(ask.asked.empty());
  CHECK(log.text().find("DNSSEC") == std::string::npos);
}
