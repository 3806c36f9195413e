// address_rewriting.hpp: how cleanup changes addresses.
//
// Two steps, as in Postfix:
//   1. AddressRewriter: the trivial-rewrite "rewrite" request (rule "local"
//      or "remote": append_at_myorigin, append_dot_mydomain, swap_bangpath,
//      allow_percent_hack ...), on external (quoted) addresses.  The real
//      one asks private/rewrite; tests pass their own.
//   2. AddressMapper (address_mapping.hpp): the table-driven steps
//      (canonical_maps, sender/recipient_canonical_maps, masquerade_domains,
//      virtual alias expansion, sender/recipient_bcc_maps), only when the
//      client allows address mapping (CLEANUP_FLAG_MAP_OK) or automatic BCC
//      (CLEANUP_FLAG_BCC_OK).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/rewrite_client.hpp"

namespace mta::cleanup {

class AddressRewriter {
 public:
  virtual ~AddressRewriter() = default;
  // RULE is "local" or "remote"; ADDRESS and the result are external.
  virtual std::string rewrite(std::string_view rule, std::string_view address) = 0;
};

// The trivial-rewrite service (ipc::RewriteClient), with Postfix's
// one-entry cache of the last answer.  Like Postfix's rewrite client it retries until the service
// answers (logging "problem talking to service rewrite: ...").
class TrivialRewriteClient : public AddressRewriter {
 public:
  explicit TrivialRewriteClient(std::string service = "rewrite");
  std::string rewrite(std::string_view rule, std::string_view address) override;

 private:
  ipc::RewriteClient client_;
};

}  // namespace mta::cleanup
