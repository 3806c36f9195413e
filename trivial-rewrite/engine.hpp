// engine.hpp: what trivial-rewrite computes, independent of the socket:
// rewriting an address to standard form, and resolving it to (transport,
// next hop, recipient, flags).  Postfix's trivial-rewrite rewrite.c,
// resolve.c and resolve_local.c, rule for rule; the daemon (main.cpp) only
// speaks the protocol around it.
//
// rewrite(rule, address), on the external (quoted) form:
//   strip a source route (@a,@b:user@c -> user@c); without an @, swap
//   site!user to user@site (swap_bangpath), else user%site to user@site
//   (allow_percent_hack), else append @$myorigin (append_at_myorigin); then
//   append .$mydomain to a domain without a dot (append_dot_mydomain) and
//   drop one trailing dot.  Rule "local" completes addresses with
//   $myorigin and $mydomain, "remote" with $remote_header_rewrite_domain
//   (nothing when it is empty).  A lone "@" becomes the empty address,
//   and the empty address stays empty.
//
// resolve(sender, address), on the internal form: strips every local
// domain (mydestination, and [address] literals of inet_interfaces and
// proxy_interfaces) and re-applies the rewriting to what is left, until a
// remote domain or a bare local part remains (which gets @$myhostname);
// an empty local part becomes $empty_address_recipient.  The domain then
// picks the address class, in this order:
//   local            $local_transport, next hop the domain
//   virtual alias    error:5.1.1 User unknown in virtual alias table
//                    (virtual_alias_domains)
//   virtual mailbox  $virtual_transport (virtual_mailbox_domains)
//   relay            $relay_transport (relay_domains), next hop
//                    $relayhost or the domain
//   default          $default_transport, or sender_dependent_default_
//                    transport_maps; next hop sender_dependent_relayhost_
//                    maps, $relayhost, or the domain
// A "transport:nexthop" parameter value sets the next hop; transport_maps
// may override both (not for the virtual alias class); relocated_maps turn
// a moved user into error:5.1.6 User has moved to ...  Flags: the class
// bit, RESOLVE_FLAG_ROUTED when the local part still holds routing (@ ! %),
// RESOLVE_FLAG_ERROR for a bad domain or a local part starting with "-"
// (unless allow_min_user), RESOLVE_FLAG_FAIL when a table lookup failed
// (the client retries later).  "verify" requests use the address_verify_*
// versions of the transports, relayhost and maps.
//
// Known differences from Postfix 3.7: an address of white space only is
// returned unchanged by rewrite (Postfix's daemon panics on it); a domain
// with non-ASCII bytes is checked as UTF-8 host name syntax, not converted
// to an A-label by IDNA (see hostname_syntax.hpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "maps/maps.hpp"
#include "maps/match_list.hpp"
#include "trivial-rewrite/interface_addresses.hpp"
#include "trivial-rewrite/local_domains.hpp"
#include "trivial-rewrite/tok822.hpp"
#include "trivial-rewrite/transport_table.hpp"

namespace mta::rewrite {

// The pattern lists live in lib/maps (smtpd uses them too).
using maps::Match;
using maps::match_parent_style;
using maps::MatchList;
using maps::split_patterns;

// Resolve flags (Postfix's resolve_clnt.h; the same values as
// ipc/mail_proto.hpp's kResolve*).
inline constexpr int kFlagFinal = 1 << 0;
inline constexpr int kFlagRouted = 1 << 1;
inline constexpr int kFlagError = 1 << 2;
inline constexpr int kFlagFail = 1 << 3;
inline constexpr int kClassLocal = 1 << 8;
inline constexpr int kClassAlias = 1 << 9;
inline constexpr int kClassVirtual = 1 << 10;
inline constexpr int kClassRelay = 1 << 11;
inline constexpr int kClassDefault = 1 << 12;

struct ResolveResult {
  std::string transport;
  std::string nexthop;
  std::string recipient;
  int flags = 0;
};

// The completion domains of one rewriting rule.
struct RewriteContext {
  std::string origin_name, origin;  // parameter name and value
  std::string domain_name, domain;
};

// The parameters of one resolver personality (regular or verify).
struct ResolveContext {
  std::string local_transport_name, local_transport;
  std::string virt_transport_name, virt_transport;
  std::string relay_transport_name, relay_transport;
  std::string def_transport_name, def_transport;
  std::string relayhost_name, relayhost;
  std::unique_ptr<maps::Maps> snd_def_transport;  // sender_dependent_default_transport_maps
  std::unique_ptr<maps::Maps> snd_relayhost;      // sender_dependent_relayhost_maps
  std::unique_ptr<TransportTable> transport;      // transport_maps
};

class Engine {
 public:
  // Reads every parameter and opens the tables (before chroot).  Throws
  // config::ConfigError for a value that does not parse.  interfaces: the
  // local addresses for [ip] literals (from_config() when absent).
  explicit Engine(const config::Config& config, std::optional<InterfaceAddresses> interfaces = {});

  // nullopt for an unknown rule (the daemon warns and drops the client).
  std::optional<std::string> rewrite(std::string_view rule, std::string_view external) const;
  ResolveResult resolve(std::string_view sender, std::string_view address, bool verify = false) const;

  // resolve_local(): 1 local, 0 not, -1 table error.
  int resolve_local(std::string_view domain) const;
  // resolve_class(): the class bit of a domain, or -1 on a table error.
  int resolve_class(std::string_view domain) const;
  // The spec of a table whose file changed since it was opened, or "".
  std::string changed_table() const;

  const RewriteContext& local_context() const { return local_context_; }

 private:
  void rewrite_tree(const RewriteContext& context, TokenList& tree) const;
  void resolve_addr(const ResolveContext& rp, std::string_view sender, std::string_view addr,
                    ResolveResult& out) const;
  // mail_addr_find() with Postfix's default strategy; error set on failure.
  maps::Result find_address(const maps::Maps& maps, std::string_view address) const;
  void load_context(const config::Config& config, ResolveContext& rp, bool verify);

  // Settings.
  std::string config_dir_;
  std::string myhostname_;
  std::string empty_address_;
  std::string null_relay_maps_key_;
  std::string null_def_transport_maps_key_;
  std::string recipient_delimiter_;
  bool swap_bangpath_ = true;
  bool percent_hack_ = true;
  bool append_at_myorigin_ = true;
  bool append_dot_mydomain_ = false;
  bool warn_compat_append_dot_mydomain_ = false;
  bool resolve_dequoted_ = true;
  bool resolve_null_domain_ = false;
  bool resolve_numeric_domain_ = false;
  bool allow_min_user_ = false;
  bool show_unknown_table_ = true;
  bool helpful_warnings_ = true;
  bool smtputf8_ = true;

  RewriteContext local_context_;
  RewriteContext remote_context_;
  ResolveContext regular_;
  ResolveContext verify_;

  LocalDomains local_;  // mydestination, interfaces
  MatchList virt_alias_domains_;
  MatchList virt_mailbox_domains_;
  MatchList relay_domains_;
  std::unique_ptr<maps::Maps> relocated_;
};

// "transport:nexthop" split at the first colon (nexthop "" when absent).
void split_transport(std::string_view value, std::string& transport, std::string& nexthop);

}  // namespace mta::rewrite
