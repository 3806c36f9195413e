// mail_proto.hpp: the names and messages of Postfix 3.7's internal
// services (Postfix's mail_proto.h and the per-service request code), as
// typed schemas.  The wire rules and the service table are in attr.hpp.
//
// Verified against the real Postfix 3.7 daemons: the announcements, the
// trivial-rewrite requests and replies, the showq listing, the delivery
// request that qmgr sends (captured from a real qmgr), the bounce append
// request, and the cleanup exchange (tests/integration/ipc_interop.sh).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/attr_schema.hpp"
#include "ipc/channel.hpp"

namespace mta::ipc::proto {

// ---- services (default master.cf names) and their classes

inline constexpr std::string_view kClassPublic = "public";
inline constexpr std::string_view kClassPrivate = "private";

inline constexpr std::string_view kServiceRewrite = "rewrite";  // trivial-rewrite: rewrite and resolve
inline constexpr std::string_view kServiceCleanup = "cleanup";  // public
inline constexpr std::string_view kServiceBounce = "bounce";
inline constexpr std::string_view kServiceDefer = "defer";
inline constexpr std::string_view kServiceTrace = "trace";
inline constexpr std::string_view kServiceShowq = "showq";  // public
inline constexpr std::string_view kServiceFlush = "flush";  // public
inline constexpr std::string_view kServicePickup = "pickup";  // public, trigger
inline constexpr std::string_view kServiceQmgr = "qmgr";      // public, trigger
inline constexpr std::string_view kServiceVerify = "verify";
inline constexpr std::string_view kServiceProxymap = "proxymap";
inline constexpr std::string_view kServiceProxywrite = "proxywrite";
inline constexpr std::string_view kServiceScache = "scache";
inline constexpr std::string_view kServiceTlsmgr = "tlsmgr";
inline constexpr std::string_view kServiceAnvil = "anvil";
inline constexpr std::string_view kServiceLocal = "local";
inline constexpr std::string_view kServiceSmtp = "smtp";
inline constexpr std::string_view kServiceRelay = "relay";
inline constexpr std::string_view kServiceError = "error";
inline constexpr std::string_view kServiceRetry = "retry";

// ---- protocol announcements ({protocol=NAME} on accept)

inline constexpr std::string_view kProtoTrivialRewrite = "trivial_rewrite_protocol";
inline constexpr std::string_view kProtoCleanup = "cleanup_protocol";
inline constexpr std::string_view kProtoDeliver = "delivery_request_protocol";
inline constexpr std::string_view kProtoBounce = "delivery_status_protocol";
inline constexpr std::string_view kProtoShowq = "mail_queue_list_protocol";
inline constexpr std::string_view kProtoFlush = "queue_flush_protocol";
inline constexpr std::string_view kProtoVerify = "address_verification_prrotocol";  // sic
inline constexpr std::string_view kProtoProxymap = "proxymap_protocol";
inline constexpr std::string_view kProtoScache = "connection_cache_protocol";
inline constexpr std::string_view kProtoTlsmgr = "tlsmgr_protocol";
inline constexpr std::string_view kProtoAnvil = "anvil_protocol";  // plain form
inline constexpr std::string_view kProtoTlsproxy = "tlsproxy_protocol";

// ---- attribute names used below

inline constexpr std::string_view kAttrProtocol = "protocol";
inline constexpr std::string_view kAttrRequest = "request";
inline constexpr std::string_view kAttrNRequest = "nrequest";
inline constexpr std::string_view kAttrStatus = "status";

// ---- triggers (one byte written to a trigger server's socket)

inline constexpr char kTriggerWakeup = 'W';
inline constexpr char kQmgrScanDeferred = 'D';
inline constexpr char kQmgrScanIncoming = 'I';
inline constexpr char kQmgrFlushDead = 'F';
inline constexpr char kQmgrScanAll = 'A';

// ---- generic pieces

// The name that leads a request: servers read it with ReadOptions::more and
// then the rest of the list according to it.
struct RequestName {
  std::string request;
  static constexpr auto attr_schema() { return schema(field("request", &RequestName::request)); }
};
// The numeric variant (bounce: nrequest=CMD).
struct RequestNumber {
  int nrequest = 0;
  static constexpr auto attr_schema() { return schema(field("nrequest", &RequestNumber::nrequest)); }
};
// {status=N}: the reply of bounce, flush, and mail_command_server().
struct StatusReply {
  int status = 0;
  static constexpr auto attr_schema() { return schema(field("status", &StatusReply::status)); }
};

// ---- trivial-rewrite (private/rewrite)

inline constexpr std::string_view kRewriteRequest = "rewrite";
inline constexpr std::string_view kResolveRequest = "resolve";
inline constexpr std::string_view kVerifyRequest = "verify";  // resolve for address verification
inline constexpr std::string_view kRewriteLocal = "local";
inline constexpr std::string_view kRewriteRemote = "remote";

struct RewriteArgs {
  std::string rule;  // "local" or "remote"
  std::string address;
  static constexpr auto attr_schema() {
    return schema(field("rule", &RewriteArgs::rule), field("address", &RewriteArgs::address));
  }
};
// {request=rewrite, rule, address}
struct RewriteRequest : RewriteArgs {
  static constexpr auto attr_schema() { return schema(constant("request", kRewriteRequest), inherit<RewriteArgs>()); }
};
struct RewriteReply {
  int flags = 0;  // server flags: non-zero asks the client to reconnect
  std::string address;
  static constexpr auto attr_schema() {
    return schema(field("flags", &RewriteReply::flags), field("address", &RewriteReply::address));
  }
};

struct ResolveArgs {
  std::string sender;
  std::string address;
  static constexpr auto attr_schema() {
    return schema(field("sender", &ResolveArgs::sender), field("address", &ResolveArgs::address));
  }
};
// {request=resolve|verify, sender, address}
struct ResolveRequest : ResolveArgs {
  std::string request{kResolveRequest};
  static constexpr auto attr_schema() {
    return schema(field("request", &ResolveRequest::request), inherit<ResolveArgs>());
  }
};

// Resolve flags (resolve_clnt.h).
inline constexpr int kResolveFlagFinal = 1 << 0;   // final delivery
inline constexpr int kResolveFlagRouted = 1 << 1;  // routed by relayhost or transport
inline constexpr int kResolveFlagError = 1 << 2;   // bad address syntax
inline constexpr int kResolveFlagFail = 1 << 3;    // request failed (table error)
inline constexpr int kResolveClassLocal = 1 << 8;
inline constexpr int kResolveClassAlias = 1 << 9;
inline constexpr int kResolveClassVirtual = 1 << 10;
inline constexpr int kResolveClassRelay = 1 << 11;
inline constexpr int kResolveClassDefault = 1 << 12;

// {flags, transport, nexthop, recipient, flags}: "flags" twice, the server
// flags first and the address class and status bits last.
struct ResolveReply {
  int server_flags = 0;
  std::string transport;
  std::string nexthop;
  std::string recipient;
  int flags = 0;
  static constexpr auto attr_schema() {
    return schema(field("flags", &ResolveReply::server_flags), field("transport", &ResolveReply::transport),
                  field("nexthop", &ResolveReply::nexthop), field("recipient", &ResolveReply::recipient),
                  field("flags", &ResolveReply::flags));
  }
};

// ---- DSN, recipient, message statistics (dsn_print, rcpt_print, msg_stats_print)

struct Dsn {
  std::string status;  // "4.0.0"
  std::string dtype;   // diagnostic type, e.g. "smtp"
  std::string dtext;
  std::string mtype;   // remote MTA type, e.g. "dns"
  std::string mname;
  std::string action;  // "failed", "delayed", ...
  std::string reason;
  static constexpr auto attr_schema() {
    return schema(field("status", &Dsn::status), field("diag_type", &Dsn::dtype), field("diag_text", &Dsn::dtext),
                  field("mta_type", &Dsn::mtype), field("mta_mname", &Dsn::mname), field("action", &Dsn::action),
                  field("reason", &Dsn::reason));
  }
};

struct Recipient {
  std::string orig_addr;
  std::string address;
  long offset = 0;        // of the recipient record in the queue file
  std::string dsn_orcpt;  // "rfc822;user@example.com"
  int dsn_notify = 0;
  static constexpr auto attr_schema() {
    return schema(field("original_recipient", &Recipient::orig_addr), field("recipient", &Recipient::address),
                  field("offset", &Recipient::offset), field("dsn_orig_rcpt", &Recipient::dsn_orcpt),
                  field("notify_flags", &Recipient::dsn_notify));
  }
};

// MSG_STATS, sent whole as DATA "time": Postfix copies the C struct, so
// this is its LP64 layout (5 timevals, an int, padding: 88 bytes).
struct MsgStats {
  struct Time {
    int64_t sec = 0;
    int64_t usec = 0;
    bool operator==(const Time&) const = default;
  };
  Time incoming_arrival;
  Time active_arrival;
  Time agent_handoff;
  Time conn_setup_done;
  Time deliver_done;
  int32_t reuse_count = 0;

  static constexpr size_t kWireSize = 88;
  std::string to_attr_data() const;
  bool from_attr_data(std::string_view bytes);
  bool operator==(const MsgStats&) const = default;
};

// ---- delivery agents (private/TRANSPORT; qmgr is the client)

// The first list of a delivery request; recipient_count lists follow, one
// Recipient each.  deliver_request.cpp reads and writes the whole request.
struct DeliverRequest {
  int flags = 0;  // DEL_REQ_FLAG_*
  std::string queue_name;
  std::string queue_id;
  long data_offset = 0;
  long data_size = 0;
  std::string nexthop;
  std::string encoding;
  int smtputf8 = 0;
  std::string sender;
  std::string dsn_envid;
  int dsn_ret = 0;
  MsgStats stats;
  std::string client_name;
  std::string client_addr;
  std::string client_port;
  std::string client_proto;
  std::string client_helo;
  std::string sasl_method;
  std::string sasl_username;
  std::string sasl_sender;
  std::string log_ident;
  std::string rewrite_context;
  int recipient_count = 0;
  std::vector<Recipient> recipients;  // not part of the first list

  static constexpr auto attr_schema() {
    using R = DeliverRequest;
    return schema(field("flags", &R::flags), field("queue_name", &R::queue_name), field("queue_id", &R::queue_id),
                  field("offset", &R::data_offset), field("size", &R::data_size), field("nexthop", &R::nexthop),
                  field("encoding", &R::encoding), field("smtputf8", &R::smtputf8), field("sender", &R::sender),
                  field("envelope_id", &R::dsn_envid), field("ret_flags", &R::dsn_ret), field("time", &R::stats),
                  field("log_client_name", &R::client_name), field("log_client_address", &R::client_addr),
                  field("log_client_port", &R::client_port), field("log_protocol_name", &R::client_proto),
                  field("log_helo_name", &R::client_helo), field("sasl_method", &R::sasl_method),
                  field("sasl_username", &R::sasl_username), field("sasl_sender", &R::sasl_sender),
                  field("log_ident", &R::log_ident), field("rewrite_context", &R::rewrite_context),
                  field("recipient_count", &R::recipient_count));
  }
};

// Delivery request flags (deliver_request.h).
inline constexpr int kDelReqFlagSuccess = 1 << 0;  // delete successful recipients
inline constexpr int kDelReqFlagBounce = 1 << 1;   // delete bounced recipients
inline constexpr int kDelReqFlagMtaVrfy = 1 << 8;  // MTA-requested address probe
inline constexpr int kDelReqFlagUserVrfy = 1 << 9; // user-requested address probe
inline constexpr int kDelReqFlagRecordDelivery = 1 << 10;
inline constexpr int kDelReqFlagConnLoad = 1 << 11;   // consult the on-demand connection cache
inline constexpr int kDelReqFlagConnStore = 1 << 12;  // update the on-demand connection cache
inline constexpr int kDelReqFlagConnMask = kDelReqFlagConnLoad | kDelReqFlagConnStore;

// The delivery agent's final reply: {DSN of the hop, status=N}.  Status 0:
// every recipient is finished (the real qmgr then removes the queue file);
// -1 (DEL_STAT_DEFER, sent as 4294967295): some recipient was deferred or
// the agent failed, and qmgr moves the message to the deferred queue.  A
// non-empty hop DSN makes qmgr defer the whole destination.
struct DeliverReply {
  Dsn hop_status;
  int status = 0;
  static constexpr auto attr_schema() {
    return schema(embed(&DeliverReply::hop_status), field("status", &DeliverReply::status));
  }
};

// Client (qmgr) side: after the announcement.  Server side: after announcing.
Status write_deliver_request(Channel& ch, const DeliverRequest& req);
Status read_deliver_request(Channel& ch, DeliverRequest& req, const ReadOptions& options = {});

// ---- bounce, defer, trace (private/bounce|defer|trace)

enum class BounceCommand : int { append = 0, flush = 1, warn = 2, verp = 3, one = 4, trace = 5 };
inline constexpr int kBounceFlagNone = 0;
inline constexpr int kBounceFlagClean = 1 << 0;    // remove the log on error
inline constexpr int kBounceFlagDelrcpt = 1 << 1;  // delete the recipient from the queue file

// After {nrequest=0}: append a recipient's status to the bounce/defer/trace log.
struct BounceAppendArgs {
  int flags = 0;
  std::string queue_id;
  Recipient rcpt;
  Dsn dsn;
  static constexpr auto attr_schema() {
    using B = BounceAppendArgs;
    return schema(field("flags", &B::flags), field("queue_id", &B::queue_id), embed(&B::rcpt), embed(&B::dsn));
  }
};
struct BounceAppendRequest : BounceAppendArgs {
  static constexpr auto attr_schema() { return schema(constant("nrequest", "0"), inherit<BounceAppendArgs>()); }
};

// After {nrequest=1|2|5} (flush, warn, trace): send the notification.
struct BounceNotifyArgs {
  int flags = 0;
  std::string queue_name;
  std::string queue_id;
  std::string encoding;
  int smtputf8 = 0;
  std::string sender;
  std::string dsn_envid;
  int dsn_ret = 0;
  static constexpr auto attr_schema() {
    using B = BounceNotifyArgs;
    return schema(field("flags", &B::flags), field("queue_name", &B::queue_name), field("queue_id", &B::queue_id),
                  field("encoding", &B::encoding), field("smtputf8", &B::smtputf8), field("sender", &B::sender),
                  field("envelope_id", &B::dsn_envid), field("ret_flags", &B::dsn_ret));
  }
};
struct BounceNotifyRequest : BounceNotifyArgs {
  BounceCommand command = BounceCommand::flush;
  static constexpr auto attr_schema() {
    return schema(field("nrequest", &BounceNotifyRequest::command), inherit<BounceNotifyArgs>());
  }
};
// nrequest=3 adds verp_delimiters; nrequest=4 (one recipient) adds a
// Recipient and a Dsn to the notify arguments.
struct BounceVerpArgs : BounceNotifyArgs {
  std::string verp_delims;
  static constexpr auto attr_schema() {
    return schema(inherit<BounceNotifyArgs>(), field("verp_delimiters", &BounceVerpArgs::verp_delims));
  }
};
struct BounceVerpRequest : BounceVerpArgs {
  static constexpr auto attr_schema() { return schema(constant("nrequest", "3"), inherit<BounceVerpArgs>()); }
};
struct BounceOneArgs : BounceNotifyArgs {
  Recipient rcpt;
  Dsn dsn;
  static constexpr auto attr_schema() {
    return schema(inherit<BounceNotifyArgs>(), embed(&BounceOneArgs::rcpt), embed(&BounceOneArgs::dsn));
  }
};

// ---- cleanup (public/cleanup)

// The server's first list: {protocol=cleanup_protocol, queue_id=ID}.
struct CleanupHello {
  std::string queue_id;
  static constexpr auto attr_schema() {
    return schema(constant("protocol", kProtoCleanup), field("queue_id", &CleanupHello::queue_id));
  }
};
// Cleanup client flags (cleanup_user.h).
inline constexpr int kCleanupFlagBounce = 1 << 0;     // bounce bad messages
inline constexpr int kCleanupFlagFilter = 1 << 1;     // header/body checks
inline constexpr int kCleanupFlagHold = 1 << 2;       // place the message on hold
inline constexpr int kCleanupFlagDiscard = 1 << 3;    // discard silently
inline constexpr int kCleanupFlagBccOk = 1 << 4;      // auto-BCC allowed
inline constexpr int kCleanupFlagMapOk = 1 << 5;      // address mapping allowed
inline constexpr int kCleanupFlagMilter = 1 << 6;     // Milter applications
inline constexpr int kCleanupFlagSmtpReply = 1 << 7;  // reason is an SMTP reply

// The client's answer, {flags=N} (CLEANUP_FLAG_*); queue-file records follow.
struct CleanupOpen {
  int flags = 0;
  static constexpr auto attr_schema() { return schema(field("flags", &CleanupOpen::flags)); }
};
// Ours only: after the reply, a client of ours may ask for another message
// on the same connection with {request=next_message}; cleanup answers with
// a new CleanupHello (a new queue file), and the conversation goes on as on
// a new connection.  Postfix's clients close instead, and ours fall back to
// a new connection when cleanup closes (max_use, a reload, max_idle).
inline constexpr std::string_view kCleanupNextMessage = "next_message";
struct CleanupNext {
  static constexpr auto attr_schema() { return schema(constant("request", kCleanupNextMessage)); }
};
// After the END record: {status=N (CLEANUP_STAT_*, 0 accepted), reason=TEXT}.
struct CleanupReply {
  int status = 0;
  std::string reason;
  static constexpr auto attr_schema() {
    return schema(field("status", &CleanupReply::status), field("reason", &CleanupReply::reason));
  }
};

// ---- showq (public/showq)

struct ShowqRecipient {
  std::string address;
  std::string reason;  // empty unless the defer log has one
  static constexpr auto attr_schema() {
    return schema(field("recipient", &ShowqRecipient::address), field("reason", &ShowqRecipient::reason));
  }
};
struct ShowqMessage {
  std::string queue_name;  // maildrop, active, incoming, deferred, hold
  std::string queue_id;
  long arrival_time = 0;
  long size = 0;
  int forced_expire = 0;
  std::string sender;  // quoted, printable; empty_address_recipient for <>
  std::vector<ShowqRecipient> recipients;
  static constexpr auto attr_schema() {
    using M = ShowqMessage;
    return schema(field("queue_name", &M::queue_name), field("queue_id", &M::queue_id),
                  field("time", &M::arrival_time), field("size", &M::size),
                  field("forced_expire", &M::forced_expire), field("sender", &M::sender));
  }
};

// Server side, after the announcement: each message as one list, then
// write_showq_end() (a lone terminator).
Status write_showq_message(Channel& ch, const ShowqMessage& msg);
Status write_showq_end(Channel& ch);
// Client side, after expect_announcement(kProtoShowq): the whole listing.
// Strict and printable, as postqueue reads it.
Status read_showq_listing(Channel& ch, std::vector<ShowqMessage>& out);

}  // namespace mta::ipc::proto
