// agent_session.hpp: a qmgr connection to a delivery agent (error, retry,
// discard, virtual, pipe, smtp), as Postfix's deliver_request_read() and
// deliver_request_done(), for each request that qmgr sends on it:
//
//   1. announce {protocol=delivery_request_protocol};
//   2. read the request (ipc/mail_proto.hpp: DeliverRequest, then one list
//      per recipient); a qmgr that hangs up first is not an error;
//   3. check the queue file name (valid queue name and ID, a complete
//      regular file with one link), stamp the agent hand-off time, open the
//      file for update and take a shared lock (so that a restarted qmgr
//      cannot hand the same message to another agent at the same time);
//   4. let the agent handle every recipient: it reports each one through
//      the bounce, defer, trace or verify service and the log
//      (deliver/status_reporter.hpp's StatusReporter), and marks a finished
//      recipient done in the queue file (R record -> D);
//   5. reply {hop DSN (empty), status}: 0 when every recipient is finished,
//      -1 (DEL_STAT_DEFER) otherwise; then the next request on the same
//      connection (while ServerContext::next_request allows), or qmgr's
//      close.
//
// A request that cannot be read or whose queue file is unusable gets the
// reply -1, so that qmgr defers the message.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "ipc/mail_proto.hpp"
#include "deliver/status_reporter.hpp"
#include "queue/queue_file.hpp"

namespace mta::agent {

struct Delivery {
  ipc::proto::DeliverRequest request;
  std::string path;  // relative to the queue directory, as Postfix names it
  std::unique_ptr<queue::QueueFileReader> file;
  // The destination's fault (Postfix's request->hop_status): set by an agent
  // that could not get through to the next hop (no connection, no greeting,
  // a lost session), it goes back to qmgr with the reply, and qmgr counts it
  // against the destination's concurrency and may mark it dead.
  ipc::proto::Dsn hop_status;
};

// Serves one connection on fd: the requests qmgr sends on it, one after
// another, while next_request (ServerContext::next_request) lets this
// process take another; without it, one request, as Postfix's agents.
// deliver() returns the request status (0 or -1).  socket_name names the
// stream in messages ("error socket").
void serve_connection(int fd, const config::Config& config, const std::string& socket_name,
                      const std::function<int(Delivery&)>& deliver,
                      const std::function<bool(int fd)>& next_request = {});

// The request loop of a delivery agent's connection, after the
// announcement: SERVE_ONE serves one request (false when the connection is
// done with), then NEXT_REQUEST (ServerContext::next_request) says whether
// this process takes another.  qmgr keeps the connection for its next
// delivery to the transport; Postfix's qmgr, which makes one connection
// per delivery, ends the loop by closing.  Without NEXT_REQUEST: one
// request, then the wait for the client's close, as Postfix's agents.
void serve_requests(ipc::Channel& ch, int fd, const std::function<bool()>& serve_one,
                    const std::function<bool(int fd)>& next_request);

// deliver_completed(): marks the recipient's record done (fatal when the
// queue file cannot be updated, so that qmgr retries the message).
void mark_done(Delivery& delivery, const ipc::proto::Recipient& rcpt);

// The reporting settings from main.cf.
deliver::ReporterConfig reporter_config(const config::Config& config);

// Postfix's dsn_split(): an optional leading RFC 3463 status ("5.1.1 text")
// and the free text after it; default_status when there is none.
struct DsnSplit {
  std::string status;
  std::string text;
};
DsnSplit dsn_split(std::string_view default_status, std::string_view text);
// dsn_valid(): the length of a leading "X.YYY.ZZZ" status (X in 2, 4, 5)
// followed by the end or white space, else 0.
size_t dsn_valid(std::string_view text);

// DEL_REQ_TRACE_FLAGS(): the request flags that the status services use.
int trace_flags(int request_flags);

}  // namespace mta::agent
