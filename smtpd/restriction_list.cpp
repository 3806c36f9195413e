// restriction_list.cpp: running restriction lists and access(5) results
// (Postfix's generic_checks, check_table_result and smtpd_check_reject);
// see restriction_list.hpp.  The restrictions with logic of their own are
// in address_checks.cpp.
#include "smtpd/restriction_list.hpp"

#include <algorithm>
#include <cctype>

#include "ipc/mail_proto.hpp"
#include "log/log.hpp"
#include "smtpd/access_map.hpp"

namespace mta::smtpd {
namespace {

constexpr int kMaxDepth = 100;  // restriction classes within access results ...

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int code_param(const config::Config& config, std::string_view name, int fallback) {
  try {
    return static_cast<int>(config.get_int(name));
  } catch (const std::exception& e) {
    log::warning("%s", e.what());
    return fallback;
  }
}

// The first word and the rest (blanks skipped), as Postfix splits a value.
std::pair<std::string_view, std::string_view> split_command(std::string_view value) {
  size_t end = value.find_first_of(" \t");
  std::string_view cmd = value.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : value.substr(end);
  size_t start = rest.find_first_not_of(" \t");
  rest = start == std::string_view::npos ? std::string_view() : rest.substr(start);
  return {cmd, rest};
}

// An RFC 3463 status code at the start of TEXT ("5.7.1 ..."); its length or 0.
size_t dsn_length(std::string_view text) {
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') return 0;
  size_t i = 2, n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && n < 3) ++i, ++n;
  if (n == 0 || i >= text.size() || text[i] != '.') return 0;
  ++i;
  n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && n < 3) ++i, ++n;
  if (n == 0 || (i < text.size() && text[i] != ' ' && text[i] != '\t')) return 0;
  return i;
}

}  // namespace

// Splits "5.7.1 text" into the status and the text; keeps DSN otherwise.
std::string take_dsn(std::string_view& text, std::string_view dsn) {
  size_t n = dsn_length(text);
  if (n == 0) return std::string(dsn);
  std::string found(text.substr(0, n));
  text.remove_prefix(n);
  size_t start = text.find_first_not_of(" \t");
  text = start == std::string_view::npos ? std::string_view() : text.substr(start);
  return found;
}

// Postfix's smtpd_dsn_fix(): an address status (X.1.Y) made to fit what was
// rejected, keeping the class digit, with Postfix's info line when it changes.
std::string dsn_fix(std::string dsn, std::string_view reply_class) {
  if (dsn.size() < 5 || !std::isdigit(static_cast<unsigned char>(dsn[0])) || dsn.compare(1, 3, ".1.") != 0) return dsn;
  struct Row {
    const char* micro;
    const char* sender;
    const char* rcpt;
  };
  static const Row rows[] = {{"1", "1.7", "1.1"}, {"2", "1.8", "1.2"}, {"3", "1.7", "1.3"}, {"4", "1.7", "1.4"},
                             {"5", "1.0", "1.5"}, {"6", "1.7", "1.6"}, {"7", "1.7", "1.3"}, {"8", "1.8", "1.2"}};
  const std::string micro = dsn.substr(4);
  std::string fixed;
  if (reply_class == "Sender address" || reply_class == "Recipient address") {
    const bool sender = reply_class == "Sender address";
    std::string tail = "1.0";  // the default row
    for (const Row& r : rows)
      if (micro == r.micro) tail = sender ? r.sender : r.rcpt;
    fixed = dsn.substr(0, 2) + tail;
  } else {
    fixed = dsn.substr(0, 2) + "0.0";
  }
  if (fixed.compare(2, std::string::npos, dsn, 2, std::string::npos) != 0)
    log::info("mapping DSN status %s into %s status %s", dsn.c_str(), std::string(reply_class).c_str(),
              fixed.c_str());
  return fixed;
}


Policy::Policy(const config::Config& config, std::shared_ptr<ipc::RewriteService> rewrite,
               std::shared_ptr<DnsLookup> dns)
    : config_(config), rewrite_(std::move(rewrite)), dns_(std::move(dns)) {
  delay_reject = config.get_bool("smtpd_delay_reject");
  helo_required = config.get_bool("smtpd_helo_required");
  reject_unlisted_recipient = config.get_bool("smtpd_reject_unlisted_recipient");
  reject_unlisted_sender = config.get_bool("smtpd_reject_unlisted_sender");
  soft_bounce_ = config.get_bool("soft_bounce");
  show_unknown_table_ = config.get_bool("show_user_unknown_table_name");
  client_port_logging_ = config.get_bool("smtpd_client_port_logging");
  allow_untrusted_routing_ = config.get_bool("allow_untrusted_routing");
  recipient_delimiter_ = config.get("recipient_delimiter");
  null_access_key_ = config.get("smtpd_null_access_lookup_key");
  // Raw: its $rbl_* macros are expanded per reply.
  default_rbl_reply_ = config.lookup("default_rbl_reply").value_or("");
  access_parent_style_ = maps::match_parent_style(config, "smtpd_access_maps");

  defer_code = code_param(config, "defer_code", 450);
  access_map_reject_code_ = code_param(config, "access_map_reject_code", 554);
  access_map_defer_code_ = code_param(config, "access_map_defer_code", 450);
  reject_code_ = code_param(config, "reject_code", 554);
  relay_code_ = code_param(config, "relay_domains_reject_code", 554);
  unknown_client_code_ = code_param(config, "unknown_client_reject_code", 450);
  unknown_name_code_ = code_param(config, "unknown_hostname_reject_code", 450);
  unknown_addr_code_ = code_param(config, "unknown_address_reject_code", 450);
  non_fqdn_code_ = code_param(config, "non_fqdn_reject_code", 504);
  invalid_name_code_ = code_param(config, "invalid_hostname_reject_code", 501);
  local_rcpt_code_ = code_param(config, "unknown_local_recipient_reject_code", 550);
  virt_alias_code_ = code_param(config, "unknown_virtual_alias_reject_code", 550);
  virt_mailbox_code_ = code_param(config, "unknown_virtual_mailbox_reject_code", 550);
  relay_rcpt_code_ = code_param(config, "unknown_relay_recipient_reject_code", 550);
  maps_rbl_code_ = code_param(config, "maps_rbl_reject_code", 554);
  multi_rcpt_code_ = code_param(config, "multi_recipient_bounce_reject_code", 550);

  mynetworks_ = maps::HostList("mynetworks", config.get("mynetworks"), maps::match_parent_style(config, "mynetworks"));
  local_rcpt_maps_ = maps::Maps("local_recipient_maps", config.get("local_recipient_maps"));
  rcpt_canon_maps_ = maps::Maps("recipient_canonical_maps", config.get("recipient_canonical_maps"));
  canonical_maps_ = maps::Maps("canonical_maps", config.get("canonical_maps"));
  virt_alias_maps_ = maps::Maps("virtual_alias_maps", config.get("virtual_alias_maps"));
  virt_mailbox_maps_ = maps::Maps("virtual_mailbox_maps", config.get("virtual_mailbox_maps"));
  relay_rcpt_maps_ = maps::Maps("relay_recipient_maps", config.get("relay_recipient_maps"));
  rbl_reply_maps_ = maps::Maps("rbl_reply_maps", config.get("rbl_reply_maps"));
  for (const std::string& name : config::split_list(config.get("smtpd_restriction_classes")))
    classes_[name] = maps::split_patterns(config.get(name));
}

// ---- replies and logs

const char* Policy::stage_name(const SessionFacts& facts, Stage stage) {
  switch (stage) {
    case Stage::connect: return "CONNECT";
    case Stage::helo:
      if (!facts.helo_command.empty()) return facts.helo_command == "HELO" ? "HELO" : "EHLO";
      return facts.protocol == "SMTP" ? "HELO" : "EHLO";
    case Stage::mail: return "MAIL";
    case Stage::rcpt: return "RCPT";
    case Stage::data: return "DATA";
    case Stage::end_of_data: return "END-OF-MESSAGE";
    case Stage::etrn: return "ETRN";
    case Stage::vrfy: return "VRFY";
  }
  return "CONNECT";
}

std::string Policy::namaddr(const SessionFacts& facts) const {
  std::string out = facts.client_name + "[" + facts.client_addr + "]";
  if (client_port_logging_ && !facts.client_port.empty()) out += ":" + facts.client_port;
  return out;
}

void Policy::log_event(const CheckState& st, std::string_view what, const std::string& text) const {
  const SessionFacts& f = st.facts;
  std::string line = (f.queue_id.empty() ? std::string("NOQUEUE") : f.queue_id) + ": " + std::string(what) + ": " +
                     stage_name(f, st.stage) + " from " + namaddr(f) + ": " + text + ";";
  if (f.have_sender) line += " from=<" + f.sender + ">";
  if (!f.recipient.empty() &&
      (st.stage == Stage::rcpt || st.stage == Stage::vrfy ||
       ((st.stage == Stage::data || st.stage == Stage::end_of_data) && f.recipient_count == 1)))
    line += " to=<" + f.recipient + ">";
  if (!f.protocol.empty()) line += " proto=" + f.protocol;
  if (!f.helo.empty()) line += " helo=<" + f.helo + ">";
  log::info("%s", line.c_str());
}

Outcome Policy::reject(CheckState& st, int code, std::string_view dsn, const std::string& text) {
  int c = code;
  std::string status(dsn);
  std::string body = text;
  if (c < 400 || c > 599) {
    log::warning("SMTP reply code configuration error: %d %s %s", c, status.c_str(), text.c_str());
    c = 450;
    status = "4.7.1";
    body = "Service unavailable";
  }
  // A later 5xx becomes the saved 4xx of defer_if_reject.
  if (c / 100 == 5 && st.defer_if_reject.active && !st.warn_if_reject) {
    c = st.defer_if_reject.code;
    status = st.defer_if_reject.dsn;
    body = st.defer_if_reject.text;
  }
  if (soft_bounce_ && c / 100 == 5) c -= 100;
  if (status.empty()) status = "0.0.0";
  status[0] = static_cast<char>('0' + c / 100);  // the status class follows the reply code
  std::string reply = std::to_string(c) + " " + status + " " + body;
  if (st.warn_if_reject) {
    st.warn_if_reject = false;
    log_event(st, "reject_warning", reply);
    return Outcome::dunno;
  }
  log_event(st, "reject", reply);
  st.reply = reply;
  return Outcome::reject;
}

Outcome Policy::config_error(CheckState& st, const std::string& warning) {
  if (!warning.empty()) log::warning("%s", warning.c_str());
  st.warn_if_reject = false;
  st.defer_if_reject.active = false;
  st.reply = "451 4.3.5 Server configuration error";
  log_event(st, "reject", st.reply);
  return Outcome::reject;
}

Outcome Policy::defer_if(CheckState& /*st*/, DeferredReply& which, int code, std::string_view dsn,
                         const std::string& text) {
  if (!which.active) {  // the first reason is the one reported
    which.active = true;
    which.code = code;
    which.dsn = std::string(dsn);
    which.text = text;
  }
  return Outcome::dunno;
}

// ---- restriction lists

Outcome Policy::run_list(CheckState& st, const std::vector<std::string>& list, const ListContext& ctx) {
  if (++st.depth > kMaxDepth) {
    --st.depth;
    return config_error(st, "restriction list nesting too deep");
  }
  Outcome out = Outcome::dunno;
  for (size_t i = 0; i < list.size() && out == Outcome::dunno; ++i) {
    bool known = true;
    bool warn_next = false;
    if (iequals(list[i], "warn_if_reject")) {
      st.warn_if_reject = true;
      continue;
    }
    warn_next = st.warn_if_reject;
    out = run_word(st, list, i, ctx, &known);
    if (!known) {
      auto cls = classes_.find(list[i]);
      if (cls != classes_.end()) {
        out = run_list(st, cls->second, ctx);
      } else {
        out = config_error(st, "unknown smtpd restriction: \"" + list[i] + "\"");
      }
    }
    // warn_if_reject covers the one restriction after it.
    if (warn_next) st.warn_if_reject = false;
  }
  --st.depth;
  return out;
}

Outcome Policy::run_word(CheckState& st, const std::vector<std::string>& list, size_t& i, const ListContext& ctx,
                         bool* known) {
  SessionFacts& f = st.facts;
  const std::string& w = list[i];
  auto is = [&](std::string_view name) { return iequals(w, name); };
  const bool at_rcpt = !f.recipient.empty() && (st.stage == Stage::rcpt || st.stage == Stage::vrfy);

  // Restrictions with a table argument.
  static constexpr std::string_view kAccess[] = {"check_client_access", "check_reverse_client_hostname_access",
                                                 "check_helo_access", "check_sender_access",
                                                 "check_recipient_access", "check_etrn_access"};
  for (std::string_view name : kAccess) {
    if (!is(name)) continue;
    if (i + 1 >= list.size() || list[i + 1].find(':') == std::string::npos) {
      std::string arg = i + 1 < list.size() ? list[i + 1] : w;
      if (i + 1 < list.size()) ++i;
      return config_error(st, "restriction " + w + ": bad argument \"" + arg + "\": need maptype:mapname");
    }
    ++i;
    return run_access(st, name, list[i], ctx);
  }
  static constexpr std::string_view kRbl[] = {"reject_rbl_client",    "reject_rhsbl_client", "reject_rhsbl_sender",
                                              "reject_rhsbl_helo",    "reject_rhsbl_recipient",
                                              "reject_rhsbl_reverse_client"};
  for (std::string_view name : kRbl) {
    if (!is(name)) continue;
    if (i + 1 >= list.size()) return config_error(st, "restriction " + w + " requires domain name argument");
    ++i;
    return reject_rbl(st, name, list[i], ctx);
  }

  if (is("permit")) return Outcome::ok;
  if (is("reject")) return reject(st, reject_code_, "5.7.1", "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Access denied");
  if (is("defer")) return reject(st, defer_code, "4.7.1", "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Access denied");
  if (is("defer_if_permit"))
    return defer_if(st, st.defer_if_permit, defer_code, "4.7.0",
                    "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: defer_if_permit requested");
  if (is("defer_if_reject"))
    return defer_if(st, st.defer_if_reject, defer_code, "4.7.0",
                    "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: defer_if_reject requested");
  if (is("permit_mynetworks")) {
    bool error = false;
    bool yes = in_mynetworks(f, &error);
    if (error) return config_error(st, "mynetworks: " + mynetworks_.error());
    return yes ? Outcome::ok : Outcome::dunno;
  }
  if (is("permit_sasl_authenticated")) return f.sasl_username.empty() ? Outcome::dunno : Outcome::ok;
  if (is("reject_unauth_pipelining")) return Outcome::dunno;  // the session enforces smtpd_forbid_unauth_pipelining
  if (is("permit_auth_destination")) return at_rcpt ? permit_auth_destination(st, f.recipient) : Outcome::dunno;
  if (is("reject_unauth_destination"))
    return at_rcpt ? reject_unauth_destination(st, f.recipient, relay_code_, "5.7.1") : Outcome::dunno;
  if (is("defer_unauth_destination"))
    return at_rcpt ? reject_unauth_destination(st, f.recipient, relay_code_ - 100, "4.7.1") : Outcome::dunno;
  if (is("reject_unknown_client_hostname") || is("reject_unknown_client")) {
    if (f.name_status == 0) return Outcome::dunno;
    return reject(st, f.name_status >= 5 ? unknown_client_code_ : 450, "4.7.25",
                  "Client host rejected: cannot find your hostname, [" + f.client_addr + "]");
  }
  if (is("reject_unknown_reverse_client_hostname")) {
    if (f.reverse_name_status == 0) return Outcome::dunno;
    return reject(st, f.reverse_name_status >= 5 ? unknown_client_code_ : 450, "4.7.25",
                  "Client host rejected: cannot find your reverse hostname, [" + f.client_addr + "]");
  }
  if (is("reject_invalid_helo_hostname") || is("reject_invalid_hostname"))
    return f.helo.empty() ? Outcome::dunno : reject_invalid_hostname(st, f.helo, {f.helo, "Helo command"});
  if (is("reject_non_fqdn_helo_hostname") || is("reject_non_fqdn_hostname"))
    return f.helo.empty() ? Outcome::dunno : reject_non_fqdn_hostname(st, f.helo, {f.helo, "Helo command"});
  if (is("reject_unknown_helo_hostname") || is("reject_unknown_hostname"))
    return f.helo.empty() ? Outcome::dunno : reject_unknown_hostname(st, f.helo, {f.helo, "Helo command"});
  if (is("reject_non_fqdn_sender"))
    return f.have_sender ? reject_non_fqdn_address(st, f.sender, {f.sender, "Sender address"}) : Outcome::dunno;
  if (is("reject_non_fqdn_recipient"))
    return at_rcpt ? reject_non_fqdn_address(st, f.recipient, {f.recipient, "Recipient address"}) : Outcome::dunno;
  if (is("reject_unknown_sender_domain"))
    return f.have_sender ? reject_unknown_address(st, f.sender, {f.sender, "Sender address"}) : Outcome::dunno;
  if (is("reject_unknown_recipient_domain"))
    return at_rcpt ? reject_unknown_address(st, f.recipient, {f.recipient, "Recipient address"}) : Outcome::dunno;
  if (is("reject_unlisted_sender") || is("reject_unverified_sender_unlisted"))
    return f.have_sender && !f.sender.empty() ? check_rcpt_maps(st, f.sender, "Sender address") : Outcome::dunno;
  if (is("reject_unlisted_recipient") || is("check_recipient_maps")) {
    if (!at_rcpt) return Outcome::dunno;
    Outcome out = check_rcpt_maps(st, f.recipient, "Recipient address");
    st.recipient_maps_checked = true;
    return out;
  }
  if (is("reject_multi_recipient_bounce")) {
    if (f.have_sender && f.sender.empty() && f.recipient_count > (st.stage == Stage::data ? 1 : 0))
      return reject(st, multi_rcpt_code_, "5.5.3",
                    "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Multi-recipient bounce");
    return Outcome::dunno;
  }
  *known = false;
  return Outcome::dunno;
}

// ---- access tables

const maps::Maps& Policy::access_table(const std::string& spec) {
  auto it = tables_.find(spec);
  if (it == tables_.end()) it = tables_.emplace(spec, std::make_unique<maps::Maps>(spec, spec)).first;
  return *it->second;
}

Outcome Policy::run_access(CheckState& st, std::string_view restriction, const std::string& table,
                           const ListContext& ctx) {
  SessionFacts& f = st.facts;
  const maps::Maps& t = access_table(table);
  AccessHit hit;
  ListContext here = ctx;
  if (restriction == "check_client_access") {
    here = {namaddr(f), "Client host"};
    hit = find_host_access(t, f.client_name, f.client_addr, access_parent_style_);
  } else if (restriction == "check_reverse_client_hostname_access") {
    here = {f.reverse_name, "Unverified Client host"};
    hit = find_host_access(t, f.reverse_name, f.client_addr, access_parent_style_);
  } else if (restriction == "check_helo_access") {
    if (f.helo.empty()) return Outcome::dunno;
    here = {f.helo, "Helo command"};
    hit = find_domain_access(t, f.helo, access_parent_style_);
  } else if (restriction == "check_etrn_access") {
    if (f.etrn_domain.empty()) return Outcome::dunno;
    here = {f.etrn_domain, "Etrn command"};
    hit = find_domain_access(t, f.etrn_domain, access_parent_style_);
  } else {
    const bool sender = restriction == "check_sender_access";
    if (sender ? !f.have_sender : (f.recipient.empty() || (st.stage != Stage::rcpt && st.stage != Stage::vrfy)))
      return Outcome::dunno;
    const std::string& addr = sender ? f.sender : f.recipient;
    here = {addr, sender ? "Sender address" : "Recipient address"};
    if (addr.empty()) {
      hit.result = t.find(null_access_key_);
      hit.key = null_access_key_;
    } else {
      ipc::ResolveResult r = resolve(f.sender, addr);
      if (r.flags & ipc::proto::kResolveFlagFail)
        return reject(st, 451, "4.3.0", "<" + addr + ">: Temporary lookup failure");
      std::string canonical = r.recipient.empty() ? addr : r.recipient;
      if (canonical.find('@') == std::string::npos) {
        log::warning("check_mail_access: no @domain in address: %s", canonical.c_str());
        return Outcome::dunno;
      }
      hit = find_address_access(t, canonical, recipient_delimiter_, access_parent_style_);
    }
  }
  if (hit.result.failed()) return lookup_error(st, table, hit.key, here);
  if (!hit.result.found()) return Outcome::dunno;
  return table_result(st, table, hit.result.value, here);
}

Outcome Policy::lookup_error(CheckState& st, const std::string& table, const std::string& key,
                             const ListContext& ctx) {
  log::warning("%s lookup error for \"%s\"", table.c_str(), key.c_str());
  st.warn_if_reject = false;
  return reject(st, 451, "4.3.5", "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Server configuration error");
}

Outcome Policy::table_result(CheckState& st, const std::string& table, const std::string& value,
                             const ListContext& ctx) {
  SessionFacts& f = st.facts;
  auto [cmd, text] = split_command(value);
  const std::string who = "<" + ctx.reply_name + ">: " + ctx.reply_class;
  auto is = [&](std::string_view name) { return iequals(cmd, name); };

  if (is("OK") || all_digits(value)) return Outcome::ok;
  if (is("DUNNO")) return Outcome::dunno;
  if (is("REJECT") || is("DEFER")) {
    const bool defer = is("DEFER");
    std::string dsn = dsn_fix(take_dsn(text, defer ? "4.7.1" : "5.7.1"), ctx.reply_class);
    return reject(st, defer ? access_map_defer_code_ : access_map_reject_code_, dsn,
                  who + " rejected: " + (text.empty() ? std::string("Access denied") : std::string(text)));
  }
  if (is("DEFER_IF_REJECT") || is("DEFER_IF_PERMIT")) {
    std::string dsn = dsn_fix(take_dsn(text, "4.7.1"), ctx.reply_class);
    return defer_if(st, is("DEFER_IF_REJECT") ? st.defer_if_reject : st.defer_if_permit, access_map_defer_code_, dsn,
                    who + " rejected: " + (text.empty() ? std::string("Service unavailable") : std::string(text)));
  }
  if (is("HOLD") || is("DISCARD")) {
    const bool hold = is("HOLD");
    std::string reason = who + " " + (text.empty() ? std::string("triggers ") + (hold ? "HOLD" : "DISCARD") + " action"
                                                   : std::string(text));
    log_event(st, hold ? "hold" : "discard", reason);
    (hold ? f.actions.hold_reason : f.actions.discard_reason) = reason;
    return hold ? Outcome::dunno : Outcome::ok;
  }
  if (is("FILTER") || is("REDIRECT") || is("BCC")) {
    std::string what(cmd);
    for (char& c : what) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const bool filter = what == "FILTER";
    if (text.empty() || (filter && text.find(':') == std::string_view::npos)) {
      log::warning("access table %s entry \"%s\" has %s entry without value", table.c_str(), value.c_str(), what.c_str());
      return Outcome::dunno;
    }
    std::string lower = what;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    log_event(st, lower, who + " triggers " + what + " " + std::string(text));
    if (filter) f.actions.filter = std::string(text);
    else if (what == "REDIRECT") f.actions.redirect = std::string(text);
    else f.actions.bcc.emplace_back(text);
    return Outcome::dunno;
  }
  if (is("PREPEND")) {
    if (text.empty() || text.find(':') == std::string_view::npos) {
      log::warning("access table %s entry \"%s\" has PREPEND entry without valid header", table.c_str(), value.c_str());
      return Outcome::dunno;
    }
    if (st.stage == Stage::end_of_data) {
      log::warning("access table %s: PREPEND action is not allowed in end-of-data restrictions", table.c_str());
      return Outcome::dunno;
    }
    f.actions.prepend.emplace_back(text);
    return Outcome::dunno;
  }
  if (is("WARN") || is("INFO")) {
    log_event(st, is("WARN") ? "warn" : "info", std::string(text.empty() ? std::string_view("") : text));
    return Outcome::dunno;
  }
  // "4NN text" and "5NN text".
  if (value.size() >= 3 && (value[0] == '4' || value[0] == '5') && std::isdigit(static_cast<unsigned char>(value[1])) &&
      std::isdigit(static_cast<unsigned char>(value[2])) && (value.size() == 3 || value[3] == ' ' || value[3] == '\t')) {
    int code = std::stoi(value.substr(0, 3));
    std::string_view rest = text;
    std::string dsn = dsn_fix(take_dsn(rest, value[0] == '4' ? "4.7.1" : "5.7.1"), ctx.reply_class);
    return reject(st, code, dsn, who + " rejected: " + std::string(rest));
  }
  // Anything else names restrictions.
  return run_list(st, maps::split_patterns(value), ctx);
}

// ---- helpers

bool Policy::in_mynetworks(const SessionFacts& facts, bool* error) const {
  maps::Match m = mynetworks_.match(facts.client_name, facts.client_addr);
  if (m == maps::Match::error) {
    log::warning("%s", mynetworks_.error().c_str());
    if (error) *error = true;
    return false;
  }
  return m == maps::Match::yes;
}

ipc::ResolveResult Policy::resolve(const std::string& sender, const std::string& addr) {
  return rewrite_->resolve(sender, addr);
}

std::string Policy::changed_table() const {
  std::string changed = mynetworks_.changed_table();
  if (!changed.empty()) return changed;
  for (const auto& [spec, t] : tables_)
    if (t->has_changed()) return spec;
  for (const maps::Maps* m : {&local_rcpt_maps_, &rcpt_canon_maps_, &canonical_maps_, &virt_alias_maps_,
                              &virt_mailbox_maps_, &relay_rcpt_maps_})
    if (m->has_changed()) return m->title();
  return {};
}

}  // namespace mta::smtpd
