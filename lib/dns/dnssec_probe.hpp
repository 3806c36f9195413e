// dnssec_probe.hpp: Postfix's dnssec_probe (dns_sec.c, Postfix 3.6 and
// later).  DANE needs a resolver that validates DNSSEC; a process that asked
// a question with DNSSEC and got an answer that was not validated, before
// any validated one, asks the probe question once ("ns:." by default: the
// root's NS records, which a resolver has at hand) and, when that answer is
// not validated either, logs
//
//   warning: DNSSEC validation may be unavailable
//   warning: reason: dnssec_probe 'ns:.' received a response that is not DNSSEC validated
//
// or "... received no response: WHY" when the probe itself failed.  A
// validated answer to any question (the probe's too) ends it for the
// process.  An empty dnssec_probe turns it off; a malformed one is fatal,
// with Postfix's text.  dns::Resolver::query_dnssec() feeds the process's
// probe; smtp sets its spec from main.cf.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "dns/dns_resolver.hpp"

namespace mta::dns {

struct ProbeQuestion {
  int type = 0;
  std::string name;
};

// "qtype:qname" (the type by name in any case, as dns::type_by_name()
// knows them); nullopt when malformed or of another type.
std::optional<ProbeQuestion> parse_dnssec_probe(std::string_view spec);

class DnssecProbe {
 public:
  // Asks TYPE NAME with DNSSEC; sets *validated to the answer's AD bit.
  using Ask = std::function<Status(int type, const std::string& name, bool* validated, std::string* why)>;

  explicit DnssecProbe(std::string spec = "ns:.") : spec_(std::move(spec)) {}
  void set_spec(std::string spec) { spec_ = std::move(spec); }

  // After a question asked with DNSSEC; VALIDATED is its AD bit.
  void after_question(bool validated, const Ask& ask);

  bool available() const { return available_; }  // a validated answer was seen
  bool sent() const { return sent_; }             // the probe was asked (or is off)

 private:
  std::string spec_;
  bool available_ = false;
  bool sent_ = false;
};

// The process's probe (Postfix keeps its state per process).
DnssecProbe& process_dnssec_probe();

}  // namespace mta::dns
