// tls_dane.hpp: DANE (RFC 6698, RFC 7671, RFC 7672) server authentication
// for the smtp client, on OpenSSL's own DANE code, as Postfix 3.7's
// tls_dane.c and tls_client.c use it:
//
//   - tls_dane_digests ("sha512 sha256", optional "=N" matching type
//     numbers) is parsed into DaneDigests; an invalid element is warned
//     about and disables DANE (Postfix: "... DANE support disabled");
//   - usable_tlsa() keeps the TLSA records Postfix can use: certificate
//     usages 2 (DANE-TA) and 3 (DANE-EE) only (0 and 1, PKIX-TA and
//     PKIX-EE, do not apply to SMTP), selectors 0 and 1, matching type 0
//     (a whole certificate or public key, which must parse) or a digest
//     from the list with the digest's length; the others are dropped with
//     Postfix's warnings ("unsupported certificate usage 1 in RR: ...");
//   - enable_dane() sets up one client SSL: DANE on its context
//     (SSL_CTX_dane_enable, digests in tls_dane_digests order), the TLSA
//     base domain (also the SNI name, as RFC 7672 requires), the extra
//     names a DANE-TA chain may match (the MX host names), the records,
//     and no name checks for DANE-EE (RFC 7672 section 3.1.1);
//   - after the handshake, SSL_get_verify_result() says whether a record
//     matched (X509_V_OK), dane_match() which one, and dane_match_line()
//     is Postfix's "Matched DANE ..." line for smtp_tls_loglevel >= 2.
//
// A matched session is "Verified" in the "TLS connection established"
// line; at the half-dane level (TLSA records of an MX host found through
// an insecure MX lookup, smtp_tls_dane_insecure_mx_policy = dane) only
// "Trusted": the caller decides (SessionInfo::peer_verified).
#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mta::tls {

// One usable matching type: an OpenSSL digest name and its TLSA number.
struct DaneDigest {
  std::string name;  // "sha256"
  unsigned mtype = 0;  // 1 for sha256, 2 for sha512
  size_t length = 0;   // digest length in bytes
};

// Parses tls_dane_digests.  nullopt after setting `warning` (Postfix's
// text) when an element is invalid: an unknown digest, a number that
// contradicts the IANA one of a known digest, 0, above 255 or twice.
std::optional<std::vector<DaneDigest>> parse_dane_digests(std::string_view value, std::string& warning);

struct TlsaRecord {
  unsigned usage = 0;
  unsigned selector = 0;
  unsigned mtype = 0;
  std::string data;  // raw association data
};

// The records Postfix uses, in their order; `rrname` is the TLSA owner
// name for the warnings, which go to `warnings` (without "warning: ").
std::vector<TlsaRecord> usable_tlsa(const std::vector<TlsaRecord>& records, const std::vector<DaneDigest>& digests,
                                    std::string_view rrname, std::vector<std::string>& warnings);

// DANE on SSL (a client SSL before its handshake): false after logging
// when OpenSSL refuses (the caller then must not count the session as
// authenticated, and fails it).  `names` are further reference names for
// DANE-TA chains (the base domain is always one).
bool enable_dane(SSL* ssl, const std::vector<DaneDigest>& digests, const std::string& base_domain,
                 const std::vector<std::string>& names, const std::vector<TlsaRecord>& records);

// The record that authenticated the peer, after the handshake.
struct DaneMatch {
  bool matched = false;
  int depth = -1;          // 0: the server's certificate
  bool ta_pkey = false;    // a DANE-TA public key (no certificate) signed the chain
  unsigned usage = 0, selector = 0, mtype = 0;
  std::string data;        // raw association data
};
DaneMatch dane_match(SSL* ssl);

// "host[addr]:port: Matched DANE EE certificate at depth 0: 3 1 1 ABCD..."
// (Postfix's tls_dane_log(); long data is cut after 32 bytes with "...").
std::string dane_match_line(const DaneMatch& match, std::string_view namaddr);

// Upper-case hex of raw bytes (TLSA association data in logs and tests).
std::string hex_upper(std::string_view bytes);

}  // namespace mta::tls
