// tls_verify.cpp: see tls_verify.hpp.
#include "tls/tls_verify.hpp"

#include <openssl/x509v3.h>

#include "log/log.hpp"

namespace mta::tls {

namespace {

int state_index() {
  static int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// update_error_state(): keep the error nearest the leaf.
int record_errors(int ok, X509_STORE_CTX* ctx) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* state = ssl ? static_cast<VerifyState*>(SSL_get_ex_data(ssl, state_index())) : nullptr;
  if (!ok && state) {
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    if (state->depth < 0 || state->depth > depth) {
      state->depth = depth;
      state->error = X509_STORE_CTX_get_error(ctx);
      X509* cert = X509_STORE_CTX_get_current_cert(ctx);
      char buf[256] = "<unknown>";
      if (cert) X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof buf);
      state->issuer = buf;
      for (char& c : state->issuer)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
  }
  return 1;  // never stop the handshake: the caller decides
}

}  // namespace

void track_verify_errors(SSL* ssl, VerifyState* state) {
  SSL_set_ex_data(ssl, state_index(), state);
  SSL_set_verify(ssl, SSL_VERIFY_NONE, record_errors);
}

bool add_name_checks(SSL* ssl, const std::vector<std::string>& names, std::string_view namaddr) {
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  int count = 0;
  for (const std::string& name : names) {
    if (name == ".") {
      log::warning("%.*s: ignoring invalid match name: \".\"", static_cast<int>(namaddr.size()), namaddr.data());
      continue;
    }
    if (SSL_add1_host(ssl, name.c_str()) == 1) ++count;
    else
      log::warning("%.*s: error loading match name: \"%s\"", static_cast<int>(namaddr.size()), namaddr.data(),
                   name.c_str());
  }
  if (count == 0) {
    log::warning("%.*s: could not configure peer name checks", static_cast<int>(namaddr.size()), namaddr.data());
    return false;
  }
  return true;
}

std::string verify_error_text(const VerifyState& st, std::string_view namaddr_view, bool server_side) {
  if (st.error == X509_V_OK || st.depth < 0) return "";
  std::string namaddr(namaddr_view);
  std::string purpose = st.depth > 0 ? "CA" : server_side ? "client" : "server";
  switch (st.error) {
    case X509_V_ERR_CERT_UNTRUSTED:
      return "certificate verification failed for " + namaddr + ": not trusted by local or TLSA policy";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return "certificate verification failed for " + namaddr + ": self-signed certificate";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "certificate verification failed for " + namaddr + ": untrusted issuer " + st.issuer;
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
      return purpose + " certificate verification failed for " + namaddr + ": certificate not yet valid";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
      return purpose + " certificate verification failed for " + namaddr + ": certificate has expired";
    case X509_V_ERR_INVALID_PURPOSE:
      return "certificate verification failed for " + namaddr + ": not designated for use as a " + purpose +
             " certificate";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      return "certificate verification failed for " + namaddr + ": certificate chain longer than limit(" +
             std::to_string(st.depth - 1) + ")";
    default:
      return purpose + " certificate verification failed for " + namaddr + ": num=" + std::to_string(st.error) + ":" +
             X509_verify_cert_error_string(st.error);
  }
}

}  // namespace mta::tls
