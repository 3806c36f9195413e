// address_checks.cpp: the restrictions of smtpd's access policy that look
// at addresses and names: relay authorization (permit_auth_destination,
// reject/defer_unauth_destination), syntax (reject_non_fqdn_*,
// reject_invalid_helo_hostname), DNS (reject_unknown_*_domain,
// reject_unknown_helo_hostname, reject_rbl_client, reject_rhsbl_*) and
// recipient validation against the address tables (Postfix's
// check_rcpt_maps).  Reply texts and codes are Postfix 3.7's.
#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include "config/expand.hpp"
#include "ipc/mail_proto.hpp"
#include "log/log.hpp"
#include "smtpd/restriction_list.hpp"
#include "trivial-rewrite/hostname_syntax.hpp"

namespace mta::smtpd {
namespace {

namespace proto = ipc::proto;
constexpr int kFinal = proto::kResolveClassLocal | proto::kResolveClassAlias | proto::kResolveClassVirtual;

std::string_view strip_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(address.substr(at + 1));
}

// One octet pattern of an RBL filter: "2", "[2..4]", "[2;4;8..9]".
bool octet_matches(std::string_view pattern, int value) {
  if (pattern.size() >= 2 && pattern.front() == '[' && pattern.back() == ']') {
    pattern = pattern.substr(1, pattern.size() - 2);
    while (!pattern.empty()) {
      size_t semi = pattern.find(';');
      std::string_view item = pattern.substr(0, semi);
      pattern = semi == std::string_view::npos ? std::string_view() : pattern.substr(semi + 1);
      size_t range = item.find("..");
      try {
        int lo = std::stoi(std::string(item.substr(0, range)));
        int hi = range == std::string_view::npos ? lo : std::stoi(std::string(item.substr(range + 2)));
        if (value >= lo && value <= hi) return true;
      } catch (const std::exception&) {
        return false;
      }
    }
    return false;
  }
  try {
    return std::stoi(std::string(pattern)) == value;
  } catch (const std::exception&) {
    return false;
  }
}

bool filter_matches(std::string_view filter, std::string_view addr) {
  for (int i = 0; i < 4; ++i) {
    size_t fdot = filter.find('.'), adot = addr.find('.');
    if ((fdot == std::string_view::npos) != (adot == std::string_view::npos) && i < 3) return false;
    int value = 0;
    try {
      value = std::stoi(std::string(addr.substr(0, adot)));
    } catch (const std::exception&) {
      return false;
    }
    if (!octet_matches(filter.substr(0, fdot), value)) return false;
    if (fdot == std::string_view::npos) return i == 3;
    filter.remove_prefix(fdot + 1);
    addr.remove_prefix(adot + 1);
  }
  return false;
}

// The DNS name of an address in a block list: 4.3.2.1 or nibbles for IPv6.
std::string reversed_address(const std::string& addr) {
  std::string out;
  if (addr.find(':') == std::string::npos) {
    size_t end = addr.size();
    while (end > 0) {
      size_t dot = addr.rfind('.', end - 1);
      size_t start = dot == std::string::npos ? 0 : dot + 1;
      out += addr.substr(start, end - start) + ".";
      if (dot == std::string::npos) break;
      end = dot;
    }
    if (!out.empty()) out.pop_back();
    return out;
  }
  // Expand the IPv6 address to 32 nibbles.
  std::string groups[8];
  size_t gap = addr.find("::");
  auto split = [](std::string_view s, std::vector<std::string>& v) {
    while (!s.empty()) {
      size_t c = s.find(':');
      v.emplace_back(s.substr(0, c));
      if (c == std::string_view::npos) break;
      s.remove_prefix(c + 1);
    }
  };
  std::vector<std::string> head, tail;
  if (gap == std::string::npos) {
    split(addr, head);
  } else {
    split(std::string_view(addr).substr(0, gap), head);
    split(std::string_view(addr).substr(gap + 2), tail);
  }
  if (head.size() + tail.size() > 8) return {};
  for (size_t i = 0; i < head.size(); ++i) groups[i] = head[i];
  for (size_t i = 0; i < tail.size(); ++i) groups[8 - tail.size() + i] = tail[i];
  std::string nibbles;
  for (std::string& g : groups) nibbles += std::string(4 - std::min<size_t>(4, g.size()), '0') + g;
  for (size_t i = nibbles.size(); i > 0; --i) {
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(nibbles[i - 1])));
    out += '.';
  }
  out.pop_back();
  return out;
}

class RblMacros : public config::MacroSource {
 public:
  std::map<std::string, std::string, std::less<>> values;
  std::optional<std::string> lookup(std::string_view name) const override {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second;
  }
};

}  // namespace

// ---- relay authorization

Outcome Policy::permit_auth_destination(CheckState& st, const std::string& rcpt) {
  ipc::ResolveResult r = resolve(st.facts.sender, rcpt);
  if (r.flags & proto::kResolveFlagFail) return reject(st, 451, "4.3.0", "<" + rcpt + ">: Temporary lookup failure");
  if (r.recipient.find('@') == std::string::npos) return Outcome::ok;  // not supposed to happen
  if (!allow_untrusted_routing_ && (r.flags & proto::kResolveFlagRouted)) return Outcome::dunno;
  if (r.flags & (kFinal | proto::kResolveClassRelay)) return Outcome::ok;
  return Outcome::dunno;
}

Outcome Policy::reject_unauth_destination(CheckState& st, const std::string& rcpt, int code, std::string_view dsn) {
  Outcome auth = permit_auth_destination(st, rcpt);
  if (auth == Outcome::reject) return auth;
  if (auth == Outcome::ok) return Outcome::dunno;
  return reject(st, code, dsn, "<" + rcpt + ">: Relay access denied");
}

// ---- syntax

Outcome Policy::reject_non_fqdn_address(CheckState& st, const std::string& addr, const ListContext& ctx) {
  if (addr.empty()) return Outcome::dunno;
  std::string domain = domain_of(addr);
  if (!domain.empty() && domain[0] == '[') return Outcome::dunno;
  std::string_view test = strip_dot(domain);
  if (test.empty() || !rewrite::valid_hostname(test) || test.find('.') == std::string_view::npos)
    return reject(st, non_fqdn_code_, "4.5.2",
                  "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: need fully-qualified address");
  return Outcome::dunno;
}

Outcome Policy::reject_non_fqdn_hostname(CheckState& st, const std::string& name, const ListContext& ctx) {
  if (name.empty() || name[0] == '[') return Outcome::dunno;
  std::string_view test = strip_dot(name);
  if (!rewrite::valid_hostname(test) || test.find('.') == std::string_view::npos)
    return reject(st, non_fqdn_code_, "4.5.2",
                  "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: need fully-qualified hostname");
  return Outcome::dunno;
}

Outcome Policy::reject_invalid_hostname(CheckState& st, const std::string& name, const ListContext& ctx) {
  if (name.empty()) return Outcome::dunno;
  if (name[0] == '[') {
    std::string_view inner = name;
    inner.remove_prefix(1);
    if (!inner.empty() && inner.back() == ']') inner.remove_suffix(1);
    if (inner.size() > 5 && (inner.substr(0, 5) == "IPv6:" || inner.substr(0, 5) == "ipv6:")) inner.remove_prefix(5);
    if (!rewrite::valid_hostaddr(inner))
      return reject(st, invalid_name_code_, "4.5.2",
                    "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: invalid ip address");
    return Outcome::dunno;
  }
  std::string_view test = strip_dot(name);
  if (!rewrite::valid_hostname(test) && !rewrite::valid_hostaddr(test))
    return reject(st, invalid_name_code_, "4.5.2",
                  "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Invalid name");
  return Outcome::dunno;
}

// ---- DNS

Outcome Policy::reject_unknown_hostname(CheckState& st, const std::string& name, const ListContext& ctx) {
  if (name.empty() || name[0] == '[') return Outcome::dunno;
  DnsStatus s = dns_->host(std::string(strip_dot(name)));
  if (s == DnsStatus::ok || s == DnsStatus::null_mx) return Outcome::dunno;  // MTA names may have a null MX
  std::string text = "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Host not found";
  if (s == DnsStatus::retry) return defer_if(st, st.defer_if_permit, 450, "4.7.1", text);
  return reject(st, unknown_name_code_, "4.7.1", text);
}

std::string Policy::unknown_address_domain(const std::string& sender, const std::string& addr) {
  if (addr.empty() || addr.find('@') == std::string::npos) return {};
  ipc::ResolveResult r = resolve(sender, addr);
  if (r.flags & (proto::kResolveFlagFail | kFinal)) return {};
  std::string domain = domain_of(r.recipient.empty() ? addr : r.recipient);
  if (domain.empty() || (domain.front() == '[' && domain.back() == ']')) return {};
  return std::string(strip_dot(domain));
}

Outcome Policy::reject_unknown_address(CheckState& st, const std::string& addr, const ListContext& ctx) {
  if (addr.empty() || addr.find('@') == std::string::npos) return Outcome::dunno;
  ipc::ResolveResult r = resolve(st.facts.sender, addr);
  if (r.flags & proto::kResolveFlagFail) return reject(st, 451, "4.3.0", "<" + addr + ">: Temporary lookup failure");
  std::string domain = domain_of(r.recipient.empty() ? addr : r.recipient);
  if (domain.empty() || (r.flags & kFinal)) return Outcome::dunno;
  if (domain.front() == '[' && domain.back() == ']') return Outcome::dunno;
  const bool sender = ctx.reply_class == "Sender address";
  std::string dsn = sender ? "4.1.8" : "4.1.2";
  std::string text = "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Domain not found";
  DnsStatus s = dns_->mail_host(std::string(strip_dot(domain)));
  if (s == DnsStatus::ok) return Outcome::dunno;
  // RFC 7505: the domain says it takes no mail.  Postfix's codes are fixed
  // (not unknown_address_reject_code): 550 5.7.27 for a sender, 556 5.1.10
  // for a recipient; warn_if_reject, defer_if_reject and soft_bounce apply
  // as to any reject.
  if (s == DnsStatus::null_mx)
    return reject(st, sender ? 550 : 556, sender ? "5.7.27" : "5.1.10",
                  "<" + ctx.reply_name + ">: " + ctx.reply_class + " rejected: Domain " + domain +
                      " does not accept mail (nullMX)");
  if (s == DnsStatus::retry) return defer_if(st, st.defer_if_permit, 450, dsn, text);
  return reject(st, unknown_addr_code_, dsn, text);
}

std::string Policy::expand_rbl_reply(const CheckState& st, const std::string& templ, const std::string& code,
                                     const std::string& rbl_class, const std::string& what, const std::string& domain,
                                     const std::string& reason) const {
  const SessionFacts& f = st.facts;
  RblMacros m;
  m.values = {{"rbl_code", code},
              {"rbl_class", rbl_class},
              {"rbl_what", what},
              {"rbl_domain", domain},
              {"rbl_reason", reason},
              {"rbl_txt", reason},
              {"client", namaddr(f)},
              {"client_address", f.client_addr},
              {"client_name", f.client_name},
              {"reverse_client_name", f.reverse_name},
              {"helo_name", f.helo},
              {"sender", f.sender},
              {"sender_name", f.sender.substr(0, f.sender.rfind('@'))},
              {"sender_domain", domain_of(f.sender)},
              {"recipient", f.recipient},
              {"recipient_name", f.recipient.substr(0, f.recipient.rfind('@'))},
              {"recipient_domain", domain_of(f.recipient)}};
  try {
    return config::expand(templ, m);
  } catch (const std::exception& e) {
    log::warning("%s: %s", templ.c_str(), e.what());
    return code + " Service unavailable; " + rbl_class + " [" + what + "] blocked using " + domain;
  }
}

// What a block list restriction looks up: the value it checks (WHAT, for
// the reply), its class, and the name to prepend to the list's domain
// ("" when there is nothing to look up).
std::string Policy::rbl_target(std::string_view kind, const SessionFacts& f, Stage stage, std::string& what,
                               std::string& rbl_class) {
  if (kind == "reject_rbl_client") {
    if (f.client_addr.empty()) return {};
    what = f.client_addr;
    rbl_class = "Client host";
    return reversed_address(f.client_addr);
  }
  if (kind == "reject_rhsbl_client") what = f.client_name == "unknown" ? "" : f.client_name, rbl_class = "Client host";
  else if (kind == "reject_rhsbl_reverse_client")
    what = f.reverse_name == "unknown" ? "" : f.reverse_name, rbl_class = "Unverified Client host";
  else if (kind == "reject_rhsbl_helo") what = f.helo, rbl_class = "Helo command";
  else if (kind == "reject_rhsbl_sender") what = domain_of(f.sender), rbl_class = "Sender address";
  else what = stage == Stage::rcpt ? domain_of(f.recipient) : "", rbl_class = "Recipient address";
  if (what.empty() || what[0] == '[') return {};
  return what;
}

Outcome Policy::reject_rbl(CheckState& st, std::string_view kind, const std::string& spec, const ListContext&) {
  const SessionFacts& f = st.facts;
  std::string domain = spec, filter;
  if (size_t eq = spec.find('='); eq != std::string::npos) {
    domain = spec.substr(0, eq);
    filter = spec.substr(eq + 1);
  }
  std::string what, rbl_class;
  std::string query = rbl_target(kind, f, st.stage, what, rbl_class);
  if (query.empty()) return Outcome::dunno;
  query += "." + domain;
  std::vector<std::string> addrs;
  if (dns_->a_records(query, addrs) != DnsStatus::ok) return Outcome::dunno;  // temporary errors are ignored
  if (!filter.empty()) {
    bool hit = false;
    for (const std::string& a : addrs) hit = hit || filter_matches(filter, a);
    if (!hit) return Outcome::dunno;
  }
  std::vector<std::string> txt;
  std::string reason;
  if (dns_->txt_records(query, txt) == DnsStatus::ok && !txt.empty()) reason = txt.front();

  std::string templ = default_rbl_reply_;
  maps::Result custom = rbl_reply_maps_.find(domain);
  if (custom.failed()) return reject(st, 451, "4.3.0", "<" + domain + ">: Temporary lookup failure");
  if (custom.found()) templ = custom.value;
  std::string reply = expand_rbl_reply(st, templ, std::to_string(maps_rbl_code_), rbl_class, what, domain, reason);
  int code = maps_rbl_code_;
  std::string_view text = reply;
  if (text.size() >= 3 && std::isdigit(static_cast<unsigned char>(text[0])) &&
      std::isdigit(static_cast<unsigned char>(text[1])) && std::isdigit(static_cast<unsigned char>(text[2]))) {
    code = std::stoi(std::string(text.substr(0, 3)));
    text.remove_prefix(3);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  }
  std::string dsn = code / 100 == 4 ? "4.7.1" : "5.7.1";
  // An enhanced status code at the start of the text replaces the default.
  if (text.size() > 5 && (text[0] == '4' || text[0] == '5') && text[1] == '.') {
    size_t sp = text.find(' ');
    std::string candidate(text.substr(0, sp));
    if (std::count(candidate.begin(), candidate.end(), '.') == 2) {
      dsn = candidate;
      text.remove_prefix(sp == std::string_view::npos ? text.size() : sp + 1);
    }
  }
  return reject(st, code, dsn, std::string(text));
}

// ---- recipient validation

Outcome Policy::check_rcpt_maps(CheckState& st, const std::string& address, const std::string& reply_class) {
  const bool sender = reply_class == "Sender address";
  ipc::ResolveResult r = resolve(st.facts.sender, address);
  if (r.flags & proto::kResolveFlagFail) return reject(st, 451, "4.3.0", "<" + address + ">: Temporary lookup failure");
  const std::string rcpt = r.recipient.empty() ? address : r.recipient;
  const bool local = r.flags & proto::kResolveClassLocal;
  maps::AddressLookup how;
  how.recipient_delimiter = recipient_delimiter_;
  how.localpart_if_local = true;
  how.is_local_domain = [local](std::string_view) { return local; };
  bool failed = false;
  // Postfix's NOMATCH(): not in the table; an error ends the check.
  auto nomatch = [&](const maps::Maps& table) {
    if (failed || table.empty()) return !failed;
    maps::Result found = maps::find_address(table, rcpt, how);
    if (found.failed()) {
      log::warning("%s lookup error for \"%s\"", table.title().c_str(), rcpt.c_str());
      failed = true;
      return false;
    }
    return !found.found();
  };
  // What resolves to the error transport is undeliverable, unless a
  // canonical or virtual alias table knows the address (Postfix: "At this
  // point, anything that resolves to the error mailer is known to be
  // undeliverable"); the transport's next hop is the reason.
  if (r.transport == "error") {
    if (!(nomatch(rcpt_canon_maps_) && nomatch(canonical_maps_) && nomatch(virt_alias_maps_))) {
      if (failed) return reject(st, 451, "4.3.0", "<" + address + ">: Temporary lookup failure");
      return Outcome::dunno;
    }
    if (failed) return reject(st, 451, "4.3.0", "<" + address + ">: Temporary lookup failure");
    std::string_view text = r.nexthop;
    std::string dsn = dsn_fix(take_dsn(text, "5.1.1"), reply_class);
    return reject(st, (r.flags & proto::kResolveClassAlias) ? virt_alias_code_ : 550, dsn,
                  "<" + address + ">: " + reply_class + " rejected: " + std::string(text));
  }
  const char* table = nullptr;
  int code = 550;
  if (local) {
    if (!local_rcpt_maps_.empty() && nomatch(local_rcpt_maps_) && nomatch(rcpt_canon_maps_) &&
        nomatch(canonical_maps_) && nomatch(virt_alias_maps_))
      table = "local recipient table", code = local_rcpt_code_;
  } else if (r.flags & proto::kResolveClassAlias) {
    if (nomatch(rcpt_canon_maps_) && nomatch(canonical_maps_) && nomatch(virt_alias_maps_))
      table = "virtual alias table", code = virt_alias_code_;
  } else if (r.flags & proto::kResolveClassVirtual) {
    if (nomatch(rcpt_canon_maps_) && nomatch(canonical_maps_) && nomatch(virt_alias_maps_) &&
        nomatch(virt_mailbox_maps_))
      table = "virtual mailbox table", code = virt_mailbox_code_;
  } else if (r.flags & proto::kResolveClassRelay) {
    if (!relay_rcpt_maps_.empty() && nomatch(rcpt_canon_maps_) && nomatch(canonical_maps_) &&
        nomatch(virt_alias_maps_) && nomatch(relay_rcpt_maps_))
      table = "relay recipient table", code = relay_rcpt_code_;
  }
  if (failed) return reject(st, 451, "4.3.0", "<" + address + ">: Temporary lookup failure");
  if (!table) return Outcome::dunno;
  return reject(st, code, sender ? "5.1.0" : "5.1.1",
                "<" + address + ">: " + reply_class + " rejected: User unknown" +
                    (show_unknown_table_ ? std::string(" in ") + table : std::string()));
}

}  // namespace mta::smtpd
