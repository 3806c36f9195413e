// enqueue.hpp: "sendmail" posting one message, as Postfix's sendmail does.
//
// The message and its envelope go as queue-file records to postdrop
// ($command_directory/postdrop -r), which writes the maildrop file:
//
//   [A envelope_id=] A rewrite_context=local|remote F full name S sender
//   [A encoding=] [A trace_flags=] [V delimiters] ([A notify_flags=] R rcpt)*
//   M  N/L text records (the message from standard input)
//   X  ([A notify_flags=] R recipient)* (those from the headers, -t)  E
//
// postdrop first answers {protocol=postdrop_protocol, queue_id=ID} and,
// after E, {status=N, reason=}.
// Each command-line argument is parsed as an address list ("Bob <bob>",
// "a, b"); with -t the To/Cc/Bcc headers (or, when there is any Resent-
// header, the Resent-To/Cc/Bcc headers) add recipients.  Every failure is
// fatal with Postfix's message.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace mta::sendmail {

inline constexpr int kFlagArchaicEof = 1 << 0;   // a line "." ends the input (not -i, -oi)
inline constexpr int kFlagExtractRcpt = 1 << 1;  // -t
// Delivery request trace flags (deliver_request.h), shifted as Postfix keeps them.
inline constexpr int kTraceUserVerify = 1 << 9;  // -bv
inline constexpr int kTraceRecord = 1 << 10;     // -v: mail a delivery report
inline constexpr int kTraceMask = (1 << 8) | kTraceUserVerify | kTraceRecord;

struct EnqueueRequest {
  int flags = kFlagArchaicEof;
  std::string encoding;         // -B: "7bit" or "8bit", or empty
  std::string dsn_envid;        // -V
  int dsn_notify = 0;           // -N
  std::string rewrite_context;  // "local", or "remote" with -G
  bool has_sender = false;      // -f / -r given
  std::string sender;           // as given
  bool has_full_name = false;   // -F given
  std::string full_name;
  std::string verp_delims;      // -XV
  std::vector<std::string> recipients;
  int verbose = 0;              // extra -v for postdrop
};

// Posts the message on standard input; returns only on success.
void enqueue(const config::Config& config, const EnqueueRequest& request);

// Logs "fatal: ..." and exits 75 (EX_TEMPFAIL): Postfix's sendmail names
// a sysexits code for each error, but its run-time cleanup handler turns
// every fatal error into EX_TEMPFAIL, and that is what callers see.
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline constexpr int kExitTempfail = 75;

}  // namespace mta::sendmail
