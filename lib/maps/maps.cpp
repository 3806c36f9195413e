// maps.cpp: see maps.hpp.
#include "maps/maps.hpp"

#include "config/config.hpp"

namespace mta::maps {

Maps::Maps(std::string title, std::string_view spec_list, const OpenFlags& flags) : title_(std::move(title)) {
  // Postfix splits on commas and blanks, keeping "{ ... }" together.
  std::string s(spec_list);
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (config::is_blank(s[i]) || s[i] == ',')) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    int depth = 0;
    while (j < s.size() && (depth > 0 || (!config::is_blank(s[j]) && s[j] != ','))) {
      if (s[j] == '{') ++depth;
      else if (s[j] == '}' && depth > 0) --depth;
      ++j;
    }
    dicts_.push_back(open_dict(std::string_view(s).substr(i, j - i), flags));
    i = j;
  }
}

Result Maps::find(std::string_view key, bool fixed_only) const {
  // As Postfix's maps_find(): an empty key is never looked up (the null
  // sender must not match a static: or pattern table).
  if (key.empty()) return Result::miss();
  for (const DictPtr& d : dicts_) {
    if (fixed_only && d->is_pattern()) continue;
    Result r = d->lookup(key);
    if (r.status != Status::not_found) {
      if (r.failed() && r.error.find(d->spec()) == std::string::npos)
        r.error = title_ + ": " + d->spec() + ": " + r.error;
      return r;
    }
  }
  return Result::miss();
}

bool Maps::has_changed() const {
  for (const DictPtr& d : dicts_)
    if (d->has_changed()) return true;
  return false;
}

Result find_address(const Maps& maps, std::string_view address, const AddressLookup& how,
                    std::string* matched_key) {
  auto attempt = [&](const std::string& key, bool fixed_only) -> Result {
    Result r = maps.find(key, fixed_only);
    if (r.found() && matched_key) *matched_key = key;
    return r;
  };
  Result r = attempt(std::string(address), false);
  if (r.status != Status::not_found) return r;

  size_t at = address.rfind('@');
  std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
  std::string_view domain = at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
  std::string_view bare = local;
  if (!how.recipient_delimiter.empty()) {
    size_t d = local.find_first_of(how.recipient_delimiter);
    if (d != std::string_view::npos && d > 0) bare = local.substr(0, d);
  }
  if (bare.size() != local.size() && at != std::string_view::npos) {
    r = attempt(std::string(bare) + "@" + std::string(domain), true);
    if (r.status != Status::not_found) return r;
  }
  bool local_domain = at == std::string_view::npos || (how.is_local_domain && how.is_local_domain(domain));
  if (how.localpart_if_local && local_domain && at != std::string_view::npos) {
    r = attempt(std::string(local), true);
    if (r.status != Status::not_found) return r;
    if (bare.size() != local.size()) {
      r = attempt(std::string(bare), true);
      if (r.status != Status::not_found) return r;
    }
  }
  if (how.at_domain && at != std::string_view::npos) {
    r = attempt("@" + std::string(domain), true);
    if (r.status != Status::not_found) return r;
  }
  return Result::miss();
}

Result find_domain(const Maps& maps, std::string_view domain, bool match_subdomains, std::string* matched_key) {
  Result r = maps.find(domain, false);
  if (r.status != Status::not_found) {
    if (r.found() && matched_key) *matched_key = std::string(domain);
    return r;
  }
  for (size_t dot = domain.find('.'); dot != std::string_view::npos; dot = domain.find('.', dot + 1)) {
    std::string key = match_subdomains ? std::string(domain.substr(dot + 1)) : std::string(domain.substr(dot));
    r = maps.find(key, true);
    if (r.status != Status::not_found) {
      if (r.found() && matched_key) *matched_key = key;
      return r;
    }
  }
  return Result::miss();
}

}  // namespace mta::maps
