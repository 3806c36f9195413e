// error: the delivery agent that fails every recipient (Postfix's error(8)).
//
// qmgr sends it the recipients of address classes and transport_maps
// entries such as "error:5.1.1 User unknown" or "retry:4.3.2 try later"; the
// next hop is the reason, optionally led by an RFC 3463 status.  Run as
// the "error" service it bounces every recipient (default status 5.0.0):
// each goes into the bounce log through the bounce service, is logged as
//
//   QID: to=<rcpt>, relay=none, delay=.., delays=.., dsn=5.1.1, status=bounced (User unknown)
//
// and is marked done in the queue file.  Run as the "retry" service
// (master.cf: "retry unix - - y - - error") it defers every recipient
// instead (default status 4.0.0) through the defer service, leaving them
// for a later attempt.  Any other service name is a configuration error.
// A deferred recipient's domain is registered with the fast flush service
// when fast_flush_domains lists it (StatusReporter::defer_append).
// The reply to qmgr is 0 when every recipient is finished, -1 otherwise.
//
// usage: error [generic daemon options] (started by master)
#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "log/log.hpp"
#include "server/server.hpp"

namespace {

enum class Mode { bounce, defer };

// Set up once before privileges are dropped, read-only afterwards.
struct ErrorAgent {
  Mode mode = Mode::bounce;
  mta::deliver::ReporterConfig reporter;
  int deliver_message(mta::agent::Delivery& d) const;
};

int ErrorAgent::deliver_message(mta::agent::Delivery& d) const {
  const auto& req = d.request;
  if (req.nexthop.empty()) mta::log::fatal("empty nexthop hostname");
  if (req.recipients.empty()) mta::log::fatal("recipient count: %zu", req.recipients.size());
  mta::agent::DsnSplit dp = mta::agent::dsn_split(mode == Mode::bounce ? "5.0.0" : "4.0.0", req.nexthop);
  mta::deliver::StatusReporter status(reporter, req.queue_id, req.stats, "none");
  const int flags = mta::agent::trace_flags(req.flags);
  int result = 0;
  for (const auto& rcpt : req.recipients) {
    mta::deliver::Dsn dsn = mta::deliver::Dsn::simple(dp.status, dp.text);
    int rc = mode == Mode::bounce ? status.bounce_append(flags, rcpt, dsn) : status.defer_append(flags, rcpt, dsn);
    if (rc == 0) mta::agent::mark_done(d, rcpt);
    result |= rc;
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  ErrorAgent agent;
  Mode& mode = agent.mode;
  mta::server::SingleServer server;
  // After the chroot: queue_directory is then "/", where private/bounce is.
  server.post_init = [&](mta::server::ServerContext& ctx) {
    if (ctx.service_name == "error") mode = Mode::bounce;
    else if (ctx.service_name == "retry") mode = Mode::defer;
    else mta::log::fatal("bad error service name: %s", ctx.service_name.c_str());
    try {
      agent.reporter = mta::agent::reporter_config(ctx.config);
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  server.service = [&](int fd, mta::server::ServerContext& ctx) {
    mta::agent::serve_connection(fd, ctx.config, ctx.service_name + " socket",
                                 [&](mta::agent::Delivery& d) { return agent.deliver_message(d); }, ctx.next_request);
  };
  return mta::server::run_single_server(argc, argv, server);
}
