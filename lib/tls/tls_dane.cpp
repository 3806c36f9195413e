// tls_dane.cpp: see tls_dane.hpp.
#include "tls/tls_dane.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <strings.h>

#include <cstdlib>

#include "log/log.hpp"
#include "tls/tls_session.hpp"

namespace mta::tls {

namespace {

// The IANA matching types Postfix knows by name.
struct Iana {
  const char* name;
  unsigned mtype;
};
constexpr Iana kIana[] = {{"sha256", 1}, {"sha512", 2}};

std::string element(std::string_view name, const std::string* value) {
  std::string out(name);
  if (value) out += "=" + *value;
  return out;
}

std::string usm(const TlsaRecord& r, int fields) {
  std::string out = std::to_string(r.usage);
  if (fields > 1) out += " " + std::to_string(r.selector);
  if (fields > 2) out += " " + std::to_string(r.mtype);
  return out;
}

}  // namespace

std::string hex_upper(std::string_view bytes) {
  static const char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Postfix's add_digest(), element by element: "name", "name=N" or "=N"
// for a known number.
std::optional<std::vector<DaneDigest>> parse_dane_digests(std::string_view value, std::string& warning) {
  std::vector<DaneDigest> out;
  size_t i = 0;
  while (i < value.size()) {
    size_t e = value.find_first_of(" \t\r\n,", i);
    if (e == std::string_view::npos) e = value.size();
    std::string tok(value.substr(i, e - i));
    i = e + 1;
    if (tok.empty()) continue;
    std::string name = tok;
    std::optional<std::string> num;
    long mtype = -1;
    if (size_t eq = tok.find('='); eq != std::string::npos) {
      name = tok.substr(0, eq);
      num = tok.substr(eq + 1);
      char* end = nullptr;
      long l = num->empty() ? 0 : std::strtol(num->c_str(), &end, 10);
      if (num->empty() || *end != '\0' || l <= 0 || l > 255) {
        warning = "Invalid matching type number in tls_dane_digests: " + name + "=" + *num;
        return std::nullopt;
      }
      mtype = l;
    }
    const std::string* shown = num ? &*num : nullptr;
    std::string md_name = name;
    for (const Iana& k : kIana) {
      if (!name.empty() && strcasecmp(k.name, name.c_str()) == 0) {
        if (mtype >= 0 && static_cast<unsigned>(mtype) != k.mtype) {
          warning = "Non-standard value in tls_dane_digests: " + element(name, shown);
          return std::nullopt;
        }
        mtype = k.mtype;
      } else if (mtype >= 0 && k.mtype == static_cast<unsigned>(mtype)) {
        if (!name.empty()) {
          warning = "Non-standard algorithm in tls_dane_digests: " + element(name, shown);
          return std::nullopt;
        }
        md_name = k.name;
      }
    }
    if (mtype < 0 || md_name.empty()) {
      warning = "Unknown incompletely specified element in tls_dane_digests: " + element(name, shown);
      return std::nullopt;
    }
    for (const DaneDigest& d : out) {
      if (strcasecmp(d.name.c_str(), md_name.c_str()) == 0 || d.mtype == static_cast<unsigned>(mtype)) {
        warning = "Duplicate element in tls_dane_digests: " + element(name, shown);
        return std::nullopt;
      }
    }
    const EVP_MD* md = EVP_get_digestbyname(md_name.c_str());
    int len = md ? EVP_MD_get_size(md) : 0;
    if (md == nullptr || len <= 0 || len > EVP_MAX_MD_SIZE) {
      warning = "Unimplemented digest algorithm in tls_dane_digests: " + element(name, shown);
      return std::nullopt;
    }
    DaneDigest d;
    d.name = md_name;
    for (char& c : d.name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    d.mtype = static_cast<unsigned>(mtype);
    d.length = static_cast<size_t>(len);
    out.push_back(std::move(d));
  }
  return out;
}

// tlsa_carp(): "NAME WHAT: U S M HEXDATA" (long data as tls_dane_log()
// shows it).
std::string carp(const std::string& rr, const char* what, const TlsaRecord& r) {
  constexpr size_t kMaxDump = 32;
  std::string_view d(r.data);
  std::string data = d.size() > kMaxDump ? hex_upper(d.substr(0, kMaxDump)) + "..." + hex_upper(d.substr(d.size() - kMaxDump))
                                         : hex_upper(d);
  return rr + " " + what + ": " + usm(r, 3) + " " + data;
}

// parse_tlsa_rr(): drop what Postfix cannot use, with its warnings.  Postfix
// 3.7 itself drops usages 0 and 1 and matching type 255 and leaves the rest
// to OpenSSL, which ignores what it cannot use; we drop those here too
// (so that "all unusable" is decided before connecting), with warnings in
// the same form.
std::vector<TlsaRecord> usable_tlsa(const std::vector<TlsaRecord>& records, const std::vector<DaneDigest>& digests,
                                    std::string_view rrname_view, std::vector<std::string>& warnings) {
  std::vector<TlsaRecord> out;
  const std::string rr(rrname_view);
  for (const TlsaRecord& r : records) {
    if (r.usage != 2 && r.usage != 3) {  // no PKIX-TA(0)/PKIX-EE(1) for SMTP
      warnings.push_back(carp(rr, "unsupported TLSA certificate usage", r));
      continue;
    }
    if (r.mtype == 255) {
      warnings.push_back(carp(rr, "reserved private-use matching type", r));
      continue;
    }
    if (r.selector != 0 && r.selector != 1) {
      warnings.push_back(carp(rr, "unsupported TLSA selector", r));
      continue;
    }
    if (r.mtype != 0) {
      const DaneDigest* d = nullptr;
      for (const DaneDigest& x : digests)
        if (x.mtype == r.mtype) d = &x;
      if (d == nullptr) {
        warnings.push_back(carp(rr, "unsupported TLSA matching type", r));
        continue;
      }
      if (r.data.size() != d->length) {
        warnings.push_back(carp(rr, "malformed TLSA digest length", r));
        continue;
      }
    } else {
      // A whole certificate or public key must parse.
      const auto* p = reinterpret_cast<const unsigned char*>(r.data.data());
      const unsigned char* start = p;
      long len = static_cast<long>(r.data.size());
      bool ok = false;
      if (r.selector == 0) {
        X509* x = d2i_X509(nullptr, &p, len);
        EVP_PKEY* k = x ? X509_get_pubkey(x) : nullptr;
        ok = x && k && p - start == len;
        EVP_PKEY_free(k);
        X509_free(x);
      } else {
        EVP_PKEY* k = d2i_PUBKEY(nullptr, &p, len);
        ok = k && p - start == len;
        EVP_PKEY_free(k);
      }
      ERR_clear_error();
      if (!ok) {
        warnings.push_back(carp(rr, r.selector == 0 ? "malformed TLSA certificate" : "malformed TLSA public key", r));
        continue;
      }
    }
    out.push_back(r);
  }
  return out;
}

bool enable_dane(SSL* ssl, const std::vector<DaneDigest>& digests, const std::string& base_domain,
                 const std::vector<std::string>& names, const std::vector<TlsaRecord>& records) {
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  // SSL_CTX_dane_enable() is idempotent; the digest preferences follow
  // tls_dane_digests (first is most preferred: highest "ord").
  bool ok = SSL_CTX_dane_enable(ctx) > 0;
  for (size_t i = 0; ok && i < digests.size(); ++i) {
    const EVP_MD* md = EVP_get_digestbyname(digests[i].name.c_str());
    ok = md && SSL_CTX_dane_mtype_set(ctx, md, static_cast<uint8_t>(digests[i].mtype),
                                      static_cast<uint8_t>(digests.size() - i)) > 0;
  }
  // SSL_dane_enable() also makes the base domain the SNI name (RFC 7672
  // section 8.1) and a reference name for DANE-TA chains.
  ok = ok && SSL_dane_enable(ssl, base_domain.c_str()) > 0;
  if (ok) SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  for (const std::string& n : names)
    if (ok && strcasecmp(n.c_str(), base_domain.c_str()) != 0) ok = SSL_add1_host(ssl, n.c_str()) == 1;
  int added = 0;
  for (const TlsaRecord& r : records) {
    if (!ok) break;
    int rc = SSL_dane_tlsa_add(ssl, static_cast<uint8_t>(r.usage), static_cast<uint8_t>(r.selector),
                               static_cast<uint8_t>(r.mtype), reinterpret_cast<const unsigned char*>(r.data.data()),
                               r.data.size());
    if (rc > 0) ++added;
    else if (rc < 0) ok = false;  // an internal error; 0 is an unusable record
  }
  if (!ok || added == 0) {
    log::warning("%s: could not enable DANE TLSA authentication", base_domain.c_str());
    log_errors();
    return false;
  }
  return true;
}

DaneMatch dane_match(SSL* ssl) {
  DaneMatch m;
  EVP_PKEY* mspki = nullptr;
  int depth = SSL_get0_dane_authority(ssl, nullptr, &mspki);
  if (depth < 0 || SSL_get_verify_result(ssl) != X509_V_OK) return m;
  uint8_t u = 0, s = 0, t = 0;
  const unsigned char* data = nullptr;
  size_t dlen = 0;
  if (SSL_get0_dane_tlsa(ssl, &u, &s, &t, &data, &dlen) < 0) return m;
  m.matched = true;
  m.depth = depth;
  m.ta_pkey = mspki != nullptr;
  m.usage = u;
  m.selector = s;
  m.mtype = t;
  m.data.assign(reinterpret_cast<const char*>(data), dlen);
  return m;
}

// tls_dane_log(): the first and (for long data) last 32 bytes.
std::string dane_match_line(const DaneMatch& m, std::string_view namaddr) {
  constexpr size_t kMaxDump = 32;
  std::string what = m.ta_pkey ? "TA public key verified certificate" : m.depth ? "TA certificate" : "EE certificate";
  std::string data = m.data.size() > kMaxDump ? hex_upper(std::string_view(m.data).substr(0, kMaxDump)) + "..." +
                                                    hex_upper(std::string_view(m.data).substr(m.data.size() - kMaxDump))
                                              : hex_upper(m.data);
  return std::string(namaddr) + ": Matched DANE " + what + " at depth " + std::to_string(m.depth) + ": " +
         std::to_string(m.usage) + " " + std::to_string(m.selector) + " " + std::to_string(m.mtype) + " " + data;
}

}  // namespace mta::tls
