// dns_prefetch.cpp: which DNS questions a restriction list could ask (see
// dns_lookup.hpp).  The session asks them in the worker pool before the
// restrictions of a command run, so that the restrictions, which stay
// synchronous, find their answers ready.
//
// The walk is static: every DNS restriction of the list counts, even one
// that an earlier permit or reject would not let run (asking one question
// too many costs a query, never a different reply).  Restriction classes
// are followed; what an access table's result names is not (it is asked
// synchronously when it comes, with a verbose log line).
#include <algorithm>
#include <cctype>

#include "smtpd/restriction_list.hpp"

namespace mta::smtpd {
namespace {

constexpr int kMaxDepth = 100;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

constexpr std::string_view kRbl[] = {"reject_rbl_client",      "reject_rhsbl_client",
                                     "reject_rhsbl_sender",    "reject_rhsbl_helo",
                                     "reject_rhsbl_recipient", "reject_rhsbl_reverse_client"};
// Restrictions whose next word is their argument.
constexpr std::string_view kWithArgument[] = {"check_client_access", "check_reverse_client_hostname_access",
                                              "check_helo_access",   "check_sender_access",
                                              "check_recipient_access", "check_etrn_access"};
constexpr std::string_view kUnknownDomain[] = {"reject_unknown_sender_domain", "reject_unknown_recipient_domain"};
constexpr std::string_view kUnknownHelo[] = {"reject_unknown_helo_hostname", "reject_unknown_hostname"};

template <size_t N>
bool one_of(std::string_view word, const std::string_view (&names)[N]) {
  for (std::string_view n : names)
    if (iequals(word, n)) return true;
  return false;
}

void add(std::vector<DnsQuestion>& out, DnsQuestion::Kind kind, std::string name) {
  if (name.empty()) return;
  DnsQuestion q{kind, std::move(name)};
  if (std::find(out.begin(), out.end(), q) == out.end()) out.push_back(std::move(q));
}

}  // namespace

bool Policy::asks_dns(const std::vector<std::string>& list, int depth) const {
  if (depth > kMaxDepth) return false;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& w = list[i];
    if (one_of(w, kRbl) || one_of(w, kUnknownDomain) || one_of(w, kUnknownHelo)) return true;
    if (one_of(w, kWithArgument)) {
      ++i;
      continue;
    }
    auto cls = classes_.find(w);
    if (cls != classes_.end() && asks_dns(cls->second, depth + 1)) return true;
  }
  return false;
}

void Policy::dns_questions(const SessionFacts& f, Stage stage, const std::vector<std::string>& list,
                           std::vector<DnsQuestion>& out, int depth) {
  if (depth > kMaxDepth) return;
  const bool at_rcpt = !f.recipient.empty() && (stage == Stage::rcpt || stage == Stage::vrfy);
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& w = list[i];
    if (one_of(w, kWithArgument)) {
      ++i;
      continue;
    }
    if (one_of(w, kRbl)) {
      if (i + 1 >= list.size()) return;
      const std::string& spec = list[++i];
      std::string what, rbl_class;
      std::string kind = w;  // restriction names are case-insensitive; rbl_target() wants lower case
      for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string query = rbl_target(kind, f, stage, what, rbl_class);
      if (!query.empty()) add(out, DnsQuestion::Kind::rbl, query + "." + spec.substr(0, spec.find('=')));
      continue;
    }
    if (iequals(w, "reject_unknown_sender_domain")) {
      if (f.have_sender) add(out, DnsQuestion::Kind::mail_host, unknown_address_domain(f.sender, f.sender));
    } else if (iequals(w, "reject_unknown_recipient_domain")) {
      if (at_rcpt) add(out, DnsQuestion::Kind::mail_host, unknown_address_domain(f.sender, f.recipient));
    } else if (one_of(w, kUnknownHelo)) {
      if (!f.helo.empty() && f.helo[0] != '[') {
        std::string name = f.helo;
        if (name.back() == '.') name.pop_back();
        add(out, DnsQuestion::Kind::host, name);
      }
    } else if (auto cls = classes_.find(w); cls != classes_.end()) {
      dns_questions(f, stage, cls->second, out, depth + 1);
    }
  }
}

}  // namespace mta::smtpd
