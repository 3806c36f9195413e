// tls_probe: serves one SMTP connection with STARTTLS through lib/tls and
// prints what smtpd would log, to compare with the real Postfix.
//
// usage: tls_probe CONFIG_DIR PORT
//   Listens on 127.0.0.1:PORT, answers EHLO (offering STARTTLS), STARTTLS
//   (a blocking handshake with ServerContext "smtpd" from CONFIG_DIR/main.cf),
//   then EHLO, MAIL, RCPT, DATA (body discarded) and QUIT.  Prints the
//   smtpd_tls_loglevel 1 line and the Received: header lines to stdout, or
//   the failed handshake's lines; exits after the one connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "config/config.hpp"
#include "log/log.hpp"
#include "tls/tls_context.hpp"
#include "tls/tls_session.hpp"

using namespace mta;

namespace {

// Line I/O over a descriptor, or over SSL once the handshake is done.
struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string buf;

  bool read_line(std::string& line) {
    for (;;) {
      size_t nl = buf.find('\n');
      if (nl != std::string::npos) {
        line = buf.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        buf.erase(0, nl + 1);
        return true;
      }
      char tmp[4096];
      long n = ssl ? SSL_read(ssl, tmp, sizeof(tmp)) : read(fd, tmp, sizeof(tmp));
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
  }
  void write_line(const std::string& text) {
    std::string out = text + "\r\n";
    if (ssl)
      SSL_write(ssl, out.data(), static_cast<int>(out.size()));
    else if (write(fd, out.data(), out.size()) < 0)
      std::perror("write");
  }
};

bool verb_is(const std::string& line, const char* verb) {
  return strncasecmp(line.c_str(), verb, std::char_traits<char>::length(verb)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tls_probe CONFIG_DIR PORT\n");
    return 64;
  }
  log::init(argv[0]);
  config::Config config = config::Config::load(argv[1]);
  std::string error;
  auto ctx = tls::ServerContext::create(config, "smtpd", error);
  if (!ctx) return 1;

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      listen(listener, 1) < 0) {
    std::perror("bind");
    return 1;
  }
  Conn c;
  c.fd = accept(listener, nullptr, nullptr);
  close(listener);
  const std::string namaddr = "localhost[127.0.0.1]";
  c.write_line("220 probe ESMTP");
  std::string line;
  bool in_data = false;
  while (c.read_line(line)) {
    if (in_data) {
      if (line == ".") {
        in_data = false;
        c.write_line("250 2.0.0 Ok: discarded");
      }
    } else if (verb_is(line, "EHLO")) {
      c.write_line(c.ssl ? "250 probe" : "250-probe\r\n250 STARTTLS");
    } else if (verb_is(line, "STARTTLS") && !c.ssl) {
      c.write_line("220 2.0.0 Ready to start TLS");
      SSL* ssl = ctx->new_ssl(namaddr);
      if (ssl == nullptr) return 1;
      SSL_set_fd(ssl, c.fd);
      int r = SSL_accept(ssl);
      if (r != 1) {
        std::printf("%s\n", tls::handshake_error_line(namaddr, true, r, errno).c_str());
        for (const std::string& l : tls::drain_errors()) std::printf("warning: %s\n", l.c_str());
        return 2;
      }
      c.ssl = ssl;
      tls::SessionInfo info = tls::describe(ssl, true, ctx->policy().fingerprint_digest);
      std::printf("%s\n", tls::connection_summary(info, namaddr).c_str());
      for (const std::string& l : tls::received_header_lines(info, ctx->policy().ask_client_cert))
        std::printf("\t%s\n", l.c_str());
      std::fflush(stdout);
    } else if (verb_is(line, "DATA")) {
      in_data = true;
      c.write_line("354 End data with <CR><LF>.<CR><LF>");
    } else if (verb_is(line, "QUIT")) {
      c.write_line("221 2.0.0 Bye");
      break;
    } else {
      c.write_line("250 2.0.0 Ok");
    }
  }
  if (c.ssl) {
    SSL_shutdown(c.ssl);
    SSL_free(c.ssl);
  }
  close(c.fd);
  return 0;
}
