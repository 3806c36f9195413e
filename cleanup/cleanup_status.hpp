// cleanup_status.hpp: the cleanup protocol's client flags and status codes
// (Postfix's cleanup_user.h), with their texts, SMTP codes and DSN codes.
//
// A client (pickup, smtpd, sendmail through postdrop) sends flags after the
// announcement; cleanup answers {status, reason} where status is a bit mask
// of the problems found and reason, when not empty, the text to pass on.
#pragma once

#include <string_view>

namespace mta::message {

namespace cleanup_flag {
inline constexpr int kBounce = 1 << 0;     // bounce bad messages (pickup)
inline constexpr int kFilter = 1 << 1;     // header/body checks
inline constexpr int kHold = 1 << 2;       // place on hold
inline constexpr int kDiscard = 1 << 3;    // discard silently
inline constexpr int kBccOk = 1 << 4;      // automatic BCC allowed
inline constexpr int kMapOk = 1 << 5;      // address mapping allowed
inline constexpr int kMilter = 1 << 6;     // Milter applications
inline constexpr int kSmtpReply = 1 << 7;  // reason is an SMTP reply
inline constexpr int kSmtputf8 = 1 << 8;
inline constexpr int kAutoUtf8 = 1 << 9;
inline constexpr int kFilterAll = kFilter | kMilter;
inline constexpr int kMaskExternal = kFilterAll | kBccOk | kMapOk;
inline constexpr int kMaskInternal = kMapOk;
inline constexpr int kMaskExtra = kHold | kDiscard;  // allowed in an 'f' record
}  // namespace cleanup_flag

namespace cleanup_stat {
inline constexpr int kOk = 0;
inline constexpr int kBad = 1 << 0;    // internal protocol error
inline constexpr int kWrite = 1 << 1;  // error writing the queue file
inline constexpr int kSize = 1 << 2;   // message file too big
inline constexpr int kCont = 1 << 3;   // content rejected
inline constexpr int kHops = 1 << 4;   // too many hops
inline constexpr int kRcpt = 1 << 6;   // no recipients
inline constexpr int kProxy = 1 << 7;
inline constexpr int kDefer = 1 << 8;   // temporary reject
inline constexpr int kNoPerm = 1 << 9;  // denied by policy
inline constexpr int kMaskCantBounce = kBad | kWrite | kDefer | kRcpt;
inline constexpr int kMaskIncomplete = kBad | kWrite | kSize | kDefer;
}  // namespace cleanup_stat

struct CleanupStatDetail {
  int status;
  int smtp;
  std::string_view dsn;
  std::string_view text;
};

// Postfix's input_transp_cleanup(): FLAGS minus what receive_override_options
// (its value as given) turns off: no_address_mappings, no_header_body_checks,
// no_milters.  Shared by the clients of cleanup (pickup, smtpd).
int input_transp_cleanup(int flags, std::string_view receive_override_options);

// The most severe problem in STATUS (Postfix lists them by severity).
const CleanupStatDetail& cleanup_stat_detail(int status);
inline std::string_view cleanup_strerror(int status) { return cleanup_stat_detail(status).text; }

}  // namespace mta::message
