// address_rewriting.cpp: see address_rewriting.hpp.
#include "cleanup/address_rewriting.hpp"

namespace mta::cleanup {

TrivialRewriteClient::TrivialRewriteClient(std::string service) : client_(".", std::move(service)) {}

std::string TrivialRewriteClient::rewrite(std::string_view rule, std::string_view address) {
  return client_.rewrite(rule, address);
}

}  // namespace mta::cleanup
