// dnssec_probe.cpp: see dnssec_probe.hpp.
#include "dns/dnssec_probe.hpp"

#include "log/log.hpp"

namespace mta::dns {

std::optional<ProbeQuestion> parse_dnssec_probe(std::string_view spec) {
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size()) return std::nullopt;
  int type = type_by_name(spec.substr(0, colon));
  if (type == 0) return std::nullopt;
  return ProbeQuestion{type, std::string(spec.substr(colon + 1))};
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
