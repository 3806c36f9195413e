// anvil_probe: drives an anvil service (ours or the real Postfix one) with
// lib/ipc's AnvilClient, for tests/integration/anvil_interop.sh.  Reads a
// script from standard input, one command per line; CONN names a client
// connection (opened on first use, so several local servers can be played):
//
//   CONN connect|disconnect|message|recipient|newtls|newtls_status|auth|lookup SERVICE ADDR
//   CONN raw NAME=VALUE...      any request; prints the reply list as it came
//   CONN close                  close that connection (anvil forgets its connection)
//   sleep SECONDS               (fractions allowed)
//   # ...                       a comment, echoed
//
// and prints one line per request: "CONN REQUEST IDENT -> name=value ..."
// ("-> FAIL" when the client returns false).
//
// usage: anvil_probe [-q queue_directory] [-s service] [-t timeout_seconds]
// Exit status: 0, or 2 for usage errors.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ipc/anvil_client.hpp"
#include "log/log.hpp"

using mta::ipc::AnvilClient;
using mta::ipc::AnvilCounts;

namespace {

std::string queue_dir = "/var/spool/postfix";
std::string service = "anvil";
mta::ipc::Millis timeout = std::chrono::seconds(30);

[[noreturn]] void usage() {
  std::cerr << "usage: anvil_probe [-q queue_directory] [-s service] [-t seconds] <script\n";
  std::exit(2);
}

std::string run_typed(AnvilClient& c, const std::string& req, const std::string& svc, const std::string& addr) {
  int count = 0, rate = 0;
  bool ok = false;
  std::ostringstream out;
  if (req == "connect") {
    ok = c.connect(svc, addr, count, rate);
    out << "count=" << count << " rate=" << rate;
  } else if (req == "disconnect") {
    ok = c.disconnect(svc, addr);
    out << "ok";
  } else if (req == "lookup") {
    AnvilCounts n;
    ok = c.lookup(svc, addr, n);
    out << "count=" << n.count << " rate=" << n.rate << " mail=" << n.mail << " rcpt=" << n.rcpt
        << " newtls=" << n.newtls << " auth=" << n.auth;
  } else {
    using Fn = bool (AnvilClient::*)(std::string_view, std::string_view, int&);
    static const std::map<std::string, Fn> rates = {
        {"message", &AnvilClient::message},   {"recipient", &AnvilClient::recipient},
        {"newtls", &AnvilClient::newtls},     {"newtls_status", &AnvilClient::newtls_status},
        {"auth", &AnvilClient::auth},
    };
    auto it = rates.find(req);
    if (it == rates.end()) return "UNKNOWN COMMAND";
    ok = (c.*(it->second))(svc, addr, rate);
    out << "rate=" << rate;
  }
  return ok ? out.str() : "FAIL";
}

std::string run_raw(AnvilClient& c, const std::vector<std::string>& words) {
  mta::ipc::AttrList req;
  for (size_t i = 2; i < words.size(); ++i) {
    auto eq = words[i].find('=');
    if (eq == std::string::npos) return "BAD ARGUMENT " + words[i];
    req.add(words[i].substr(0, eq), words[i].substr(eq + 1));
  }
  mta::ipc::AttrList reply;
  mta::ipc::Status st = c.request(req, reply);
  if (!st) return "FAIL";
  std::string out;
  for (const auto& a : reply) out += (out.empty() ? "" : " ") + a.name + "=" + a.value;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  mta::log::init(argv[0]);
  int c;
  while ((c = getopt(argc, argv, "q:s:t:")) != -1) {
    switch (c) {
      case 'q': queue_dir = optarg; break;
      case 's': service = optarg; break;
      case 't': timeout = std::chrono::seconds(std::atoi(optarg)); break;
      default: usage();
    }
  }
  if (optind != argc) usage();

  std::map<std::string, std::unique_ptr<AnvilClient>> conns;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (words.empty()) continue;
    if (words[0][0] == '#') {
      std::cout << line << std::endl;
      continue;
    }
    if (words[0] == "sleep" && words.size() == 2) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(words[1].c_str())));
      continue;
    }
    if (words.size() < 2) usage();
    auto& conn = conns[words[0]];
    if (words[1] == "close") {
      conn.reset();
      continue;
    }
    if (!conn) conn = std::make_unique<AnvilClient>(queue_dir, service, timeout);
    std::string result;
    if (words[1] == "raw") {
      result = run_raw(*conn, words);
      std::cout << words[0] << " raw";
      for (size_t i = 2; i < words.size(); ++i) std::cout << " " << words[i];
    } else {
      if (words.size() != 4) usage();
      result = run_typed(*conn, words[1], words[2], words[3]);
      std::cout << words[0] << " " << words[1] << " " << AnvilClient::ident(words[2], words[3]);
    }
    std::cout << " -> " << result << std::endl;
  }
  return 0;
}
