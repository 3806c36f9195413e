// smtpd_check.cpp: the stages of smtpd's access policy (Postfix's
// smtpd_check_client, _helo, _mail, _rcpt, _rcptmap, _data, _eod, _etrn):
// which restriction lists run when, smtpd_delay_reject, the
// defer_if_permit memory between stages, relay before recipient
// restrictions, and recipient validation; see smtpd_check.hpp.
#include "smtpd/smtpd_check.hpp"

#include "ipc/rewrite_client.hpp"
#include "log/log.hpp"
#include "maps/match_list.hpp"
#include "smtpd/dns_lookup.hpp"
#include "smtpd/restriction_list.hpp"

namespace mta::smtpd {
namespace {

std::vector<std::string> restriction_list(const config::Config& config, std::string_view name) {
  try {
    return maps::split_patterns(config.get(name));
  } catch (const std::exception& e) {
    log::warning("%s", e.what());
    return {};
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// What defer_if_permit the client and helo stages left (a session may skip
// HELO, so the helo memory may be empty while the client's is not).
SessionFacts::Deferred before_mail(const SessionFacts& facts) {
  return facts.defer_if_permit_helo.active ? facts.defer_if_permit_helo : facts.defer_if_permit_client;
}

}  // namespace

struct Checker::Impl {
  config::Config config;
  std::shared_ptr<PrefetchedDns> dns;
  Policy policy;
  std::vector<std::string> client, helo, sender, relay, recipient, data, end_of_data, etrn;
  bool relay_first = true;
  bool relay_control = true;  // the relay/recipient lists can refuse relaying
  bool asks_dns = false;      // some list has a DNS restriction

  Impl(const config::Config& c, Services s)
      : config(c),
        dns(std::make_shared<PrefetchedDns>(s.dns ? s.dns : make_system_dns())),
        policy(config, s.rewrite ? s.rewrite : std::make_shared<ipc::RewriteClient>(), dns) {
    client = restriction_list(config, "smtpd_client_restrictions");
    helo = restriction_list(config, "smtpd_helo_restrictions");
    sender = restriction_list(config, "smtpd_sender_restrictions");
    relay = restriction_list(config, "smtpd_relay_restrictions");
    recipient = restriction_list(config, "smtpd_recipient_restrictions");
    data = restriction_list(config, "smtpd_data_restrictions");
    end_of_data = restriction_list(config, "smtpd_end_of_data_restrictions");
    etrn = restriction_list(config, "smtpd_etrn_restrictions");
    try {
      relay_first = config.get_bool("smtpd_relay_before_recipient_restrictions");
    } catch (const std::exception& e) {
      log::warning("%s", e.what());
    }
    // Postfix refuses to run as an open relay by accident (it stops with a
    // fatal error); we refuse every recipient instead, and say why.
    relay_control = false;
    for (const auto* list : {&relay, &recipient})
      for (const std::string& w : *list)
        for (std::string_view stop : {"reject", "defer", "defer_if_permit", "reject_unauth_destination",
                                      "defer_unauth_destination"})
          relay_control = relay_control || iequals(w, stop);
    for (const auto* list : {&client, &helo, &sender, &relay, &recipient, &data, &end_of_data, &etrn})
      asks_dns = asks_dns || policy.asks_dns(*list);
    if (!relay_control)
      log::error("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least "
                 "one working instance of: reject_unauth_destination, defer_unauth_destination, reject, defer, "
                 "defer_if_permit or check_relay_domains");
  }

  // One list, with the per-list resets of Postfix's SMTPD_CHECK_RESET.
  Outcome run(CheckState& st, const std::vector<std::string>& list, ListContext ctx) {
    st.warn_if_reject = false;
    st.defer_if_reject = {};
    if (list.empty()) return Outcome::dunno;
    return policy.run_list(st, list, ctx);
  }

  Outcome client_stage(CheckState& st) {
    return run(st, client, {policy.namaddr(st.facts), "Client host"});
  }
  Outcome helo_stage(CheckState& st) {
    if (st.facts.helo.empty()) return Outcome::dunno;
    return run(st, helo, {st.facts.helo, "Helo command"});
  }
  Outcome sender_stage(CheckState& st) {
    if (!st.facts.have_sender) return Outcome::dunno;
    Outcome out = run(st, sender, {st.facts.sender, "Sender address"});
    if (out != Outcome::reject && policy.reject_unlisted_sender && !st.facts.sender.empty()) {
      st.warn_if_reject = false;
      if (policy.check_rcpt_maps(st, st.facts.sender, "Sender address") == Outcome::reject) return Outcome::reject;
    }
    return out;
  }

  // The reply for a stage that ends without a reject but with a
  // defer_if_permit in force.
  Outcome finish(CheckState& st, Outcome out) {
    if (out != Outcome::reject && st.defer_if_permit.active) {
      st.warn_if_reject = false;
      st.defer_if_reject = {};
      DeferredReply d = st.defer_if_permit;
      return policy.reject(st, d.code, d.dsn, d.text);
    }
    return out;
  }

  std::optional<std::string> reply(const CheckState& st, Outcome out) {
    if (out == Outcome::reject) return st.reply;
    return std::nullopt;
  }

  std::optional<std::string> recipient_check(SessionFacts& facts, Stage stage) {
    CheckState st{facts, stage};
    if (policy.delay_reject) {
      if (client_stage(st) == Outcome::reject || helo_stage(st) == Outcome::reject ||
          sender_stage(st) == Outcome::reject)
        return st.reply;
    } else {
      st.defer_if_permit = facts.defer_if_permit_sender.active ? facts.defer_if_permit_sender : before_mail(facts);
    }
    if (!relay_control) return reply(st, policy.config_error(st, ""));
    const ListContext ctx{facts.recipient, "Recipient address"};
    Outcome out = Outcome::dunno;
    if (relay_first) {
      out = run(st, relay, ctx);
      if (out != Outcome::reject) out = run(st, recipient, ctx);
    } else {
      out = run(st, recipient, ctx);
      if (out != Outcome::reject) out = run(st, relay, ctx);
    }
    out = finish(st, out);
    if (out == Outcome::reject) return st.reply;
    // Recipient validation (Postfix's smtpd_check_rcptmap).
    if (policy.reject_unlisted_recipient && !st.recipient_maps_checked) {
      st.warn_if_reject = false;
      st.defer_if_reject = {};
      return reply(st, policy.check_rcpt_maps(st, facts.recipient, "Recipient address"));
    }
    return std::nullopt;
  }
};

Checker::Checker(const config::Config& config) : Checker(config, Services{}) {}

Checker::Checker(const config::Config& config, Services services)
    : impl_(std::make_unique<Impl>(config, std::move(services))) {}

Checker::~Checker() = default;

std::optional<std::string> Checker::check_connect(SessionFacts& facts) {
  facts.defer_if_permit_client = {};
  if (impl_->policy.delay_reject) return std::nullopt;
  CheckState st{facts, Stage::connect};
  Outcome out = impl_->client_stage(st);
  facts.defer_if_permit_client = st.defer_if_permit;
  return impl_->reply(st, out);
}

std::optional<std::string> Checker::check_helo(SessionFacts& facts) {
  facts.defer_if_permit_helo = facts.defer_if_permit_client;
  if (impl_->policy.delay_reject) return std::nullopt;
  CheckState st{facts, Stage::helo};
  st.defer_if_permit = facts.defer_if_permit_client;
  Outcome out = impl_->helo_stage(st);
  facts.defer_if_permit_helo = st.defer_if_permit;
  return impl_->reply(st, out);
}

std::optional<std::string> Checker::check_mail(SessionFacts& facts) {
  // smtpd.c answers this before the restrictions, without logging.
  if (impl_->policy.helo_required && facts.helo.empty()) return "503 5.5.1 Error: send HELO/EHLO first";
  facts.defer_if_permit_sender = before_mail(facts);
  if (impl_->policy.delay_reject) return std::nullopt;
  CheckState st{facts, Stage::mail};
  st.defer_if_permit = before_mail(facts);
  Outcome out = impl_->sender_stage(st);
  facts.defer_if_permit_sender = st.defer_if_permit;
  return impl_->reply(st, out);
}

std::optional<std::string> Checker::check_rcpt(SessionFacts& facts) {
  if (!facts.actions.discard_reason.empty()) return std::nullopt;  // DISCARD: nothing else matters
  return impl_->recipient_check(facts, Stage::rcpt);
}

std::optional<std::string> Checker::check_vrfy(SessionFacts& facts) {
  return impl_->recipient_check(facts, Stage::vrfy);
}

std::optional<std::string> Checker::check_data(SessionFacts& facts) {
  if (!facts.actions.discard_reason.empty() || impl_->data.empty()) return std::nullopt;
  CheckState st{facts, Stage::data};
  Outcome out = impl_->finish(st, impl_->run(st, impl_->data, {"DATA", "Data command"}));
  return impl_->reply(st, out);
}

std::optional<std::string> Checker::check_end_of_data(SessionFacts& facts) {
  if (!facts.actions.discard_reason.empty() || impl_->end_of_data.empty()) return std::nullopt;
  CheckState st{facts, Stage::end_of_data};
  Outcome out = impl_->finish(st, impl_->run(st, impl_->end_of_data, {"END-OF-MESSAGE", "End-of-data"}));
  return impl_->reply(st, out);
}

std::optional<std::string> Checker::check_etrn(SessionFacts& facts) {
  CheckState st{facts, Stage::etrn};
  if (impl_->policy.delay_reject) {
    if (impl_->client_stage(st) == Outcome::reject || impl_->helo_stage(st) == Outcome::reject) return st.reply;
  } else {
    st.defer_if_permit = before_mail(facts);
  }
  Outcome out = impl_->finish(st, impl_->run(st, impl_->etrn, {facts.etrn_domain, "Etrn command"}));
  return impl_->reply(st, out);
}

std::vector<DnsQuestion> Checker::dns_questions(const SessionFacts& facts, Stage stage) {
  std::vector<DnsQuestion> out;
  Impl& i = *impl_;
  if (!i.asks_dns) return out;
  Policy& p = i.policy;
  // The lists that the check of STAGE runs, as in the check_* methods.
  auto plan = [&](const std::vector<std::string>& list) { p.dns_questions(facts, stage, list, out); };
  const bool delayed = p.delay_reject;
  switch (stage) {
    case Stage::connect:
      if (!delayed) plan(i.client);
      break;
    case Stage::helo:
      if (!delayed && !facts.helo.empty()) plan(i.helo);
      break;
    case Stage::mail:
      if (!delayed && facts.have_sender) plan(i.sender);
      break;
    case Stage::rcpt:
    case Stage::vrfy:
      if (delayed) {
        plan(i.client);
        if (!facts.helo.empty()) plan(i.helo);
        if (facts.have_sender) plan(i.sender);
      }
      plan(i.relay);
      plan(i.recipient);
      break;
    case Stage::etrn:
      if (delayed) {
        plan(i.client);
        if (!facts.helo.empty()) plan(i.helo);
      }
      plan(i.etrn);
      break;
    case Stage::data: plan(i.data); break;
    case Stage::end_of_data: plan(i.end_of_data); break;
  }
  return out;
}

Checker::AnswerScope::AnswerScope(Checker& checker, const DnsAnswers& answers)
    : checker_(checker), previous_(checker.impl_->dns->answers()) {
  checker_.impl_->dns->use(&answers);
}

Checker::AnswerScope::~AnswerScope() { checker_.impl_->dns->use(previous_); }

bool Checker::asks_dns() const { return impl_->asks_dns; }

size_t Checker::dns_misses() const { return impl_->dns->misses(); }

void Checker::reset_transaction(SessionFacts& facts) {
  facts.actions = {};
  facts.defer_if_permit_sender = {};
}

bool Checker::client_in_mynetworks(const SessionFacts& facts) { return impl_->policy.in_mynetworks(facts); }

std::string Checker::changed_table() const { return impl_->policy.changed_table(); }

}  // namespace mta::smtpd
