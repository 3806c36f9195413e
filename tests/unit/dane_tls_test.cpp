// lib/tls DANE and lib/dns TLSA: tls_dane_digests, the TLSA records
// Postfix can use, and in-memory handshakes whose server is authenticated
// (or not) by DANE-EE and DANE-TA records made from generated certificates.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_TLS)

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "config/config.hpp"
#include "dns/dns_resolver.hpp"
#include "log/log.hpp"
#include "tls/tls_context.hpp"
#include "tls/tls_dane.hpp"
#include "tls/tls_verify.hpp"

using namespace mta;
using namespace mta::tls;
namespace fs = std::filesystem;

namespace {

struct DaneDir {
  fs::path path;
  DaneDir() {
    path = fs::temp_directory_path() / ("mta-dane-" + std::to_string(getpid()));
    fs::create_directories(path);
    run("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.example -days 2 -keyout " + at("ee.key") + " -out " +
        at("ee.pem"));
    run("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=Test-CA -days 2 -keyout " + at("ca.key") + " -out " +
        at("ca.pem"));
    run("openssl req -newkey rsa:2048 -nodes -subj /CN=mx.example -keyout " + at("leaf.key") + " -out " + at("leaf.csr"));
    std::ofstream(at("ext")) << "subjectAltName=DNS:mx.example\nbasicConstraints=CA:FALSE\n";
    run("openssl x509 -req -in " + at("leaf.csr") + " -CA " + at("ca.pem") + " -CAkey " + at("ca.key") +
        " -CAcreateserial -days 2 -extfile " + at("ext") + " -out " + at("leaf.pem"));
    std::ofstream(at("ee-chain.pem")) << slurp("ee.key") << slurp("ee.pem");
    std::ofstream(at("ca-chain.pem")) << slurp("leaf.key") << slurp("leaf.pem") << slurp("ca.pem");
  }
  ~DaneDir() { fs::remove_all(path); }
  std::string at(const std::string& name) const { return (path / name).string(); }
  static void run(const std::string& cmd) { REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0); }
  std::string slurp(const std::string& name) const {
    std::ifstream in(at(name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

const DaneDir& dir() {
  static DaneDir d;
  return d;
}

std::string sha(const std::string& data, const char* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), out, &len, EVP_get_digestbyname(md), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(out), len);
}

// DER of the certificate (selector 0) or of its public key (selector 1).
std::string der(const std::string& pem_file, int selector) {
  FILE* f = fopen(pem_file.c_str(), "r");
  REQUIRE(f);
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  REQUIRE(x);
  unsigned char* buf = nullptr;
  int len = selector == 0 ? i2d_X509(x, &buf) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &buf);
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  X509_free(x);
  return out;
}

config::Config make_config(std::initializer_list<std::pair<std::string, std::string>> values) {
  config::LoadOptions options;
  options.read_main_cf = false;
  config::Config c = config::Config::load(fs::temp_directory_path().string(), options);
  for (const auto& [name, value] : values) c.set_explicit(name, value);
  return c;
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

bool handshake(SSL* server, SSL* client) {
  BIO* a = nullptr;
  BIO* b = nullptr;
  REQUIRE(BIO_new_bio_pair(&a, 0, &b, 0) == 1);
  SSL_set_bio(server, a, a);
  SSL_set_bio(client, b, b);
  bool sd = false, cd = false;
  for (int i = 0; i < 50 && !(sd && cd); ++i) {
    if (!cd) {
      int r = SSL_do_handshake(client);
      if (r == 1) cd = true;
      else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ) return false;
    }
    if (!sd) {
      int r = SSL_do_handshake(server);
      if (r == 1) sd = true;
      else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ) return false;
    }
  }
  return sd && cd;
}

std::vector<DaneDigest> default_digests() {
  std::string w;
  auto d = parse_dane_digests("sha512 sha256", w);
  REQUIRE(d);
  return *d;
}

// One handshake against a server with CHAIN (key and certificates), the
// client authenticating it with RECORDS; returns the client's verify
// result and fills MATCH.
long dane_handshake(const std::string& chain, const std::vector<TlsaRecord>& records, DaneMatch& match,
                    VerifyState& state) {
  std::string error;
  auto server = ServerContext::create(make_config({{"smtpd_tls_chain_files", chain}, {"smtpd_tls_security_level", "may"}}),
                                      "smtpd", error);
  REQUIRE(server);
  auto client = ClientContext::create(make_config({}), "smtp", error);
  REQUIRE(client);
  SslPtr s(server->new_ssl());
  SslPtr c(client->new_ssl(true, "", "mx.example[127.0.0.1]:25"));
  REQUIRE(s);
  REQUIRE(c);
  REQUIRE(enable_dane(c.get(), default_digests(), "mx.example", {"mx.example"}, records));
  track_verify_errors(c.get(), &state);
  REQUIRE(handshake(s.get(), c.get()));
  match = dane_match(c.get());
  long result = SSL_get_verify_result(c.get());
  track_verify_errors(c.get(), nullptr);
  return result;
}

}  // namespace

TEST_CASE("tls_dane_digests as Postfix parses it", "[tls][dane]") {
  std::string w;
  auto d = parse_dane_digests("sha512 sha256", w);
  REQUIRE(d);
  REQUIRE(d->size() == 2);
  CHECK((*d)[0].name == "sha512");
  CHECK((*d)[0].mtype == 2);
  CHECK((*d)[0].length == 64);
  CHECK((*d)[1].mtype == 1);
  CHECK((*d)[1].length == 32);
  auto e = parse_dane_digests("sha256=1, =2", w);
  REQUIRE(e);
  CHECK((*e)[1].name == "sha512");
  CHECK_FALSE(parse_dane_digests("sha256=2", w));
  CHECK(w == "Non-standard value in tls_dane_digests: sha256=2");
  CHECK_FALSE(parse_dane_digests("sha1=1", w));
  CHECK(w == "Non-standard algorithm in tls_dane_digests: sha1=1");
  CHECK_FALSE(parse_dane_digests("md5", w));
  CHECK(w == "Unknown incompletely specified element in tls_dane_digests: md5");
  CHECK_FALSE(parse_dane_digests("sha256 sha256", w));
  CHECK(w == "Duplicate element in tls_dane_digests: sha256");
  CHECK_FALSE(parse_dane_digests("sha256=x", w));
  CHECK(w == "Invalid matching type number in tls_dane_digests: sha256=x");
  CHECK(parse_dane_digests("sha384=3", w));  // a further IANA-less number with a real digest
}

TEST_CASE("TLSA records: usages 2 and 3, selectors 0 and 1, known digests", "[tls][dane]") {
  std::vector<DaneDigest> digests = default_digests();
  std::string spki = der(dir().at("ee.pem"), 1);
  std::vector<TlsaRecord> in = {
      {3, 1, 1, sha(spki, "sha256")},  // usable
      {1, 1, 1, sha(spki, "sha256")},  // PKIX-EE: not for SMTP
      {0, 0, 1, sha(spki, "sha256")},  // PKIX-TA
      {3, 2, 1, sha(spki, "sha256")},  // no such selector
      {3, 1, 9, sha(spki, "sha256")},  // unknown matching type
      {3, 1, 2, sha(spki, "sha256")},  // sha512 with a sha256 length
      {3, 1, 0, spki},                 // the whole key: parses
      {3, 0, 0, "garbage"},            // not a certificate
      {2, 0, 2, sha(der(dir().at("ca.pem"), 0), "sha512")},
  };
  std::vector<std::string> warnings;
  std::vector<TlsaRecord> out = usable_tlsa(in, digests, "_25._tcp.mx.example", warnings);
  REQUIRE(out.size() == 3);
  CHECK(out[0].usage == 3);
  CHECK(out[1].mtype == 0);
  CHECK(out[2].usage == 2);
  REQUIRE(warnings.size() == 6);
  const std::string h = hex_upper(sha(spki, "sha256"));
  CHECK(warnings[0] == "_25._tcp.mx.example unsupported TLSA certificate usage: 1 1 1 " + h);
  CHECK(warnings[1] == "_25._tcp.mx.example unsupported TLSA certificate usage: 0 0 1 " + h);
  CHECK(warnings[2] == "_25._tcp.mx.example unsupported TLSA selector: 3 2 1 " + h);
  CHECK(warnings[3] == "_25._tcp.mx.example unsupported TLSA matching type: 3 1 9 " + h);
  CHECK(warnings[4] == "_25._tcp.mx.example malformed TLSA digest length: 3 1 2 " + h);
  CHECK(warnings[5] == "_25._tcp.mx.example malformed TLSA certificate: 3 0 0 " + hex_upper("garbage"));

  // Only sha256 configured: sha512 records are unusable.
  std::string w;
  auto only256 = parse_dane_digests("sha256", w);
  REQUIRE(only256);
  warnings.clear();
  CHECK(usable_tlsa({{3, 1, 2, std::string(64, 'x')}}, *only256, "_25._tcp.mx.example", warnings).empty());
  CHECK(warnings.size() == 1);
}

TEST_CASE("TLSA RDATA from the DNS library", "[dns][dane]") {
  dns::Record r;
  r.type = dns::kTypeTlsa;
  r.data = std::string("\x03\x01\x01", 3) + "abc";
  auto t = dns::parse_tlsa(r);
  REQUIRE(t);
  CHECK(t->usage == 3);
  CHECK(t->selector == 1);
  CHECK(t->mtype == 1);
  CHECK(t->data == "abc");
  r.data = "\x03\x01";
  CHECK_FALSE(dns::parse_tlsa(r));
  CHECK(dns::type_name(dns::kTypeTlsa) == "TLSA");
}

TEST_CASE("DANE-EE 3 1 1: a matching key verifies, another does not", "[tls][dane]") {
  std::string spki = der(dir().at("ee.pem"), 1);
  DaneMatch m;
  VerifyState state;
  CHECK(dane_handshake(dir().at("ee-chain.pem"), {{3, 1, 1, sha(spki, "sha256")}}, m, state) == X509_V_OK);
  CHECK(m.matched);
  CHECK(m.depth == 0);
  CHECK(m.usage == 3);
  CHECK(dane_match_line(m, "mx.example[127.0.0.1]:25") ==
        "mx.example[127.0.0.1]:25: Matched DANE EE certificate at depth 0: 3 1 1 " + hex_upper(sha(spki, "sha256")));

  // The self-signed certificate matches by its full certificate too (3 0 2).
  CHECK(dane_handshake(dir().at("ee-chain.pem"), {{3, 0, 2, sha(der(dir().at("ee.pem"), 0), "sha512")}}, m, state) ==
        X509_V_OK);

  DaneMatch none;
  VerifyState bad;
  std::string other = der(dir().at("leaf.pem"), 1);
  CHECK(dane_handshake(dir().at("ee-chain.pem"), {{3, 1, 1, sha(other, "sha256")}}, none, bad) ==
        X509_V_ERR_DANE_NO_MATCH);
  CHECK_FALSE(none.matched);
  CHECK(verify_error_text(bad, "mx.example[127.0.0.1]:25", false) ==
        "server certificate verification failed for mx.example[127.0.0.1]:25: num=65:" +
            std::string(X509_verify_cert_error_string(X509_V_ERR_DANE_NO_MATCH)));
}

TEST_CASE("DANE-TA 2 0 1: a chain issued by the published CA verifies", "[tls][dane]") {
  std::string ca = der(dir().at("ca.pem"), 0);
  DaneMatch m;
  VerifyState state;
  CHECK(dane_handshake(dir().at("ca-chain.pem"), {{2, 0, 1, sha(ca, "sha256")}}, m, state) == X509_V_OK);
  CHECK(m.matched);
  CHECK(m.depth == 1);
  CHECK(dane_match_line(m, "h[a]:25").find("Matched DANE TA certificate at depth 1: 2 0 1 ") != std::string::npos);

  // The same CA does not vouch for the self-signed certificate.
  DaneMatch none;
  VerifyState bad;
  CHECK(dane_handshake(dir().at("ee-chain.pem"), {{2, 0, 1, sha(ca, "sha256")}}, none, bad) != X509_V_OK);
  CHECK_FALSE(none.matched);
}

#endif
