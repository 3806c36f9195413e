// address_rewriting.cpp: see address_rewriting.hpp.
#include "cleanup/address_rewriting.hpp"

#include "ipc/mail_proto.hpp"
#include "log/log.hpp"

namespace mta::cleanup {

namespace {
ipc::ClientOptions rewrite_options() {
  ipc::ClientOptions o;
  o.protocol = std::string(ipc::proto::kProtoTrivialRewrite);
  return o;
}
}  // namespace

TrivialRewriteClient::TrivialRewriteClient(std::string service)
    : client_(".", std::string(ipc::proto::kClassPrivate), std::move(service), rewrite_options()) {}

std::string TrivialRewriteClient::rewrite(std::string_view rule, std::string_view address) {
  if (have_last_ && last_rule_ == rule && last_address_ == address) return last_result_;
  ipc::proto::RewriteRequest req;
  req.rule = std::string(rule);
  req.address = std::string(address);
  ipc::proto::RewriteReply reply;
  ipc::Status st = client_.call(req, reply);
  if (!st.ok()) {  // only with a retry limit; keep the address as it is
    log::warning("problem talking to service %s: %s", client_.name().c_str(), st.message().c_str());
    return std::string(address);
  }
  last_rule_ = std::string(rule);
  last_address_ = std::string(address);
  last_result_ = reply.address;
  have_last_ = true;
  log::debug("rewrite_clnt: %s: %.*s -> %s", last_rule_.c_str(), static_cast<int>(address.size()), address.data(),
             reply.address.c_str());
  return reply.address;
}

}  // namespace mta::cleanup
