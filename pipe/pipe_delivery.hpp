// pipe_delivery.hpp: one delivery request for pipe(8), as Postfix's
// deliver_message() and eval_command_status():
//
//   - flags D or O with more than one recipient: every recipient deferred
//     (4.3.5 "mail system configuration error") and the warning "pipe flag
//     `D' requires SERVICE_destination_recipient_limit = 1";
//   - size= exceeded: bounced, 5.2.3 "message too large";
//   - a trace-only request (sendmail -bv): "delivers to command: ARGV0";
//   - flag D and a Delivered-To: header with the recipient: bounced, 5.4.6
//     "mail forwarding loop for RCPT";
//   - a macro error in argv=: deferred, 4.3.5;
//   - then the command runs once for all recipients (deliver/pipe_command)
//     as user=, with the time limit SERVICE_time_limit ($command_time_limit),
//     export_environment, directory= / chroot=, and its result goes to
//     every recipient: exit 0 is "delivered via SERVICE service" (plus up
//     to 100 bytes of output in parentheses; DSN action "relayed", or
//     "delivered" with flag X); a 4.x.x status defers; anything else
//     bounces.  Status lines say "relay=SERVICE".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "deliver/agent_session.hpp"
#include "deliver/status_reporter.hpp"
#include "pipe/pipe_attributes.hpp"

namespace mta::pipe {

struct PipeSettings {
  std::string service;           // master.cf service name, e.g. "maildrop"
  std::string config_directory;
  long long time_limit = 1000;   // SERVICE_time_limit
  std::vector<std::string> export_environment;
  std::string recipient_delimiter;
  bool owner_request_special = true;
  std::string double_bounce_sender = "double-bounce";
  deliver::ReporterConfig reporter;
  ForbiddenIds forbidden;
  std::vector<std::string> attribute_words;  // the master.cf words after the options
};

// The agent: settings read once; the attributes parsed at the first
// request, as Postfix does (a bad entry is then fatal).
class PipeAgent {
 public:
  explicit PipeAgent(PipeSettings settings) : settings_(std::move(settings)) {}
  int deliver_message(agent::Delivery& delivery);

 private:
  // Reports STATUS (pipe_command's outcome) for every recipient.
  int report_all(agent::Delivery& d, deliver::Dsn why, bool ok);
  PipeSettings settings_;
  std::optional<PipeAttributes> attr_;
};

// Whether the message's primary header has "Delivered-To: ADDRESS"
// (compared case-insensitively), as Postfix's delivered_hdr_find().
bool has_delivered_to(int fd, const std::string& path, long data_offset, const std::string& address);

}  // namespace mta::pipe
