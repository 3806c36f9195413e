// tls_session.hpp: what a finished TLS handshake looks like in Postfix's words.
//
// describe() reads an SSL object after its handshake into SessionInfo; the
// text functions then print exactly what Postfix 3.7 prints (checked against
// the real Postfix 3.7.11 with OpenSSL 3.0):
//
//   smtpd_tls_loglevel >= 1:
//     Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3
//     with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519
//     server-signature RSA-PSS (2048 bits) server-digest SHA256
//   ("Untrusted"/"Trusted" when the peer sent a certificate, then also
//   " client-signature RSA-PSS (2048 bits) client-digest SHA256"; EC keys
//   show their curve, "key-exchange ECDHE (prime256v1)"; TLS 1.2 and older
//   sessions have no key-exchange/signature part at all);
//
//   smtpd_tls_received_header = yes, Received: continuation lines:
//     (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
//      key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
//     (No client certificate requested)
//
//   a failed handshake:
//     SSL_accept error from localhost[127.0.0.1]: -1
//     warning: TLS library problem: error:0A00009C:SSL routines::http request:../ssl/record/ssl3_record.c:341:
//
// Test certificates: generate them with the openssl command, as the tests do:
//   openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2
//       -keyout key.pem -out cert.pem          (one command line)
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

namespace mta::tls {

struct SessionInfo {
  bool server_side = true;
  std::string protocol;  // "TLSv1.3"
  std::string cipher;    // "TLS_AES_256_GCM_SHA384"
  int cipher_bits = 0;
  int cipher_alg_bits = 0;
  // Key exchange and signatures: filled for TLS 1.3 only, as Postfix does.
  std::string kex_name;   // "X25519", "ECDHE", "DHE"
  std::string kex_curve;  // "prime256v1" (ECDHE)
  int kex_bits = 0;       // DHE
  std::string server_sig;  // "RSA-PSS", "ECDSA", "ED25519"
  std::string server_sig_curve;
  int server_sig_bits = 0;
  std::string server_digest;  // "SHA256"
  std::string client_sig;     // only when the client signed with a certificate
  std::string client_sig_curve;
  int client_sig_bits = 0;
  std::string client_digest;
  // The peer's certificate.
  bool peer_cert = false;
  bool peer_trusted = false;   // the chain verified against the CA files
  bool peer_verified = false;  // trusted and the name matched (set by the caller)
  std::string peer_CN;
  std::string issuer_CN;    // the issuer's CN, else its O, as Postfix
  std::string fingerprint;  // "AB:CD:..." with the digest given to describe()
};

// Reads a session after a successful handshake.  `fingerprint_digest` is the
// value of smtpd_tls_fingerprint_digest (an OpenSSL digest name).
SessionInfo describe(SSL* ssl, bool server_side, std::string_view fingerprint_digest = "sha256");

// The smtpd (or smtp client) log line for smtpd_tls_loglevel >= 1.
// `namaddr` is "name[addr]"; `reused` says "reused" instead of "established".
std::string connection_summary(const SessionInfo& info, std::string_view namaddr,
                               bool reused = false);

// The Received: header's TLS lines for smtpd_tls_received_header, without
// the leading tab that each continuation line needs: the "(using ...)"
// clause (one to three lines; later ones begin with a space) and the client
// certificate clause.  `asked_client_cert` is smtpd_tls_ask_ccert.
std::vector<std::string> received_header_lines(const SessionInfo& info, bool asked_client_cert);

// The first line of a failed handshake as Postfix logs it (at info level),
// before log_errors(): "SSL_accept error from name[addr]: -1" when OpenSSL
// queued errors, else ": <strerror(saved_errno)>", else ": lost connection"
// ("SSL_connect error to ..." on the client side).  `ret` is SSL_accept()'s
// or SSL_connect()'s result; call it before draining the error queue.
std::string handshake_error_line(std::string_view namaddr, bool server_side, int ret,
                                 int saved_errno = 0);

// Drains OpenSSL's error queue into Postfix's tls_print_errors() lines,
// "TLS library problem: error:...:file:line:[data:]", without the
// "warning: " that log_errors() adds.
std::vector<std::string> drain_errors();
// drain_errors(), each line logged as a warning.
void log_errors();

}  // namespace mta::tls
