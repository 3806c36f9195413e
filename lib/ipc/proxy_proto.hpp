// proxy_proto.hpp: the proxymap(8) protocol of Postfix 3.7, shared by the
// proxy: table client (dict_proxy.hpp) and our proxymap daemon.
//
// Sockets: private/proxymap (read-only service) and private/proxywrite
// (read-write), relative to the queue directory.  On accept the server
// announces {protocol=proxymap_protocol} (zero form); then, one request at
// a time (observed on the real 3.7 daemon):
//
//   {request=open, table=TYPE:NAME, flags=F}            -> {status, flags}
//   {request=lookup, table, flags=F, key}               -> {status, value}
//   {request=update, table, flags=F, key, value}        -> {status}
//   {request=delete, table, flags=F, key}               -> {status}
//   {request=sequence, table, flags=F, function=0|1}    -> {status, key, value}
//   anything else: warning "unrecognized request", reply {status=3}
//
// TABLE never starts with "proxy:" on the wire (the server strips any).
// F are Postfix's DICT_FLAG_* bits below: open sends the instance bits
// only; the other requests add the requestor bits (fold, lock, dup,
// paranoid, UTF-8).  The real postmap -q sends lookup flags 524353
// (UTF8_REQUEST|LOCK|DUP_WARN).  The open reply's flags are the server's
// table flags, of which the client keeps FIXED/PATTERN/MULTI_WRITER (the
// real daemon answers 28 for hash, 16 for unix, 32 for regexp and for a
// table that failed to open).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ipc/attr_schema.hpp"

namespace mta::ipc::proxy_proto {

inline constexpr std::string_view kReqOpen = "open";
inline constexpr std::string_view kReqLookup = "lookup";
inline constexpr std::string_view kReqUpdate = "update";
inline constexpr std::string_view kReqDelete = "delete";
inline constexpr std::string_view kReqSequence = "sequence";

inline constexpr std::string_view kAttrRequest = "request";
inline constexpr std::string_view kAttrTable = "table";
inline constexpr std::string_view kAttrFlags = "flags";
inline constexpr std::string_view kAttrKey = "key";
inline constexpr std::string_view kAttrValue = "value";
inline constexpr std::string_view kAttrStatus = "status";
inline constexpr std::string_view kAttrFunction = "function";

// Reply status (PROXY_STAT_*).
inline constexpr int kStatOk = 0;
inline constexpr int kStatNokey = 1;
inline constexpr int kStatRetry = 2;
inline constexpr int kStatBad = 3;
inline constexpr int kStatDeny = 4;
inline constexpr int kStatConfig = 5;

// Sequence functions (DICT_SEQ_FUN_*).
inline constexpr int kSeqFirst = 0;
inline constexpr int kSeqNext = 1;

// DICT_FLAG_* (Postfix 3.7 dict.h).
namespace flag {
inline constexpr uint32_t kDupWarn = 1u << 0;
inline constexpr uint32_t kDupIgnore = 1u << 1;
inline constexpr uint32_t kTry0Null = 1u << 2;
inline constexpr uint32_t kTry1Null = 1u << 3;
inline constexpr uint32_t kFixed = 1u << 4;
inline constexpr uint32_t kPattern = 1u << 5;
inline constexpr uint32_t kLock = 1u << 6;
inline constexpr uint32_t kDupReplace = 1u << 7;
inline constexpr uint32_t kSyncUpdate = 1u << 8;
inline constexpr uint32_t kDebug = 1u << 9;
inline constexpr uint32_t kNoRegsub = 1u << 11;
inline constexpr uint32_t kNoProxy = 1u << 12;
inline constexpr uint32_t kNoUnauth = 1u << 13;
inline constexpr uint32_t kFoldFix = 1u << 14;
inline constexpr uint32_t kFoldMul = 1u << 15;
inline constexpr uint32_t kOpenLock = 1u << 16;
inline constexpr uint32_t kBulkUpdate = 1u << 17;
inline constexpr uint32_t kMultiWriter = 1u << 18;
inline constexpr uint32_t kUtf8Request = 1u << 19;
inline constexpr uint32_t kUtf8Active = 1u << 20;

inline constexpr uint32_t kParanoid = kNoRegsub | kNoProxy | kNoUnauth;
// Set by the table implementation.
inline constexpr uint32_t kImplMask = kFixed | kPattern | kMultiWriter;
// Requestor properties, sent with every request.
inline constexpr uint32_t kRqstMask =
    kFoldFix | kFoldMul | kLock | kDupReplace | kDupWarn | kDupIgnore | kSyncUpdate | kParanoid | kUtf8Request;
// Everything else: one server-side table instance per distinct value.
inline constexpr uint32_t kInstMask = ~(kImplMask | kRqstMask);
}  // namespace flag

// ---- the messages (the server reads "request" first, then the arguments)

struct OpenArgs {
  std::string table;
  uint32_t flags = 0;
  static constexpr auto attr_schema() {
    return schema(field("table", &OpenArgs::table), field("flags", &OpenArgs::flags));
  }
};
struct LookupArgs {
  std::string table;
  uint32_t flags = 0;
  std::string key;
  static constexpr auto attr_schema() {
    return schema(field("table", &LookupArgs::table), field("flags", &LookupArgs::flags),
                  field("key", &LookupArgs::key));
  }
};
struct UpdateArgs {
  std::string table;
  uint32_t flags = 0;
  std::string key;
  std::string value;
  static constexpr auto attr_schema() {
    return schema(field("table", &UpdateArgs::table), field("flags", &UpdateArgs::flags),
                  field("key", &UpdateArgs::key), field("value", &UpdateArgs::value));
  }
};
using DeleteArgs = LookupArgs;  // table, flags, key
struct SequenceArgs {
  std::string table;
  uint32_t flags = 0;
  int function = kSeqFirst;
  static constexpr auto attr_schema() {
    return schema(field("table", &SequenceArgs::table), field("flags", &SequenceArgs::flags),
                  field("function", &SequenceArgs::function));
  }
};

struct OpenRequest : OpenArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqOpen), inherit<OpenArgs>()); }
};
struct LookupRequest : LookupArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqLookup), inherit<LookupArgs>()); }
};
struct UpdateRequest : UpdateArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqUpdate), inherit<UpdateArgs>()); }
};
struct DeleteRequest : DeleteArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqDelete), inherit<DeleteArgs>()); }
};
struct SequenceRequest : SequenceArgs {
  static constexpr auto attr_schema() {
    return schema(constant("request", kReqSequence), inherit<SequenceArgs>());
  }
};

struct OpenReply {
  int status = kStatBad;
  uint32_t flags = 0;
  static constexpr auto attr_schema() {
    return schema(field("status", &OpenReply::status), field("flags", &OpenReply::flags));
  }
};
struct LookupReply {
  int status = kStatBad;
  std::string value;
  static constexpr auto attr_schema() {
    return schema(field("status", &LookupReply::status), field("value", &LookupReply::value));
  }
};
struct StatusReply {  // update, delete, and an unrecognized request
  int status = kStatBad;
  static constexpr auto attr_schema() { return schema(field("status", &StatusReply::status)); }
};
struct SequenceReply {
  int status = kStatBad;
  std::string key;
  std::string value;
  static constexpr auto attr_schema() {
    return schema(field("status", &SequenceReply::status), field("key", &SequenceReply::key),
                  field("value", &SequenceReply::value));
  }
};

}  // namespace mta::ipc::proxy_proto
