// master.cpp: see master.hpp.
#include "master/master.hpp"

#include <event2/event.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "log/log.hpp"
#include "master/listener.hpp"
#include "server/master_protocol.hpp"
#include "server/privileges.hpp"

extern char** environ;

namespace mta::master {
namespace {

using config::Config;
using config::ConfigError;
using config::MasterEntry;

struct Process {
  bool available = true;
  int uses = 0;  // times it reported being taken
  std::uint32_t generation = 0;
};

struct Service {
  MasterEntry entry;
  std::string path;               // the program
  std::vector<std::string> argv;  // what it is started with
  std::vector<int> fds;
  std::vector<struct event*> listen_events;
  bool listening = false;
  long max_proc = 0;  // 0: no limit
  long wakeup = 0;
  bool wakeup_if_used = false;
  bool used = false;
  bool disabled = false;
  bool removed = false;  // gone from master.cf; deleted when its workers are
  std::map<pid_t, Process> procs;
  int available = 0;
  bool throttled = false;
  struct event* wakeup_timer = nullptr;
  struct event* throttle_timer = nullptr;
  std::uint32_t generation = 0;
};

bool same_entry(const MasterEntry& a, const MasterEntry& b) {
  return a.service == b.service && a.type == b.type && a.private_ == b.private_ &&
         a.unprivileged == b.unprivileged && a.chroot == b.chroot && a.wakeup == b.wakeup &&
         a.process_limit == b.process_limit && a.argv == b.argv;
}

class Master {
 public:
  explicit Master(const MasterOptions& o) : options_(o) {}

  int run() {
    load_config();
    base_ = event_base_new();
    if (!base_) log::fatal("event_base_new failed");
    if (::pipe2(status_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) log::fatal("pipe: %s", std::strerror(errno));
    new_lifeline();
    add_signal(SIGHUP);
    add_signal(SIGTERM);
    add_signal(SIGINT);
    add_signal(SIGCHLD);
    ::signal(SIGPIPE, SIG_IGN);
    status_event_ = event_new(base_, status_pipe_[0], EV_READ | EV_PERSIST, &Master::on_status, this);
    event_add(status_event_, nullptr);
    open_services(read_master_cf());
    log::info("daemon started -- version %s, configuration %s", config_.get("mail_version").c_str(),
              options_.config_dir.c_str());
    if (options_.ready_fd >= 0) {
      (void)!::write(options_.ready_fd, "1", 1);
      ::close(options_.ready_fd);
    }
    if (options_.exit_after > 0) {
      timeval tv{options_.exit_after, 0};
      event_base_once(base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* m) {
        static_cast<Master*>(m)->stop("exit time reached");
      }, this, &tv);
    }
    event_base_dispatch(base_);
    return 0;
  }

 private:
  void load_config() {
    config_ = Config::load(options_.config_dir, {.read_main_cf = true, .read_master_cf = false, .process_name = "master"});
    for (const std::string& w : config_.warnings()) log::warning("%s", w.c_str());
    config::setup_logging(config_, false);
    daemon_dir_ = config_.get("daemon_directory");
    default_limit_ = config_.get_int("default_process_limit");
    throttle_time_ = config_.get_time("service_throttle_time");
    owner_uid_ = owner_gid_ = -1;
    if (::geteuid() == 0) {
      server::Account owner = server::mail_owner(config_);
      owner_uid_ = static_cast<int>(owner.uid);
      owner_gid_ = static_cast<int>(owner.gid);
    }
  }

  std::vector<MasterEntry> read_master_cf() {
    std::vector<std::string> warnings;
    std::string path = config_.master_cf_path();
    auto entries = config::parse_master_cf(config::read_file(path), path, &warnings);
    for (const std::string& w : warnings) log::warning("%s", w.c_str());
    return entries;
  }

  void add_signal(int sig) {
    struct event* ev = evsignal_new(base_, sig, &Master::on_signal, this);
    event_add(ev, nullptr);
  }

  void new_lifeline() {
    if (lifeline_[1] >= 0) ::close(lifeline_[1]);  // workers of the last generation finish and exit
    if (lifeline_[0] >= 0) ::close(lifeline_[0]);
    if (::pipe2(lifeline_, O_CLOEXEC) != 0) log::fatal("pipe: %s", std::strerror(errno));
    ++generation_;
  }

  // Builds a Service from an entry; a service we cannot run is disabled with a warning.
  // reuse: listening sockets of the previous version of the same endpoint
  // (a reload that changed other columns): a worker that still serves a
  // client holds them too, so binding anew would fail.
  std::unique_ptr<Service> make_service(const MasterEntry& e, std::vector<int> reuse = {}) {
    auto s = std::make_unique<Service>();
    s->entry = e;
    s->generation = generation_;
    const std::string& cmd = e.argv.empty() ? e.service : e.argv[0];
    s->path = cmd.find('/') != std::string::npos ? cmd : daemon_dir_ + "/" + cmd;
    s->max_proc = e.process_limit == "-" ? default_limit_ : std::atol(e.process_limit.c_str());
    std::string w = e.wakeup;
    if (!w.empty() && w.back() == '?') {
      s->wakeup_if_used = true;
      w.pop_back();
    }
    s->wakeup = w == "-" ? 0 : std::atol(w.c_str());
    if (e.type == "unix-dgram" || e.type == "pass") {
      log::warning("master.cf: service %s/%s: type %s is not supported by this version; service disabled",
                   e.service.c_str(), e.type.c_str(), e.type.c_str());
      s->disabled = true;
      return s;
    }
    if (::access(s->path.c_str(), X_OK) != 0) {
      log::warning("master.cf: service %s/%s: %s: %s; service disabled", e.service.c_str(), e.type.c_str(),
                   s->path.c_str(), std::strerror(errno));
      s->disabled = true;
      for (int fd : reuse) ::close(fd);
      return s;
    }
    s->argv = {cmd.substr(cmd.rfind('/') == std::string::npos ? 0 : cmd.rfind('/') + 1), "-n", e.service, "-t",
               e.type};
    if (e.unprivileged != "n") s->argv.push_back("-u");
    if (e.chroot == "y") s->argv.push_back("-c");
    s->fds = reuse.empty() ? open_listeners(e, config_, owner_uid_, owner_gid_) : std::move(reuse);
    s->argv.push_back("-s");
    s->argv.push_back(std::to_string(s->fds.size()));
    for (size_t i = 1; i < e.argv.size(); ++i) s->argv.push_back(e.argv[i]);
    for (int fd : s->fds) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      s->listen_events.push_back(event_new(base_, fd, EV_READ | EV_PERSIST, &Master::on_listen, s.get()));
    }
    if (s->wakeup > 0 && (e.type == "unix" || e.type == "fifo")) {
      s->wakeup_timer = evtimer_new(base_, &Master::on_wakeup, s.get());
      timeval now{0, 0};
      evtimer_add(s->wakeup_timer, &now);
    }
    s->throttle_timer = evtimer_new(base_, &Master::on_unthrottle, s.get());
    return s;
  }

  void open_services(const std::vector<MasterEntry>& entries) {
    for (const MasterEntry& e : entries) {
      services_.push_back(make_service(e));
      update_listen(*services_.back());
    }
  }

  void close_service(Service& s) {
    for (struct event* ev : s.listen_events) event_free(ev);
    s.listen_events.clear();
    s.listening = false;
    for (int fd : s.fds) ::close(fd);
    s.fds.clear();
    if (s.wakeup_timer) event_free(s.wakeup_timer);
    if (s.throttle_timer) event_free(s.throttle_timer);
    s.wakeup_timer = s.throttle_timer = nullptr;
    s.disabled = true;
  }

  void update_listen(Service& s) {
    bool want = !s.disabled && !s.throttled && s.available == 0 &&
                (s.max_proc <= 0 || static_cast<long>(s.procs.size()) < s.max_proc);
    if (want == s.listening) return;
    for (struct event* ev : s.listen_events) {
      if (want) event_add(ev, nullptr);
      else event_del(ev);
    }
    s.listening = want;
  }

  void spawn(Service& s) {
    pid_t pid = ::fork();
    if (pid < 0) {
      log::warning("fork: %s", std::strerror(errno));
      return;
    }
    if (pid == 0) exec_worker(s);
    s.procs[pid] = Process{true, 0, s.generation};
    ++s.available;
    s.used = true;
    owner_[pid] = &s;
    update_listen(s);
  }

  [[noreturn]] void exec_worker(const Service& s) {
    // Move what the worker inherits out of the way, then into its place.
    std::vector<int> high;
    for (int fd : s.fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
    int status = ::fcntl(status_pipe_[1], F_DUPFD_CLOEXEC, 100);
    int lifeline = ::fcntl(lifeline_[0], F_DUPFD_CLOEXEC, 100);
    ::dup2(lifeline, server::kLifelineFd);
    ::dup2(status, server::kStatusFd);
    for (size_t i = 0; i < high.size(); ++i) ::dup2(high[i], server::kListenFd + static_cast<int>(i));
    // Everything above: one close_range() (a thousand close() calls were
    // most of the cost of starting a worker).
    int first = server::kListenFd + static_cast<int>(high.size());
    if (::close_range(static_cast<unsigned>(first), ~0U, 0) != 0)
      for (int fd = first; fd < 1024; ++fd) ::close(fd);
    ::fcntl(server::kStatusFd, F_SETFL, ::fcntl(server::kStatusFd, F_GETFL) & ~O_NONBLOCK);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGHUP, SIGTERM, SIGINT, SIGCHLD}) ::signal(sig, SIG_DFL);
    std::vector<std::string> env = worker_environment(s);
    std::vector<char*> envp, argv;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = s.argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execve(s.path.c_str(), argv.data(), envp.data());
    log::fatal("exec %s: %s", s.path.c_str(), std::strerror(errno));
  }

  std::vector<std::string> worker_environment(const Service& s) {
    std::vector<std::string> env;
    for (const std::string& item : config_.get_list("import_environment")) {
      if (item.find('=') != std::string::npos) {
        env.push_back(item);
      } else if (const char* v = std::getenv(item.c_str())) {
        env.push_back(item + "=" + v);
      }
    }
    env.push_back("MAIL_CONFIG=" + options_.config_dir);
    env.push_back(std::string(server::kGenerationEnv) + "=" + std::to_string(s.generation));
    return env;
  }

  static void on_listen(evutil_socket_t, short, void* arg) {
    Service* s = static_cast<Service*>(arg);
    instance_->spawn(*s);
  }

  static void on_wakeup(evutil_socket_t, short, void* arg) {
    Service* s = static_cast<Service*>(arg);
    if (!s->wakeup_if_used || s->used) send_trigger(s->entry, server::kWakeupTrigger);
    timeval tv{s->wakeup, 0};
    evtimer_add(s->wakeup_timer, &tv);
  }

  static void on_unthrottle(evutil_socket_t, short, void* arg) {
    Service* s = static_cast<Service*>(arg);
    s->throttled = false;
    instance_->update_listen(*s);
  }

  static void on_status(evutil_socket_t fd, short, void*) {
    server::StatusReport r;
    while (::read(fd, &r, sizeof r) == static_cast<ssize_t>(sizeof r)) {
      auto it = instance_->owner_.find(r.pid);
      if (it == instance_->owner_.end()) continue;
      Service& s = *it->second;
      auto p = s.procs.find(r.pid);
      if (p == s.procs.end() || p->second.generation != s.generation) continue;
      bool avail = r.availability == server::Availability::available;
      if (avail == p->second.available) continue;
      p->second.available = avail;
      if (avail) {
        ++s.available;
      } else {
        --s.available;
        ++p->second.uses;
      }
      instance_->update_listen(s);
    }
  }

  static void on_signal(evutil_socket_t sig, short, void*) {
    switch (sig) {
      case SIGCHLD: instance_->reap(); break;
      case SIGHUP: instance_->reload(); break;
      default: instance_->stop("terminating on signal " + std::to_string(sig));
    }
  }

  void reap() {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = owner_.find(pid);
      if (it == owner_.end()) continue;
      Service& s = *it->second;
      owner_.erase(it);
      auto p = s.procs.find(pid);
      if (p == s.procs.end()) continue;
      Process proc = p->second;
      s.procs.erase(p);
      if (proc.available && proc.generation == s.generation) --s.available;
      bool normal = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!normal && !stopping_) {
        if (WIFEXITED(status))
          log::warning("process %s pid %ld exit status %d", s.path.c_str(), static_cast<long>(pid),
                       WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
          log::warning("process %s pid %ld killed by signal %d", s.path.c_str(), static_cast<long>(pid),
                       WTERMSIG(status));
        if (proc.uses == 0 && !s.throttled && proc.generation == s.generation && !s.disabled) {
          log::warning("%s: bad command startup -- throttling", s.path.c_str());
          s.throttled = true;
          timeval tv{static_cast<time_t>(throttle_time_), 0};
          evtimer_add(s.throttle_timer, &tv);
        }
      }
      update_listen(s);
    }
    std::erase_if(services_, [](const std::unique_ptr<Service>& s) { return s->removed && s->procs.empty(); });
  }

  void reload() {
    try {
      load_config();
      auto entries = read_master_cf();
      new_lifeline();
      std::vector<std::unique_ptr<Service>> next;
      for (const MasterEntry& e : entries) {
        auto old = std::find_if(services_.begin(), services_.end(), [&](const std::unique_ptr<Service>& s) {
          return s && !s->removed && s->entry.key() == e.key();
        });
        if (old != services_.end() && same_entry((*old)->entry, e) && !(*old)->disabled) {
          // Same endpoints: keep them; its workers finish and newer ones start.
          retire_workers(**old);
          (*old)->generation = generation_;
          next.push_back(std::move(*old));
          services_.erase(old);
        } else {
          std::vector<int> reuse;
          if (old != services_.end()) {
            if ((*old)->entry.type == e.type && !(*old)->disabled) reuse = std::exchange((*old)->fds, {});
            close_service(**old);
            retire_workers(**old);
            (*old)->removed = true;
          }
          next.push_back(make_service(e, std::move(reuse)));
        }
      }
      for (auto& s : services_) {
        if (!s) continue;
        if (!s->removed) {
          close_service(*s);
          retire_workers(*s);
          s->removed = true;
        }
        if (!s->procs.empty()) next.push_back(std::move(s));
      }
      services_ = std::move(next);
      for (auto& s : services_) update_listen(*s);
      log::info("reload -- version %s, configuration %s", config_.get("mail_version").c_str(),
                options_.config_dir.c_str());
    } catch (const ConfigError& e) {
      log::warning("reload failed, keeping the running configuration: %s", e.what());
    }
  }

  void retire_workers(Service& s) {
    for (auto& [pid, p] : s.procs) {
      if (p.available && p.generation == s.generation) --s.available;
      p.available = false;
      p.generation = 0;
    }
  }

  void stop(const std::string& why) {
    stopping_ = true;
    log::info("%s", why.c_str());
    for (auto& s : services_)
      for (auto& [pid, p] : s->procs) ::kill(pid, SIGTERM);
    // Give the workers a moment to leave, so that none outlives master unreaped.
    for (int i = 0; i < 40 && !owner_.empty(); ++i) {
      ::usleep(50000);
      int status;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) owner_.erase(pid);
    }
    event_base_loopbreak(base_);
  }

  static Master* instance_;
  MasterOptions options_;
  Config config_;
  std::string daemon_dir_;
  long long default_limit_ = 100;
  long long throttle_time_ = 60;
  int owner_uid_ = -1, owner_gid_ = -1;
  struct event_base* base_ = nullptr;
  struct event* status_event_ = nullptr;
  int status_pipe_[2] = {-1, -1};
  int lifeline_[2] = {-1, -1};
  std::uint32_t generation_ = 0;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Service>> services_;
  std::map<pid_t, Service*> owner_;

 public:
  static void set_instance(Master* m) { instance_ = m; }
};

Master* Master::instance_ = nullptr;

}  // namespace

int run_master(const MasterOptions& options) {
  Master m(options);
  Master::set_instance(&m);
  try {
    return m.run();
  } catch (const ConfigError& e) {
    log::fatal("%s", e.what());
  }
}

}  // namespace mta::master
