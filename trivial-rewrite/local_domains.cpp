// local_domains.cpp: see local_domains.hpp.
#include "trivial-rewrite/local_domains.hpp"

#include <string>

#include "log/log.hpp"
#include "trivial-rewrite/hostname_syntax.hpp"

namespace mta::rewrite {

LocalDomains::LocalDomains(const config::Config& config, std::optional<InterfaceAddresses> interfaces)
    : mydestination_("mydestination", config.get("mydestination"), maps::MatchList::Kind::string),
      interfaces_(interfaces ? std::move(*interfaces) : InterfaceAddresses::from_config(config)) {}

int LocalDomains::resolve_local(std::string_view domain) const {
  std::string dest(domain);
  // Strip one trailing dot, but not dot-dot.
  if (dest.empty()) return 0;
  if (dest.back() == '.') dest.pop_back();
  if (dest.empty() || dest.back() == '.') return 0;

  switch (mydestination_.match(dest)) {
    case maps::Match::yes: return 1;
    case maps::Match::error:
      log::warning("%s", mydestination_.error().c_str());
      return -1;
    case maps::Match::no: break;
  }
  // An address literal of one of our interfaces.
  if (dest.size() > 2 && dest.front() == '[' && dest.back() == ']') {
    std::string_view inner = std::string_view(dest).substr(1, dest.size() - 2);
    std::string_view bare;
    if (valid_mailhost_addr(inner, &bare, true) && interfaces_.contains(bare)) return 1;
  }
  return 0;
}

}  // namespace mta::rewrite
