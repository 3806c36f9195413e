// tls_certkey.hpp: loading keys and certificates into an SSL_CTX (internal).
//
// Two ways, as in Postfix: the legacy per-algorithm pairs (cert_file and
// key_file, eccert/eckey, dcert/dkey), and chain files, a sequence of PEM
// objects "key1, cert1, [chain1], key2, cert2, ..." over one or more files.
// On failure the functions return false with Postfix's warning text in
// `error` (ending in ": disabling TLS support" where Postfix's does) and
// leave OpenSSL's error queue for the caller to print.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

namespace mta::tls {

// One legacy pair; `algorithm` is "RSA", "DSA" or "ECDSA" for the messages.
bool load_cert_and_key(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file,
                       std::string_view algorithm, std::string& error);

// The files of ${prefix}_tls_chain_files, in order.
bool load_chain_files(SSL_CTX* ctx, const std::vector<std::string>& files, std::string& error);

}  // namespace mta::tls
