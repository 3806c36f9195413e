// flush_proto.hpp: the names and status codes of Postfix 3.7's fast flush
// protocol (public/flush, the zero form of attr.hpp), as observed on the
// real flush(8):
//
//   on accept:  protocol=queue_flush_protocol
//   requests:   request=add site=SITE queue_id=ID
//               request=send_site site=SITE
//               request=send_file queue_id=ID
//               request=rfrsh          (refresh; answered first, done after)
//               request=purge          (refresh everything; likewise)
//   reply:      status=N               (the codes below)
//
// A short request (at most two bytes, master's wakeup "W" with or without
// its NUL) is a refresh; the reply is still {status=0}.  An unknown request
// name gets no reply at all (the connection is closed); a list that cannot
// be read, a missing attribute or a malformed queue ID gets status=3.
#pragma once

#include <string_view>

namespace mta::ipc::flush_proto {

inline constexpr std::string_view kAttrRequest = "request";
inline constexpr std::string_view kAttrSite = "site";
inline constexpr std::string_view kAttrQueueId = "queue_id";
inline constexpr std::string_view kAttrStatus = "status";

inline constexpr std::string_view kReqAdd = "add";
inline constexpr std::string_view kReqSendSite = "send_site";
inline constexpr std::string_view kReqSendFile = "send_file";
inline constexpr std::string_view kReqRefresh = "rfrsh";
inline constexpr std::string_view kReqPurge = "purge";

// flush_clnt.h's FLUSH_STAT_*.
inline constexpr int kStatFail = -1;  // the request failed (service down, table error)
inline constexpr int kStatOk = 0;     // done (or nothing to do)
inline constexpr int kStatBad = 3;    // malformed request or parameter
inline constexpr int kStatDeny = 4;   // the site is not in fast_flush_domains

}  // namespace mta::ipc::flush_proto
