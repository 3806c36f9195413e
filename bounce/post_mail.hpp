// post_mail.hpp: submitting a new message through the cleanup service, as
// Postfix's post_mail_fopen_nowait()/post_mail_fclose() do for bounce(8).
//
// The conversation on public/cleanup (see ipc/attr.hpp):
//   server: {protocol=cleanup_protocol, queue_id=NEWID}
//   client: {flags=N}, then queue-file records:
//           T "sec usec", A log_message_origin=local, A trace_flags=N,
//           S sender, R recipient, M,
//           N "Received: by $myhostname ($mail_name)",
//           N "<tab>id NEWID; <date>", N "Date: <date>",
//           the content records, X, E
//   server: {status=N, reason=TEXT}; status 0 means the message is queued.
// cleanup adds the size record, Message-Id, and qualifies the addresses.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "bounce/dsn_report.hpp"

namespace mta::bounce {

// CLEANUP_FLAG_* (cleanup_user.h) that post_mail uses.
inline constexpr int kCleanupFlagFilter = 1 << 1;
inline constexpr int kCleanupFlagMapOk = 1 << 5;
inline constexpr int kCleanupFlagMilter = 1 << 6;
inline constexpr int kCleanupFlagSmtputf8 = 1 << 8;
inline constexpr int kCleanupFlagAutoUtf8 = 1 << 9;
inline constexpr int kCleanupStatWrite = 1 << 1;

struct PostSettings {
  std::string queue_directory = ".";  // the daemon runs in it (and may be chrooted there)
  std::string cleanup_service = "cleanup";
  std::string myhostname;
  std::string mail_name = "Postfix";
  int cleanup_flags = kCleanupFlagMapOk;  // without SMTPUTF8 (added per message)
  std::chrono::milliseconds timeout{std::chrono::seconds(3600)};  // ipc_timeout
};

// The envelope and leading headers of a posted message, as records
// (Received and Date need the queue ID that cleanup announced).
std::vector<ContentRecord> post_mail_head(const std::string& new_id, const std::string& myhostname,
                                          const std::string& mail_name, std::time_t now);

// Posts one message.  Returns cleanup's status (0: queued; the new queue ID
// in NEW_ID), or a non-zero status with a message in ERROR when cleanup
// could not be reached or the conversation failed.
int post_mail(const PostSettings& settings, const std::string& sender, const std::string& recipient,
              int smtputf8, int trace_flags, const std::vector<ContentRecord>& content, std::string* new_id,
              std::string* error);

}  // namespace mta::bounce
