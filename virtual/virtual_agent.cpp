// virtual_agent.cpp: see virtual_agent.hpp.
#include "virtual/virtual_agent.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cctype>
#include <ctime>

#include "deliver/mail_copy.hpp"
#include "deliver/mailbox_file.hpp"
#include "deliver/maildir.hpp"
#include "deliver/user_privileges.hpp"
#include "ipc/mail_proto.hpp"
#include "log/log.hpp"

namespace mta::virt {
namespace proto = ipc::proto;
using deliver::Dsn;

namespace {
// "mail system configuration error": what a recipient gets for a broken
// table or a bad uid/gid; the details go to the log only.
constexpr const char* kConfigError = "mail system configuration error";

// A failing table's error, "TITLE: TYPE:NAME: TEXT" (lib/maps), as the
// table's spec and the text.  false when it has another shape.
bool split_lookup_error(const maps::Maps& table, const maps::Result& r, std::string* spec, std::string* text) {
  std::string_view rest = r.error;
  const std::string prefix = table.title() + ": ";
  if (rest.substr(0, prefix.size()) != prefix) return false;
  rest.remove_prefix(prefix.size());
  size_t sep = rest.find(": ");
  if (sep == std::string_view::npos) return false;
  *spec = std::string(rest.substr(0, sep));
  *text = std::string(rest.substr(sep + 2));
  return true;
}

// maps_find()'s warning about a failing table: "hash:/x lookup error for "KEY"".
void log_table_failure(const maps::Maps& table, const std::string& user, const maps::Result& r) {
  std::string spec, text;
  if (split_lookup_error(table, r, &spec, &text))
    log::warning("%s lookup error for \"%s\"", spec.c_str(), user.c_str());
  else
    log::warning("%s", r.error.c_str());
}

// The same, then virtual's "table TITLE: lookup KEY: TEXT".
void log_lookup_error(const maps::Maps& table, const std::string& user, const maps::Result& r) {
  std::string spec, text;
  if (!split_lookup_error(table, r, &spec, &text)) text = r.error;
  log_table_failure(table, user, r);
  log::warning("table %s: lookup %s: %s", table.title().c_str(), user.c_str(), text.c_str());
}
}  // namespace

maps::Result find_recipient(const maps::Maps& table, std::string_view user, std::string_view recipient_delimiter,
                            const rewrite::LocalDomains* local) {
  bool local_failed = false;
  maps::AddressLookup how;
  how.recipient_delimiter = std::string(recipient_delimiter);
  how.localpart_if_local = true;
  how.at_domain = true;
  how.is_local_domain = [&](std::string_view domain) {
    if (local == nullptr) return false;
    int rc = local->resolve_local(domain);
    if (rc < 0) local_failed = true;
    return rc > 0;
  };
  maps::Result r = maps::find_address(table, user, how);
  if (!r.found() && local_failed) return maps::Result::fail("mydestination lookup failed");
  return r;
}

MailboxLocation mailbox_location(std::string_view base, std::string_view map_result) {
  MailboxLocation loc;
  loc.path = std::string(base) + "/" + std::string(map_result);
  loc.maildir = !loc.path.empty() && loc.path.back() == '/';
  for (size_t start = 0; start <= map_result.size();) {
    size_t slash = map_result.find('/', start);
    if (slash == std::string_view::npos) slash = map_result.size();
    if (map_result.substr(start, slash - start) == "..") loc.escapes_base = true;
    start = slash + 1;
  }
  return loc;
}

long long table_number(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  long long n = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (n > (1LL << 53)) break;  // absurd values stay absurd, without overflow
    n = n * 10 + (text[i] - '0');
  }
  return negative ? -n : n;
}

std::string fold_address(std::string_view address) {
  std::string out(address);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

struct VirtualAgent::Recipient {
  agent::Delivery& delivery;
  deliver::StatusReporter& status;
  int flags;                      // the trace flags of the request
  const proto::Recipient& rcpt;
  std::string user;               // the folded address: every lookup's key
  uid_t uid = 0;
  gid_t gid = 0;
  std::string mailbox;            // base/result

  bool trace_only() const { return (delivery.request.flags & deliver::kTraceOnlyMask) != 0; }
  int sent(Dsn dsn) { return status.sent(flags, rcpt, std::move(dsn)); }
  int defer(Dsn dsn) { return status.defer_append(flags, rcpt, std::move(dsn)); }
  int bounce(Dsn dsn) { return status.bounce_append(flags, rcpt, std::move(dsn)); }
  // The administrator chose the location: 4.x.x defers, the rest bounces.
  int bounce_or_defer(Dsn dsn) { return dsn.temporary() ? defer(std::move(dsn)) : bounce(std::move(dsn)); }
  deliver::CopyEnvelope envelope() const {
    return deliver::CopyEnvelope{delivery.request.sender, rcpt.orig_addr, rcpt.address, std::time(nullptr)};
  }
  deliver::QueuedContent content() const {
    return deliver::QueuedContent{delivery.file->fd(), delivery.path, static_cast<off_t>(delivery.request.data_offset)};
  }
};

int VirtualAgent::deliver_message(agent::Delivery& d) const {
  const proto::DeliverRequest& req = d.request;
  log::debug("local_deliver: %s from %s", req.queue_id.c_str(), req.sender.c_str());
  deliver::StatusReporter status(settings_.reporter, req.queue_id, req.stats, settings_.service);
  const int flags = agent::trace_flags(req.flags);
  int result = 0;
  for (const proto::Recipient& rcpt : req.recipients) {
    Recipient r{d, status, flags, rcpt, fold_address(rcpt.address), 0, 0, {}};
    int rc = deliver_recipient(r);
    if (rc == 0 && (req.flags & proto::kDelReqFlagSuccess)) agent::mark_done(d, rcpt);
    result |= rc;
  }
  return result;
}

int VirtualAgent::deliver_recipient(Recipient& r) const {
  int status = 0;
  if (!deliver_mailbox(r, &status)) status = r.bounce(Dsn::simple("5.1.1", "unknown user: \"" + r.user + "\""));
  return status;
}

bool VirtualAgent::deliver_mailbox(Recipient& r, int* status) const {
  if (settings_.mailbox_base.empty() || settings_.mailbox_base[0] != '/')
    log::fatal("do not specify relative pathname: virtual_mailbox_base = %s", settings_.mailbox_base.c_str());

  const rewrite::LocalDomains* local = settings_.local_domains.get();
  maps::Result box = find_recipient(settings_.mailbox_maps, r.user, settings_.recipient_delimiter, local);
  if (!box.found()) {
    if (!box.failed()) return false;
    log_lookup_error(settings_.mailbox_maps, r.user, box);
    *status = r.defer(Dsn::simple("4.3.5", kConfigError));
    return true;
  }
  MailboxLocation where = mailbox_location(settings_.mailbox_base, box.value);
  if (where.escapes_base) {
    log::warning("recipient %s: %s result \"%s\" leads outside virtual_mailbox_base %s", r.user.c_str(),
                 settings_.mailbox_maps.title().c_str(), box.value.c_str(), settings_.mailbox_base.c_str());
    *status = r.defer(Dsn::simple("4.3.5", kConfigError));
    return true;
  }
  r.mailbox = where.path;

  // The owner of the mailbox: both tables must answer with a sane number.
  auto owner_id = [&](const maps::Maps& table, const char* what, long long minimum, long long* out) {
    maps::Result id = find_recipient(table, r.user, settings_.recipient_delimiter, local);
    if (!id.found()) {
      if (id.failed()) log_table_failure(table, r.user, id);
      log::warning("recipient %s: not found in %s", r.user.c_str(), table.title().c_str());
      return false;
    }
    *out = table_number(id.value);
    if (*out < minimum) {
      log::warning("recipient %s: bad %s %s in %s", r.user.c_str(), what, id.value.c_str(), table.title().c_str());
      return false;
    }
    return true;
  };
  long long uid = 0, gid = 0;
  if (!owner_id(settings_.uid_maps, "uid", settings_.minimum_uid, &uid) ||
      !owner_id(settings_.gid_maps, "gid", 1, &gid)) {
    *status = r.defer(Dsn::simple("4.3.5", kConfigError));
    return true;
  }
  r.uid = static_cast<uid_t>(uid);
  r.gid = static_cast<gid_t>(gid);
  log::debug("deliver_mailbox: set user_attr: %s, uid = %u, gid = %u", r.mailbox.c_str(), static_cast<unsigned>(r.uid),
             static_cast<unsigned>(r.gid));

  *status = r.mailbox.back() == '/' ? deliver_maildir(r) : deliver_mailbox_file(r);
  return true;
}

int VirtualAgent::deliver_maildir(Recipient& r) const {
  if (r.trace_only()) return r.sent(Dsn::simple("2.0.0", "delivers to maildir"));
  deliver::MaildirTarget target;
  target.path = r.mailbox;
  target.uid = r.uid;
  target.gid = r.gid;
  target.size_limit = settings_.mailbox_limit;
  target.default_dsn = "4.2.0";  // the administrator's location: try again
  target.copy_flags = deliver::kCopyToFile | deliver::kCopyReturnPath | deliver::kCopyDelivered | deliver::kCopyOrigRcpt;
  deliver::CopyResult copy = deliver::deliver_maildir_file(target, r.content(), r.envelope());
  if (copy.status & deliver::kCopyStatCorrupt) return -1;
  if (copy.status != 0) return r.bounce_or_defer(std::move(copy.why));
  return r.sent(Dsn::simple("2.0.0", "delivered to maildir"));
}

int VirtualAgent::deliver_mailbox_file(Recipient& r) const {
  if (r.trace_only()) return r.sent(Dsn::simple("2.0.0", "delivers to mailbox"));
  deliver::LockPolicy policy{settings_.lock_mask, settings_.deliver_lock_attempts, settings_.deliver_lock_delay,
                             settings_.stale_lock_time};
  deliver::CopyResult copy;
  copy.status = deliver::kCopyStatWrite;
  Dsn why;
  // As the recipient, so that file system quotas apply.
  deliver::set_eugid(r.uid, r.gid);
  {
    auto mp = deliver::LockedMailbox::open(r.mailbox, O_APPEND | O_WRONLY | O_CREAT, S_IRUSR | S_IWUSR,
                                           static_cast<uid_t>(-1), static_cast<gid_t>(-1), policy, "4.2.0", &why);
    if (mp) {
      const struct stat& st = mp->stat_info();
      if (!S_ISREG(st.st_mode)) {
        log::warning("recipient %s: destination %s is not a regular file", r.rcpt.address.c_str(), r.mailbox.c_str());
        why = Dsn::simple("5.3.5", kConfigError);
      } else if (settings_.strict_mailbox_ownership && st.st_uid != r.uid && deliver::can_switch_ids()) {
        why = Dsn::simple("4.2.0", "destination " + r.mailbox + " is not owned by recipient");
        log::warning("specify \"strict_mailbox_ownership = no\" to ignore mailbox ownership mismatch");
      } else {
        deliver::LimitedFileSink sink(mp->take_fd(), true, settings_.mailbox_limit);
        deliver::QueuedContent msg = r.content();
        copy = deliver::mail_copy(msg.fd, msg.path, msg.data_offset, r.envelope(), deliver::kCopyMbox, sink);
        why = copy.why;
      }
    }
  }  // the dotlock goes here, as the recipient
  deliver::set_eugid(deliver::resting_uid(), deliver::resting_gid());

  if (copy.status & deliver::kCopyStatCorrupt) return -1;
  if (copy.status != 0) {
    why.reason = "delivery failed to mailbox " + r.mailbox + ": " + why.reason;
    return r.bounce_or_defer(std::move(why));
  }
  return r.sent(Dsn::simple("2.0.0", "delivered to mailbox"));
}

}  // namespace mta::virt
