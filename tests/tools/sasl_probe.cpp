// sasl_probe: drives lib/sasl as smtpd does, for tests/integration/sasl_server.sh.
//
// usage: sasl_probe [-c config_dir] [-t cyrus|dovecot] [-p smtpd_sasl_path]
//          [-q queue_directory] [-s security_options] [-S tls_security_options]
//          [-r realm] [-H hostname] [-T] [-i] [-R raw_initial_response]
//          [-a client_addr] [-m PLAIN|LOGIN -u user -w password] [-v]
// With -c the options come from that directory's main.cf (smtpd's
// parameters); the other flags override them.  -T: the session runs under
// TLS (128-bit).  -a: the client address (127.0.0.1; Dovecot's auth
// penalty delays later requests from an address that failed).  -i: PLAIN without an initial response (sent after the
// empty 334).  Prints "mechanisms: LIST" (or "mechanisms: none: REASON"),
// each challenge as "334 BASE64", then "result: done user=U method=M" or
// "result: failed|malformed|error reason=R" and "tried: NAME" when the back
// end reported the name the client tried.
// Exit: 0 done (or only listed), 1 failed, 2 malformed, 3 error, 4 setup.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "config/config.hpp"
#include "log/log.hpp"
#include "sasl/sasl_server.hpp"

namespace {

using mta::sasl::ServerSession;
using Result = ServerSession::Result;

std::string base64(std::string_view in) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

const char* result_name(Result r) {
  switch (r) {
    case Result::done: return "done";
    case Result::more: return "more";
    case Result::failed: return "failed";
    case Result::malformed: return "malformed";
    case Result::error: return "error";
  }
  return "?";
}

int usage() {
  std::fprintf(stderr,
               "usage: sasl_probe [-c dir] [-t type] [-p path] [-q queue_dir] [-s opts] [-S tls_opts]\n"
               "                  [-r realm] [-H host] [-T] [-i] [-R raw] [-a addr] [-m mech -u user -w pass]\n");
  return 4;
}

}  // namespace

int main(int argc, char** argv) {
  mta::log::init(argv[0]);
  std::string client_addr = "127.0.0.1", config_dir, type, path, queue_dir, sec, tls_sec, realm, host, mech, user, pass, raw;
  bool tls = false, no_initial = false, have_raw = false, have_sec = false, have_tls_sec = false,
       have_realm = false;
  int c;
  while ((c = getopt(argc, argv, "a:c:t:p:q:s:S:r:H:TiR:m:u:w:v")) != -1) {
    switch (c) {
      case 'a': client_addr = optarg; break;
      case 'c': config_dir = optarg; break;
      case 't': type = optarg; break;
      case 'p': path = optarg; break;
      case 'q': queue_dir = optarg; break;
      case 's': sec = optarg; have_sec = true; break;
      case 'S': tls_sec = optarg; have_tls_sec = true; break;
      case 'r': realm = optarg; have_realm = true; break;
      case 'H': host = optarg; break;
      case 'T': tls = true; break;
      case 'i': no_initial = true; break;
      case 'R': raw = optarg; have_raw = true; break;
      case 'm': mech = optarg; break;
      case 'u': user = optarg; break;
      case 'w': pass = optarg; break;
      case 'v': mta::log::set_verbose(mta::log::verbose_level() + 1); break;
      default: return usage();
    }
  }
  mta::sasl::ServerOptions options;
  if (!config_dir.empty()) {
    try {
      options = mta::sasl::options_from_config(mta::config::Config::load(config_dir));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sasl_probe: %s\n", e.what());
      return 4;
    }
  }
  if (!type.empty()) options.type = type;
  if (!path.empty()) options.path = path;
  if (!queue_dir.empty()) options.queue_directory = queue_dir;
  if (have_sec) options.security_options = sec;
  if (have_tls_sec) options.tls_security_options = tls_sec;
  else if (have_sec) options.tls_security_options = sec;
  if (have_realm) options.user_realm = realm;
  if (!host.empty()) options.hostname = host;
  options.timeout_seconds = 5;

  std::string error;
  auto factory = mta::sasl::ServerFactory::create(options, error);
  if (!factory) {
    std::printf("create: %s\n", error.c_str());
    return 4;
  }
  mta::sasl::SessionParams params{client_addr, "40000", "127.0.0.1", "25", tls, tls ? 128u : 0u};
  auto session = factory->open(params, error);
  if (!session) {
    std::printf("open: %s\n", error.c_str());
    return 4;
  }
  std::string list = session->mechanisms();
  if (list.empty()) std::printf("mechanisms: none: %s\n", session->last_error().c_str());
  else std::printf("mechanisms: %s\n", list.c_str());
  if (mech.empty()) return 0;

  // The client's side: the responses it would send, in order.
  std::string initial;
  std::vector<std::string> responses;
  if (have_raw) {
    initial = raw;
  } else if (mech == "PLAIN" || mech == "plain") {
    std::string creds = std::string(1, '\0') + user + std::string(1, '\0') + pass;
    if (no_initial) responses.push_back(base64(creds));
    else initial = base64(creds);
  } else if (mech == "LOGIN" || mech == "login") {
    responses = {base64(user), base64(pass)};
  }
  std::string out;
  Result r = session->start(mech, initial, out);
  for (size_t step = 0; r == Result::more; ++step) {
    std::printf("334 %s\n", out.c_str());
    if (step >= responses.size()) {
      std::printf("result: more (client has nothing left to send)\n");
      return 3;
    }
    r = session->next(responses[step], out);
  }
  if (r == Result::done) {
    std::printf("result: done user=%s method=%s\n", session->username().c_str(), session->method().c_str());
    return 0;
  }
  std::printf("result: %s reason=%s\n", result_name(r), out.c_str());
  if (!session->username().empty()) std::printf("tried: %s\n", session->username().c_str());
  return r == Result::failed ? 1 : r == Result::malformed ? 2 : 3;
}
