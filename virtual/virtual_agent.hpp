// virtual_agent.hpp: the delivery logic of virtual(8), as Postfix's
// virtual/recipient.c, mailbox.c, maildir.c and unknown.c:
//
//   for each recipient, folded to lower case (the lookup key "user"):
//     virtual_mailbox_base must be absolute (fatal otherwise, per delivery);
//     mailbox = virtual_mailbox_maps(user), by mail_addr_find's order:
//       user+ext@domain, user@domain, [user+ext, user when the domain is
//       local], @domain; regexp/pcre tables see the full address only;
//       not found: bounced 5.1.1 'unknown user: "user"';
//       a table error: deferred 4.3.5 "mail system configuration error";
//     uid = virtual_uid_maps(user), gid = virtual_gid_maps(user) (same order):
//       missing, uid below virtual_minimum_uid (atol()) or gid <= 0:
//       deferred 4.3.5 "mail system configuration error", with Postfix's
//       warning ("recipient USER: bad uid N in virtual_uid_maps");
//     path = base "/" mailbox; ending in "/": maildir (deliver/maildir:
//       Return-Path, X-Original-To, Delivered-To; missing directories made
//       as the recipient; failures 4.2.0 unless the errno says otherwise),
//       else an mbox file (From_ line, Return-Path, X-Original-To,
//       Delivered-To, >From, an empty line; locked per virtual_mailbox_lock;
//       strict_mailbox_ownership; "delivery failed to mailbox PATH: ...");
//     virtual_mailbox_limit caps every file (EFBIG: bounced 5.2.2).
//   Every file is written with the recipient's uid and gid (effective ids,
//   when the process is root; otherwise as whoever runs the instance).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "maps/maps.hpp"
#include "virtual/virtual_settings.hpp"

namespace mta::virt {

// Postfix's mail_addr_find() with virtual's options: the result for USER
// (already folded to lower case).  LOCAL may be null (no domain is local).
maps::Result find_recipient(const maps::Maps& table, std::string_view user, std::string_view recipient_delimiter,
                            const rewrite::LocalDomains* local);

// $virtual_mailbox_base/$virtual_mailbox_maps(recipient); a maildir when
// the result ends in "/".  A result with a ".." component would lead out of
// virtual_mailbox_base: such a mailbox is refused (escapes_base), a
// deliberate difference from Postfix, which concatenates blindly.
struct MailboxLocation {
  std::string path;
  bool maildir = false;
  bool escapes_base = false;
};
MailboxLocation mailbox_location(std::string_view base, std::string_view map_result);

// atol() as Postfix reads a uid or gid from a table: leading blanks, an
// optional sign, the digits that follow (0 when there are none).
long long table_number(std::string_view text);

// The casefold() of a recipient address (ASCII letters; other bytes kept).
std::string fold_address(std::string_view address);

class VirtualAgent {
 public:
  explicit VirtualAgent(const Settings& settings) : settings_(settings) {}
  // One delivery request: 0 when every recipient is finished, -1 otherwise.
  int deliver_message(agent::Delivery& d) const;

 private:
  struct Recipient;  // the per-recipient state
  int deliver_recipient(Recipient& r) const;
  int deliver_maildir(Recipient& r) const;
  int deliver_mailbox_file(Recipient& r) const;
  // Postfix's deliver_mailbox(): false when the recipient has no mailbox.
  bool deliver_mailbox(Recipient& r, int* status) const;

  const Settings& settings_;
};

}  // namespace mta::virt
