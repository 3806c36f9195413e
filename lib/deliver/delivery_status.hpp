// delivery_status.hpp: what every delivery agent and qmgr do with a
// recipient's outcome, as Postfix's log_adhoc, sent, defer and bounce.
//
// The log line is Postfix's, to the character, because log tools parse it:
//   QID: to=<rcpt>, orig_to=<orig>, relay=RELAY, delay=D, delays=a/b/c/d,
//        dsn=X.Y.Z, status=sent|deferred|bounced (reason)
// delays are the time before the active queue, in the active queue, in
// connection setup and in transmission, with two significant digits and
// at most delay_logging_resolution_limit decimals (Postfix's format_tv).
//
// defer_append and bounce_append hand the recipient to the defer or bounce
// service (private/defer, private/bounce), which keeps the per-message log
// that postqueue shows and the notification is made from, and log the line.
// A recipient whose bounce cannot be recorded is deferred instead ("4.3.0
// bounce or trace service failure"), as Postfix does.  Both return false
// when their service could not be reached: the recipient stays for a later
// attempt (nothing is lost).
//
// Like Postfix's defer_append, a deferred recipient's domain and the queue
// ID also go to the fast flush service (flush(8)), so that ETRN and
// "postqueue -s" find the message; that is skipped when fast_flush_domains
// does not list the domain, and a failure is a warning only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ipc/flush_client.hpp"
#include "ipc/mail_proto.hpp"

namespace mta::config {
class Config;
}

namespace mta::deliver {

// Postfix's format_tv with 2 significant digits and max_decimals decimals.
std::string format_delay(long long sec, long long usec, int max_decimals = 2);

struct StatusLine {
  std::string queue_id;
  ipc::proto::Recipient recipient;
  std::string relay;         // "local", "none", "mx.example.com[192.0.2.1]:25"
  ipc::proto::MsgStats stats;
  ipc::proto::Dsn dsn;       // status and reason are logged
  std::string status;        // "sent", "deferred", "bounced", "expired", ...
};

// Writes the line through lib/log (info level).
void log_status(const StatusLine& line, int max_decimals = 2);
std::string format_status(const StatusLine& line, int max_decimals = 2);

// The current time as MsgStats stores it.
ipc::proto::MsgStats::Time now();

// The flush client that defer_append tells, from main.cf (queue_directory,
// fast_flush_domains, parent_domain_matches_subdomains, flush_service_name,
// ipc_timeout); null when fast_flush_domains is empty.
std::shared_ptr<const ipc::FlushClient> flush_client_from_config(const config::Config& config);
// flush_add(domain of ADDRESS, QUEUE_ID) unless FLUSH is null or the
// address has no domain; "QID: flush service failure" when it fails.
void register_deferred(const ipc::FlushClient* flush, std::string_view queue_id, std::string_view address);

// Logs the line with status "deferred" and appends it to defer/QID, then
// registers the message with FLUSH (when not null).
bool defer_append(const std::string& queue_directory, StatusLine line, int flags = 0,
                  std::string* error = nullptr, const ipc::FlushClient* flush = nullptr);
// Logs the line with status "bounced" and appends it to bounce/QID.
bool bounce_append(const std::string& queue_directory, StatusLine line, int flags = 0,
                   std::string* error = nullptr);

}  // namespace mta::deliver
