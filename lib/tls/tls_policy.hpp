// tls_policy.hpp: Postfix's TLS protocol and cipher settings, parsed.
//
// Pure functions over parameter values, no SSL_CTX: the protocol list syntax
// of smtpd_tls_protocols and friends (">=TLSv1.2", "!SSLv2, !SSLv3",
// "TLSv1.2 TLSv1.3", "<=TLSv1.3"; names are case-insensitive, separators are
// blanks, commas and colons), and the OpenSSL cipher list that a cipher grade
// (export, low, medium, high, null) plus exclusions stand for, built the way
// Postfix's tls_set_ciphers() builds it: "$tls_<grade>_cipherlist" followed
// by ":!x" for each excluded x.  Warnings carry Postfix's text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mta::config {
class Config;
}

namespace mta::tls {

// Postfix's protocol bits (TLS_PROTOCOL_*).
enum ProtocolBit : unsigned {
  kSSLv2 = 1u << 0,
  kSSLv3 = 1u << 1,
  kTLSv1 = 1u << 2,
  kTLSv1_1 = 1u << 3,
  kTLSv1_2 = 1u << 4,
  kTLSv1_3 = 1u << 5,
};
inline constexpr unsigned kKnownProtocols = kSSLv2 | kSSLv3 | kTLSv1 | kTLSv1_1 | kTLSv1_2 | kTLSv1_3;

struct ProtocolPolicy {
  unsigned excluded = 0;  // ProtocolBit set: protocols turned off
  int min_version = 0;    // OpenSSL version constant (TLS1_2_VERSION, ...), 0: none
  int max_version = 0;
  // The SSL_OP_NO_* options for the excluded protocols.
  uint64_t ssl_options() const;
};

// Parses a protocol list; nullopt when any element is unknown (Postfix then
// logs `Invalid TLS protocol list "LIST": disabling TLS support`).  As in
// Postfix, a non-empty include list also excludes every known protocol it
// does not name; ">=" and "<=" set bounds ("None" clears one).
std::optional<ProtocolPolicy> parse_protocols(std::string_view list);

enum class CipherGrade { invalid, export_grade, low, medium, high, null };
CipherGrade parse_cipher_grade(std::string_view grade);  // case-insensitive

// The OpenSSL cipher list for a grade and exclusions.  On failure returns
// nullopt and sets `warning` to Postfix's text (without the "name[addr]: "
// prefix Postfix puts in front): `invalid cipher grade: "x"` or
// `invalid unary '!+-@' in cipher exclusion: x`.  Whether OpenSSL accepts
// the result is for the caller to find out (SSL_CTX_set_cipher_list).
std::optional<std::string> cipher_list(const config::Config& config, std::string_view grade,
                                       std::string_view exclusions, std::string& warning);

// The exclusions for a server as Postfix's smtpd builds them:
// ${prefix}_tls_exclude_ciphers, then the mandatory ones when TLS is
// required, then "aNULL" when client certificates are requested.
std::string server_exclusions(const config::Config& config, std::string_view prefix,
                              bool mandatory, bool ask_client_cert);

// "TLSv1.2" for TLS1_2_VERSION, "" for an unknown version.
std::string_view version_name(int version);

}  // namespace mta::tls
