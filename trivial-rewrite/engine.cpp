// engine.cpp: see engine.hpp.
#include "trivial-rewrite/engine.hpp"

#include <cstring>

#include "config/compat_level.hpp"
#include "log/log.hpp"
#include "trivial-rewrite/hostname_syntax.hpp"

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

std::unique_ptr<maps::Maps> open_maps(const config::Config& config, const std::string& name) {
  std::string spec = config.get(name);
  if (spec.find_first_not_of(" \t\r\n,") == std::string::npos) return nullptr;
  return std::make_unique<maps::Maps>(name, spec);
}

// The parameter was left at its default (neither main.cf nor -o).
bool left_at_default(const config::Config& config, std::string_view name) {
  return !config.explicit_value(name) && config.lookup(name) == config.default_value(name);
}

bool compat_level_below(const config::Config& config, std::string_view level) {
  auto have = config::parse_compat_level(config.get("compatibility_level"));
  auto want = config::parse_compat_level(level);
  return have && want && *have < *want;
}

}  // namespace

void split_transport(std::string_view value, std::string& transport, std::string& nexthop) {
  size_t colon = value.find(':');
  transport = std::string(value.substr(0, colon));
  nexthop = colon == std::string_view::npos ? std::string() : std::string(value.substr(colon + 1));
}

// ---- construction

void Engine::load_context(const config::Config& config, ResolveContext& rp, bool verify) {
  auto param = [&](std::string_view regular, std::string_view probe, std::string& name, std::string& value) {
    name = std::string(verify ? probe : regular);
    value = config.get(name);
  };
  param("local_transport", "address_verify_local_transport", rp.local_transport_name, rp.local_transport);
  param("virtual_transport", "address_verify_virtual_transport", rp.virt_transport_name, rp.virt_transport);
  param("relay_transport", "address_verify_relay_transport", rp.relay_transport_name, rp.relay_transport);
  param("default_transport", "address_verify_default_transport", rp.def_transport_name, rp.def_transport);
  param("relayhost", "address_verify_relayhost", rp.relayhost_name, rp.relayhost);
  rp.snd_def_transport = open_maps(config, verify ? "address_verify_sender_dependent_default_transport_maps"
                                                  : "sender_dependent_default_transport_maps");
  rp.snd_relayhost = open_maps(config, verify ? "address_verify_sender_dependent_relayhost_maps"
                                              : "sender_dependent_relayhost_maps");
  std::string tname = verify ? "address_verify_transport_maps" : "transport_maps";
  std::string tspec = config.get(tname);
  if (tspec.find_first_not_of(" \t\r\n,") != std::string::npos)
    rp.transport = std::make_unique<TransportTable>(tname, tspec, match_parent_style(config, "transport_maps"),
                                                    recipient_delimiter_);
}

Engine::Engine(const config::Config& config, std::optional<InterfaceAddresses> interfaces) {
  config_dir_ = config.config_dir();
  myhostname_ = config.get("myhostname");
  empty_address_ = config.get("empty_address_recipient");
  null_relay_maps_key_ = config.get("empty_address_relayhost_maps_lookup_key");
  null_def_transport_maps_key_ = config.get("empty_address_default_transport_maps_lookup_key");
  recipient_delimiter_ = config.get("recipient_delimiter");
  swap_bangpath_ = config.get_bool("swap_bangpath");
  percent_hack_ = config.get_bool("allow_percent_hack");
  append_at_myorigin_ = config.get_bool("append_at_myorigin");
  append_dot_mydomain_ = config.get_bool("append_dot_mydomain");
  warn_compat_append_dot_mydomain_ =
      append_dot_mydomain_ && compat_level_below(config, "1") && left_at_default(config, "append_dot_mydomain");
  resolve_dequoted_ = config.get_bool("resolve_dequoted_address");
  resolve_null_domain_ = config.get_bool("resolve_null_domain");
  resolve_numeric_domain_ = config.get_bool("resolve_numeric_domain");
  allow_min_user_ = config.get_bool("allow_min_user");
  show_unknown_table_ = config.get_bool("show_user_unknown_table_name");
  helpful_warnings_ = config.get_bool("helpful_warnings");
  smtputf8_ = config.get_bool("smtputf8_enable");

  local_context_ = {"myorigin", config.get("myorigin"), "mydomain", config.get("mydomain")};
  std::string remote = config.get("remote_header_rewrite_domain");
  remote_context_ = {"remote_header_rewrite_domain", remote, "remote_header_rewrite_domain", remote};

  load_context(config, regular_, false);
  load_context(config, verify_, true);

  virt_alias_domains_ =
      MatchList("virtual_alias_domains", config.get("virtual_alias_domains"), MatchList::Kind::string);
  virt_mailbox_domains_ =
      MatchList("virtual_mailbox_domains", config.get("virtual_mailbox_domains"), MatchList::Kind::string);
  relay_domains_ = MatchList("relay_domains", config.get("relay_domains"), MatchList::Kind::hostname,
                             match_parent_style(config, "relay_domains"));
  relocated_ = open_maps(config, "relocated_maps");
  local_ = LocalDomains(config, std::move(interfaces));
}

std::string Engine::changed_table() const {
  for (const MatchList* l : {&local_.mydestination(), &virt_alias_domains_, &virt_mailbox_domains_, &relay_domains_})
    if (std::string t = l->changed_table(); !t.empty()) return t;
  auto check = [](const maps::Maps* m) -> std::string {
    if (!m) return {};
    for (const maps::DictPtr& d : m->dicts())
      if (d->has_changed()) return d->spec();
    return {};
  };
  for (const ResolveContext* rp : {&regular_, &verify_}) {
    for (const maps::Maps* m : {rp->snd_def_transport.get(), rp->snd_relayhost.get()})
      if (std::string t = check(m); !t.empty()) return t;
    if (rp->transport)
      if (std::string t = rp->transport->changed_table(); !t.empty()) return t;
  }
  return check(relocated_.get());
}

// ---- resolve_local, resolve_class

int Engine::resolve_local(std::string_view domain) const { return local_.resolve_local(domain); }

int Engine::resolve_class(std::string_view domain) const {
  if (int rc = resolve_local(domain); rc != 0) return rc > 0 ? kClassLocal : -1;
  const std::pair<const MatchList*, int> lists[] = {
      {&virt_alias_domains_, kClassAlias}, {&virt_mailbox_domains_, kClassVirtual}, {&relay_domains_, kClassRelay}};
  for (const auto& [list, cls] : lists) {
    if (list->empty()) continue;
    switch (list->match(domain)) {
      case Match::yes: return cls;
      case Match::error: return -1;
      case Match::no: break;
    }
  }
  return kClassDefault;
}

// ---- rewrite

void Engine::rewrite_tree(const RewriteContext& context, TokenList& tree) const {
  if (tree.empty()) return;  // Postfix panics here; the callers never pass one

  // The empty address; a lone @ is treated as one.
  if (tree.size() == 1 && tree[0].is(kQuoted) && tree[0].text.empty()) return;
  if (tree.size() == 1 && tree[0].is('@')) {
    tree.clear();
    sub_append(tree, {Token{kQuoted, {}, false}});
    return;
  }

  // Strip a source route: @a,@b:user@c -> user@c.
  if (tree[0].is('@')) {
    size_t colon = find_type(tree, ':');
    if (colon != kNone && colon + 1 != tree.size()) tree.erase(tree.begin(), tree.begin() + static_cast<long>(colon) + 1);
  }

  if (rfind_type(tree, '@') == kNone) {
    size_t bang = swap_bangpath_ ? find_type(tree, '!') : kNone;
    size_t percent = kNone;
    if (bang != kNone) {
      // site!user -> user@site
      TokenList local(std::make_move_iterator(tree.begin() + static_cast<long>(bang) + 1),
                      std::make_move_iterator(tree.end()));
      tree.resize(bang);
      sub_prepend(tree, {Token::op('@')});
      if (!local.empty()) sub_prepend(tree, std::move(local));
    } else if (percent_hack_ && (percent = rfind_type(tree, '%')) != kNone) {
      tree[percent].type = '@';
    } else if (append_at_myorigin_ && !context.origin.empty()) {
      TokenList add{Token::op('@')};
      for (Token& t : scan(context.origin)) add.push_back(std::move(t));
      sub_append(tree, std::move(add));
    }
  }

  // Append .$mydomain to a domain without a dot, but leave broken forms
  // ending in @ alone.
  size_t domain = rfind_type(tree, '@');
  if (append_dot_mydomain_ && !context.domain.empty() && domain != kNone && domain + 1 != tree.size() &&
      find_type(tree, kLiteral, domain) == kNone && find_type(tree, '.', domain) == kNone) {
    if (warn_compat_append_dot_mydomain_ && tree[domain + 1].type >= kAtom) {
      const std::string& name = tree[domain + 1].text;
      if (!iequals(name, "localhost")) {
        log::info("using backwards-compatible default setting append_dot_mydomain=yes to rewrite \"%s\" to "
                  "\"%s.%s\"",
                  name.c_str(), name.c_str(), context.domain.c_str());
      } else if (resolve_class("localhost") == kClassDefault) {
        log::info("using backwards-compatible default setting append_dot_mydomain=yes to rewrite \"%s\" to "
                  "\"%s.%s\"; please add \"localhost\" to mydestination or other address class",
                  name.c_str(), name.c_str(), context.domain.c_str());
      }
    }
    TokenList add{Token::op('.')};
    for (Token& t : scan(context.domain)) add.push_back(std::move(t));
    sub_append(tree, std::move(add));
  }

  // Strip one trailing dot, but not dot-dot or @-dot.
  if (tree.size() >= 2 && tree.back().is('.') && !tree[tree.size() - 2].is('.') && !tree[tree.size() - 2].is('@'))
    tree.pop_back();
}

std::optional<std::string> Engine::rewrite(std::string_view rule, std::string_view external) const {
  const RewriteContext* context = nullptr;
  if (rule == "local") context = &local_context_;
  else if (rule == "remote") context = &remote_context_;
  else return std::nullopt;
  if (external.empty()) {
    log::warning("rewrite_addr: null address");
    return std::string();
  }
  TokenList tree = scan(external);
  if (tree.empty()) return std::string(external);
  rewrite_tree(*context, tree);
  // Postfix externalizes the address node as a whole: the internal form,
  // with the local part quoted where needed.
  return quote_local(internalize(tree));
}

// ---- resolve

maps::Result Engine::find_address(const maps::Maps& table, std::string_view address) const {
  // Postfix's mail_addr_find(): each key in the external (quoted) form
  // first, then as is when that differs.
  auto find_key = [&](std::string_view key, bool fixed_only, bool with_domain) {
    std::string quoted = quote_local(key, !with_domain);
    maps::Result r = table.find(quoted, fixed_only);
    if (r.status == maps::Status::not_found && quoted != key) r = table.find(key, fixed_only);
    return r;
  };
  const std::string full(address);
  const std::string bare = strip_extension(full, recipient_delimiter_);
  maps::Result r = find_key(full, false, true);
  if (r.status == maps::Status::not_found && !bare.empty()) r = find_key(bare, true, true);
  size_t at = full.rfind('@');
  if (r.status == maps::Status::not_found && at != std::string::npos) {
    std::string_view domain = std::string_view(full).substr(at + 1);
    int rc = iequals(domain, local_context_.origin) ? 1 : resolve_local(domain);
    if (rc > 0) {
      r = find_key(std::string_view(full).substr(0, at), true, false);
      if (r.status == maps::Status::not_found && !bare.empty())
        r = find_key(std::string_view(bare).substr(0, bare.rfind('@')), true, false);
    } else if (rc < 0) {
      return maps::Result::fail(table.title() + ": local domain lookup failure");
    }
  }
  if (r.status == maps::Status::not_found && at != std::string::npos) r = table.find(full.substr(at), true);
  return r;
}

void Engine::resolve_addr(const ResolveContext& rp, std::string_view sender, std::string_view addr,
                          ResolveResult& out) const {
  out.flags = 0;
  out.transport = "CHANNEL NOT UPDATED";
  out.nexthop = "NEXTHOP NOT UPDATED";
  out.recipient = "NEXTRCPT NOT UPDATED";

  // Start from the quoted form and look for routing operators, dequoting
  // the local part only where needed (see Postfix's resolve.c).
  TokenList tree = scan(quote_local(addr));
  TokenList saved_domain;
  bool have_saved = false;
  size_t domain = kNone;
  const size_t loop_max = addr.size() + 100;

  for (size_t loop_count = 0;; ++loop_count) {
    if (loop_count > loop_max) {
      std::string a(addr);
      log::warning("resolve_addr: <%s>: giving up after %zu iterations", a.c_str(), loop_count);
      out.flags |= kFlagFail;
      return;
    }
    // Strip a trailing dot at the end of the domain, but not dot-dot or @-dot.
    if (tree.size() >= 2 && tree.back().is('.') && rfind_type(tree, '@') != kNone &&
        !tree[tree.size() - 2].is('.') && !tree[tree.size() - 2].is('@'))
      tree.pop_back();
    // Strip a trailing @.
    if (resolve_null_domain_ && !tree.empty() && tree.back().is('@')) tree.pop_back();

    // Strip (and save) @domain if local.
    if ((domain = rfind_type(tree, '@')) != kNone) {
      if (domain + 1 < tree.size()) {
        int rc = resolve_local(internalize(tree, domain + 1));
        if (rc < 0) {
          out.flags |= kFlagFail;
          return;
        }
        if (rc == 0) break;
      }
      saved_domain.assign(std::make_move_iterator(tree.begin() + static_cast<long>(domain)),
                          std::make_move_iterator(tree.end()));
      tree.resize(domain);
      have_saved = true;
      domain = kNone;
    }

    // After stripping the local domain, replace foo%bar by foo@bar and
    // site!user by user@site, rewrite to canonical form, and retry.
    if (rfind_type(tree, '@') != kNone || (swap_bangpath_ && rfind_type(tree, '!') != kNone) ||
        (percent_hack_ && rfind_type(tree, '%') != kNone)) {
      rewrite_tree(local_context_, tree);
      continue;
    }

    // Crack open a quoted local part and look for routing operators.
    if (resolve_dequoted_ && tree.size() == 1 && tree[0].is(kQuoted)) {
      std::string& local = tree[0].text;
      size_t oper = local.rfind('@');
      if (oper == std::string::npos && percent_hack_) oper = local.rfind('%');
      if (oper == std::string::npos && swap_bangpath_) oper = local.rfind('!');
      if (oper != std::string::npos) {
        if (local[oper] == '%') local[oper] = '@';
        std::string buf = internalize(tree);
        if (local[oper] == '@') buf = quote_local(buf);
        tree = scan(buf);
        rewrite_tree(local_context_, tree);
        continue;
      }
    }

    // An empty local part or an empty quoted string becomes the local
    // MAILER-DAEMON; re-resolve it in case it is in user@domain form.
    if (tree.size() == 1 && tree[0].is(kQuoted) && tree[0].text.empty()) tree.clear();
    if (tree.empty()) {
      tree = scan(empty_address_);
      continue;
    }
    // Re-resolve with @$myhostname, for backwards compatibility.
    if (domain == kNone && !have_saved) {
      TokenList add{Token::op('@')};
      for (Token& t : scan(myhostname_)) add.push_back(std::move(t));
      sub_append(tree, std::move(add));
      continue;
    }
    domain = kNone;
    break;
  }

  // Make sure the recipient has the user@domain form.
  if (domain == kNone) {
    if (have_saved) {
      sub_append(tree, std::move(saved_domain));
    } else {
      TokenList add{Token::op('@')};
      for (Token& t : scan(myhostname_)) add.push_back(std::move(t));
      sub_append(tree, std::move(add));
    }
  }
  std::string& rcpt = out.recipient;
  rcpt = internalize(tree);
  size_t at = rcpt.rfind('@');
  if (at == std::string::npos) log::panic("no @ in address: \"%s\"", rcpt.c_str());
  std::string rcpt_domain = rcpt.substr(at + 1);
  if (!rcpt_domain.empty() && rcpt_domain[0] == '[') {
    if (!valid_mailhost_literal(rcpt_domain)) out.flags |= kFlagError;
  } else if (!valid_utf8_hostname(smtputf8_, rcpt_domain)) {
    if (resolve_numeric_domain_ && valid_hostaddr(rcpt_domain)) {
      rcpt.insert(at + 1, "[");
      rcpt += ']';
      rcpt_domain = rcpt.substr(at + 1);
      int rc = resolve_local(rcpt_domain);
      if (rc > 0) {
        domain = kNone;
      } else if (rc < 0) {
        out.flags |= kFlagFail;
        return;
      }
    } else {
      out.flags |= kFlagError;
    }
  }
  // Bad address forms stop here.
  if (out.flags & kFlagError) {
    out.flags |= kClassDefault;
    return;
  }

  // Routing operators in the local part, whatever swap_bangpath and
  // allow_percent_hack say: the next MX host may honour them.
  size_t first_op = rcpt.find_first_of("@!%");
  if (rcpt.compare(first_op + 1, std::string::npos, rcpt_domain) != 0) out.flags |= kFlagRouted;

  const char* blame = nullptr;
  std::string& channel = out.transport;
  std::string& nexthop = out.nexthop;
  auto lookup_failure = [&](const std::string& what, const std::string& detail) {
    if (!detail.empty()) log::warning("%s", detail.c_str());
    log::warning("%s lookup failure", what.c_str());
    out.flags |= kFlagFail;
  };
  auto listed = [&](const MatchList& list) { return !list.empty() && list.match(rcpt_domain) == Match::yes; };

  if (domain != kNone) {
    Match alias = virt_alias_domains_.empty() ? Match::no : virt_alias_domains_.match(rcpt_domain);
    Match mailbox = Match::no;
    if (alias == Match::yes) {
      if (helpful_warnings_) {
        if (listed(virt_mailbox_domains_))
          log::warning("do not list domain %s in BOTH %s and %s", rcpt_domain.c_str(), "virtual_alias_domains",
                       "virtual_mailbox_domains");
        if (listed(relay_domains_))
          log::warning("do not list domain %s in BOTH %s and %s", rcpt_domain.c_str(), "virtual_alias_domains",
                       "relay_domains");
      }
      channel = "error";
      nexthop = show_unknown_table_ ? "5.1.1 User unknown in virtual alias table" : "5.1.1 User unknown";
      out.flags |= kClassAlias;
    } else if (alias == Match::error) {
      return lookup_failure("virtual_alias_domains", virt_alias_domains_.error());
    } else if ((mailbox = virt_mailbox_domains_.empty() ? Match::no : virt_mailbox_domains_.match(rcpt_domain)) ==
               Match::yes) {
      if (helpful_warnings_ && listed(relay_domains_))
        log::warning("do not list domain %s in BOTH %s and %s", rcpt_domain.c_str(), "virtual_mailbox_domains",
                     "relay_domains");
      channel = rp.virt_transport;
      nexthop = rcpt_domain;
      blame = rp.virt_transport_name.c_str();
      out.flags |= kClassVirtual;
    } else if (mailbox == Match::error) {
      return lookup_failure("virtual_mailbox_domains", virt_mailbox_domains_.error());
    } else {
      Match relay = relay_domains_.empty() ? Match::no : relay_domains_.match(rcpt_domain);
      if (relay == Match::yes) {
        channel = rp.relay_transport;
        blame = rp.relay_transport_name.c_str();
        out.flags |= kClassRelay;
      } else if (relay == Match::error) {
        return lookup_failure("relay_domains", relay_domains_.error());
      } else {
        // Other off-host destination, perhaps by sender.
        bool chosen = false;
        if (rp.snd_def_transport) {
          std::string key = sender.empty() ? null_def_transport_maps_key_ : std::string(sender);
          maps::Result r = find_address(*rp.snd_def_transport, key);
          if (r.found()) {
            std::string xport = r.value;
            if (xport.empty()) {
              log::warning("%s: ignoring null lookup result for %s", rp.snd_def_transport->title().c_str(),
                           key.c_str());
              xport = "DUNNO";
            }
            channel = iequals(xport, "DUNNO") ? rp.def_transport : xport;
            blame = rp.snd_def_transport->title().c_str();
            chosen = true;
          } else if (r.failed()) {
            return lookup_failure(rp.snd_def_transport->title(), r.error);
          }
        }
        if (!chosen) {
          channel = rp.def_transport;
          blame = rp.def_transport_name.c_str();
        }
        out.flags |= kClassDefault;
      }
      // Off-host delivery: a sender-dependent or the global relayhost
      // overrides the recipient domain.
      bool relayed = false;
      if (rp.snd_relayhost) {
        std::string key = sender.empty() ? null_relay_maps_key_ : std::string(sender);
        maps::Result r = find_address(*rp.snd_relayhost, key);
        if (r.found()) {
          std::string host = r.value;
          if (host.empty()) {
            log::warning("%s: ignoring null lookup result for %s", rp.snd_relayhost->title().c_str(), key.c_str());
            host = "DUNNO";
          }
          // DUNNO: no sender-dependent relay host, use $relayhost.
          if (!iequals(host, "DUNNO")) {
            nexthop = host;
            relayed = true;
          }
        } else if (r.failed()) {
          return lookup_failure(rp.snd_relayhost->title(), r.error);
        }
      }
      if (!relayed) nexthop = rp.relayhost.empty() ? rcpt_domain : rp.relayhost;
    }
  } else {
    // Local delivery.
    if (helpful_warnings_) {
      if (listed(virt_alias_domains_))
        log::warning("do not list domain %s in BOTH %s and %s", rcpt_domain.c_str(), "mydestination",
                     "virtual_alias_domains");
      if (listed(virt_mailbox_domains_))
        log::warning("do not list domain %s in BOTH %s and %s", rcpt_domain.c_str(), "mydestination",
                     "virtual_mailbox_domains");
    }
    channel = rp.local_transport;
    nexthop = rcpt_domain;
    blame = rp.local_transport_name.c_str();
    out.flags |= kClassLocal;
  }

  // An explicit main.cf transport:nexthop overrides the next hop.
  if (size_t colon = channel.find(':'); colon != std::string::npos) {
    std::string destination = channel.substr(colon + 1);
    channel.resize(colon);
    if (!destination.empty()) nexthop = destination;
  }

  if (channel.empty()) {
    if (!blame) log::panic("resolve_addr: null blame");
    log::warning("file %s/%s: parameter %s: null transport is not allowed", config_dir_.c_str(), "main.cf", blame);
    out.flags |= kFlagFail;
    return;
  }
  if (nexthop.empty()) log::panic("resolve_addr: null nexthop");

  // transport_maps may override the transport and next hop (not the
  // virtual alias class's "User unknown").
  if (rp.transport && !(out.flags & kClassAlias)) {
    if (rp.transport->lookup(rcpt, rcpt_domain, channel, nexthop) == TransportTable::Outcome::error)
      return lookup_failure(rp.transport->title(), rp.transport->error());
  }

  // Recipients that have moved, whatever their class.
  if (relocated_) {
    maps::Result r = find_address(*relocated_, rcpt);
    if (r.found()) {
      channel = "error";
      nexthop = "5.1.6 User has moved to " + r.value;
    } else if (r.failed()) {
      return lookup_failure("relocated_maps", r.error);
    }
  }

  // A local part starting with "-" could pass for a command option.
  if (!allow_min_user_ && !rcpt.empty() && rcpt[0] == '-') out.flags |= kFlagError;
}

ResolveResult Engine::resolve(std::string_view sender, std::string_view address, bool verify) const {
  ResolveResult out;
  resolve_addr(verify ? verify_ : regular_, sender, address, out);
  return out;
}

}  // namespace mta::rewrite
