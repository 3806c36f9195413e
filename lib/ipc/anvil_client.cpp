// anvil_client.cpp: requests to the anvil service over one persistent
// PLAIN-form connection.
#include "ipc/anvil_client.hpp"

#include <chrono>
#include <limits>
#include <optional>

#include "ipc/anvil_proto.hpp"
#include "ipc/mail_proto.hpp"
#include "log/log.hpp"

namespace mta::ipc {

namespace ap = anvil_proto;

namespace {

ClientOptions anvil_options(Millis timeout) {
  ClientOptions o;
  o.protocol = std::string(proto::kProtoAnvil);
  o.format = Format::plain;
  // One non-blocking connect per try, as auto_clnt; no 10-second waits.
  o.connect = {.timeout = timeout, .attempts = 1, .warn = false};
  // Never drop the connection for idleness or age (attr_clnt_create(...,
  // 0, 0)): anvil ties this process's connection count to it.  About a
  // century, well inside the range of the clock's nanoseconds.
  o.idle_limit = std::chrono::hours(24 * 365 * 100);
  o.ttl_limit = o.idle_limit;
  o.max_attempts = 2;
  // ATTR_FLAG_MISSING without ATTR_FLAG_STRICT: extra reply attributes are
  // skipped.
  o.read = {.strict = false};
  return o;
}

}  // namespace

AnvilClient::AnvilClient(std::string queue_directory, std::string service, Millis timeout)
    : client_(std::move(queue_directory), std::string(proto::kClassPrivate), std::move(service),
              anvil_options(timeout)) {}

std::string AnvilClient::ident(std::string_view service, std::string_view addr) {
  std::string id(service);
  id += ':';
  id += addr;
  return printable(id);
}

Status AnvilClient::request(const AttrList& req, AttrList& reply) {
  Status st = client_.call(req, reply);
  // ServiceClient warned about failures after a connection; a connection
  // that was never made is ours to report.
  if (st.code() == Errc::connect) log::warning("%s", st.message().c_str());
  return st;
}

bool AnvilClient::call(std::string_view request_name, std::string_view service, std::string_view addr,
                       std::initializer_list<std::pair<std::string_view, int*>> wanted) {
  AttrList req;
  req.add(std::string(ap::kAttrRequest), std::string(request_name));
  req.add(std::string(ap::kAttrIdent), ident(service, addr));
  AttrList reply;
  if (!request(req, reply)) return false;
  // INT values are unsigned on the wire: "4294967295" is -1.
  auto number = [&](std::string_view name, int& out) {
    std::optional<uint64_t> v = reply.number(name);
    if (!v || *v > std::numeric_limits<uint32_t>::max()) return false;
    out = static_cast<int>(static_cast<uint32_t>(*v));
    return true;
  };
  int status = ap::kStatusFail;
  if (!number(ap::kAttrStatus, status) || status != ap::kStatusOk) return false;
  for (const auto& [name, out] : wanted)
    if (!number(name, *out)) return false;
  return true;
}

bool AnvilClient::connect(std::string_view service, std::string_view addr, int& count, int& rate) {
  return call(ap::kReqConnect, service, addr, {{ap::kAttrCount, &count}, {ap::kAttrRate, &rate}});
}

bool AnvilClient::disconnect(std::string_view service, std::string_view addr) {
  return call(ap::kReqDisconnect, service, addr, {});
}

bool AnvilClient::message(std::string_view service, std::string_view addr, int& rate) {
  return call(ap::kReqMessage, service, addr, {{ap::kAttrRate, &rate}});
}

bool AnvilClient::recipient(std::string_view service, std::string_view addr, int& rate) {
  return call(ap::kReqRecipient, service, addr, {{ap::kAttrRate, &rate}});
}

bool AnvilClient::newtls(std::string_view service, std::string_view addr, int& rate) {
  return call(ap::kReqNewtls, service, addr, {{ap::kAttrRate, &rate}});
}

bool AnvilClient::newtls_status(std::string_view service, std::string_view addr, int& rate) {
  return call(ap::kReqNewtlsStatus, service, addr, {{ap::kAttrRate, &rate}});
}

bool AnvilClient::auth(std::string_view service, std::string_view addr, int& rate) {
  return call(ap::kReqAuth, service, addr, {{ap::kAttrRate, &rate}});
}

bool AnvilClient::lookup(std::string_view service, std::string_view addr, AnvilCounts& counts) {
  return call(ap::kReqLookup, service, addr,
              {{ap::kAttrCount, &counts.count},
               {ap::kAttrRate, &counts.rate},
               {ap::kAttrMail, &counts.mail},
               {ap::kAttrRcpt, &counts.rcpt},
               {ap::kAttrNewtls, &counts.newtls},
               {ap::kAttrAuth, &counts.auth}});
}

}  // namespace mta::ipc
