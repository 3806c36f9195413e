// dns_lookup.hpp: the DNS questions that smtpd's access policy asks
// (reject_unknown_*_domain, reject_unknown_helo_hostname, reject_rbl_client
// and reject_rhsbl_*), behind an interface that the tests replace; and what
// lets a session ask them without stalling the event loop.
//
// The system implementation asks synchronously through the resolver
// library (res_nquery, with a short timeout and two tries).  smtpd serves
// many sessions per process, so a session does not ask from the event
// loop: before the restrictions of a command run, the Checker names the
// questions that its lists could ask (DnsQuestion), a worker pool
// (dns_pool.hpp) asks them, and the restrictions then run synchronously
// against the answers (DnsAnswers).  A question that was not foreseen
// (an access table's result that names a DNS restriction, an address that
// trivial-rewrite resolved differently) is asked synchronously, with a
// verbose log line.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mta::smtpd {

// null_mx: the name's only MX is RFC 7505's "0 ." (Postfix's DNS_NULLMX).
enum class DnsStatus { ok, not_found, retry, null_mx };

class DnsLookup {
 public:
  virtual ~DnsLookup() = default;
  // Does NAME have an MX, A or AAAA record (Postfix asks in that order and
  // stops at the first that exists, or at a null MX)?
  virtual DnsStatus mail_host(const std::string& name) = 0;
  // Does NAME have an A or AAAA record or an MX record (HELO names; a null
  // MX counts as a record)?
  virtual DnsStatus host(const std::string& name) { return mail_host(name); }
  // The A records of NAME, printable (DNS block lists).
  virtual DnsStatus a_records(const std::string& name, std::vector<std::string>& out) = 0;
  // The TXT records of NAME (the reason a block list gives).
  virtual DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) = 0;
};

// The resolver library, as configured in /etc/resolv.conf.  One object
// per thread: it keeps the resolver's state.
std::shared_ptr<DnsLookup> make_system_dns();

// One question of the access policy: mail_host and host as above; rbl is a
// block list name: its A records, and its TXT records when it has any.
struct DnsQuestion {
  enum class Kind { mail_host, host, rbl };
  Kind kind = Kind::mail_host;
  std::string name;
  bool operator<(const DnsQuestion& o) const { return kind != o.kind ? kind < o.kind : name < o.name; }
  bool operator==(const DnsQuestion& o) const { return kind == o.kind && name == o.name; }
};

struct DnsAnswer {
  DnsStatus status = DnsStatus::retry;  // mail_host, host, or the A records of rbl
  std::vector<std::string> a;
  DnsStatus txt_status = DnsStatus::not_found;
  std::vector<std::string> txt;
};

// Asks QUESTION through DNS (in a worker thread).
DnsAnswer ask(DnsLookup& dns, const DnsQuestion& question);
// What a question that got no answer in time becomes: a temporary failure.
DnsAnswer unanswered();

// The answers a session collected (they are kept for the session's later
// commands, within a bound).
class DnsAnswers {
 public:
  const DnsAnswer* find(const DnsQuestion& q) const {
    auto it = answers_.find(q);
    return it == answers_.end() ? nullptr : &it->second;
  }
  void add(const DnsQuestion& q, DnsAnswer a) { answers_[q] = std::move(a); }
  // Called before a new round of questions, never during one: temporary
  // failures are asked again (as Postfix asks at each check), and the
  // whole set is dropped past a bound (a session with many recipients).
  void trim() {
    if (answers_.size() >= kMaxAnswers) {
      answers_.clear();
      return;
    }
    std::erase_if(answers_, [](const auto& qa) { return qa.second.status == DnsStatus::retry; });
  }
  size_t size() const { return answers_.size(); }
  void clear() { answers_.clear(); }

 private:
  static constexpr size_t kMaxAnswers = 256;
  std::map<DnsQuestion, DnsAnswer> answers_;
};

// The DnsLookup the access policy holds: it answers from the DnsAnswers
// of the session whose check runs (see Checker::AnswerScope), and asks
// BASE for anything else, logging the miss when verbose.
class PrefetchedDns : public DnsLookup {
 public:
  explicit PrefetchedDns(std::shared_ptr<DnsLookup> base) : base_(std::move(base)) {}
  DnsStatus mail_host(const std::string& name) override;
  DnsStatus host(const std::string& name) override;
  DnsStatus a_records(const std::string& name, std::vector<std::string>& out) override;
  DnsStatus txt_records(const std::string& name, std::vector<std::string>& out) override;

  void use(const DnsAnswers* answers) { answers_ = answers; }
  const DnsAnswers* answers() const { return answers_; }
  // Questions that were asked synchronously because no answer was ready
  // (while a session's answers were in use).
  size_t misses() const { return misses_; }

 private:
  const DnsAnswer* find(DnsQuestion::Kind kind, const std::string& name, const char* what);
  std::shared_ptr<DnsLookup> base_;
  const DnsAnswers* answers_ = nullptr;
  size_t misses_ = 0;
};

}  // namespace mta::smtpd
