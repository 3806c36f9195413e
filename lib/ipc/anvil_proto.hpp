// anvil_proto.hpp: the names of Postfix 3.7's anvil protocol (private/anvil,
// PLAIN form, see attr.hpp), as observed on the real anvil(8):
//
//   on accept:  protocol=anvil_protocol
//   request:    request=NAME  ident=SERVICE:CLIENT_ADDR      (in this order)
//   replies:    connect                      status=0 count=N rate=N
//               disconnect                   status=0
//               message recipient newtls
//               newtls_status auth           status=0 rate=N
//               lookup                       status=0 count rate mail rcpt
//                                            newtls auth
//               any other request name       status=4294967295 (-1)
//
// (anvil(8) calls newtls_status "newtls_report"; the real daemon answers
// that name with status -1.)
#pragma once

#include <string_view>

namespace mta::ipc::anvil_proto {

inline constexpr std::string_view kAttrRequest = "request";
inline constexpr std::string_view kAttrIdent = "ident";
inline constexpr std::string_view kAttrStatus = "status";
inline constexpr std::string_view kAttrCount = "count";
inline constexpr std::string_view kAttrRate = "rate";
inline constexpr std::string_view kAttrMail = "mail";
inline constexpr std::string_view kAttrRcpt = "rcpt";
inline constexpr std::string_view kAttrNewtls = "newtls";
inline constexpr std::string_view kAttrAuth = "auth";

inline constexpr std::string_view kReqConnect = "connect";
inline constexpr std::string_view kReqDisconnect = "disconnect";
inline constexpr std::string_view kReqMessage = "message";
inline constexpr std::string_view kReqRecipient = "recipient";
inline constexpr std::string_view kReqNewtls = "newtls";
inline constexpr std::string_view kReqNewtlsStatus = "newtls_status";
inline constexpr std::string_view kReqAuth = "auth";
inline constexpr std::string_view kReqLookup = "lookup";

inline constexpr int kStatusOk = 0;
inline constexpr int kStatusFail = -1;

}  // namespace mta::ipc::anvil_proto
