// server.cpp: the three skeletons of server.hpp on one libevent loop.
#include "server/server.hpp"

#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "config/log_setup.hpp"
#include "log/log.hpp"
#include "server/master_protocol.hpp"
#include "server/privileges.hpp"

namespace mta::server {
namespace {

enum class Kind { single, multi, trigger };

struct Args {
  std::string service_name;
  std::string type = "unix";
  int sockets = 1;
  bool unprivileged = false;
  bool chroot = false;
  bool stand_alone = false;
  bool debug_wait = false;
  bool log_stderr = false;  // -V, as Postfix's skeletons (postconf runs "bounce -SVn ...")
  std::vector<std::pair<std::string, std::string>> overrides;
  std::vector<std::string> attributes;  // the words after the options
};

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

std::string basename_of(const char* argv0) {
  std::string s(argv0);
  auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

Args parse_args(int argc, char** argv) {
  Args a;
  a.service_name = basename_of(argv[0]);
  int c;
  opterr = 0;
  // "+": stop at the first word that is not an option, as Postfix's
  // GETOPT() does, so that pipe's "argv=/usr/bin/maildrop -d ${user}" keeps
  // its "-d".
  while ((c = getopt(argc, argv, "+cDln:o:s:St:uVvz")) != -1) {
    switch (c) {
      // Postfix's master adds -l (maxproc 1) and -z (maxproc 0); they change
      // nothing here, but a daemon run by the real master must accept them.
      case 'l': case 'z': break;
      case 'c': a.chroot = true; break;
      case 'D': a.debug_wait = true; break;
      case 'n': a.service_name = optarg; break;
      case 'o': {
        std::string name, value;
        std::string err = config::split_name_value(optarg, &name, &value);
        if (!err.empty()) log::fatal("-o %s: %s", optarg, err.c_str());
        a.overrides.emplace_back(name, value);
        break;
      }
      case 's': a.sockets = std::atoi(optarg); break;
      case 'S': a.stand_alone = true; break;
      case 't': a.type = optarg; break;
      case 'u': a.unprivileged = true; break;
      case 'V': a.log_stderr = true; break;
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      default: log::fatal("invalid option: -%c", optopt);
    }
  }
  if (a.sockets < 1) log::fatal("bad socket count: %d", a.sockets);
  for (int i = optind; i < argc; ++i) a.attributes.emplace_back(argv[i]);
  return a;
}

// A daemon handles one message after another with the same few large
// buffers (64 KB read chunks and write buffers, a whole header or message).
// glibc's defaults give the free top of the heap back to the kernel past
// 128 KB and map each block of 128 KB or more anew: every message then paid
// brk or mmap, munmap, and page faults on fresh zeroed pages (a sixth of the
// virtual agent's samples at 100 KB per message).  Blocks up to 4 MB come
// from the heap, and up to 8 MB of free heap is kept between messages; it
// is resident only if a message used it, and goes when the process exits
// (max_use, max_idle).
void keep_heap_between_messages() {
  ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

// The state of one skeleton process.
class Skeleton {
 public:
  Skeleton(Kind kind, const Callbacks& callbacks) : kind_(kind), callbacks_(callbacks) {}

  void start(int argc, char** argv) {
    keep_heap_between_messages();
    ctx_.program = basename_of(argv[0]);
    log::init(argv[0]);
    args_ = parse_args(argc, argv);
    ctx_.service_name = args_.service_name;
    ctx_.service_type = args_.type;
    ctx_.attributes = args_.attributes;
    std::string dir = config::Config::default_config_dir();
    try {
      ctx_.config = config::Config::load(dir, {.read_main_cf = true, .read_master_cf = false,
                                                .process_name = ctx_.program});
      for (const auto& [n, v] : args_.overrides) ctx_.config.set_override(n, v);
      config::setup_logging(ctx_.config, args_.log_stderr || (args_.stand_alone && ::isatty(2)));
    } catch (const config::ConfigError& e) {
      log::fatal("%s", e.what());
    }
    for (const std::string& w : ctx_.config.warnings()) log::warning("%s", w.c_str());
    if (args_.debug_wait) {
      log::info("debug: pid %ld stopped; continue it with SIGCONT", static_cast<long>(::getpid()));
      ::kill(::getpid(), SIGSTOP);
    }
    const char* gen = std::getenv(kGenerationEnv);
    generation_ = gen ? static_cast<std::uint32_t>(std::strtoul(gen, nullptr, 10)) : 0;
    under_master_ = gen != nullptr && fd_open(kStatusFd);
    ::signal(SIGPIPE, SIG_IGN);

    std::string queue_dir;
    try {
      queue_dir = ctx_.config.get("queue_directory");
      max_idle_ = ctx_.config.get_time("max_idle");
      // next_request() waits max_idle, or ipc_timeout when that is off (as
      // the wait for qmgr's close was before).
      long long wait_s = max_idle_ > 0 ? max_idle_ : ctx_.config.get_time("ipc_timeout");
      request_wait_ms_ = static_cast<int>(std::clamp<long long>(wait_s, 1, 3600) * 1000);
      max_use_ = ctx_.config.get_int("max_use");
    } catch (const config::ConfigError& e) {
      log::fatal("%s", e.what());
    }
    if (::chdir(queue_dir.c_str()) != 0) log::fatal("chdir(\"%s\"): %s", queue_dir.c_str(), std::strerror(errno));

    // The descriptor libevent's epoll set will get: the lowest free one.
    loop_epfd_ = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
    if (loop_epfd_ >= 0) ::close(loop_epfd_);
    base_ = event_base_new();
    if (!base_) log::fatal("event_base_new failed");
    if (std::strcmp(event_base_get_method(base_), "epoll") != 0) loop_epfd_ = -1;
    ctx_.base = base_;
    ctx_.request_exit = [this] { leave(); };
    ctx_.stand_alone = args_.stand_alone;
    ctx_.client_done = [this] { adopted_client_done(); };
    ctx_.next_request = [this](int fd) { return next_request(fd); };

    if (callbacks_.pre_init) callbacks_.pre_init(ctx_);
    if (::geteuid() == 0 && (args_.unprivileged || args_.chroot)) {
      try {
        Account owner = mail_owner(ctx_.config);
        drop_privileges(owner, args_.chroot ? queue_dir : std::string());
        // Inside the jail the queue directory is the root: every path that
        // daemons derive from queue_directory (sockets, queue files) stays right.
        if (args_.chroot) ctx_.config.set_override("queue_directory", "/");
      } catch (const config::ConfigError& e) {
        log::fatal("%s", e.what());
      }
    }
    if (callbacks_.post_init) callbacks_.post_init(ctx_);
  }

  int loop(const SingleServer* single, const MultiServer* multi, const TriggerServer* trigger) {
    single_ = single;
    multi_ = multi;
    trigger_ = trigger;
    if (args_.stand_alone) return stand_alone();
    if (!fd_open(kListenFd)) log::fatal("no listening socket on descriptor %d: run me from master", kListenFd);
    for (int i = 0; i < args_.sockets; ++i) {
      int fd = kListenFd + i;
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      struct event* ev = event_new(base_, fd, EV_READ | EV_PERSIST, &Skeleton::on_listen, this);
      events_.push_back(ev);
    }
    listen_events_ = events_.size();
    listen_on();
    if (under_master_ && fd_open(kLifelineFd)) {
      struct event* ev = event_new(base_, kLifelineFd, EV_READ, &Skeleton::on_lifeline, this);
      event_add(ev, nullptr);
      events_.push_back(ev);
    }
    idle_timer_ = evtimer_new(base_, &Skeleton::on_idle, this);
    arm_idle();
    report(Availability::available);
    for (;;) {
      event_base_dispatch(base_);
      // The last round may have brought a client (see leave()).  After an
      // idle or max_use exit it is served as any other; an event server
      // that must go (a table changed, master is gone) lets it finish
      // first.  A loop ended from outside (smtpd's SIGTERM) just ends.
      if (ctx_.clients > 0 && leaving_ == Leaving::soft) {
        leaving_ = Leaving::no;
        arm_idle();
        continue;
      }
      if (ctx_.clients > 0 && leaving_ == Leaving::hard && multi_ && multi_->adopt && !draining_) {
        leaving_ = Leaving::no;
        drain(!master_gone_);
        continue;
      }
      break;
    }
    if (callbacks_.pre_exit) callbacks_.pre_exit(ctx_);
    return 0;
  }

 private:
  static void on_listen(evutil_socket_t fd, short, void* self) { static_cast<Skeleton*>(self)->listen_ready(fd); }

  // Take connections (again), or stop taking them.
  //
  // The listening sockets are shared by every process of the service.
  // Watched as any descriptor, each connection wakes every idle process of
  // the service, and all but one find nothing to accept (with twenty
  // cleanup processes, more than the rest of the hand-over).  Postfix
  // serializes its processes' select() with a lock file; here each
  // listening socket is in the loop's epoll set with EPOLLEXCLUSIVE, so that
  // the kernel wakes one process that is waiting in the loop.  The wake-up
  // goes only to a set that a process is blocked on (Linux counts an
  // exclusive wake-up as given only then), so a process busy with a client
  // or past its loop does not take it from the others.  libevent
  // 2.1 cannot ask for that flag, so after it has added a socket to its
  // set, the entry is replaced by one with the flag (the same events and
  // data; libevent removes it as its own).  Whether loop_epfd_ is that set
  // shows in the removal succeeding; if it fails, nothing has changed and
  // every process wakes, as without the flag.
  void listen_on() {
    for (size_t i = 0; i < listen_events_; ++i) {
      event_add(events_[i], nullptr);
      if (loop_epfd_ < 0) continue;
      int fd = event_get_fd(events_[i]);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      ev.data.fd = fd;
      if (::epoll_ctl(loop_epfd_, EPOLL_CTL_DEL, fd, nullptr) != 0) {
        loop_epfd_ = -1;
        continue;
      }
      if (::epoll_ctl(loop_epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ev.events = EPOLLIN;  // a kernel without EPOLLEXCLUSIVE
        if (::epoll_ctl(loop_epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
          log::fatal("epoll_ctl: listening socket %d: %s", fd, std::strerror(errno));
      }
    }
  }

  // With EPOLLEXCLUSIVE a process woken for a connection must take it: no
  // other is woken for it.  Hence leave() lets the callbacks of the current
  // round run (event_base_loopexit, not loopbreak), so that a connection
  // that came with the idle timer or master's lifeline is still accepted
  // (and then served, see loop()), and listen_off() takes a connection that
  // is already waiting, which this process may have been woken for (an
  // event server that is full or leaving serves one more).
  void listen_off() {
    for (size_t i = 0; i < listen_events_; ++i) event_del(events_[i]);
    if (!multi_ || !multi_->adopt) return;
    for (size_t i = 0; i < listen_events_; ++i) {
      pollfd p{static_cast<int>(event_get_fd(events_[i])), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      int fd = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;  // another process took it
      ++ctx_.clients;
      multi_->adopt(fd, ctx_);
    }
  }

  // Leave the loop once the callbacks that are due now have run.  SOFT
  // (idle, max_use): only if they brought no client.
  enum class Leaving { no, soft, hard };
  void leave(Leaving how = Leaving::hard) {
    if (leaving_ != Leaving::hard) leaving_ = how;
    event_base_loopexit(base_, nullptr);
  }
  static void on_lifeline(evutil_socket_t, short, void* self) {
    // master is gone (stop or reload): finish what we do and leave.  An
    // event server stops accepting and leaves when its clients are done.
    auto* s = static_cast<Skeleton*>(self);
    s->master_gone_ = true;
    if (s->multi_ && s->multi_->adopt && s->ctx_.clients > 0) {
      s->drain(false);  // master is gone: no one to tell
      return;
    }
    s->leave();
  }
  static void on_idle(evutil_socket_t, short, void* self) {
    auto* s = static_cast<Skeleton*>(self);
    if (s->ctx_.clients == 0) s->leave(Leaving::soft);
  }
  static void on_client(evutil_socket_t fd, short, void* self) { static_cast<Skeleton*>(self)->client_ready(fd); }

  void arm_idle() {
    if (callbacks_.long_running || max_idle_ <= 0) return;
    timeval tv{static_cast<time_t>(max_idle_), 0};
    evtimer_add(idle_timer_, &tv);
  }

  void report(Availability a) {
    if (!under_master_) return;
    StatusReport r{static_cast<std::int32_t>(pid_), generation_, a};
    if (::write(kStatusFd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
      master_gone_ = true;
      leave();
    }
  }

  void used_once() {
    ++uses_;
    if (ctx_.table_changed && !draining_) {
      std::string name = ctx_.table_changed();
      if (!name.empty()) {
        log::info("table %s has changed -- restarting", name.c_str());
        if (multi_ && multi_->adopt && ctx_.clients > 0) {
          // An event server lets its other clients finish first.
          drain(true);
          return;
        }
        leave();
        return;
      }
    }
    if (!callbacks_.long_running && max_use_ > 0 && uses_ >= max_use_ && ctx_.clients == 0)
      leave(Leaving::soft);
    arm_idle();
  }

  // See ServerContext::next_request.  A request is counted here when the
  // next one comes; the last one, when the service returns (used_once()).
  bool next_request(int fd) {
    if (master_gone_) return false;
    if (!callbacks_.long_running && max_use_ > 0 && uses_ + 1 >= max_use_) return false;
    if (ctx_.table_changed && !ctx_.table_changed().empty()) return false;  // used_once() logs it
    pollfd p[2] = {{fd, POLLIN, 0}, {kLifelineFd, POLLIN, 0}};
    nfds_t n = under_master_ && fd_open(kLifelineFd) ? 2 : 1;
    for (;;) {
      int r = ::poll(p, n, request_wait_ms_);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;  // max_idle passed
      if (n == 2 && p[1].revents) {
        master_gone_ = true;  // the lifeline event, still pending, ends the loop
        return false;
      }
      char byte;
      ssize_t got = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;  // woken for nothing
      if (got <= 0) return false;  // the client is done
      ++uses_;
      return true;
    }
  }

  void listen_ready(int listen_fd) {
    if (kind_ == Kind::trigger && args_.type == "fifo") {
      char buf[1024];
      ssize_t n = ::read(listen_fd, buf, sizeof buf);
      if (n <= 0) return;
      report(Availability::taken);
      trigger_->trigger(std::string_view(buf, static_cast<size_t>(n)), ctx_);
      report(Availability::available);
      used_once();
      return;
    }
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;  // another worker took it, or the client left
    switch (kind_) {
      case Kind::single:
        report(Availability::taken);
        single_->service(fd, ctx_);
        ::close(fd);
        report(Availability::available);
        used_once();
        break;
      case Kind::trigger: {
        report(Availability::taken);
        std::string bytes = read_trigger(fd);
        ::close(fd);
        // Under load the clients of a trigger server (cleanup's "W" for
        // qmgr) queue up: take what is already waiting as one request, so
        // that a burst of wakeups costs one queue scan, not one each.
        for (int more = 0; more < kTriggerBatch && bytes.size() < 4096; ++more) {
          int next = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (next < 0) break;
          bytes += read_trigger(next, false);  // what is there; never waits
          ::close(next);
        }
        if (!bytes.empty()) trigger_->trigger(bytes, ctx_);
        report(Availability::available);
        used_once();
        break;
      }
      case Kind::multi: {
        ++ctx_.clients;
        if (multi_->adopt) {
          // Postfix's smtpd, a single server, tells master of every client.
          // An event server tells master once that it has been used (so that
          // master's "bad command startup" check knows it worked), and then
          // only when it fills up or has room again (update_capacity): a
          // connection costs master no wakeup.
          bool first = !told_used_;
          if (first) report(Availability::taken);
          told_used_ = true;
          multi_->adopt(fd, ctx_);
          update_capacity();
          if (first && !full_ && !draining_) report(Availability::available);
          break;
        }
        if (multi_->connected && !multi_->connected(fd, ctx_)) {
          --ctx_.clients;
          ::close(fd);
          used_once();
          break;
        }
        struct event* ev = event_new(base_, fd, EV_READ | EV_PERSIST, &Skeleton::on_client, this);
        event_add(ev, nullptr);
        clients_[fd] = ev;
        break;
      }
    }
  }

  // Event servers: stop listening (and tell master we are busy) at the cap,
  // listen again below it.
  void update_capacity() {
    if (draining_ || updating_capacity_) return;
    if (!multi_ || !multi_->adopt || multi_->max_clients <= 0) return;
    // listen_off() may take one more client, whose session may even end at
    // once: look again until the state that master was told holds.
    updating_capacity_ = true;
    for (;;) {
      bool full = ctx_.clients >= multi_->max_clients;
      if (full == full_ || draining_) break;
      full_ = full;
      if (full) listen_off();
      else listen_on();
      report(full ? Availability::taken : Availability::available);
    }
    updating_capacity_ = false;
  }

  // Stop accepting, tell master we are busy (so that it starts a new
  // process), and leave when the last client is done.
  void drain(bool tell_master) {
    if (draining_) return;
    draining_ = true;
    listen_off();
    if (tell_master) report(Availability::taken);
  }

  void adopted_client_done() {
    --ctx_.clients;
    if (draining_ && ctx_.clients == 0) leave();
    update_capacity();
    used_once();
  }

  static constexpr int kTriggerBatch = 64;

  // A trigger is a few bytes; never wait long for them.  WAIT false: only
  // what has arrived already (a client that sends and then waits for the
  // close, as Postfix's unix_trigger, costs nothing).
  static std::string read_trigger(int fd, bool wait = true) {
    timeval tv{1, 0};
    if (wait) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, wait ? 0 : MSG_DONTWAIT)) > 0 && out.size() < 4096)
      out.append(buf, static_cast<size_t>(n));
    return out;
  }

  void client_ready(int fd) {
    if (multi_->readable(fd, ctx_)) return;
    close_client(fd);
  }

  void close_client(int fd) {
    auto it = clients_.find(fd);
    if (it != clients_.end()) {
      event_free(it->second);
      clients_.erase(it);
    }
    if (multi_->disconnected) multi_->disconnected(fd, ctx_);
    ::close(fd);
    --ctx_.clients;
    used_once();
  }

  int stand_alone() {
    switch (kind_) {
      case Kind::single: single_->service(0, ctx_); break;
      case Kind::trigger: trigger_->trigger(read_trigger(0), ctx_); break;
      case Kind::multi:
        ++ctx_.clients;
        if (multi_->adopt) {
          ctx_.client_done = [this] { event_base_loopbreak(base_); };
          multi_->adopt(0, ctx_);
          event_base_dispatch(base_);
          break;
        }
        if (!multi_->connected || multi_->connected(0, ctx_))
          while (multi_->readable(0, ctx_)) {
          }
        if (multi_->disconnected) multi_->disconnected(0, ctx_);
        break;
    }
    if (callbacks_.pre_exit) callbacks_.pre_exit(ctx_);
    return 0;
  }

  Kind kind_;
  const Callbacks& callbacks_;
  const SingleServer* single_ = nullptr;
  const MultiServer* multi_ = nullptr;
  const TriggerServer* trigger_ = nullptr;
  Args args_;
  ServerContext ctx_;
  struct event_base* base_ = nullptr;
  struct event* idle_timer_ = nullptr;
  std::vector<struct event*> events_;
  std::map<int, struct event*> clients_;
  std::uint32_t generation_ = 0;
  bool under_master_ = false;
  bool full_ = false;
  bool draining_ = false;
  size_t listen_events_ = 0;  // the first entries of events_
  int loop_epfd_ = -1;        // libevent's epoll set, if it is where expected
  bool told_used_ = false;    // an event server has told master of a client
  Leaving leaving_ = Leaving::no;
  bool master_gone_ = false;         // lifeline closed, or a status report failed
  bool updating_capacity_ = false;
  long long max_idle_ = 100, max_use_ = 100, uses_ = 0;
  int request_wait_ms_ = 100000;  // next_request()'s wait
  const pid_t pid_ = ::getpid();  // for the status reports
};

}  // namespace

int run_single_server(int argc, char** argv, const SingleServer& server) {
  Skeleton s(Kind::single, server);
  s.start(argc, argv);
  return s.loop(&server, nullptr, nullptr);
}

int run_multi_server(int argc, char** argv, const MultiServer& server) {
  Skeleton s(Kind::multi, server);
  s.start(argc, argv);
  return s.loop(nullptr, &server, nullptr);
}

int run_trigger_server(int argc, char** argv, const TriggerServer& server) {
  Skeleton s(Kind::trigger, server);
  s.start(argc, argv);
  return s.loop(nullptr, nullptr, &server);
}

}  // namespace mta::server
