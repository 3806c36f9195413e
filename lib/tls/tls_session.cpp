// tls_session.cpp: session descriptions and Postfix's TLS log and header text.
#include "tls/tls_session.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "log/log.hpp"

namespace mta::tls {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

std::string group_name(const EVP_PKEY* pkey) {
  char name[80];
  size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1) return {};
  return std::string(name, len);
}

// Postfix's naming of a signing key: RSA keys sign with RSA-PSS under TLS
// 1.3; EC keys are "ECDSA" with their curve; others by their long name.
void describe_signer(const EVP_PKEY* pkey, std::string& name, std::string& curve, int& bits) {
  int id = EVP_PKEY_get_base_id(pkey);
  switch (id) {
    case EVP_PKEY_RSA:
      name = "RSA-PSS";
      bits = EVP_PKEY_get_bits(pkey);
      break;
    case EVP_PKEY_EC:
      name = "ECDSA";
      curve = group_name(pkey);
      break;
    case NID_undef:
      break;
    default:
      if (const char* ln = OBJ_nid2ln(id)) name = ln;
      break;
  }
}

std::string digest_name(int nid) {
  if (nid == NID_undef) return {};
  const char* sn = OBJ_nid2sn(nid);
  return sn != nullptr ? sn : "";
}

// The key exchange, from the peer's ephemeral key share.
void describe_kex(SSL* ssl, SessionInfo& info) {
  EVP_PKEY* raw = nullptr;
  if (SSL_get_peer_tmp_key(ssl, &raw) != 1 || raw == nullptr) return;
  std::unique_ptr<EVP_PKEY, PkeyFree> key(raw);
  int id = EVP_PKEY_get_base_id(key.get());
  if (id == EVP_PKEY_DH) {
    info.kex_name = "DHE";
    info.kex_bits = EVP_PKEY_get_bits(key.get());
  } else if (id == EVP_PKEY_EC) {
    info.kex_name = "ECDHE";
    info.kex_curve = group_name(key.get());
  } else if (id != NID_undef) {
    if (const char* sn = OBJ_nid2sn(id)) info.kex_name = sn;
  } else if (const char* type = EVP_PKEY_get0_type_name(key.get())) {
    info.kex_name = type;
  }
}

void describe_signatures(SSL* ssl, bool server_side, SessionInfo& info) {
  std::string& local_name = server_side ? info.server_sig : info.client_sig;
  std::string& local_curve = server_side ? info.server_sig_curve : info.client_sig_curve;
  int& local_bits = server_side ? info.server_sig_bits : info.client_sig_bits;
  std::string& local_digest = server_side ? info.server_digest : info.client_digest;
  std::string& peer_name = server_side ? info.client_sig : info.server_sig;
  std::string& peer_curve = server_side ? info.client_sig_curve : info.server_sig_curve;
  int& peer_bits = server_side ? info.client_sig_bits : info.server_sig_bits;
  std::string& peer_digest = server_side ? info.client_digest : info.server_digest;

  // A client may hold a certificate that it never used: only a signature
  // shows that it did.
  int nid = NID_undef;
  bool local_signed = SSL_get_signature_nid(ssl, &nid) == 1;
  X509* local = (server_side || local_signed) ? SSL_get_certificate(ssl) : nullptr;
  if (local != nullptr) {
    if (const EVP_PKEY* pkey = X509_get0_pubkey(local)) {
      describe_signer(pkey, local_name, local_curve, local_bits);
      if (!local_name.empty() && local_signed) local_digest = digest_name(nid);
    }
  }
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    if (const EVP_PKEY* pkey = X509_get0_pubkey(peer)) {
      describe_signer(pkey, peer_name, peer_curve, peer_bits);
      nid = NID_undef;
      if (!peer_name.empty() && SSL_get_peer_signature_nid(ssl, &nid) == 1)
        peer_digest = digest_name(nid);
    }
  }
}

// The text of the last entry `nid` in a name; empty when absent or when it
// holds NULs or control characters (Postfix refuses such names too).
std::string name_entry(const X509_NAME* name, int nid) {
  int pos = -1;
  for (int next; (next = X509_NAME_get_index_by_NID(name, nid, pos)) >= 0;) pos = next;
  if (pos < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return {};
  return text;
}

std::string fingerprint_of(X509* cert, std::string_view digest) {
  const EVP_MD* md = EVP_get_digestbyname(std::string(digest).c_str());
  if (md == nullptr) return {};
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, buf, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out += ':';
    out += kHex[buf[i] >> 4];
    out += kHex[buf[i] & 0xf];
  }
  return out;
}

void append_sig(std::string& out, std::string_view role, const std::string& name,
                const std::string& curve, int bits, const std::string& digest) {
  out += ' ';
  out += role;
  out += "-signature ";
  out += name;
  if (!curve.empty())
    out += " (" + curve + ")";
  else if (bits > 0)
    out += " (" + std::to_string(bits) + " bits)";
  if (!digest.empty()) {
    out += ' ';
    out += role;
    out += "-digest " + digest;
  }
}

std::string kex_text(const SessionInfo& info) {
  std::string out = " key-exchange " + info.kex_name;
  if (!info.kex_curve.empty())
    out += " (" + info.kex_curve + ")";
  else if (info.kex_bits > 0)
    out += " (" + std::to_string(info.kex_bits) + " bits)";
  return out;
}

}  // namespace

SessionInfo describe(SSL* ssl, bool server_side, std::string_view fingerprint_digest) {
  SessionInfo info;
  info.server_side = server_side;
  info.protocol = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    info.cipher = SSL_CIPHER_get_name(cipher);
    info.cipher_bits = SSL_CIPHER_get_bits(cipher, &info.cipher_alg_bits);
  }
  if (SSL_version(ssl) >= TLS1_3_VERSION) {
    describe_kex(ssl, info);
    describe_signatures(ssl, server_side, info);
  }
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    info.peer_cert = true;
    info.peer_trusted = SSL_get_verify_result(ssl) == X509_V_OK;
    info.peer_CN = name_entry(X509_get_subject_name(peer), NID_commonName);
    const X509_NAME* issuer = X509_get_issuer_name(peer);
    info.issuer_CN = name_entry(issuer, NID_commonName);
    if (info.issuer_CN.empty()) info.issuer_CN = name_entry(issuer, NID_organizationName);
    info.fingerprint = fingerprint_of(peer, fingerprint_digest);
  }
  return info;
}

std::string connection_summary(const SessionInfo& info, std::string_view namaddr, bool reused) {
  std::string out = !info.peer_cert       ? "Anonymous"
                    : info.peer_verified ? "Verified"
                    : info.peer_trusted  ? "Trusted"
                                         : "Untrusted";
  out += " TLS connection ";
  out += reused ? "reused " : "established ";
  out += info.server_side ? "from " : "to ";
  out += namaddr;
  out += ": " + info.protocol + " with cipher " + info.cipher + " (" +
         std::to_string(info.cipher_bits) + "/" + std::to_string(info.cipher_alg_bits) + " bits)";
  if (!info.kex_name.empty()) out += kex_text(info);
  if (!info.server_sig.empty())
    append_sig(out, "server", info.server_sig, info.server_sig_curve, info.server_sig_bits,
               info.server_digest);
  if (!info.client_sig.empty())
    append_sig(out, "client", info.client_sig, info.client_sig_curve, info.client_sig_bits,
               info.client_digest);
  return out;
}

std::vector<std::string> received_header_lines(const SessionInfo& info, bool asked_client_cert) {
  std::vector<std::string> lines;
  std::string line = "(using " + info.protocol + " with cipher " + info.cipher + " (" +
                     std::to_string(info.cipher_bits) + "/" +
                     std::to_string(info.cipher_alg_bits) + " bits)";
  if (!info.kex_name.empty()) {
    lines.push_back(std::move(line));
    line = kex_text(info);
  }
  if (!info.server_sig.empty())
    append_sig(line, "server", info.server_sig, info.server_sig_curve, info.server_sig_bits,
               info.server_digest);
  if (!info.client_sig.empty()) {
    lines.push_back(std::move(line));
    line.clear();
    append_sig(line, "client", info.client_sig, info.client_sig_curve, info.client_sig_bits,
               info.client_digest);
  }
  lines.push_back(line + ")");
  if (info.peer_cert)
    lines.push_back("(Client CN \"" + info.peer_CN + "\", Issuer \"" + info.issuer_CN + "\" (" +
                    (info.peer_trusted ? "verified OK" : "not verified") + "))");
  else if (asked_client_cert)
    lines.push_back("(Client did not present a certificate)");
  else
    lines.push_back("(No client certificate requested)");
  return lines;
}

std::string handshake_error_line(std::string_view namaddr, bool server_side, int ret,
                                 int saved_errno) {
  std::string out = server_side ? "SSL_accept error from " : "SSL_connect error to ";
  out += namaddr;
  out += ": ";
  if (ERR_peek_error() != 0)
    out += std::to_string(ret);
  else if (saved_errno != 0)
    out += std::strerror(saved_errno);
  else
    out += "lost connection";
  return out;
}

std::vector<std::string> drain_errors() {
  std::vector<std::string> lines;
  const char* file = nullptr;
  const char* data = nullptr;
  int line = 0;
  int flags = 0;
  unsigned long err;
  while ((err = ERR_get_error_all(&file, &line, nullptr, &data, &flags)) != 0) {
    char buffer[1024];
    ERR_error_string_n(err, buffer, sizeof(buffer));
    std::string text = std::string("TLS library problem: ") + buffer + ":" +
                       (file ? file : "") + ":" + std::to_string(line) + ":";
    if ((flags & ERR_TXT_STRING) && data != nullptr) text += std::string(data) + ":";
    lines.push_back(std::move(text));
  }
  return lines;
}

void log_errors() {
  for (const std::string& line : drain_errors()) log::warning("%s", line.c_str());
}

}  // namespace mta::tls
