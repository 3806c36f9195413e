// smtpd: the SMTP server (Postfix's smtpd(8)), an event server: one
// process serves many sessions, and master starts more processes as the
// ones it has fill up.
#include <event2/event.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include "ipc/dict_proxy.hpp"
#include "log/log.hpp"
#include "server/server.hpp"
#include "smtpd/smtpd_server.hpp"
#include "smtpd/smtpd_session.hpp"

namespace {

std::unique_ptr<mta::smtpd::Smtpd> g_smtpd;
std::unique_ptr<mta::sasl::ServerFactory> g_sasl;
std::unique_ptr<mta::tls::ServerContext> g_tls;
struct event* g_term_event = nullptr;

// How many sessions one process takes: each needs a client descriptor, one
// to anvil and, during a transaction, one to cleanup.
int sessions_per_process() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  long long usable = (static_cast<long long>(rl.rlim_cur) - 32) / 3;  // client, cleanup, anvil
  return static_cast<int>(std::clamp<long long>(usable, 1, 1000));
}

// Stand-alone (sendmail -bs): standard input and output may be pipes,
// files or a terminal, so a child copies standard input into one end of a
// socketpair, and replies from that end go to standard output; the session
// serves the other end like any client socket.
struct StdioRelay {
  int local = -1;  // our end: replies arrive here
  pid_t reader = -1;
  struct event* ev = nullptr;
};
StdioRelay g_relay;

void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void relay_replies(evutil_socket_t fd, short, void*) {
  char buf[16384];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n > 0) write_all(1, buf, static_cast<size_t>(n));
}

int start_stdio_relay(struct event_base* base) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    mta::log::fatal("socketpair: %s", std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) mta::log::fatal("fork: %s", std::strerror(errno));
  if (pid == 0) {
    ::close(sv[0]);
    char buf[16384];
    ssize_t n;
    while ((n = ::read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) write_all(sv[1], buf, static_cast<size_t>(n));
    ::shutdown(sv[1], SHUT_WR);
    _exit(0);
  }
  g_relay.reader = pid;
  g_relay.local = sv[1];
  g_relay.ev = event_new(base, sv[1], EV_READ | EV_PERSIST, &relay_replies, nullptr);
  event_add(g_relay.ev, nullptr);
  return sv[0];
}

// After the session: the last replies, then the reader goes.  The session
// flushed its replies before it ended, so they wait in the socket: read
// without blocking (libevent may close the session's end only later).
void finish_stdio_relay() {
  if (g_relay.local < 0) return;
  if (g_relay.ev) event_free(g_relay.ev);
  char buf[16384];
  ssize_t n;
  while ((n = ::recv(g_relay.local, buf, sizeof buf, MSG_DONTWAIT)) > 0) write_all(1, buf, static_cast<size_t>(n));
  ::close(g_relay.local);
  ::kill(g_relay.reader, SIGTERM);
  ::waitpid(g_relay.reader, nullptr, 0);
  g_relay = {};
}

void on_sigterm(evutil_socket_t, short, void*) {
  if (g_smtpd) g_smtpd->shutdown_all();
  // Give the 421 replies a moment to leave, then go.
  struct event_base* base = g_smtpd ? g_smtpd->base() : nullptr;
  if (base) {
    timeval tv{1, 0};
    event_base_loopexit(base, &tv);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mta::ipc::register_proxy_tables();  // proxy:TYPE:NAME tables, via private/proxymap
  mta::server::MultiServer server;
  server.max_clients = sessions_per_process();
  server.pre_init = [](mta::server::ServerContext& ctx) {
    if (ctx.stand_alone) return;  // sendmail -bs: no TLS, no AUTH
    // SASL reads its configuration and password files before the chroot
    // and the privilege drop, as Postfix's smtpd does.
    if (ctx.config.get_bool("smtpd_sasl_auth_enable")) {
      std::string error;
      g_sasl = mta::sasl::ServerFactory::create(mta::sasl::options_from_config(ctx.config), error);
      if (!g_sasl) mta::log::warning("SASL per-process initialization failed: %s", error.c_str());
    }
    // The certificate and key are read as root, before the chroot.
    try {
      if (mta::tls::ServerPolicy::from_config(ctx.config, "smtpd").offered) {
        std::string error;
        // create() logs Postfix's warnings itself; smtpd then answers
        // STARTTLS with 454, as Postfix does.
        g_tls = mta::tls::ServerContext::create(ctx.config, "smtpd", error);
      }
    } catch (const mta::config::ConfigError& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  server.post_init = [](mta::server::ServerContext& ctx) {
    mta::smtpd::SmtpdSettings::warn_unimplemented(ctx.config);
    try {
      g_smtpd = std::make_unique<mta::smtpd::Smtpd>(
          ctx, mta::smtpd::SmtpdSettings::from_config(ctx.config, ctx.service_name), std::move(g_sasl),
          std::move(g_tls));
    } catch (const mta::config::ConfigError& e) {
      mta::log::fatal("%s", e.what());  // a bad value in main.cf or -o, as Postfix stops
    }
    ctx.table_changed = [] { return g_smtpd->changed_table(); };
    g_term_event = evsignal_new(ctx.base, SIGTERM, &on_sigterm, nullptr);
    event_add(g_term_event, nullptr);
  };
  server.adopt = [](int fd, mta::server::ServerContext& ctx) {
    if (ctx.stand_alone) fd = start_stdio_relay(ctx.base);
    auto* session = new mta::smtpd::Session(*g_smtpd, fd);
    session->start();
  };
  server.pre_exit = [](mta::server::ServerContext&) {
    finish_stdio_relay();
    if (g_term_event) event_free(g_term_event);
    g_term_event = nullptr;
  };
  int status = mta::server::run_multi_server(argc, argv, server);
  // Leave without running destructors: a worker thread may still be in a
  // DNS query or a SASL step that never returns (a hung saslauthd), and
  // joining it would keep the process alive; destroying what it uses
  // while it runs would be worse.  Everything a client was promised is on
  // disk or in a socket by now.
  std::fflush(nullptr);
  ::_exit(status);
}
