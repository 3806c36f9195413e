// restriction_list.hpp: the evaluator behind smtpd_check.hpp (Postfix's
// generic_checks and check_table_result): one restriction list at a time,
// word by word, with the access(5) actions, restriction classes, the
// warn_if_reject / defer_if_permit / defer_if_reject states, and the reply
// and log shapes of smtpd_check_reject.
//
// Internal to smtpd: the session talks to Checker only.  Restrictions are
// checked when they run, not when the list is read, as in Postfix: an
// unknown word gives "warning: unknown smtpd restriction: "word"" and
// "451 4.3.5 Server configuration error" at the stage that reaches it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "ipc/rewrite_client.hpp"
#include "maps/maps.hpp"
#include "maps/match_list.hpp"
#include "smtpd/dns_lookup.hpp"
#include "smtpd/smtpd_check.hpp"

namespace mta::smtpd {

// Postfix's SMTPD_CHECK_DUNNO / OK / REJECT.
enum class Outcome { dunno, ok, reject };

// A reply kept for later (defer_if_permit, defer_if_reject): code, status
// and the text after them.
using DeferredReply = SessionFacts::Deferred;

// The state of one check (one SMTP command), as Postfix keeps it in
// SMTPD_STATE while the restrictions run.
struct CheckState {
  CheckState(SessionFacts& f, Stage s) : facts(f), stage(s) {}
  SessionFacts& facts;
  Stage stage;
  std::string reply;  // the reply after Outcome::reject
  bool warn_if_reject = false;
  DeferredReply defer_if_permit;
  DeferredReply defer_if_reject;
  bool recipient_maps_checked = false;
  int depth = 0;  // restriction class / access result nesting
};

// Which kind of restriction list runs (Postfix's def_acl): says what
// "check_*_access" results may contain and names the reply.
struct ListContext {
  std::string reply_name;   // "<...>" in replies: the client, helo name, address
  std::string reply_class;  // "Client host", "Helo command", "Sender address" ...
};

class Policy {
 public:
  Policy(const config::Config& config, std::shared_ptr<ipc::RewriteService> rewrite, std::shared_ptr<DnsLookup> dns);

  // Runs a restriction list (words as in main.cf).
  Outcome run_list(CheckState& st, const std::vector<std::string>& list, const ListContext& ctx);
  // Recipient validation (Postfix's check_rcpt_maps): for RCPT with
  // smtpd_reject_unlisted_recipient and for reject_unlisted_*.
  Outcome check_rcpt_maps(CheckState& st, const std::string& address, const std::string& reply_class);

  // smtpd_check_reject: formats, applies soft_bounce, warn_if_reject and
  // defer_if_reject, logs; Outcome::reject (or dunno after a warning).
  Outcome reject(CheckState& st, int code, std::string_view dsn, const std::string& text);
  // The configuration error reply ("451 4.3.5 Server configuration error").
  Outcome config_error(CheckState& st, const std::string& warning);
  // log_whatsup: "QUEUEID: WHAT: STAGE from name[addr]: TEXT; from=<> ...".
  void log_event(const CheckState& st, std::string_view what, const std::string& text) const;
  static const char* stage_name(const SessionFacts& facts, Stage stage);
  std::string namaddr(const SessionFacts& facts) const;

  // The DNS questions that LIST could ask for FACTS at STAGE, added to OUT
  // (the prefetch, see dns_lookup.hpp; dns_prefetch.cpp).  Restriction
  // classes are followed; what an access table's result names is not.
  void dns_questions(const SessionFacts& facts, Stage stage, const std::vector<std::string>& list,
                     std::vector<DnsQuestion>& out, int depth = 0);
  // Whether LIST, or a class it names, has a restriction that asks DNS.
  bool asks_dns(const std::vector<std::string>& list, int depth = 0) const;

  bool in_mynetworks(const SessionFacts& facts, bool* error = nullptr) const;
  const config::Config& config() const { return config_; }
  std::string changed_table() const;

  // Parameters the Checker uses as well.
  bool delay_reject = true;
  bool helo_required = false;
  bool reject_unlisted_recipient = true;
  bool reject_unlisted_sender = false;
  int defer_code = 450;

 private:
  // One restriction word (and its argument, consumed from the list).
  Outcome run_word(CheckState& st, const std::vector<std::string>& list, size_t& i, const ListContext& ctx,
                   bool* known);
  Outcome run_access(CheckState& st, std::string_view restriction, const std::string& table,
                     const ListContext& ctx);
  // check_table_result: what an access(5) value means.
  Outcome table_result(CheckState& st, const std::string& table, const std::string& value,
                       const ListContext& ctx);
  Outcome lookup_error(CheckState& st, const std::string& table, const std::string& key, const ListContext& ctx);

  // The restrictions with some logic of their own (address_checks.cpp).
  Outcome permit_auth_destination(CheckState& st, const std::string& rcpt);
  Outcome reject_unauth_destination(CheckState& st, const std::string& rcpt, int code, std::string_view dsn);
  Outcome reject_non_fqdn_address(CheckState& st, const std::string& addr, const ListContext& ctx);
  Outcome reject_non_fqdn_hostname(CheckState& st, const std::string& name, const ListContext& ctx);
  Outcome reject_invalid_hostname(CheckState& st, const std::string& name, const ListContext& ctx);
  Outcome reject_unknown_hostname(CheckState& st, const std::string& name, const ListContext& ctx);
  Outcome reject_unknown_address(CheckState& st, const std::string& addr, const ListContext& ctx);
  Outcome reject_rbl(CheckState& st, std::string_view kind, const std::string& spec, const ListContext& ctx);
  static std::string rbl_target(std::string_view kind, const SessionFacts& f, Stage stage, std::string& what,
                                std::string& rbl_class);
  // The domain whose MX/A/AAAA reject_unknown_*_domain asks about, or "".
  std::string unknown_address_domain(const std::string& sender, const std::string& addr);
  Outcome defer_if(CheckState& st, DeferredReply& which, int code, std::string_view dsn, const std::string& text);
  ipc::ResolveResult resolve(const std::string& sender, const std::string& addr);
  // The table for check_*_access ARG, opened once.
  const maps::Maps& access_table(const std::string& spec);
  std::string expand_rbl_reply(const CheckState& st, const std::string& templ, const std::string& code,
                               const std::string& rbl_class, const std::string& what, const std::string& domain,
                               const std::string& reason) const;

  const config::Config& config_;
  std::shared_ptr<ipc::RewriteService> rewrite_;
  std::shared_ptr<DnsLookup> dns_;
  std::map<std::string, std::vector<std::string>, std::less<>> classes_;  // smtpd_restriction_classes
  std::map<std::string, std::unique_ptr<maps::Maps>, std::less<>> tables_;
  maps::HostList mynetworks_;
  maps::Maps local_rcpt_maps_, rcpt_canon_maps_, canonical_maps_, virt_alias_maps_, virt_mailbox_maps_,
      relay_rcpt_maps_, rbl_reply_maps_;
  bool access_parent_style_ = true;
  bool soft_bounce_ = false;
  bool show_unknown_table_ = true;
  bool client_port_logging_ = false;
  bool allow_untrusted_routing_ = false;
  std::string recipient_delimiter_;
  std::string null_access_key_ = "<>";
  std::string default_rbl_reply_;
  int access_map_reject_code_ = 554, access_map_defer_code_ = 450, reject_code_ = 554, relay_code_ = 554,
      unknown_client_code_ = 450, unknown_name_code_ = 450, unknown_addr_code_ = 450, non_fqdn_code_ = 504,
      invalid_name_code_ = 501, local_rcpt_code_ = 550, virt_alias_code_ = 550, virt_mailbox_code_ = 550,
      relay_rcpt_code_ = 550, maps_rbl_code_ = 554, multi_rcpt_code_ = 550;
};

// "5.7.1 text": the leading status (DSN when there is none), TEXT keeps the rest.
std::string take_dsn(std::string_view& text, std::string_view dsn);
// Postfix's smtpd_dsn_fix() for REPLY_CLASS ("Sender address", "Recipient address", ...).
std::string dsn_fix(std::string dsn, std::string_view reply_class);

}  // namespace mta::smtpd
