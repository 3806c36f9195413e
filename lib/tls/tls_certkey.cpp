// tls_certkey.cpp: keys and certificate chains from PEM files.
#include "tls/tls_certkey.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace mta::tls {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
struct OpensslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

// One key with its leaf certificate and issuers.
struct Group {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::unique_ptr<X509, X509Free> leaf;
  std::unique_ptr<STACK_OF(X509), ChainFree> chain{sk_X509_new_null()};
};

bool is_certificate(std::string_view pem_name) {
  return pem_name == PEM_STRING_X509 || pem_name == PEM_STRING_X509_OLD ||
         pem_name == PEM_STRING_X509_TRUSTED;
}

bool is_private_key(std::string_view pem_name) {
  return pem_name.ends_with("PRIVATE KEY") && pem_name != PEM_STRING_PKCS8;  // not encrypted
}

bool install(SSL_CTX* ctx, Group& g, const std::string& where, std::string& error) {
  if (!g.leaf) {
    error = "no certificate after the private key in " + where;
    return false;
  }
  if (SSL_CTX_use_cert_and_key(ctx, g.leaf.get(), g.key.get(), g.chain.get(), 1) != 1) {
    error = "error loading private key and certificate chain from " + where;
    return false;
  }
  return true;
}

}  // namespace

bool load_cert_and_key(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file,
                       std::string_view algorithm, std::string& error) {
  std::string alg(algorithm);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    error = "cannot get " + alg + " certificate from file \"" + cert_file +
            "\": disabling TLS support";
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot get " + alg + " private key from file \"" + key_file +
            "\": disabling TLS support";
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();  // Postfix prints only its own line here
    error = alg + " private key in " + key_file + " does not match public key in " + cert_file +
            ": disabling TLS support";
    return false;
  }
  return true;
}

bool load_chain_files(SSL_CTX* ctx, const std::vector<std::string>& files, std::string& error) {
  Group group;
  std::string group_where;
  int groups = 0;
  for (const std::string& file : files) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
    if (!bio) {
      int saved = errno;
      ERR_clear_error();
      error = "error opening chain file: " + file + ": " + std::strerror(saved);
      return false;
    }
    for (;;) {
      char* raw_name = nullptr;
      char* raw_header = nullptr;
      unsigned char* raw_data = nullptr;
      long len = 0;
      if (PEM_read_bio(bio.get(), &raw_name, &raw_header, &raw_data, &len) != 1) {
        unsigned long err = ERR_peek_last_error();
        if (ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
          ERR_clear_error();  // end of file
          break;
        }
        error = "error reading PEM data from chain file: " + file;
        return false;
      }
      std::unique_ptr<char, OpensslFree> name(raw_name);
      std::unique_ptr<char, OpensslFree> header(raw_header);
      std::unique_ptr<unsigned char, OpensslFree> data(raw_data);
      const unsigned char* p = data.get();
      std::string_view pem_name(name.get());
      if (is_private_key(pem_name)) {
        if (group.key) {
          if (!install(ctx, group, group_where, error)) return false;
          ++groups;
          group = Group{};
        }
        group.key.reset(d2i_AutoPrivateKey(nullptr, &p, len));
        group_where = file;
        if (!group.key) {
          error = "error decoding private key in chain file: " + file;
          return false;
        }
      } else if (is_certificate(pem_name)) {
        if (!group.key) {
          error = "certificate without a preceding private key in chain file: " + file;
          return false;
        }
        X509* cert = pem_name == PEM_STRING_X509_TRUSTED ? d2i_X509_AUX(nullptr, &p, len)
                                                         : d2i_X509(nullptr, &p, len);
        if (cert == nullptr) {
          error = "error decoding certificate in chain file: " + file;
          return false;
        }
        if (!group.leaf)
          group.leaf.reset(cert);
        else
          sk_X509_push(group.chain.get(), cert);
      } else {
        error = "unexpected PEM object \"" + std::string(pem_name) + "\" in chain file: " + file;
        return false;
      }
    }
  }
  if (group.key) {
    if (!install(ctx, group, group_where, error)) return false;
    ++groups;
  }
  if (groups == 0) {
    error = "no private key and certificate in chain files";
    return false;
  }
  return true;
}

}  // namespace mta::tls
