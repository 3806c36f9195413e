// status_reporter.cpp: see status_reporter.hpp.
#include "deliver/status_reporter.hpp"

#include <sysexits.h>

#include <array>
#include <cerrno>
#include <chrono>

#include "deliver/delivery_status.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"

namespace mta::deliver {
namespace proto = ipc::proto;

namespace {

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::string delivery_log_text(std::string_view queue_id, const proto::MsgStats& stats,
                              const proto::Recipient& rcpt, std::string_view relay, const Dsn& dsn,
                              std::string_view status, const timeval& now, int resolution_limit) {
  deliver::StatusLine line;
  line.queue_id = std::string(queue_id);
  line.recipient = rcpt;
  line.relay = std::string(relay);
  line.stats = stats;
  if (!line.stats.deliver_done.sec) line.stats.deliver_done = {now.tv_sec, now.tv_usec};
  line.dsn.status = dsn.status;
  line.dsn.reason = dsn.reason;
  line.status = std::string(status);
  return deliver::format_status(line, resolution_limit);
}

const char* mbox_dsn(int err, const char* default_dsn) {
  if (err == EAGAIN || err == ESTALE) return "4.2.0";
  if (err == ENOSPC) return "4.3.0";
  if (err == EDQUOT || err == EFBIG) return "5.2.2";
  return default_dsn;
}

const SysExit* sys_exits_detail(int code) {
  static constexpr SysExit kTable[] = {
      {EX_USAGE, "5.3.0", "command line usage error"},
      {EX_DATAERR, "5.6.0", "data format error"},
      {EX_NOINPUT, "5.3.0", "cannot open input"},
      {EX_NOUSER, "5.1.1", "user unknown"},
      {EX_NOHOST, "5.1.2", "host name unknown"},
      {EX_UNAVAILABLE, "5.3.0", "service unavailable"},
      {EX_SOFTWARE, "5.3.0", "internal software error"},
      {EX_OSERR, "4.3.0", "system resources problem"},
      {EX_OSFILE, "5.3.0", "critical OS file missing"},
      {EX_CANTCREAT, "5.2.0", "can't create user output file"},
      {EX_IOERR, "5.3.0", "input/output error"},
      {EX_TEMPFAIL, "4.3.0", "temporary failure"},
      {EX_PROTOCOL, "5.5.0", "remote error in protocol"},
      {EX_NOPERM, "5.7.0", "permission denied"},
      {EX_CONFIG, "5.3.5", "local configuration error"},
  };
  for (const SysExit& e : kTable)
    if (e.code == code) return &e;
  return nullptr;
}

namespace {

bool valid_dsn_status(std::string_view s) {
  // Postfix's dsn_valid(): class digit, '.', 1-3 digits, '.', 1-3 digits.
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

proto::Dsn to_wire(const Dsn& d) {
  return proto::Dsn{d.status, d.dtype, d.dtext, d.mtype, d.mname, d.action, d.reason};
}

// DEL_RCPT_STAT_* as the verify service knows them.
constexpr int kRcptStatOk = 0;
constexpr int kRcptStatDefer = 1;
constexpr int kRcptStatBounce = 2;

}  // namespace

void StatusReporter::log_status(const proto::Recipient& rcpt, const Dsn& dsn, std::string_view status) const {
  timeval now{};
  ::gettimeofday(&now, nullptr);
  std::string text = delivery_log_text(queue_id_, stats_, rcpt, relay_, dsn, status, now, config_.resolution_limit);
  log::info("%s", text.c_str());
}

bool StatusReporter::append_to(const std::string& service, int flags, const proto::Recipient& rcpt,
                               const Dsn& dsn) const {
  ipc::Channel ch;
  ipc::ConnectOptions opts;
  opts.timeout = std::chrono::seconds(config_.ipc_timeout);
  opts.attempts = ipc::kConnectWaitAttempts;
  if (ipc::Status st = ipc::connect_service(ch, config_.queue_directory, proto::kClassPrivate, service, opts); !st) {
    log::warning("%s", st.message().c_str());
    return false;
  }
  proto::BounceAppendRequest req;
  req.flags = flags;
  req.queue_id = queue_id_;
  req.rcpt = rcpt;
  req.dsn = to_wire(dsn);
  proto::StatusReply reply;
  ipc::Status st = ch.expect_announcement(proto::kProtoBounce);
  if (st) st = ch.request(req, reply);
  if (!st) {
    log::warning("%s", st.message().c_str());
    return false;
  }
  return reply.status == 0;
}

bool StatusReporter::verify_update(const std::string& address, int verify_status, const std::string& reason) const {
  ipc::Channel ch;
  ipc::ConnectOptions opts;
  opts.timeout = std::chrono::seconds(config_.ipc_timeout);
  opts.attempts = ipc::kConnectWaitAttempts;
  if (ipc::Status st = ipc::connect_service(ch, config_.queue_directory, proto::kClassPrivate,
                                            config_.verify_service, opts);
      !st) {
    log::warning("%s", st.message().c_str());
    return false;
  }
  ipc::AttrList req{{"request", "update"}, {"address", address}};
  req.add_number("recipient_status", static_cast<uint32_t>(verify_status));
  req.add("reason", reason);
  ipc::AttrList reply;
  ipc::Status st = ch.expect_announcement(proto::kProtoVerify);
  if (st) st = ch.request(req, reply);
  if (!st) {
    log::warning("%s", st.message().c_str());
    return false;
  }
  auto status = reply.number("status");
  return status && *status == 0;
}

int StatusReporter::verify_append(const proto::Recipient& rcpt, Dsn dsn, int verify_status) const {
  bool ok = true;
  if (config_.verify_neg_cache || verify_status == kRcptStatOk) {
    if (!rcpt.orig_addr.empty()) ok = verify_update(rcpt.orig_addr, verify_status, dsn.reason);
    if (ok && !iequal(rcpt.address, rcpt.orig_addr)) ok = verify_update(rcpt.address, verify_status, dsn.reason);
  } else {
    dsn.action = "undeliverable-but-not-cached";
  }
  if (!ok) {
    log::warning("%s: %s service failure", queue_id_.c_str(), config_.verify_service.c_str());
    return -1;
  }
  log_status(rcpt, dsn, dsn.action);
  return 0;
}

int StatusReporter::sent(int flags, const proto::Recipient& rcpt, Dsn dsn) {
  if (dsn.status.empty() || dsn.status[0] != '2' || !valid_dsn_status(dsn.status)) {
    log::warning("sent: ignoring dsn code \"%s\"", dsn.status.c_str());
    dsn.status = "2.0.0";
  }
  if (flags & proto::kDelReqFlagMtaVrfy) {
    dsn.action = "deliverable";
    return verify_append(rcpt, std::move(dsn), kRcptStatOk);
  }
  if (flags & proto::kDelReqFlagUserVrfy) {
    dsn.action = "deliverable";
    return trace_append(flags, rcpt, std::move(dsn));
  }
  if (dsn.action.empty()) dsn.action = "delivered";
  bool ok = true;
  const bool record_delayed =
      (flags & kDelReqFlagRecordDelayedSent) && (rcpt.dsn_notify == 0 || (rcpt.dsn_notify & kDsnNotifyDelay));
  if ((flags & proto::kDelReqFlagRecordDelivery) || record_delayed) ok = trace_append(flags, rcpt, dsn) == 0;
  if (ok && (rcpt.dsn_notify & kDsnNotifySuccess)) ok = trace_append(flags, rcpt, dsn) == 0;
  if (ok) {
    log_status(rcpt, dsn, "sent");
    return 0;
  }
  Dsn failed = dsn;
  failed.status = "4.3.0";
  failed.reason = queue_id_ + ": " + config_.trace_service + " service failed";
  return defer_append(flags, rcpt, std::move(failed));
}

int StatusReporter::bounce_append(int flags, const proto::Recipient& rcpt, Dsn dsn) {
  if (dsn.status.empty() || dsn.status[0] != '5' || !valid_dsn_status(dsn.status)) {
    log::warning("bounce_append: ignoring dsn code \"%s\"", dsn.status.c_str());
    dsn.status = "5.0.0";
  }
  if (config_.soft_bounce) {
    dsn.status[0] = '4';
    return defer_append(flags, rcpt, std::move(dsn));
  }
  if (flags & proto::kDelReqFlagMtaVrfy) {
    dsn.action = "undeliverable";
    return verify_append(rcpt, std::move(dsn), kRcptStatBounce);
  }
  if (flags & proto::kDelReqFlagUserVrfy) {
    dsn.action = "undeliverable";
    return trace_append(flags, rcpt, std::move(dsn));
  }
  dsn.action = "failed";
  if (append_to(config_.bounce_service, flags, rcpt, dsn) &&
      ((flags & proto::kDelReqFlagRecordDelivery) == 0 || trace_append(flags, rcpt, dsn) == 0)) {
    log_status(rcpt, dsn, "bounced");
    return 0;
  }
  Dsn failed = dsn;
  failed.status = "4.3.0";
  failed.reason = config_.bounce_service + " or " + config_.trace_service + " service failure";
  return defer_append(flags, rcpt, std::move(failed));
}

int StatusReporter::bounce_one(int flags, const proto::DeliverRequest& request, const std::string& sender,
                               const proto::Recipient& rcpt, Dsn dsn) {
  if (dsn.status.empty() || dsn.status[0] != '5' || !valid_dsn_status(dsn.status)) {
    log::warning("bounce_one: ignoring dsn code \"%s\"", dsn.status.c_str());
    dsn.status = "5.0.0";
  }
  if (config_.soft_bounce || (flags & (proto::kDelReqFlagMtaVrfy | proto::kDelReqFlagUserVrfy)))
    return bounce_append(flags, rcpt, std::move(dsn));
  dsn.action = "failed";
  proto::BounceOneArgs args;
  args.flags = flags;
  args.queue_name = request.queue_name;
  args.queue_id = queue_id_;
  args.encoding = request.encoding;
  args.smtputf8 = request.smtputf8;
  args.sender = sender;
  args.dsn_envid = request.dsn_envid;
  args.dsn_ret = request.dsn_ret;
  args.rcpt = rcpt;
  args.dsn = to_wire(dsn);
  bool ok = false;
  ipc::Channel ch;
  ipc::ConnectOptions opts;
  opts.timeout = std::chrono::seconds(config_.ipc_timeout);
  opts.attempts = ipc::kConnectWaitAttempts;
  ipc::Status st = ipc::connect_service(ch, config_.queue_directory, proto::kClassPrivate, config_.bounce_service, opts);
  if (st) st = ch.expect_announcement(proto::kProtoBounce);
  if (st) st = ch.write(proto::RequestNumber{static_cast<int>(proto::BounceCommand::one)}, false);
  proto::StatusReply reply;
  if (st) st = ch.request(args, reply);
  if (!st)
    log::warning("%s", st.message().c_str());
  else
    ok = reply.status == 0;
  if (ok) {
    log_status(rcpt, dsn, "bounced");
    return 0;
  }
  Dsn failed = dsn;
  failed.status = "4.3.0";
  failed.reason = config_.bounce_service + " or " + config_.trace_service + " service failure";
  return defer_append(flags, rcpt, std::move(failed));
}

int StatusReporter::defer_append(int flags, const proto::Recipient& rcpt, Dsn dsn) {
  if (dsn.status.empty() || dsn.status[0] != '4' || !valid_dsn_status(dsn.status)) {
    log::warning("defer_append: ignoring dsn code \"%s\"", dsn.status.c_str());
    dsn.status = "4.0.0";
  }
  if (flags & proto::kDelReqFlagMtaVrfy) {
    dsn.action = "undeliverable";
    return verify_append(rcpt, std::move(dsn), kRcptStatDefer);
  }
  if (flags & proto::kDelReqFlagUserVrfy) {
    dsn.action = "undeliverable";
    (void)trace_append(flags, rcpt, std::move(dsn));
    return -1;
  }
  dsn.action = "delayed";
  if (!append_to(config_.defer_service, flags, rcpt, dsn))
    log::warning("%s: %s service failure", queue_id_.c_str(), config_.defer_service.c_str());
  if (flags & proto::kDelReqFlagRecordDelivery) (void)trace_append(flags, rcpt, dsn);
  log_status(rcpt, dsn, "deferred");
  deliver::register_deferred(config_.flush.get(), queue_id_, rcpt.address);
  return -1;
}

int StatusReporter::trace_append(int flags, const proto::Recipient& rcpt, Dsn dsn) {
  Dsn logged = dsn;
  if (relay_ != "none") dsn.reason = "delivery via " + relay_ + ": " + dsn.reason;
  if (!append_to(config_.trace_service, flags, rcpt, dsn)) {
    log::warning("%s: %s service failure", queue_id_.c_str(), config_.trace_service.c_str());
    return -1;
  }
  if (flags & proto::kDelReqFlagUserVrfy) log_status(rcpt, logged, logged.action);
  return 0;
}

}  // namespace mta::deliver
