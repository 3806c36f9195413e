// smtpd_check.hpp: the access policy of smtpd (Postfix's smtpd_check.c):
// smtpd_client_, helo_, sender_, relay_, recipient_, data_,
// end_of_data_ and etrn_restrictions, with the access(5) tables, the
// mynetworks list, recipient validation against the address tables, RBL
// lookups, smtpd_delay_reject, warn_if_reject and the defer_if_permit /
// defer_if_reject states.
//
// The session (smtpd_session.cpp) owns a SessionFacts and calls one check
// per SMTP stage; a check returns nothing when the stage may go on, or the
// whole reply line to send ("554 5.7.1 <x@y>: Relay access denied").  The
// checker logs its rejects itself, in Postfix's shape:
//   NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <x@y>: Relay access
//   denied; from=<a@b> to=<x@y> proto=ESMTP helo=<h>
// Actions that change the transaction instead of replying (HOLD, DISCARD,
// FILTER, REDIRECT, PREPEND, WARN) are recorded in SessionFacts::actions
// (and logged as Postfix logs them); the session passes them to cleanup.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "smtpd/dns_lookup.hpp"

namespace mta::ipc {
class RewriteService;
}

namespace mta::smtpd {

// What the policy knows about a session; the session keeps it current.
struct SessionFacts {
  // The client.  name is "unknown" when the reverse lookup failed;
  // reverse_name is the PTR answer before forward confirmation.
  std::string client_name = "unknown";
  std::string reverse_name = "unknown";
  std::string client_addr;  // printable, without brackets ("127.0.0.1", "::1")
  std::string client_port;
  // 0 ok, 4 temporary failure, 5 permanent failure (as Postfix's
  // name_status and reverse_name_status).
  int name_status = 5;
  int reverse_name_status = 5;
  std::string server_addr;  // the local end
  std::string server_port;

  std::string helo;      // the HELO/EHLO argument as given ("" before HELO)
  std::string helo_command;  // "HELO" or "EHLO" as the client sent it, for
                             // logs; "" means: "HELO" when protocol is SMTP
  std::string protocol;  // "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"
  std::string queue_id;  // "" before the cleanup connection (logs say NOQUEUE)

  // The transaction.  Addresses are in internal (unquoted) form without
  // the angle brackets; the null sender is "".
  bool have_sender = false;
  std::string sender;
  std::string recipient;   // the one being checked (RCPT, VRFY); at DATA and
                           // END-OF-MESSAGE the last accepted one, or ""
                           // (used, as in Postfix, only when there is one)
  int recipient_count = 0; // accepted so far in this transaction
  long message_size = 0;   // MAIL FROM SIZE=, or 0
  std::string etrn_domain;

  // Authentication and TLS.
  std::string sasl_method, sasl_username, sasl_sender;
  bool tls_active = false;

  // The checker's memory between stages (Postfix's defer_if_permit_client,
  // _helo and _sender): a defer_if_permit that fired before RCPT applies
  // to every recipient.  The session leaves these alone.
  struct Deferred {
    bool active = false;
    int code = 0;
    std::string dsn;
    std::string text;
  };
  Deferred defer_if_permit_client, defer_if_permit_helo, defer_if_permit_sender;

  // Set by the checker: what the transaction must carry to cleanup.
  struct Actions {
    std::string hold_reason;     // HOLD: non-empty = place on hold
    std::string discard_reason;  // DISCARD
    std::string filter;          // FILTER transport:destination
    std::string redirect;        // REDIRECT address
    std::vector<std::string> prepend;  // PREPEND header lines
    std::vector<std::string> bcc;      // BCC addresses (Postfix 3.0+)
  } actions;
};

// The stages, for messages ("RCPT from ...", "CONNECT from ...").
enum class Stage { connect, helo, mail, rcpt, data, end_of_data, etrn, vrfy };

class Checker {
 public:
  // Reads every smtpd_*_restrictions parameter, the access tables they
  // name, mynetworks, the recipient tables.  Configuration errors (an
  // unknown restriction, a table that does not open) are not thrown: they
  // are logged as Postfix logs them and give "451 4.3.5 Server
  // configuration error" at the stage that uses them.
  explicit Checker(const config::Config& config);
  // The same with the services it asks replaced (tests): trivial-rewrite's
  // resolve and the DNS.  Null means the real one.
  struct Services {
    std::shared_ptr<ipc::RewriteService> rewrite;
    std::shared_ptr<DnsLookup> dns;
  };
  Checker(const config::Config& config, Services services);
  ~Checker();
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Each returns the reply to send (and has logged the reject), or nothing.
  // With smtpd_delay_reject = yes the client, helo and sender
  // restrictions are evaluated at RCPT (and ETRN) instead.
  std::optional<std::string> check_connect(SessionFacts& facts);
  std::optional<std::string> check_helo(SessionFacts& facts);
  std::optional<std::string> check_mail(SessionFacts& facts);
  std::optional<std::string> check_rcpt(SessionFacts& facts);
  std::optional<std::string> check_data(SessionFacts& facts);
  std::optional<std::string> check_end_of_data(SessionFacts& facts);
  std::optional<std::string> check_etrn(SessionFacts& facts);
  std::optional<std::string> check_vrfy(SessionFacts& facts);  // recipient = the VRFY address

  // The DNS questions that the restrictions of STAGE could ask, for FACTS
  // as they will be when the check runs (the session asks them in its
  // worker pool first; see dns_lookup.hpp).  Empty when no restriction
  // list asks DNS.
  std::vector<DnsQuestion> dns_questions(const SessionFacts& facts, Stage stage);
  // Whether any restriction list (or class) has a DNS restriction.
  bool asks_dns() const;
  // While an AnswerScope lives, DNS questions are answered from ANSWERS;
  // what is not there is asked synchronously (and counted in dns_misses).
  class AnswerScope {
   public:
    AnswerScope(Checker& checker, const DnsAnswers& answers);
    ~AnswerScope();
    AnswerScope(const AnswerScope&) = delete;
    AnswerScope& operator=(const AnswerScope&) = delete;

   private:
    Checker& checker_;
    const DnsAnswers* previous_;
  };
  size_t dns_misses() const;

  // A new transaction (RSET, end of DATA): forgets the per-transaction
  // states (defer_if_permit, sender-dependent results, actions).
  void reset_transaction(SessionFacts& facts);

  // The client is in mynetworks (for smtpd_forbid_bare_newline_exclusions
  // and the like, the caller uses HostList below).
  bool client_in_mynetworks(const SessionFacts& facts);

  // The table whose file changed since it was opened, or "" (the server
  // skeleton then restarts the process after the current clients).
  std::string changed_table() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mta::smtpd
