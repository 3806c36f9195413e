// transport_table.cpp: see transport_table.hpp.
#include "trivial-rewrite/transport_table.hpp"

namespace mta::rewrite {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void update_entry(std::string_view new_transport, std::string_view new_nexthop, std::string_view rcpt_domain,
                  std::string& transport, std::string& nexthop) {
  if (new_transport.empty()) {
    if (!new_nexthop.empty()) nexthop = std::string(new_nexthop);
    return;
  }
  transport = std::string(new_transport);
  if (!new_nexthop.empty())
    nexthop = std::string(new_nexthop);
  else if (transport != "error")
    nexthop = std::string(rcpt_domain);
  else
    nexthop = "Address is undeliverable";
}

}  // namespace

std::string strip_extension(std::string_view address, std::string_view delimiters) {
  if (delimiters.empty()) return {};
  size_t at = address.rfind('@');
  std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
  if (iequals(local, "postmaster") || iequals(local, "MAILER-DAEMON") || iequals(local, "double-bounce")) return {};
  if (delimiters.find('-') != std::string_view::npos) {
    if (local.size() >= 6 && iequals(local.substr(0, 6), "owner-")) return {};
    if (local.size() > 8 && iequals(local.substr(local.size() - 8), "-request")) return {};
  }
  size_t len = local.find_first_of(delimiters);
  if (len == 0 || len == std::string_view::npos) return {};
  std::string out(local.substr(0, len));
  if (at != std::string_view::npos) out += address.substr(at);
  return out;
}

TransportTable::TransportTable(std::string title, std::string_view spec_list, bool parent_style,
                               std::string recipient_delimiter)
    : maps_(std::move(title), spec_list), parent_style_(parent_style), delimiters_(std::move(recipient_delimiter)) {}

std::string TransportTable::changed_table() const {
  for (const maps::DictPtr& d : maps_.dicts())
    if (d->has_changed()) return d->spec();
  return {};
}

TransportTable::Outcome TransportTable::find_entry(std::string_view key, bool fixed_only, std::string_view rcpt_domain,
                                                   std::string& transport, std::string& nexthop) const {
  maps::Result r = maps_.find(key, fixed_only);
  if (r.failed()) {
    error_ = r.error;
    return Outcome::error;
  }
  if (!r.found()) return Outcome::not_found;
  std::string_view value = r.value;
  size_t colon = value.find(':');
  update_entry(value.substr(0, colon), colon == std::string_view::npos ? std::string_view() : value.substr(colon + 1),
               rcpt_domain, transport, nexthop);
  return Outcome::found;
}

TransportTable::Outcome TransportTable::lookup(std::string_view address, std::string_view rcpt_domain,
                                               std::string& transport, std::string& nexthop) const {
  error_.clear();
  size_t at = address.rfind('@');
  if (address.empty() || at == std::string_view::npos || at + 1 == address.size()) return Outcome::not_found;

  if (Outcome o = find_entry(address, false, rcpt_domain, transport, nexthop); o != Outcome::not_found) return o;
  if (std::string stripped = strip_extension(address, delimiters_); !stripped.empty())
    if (Outcome o = find_entry(stripped, true, rcpt_domain, transport, nexthop); o != Outcome::not_found) return o;

  std::string_view name = address.substr(at + 1);
  for (;;) {
    if (Outcome o = find_entry(name, true, rcpt_domain, transport, nexthop); o != Outcome::not_found) return o;
    size_t next = name.find('.', 1);
    if (next == std::string_view::npos) break;
    name = name.substr(parent_style_ ? next + 1 : next);
  }
  // The wildcard: looked up like a full key, applied with this recipient's domain.
  return find_entry("*", false, rcpt_domain, transport, nexthop);
}

}  // namespace mta::rewrite
