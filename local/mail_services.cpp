// mail_services.cpp: see mail_services.hpp.
#include "local/mail_services.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <ctime>

#include "address/address.hpp"
#include "local/local_settings.hpp"
#include "deliver/mail_copy.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

namespace mta::local {
namespace proto = ipc::proto;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- resolver

namespace {

ipc::ClientOptions rewrite_options(const Settings& s) {
  ipc::ClientOptions o;
  o.protocol = std::string(proto::kProtoTrivialRewrite);
  o.connect.timeout = std::chrono::seconds(s.ipc_timeout);
  return o;
}

}  // namespace

AddressResolver::AddressResolver(const Settings& settings)
    : client_(settings.queue_directory, std::string(proto::kClassPrivate), settings.rewrite_service,
              rewrite_options(settings)) {}

bool AddressResolver::rewrite_local(const std::string& external, std::string* out) {
  proto::RewriteRequest req;
  req.rule = std::string(proto::kRewriteLocal);
  req.address = external;
  proto::RewriteReply reply;
  if (ipc::Status st = client_.call(req, reply); !st) {
    log::warning("rewrite service: %s", st.message().c_str());
    return false;
  }
  *out = reply.address;
  return true;
}

bool AddressResolver::canonicalize_internal(const std::string& internal, std::string* out) {
  std::string external;
  if (!rewrite_local(address::to_external(internal).text, &external)) return false;
  *out = address::to_internal(external).text;
  return true;
}

ResolvedAddress AddressResolver::resolve(const std::string& internal) {
  ResolvedAddress r;
  proto::ResolveRequest req;
  req.sender = "";
  req.address = internal;
  proto::ResolveReply reply;
  if (ipc::Status st = client_.call(req, reply); !st) {
    log::warning("resolve service: %s", st.message().c_str());
    r.failed = true;
    return r;
  }
  r.failed = (reply.flags & proto::kResolveFlagFail) != 0;
  r.bad_syntax = (reply.flags & proto::kResolveFlagError) != 0;
  r.transport = reply.transport;
  r.nexthop = reply.nexthop;
  r.recipient = reply.recipient;
  return r;
}

// ---------------------------------------------------------------- mail_date

std::string mail_date(time_t when) {
  struct tm lt {};
  struct tm gmt {};
  ::localtime_r(&when, &lt);
  ::gmtime_r(&when, &gmt);
  // The offset from UTC, as mail_date() computes it (no tm_gmtoff needed).
  long gmtoff = (lt.tm_hour - gmt.tm_hour) * 60L + (lt.tm_min - gmt.tm_min);
  if (lt.tm_year < gmt.tm_year)
    gmtoff -= 24 * 60;
  else if (lt.tm_year > gmt.tm_year)
    gmtoff += 24 * 60;
  else if (lt.tm_yday < gmt.tm_yday)
    gmtoff -= 24 * 60;
  else if (lt.tm_yday > gmt.tm_yday)
    gmtoff += 24 * 60;
  if (lt.tm_sec <= gmt.tm_sec - 60) gmtoff -= 1;
  else if (lt.tm_sec >= gmt.tm_sec + 60) gmtoff += 1;
  char head[64];
  std::strftime(head, sizeof head, "%a, %e %b %Y %H:%M:%S ", &lt);
  char zone[16];
  long abs_off = gmtoff < 0 ? -gmtoff : gmtoff;
  std::snprintf(zone, sizeof zone, "%c%02ld%02ld", gmtoff < 0 ? '-' : '+', abs_off / 60, abs_off % 60);
  char name[64];
  std::strftime(name, sizeof name, " (%Z)", &lt);
  return std::string(head) + zone + name;
}

// ---------------------------------------------------------------- forwarding

// cleanup_user.h: bounce bad messages ourselves (CLEANUP_FLAG_BOUNCE), and
// let cleanup map addresses (CLEANUP_FLAG_MASK_INTERNAL = MAP_OK).
constexpr int kCleanupFlagBounce = 1 << 0;
constexpr int kCleanupFlagMapOk = 1 << 5;
constexpr int kCleanupFlagSmtputf8 = 1 << 8;
constexpr int kSmtputf8Requested = 1 << 0;

Forwarder::Forwarder(const Settings& settings, ForwardSource source)
    : settings_(settings), source_(std::move(source)) {}

Forwarder::~Forwarder() = default;

namespace {

void put_record(ipc::Channel& ch, char type, std::string_view payload) {
  (void)ch.stream().write(queue::encode_record(type, payload));
}

}  // namespace

std::unique_ptr<Forwarder::Pending> Forwarder::open(const std::string& sender) {
  auto p = std::make_unique<Pending>();
  ipc::ConnectOptions opts;
  opts.timeout = std::chrono::seconds(settings_.ipc_timeout);
  if (ipc::Status st = ipc::connect_service(p->channel, settings_.queue_directory, proto::kClassPublic,
                                            settings_.cleanup_service, opts);
      !st) {
    log::warning("%s", st.message().c_str());
    return nullptr;
  }
  proto::CleanupHello hello;
  if (ipc::Status st = p->channel.read(hello); !st) {
    log::warning("%s", st.message().c_str());
    return nullptr;
  }
  p->queue_id = hello.queue_id;
  ::gettimeofday(&p->posted, nullptr);
  const proto::DeliverRequest& req = *source_.request;
  proto::CleanupOpen flags;
  flags.flags = kCleanupFlagBounce | kCleanupFlagMapOk | ((req.smtputf8 & kSmtputf8Requested) ? kCleanupFlagSmtputf8 : 0);
  if (ipc::Status st = p->channel.write(flags); !st) return nullptr;
  ipc::Channel& ch = p->channel;
  put_record(ch, queue::rec::kTime, queue::format_time_record(p->posted));
  put_record(ch, queue::rec::kFrom, sender);
  if (req.dsn_ret) put_record(ch, queue::rec::kAttr, "ret_flags=" + std::to_string(req.dsn_ret));
  if (!req.dsn_envid.empty()) put_record(ch, queue::rec::kAttr, "envelope_id=" + req.dsn_envid);
  auto pass = [&](std::string_view name, const std::string& value) {
    if (!value.empty()) put_record(ch, queue::rec::kAttr, std::string(name) + "=" + value);
  };
  pass("log_client_name", req.client_name);
  pass("log_client_address", req.client_addr);
  pass("log_protocol_name", req.client_proto);
  pass("log_helo_name", req.client_helo);
  pass("sasl_method", req.sasl_method);
  pass("sasl_username", req.sasl_username);
  pass("sasl_sender", req.sasl_sender);
  pass("log_ident", req.log_ident);
  pass("rewrite_context", req.rewrite_context);
  if (ch.stream().failed()) return nullptr;
  return p;
}

bool Forwarder::append(const std::string& delivered, const std::string& sender, const proto::Recipient& rcpt) {
  auto key = std::make_pair(delivered, sender);
  auto it = pending_.find(key);
  if (it == pending_.end()) {
    auto p = open(sender);
    if (!p) return false;
    it = pending_.emplace(key, std::move(p)).first;
  }
  ipc::Channel& ch = it->second->channel;
  if (!rcpt.dsn_orcpt.empty()) put_record(ch, queue::rec::kAttr, "dsn_orig_rcpt=" + rcpt.dsn_orcpt);
  if (rcpt.dsn_notify) put_record(ch, queue::rec::kAttr, "notify_flags=" + std::to_string(rcpt.dsn_notify));
  if (!rcpt.orig_addr.empty()) put_record(ch, queue::rec::kOrigRcpt, rcpt.orig_addr);
  put_record(ch, queue::rec::kRcpt, rcpt.address);
  return !ch.stream().failed();
}

int Forwarder::send(Pending& p, const std::string& delivered) {
  ipc::Channel& ch = p.channel;
  put_record(ch, queue::rec::kMessage, "");
  put_record(ch, queue::rec::kNorm, "Received: by " + settings_.myhostname + " (" + settings_.mail_name + ")");
  put_record(ch, queue::rec::kNorm, "\tid " + p.queue_id + "; " + mail_date(p.posted.tv_sec));
  if (settings_.delivered_hdr_mask & kDeliveredHdrForward) {
    std::string lower = delivered;
    for (char& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    put_record(ch, queue::rec::kNorm, "Delivered-To: " + lower);
  }
  queue::RecordReader in(source_.queue_fd, source_.queue_path);
  in.seek(source_.data_offset);
  queue::Record rec;
  for (;;) {
    queue::ReadStatus st = in.next(rec);
    if (st != queue::ReadStatus::ok || (rec.type != queue::rec::kNorm && rec.type != queue::rec::kCont)) {
      if (st == queue::ReadStatus::ok && rec.type == queue::rec::kExtracted) break;
      log::warning("%s: bad record type: %d in message content", p.queue_id.c_str(),
                   st == queue::ReadStatus::ok ? static_cast<int>(static_cast<unsigned char>(rec.type)) : 0);
      (void)::fchmod(source_.queue_fd, 0400);
      return -1;
    }
    put_record(ch, rec.type, rec.data);
    if (ch.stream().failed()) return -1;
  }
  put_record(ch, queue::rec::kExtracted, "");
  put_record(ch, queue::rec::kEnd, "");
  proto::CleanupReply reply;
  if (ipc::Status st = ch.flush(); !st) return -1;
  if (ipc::Status st = ch.read(reply); !st) {
    log::warning("%s", st.message().c_str());
    return -1;
  }
  return reply.status == 0 ? 0 : -1;
}

int Forwarder::finish(StatusReporter& reporter, int flags, const proto::Recipient& top, int cancel) {
  int status = cancel;
  for (auto& [key, p] : pending_) {
    if (status == 0) status |= send(*p, key.first);
    if (status == 0) {
      proto::Recipient r = top;
      r.dsn_notify = r.dsn_notify == kDsnNotifySuccess ? kDsnNotifyNever : (r.dsn_notify & ~kDsnNotifySuccess);
      Dsn dsn = Dsn::simple("2.0.0", "forwarded as " + p->queue_id);
      dsn.action = "relayed";
      status = reporter.sent(flags, r, dsn);
    }
    p->channel.close();
  }
  pending_.clear();
  return status;
}

// ---------------------------------------------------------------- deliver_pass

int deliver_pass(const Settings& settings, StatusReporter& reporter, const proto::DeliverRequest& request,
                 const std::string& transport_spec, const proto::Recipient& rcpt, int flags) {
  std::string transport = transport_spec, nexthop;
  if (size_t colon = transport.find(':'); colon != std::string::npos) {
    nexthop = transport.substr(colon + 1);
    transport.resize(colon);
  }
  if (nexthop.empty()) nexthop = request.nexthop;
  if (transport.empty()) log::fatal("missing transport name in \"%s\"", transport_spec.c_str());
  log::info("%s: passing <%s> to transport=%s", request.queue_id.c_str(), rcpt.address.c_str(), transport.c_str());

  auto unavailable = [&](const std::string& why) {
    log::warning("%s", why.c_str());
    return reporter.defer_append(flags, rcpt, Dsn::simple("4.3.0", "mail transport unavailable"));
  };
  ipc::Channel ch;
  ipc::ConnectOptions opts;
  opts.timeout = std::chrono::seconds(settings.ipc_timeout);
  opts.attempts = ipc::kConnectWaitAttempts;
  if (ipc::Status st = ipc::connect_service(ch, settings.queue_directory, proto::kClassPrivate, transport, opts); !st)
    return unavailable(st.message());
  if (ipc::Status st = ch.expect_announcement(proto::kProtoDeliver); !st) return unavailable(st.message());
  proto::DeliverRequest pass = request;
  pass.nexthop = nexthop;
  pass.recipients = {rcpt};
  if (ipc::Status st = proto::write_deliver_request(ch, pass); !st) return unavailable(st.message());
  proto::DeliverReply reply;
  if (ipc::Status st = ch.read(reply); !st) {
    log::warning("%s", st.message().c_str());
    return reporter.defer_append(flags, rcpt, Dsn::simple("4.3.0", "unknown mail transport error"));
  }
  return reply.status == 0 ? 0 : -1;
}

}  // namespace mta::local
