// access_map.cpp: access(5) lookup orders; see access_map.hpp.
#include "smtpd/access_map.hpp"

namespace mta::smtpd {
namespace {

// One key; full keys go to every table, partial keys to fixed-string tables.
bool ask(const maps::Maps& table, std::string_view key, bool partial, AccessHit& hit) {
  hit.result = table.find(key, partial);
  if (hit.result.status == maps::Status::not_found) return false;
  hit.key = std::string(key);
  return true;
}

}  // namespace

AccessHit find_domain_access(const maps::Maps& table, std::string_view domain, bool parent_style) {
  AccessHit hit;
  if (domain.empty()) return hit;
  if (ask(table, domain, false, hit)) return hit;
  for (size_t dot = domain.find('.'); dot != std::string_view::npos; dot = domain.find('.', dot + 1)) {
    std::string_view parent = parent_style ? domain.substr(dot + 1) : domain.substr(dot);
    if (parent.empty() || parent == ".") break;
    if (ask(table, parent, true, hit)) return hit;
  }
  return hit;
}

AccessHit find_address_access(const maps::Maps& table, std::string_view address, std::string_view delimiters,
                              bool parent_style) {
  AccessHit hit;
  size_t at = address.rfind('@');
  std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
  std::string_view domain = at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
  // The local part without its extension, when it has one.
  std::string bare;
  if (!delimiters.empty()) {
    size_t d = local.find_first_of(delimiters);
    if (d != std::string_view::npos && d > 0) bare = std::string(local.substr(0, d));
  }
  if (ask(table, address, false, hit)) return hit;
  if (!bare.empty() && ask(table, bare + "@" + std::string(domain), true, hit)) return hit;
  if (!domain.empty()) {
    hit = find_domain_access(table, domain, parent_style);
    if (hit.result.status != maps::Status::not_found) return hit;
  }
  if (ask(table, std::string(local) + "@", true, hit)) return hit;
  if (!bare.empty() && ask(table, bare + "@", true, hit)) return hit;
  return hit;
}

AccessHit find_network_access(const maps::Maps& table, std::string_view addr) {
  AccessHit hit;
  if (addr.empty()) return hit;
  if (ask(table, addr, false, hit)) return hit;
  const char sep = addr.find(':') != std::string_view::npos ? ':' : '.';
  std::string_view rest = addr;
  for (;;) {
    size_t cut = rest.rfind(sep);
    if (cut == std::string_view::npos || cut == 0) break;
    rest = rest.substr(0, cut);
    while (!rest.empty() && rest.back() == sep) rest.remove_suffix(1);  // "2001:db8::" -> "2001:db8"
    if (rest.empty()) break;
    if (ask(table, rest, true, hit)) return hit;
  }
  return hit;
}

AccessHit find_host_access(const maps::Maps& table, std::string_view name, std::string_view addr, bool parent_style) {
  AccessHit hit = find_domain_access(table, name, parent_style);
  if (hit.result.status != maps::Status::not_found) return hit;
  return find_network_access(table, addr);
}

}  // namespace mta::smtpd
