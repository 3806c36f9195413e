// rewrite_client.cpp: trivial-rewrite's rewrite and resolve requests; see
// rewrite_client.hpp.
#include "ipc/rewrite_client.hpp"

#include "ipc/mail_proto.hpp"
#include "log/log.hpp"

namespace mta::ipc {
namespace {

ClientOptions rewrite_options() {
  ClientOptions o;
  o.protocol = std::string(proto::kProtoTrivialRewrite);
  return o;
}

}  // namespace

RewriteClient::RewriteClient(std::string queue_directory, std::string service)
    : client_(std::move(queue_directory), std::string(proto::kClassPrivate), std::move(service), rewrite_options()) {}

std::string RewriteClient::rewrite(std::string_view rule, std::string_view address) {
  if (const std::string* known = rewrites_.find(rule, address)) return *known;
  proto::RewriteRequest req;
  req.rule = std::string(rule);
  req.address = std::string(address);
  proto::RewriteReply reply;
  Status st = client_.call(req, reply);
  if (!st.ok()) {  // only with a retry limit; keep the address as it is
    log::warning("problem talking to service %s: %s", client_.name().c_str(), st.message().c_str());
    return std::string(address);
  }
  rewrites_.remember(rule, address, reply.address);
  log::debug("rewrite_clnt: %s: %.*s -> %s", req.rule.c_str(), static_cast<int>(address.size()), address.data(),
             reply.address.c_str());
  return reply.address;
}

ResolveResult RewriteClient::resolve(std::string_view sender, std::string_view address) {
  if (const ResolveResult* known = resolves_.find(sender, address)) return *known;
  proto::ResolveRequest req;
  req.sender = std::string(sender);
  req.address = std::string(address);
  proto::ResolveReply reply;
  Status st = client_.call(req, reply);
  ResolveResult out;
  if (!st.ok()) {
    log::warning("problem talking to service %s: %s", client_.name().c_str(), st.message().c_str());
    out.flags = proto::kResolveFlagFail;
    return out;  // not cached: the next call tries again
  }
  out.transport = reply.transport;
  out.nexthop = reply.nexthop;
  out.recipient = reply.recipient;
  out.flags = reply.flags;
  log::debug("resolve_clnt: `%s' %.*s -> `%s' `%s' `%s' %d", req.sender.c_str(), static_cast<int>(address.size()),
             address.data(), out.transport.c_str(), out.nexthop.c_str(), out.recipient.c_str(), out.flags);
  if (!(out.flags & proto::kResolveFlagFail)) {
    resolves_.remember(sender, address, out);
  }
  return out;
}

}  // namespace mta::ipc
