// tls_verify.hpp: the smtp client's server certificate checks, as Postfix
// 3.7's tls_verify.c and tls_client.c do them with OpenSSL 3:
//
//   - the chain is verified against the CA files (smtp_tls_CAfile,
//     smtp_tls_CApath) without stopping the handshake: the verify callback
//     notes the error nearest the leaf (depth, code, the failing
//     certificate's issuer) and lets the handshake go on; the session is
//     "trusted" when SSL_get_verify_result() says X509_V_OK;
//   - at the levels that must match (verify, secure) the match names are
//     handed to OpenSSL (SSL_add1_host, no partial wildcards), so that a
//     name mismatch is a verification error like any other: "hostname"
//     and "nexthop" are resolved by the caller, a leading "." (or
//     "dot-nexthop") matches any sub-domain;
//   - verify_error_text() is tls_log_verify_error()'s line, e.g.
//     "server certificate verification failed for h[a]:p: certificate has
//     expired" or "... num=62:hostname mismatch".
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

namespace mta::tls {

struct VerifyState {
  int depth = -1;  // of the error nearest the leaf; -1: none
  int error = X509_V_OK;
  std::string issuer;  // X509_NAME_oneline of the failing certificate's issuer
};

// Installs the recording callback on SSL; STATE must outlive the handshake.
void track_verify_errors(SSL* ssl, VerifyState* state);

// Adds the match names (already resolved; ".domain" for sub-domains).
// Returns false after logging Postfix's warning when none could be added
// (the session then must not count as matched).
bool add_name_checks(SSL* ssl, const std::vector<std::string>& names, std::string_view namaddr);

// tls_log_verify_error(): "" when there was no error.
std::string verify_error_text(const VerifyState& state, std::string_view namaddr, bool server_side);

}  // namespace mta::tls
