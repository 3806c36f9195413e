// lib/tls: protocol lists, cipher grades, contexts from main.cf parameters,
// and an in-memory handshake whose description must read as Postfix 3.7's.
// Certificates are made with the openssl command in a temporary directory.
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_TLS)

#include <openssl/err.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "config/config.hpp"
#include "log/log.hpp"
#include "tls/tls_context.hpp"
#include "tls/tls_policy.hpp"
#include "tls/tls_session.hpp"

using namespace mta;
using namespace mta::tls;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("mta-tls-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Keys and self-signed certificates, made once per test run.
struct Certs {
  TempDir dir;
  Certs() {
    make("rsa:2048", "localhost", "key.pem", "cert.pem");
    make("rsa:2048", "client.example", "ckey.pem", "ccert.pem");
    make("ec -pkeyopt ec_paramgen_curve:P-256", "localhost", "eckey.pem", "eccert.pem");
    std::ofstream(dir / "chain.pem") << slurp("key.pem") << slurp("cert.pem");
  }
  void make(const std::string& alg, const std::string& cn, const std::string& key,
            const std::string& cert) {
    std::string cmd = "openssl req -x509 -newkey " + alg + " -nodes -subj /CN=" + cn +
                      " -days 2 -keyout " + (dir / key) + " -out " + (dir / cert) +
                      " >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  std::string slurp(const std::string& name) const {
    std::ifstream in(dir / name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string operator()(const std::string& name) const { return dir / name; }
};

const Certs& certs() {
  static Certs c;
  return c;
}

// A Config with defaults only, plus the given settings.
config::Config make_config(std::initializer_list<std::pair<std::string, std::string>> values) {
  config::LoadOptions options;
  options.read_main_cf = false;
  config::Config c = config::Config::load(fs::temp_directory_path().string(), options);
  for (const auto& [name, value] : values) c.set_explicit(name, value);
  return c;
}

config::Config server_config(std::initializer_list<std::pair<std::string, std::string>> more = {}) {
  config::Config c = make_config({{"smtpd_tls_cert_file", certs()("cert.pem")},
                                  {"smtpd_tls_key_file", certs()("key.pem")},
                                  {"smtpd_tls_security_level", "may"}});
  for (const auto& [name, value] : more) c.set_explicit(name, value);
  return c;
}

// Captures log lines in a file while alive.
struct LogCapture {
  TempDir dir;
  LogCapture() {
    log::init("smtpd");
    log::set_stderr(false);
    REQUIRE(log::set_file(dir / "log"));
  }
  ~LogCapture() {
    log::set_file("");
    log::set_stderr(true);
  }
  std::string text() const {
    std::ifstream in(dir / "log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// Runs both ends over a BIO pair until both finish; false when one fails.
bool handshake(SSL* server, SSL* client, int* server_ret = nullptr) {
  BIO* a = nullptr;
  BIO* b = nullptr;
  REQUIRE(BIO_new_bio_pair(&a, 0, &b, 0) == 1);
  SSL_set_bio(server, a, a);
  SSL_set_bio(client, b, b);
  bool server_done = false;
  bool client_done = false;
  for (int i = 0; i < 50 && !(server_done && client_done); ++i) {
    if (!client_done) {
      int r = SSL_do_handshake(client);
      if (r == 1) client_done = true;
      else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ) return false;
    }
    if (!server_done) {
      int r = SSL_do_handshake(server);
      if (server_ret) *server_ret = r;
      if (r == 1) server_done = true;
      else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ) return false;
    }
  }
  return server_done && client_done;
}

struct Pair {
  std::unique_ptr<ServerContext> server;
  std::unique_ptr<ClientContext> client;
  SslPtr s, c;
  bool ok = false;
  Pair(const config::Config& sc, const config::Config& cc, bool mandatory = false) {
    std::string error;
    server = ServerContext::create(sc, "smtpd", error);
    REQUIRE(server);
    client = ClientContext::create(cc, "smtp", error);
    REQUIRE(client);
    s.reset(server->new_ssl("localhost[127.0.0.1]"));
    c.reset(client->new_ssl(mandatory, "localhost"));
    REQUIRE(s);
    REQUIRE(c);
    ok = handshake(s.get(), c.get());
  }
};

}  // namespace

TEST_CASE("protocol lists in Postfix's syntax", "[tls]") {
  auto p = parse_protocols(">=TLSv1.2");
  REQUIRE(p);
  CHECK(p->min_version == TLS1_2_VERSION);
  CHECK(p->max_version == 0);
  CHECK(p->excluded == 0);

  p = parse_protocols("!SSLv2, !SSLv3");
  REQUIRE(p);
  CHECK(p->excluded == (kSSLv2 | kSSLv3));
  CHECK((p->ssl_options() & SSL_OP_NO_SSLv3) != 0);
  CHECK((p->ssl_options() & SSL_OP_NO_TLSv1_2) == 0);

  // An include list excludes every known protocol it does not name.
  p = parse_protocols("TLSv1.2 tlsv1.3");
  REQUIRE(p);
  CHECK(p->excluded == (kSSLv2 | kSSLv3 | kTLSv1 | kTLSv1_1));

  p = parse_protocols("<=TLSv1.3:>=tlsv1.1");
  REQUIRE(p);
  CHECK(p->min_version == TLS1_1_VERSION);
  CHECK(p->max_version == TLS1_3_VERSION);

  p = parse_protocols(">=None");
  REQUIRE(p);
  CHECK(p->min_version == 0);
  p = parse_protocols("");
  REQUIRE(p);
  CHECK(p->excluded == 0);

  CHECK_FALSE(parse_protocols("TLSv1.5"));
  CHECK_FALSE(parse_protocols(">=TLSv1.4"));
  CHECK_FALSE(parse_protocols(">=SSLv2"));
  CHECK_FALSE(parse_protocols("!bogus"));
  CHECK_FALSE(parse_protocols("TLSv1.2, =TLSv1.3"));
}

TEST_CASE("cipher grades map to the tls_*_cipherlist values plus exclusions", "[tls]") {
  config::Config c = make_config({{"tls_high_cipherlist", "HIGH:!aNULL"}});
  std::string warning;
  CHECK(cipher_list(c, "medium", "", warning) == "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH");
  CHECK(cipher_list(c, "HIGH", "", warning) == "HIGH:!aNULL");
  CHECK(cipher_list(c, "low", "", warning) == "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH");
  CHECK(cipher_list(c, "null", "", warning) == "eNULL:!aNULL");
  CHECK(cipher_list(c, "export", "", warning) ==
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH");
  CHECK(cipher_list(c, "high", "RC4, aNULL:kRSA+AES", warning) ==
        "HIGH:!aNULL:!RC4:!aNULL:!kRSA+AES");
  CHECK(warning.empty());

  CHECK_FALSE(cipher_list(c, "bogus", "", warning));
  CHECK(warning == "invalid cipher grade: \"bogus\"");
  CHECK_FALSE(cipher_list(c, "medium", "!RC4", warning));
  CHECK(warning == "invalid unary '!+-@' in cipher exclusion: !RC4");

  config::Config s = make_config({{"smtpd_tls_exclude_ciphers", "RC4"},
                                  {"smtpd_tls_mandatory_exclude_ciphers", "3DES"}});
  CHECK(server_exclusions(s, "smtpd", false, false) == "RC4");
  CHECK(server_exclusions(s, "smtpd", true, true) == "RC4 3DES aNULL");
}

TEST_CASE("security levels and the legacy booleans", "[tls]") {
  auto policy = [](std::initializer_list<std::pair<std::string, std::string>> v) {
    return ServerPolicy::from_config(make_config(v), "smtpd");
  };
  CHECK_FALSE(policy({}).offered);
  CHECK(policy({{"smtpd_tls_security_level", "may"}}).offered);
  CHECK_FALSE(policy({{"smtpd_tls_security_level", "may"}}).encrypt_required);
  ServerPolicy enc = policy({{"smtpd_tls_security_level", "encrypt"}, {"smtpd_use_tls", "no"}});
  CHECK(enc.offered);
  CHECK(enc.encrypt_required);
  CHECK(enc.mandatory);
  CHECK_FALSE(policy({{"smtpd_tls_security_level", "none"}, {"smtpd_use_tls", "yes"}}).offered);
  CHECK(policy({{"smtpd_use_tls", "yes"}}).offered);
  CHECK(policy({{"smtpd_enforce_tls", "yes"}}).encrypt_required);
  CHECK(policy({{"smtpd_tls_wrappermode", "yes"}}).encrypt_required);
  CHECK(policy({{"smtpd_tls_auth_only", "yes"}}).auth_only);
  ServerPolicy req = policy({{"smtpd_tls_security_level", "encrypt"}, {"smtpd_tls_req_ccert", "yes"}});
  CHECK(req.ask_client_cert);
  CHECK(req.require_client_cert);
  CHECK_THROWS_WITH(policy({{"smtpd_tls_security_level", "bogus"}}), "Invalid TLS level \"bogus\"");
  LogCapture log;
  CHECK(policy({{"smtpd_tls_security_level", "verify"}}).encrypt_required);
  CHECK_THAT(log.text(), Catch::Contains(
      "warning: smtpd_tls_security_level: unsupported TLS level \"verify\", using \"encrypt\""));
}

TEST_CASE("a server context from a generated certificate", "[tls]") {
  std::string error;
  auto ctx = ServerContext::create(server_config(), "smtpd", error);
  REQUIRE(ctx);
  CHECK(error.empty());
  CHECK(ctx->offered());
  CHECK_FALSE(ctx->encrypt_required());
  CHECK(ctx->cipher_list() == "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH");
  CHECK((SSL_CTX_get_options(ctx->ssl_ctx()) & SSL_OP_NO_TICKET) == 0);
  SslPtr ssl(ctx->new_ssl());
  CHECK(ssl);

  // Mandatory settings under "encrypt", and no tickets with a zero timeout.
  auto enc = ServerContext::create(
      server_config({{"smtpd_tls_security_level", "encrypt"},
                     {"smtpd_tls_mandatory_ciphers", "high"},
                     {"smtpd_tls_mandatory_exclude_ciphers", "aNULL"},
                     {"smtpd_tls_session_cache_timeout", "0"}}),
      "smtpd", error);
  REQUIRE(enc);
  CHECK(enc->encrypt_required());
  CHECK(enc->cipher_list() == "aNULL:-aNULL:HIGH:@STRENGTH:!aNULL");
  CHECK((SSL_CTX_get_options(enc->ssl_ctx()) & SSL_OP_NO_TICKET) != 0);

  auto chain = ServerContext::create(
      make_config({{"smtpd_tls_chain_files", certs()("chain.pem")}}), "smtpd", error);
  CHECK(chain);
}

TEST_CASE("missing, unreadable or mismatched keys give Postfix's errors", "[tls]") {
  LogCapture log;
  std::string error;
  std::string missing = certs()("nonexist.pem");
  CHECK_FALSE(ServerContext::create(server_config({{"smtpd_tls_key_file", missing}}), "smtpd", error));
  CHECK(error == "cannot get RSA private key from file \"" + missing + "\": disabling TLS support");
  CHECK_THAT(log.text(), Catch::Contains("warning: TLS library problem: error:") &&
                             Catch::Contains("No such file or directory"));

  CHECK_FALSE(ServerContext::create(server_config({{"smtpd_tls_key_file", certs()("ckey.pem")}}),
                                    "smtpd", error));
  CHECK(error == "cannot get RSA private key from file \"" + certs()("ckey.pem") +
                     "\": disabling TLS support");
  CHECK_THAT(log.text(), Catch::Contains("key values mismatch"));

  CHECK_FALSE(ServerContext::create(server_config({{"smtpd_tls_cert_file", missing}}), "smtpd", error));
  CHECK(error == "cannot get RSA certificate from file \"" + missing + "\": disabling TLS support");

  CHECK_FALSE(ServerContext::create(server_config({{"smtpd_tls_eccert_file", certs()("cert.pem")},
                                                   {"smtpd_tls_eckey_file", certs()("eckey.pem")}}),
                                    "smtpd", error));
  CHECK(error == "ECDSA private key in " + certs()("eckey.pem") + " does not match public key in " +
                     certs()("cert.pem") + ": disabling TLS support");

  CHECK_FALSE(ServerContext::create(make_config({{"smtpd_tls_chain_files", missing}}), "smtpd", error));
  CHECK(error == "error opening chain file: " + missing +
                     ": No such file or directory: disabling TLS support");

  CHECK_FALSE(ServerContext::create(make_config({{"smtpd_tls_security_level", "may"}}), "smtpd", error));
  CHECK(error == "No server certs available. TLS won't be enabled");

  CHECK_FALSE(ServerContext::create(server_config({{"smtpd_tls_protocols", ">=TLSv1.4"}}), "smtpd", error));
  CHECK(error == "Invalid TLS protocol list \">=TLSv1.4\": disabling TLS support");
  CHECK_THAT(log.text(), Catch::Contains(
      "warning: Invalid TLS protocol list \">=TLSv1.4\": disabling TLS support"));
}

TEST_CASE("a bad cipher grade fails each session with Postfix's warning", "[tls]") {
  LogCapture log;
  std::string error;
  auto ctx = ServerContext::create(server_config({{"smtpd_tls_ciphers", "bogus"}}), "smtpd", error);
  REQUIRE(ctx);
  CHECK(ctx->new_ssl("localhost[127.0.0.1]") == nullptr);
  CHECK_THAT(log.text(), Catch::Contains(
      "warning: localhost[127.0.0.1]: invalid cipher grade: \"bogus\""));

  auto ctx2 = ServerContext::create(server_config({{"tls_medium_cipherlist", "NOTHING"}}), "smtpd", error);
  REQUIRE(ctx2);
  CHECK(ctx2->new_ssl("h[1.2.3.4]") == nullptr);
  CHECK_THAT(log.text(), Catch::Contains("warning: h[1.2.3.4]: error setting cipher grade: \"medium\"") &&
                             Catch::Contains("warning: TLS library problem: error:0A0000B9:SSL routines::no cipher match:"));
}

TEST_CASE("a TLS 1.3 handshake reads as Postfix's log line and Received clause", "[tls]") {
  Pair p(server_config(), make_config({}));
  REQUIRE(p.ok);
  SessionInfo info = describe(p.s.get(), true, "sha256");
  CHECK(info.protocol == "TLSv1.3");
  CHECK(info.cipher == "TLS_AES_256_GCM_SHA384");
  CHECK(info.cipher_bits == 256);
  CHECK(info.cipher_alg_bits == 256);
  CHECK(info.kex_name == "X25519");
  CHECK(info.server_sig == "RSA-PSS");
  CHECK(info.server_sig_bits == 2048);
  CHECK(info.server_digest == "SHA256");
  CHECK_FALSE(info.peer_cert);
  CHECK(connection_summary(info, "localhost[127.0.0.1]") ==
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher "
        "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS "
        "(2048 bits) server-digest SHA256");
  CHECK(received_header_lines(info, false) ==
        std::vector<std::string>{
            "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)",
            "(No client certificate requested)"});
  CHECK(received_header_lines(info, true).back() == "(Client did not present a certificate)");

  // The client's view: the server's certificate, untrusted (no CA files).
  SessionInfo client = describe(p.c.get(), false, "sha256");
  CHECK(client.peer_cert);
  CHECK_FALSE(client.peer_trusted);
  CHECK(client.peer_CN == "localhost");
  CHECK(client.fingerprint.size() == 32 * 3 - 1);
  CHECK_THAT(connection_summary(client, "localhost[127.0.0.1]"),
             Catch::StartsWith("Untrusted TLS connection established to localhost[127.0.0.1]: TLSv1.3"));
}

TEST_CASE("TLS 1.2, EC keys and client certificates", "[tls]") {
  SECTION("TLS 1.2 has no key-exchange or signature details") {
    Pair p(server_config(), make_config({{"smtp_tls_protocols", "<=TLSv1.2"}}));
    REQUIRE(p.ok);
    SessionInfo info = describe(p.s.get(), true);
    CHECK(connection_summary(info, "localhost[127.0.0.1]") ==
          "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.2 with cipher "
          "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)");
    CHECK(received_header_lines(info, false).front() ==
          "(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))");
  }
  SECTION("an ECDSA certificate and a P-256 key exchange") {
    Pair p(make_config({{"smtpd_tls_eccert_file", certs()("eccert.pem")},
                        {"smtpd_tls_eckey_file", certs()("eckey.pem")}}),
           make_config({{"tls_eecdh_auto_curves", "prime256v1"}}));
    REQUIRE(p.ok);
    CHECK(connection_summary(describe(p.s.get(), true), "localhost[127.0.0.1]") ==
          "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher "
          "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange ECDHE (prime256v1) "
          "server-signature ECDSA (prime256v1) server-digest SHA256");
  }
  SECTION("a trusted client certificate") {
    Pair p(server_config({{"smtpd_tls_ask_ccert", "yes"}, {"smtpd_tls_CAfile", certs()("ccert.pem")}}),
           make_config({{"smtp_tls_cert_file", certs()("ccert.pem")},
                        {"smtp_tls_key_file", certs()("ckey.pem")}}));
    REQUIRE(p.ok);
    SessionInfo info = describe(p.s.get(), true, "sha256");
    CHECK(info.peer_trusted);
    CHECK(info.peer_CN == "client.example");
    CHECK(info.issuer_CN == "client.example");
    CHECK(connection_summary(info, "localhost[127.0.0.1]") ==
          "Trusted TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher "
          "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS "
          "(2048 bits) server-digest SHA256 client-signature RSA-PSS (2048 bits) client-digest SHA256");
    CHECK(received_header_lines(info, true) ==
          std::vector<std::string>{
              "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
              " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
              " client-signature RSA-PSS (2048 bits) client-digest SHA256)",
              "(Client CN \"client.example\", Issuer \"client.example\" (verified OK))"});
    SessionInfo client = describe(p.c.get(), false);
    CHECK(client.client_sig == "RSA-PSS");
  }
  SECTION("an untrusted client certificate") {
    Pair p(server_config({{"smtpd_tls_ask_ccert", "yes"}}),
           make_config({{"smtp_tls_cert_file", certs()("ccert.pem")},
                        {"smtp_tls_key_file", certs()("ckey.pem")}}));
    REQUIRE(p.ok);
    SessionInfo info = describe(p.s.get(), true);
    CHECK_THAT(connection_summary(info, "x[1.2.3.4]"), Catch::StartsWith("Untrusted TLS connection"));
    CHECK(received_header_lines(info, true).back() ==
          "(Client CN \"client.example\", Issuer \"client.example\" (not verified))");
  }
}

TEST_CASE("a failed handshake gives SSL_accept error and TLS library problem lines", "[tls]") {
  std::string error;
  auto ctx = ServerContext::create(server_config(), "smtpd", error);
  REQUIRE(ctx);
  SslPtr s(ctx->new_ssl());
  BIO* in = BIO_new_mem_buf("GET / HTTP/1.0\r\n\r\n", -1);
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(s.get(), in, out);
  int r = SSL_accept(s.get());
  CHECK(r < 0);
  CHECK(handshake_error_line("localhost[127.0.0.1]", true, r) ==
        "SSL_accept error from localhost[127.0.0.1]: -1");
  std::vector<std::string> lines = drain_errors();
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Matches(
      "TLS library problem: error:0A00009C:SSL routines::http request:.*ssl3_record\\.c:[0-9]+:"));
  CHECK(handshake_error_line("localhost[127.0.0.1]", true, 0) ==
        "SSL_accept error from localhost[127.0.0.1]: lost connection");
}

#endif  // MTA_HAVE_TLS
