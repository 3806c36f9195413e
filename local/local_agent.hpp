// local_agent.hpp: one delivery request, recipient by recipient, through
// Postfix local(8)'s delivery graph:
//
//   deliver_recipient   nesting limit, duplicates, Delivered-To loops,
//                       address extension split
//   deliver_switch      aliases (full local part, then the bare user),
//                       forwarding of owner-/:include: expansions,
//                       $HOME/.forward, mailbox, unknown user
//   deliver_alias       alias_maps, owner- aliases, delivery rights of the
//                       table owner
//   deliver_dotforward  forward_path, as the recipient
//   deliver_mailbox     mailbox_transport(_maps), mailbox_command(_maps),
//                       home_mailbox (mbox file or Maildir/), mail spool
//   deliver_token       one destination: /file, ~/file, |command,
//                       :include:, or an address (resolved: ours is
//                       delivered here, any other is forwarded)
//   deliver_unknown     fallback_transport(_maps), luser_relay, bounce
//
// The state is passed by value down the graph (as Postfix does), so that a
// branch never has to undo what it changed.  Every leaf reports its
// recipient through the StatusReporter; the per-recipient status is 0
// (finished: delivered or bounced) or -1 (try again later).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "ipc/mail_proto.hpp"
#include "deliver/status_reporter.hpp"
#include "deliver/delivered_to.hpp"
#include "local/local_settings.hpp"
#include "local/mail_services.hpp"
#include "deliver/user_privileges.hpp"

namespace mta::local {

// Dsn, StatusReporter, mail_copy, LockedMailbox, pipe_command, ActAs ...
using namespace mta::deliver;

// Whose rights files and commands get (USER_ATTR).
struct UserAttr {
  uid_t uid = 0;  // 0: none chosen; files and commands then use default_privs
  gid_t gid = 0;
  std::optional<std::string> home;
  std::optional<std::string> logname;
  std::optional<std::string> shell;
  void set(const UserInfo& u) {
    uid = u.uid;
    gid = u.gid;
    home = u.home;
    logname = u.name;
    shell = u.shell;
  }
  void reset() { *this = UserAttr{}; }
};

// The message attributes that change along the graph (DELIVER_ATTR).
struct MsgAttr {
  int level = 0;
  std::string sender;
  ipc::proto::Recipient rcpt;
  std::string dsn_envid;
  int dsn_ret = 0;
  std::optional<std::string> domain;
  std::string local;  // the folded local part, with extension
  std::string user;   // the folded local part without extension
  std::optional<std::string> extension;
  std::optional<std::string> unmatched;  // an extension to carry over to expansions
  std::optional<std::string> owner;      // owner- alias or .forward owner
  std::optional<std::string> delivered;  // for Delivered-To
  int exp_type = 0;                      // kExpand* of the list we are in
  std::optional<std::string> exp_from;   // the alias or user we expand
};

// The queue file as the request names it (open for update, shared lock).
struct QueueMessage {
  int fd = -1;
  std::string path;
  long data_offset = 0;
  std::unordered_set<std::string> delivered_to;  // folded Delivered-To: values of the message
};

class LocalAgent {
 public:
  LocalAgent(const Settings& settings, const ipc::proto::DeliverRequest& request, QueueMessage& message,
             AddressResolver& resolver);
  // Delivers every recipient; marks the finished ones done in the queue
  // file (when the request asks for it).  0, or -1 when any was deferred.
  int deliver_all();

 private:
  struct State {
    int level = 0;
    MsgAttr msg;
  };

  int deliver_recipient(State state, UserAttr usr);
  // The value of $NAME in forward_path, luser_relay and
  // command_execution_directory (Postfix's local_expand), or nullopt.
  std::optional<std::string> local_attribute(std::string_view name, const MsgAttr& m, const UserAttr& usr) const;
  int deliver_switch(State state, UserAttr usr);
  bool deliver_alias(State state, UserAttr usr, const std::string& name, int* status);
  bool deliver_dotforward(State state, UserAttr usr, int* status);
  bool deliver_mailbox(State state, UserAttr usr, int* status);
  int deliver_mailbox_file(State state, UserAttr usr);
  int deliver_maildir(State state, UserAttr usr, const std::string& path);
  int deliver_file(State state, UserAttr usr, const std::string& path);
  int deliver_command(State state, UserAttr usr, const std::string& command);
  int deliver_include(State state, UserAttr usr, const std::string& path);
  int deliver_token(State state, UserAttr usr, const std::string& token);
  int deliver_token_string(State state, UserAttr usr, const std::string& text, int* count);
  int deliver_token_file(State state, UserAttr usr, int fd, int* count);
  int deliver_resolve_addr(State state, UserAttr usr, const std::string& address);
  int deliver_indirect(State state);
  int deliver_unknown(State state, UserAttr usr);
  int bounce_workaround(State state, Dsn dsn);

  // The reporting shorthands (BOUNCE_FLAGS(request) and the recipient).
  int sent(const State& s, Dsn dsn) { return reporter_.sent(trace_flags(), s.msg.rcpt, std::move(dsn)); }
  int bounce(const State& s, Dsn dsn) { return reporter_.bounce_append(trace_flags(), s.msg.rcpt, std::move(dsn)); }
  int defer(const State& s, Dsn dsn) { return reporter_.defer_append(trace_flags(), s.msg.rcpt, std::move(dsn)); }
  int bounce_or_defer(const State& s, Dsn dsn) {
    return dsn.temporary() ? defer(s, std::move(dsn)) : bounce(s, std::move(dsn));
  }
  int trace_flags() const { return request_.flags & kTraceFlagsMask; }
  bool trace_only() const { return (request_.flags & kTraceOnlyMask) != 0; }

  // The duplicate filter (been_here): true when KEY was seen before.
  bool been_here(const std::string& key);
  bool been_here_check(const std::string& key) const;

  const Settings& settings_;
  const ipc::proto::DeliverRequest& request_;
  QueueMessage& message_;
  AddressResolver& resolver_;
  StatusReporter reporter_;
  std::unique_ptr<Forwarder> forwarder_;
  std::unordered_set<std::string> dup_filter_;
};

}  // namespace mta::local
