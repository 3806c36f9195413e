// smtp_dane.cpp: see smtp_dane.hpp.
#include "smtp/smtp_dane.hpp"

#include <strings.h>

#include "config/config.hpp"
#include "log/log.hpp"

namespace mta::smtp::dane {

namespace {

// Postfix caches TLSA RRsets for at least TLS_DANE_CACHE_TTL_MIN (a
// minute) and its policies for the life of the process; a minute here.
constexpr std::chrono::seconds kCacheTime{60};

// Postfix's dane_incompat() error types.
enum class Incompat { config, dest, cantauth };

// A host name without its trailing dots.
std::string_view undotted(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

// The owner name of an answer's first record, undotted; "" when there is none.
std::string first_owner(const Answer& a) {
  return a.status == dns::Status::ok && !a.records.empty() ? std::string(undotted(a.records.front().name)) : "";
}

// Host names equal but for case and a trailing dot.
bool same_name(std::string_view a, std::string_view b) {
  a = undotted(a);
  b = undotted(b);
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

const char* mode_name(Mode mode) { return mode == Mode::dane ? "dane" : "dane-only"; }

Answer ResolverDns::query(const std::string& name, int type) {
  Answer a;
  a.status = resolver_.query_dnssec(name, type, a.records, &a.why);
  a.authenticated = resolver_.last_authenticated();
  return a;
}

Settings Settings::from_config(const config::Config& c, std::string_view prefix_view) {
  const std::string prefix(prefix_view);
  auto p = [&](const char* name) { return prefix + "_" + name; };
  Settings s;
  s.smtp_mode = prefix == "smtp";
  s.dnssec = c.get(p("dns_support_level")) == "dnssec";
  s.dns_host_lookup = false;
  for (const std::string& w : c.get_list(p("host_lookup")))
    if (w == "dns") s.dns_host_lookup = true;
  s.ignore_mx_lookup_error = c.get_bool("ignore_mx_lookup_error");
  s.force_tlsa = c.get_bool(p("tls_force_insecure_host_tlsa_lookup"));
  // LMTP has no MX lookups, and Postfix no lmtp_ version of this one.
  std::string mx = s.smtp_mode ? c.get(p("tls_dane_insecure_mx_policy")) : "dane";
  if (strcasecmp(mx.c_str(), "may") == 0) s.insecure_mx = InsecureMx::may;
  else if (strcasecmp(mx.c_str(), "encrypt") == 0) s.insecure_mx = InsecureMx::encrypt;
  else if (strcasecmp(mx.c_str(), "dane") == 0) s.insecure_mx = InsecureMx::dane;
  else log::fatal("invalid %s: \"%s\"", p("tls_dane_insecure_mx_policy").c_str(), mx.c_str());
  std::string warning;
  if (auto d = tls::parse_dane_digests(c.get("tls_dane_digests"), warning); d && !d->empty()) {
    s.digests = std::move(*d);
  } else {
    if (!warning.empty()) log::warning("%s", warning.c_str());
    log::warning("digest algorithm initializaton failed, no DANE support");
    s.digests_ok = false;
  }
  return s;
}

Decision Policy::decide(Mode mode, const Target& t) {
  const std::string key =
      std::string(mode_name(mode)) + "|" + t.dest + "|" + t.domain + "|" + t.host + "|" + std::to_string(t.port);
  auto now = std::chrono::steady_clock::now();
  if (auto it = cache_.find(key); it != cache_.end() && it->second.expires > now) return it->second.decision;
  Decision d = compute(mode, t);
  // A failed lookup is asked again next time, as Postfix's TLSA cache does.
  if (d.level != Level::invalid) cache_[key] = Cached{d, now + kCacheTime};
  else cache_.erase(key);
  return d;
}

Decision Policy::compute(Mode mode, const Target& t) {
  Decision d;
  d.level = Level::dane;
  // dane_incompat(): "dane" falls back (a configuration problem is warned
  // about, the destination's own shortcomings are not); "dane-only"
  // defers instead.
  auto incompat = [&](Incompat type, const std::string& text) {
    if (mode == Mode::dane) {
      d.level = type == Incompat::cantauth ? Level::encrypt : Level::may;
      if (type == Incompat::config) log::warning("%s", text.c_str());
    } else {
      d.level = Level::invalid;
      d.status = "4.7.5";
      if (type == Incompat::config) {
        log::warning("%s", text.c_str());
        d.reason = "client TLS configuration problem";
      } else {
        d.reason = text;
      }
    }
    d.tlsa.clear();
    return d;
  };
  const std::string level = mode_name(mode);
  if (!settings_.digests_ok)
    return incompat(Incompat::config, t.dest + ": " + level + " configured, but no requisite library support");
  if (!settings_.dns_host_lookup || !settings_.dnssec)
    return incompat(Incompat::config, t.dest + ": " + level + " configured with dnssec lookups disabled");
  if (settings_.smtp_mode && settings_.ignore_mx_lookup_error)
    return incompat(Incompat::config, t.dest + ": " + level + " configured with MX lookup errors ignored");

  // The MX RRset that named this host, when there was one (a domain
  // without MX is its own host, as Postfix's iter->mx is then null).
  bool via_mx = false;
  bool mx_secure = false;
  std::string mx_owner;  // the MX records' owner: the next-hop domain, or what it is an alias of
  if (!t.domain.empty()) {
    Answer mx = dns_.query(t.domain, dns::kTypeMx);
    via_mx = mx.status != dns::Status::not_found;
    mx_secure = mx.status == dns::Status::ok && mx.authenticated;
    mx_owner = first_owner(mx);
  }
  if (via_mx && !mx_secure && (mode == Mode::dane_only || settings_.insecure_mx == InsecureMx::may))
    return incompat(Incompat::dest, "non DNSSEC destination");

  // tls_dane_resolve(): no TLSA lookup below a host whose address records
  // were not validated (their zone is unsigned, so is "_tcp" under it).
  // When they were, and the host name is an alias, the validated answer
  // names the CNAME-expanded host: RFC 7672 section 2.2.2 looks for TLSA
  // records there first, then at the original name.
  // An alias whose expansion was not validated (a signed name pointing into
  // an unsigned zone) still has TLSA records at its own name when the CNAME
  // itself validates (Postfix's qname_secure()).
  bool host_secure = false;
  std::string expanded;
  bool numeric = t.host.find_first_not_of("0123456789.") == std::string::npos || t.host.find(':') != std::string::npos;
  if (!numeric) {
    bool v6 = t.addr.find(':') != std::string::npos;
    Answer a = dns_.query(t.host, v6 ? dns::kTypeAaaa : dns::kTypeA);
    if (a.status != dns::Status::ok) a = dns_.query(t.host, v6 ? dns::kTypeA : dns::kTypeAaaa);
    std::string owner = first_owner(a);
    bool alias = !owner.empty() && !same_name(owner, t.host);
    host_secure = a.status == dns::Status::ok && a.authenticated;
    if (host_secure && alias) {
      expanded = owner;
    } else if (!host_secure && alias && !settings_.force_tlsa) {
      Answer cname = dns_.query(t.host, dns::kTypeCname);
      if (cname.status != dns::Status::ok) {
        log::warning("DNSSEC status lookup error for %s: %s", t.host.c_str(),
                     cname.status == dns::Status::not_found ? "no longer a CNAME" : cname.why.c_str());
        d.level = Level::invalid;
        d.status = "4.7.5";
        d.reason = "TLSA lookup error for " + t.host + ":" + std::to_string(t.port);
        return d;
      }
      host_secure = cname.authenticated;
    }
  }
  std::vector<std::string> bases;
  if (!expanded.empty()) bases.push_back(expanded);
  bases.push_back(t.host);
  std::vector<tls::TlsaRecord> found;
  bool tlsa_found = false;
  std::string base;  // where the TLSA records are: the TLSA base domain
  for (size_t i = 0; i < bases.size() && !tlsa_found && !numeric && (host_secure || settings_.force_tlsa); ++i) {
    const std::string qname = "_" + std::to_string(t.port) + "._tcp." + bases[i];
    Answer tlsa = dns_.query(qname, dns::kTypeTlsa);
    if (tlsa.status != dns::Status::ok && tlsa.status != dns::Status::not_found) {
      // Postfix's TLSA cache keeps a failed lookup with an expiry time in
      // the past, so resolve_host() refreshes it at once: the question is
      // asked (and the problem logged) twice.
      log::warning("DANE TLSA lookup problem: %s", tlsa.why.c_str());
      tlsa = dns_.query(qname, dns::kTypeTlsa);
    }
    switch (tlsa.status) {
      case dns::Status::ok:
        if (tlsa.authenticated) {  // an unvalidated RRset counts as none
          tlsa_found = true;
          base = bases[i];
          for (const dns::Record& r : tlsa.records) {
            std::optional<dns::Tlsa> parsed = dns::parse_tlsa(r);
            if (!parsed) {
              log::warning("%s: truncated TLSA RR length == %zu", qname.c_str(), r.data.size());
              continue;
            }
            found.push_back(tls::TlsaRecord{parsed->usage, parsed->selector, parsed->mtype, parsed->data});
          }
        }
        break;
      case dns::Status::not_found:
        break;
      default:
        log::warning("DANE TLSA lookup problem: %s", tlsa.why.c_str());
        d.level = Level::invalid;
        d.status = "4.7.5";
        d.reason = "TLSA lookup error for " + t.host + ":" + std::to_string(t.port);
        return d;
    }
  }
  if (!tlsa_found) return incompat(Incompat::dest, "no TLSA records found");
  std::vector<std::string> warnings;
  d.tlsa = tls::usable_tlsa(found, settings_.digests, "_" + std::to_string(t.port) + "._tcp." + base, warnings);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  if (d.tlsa.empty()) return incompat(Incompat::cantauth, "TLSA records unusable");

  if (via_mx && !mx_secure) {
    if (settings_.insecure_mx == InsecureMx::encrypt)
      return incompat(Incompat::cantauth, "Verification not possible, MX RRset is insecure");
    d.level = Level::half_dane;  // logged as "Trusted", not "Verified"
  }
  // With DANE the names are not configurable: the TLSA base domain (also
  // the SNI name), and when an MX lookup named the host, the MX records'
  // owner and the next-hop domain (Postfix's dane_init(): rname, qname).
  d.base_domain = base;
  d.match_names = {base};
  if (via_mx) {
    for (const std::string& n : {mx_owner, t.domain}) {
      if (n.empty()) continue;
      bool known = false;
      for (const std::string& m : d.match_names) known = known || same_name(m, n);
      if (!known) d.match_names.push_back(n);
    }
  }
  return d;
}

}  // namespace mta::smtp::dane
