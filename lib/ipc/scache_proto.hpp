// scache_proto.hpp: the connection cache protocol (Postfix 3.7's scache(8)
// and its client, scache_clnt.c), as typed messages.
//
// After the server's {protocol=connection_cache_protocol}, each request is
// one list that starts with request=NAME:
//
//   {request=save_dest, ttl, label=DEST, property=DEST_PROP, label=ENDP}
//       -> {status}
//   {request=save_endp, ttl, label=ENDP, property=ENDP_PROP}
//       <- {dummy=""}   -> the descriptor   <- {status}
//   {request=find_dest, label=DEST}
//       -> {status, property=DEST_PROP, property=ENDP_PROP}
//   {request=find_endp, label=ENDP}
//       -> {status, property=ENDP_PROP}
//   and when a find succeeds (status 0):
//       <- {dummy=""}   -> the descriptor   <- {dummy=""}
//
// ("<-" client to server.)  The dummy lists are Postfix's
// CANT_WRITE_BEFORE_SENDING_FD and MUST_READ_AFTER_SENDING_FD hand-shakes,
// which its sys_defs.h turns on for every system: nothing else is written
// on the socket while a descriptor is in flight, and the sender does not
// close its copy before the receiver has it.  The descriptor goes as
// Stream::send_fd()/recv_fd() (one byte with SCM_RIGHTS).
//
// Labels and properties are opaque to the server: a destination label is
// bound to an endpoint label with a time to live; an endpoint label holds
// any number of connections, each with its properties and time to live;
// the server caps every ttl at connection_cache_ttl_limit.
#pragma once

#include <string>
#include <string_view>

#include "ipc/attr_schema.hpp"

namespace mta::ipc::scache {

inline constexpr std::string_view kReqSaveDest = "save_dest";
inline constexpr std::string_view kReqFindDest = "find_dest";
inline constexpr std::string_view kReqSaveEndp = "save_endp";
inline constexpr std::string_view kReqFindEndp = "find_endp";

// SCACHE_STAT_*.
inline constexpr int kStatusOk = 0;
inline constexpr int kStatusBad = 1;   // bad or missing request parameter
inline constexpr int kStatusFail = 2;  // not found, or no descriptor received

struct SaveDestArgs {
  int ttl = 0;
  std::string dest_label;
  std::string dest_prop;
  std::string endp_label;
  static constexpr auto attr_schema() {
    using A = SaveDestArgs;
    return schema(field("ttl", &A::ttl), field("label", &A::dest_label), field("property", &A::dest_prop),
                  field("label", &A::endp_label));
  }
};
struct SaveDestRequest : SaveDestArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqSaveDest), inherit<SaveDestArgs>()); }
};

struct SaveEndpArgs {
  int ttl = 0;
  std::string endp_label;
  std::string endp_prop;
  static constexpr auto attr_schema() {
    using A = SaveEndpArgs;
    return schema(field("ttl", &A::ttl), field("label", &A::endp_label), field("property", &A::endp_prop));
  }
};
struct SaveEndpRequest : SaveEndpArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqSaveEndp), inherit<SaveEndpArgs>()); }
};

struct FindArgs {
  std::string label;
  static constexpr auto attr_schema() { return schema(field("label", &FindArgs::label)); }
};
struct FindDestRequest : FindArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqFindDest), inherit<FindArgs>()); }
};
struct FindEndpRequest : FindArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kReqFindEndp), inherit<FindArgs>()); }
};

struct FindDestReply {
  int status = kStatusFail;
  std::string dest_prop;
  std::string endp_prop;
  static constexpr auto attr_schema() {
    using R = FindDestReply;
    return schema(field("status", &R::status), field("property", &R::dest_prop), field("property", &R::endp_prop));
  }
};
struct FindEndpReply {
  int status = kStatusFail;
  std::string endp_prop;
  static constexpr auto attr_schema() {
    return schema(field("status", &FindEndpReply::status), field("property", &FindEndpReply::endp_prop));
  }
};

// {dummy=""}: the hand-shake around a descriptor.
struct Dummy {
  std::string dummy;
  static constexpr auto attr_schema() { return schema(field("dummy", &Dummy::dummy)); }
};

}  // namespace mta::ipc::scache
