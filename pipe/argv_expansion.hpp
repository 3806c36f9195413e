// argv_expansion.hpp: the macros of a pipe(8) command line, as Postfix's
// expand_argv():
//
//   $name, ${name}, $(name); $$ is a single $.  Known names:
//   client_address client_helo client_hostname client_port client_protocol
//   nexthop queue_id sasl_method sasl_sender sasl_username sender size
//   (once per message) and domain extension mailbox original_recipient
//   recipient user (per recipient).
//
// An argument that holds a per-recipient macro becomes one argument per
// recipient ("-- ${recipient}" with three recipients gives four words); one
// whose $user would be empty is left out for that recipient.  $recipient
// and $original_recipient take the q (quote the local part), u and h (fold
// the local part, the domain) flags; $user, $extension, $mailbox and
// $domain take u and h only; $sender takes q (unless it is empty), $nexthop
// takes h.  $user and $extension split at recipient_delimiter, except for
// the addresses that Postfix never splits (postmaster, mailer-daemon,
// double-bounce; owner-* and *-request when the delimiter is "-" and
// owner_request_special is on).
//
// A macro name that is not known, an empty name ("$" alone) or an
// unterminated "${" is a configuration error: a warning, and no command.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ipc/mail_proto.hpp"

namespace mta::pipe {

struct ExpansionContext {
  std::string service;           // for the warning
  std::string config_directory;  // for the warning
  int flags = 0;                 // pipe_attributes.hpp: kFoldUser, kFoldHost, kQuoteLocal
  std::string recipient_delimiter;
  bool owner_request_special = true;
  std::string double_bounce_sender = "double-bounce";
  // The once-per-message macros (client_address ... size), already
  // quoted and folded where the flags say so.
  std::map<std::string, std::string> message_macros;
};

// The message macros of a delivery request; SENDER is the envelope sender
// after null_sender=.
std::map<std::string, std::string> message_macros(const ipc::proto::DeliverRequest& request,
                                                  const std::string& sender, int flags);

// The expanded command, or nullopt after a warning (configuration error).
std::optional<std::vector<std::string>> expand_argv(const std::vector<std::string>& command,
                                                    const std::vector<ipc::proto::Recipient>& recipients,
                                                    const ExpansionContext& context);

// Postfix's fold_addr() for the u and h flags.
std::string fold_address(std::string address, int flags);

}  // namespace mta::pipe
