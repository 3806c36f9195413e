// discard: the delivery agent that pretends to deliver (Postfix's
// discard(8)).  qmgr sends it the recipients of transport_maps entries such
// as "discard:no mail for this domain"; the next hop is the reason,
// optionally led by an RFC 3463 status (default 2.0.0).  Every recipient
// is logged as delivered,
//
//   QID: to=<rcpt>, relay=none, delay=.., delays=.., dsn=2.0.0, status=sent (REASON)
//
// reported to the trace service where the request or the recipient's DSN
// NOTIFY=SUCCESS asks for it, and marked done in the queue file when the
// request says so (DEL_REQ_FLAG_SUCCESS).  A recipient whose report fails is
// deferred; the reply to qmgr is 0 when every recipient is finished, -1
// otherwise.
//
// usage: discard [generic daemon options] (started by master)
#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "log/log.hpp"
#include "server/server.hpp"

namespace {

int deliver_message(const mta::deliver::ReporterConfig& reporter, mta::agent::Delivery& d) {
  const auto& req = d.request;
  if (req.nexthop.empty()) mta::log::fatal("empty nexthop hostname");
  if (req.recipients.empty()) mta::log::fatal("recipient count: %zu", req.recipients.size());
  mta::agent::DsnSplit dp = mta::agent::dsn_split("2.0.0", req.nexthop);
  mta::deliver::StatusReporter status(reporter, req.queue_id, req.stats, "none");
  const int flags = mta::agent::trace_flags(req.flags);
  int result = 0;
  for (const auto& rcpt : req.recipients) {
    if (rcpt.offset < 0) continue;
    int rc = status.sent(flags, rcpt, mta::deliver::Dsn::simple(dp.status, dp.text));
    if (rc == 0 && (req.flags & mta::ipc::proto::kDelReqFlagSuccess)) mta::agent::mark_done(d, rcpt);
    result |= rc;
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  mta::deliver::ReporterConfig reporter;  // set up once, read-only afterwards
  mta::server::SingleServer server;
  // After the chroot: queue_directory is then "/", where private/bounce is.
  server.post_init = [&](mta::server::ServerContext& ctx) {
    try {
      reporter = mta::agent::reporter_config(ctx.config);
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  server.service = [&](int fd, mta::server::ServerContext& ctx) {
    mta::agent::serve_connection(fd, ctx.config, ctx.service_name + " socket",
                                 [&](mta::agent::Delivery& d) { return deliver_message(reporter, d); }, ctx.next_request);
  };
  return mta::server::run_single_server(argc, argv, server);
}
