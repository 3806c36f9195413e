// status_reporter.hpp: how a delivery agent reports the fate of each
// recipient, as Postfix's sent(3), bounce(3), defer(3), trace(3) and
// verify(3) clients do: a request to the bounce, defer, trace or verify
// service (attribute protocol, lib/ipc) and the log line
//
//   QID: to=<rcpt>, [orig_to=<orig>, ]relay=local, delay=0.1,
//       delays=0.01/0/0/0.09, dsn=2.0.0, status=sent (delivered to mailbox)
//
// (lib/deliver formats it: Postfix's format_tv delays, at most
// delay_logging_resolution_limit decimals).  Unlike lib/deliver's simple
// defer/bounce clients, these follow Postfix's order: the bounce service
// first, the "bounced" log line only when it took the record (else the
// recipient is deferred, "4.3.0 bounce or trace service failure"), with
// soft_bounce, trace records (NOTIFY=SUCCESS, sendmail -v) and address
// verification (sendmail -bv, verify(8) probes).  Every function returns
// 0 when the recipient is finished (delivered, or bounced into the bounce
// log) and -1 when it must be tried again (DEL_STAT_DEFER).
//
// Also here: the DSN codes that Postfix derives from errno values
// (mbox_dsn) and from <sysexits.h> exit codes (sys_exits_detail).
#pragma once

#include <sys/time.h>

#include <memory>
#include <string>
#include <string_view>

#include "ipc/flush_client.hpp"
#include "ipc/mail_proto.hpp"

namespace mta::deliver {

// A delivery status: "4.2.0" and the reason ("cannot update mailbox ..."),
// with the optional diagnostic and remote MTA fields (dsn_buf.h).
struct Dsn {
  std::string status;
  std::string reason;
  std::string dtype;  // "x-unix" for local diagnostics
  std::string dtext;
  std::string mtype;
  std::string mname;
  std::string action;  // filled in by the reporting functions
  // dsb_simple(): status and reason only.
  static Dsn simple(std::string status, std::string reason) {
    Dsn d;
    d.status = std::move(status);
    d.reason = std::move(reason);
    return d;
  }
  // dsb_unix(): a local diagnostic (sysexits text or command output).
  static Dsn unix_diag(std::string status, std::string dtext, std::string reason) {
    Dsn d = simple(std::move(status), std::move(reason));
    d.dtype = "x-unix";
    d.dtext = std::move(dtext);
    return d;
  }
  bool temporary() const { return !status.empty() && status[0] == '4'; }
};

// The "QID: to=<...>, ... status=STATUS (REASON)" text (lib/deliver's
// format_status); NOW is when the delivery finished (used when the
// statistics have no deliver_done time).
std::string delivery_log_text(std::string_view queue_id, const ipc::proto::MsgStats& stats,
                              const ipc::proto::Recipient& rcpt, std::string_view relay, const Dsn& dsn,
                              std::string_view status, const timeval& now, int resolution_limit);

// mbox_dsn(): EAGAIN/ESTALE 4.2.0, ENOSPC 4.3.0 (the file system is full),
// EDQUOT/EFBIG 5.2.2 (the mailbox is full), else DEFAULT.
const char* mbox_dsn(int err, const char* default_dsn);

// <sysexits.h> codes with their DSN and text (EX_NOUSER: 5.1.1 "user
// unknown"); null for other exit codes.
struct SysExit {
  int code;
  const char* dsn;
  const char* text;
};
const SysExit* sys_exits_detail(int code);

// Delivery request flags as the status services want them (DEL_REQ_TRACE_FLAGS).
// DEL_REQ_FLAG_REC_DLY_SENT: record a delivery that was delayed before
// (confirm_delay_cleared).
inline constexpr int kDelReqFlagRecordDelayedSent = 1 << 13;
inline constexpr int kTraceFlagsMask = ipc::proto::kDelReqFlagMtaVrfy | ipc::proto::kDelReqFlagUserVrfy |
                                       ipc::proto::kDelReqFlagRecordDelivery | kDelReqFlagRecordDelayedSent;
inline constexpr int kTraceOnlyMask = ipc::proto::kDelReqFlagMtaVrfy | ipc::proto::kDelReqFlagUserVrfy;
inline constexpr int kDsnNotifyNever = 1, kDsnNotifySuccess = 2, kDsnNotifyFailure = 4, kDsnNotifyDelay = 8;

struct ReporterConfig {
  std::string queue_directory;
  std::string bounce_service = "bounce";
  std::string defer_service = "defer";
  std::string trace_service = "trace";
  std::string verify_service = "verify";
  long long ipc_timeout = 3600;
  bool soft_bounce = false;
  bool verify_neg_cache = true;
  int resolution_limit = 2;
  // Told about deferred mail (fast_flush_domains); null: nobody is.
  std::shared_ptr<const ipc::FlushClient> flush;
};

// The per-message reporting state: queue ID, statistics and our relay name.
class StatusReporter {
 public:
  StatusReporter(ReporterConfig config, std::string queue_id, ipc::proto::MsgStats stats, std::string relay)
      : config_(std::move(config)), queue_id_(std::move(queue_id)), stats_(stats), relay_(std::move(relay)) {}

  // The recipient was delivered (DSN action "delivered" unless the DSN
  // says otherwise, e.g. "relayed"; a success notice to the trace service
  // when the recipient asked for NOTIFY=SUCCESS).
  int sent(int flags, const ipc::proto::Recipient& rcpt, Dsn dsn);
  // The recipient failed for good: into the bounce log (or deferred, with
  // soft_bounce, or when the bounce service fails).
  int bounce_append(int flags, const ipc::proto::Recipient& rcpt, Dsn dsn);
  // Try again later: into the defer log.  Always -1.
  int defer_append(int flags, const ipc::proto::Recipient& rcpt, Dsn dsn);
  // A record in the trace log (DSN SUCCESS, "expanded", sendmail -v).
  int trace_append(int flags, const ipc::proto::Recipient& rcpt, Dsn dsn);
  // A failure notice of its own, to SENDER (an owner- alias), at once.
  int bounce_one(int flags, const ipc::proto::DeliverRequest& request, const std::string& sender,
                 const ipc::proto::Recipient& rcpt, Dsn dsn);
  // Postfix's "bounce_workaround" tail: 4.x.x defers, anything else bounces.
  int bounce_or_defer(int flags, const ipc::proto::Recipient& rcpt, Dsn dsn) {
    return dsn.temporary() ? defer_append(flags, rcpt, std::move(dsn)) : bounce_append(flags, rcpt, std::move(dsn));
  }

  const std::string& queue_id() const { return queue_id_; }
  const std::string& relay() const { return relay_; }
  const ipc::proto::MsgStats& stats() const { return stats_; }

 private:
  void log_status(const ipc::proto::Recipient& rcpt, const Dsn& dsn, std::string_view status) const;
  // {nrequest=0, flags, queue_id, recipient, dsn} to SERVICE; true when it answered status 0.
  bool append_to(const std::string& service, int flags, const ipc::proto::Recipient& rcpt, const Dsn& dsn) const;
  // verify(8) update: {request=update, address, recipient_status, reason}.
  int verify_append(const ipc::proto::Recipient& rcpt, Dsn dsn, int verify_status) const;
  bool verify_update(const std::string& address, int verify_status, const std::string& reason) const;

  ReporterConfig config_;
  std::string queue_id_;
  ipc::proto::MsgStats stats_;
  std::string relay_;
};

}  // namespace mta::deliver
