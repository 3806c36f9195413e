// address_mapping.cpp: see address_mapping.hpp.
#include "cleanup/address_mapping.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "cleanup/cleanup_status.hpp"
#include "cleanup/rfc822_tree.hpp"
#include "log/log.hpp"
#include "trivial-rewrite/local_domains.hpp"

namespace mta::cleanup {
namespace cstat = message::cleanup_stat;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}


constexpr int kMap11Rounds = 10;  // cleanup_map11's MAX_RECURSION

}  // namespace

int parse_address_classes(std::string_view parameter, std::string_view value) {
  return config::name_mask(parameter, value,
                   {{"envelope_sender", kClassEnvFrom},
                    {"envelope_recipient", kClassEnvRcpt},
                    {"header_sender", kClassHdrFrom},
                    {"header_recipient", kClassHdrRcpt}});
}

int parse_ext_prop_for_cleanup(std::string_view value) {
  // local(8) validates the same list; cleanup uses two of its words.
  return config::name_mask("propagate_unmatched_extensions", value,
                   {{"canonical", kExtPropCanonical},
                    {"virtual", kExtPropVirtual},
                    {"alias", 0},
                    {"forward", 0},
                    {"include", 0},
                    {"generic", 0}});
}

struct AddressMapper::Impl {
  AddressRewriter* canon = nullptr;
  const rewrite::LocalDomains* local = nullptr;
  std::string myorigin;
  std::string delimiters;  // recipient_delimiter
  int ext_prop = 0;

  std::unique_ptr<maps::Maps> canonical, sender_canonical, recipient_canonical, virtual_alias, sender_bcc,
      recipient_bcc;
  int canonical_classes = 0, sender_canonical_classes = 0, recipient_canonical_classes = 0;
  std::vector<std::string> masq_domains;
  int masq_classes = 0;
  std::unique_ptr<maps::MatchList> masq_exceptions;
  long long recursion_limit = 1000, expansion_limit = 1000, addrlen_limit = 1000;

  // mail_addr_find() with the default strategy on an external address.
  // *extension receives the address extension that was stripped to find
  // the match (empty when none).
  maps::Result find(const maps::Maps& table, const std::string& external, std::string* extension) const;
  // mail_addr_map(): the lookup result as a list of canonical external
  // addresses; nullopt when not found.  A table error sets *failed.
  // MAX_RESULTS > 0: a result with more addresses sets *too_many instead
  // (before any of them is made canonical).
  std::optional<std::vector<std::string>> map(const maps::Maps& table, const std::string& external, bool propagate,
                                              bool* failed, size_t max_results = 0, bool* too_many = nullptr) const;
  // cleanup_map11_external().
  bool map11(std::string& external, const maps::Maps& table, bool propagate, const std::string& queue_id,
             MapOutcome& out) const;
  // cleanup_masquerade_external().
  bool masquerade(std::string& external, const std::string& queue_id, MapOutcome& out) const;
  // The sender or recipient steps on an external address.
  bool one_to_one(std::string& external, bool sender, bool header, const std::string& queue_id,
                  MapOutcome& out) const;
  std::optional<std::string> bcc(const maps::Maps* table, const std::string& address, const std::string& queue_id,
                                 MapOutcome& out) const;
};

maps::Result AddressMapper::Impl::find(const maps::Maps& table, const std::string& external,
                                       std::string* extension) const {
  extension->clear();
  bool resolve_failed = false;
  maps::AddressLookup how;
  how.recipient_delimiter = delimiters;
  how.localpart_if_local = true;
  how.at_domain = true;
  how.is_local_domain = [this, &resolve_failed](std::string_view domain) {
    if (::strcasecmp(std::string(domain).c_str(), myorigin.c_str()) == 0) return true;
    int rc = local ? local->resolve_local(domain) : 0;
    if (rc < 0) resolve_failed = true;
    return rc > 0;
  };
  std::string matched;
  maps::Result r = maps::find_address(table, external, how, &matched);
  if (resolve_failed && !r.found()) return maps::Result::fail("resolve_local failed");
  if (!r.found() || delimiters.empty()) return r;
  // Which key matched: a key without the extension reports it.
  size_t at = external.rfind('@');
  std::string_view local_part = std::string_view(external).substr(0, at == std::string::npos ? external.size() : at);
  size_t d = local_part.find_first_of(delimiters);
  if (d == std::string_view::npos || d == 0) return r;
  std::string bare(local_part.substr(0, d));
  std::string bare_at = at == std::string::npos ? bare : bare + external.substr(at);
  if (::strcasecmp(matched.c_str(), bare_at.c_str()) == 0 ||
      (at != std::string::npos && ::strcasecmp(matched.c_str(), bare.c_str()) == 0))
    *extension = std::string(local_part.substr(d));
  return r;
}

std::optional<std::vector<std::string>> AddressMapper::Impl::map(const maps::Maps& table, const std::string& external,
                                                                 bool propagate, bool* failed, size_t max_results,
                                                                 bool* too_many) const {
  std::string extension;
  maps::Result r = find(table, external, &extension);
  if (!r.found()) {
    if (r.failed()) *failed = true;
    return std::nullopt;
  }
  std::string value = r.value;
  // "@otherdomain": the same local part (without the extension) elsewhere.
  if (!value.empty() && value.front() == '@') {
    size_t at = external.rfind('@');
    std::string local_part = external.substr(0, at);
    if (!extension.empty() && local_part.size() >= extension.size())
      local_part.resize(local_part.size() - extension.size());
    value = local_part + value;
  }
  // mail_addr_crunch(): each address, canonical, with the extension.
  std::string text = value.empty() || value == "<>" ? std::string("\"\"") : value;
  rfc822::Tree tree = rfc822::Tree::parse(text);
  std::vector<int> nodes = tree.addresses();
  if (max_results > 0 && nodes.size() > max_results && too_many) {
    *too_many = true;
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (int node : nodes) {
    std::string addr = tree.externalize_address(node);
    addr = canon ? canon->rewrite("local", addr) : addr;
    if (propagate && !extension.empty()) {
      size_t at = addr.rfind('@');
      if (at == std::string::npos)
        addr += extension;
      else
        addr.insert(at, extension);
    }
    out.push_back(std::move(addr));
  }
  if (out.empty()) {
    log::warning("%s lookup of %s returns non-address result \"%s\"", table.title().c_str(), external.c_str(),
                 value.c_str());
    *failed = true;
    return std::nullopt;
  }
  return out;
}

bool AddressMapper::Impl::map11(std::string& external, const maps::Maps& table, bool propagate,
                                const std::string& queue_id, MapOutcome& out) const {
  bool did_rewrite = false;
  for (int round = 0; round < kMap11Rounds; ++round) {
    bool failed = false;
    std::optional<std::vector<std::string>> result = map(table, external, propagate, &failed);
    if (!result) {
      if (failed) {
        log::warning("%s: %s map lookup problem for %s", queue_id.c_str(), table.title().c_str(), external.c_str());
        out.errs |= cstat::kWrite;
      }
      return did_rewrite;
    }
    if (result->size() > 1)
      log::warning("%s: multi-valued %s entry for %s", queue_id.c_str(), table.title().c_str(), external.c_str());
    const std::string& next = result->front();
    did_rewrite |= next != external;
    bool to_self = ::strcasecmp(next.c_str(), external.c_str()) == 0;
    external = next;
    if (to_self) return did_rewrite;
  }
  log::warning("%s: unreasonable %s map nesting for %s", queue_id.c_str(), table.title().c_str(), external.c_str());
  return did_rewrite;
}

bool AddressMapper::Impl::masquerade(std::string& external, const std::string& queue_id, MapOutcome& out) const {
  size_t at = external.rfind('@');
  if (at == std::string::npos) return false;
  std::string_view domain = std::string_view(external).substr(at + 1);
  if (masq_exceptions && !masq_exceptions->empty()) {
    maps::Match m = masq_exceptions->match(lower(std::string_view(external).substr(0, at)));
    if (m == maps::Match::error) {
      log::info("%s: masquerade_exceptions lookup error -- deferring delivery", queue_id.c_str());
      out.errs |= cstat::kWrite;
    }
    if (m == maps::Match::yes) return false;
  }
  // The first listed domain that is the domain itself or a parent of it
  // decides; "!domain" (an odd number of "!") leaves the address alone.
  for (const std::string& entry : masq_domains) {
    std::string_view masq = entry;
    bool truncate = true;
    while (!masq.empty() && masq.front() == '!') {
      truncate = !truncate;
      masq.remove_prefix(1);
    }
    if (masq.empty()) continue;
    if (masq.size() == domain.size()) {
      if (::strncasecmp(masq.data(), domain.data(), masq.size()) == 0) break;
    } else if (masq.size() < domain.size()) {
      std::string_view parent = domain.substr(domain.size() - masq.size());
      if (domain[domain.size() - masq.size() - 1] == '.' &&
          ::strncasecmp(masq.data(), parent.data(), masq.size()) == 0) {
        if (!truncate) break;
        external = external.substr(0, at + 1) + std::string(masq);
        return true;
      }
    }
  }
  return false;
}

bool AddressMapper::Impl::one_to_one(std::string& external, bool sender, bool header, const std::string& queue_id,
                                     MapOutcome& out) const {
  const int cls = sender ? (header ? kClassHdrFrom : kClassEnvFrom) : (header ? kClassHdrRcpt : kClassEnvRcpt);
  const bool propagate = ext_prop & kExtPropCanonical;
  bool changed = false;
  const maps::Maps* own = sender ? sender_canonical.get() : recipient_canonical.get();
  int own_classes = sender ? sender_canonical_classes : recipient_canonical_classes;
  if (own && (own_classes & cls)) changed |= map11(external, *own, propagate, queue_id, out);
  if (canonical && (canonical_classes & cls)) changed |= map11(external, *canonical, propagate, queue_id, out);
  if (!masq_domains.empty() && (masq_classes & cls)) changed |= masquerade(external, queue_id, out);
  return changed;
}

std::optional<std::string> AddressMapper::Impl::bcc(const maps::Maps* table, const std::string& address,
                                                    const std::string& queue_id, MapOutcome& out) const {
  if (!table || address.empty()) return std::nullopt;
  std::string extension;
  maps::Result r = find(*table, rfc822::quote_local(address), &extension);
  if (r.found()) return r.value;
  if (r.failed()) {
    log::warning("%s: %s map lookup problem for %s", queue_id.c_str(), table->title().c_str(), address.c_str());
    out.errs |= cstat::kWrite;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- AddressMapper

AddressMapper::AddressMapper() : impl_(std::make_unique<Impl>()) {}
AddressMapper::~AddressMapper() = default;
AddressMapper::AddressMapper(AddressMapper&&) noexcept = default;
AddressMapper& AddressMapper::operator=(AddressMapper&&) noexcept = default;

AddressMapper::AddressMapper(const config::Config& config, AddressRewriter& canon, const rewrite::LocalDomains& local)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.canon = &canon;
  m.local = &local;
  m.myorigin = config.get("myorigin");
  m.delimiters = config.get("recipient_delimiter");
  m.ext_prop = parse_ext_prop_for_cleanup(config.get("propagate_unmatched_extensions"));
  auto open = [&config](const char* name) -> std::unique_ptr<maps::Maps> {
    std::string spec = config.get(name);
    if (config::split_list(spec).empty()) return nullptr;
    return std::make_unique<maps::Maps>(name, spec);
  };
  m.canonical = open("canonical_maps");
  m.sender_canonical = open("sender_canonical_maps");
  m.recipient_canonical = open("recipient_canonical_maps");
  m.virtual_alias = open("virtual_alias_maps");
  m.sender_bcc = open("sender_bcc_maps");
  m.recipient_bcc = open("recipient_bcc_maps");
  m.canonical_classes = parse_address_classes("canonical_classes", config.get("canonical_classes"));
  m.sender_canonical_classes =
      parse_address_classes("sender_canonical_classes", config.get("sender_canonical_classes"));
  m.recipient_canonical_classes =
      parse_address_classes("recipient_canonical_classes", config.get("recipient_canonical_classes"));
  m.masq_domains = config::split_list(config.get("masquerade_domains"));
  m.masq_classes = parse_address_classes("masquerade_classes", config.get("masquerade_classes"));
  std::string exceptions = config.get("masquerade_exceptions");
  if (!config::split_list(exceptions).empty())
    m.masq_exceptions =
        std::make_unique<maps::MatchList>("masquerade_exceptions", exceptions, maps::MatchList::Kind::string);
  m.recursion_limit = config.get_int("virtual_alias_recursion_limit");
  m.expansion_limit = config.get_int("virtual_alias_expansion_limit");
  m.addrlen_limit = config.get_int("virtual_alias_address_length_limit");
}

bool AddressMapper::envelope_sender(std::string& address, const std::string& queue_id, MapOutcome& out) const {
  std::string external = rfc822::quote_local(address);
  if (!impl_->one_to_one(external, true, false, queue_id, out)) return false;
  address = rfc822::unquote_local(external);
  return true;
}

bool AddressMapper::envelope_recipient(std::string& address, const std::string& queue_id, MapOutcome& out) const {
  std::string external = rfc822::quote_local(address);
  if (!impl_->one_to_one(external, false, false, queue_id, out)) return false;
  address = rfc822::unquote_local(external);
  return true;
}

bool AddressMapper::header_sender(std::string& address, const std::string& queue_id, MapOutcome& out) const {
  return impl_->one_to_one(address, true, true, queue_id, out);
}

bool AddressMapper::header_recipient(std::string& address, const std::string& queue_id, MapOutcome& out) const {
  return impl_->one_to_one(address, false, true, queue_id, out);
}

bool AddressMapper::has_virtual_aliases() const { return impl_->virtual_alias != nullptr; }

std::vector<std::string> AddressMapper::expand_recipient(const std::string& address, const std::string& queue_id,
                                                         MapOutcome& out) const {
  const Impl& m = *impl_;
  if (!m.virtual_alias) return {address};
  const maps::Maps& table = *m.virtual_alias;
  const bool propagate = m.ext_prop & kExtPropVirtual;
  std::vector<std::string> list{address};
  std::set<std::string> done;  // addresses that expanded into themselves (case folded)
  auto give_up = [&](int bit) {
    out.errs |= bit;
    out.reason = "4.6.0 Alias expansion error";
    return std::vector<std::string>{address};
  };
  for (size_t arg = 0; arg < list.size(); ++arg) {
    if (static_cast<long long>(list.size()) > m.expansion_limit) {
      log::warning("%s: unreasonable %s map expansion size for %s -- message not accepted, try again later",
                   queue_id.c_str(), table.title().c_str(), address.c_str());
      return give_up(cstat::kDefer);
    }
    for (long long count = 0;; ++count) {
      if (done.count(lower(list[arg]))) break;
      if (count >= m.recursion_limit) {
        log::warning("%s: unreasonable %s map nesting for %s -- message not accepted, try again later",
                     queue_id.c_str(), table.title().c_str(), address.c_str());
        return give_up(cstat::kDefer);
      }
      bool failed = false, too_many = false;
      // More addresses than the limit allows: Postfix makes every one of
      // them canonical first (a trivial-rewrite call each), then refuses
      // the message at its next step; the outcome is the same without
      // that work.
      const size_t room = static_cast<size_t>(std::max<long long>(m.expansion_limit, 0)) + 1 - list.size();
      std::optional<std::vector<std::string>> result =
          m.map(table, rfc822::quote_local(list[arg]), propagate, &failed, room, &too_many);
      if (too_many) {
        log::warning("%s: unreasonable %s map expansion size for %s -- message not accepted, try again later",
                     queue_id.c_str(), table.title().c_str(), address.c_str());
        return give_up(cstat::kDefer);
      }
      if (!result) {
        if (!failed) break;
        log::warning("%s: %s map lookup problem for %s -- message not accepted, try again later", queue_id.c_str(),
                     table.title().c_str(), address.c_str());
        return give_up(cstat::kWrite);
      }
      std::string lhs = list[arg];
      for (size_t i = 0; i < result->size(); ++i) {
        const std::string& ext = (*result)[i];
        if (static_cast<long long>(ext.size()) > m.addrlen_limit) {
          log::warning("%s: unreasonable %s result %.300s... -- message not accepted, try again later",
                       queue_id.c_str(), table.title().c_str(), ext.c_str());
          return give_up(cstat::kDefer);
        }
        std::string internal = rfc822::unquote_local(ext);
        // An address may expand into itself once.
        if (::strcasecmp(lhs.c_str(), internal.c_str()) == 0) done.insert(lower(lhs));
        if (i == 0)
          list[arg] = std::move(internal);
        else
          list.push_back(std::move(internal));
      }
    }
  }
  return list;
}

std::optional<std::string> AddressMapper::sender_bcc(const std::string& sender, const std::string& queue_id,
                                                     MapOutcome& out) const {
  return impl_->bcc(impl_->sender_bcc.get(), sender, queue_id, out);
}

std::optional<std::string> AddressMapper::recipient_bcc(const std::string& recipient, const std::string& queue_id,
                                                        MapOutcome& out) const {
  return impl_->bcc(impl_->recipient_bcc.get(), recipient, queue_id, out);
}

std::string AddressMapper::changed_table() const {
  const Impl& m = *impl_;
  for (const maps::Maps* t : {m.canonical.get(), m.sender_canonical.get(), m.recipient_canonical.get(),
                              m.virtual_alias.get(), m.sender_bcc.get(), m.recipient_bcc.get()}) {
    if (!t) continue;
    for (const maps::DictPtr& d : t->dicts())
      if (d->has_changed()) return d->spec();
  }
  if (m.masq_exceptions) return m.masq_exceptions->changed_table();
  return {};
}

}  // namespace mta::cleanup
