// dnssec_probe.cpp: see dnssec_probe.hpp.
#include "dns/dnssec_probe.hpp"

#include <strings.h>

#include "log/log.hpp"

namespace mta::dns {

std::optional<ProbeQuestion> parse_dnssec_probe(std::string_view spec) {
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size()) return std::nullopt;
  std::string type(spec.substr(0, colon));
  static const struct {
    const char* name;
    int type;
  } kTypes[] = {{"a", 1},       {"ns", 2},     {"cname", 5},  {"soa", 6},    {"ptr", 12},  {"hinfo", 13},
                {"mx", 15},     {"txt", 16},   {"aaaa", 28},  {"srv", 33},   {"naptr", 35}, {"ds", 43},
                {"sshfp", 44},  {"rrsig", 46}, {"nsec", 47},  {"dnskey", 48}, {"nsec3", 50}, {"tlsa", 52},
                {"any", 255},   {"caa", 257}};
  for (const auto& t : kTypes)
    if (::strcasecmp(t.name, type.c_str()) == 0) return ProbeQuestion{t.type, std::string(spec.substr(colon + 1))};
  return std::nullopt;
}

void DnssecProbe::after_question(bool validated, const Ask& ask) {
  if (validated) available_ = true;
  if (available_ || sent_) return;
  sent_ = true;  // once per process, and never from inside the probe
  if (spec_.empty()) return;
  std::optional<ProbeQuestion> q = parse_dnssec_probe(spec_);
  if (!q) log::fatal("malformed dnssec_probe value: %s format is qtype:qname", spec_.c_str());
  bool probe_validated = false;
  std::string why;
  Status st = ask(q->type, q->name, &probe_validated, &why);
  if (probe_validated) available_ = true;
  if (!available_) log::warning("DNSSEC validation may be unavailable");
  else log::debug("dnssec_probe '%s' received a response that is DNSSEC validated", spec_.c_str());
  if (st == Status::fail || st == Status::retry)
    log::warning("reason: dnssec_probe '%s' received no response: %s", spec_.c_str(), why.c_str());
  else if (!available_)
    log::warning("reason: dnssec_probe '%s' received a response that is not DNSSEC validated", spec_.c_str());
}

DnssecProbe& process_dnssec_probe() {
  static DnssecProbe probe;
  return probe;
}

}  // namespace mta::dns
