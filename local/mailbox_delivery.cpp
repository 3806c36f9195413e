// mailbox_delivery.cpp: the file leaves of the delivery graph: the user's
// mailbox (mbox file or maildir), and /file/name destinations.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "local/local_agent.hpp"
#include "deliver/biff_notify.hpp"
#include "deliver/mailbox_file.hpp"
#include "deliver/mail_copy.hpp"
#include "deliver/maildir.hpp"
#include "log/log.hpp"

namespace mta::local {
namespace proto = ipc::proto;

namespace {

bool ends_with_slash(const std::string& s) { return !s.empty() && s.back() == '/'; }

}  // namespace

bool LocalAgent::deliver_mailbox(State state, UserAttr usr, int* status) {
  state.level++;
  MsgAttr& m = state.msg;
  if (been_here("mailbox " + m.local)) return true;

  // mailbox_transport(_maps): another agent does mailbox delivery.
  if (!settings_.mailbox_transport_table.empty()) {
    maps::Result r = settings_.mailbox_transport_table.find(m.user);
    if (r.found()) {
      *status = deliver_pass(settings_, reporter_, request_, r.value, m.rcpt, request_.flags);
      return true;
    }
    if (r.failed()) {
      log::warning("%s", r.error.c_str());
      *status = defer(state, Dsn::simple("4.3.0", "table lookup failure"));
      return true;
    }
  }
  if (!settings_.mailbox_transport.empty()) {
    *status = deliver_pass(settings_, reporter_, request_, settings_.mailbox_transport, m.rcpt, request_.flags);
    return true;
  }

  std::optional<UserInfo> pw;
  if (int err = find_user_by_name(m.user, pw); err != 0) {
    log::warning("error looking up passwd info for %s: %s", m.user.c_str(), std::strerror(err));
    *status = defer(state, Dsn::simple("4.0.0", "user lookup error"));
    return true;
  }
  if (!pw) return false;
  usr.set(*pw);

  if (!settings_.mailbox_command_table.empty()) {
    maps::Result r = settings_.mailbox_command_table.find(m.user);
    if (r.found()) {
      *status = deliver_command(state, usr, r.value);
      return true;
    }
    if (r.failed()) {
      log::warning("%s", r.error.c_str());
      *status = defer(state, Dsn::simple("4.3.0", "table lookup failure"));
      return true;
    }
  }
  if (!settings_.mailbox_command.empty())
    *status = deliver_command(state, usr, settings_.mailbox_command);
  else if (ends_with_slash(settings_.home_mailbox))
    *status = deliver_maildir(state, usr, usr.home.value_or("") + "/" + settings_.home_mailbox);
  else if (ends_with_slash(settings_.mail_spool_directory))
    *status = deliver_maildir(state, usr, settings_.mail_spool_directory + m.user + "/");
  else
    *status = deliver_mailbox_file(state, usr);
  return true;
}

int LocalAgent::deliver_mailbox_file(State state, UserAttr usr) {
  state.level++;
  MsgAttr& m = state.msg;
  if (trace_only()) return sent(state, Dsn::simple("2.0.0", "delivers to mailbox"));
  if (!settings_.frozen_delivered_to) m.delivered = m.rcpt.address;

  std::string mailbox;
  const bool in_spool = settings_.home_mailbox.empty();
  if (in_spool)
    mailbox = settings_.mail_spool_directory + "/" + m.user;
  else
    mailbox = usr.home.value_or("") + "/" + settings_.home_mailbox;

  // Least privilege: in the home directory, or a world-writable spool,
  // everything happens as the recipient; in a group-writable spool as the
  // recipient with the spool's group; otherwise as root, with a chown.
  uid_t spool_uid = usr.uid;
  gid_t spool_gid = usr.gid;
  struct stat st {};
  if (in_spool && ::stat(settings_.mail_spool_directory.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) == 0) {
    if (st.st_mode & S_IWGRP) {
      spool_gid = st.st_gid;
    } else {
      spool_uid = 0;
      spool_gid = 0;
    }
  }
  uid_t chown_uid = static_cast<uid_t>(-1);
  gid_t chown_gid = static_cast<gid_t>(-1);
  if (spool_uid != usr.uid) {
    chown_uid = usr.uid;
    chown_gid = usr.gid;
  }
  int copy_flags = kCopyMbox;
  if ((settings_.delivered_hdr_mask & kDeliveredHdrFile) == 0) copy_flags &= ~kCopyDelivered;

  LockPolicy policy{settings_.lock_mask, settings_.deliver_lock_attempts, settings_.deliver_lock_delay,
                    settings_.stale_lock_time};
  CopyResult copy;
  copy.status = kCopyStatWrite;
  Dsn why;
  off_t end = 0;  // where the new message starts, for biff
  set_eugid(spool_uid, spool_gid);
  {
    auto mp = LockedMailbox::open(mailbox, O_APPEND | O_WRONLY | O_CREAT, S_IRUSR | S_IWUSR, chown_uid, chown_gid,
                                  policy, "5.2.0", &why);
    if (mp) {
      if (spool_uid != usr.uid || spool_gid != usr.gid) set_eugid(usr.uid, usr.gid);
      const struct stat& mst = mp->stat_info();
      if (!S_ISREG(mst.st_mode)) {
        why = Dsn::simple("5.2.0", "destination " + mailbox + " is not a regular file");
      } else if (settings_.strict_mailbox_ownership && mst.st_uid != usr.uid && can_switch_ids()) {
        why = Dsn::simple("4.2.0", "destination " + mailbox + " is not owned by recipient");
        log::warning("specify \"strict_mailbox_ownership = no\" to ignore mailbox ownership mismatch");
      } else {
        LimitedFileSink sink(mp->take_fd(), true, settings_.mailbox_size_limit);
        CopyEnvelope env{m.sender, m.rcpt.orig_addr, m.delivered.value_or(m.rcpt.address), std::time(nullptr)};
        end = sink.start_offset();
        copy = mail_copy(message_.fd, message_.path, message_.data_offset, env, copy_flags, sink);
        why = copy.why;
      }
      if (spool_uid != usr.uid || spool_gid != usr.gid) set_eugid(spool_uid, spool_gid);
    }
  }  // the dotlock goes here, as the spool user
  set_eugid(resting_uid(), resting_gid());

  if (copy.status & kCopyStatCorrupt) return -1;
  if (copy.status != 0) {
    why.reason = "cannot update mailbox " + mailbox + " for user " + m.user + ". " + why.reason;
    return bounce_or_defer(state, std::move(why));
  }
  if (settings_.biff) biff_notify(usr.logname.value_or(m.user) + "@" + std::to_string(static_cast<long long>(end)));
  return sent(state, Dsn::simple("2.0.0", "delivered to mailbox"));
}

int LocalAgent::deliver_maildir(State state, UserAttr usr, const std::string& path) {
  state.level++;
  MsgAttr& m = state.msg;
  if (trace_only()) return sent(state, Dsn::simple("2.0.0", "delivers to maildir"));
  if (!settings_.frozen_delivered_to) m.delivered = m.rcpt.address;

  // lib/deliver/maildir: tmp/, fsync, link into new/, fsync new/.
  MaildirTarget target;
  target.path = path;
  target.uid = usr.uid;
  target.gid = usr.gid;
  target.size_limit = settings_.mailbox_size_limit;
  target.default_dsn = "5.2.0";  // the location may be the user's doing
  target.copy_flags = kCopyToFile | kCopyReturnPath | kCopyOrigRcpt;
  if (settings_.delivered_hdr_mask & kDeliveredHdrFile) target.copy_flags |= kCopyDelivered;
  CopyEnvelope env{m.sender, m.rcpt.orig_addr, m.delivered.value_or(m.rcpt.address), 0};
  CopyResult copy =
      deliver_maildir_file(target, QueuedContent{message_.fd, message_.path, message_.data_offset}, std::move(env));

  if (copy.status & kCopyStatCorrupt) return -1;
  if (copy.status != 0) return bounce_or_defer(state, std::move(copy.why));
  return sent(state, Dsn::simple("2.0.0", "delivered to maildir"));
}

int LocalAgent::deliver_file(State state, UserAttr usr, const std::string& path) {
  state.level++;
  MsgAttr& m = state.msg;
  if (been_here("file " + std::to_string(usr.uid) + " " + path)) return 0;
  if (trace_only()) return sent(state, Dsn::simple("2.0.0", "delivers to file: " + path));
  if ((settings_.file_mask & m.exp_type) == 0)
    return bounce_workaround(state, Dsn::simple("5.7.1", "mail to file is restricted"));
  if (usr.uid == 0) usr.uid = settings_.default_uid;
  if (usr.gid == 0) usr.gid = settings_.default_gid;
  if (ends_with_slash(path)) return deliver_maildir(state, usr, path);
  if (!settings_.frozen_delivered_to) m.delivered = m.rcpt.address;

  int copy_flags = kCopyMbox;
  if ((settings_.delivered_hdr_mask & kDeliveredHdrFile) == 0) copy_flags &= ~kCopyDelivered;
  LockPolicy policy{settings_.lock_mask | kLockDotlockMayFail, settings_.deliver_lock_attempts,
                    settings_.deliver_lock_delay, settings_.stale_lock_time};
  CopyResult copy;
  copy.status = kCopyStatWrite;
  Dsn why;
  set_eugid(usr.uid, usr.gid);
  {
    auto mp = LockedMailbox::open(path, O_APPEND | O_CREAT | O_WRONLY, S_IRUSR | S_IWUSR, static_cast<uid_t>(-1),
                                  static_cast<gid_t>(-1), policy, "5.2.0", &why);
    if (mp) {
      const struct stat& st = mp->stat_info();
      const bool regular = S_ISREG(st.st_mode);
      if (regular && (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
        why = Dsn::simple("5.7.1", "file is executable");
      } else {
        LimitedFileSink sink(mp->take_fd(), regular, regular ? settings_.mailbox_size_limit : 0);
        CopyEnvelope env{m.sender, m.rcpt.orig_addr, m.delivered.value_or(m.rcpt.address), std::time(nullptr)};
        copy = mail_copy(message_.fd, message_.path, message_.data_offset, env,
                         regular ? copy_flags : (copy_flags & ~kCopyToFile), sink);
        why = copy.why;
      }
    }
  }
  set_eugid(resting_uid(), resting_gid());

  if (copy.status & kCopyStatCorrupt) return -1;
  if (copy.status != 0) {
    why.reason = "cannot append message to file " + path + ": " + why.reason;
    if (why.temporary()) return defer(state, std::move(why));
    return bounce_workaround(state, std::move(why));
  }
  return sent(state, Dsn::simple("2.0.0", "delivered to file: " + path));
}

}  // namespace mta::local
