// rewrite_client.hpp: the client of trivial-rewrite's private/rewrite
// service (Postfix's rewrite_clnt and resolve_clnt): "rewrite" an address
// by rule ("local" or "remote"), and "resolve" an address to
// {transport, nexthop, recipient, flags}.
//
// Like Postfix's clients it keeps the connection open, retries until the
// service answers ("problem talking to service rewrite: ..."), and
// remembers the last answer of each kind (a one-entry cache: smtpd asks
// about the same recipient several times per RCPT).  RewriteService is the
// interface that callers hold, so that tests can answer without a daemon.
#pragma once

#include <string>
#include <string_view>

#include "ipc/service.hpp"

namespace mta::ipc {

struct ResolveResult {
  std::string transport;
  std::string nexthop;
  std::string recipient;
  int flags = 0;  // proto::kResolveFlag* and kResolveClass*
};

class RewriteService {
 public:
  virtual ~RewriteService() = default;
  // RULE is "local" or "remote".
  virtual std::string rewrite(std::string_view rule, std::string_view address) = 0;
  // The address in internal form; a service failure sets kResolveFlagFail.
  virtual ResolveResult resolve(std::string_view sender, std::string_view address) = 0;
};

class RewriteClient : public RewriteService {
 public:
  // queue_directory: where private/NAME lives ("." after the server
  // skeleton's chdir).
  explicit RewriteClient(std::string queue_directory = ".", std::string service = "rewrite");
  std::string rewrite(std::string_view rule, std::string_view address) override;
  ResolveResult resolve(std::string_view sender, std::string_view address) override;
  ServiceClient& connection() { return client_; }

 private:
  ServiceClient client_;
  bool have_rewrite_ = false;
  std::string last_rule_, last_rewrite_in_, last_rewrite_out_;
  bool have_resolve_ = false;
  std::string last_sender_, last_resolve_in_;
  ResolveResult last_resolve_out_;
};

}  // namespace mta::ipc
