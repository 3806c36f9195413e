// postfix: start, stop and look after the mail system.
//
// usage: postfix [-Dv] [-c config_dir] command
//   start        check the configuration and the queue directories (create
//                missing ones with Postfix's owners and modes), then start
//                master in the background and wait until it is ready
//   start-fg     the same, master in the foreground
//   stop         stop master and its workers (SIGTERM; after 5 seconds, SIGKILL)
//   abort        stop at once (SIGTERM, no wait)
//   reload       re-read main.cf and master.cf (SIGHUP)
//   status       exit 0 when master runs (and say its pid), 1 when not
//   flush        ask qmgr to try every deferred message now (postqueue -f)
//   check        check the configuration and the queue directories
//   set-permissions  fix owners and modes of the queue directories
// Messages go to the mail log with the tag postfix/postfix-script, and to
// stderr as well when that is a terminal, as Postfix's postfix-script does.
#include <getopt.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "log/log.hpp"
#include "server/privileges.hpp"

#include "queue/queue_dirs.hpp"

namespace {

using namespace mta;

struct Context {
  std::string config_dir;
  config::Config config;
  std::string queue_dir;
  std::string daemon_dir;
  std::string command_dir;
};

// "the Postfix mail system is running" is read by scripts from the exit
// status; people read the words on their terminal.
void say(log::Level level, const std::string& text) {
  log::set_stderr(::isatty(2));
  switch (level) {
    case log::Level::warning: log::warning("%s", text.c_str()); break;
    case log::Level::fatal: log::fatal("%s", text.c_str());
    default: log::info("%s", text.c_str());
  }
}

// The pid of the running master, or 0 when none holds the lock.
pid_t running_master(const Context& c) {
  std::string path = c.queue_dir + "/pid/master.pid";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  bool free = ::flock(fd, LOCK_SH | LOCK_NB) == 0;
  ::close(fd);
  if (free) return 0;
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

// Debian's postfix start (configure-instance.sh) copies the files that name
// lookups need into the queue directory when a service runs chrooted; so do
// we, or a chrooted smtpd could not name its clients.  Files that the host
// does not have are skipped.
void prepare_chroot(const Context& c, const config::Config& full) {
  bool any = false;
  // "-" is master.cf's default, which is "n" since Postfix 3.0.
  for (const config::MasterEntry& e : full.services())
    if (e.chroot == "y") any = true;
  if (!any) return;
  std::string etc = c.queue_dir + "/etc";
  ::mkdir(etc.c_str(), 0755);
  for (const char* name : {"localtime", "services", "resolv.conf", "hosts", "host.conf", "nsswitch.conf",
                           "nss_mdns.config"}) {
    std::string from = std::string("/etc/") + name, to = etc + "/" + name;
    std::ifstream in(from, std::ios::binary);
    if (!in) continue;
    std::string tmp = to + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << in.rdbuf();
      if (!out) {
        log::warning("cannot copy %s to %s: %s", from.c_str(), to.c_str(), std::strerror(errno));
        continue;
      }
    }
    ::chmod(tmp.c_str(), 0644);
    if (::rename(tmp.c_str(), to.c_str()) != 0)
      log::warning("cannot copy %s to %s: %s", from.c_str(), to.c_str(), std::strerror(errno));
  }
}

void check(Context& c, bool fix_permissions) {
  // The configuration must parse, master.cf included.
  config::LoadOptions lo;
  lo.read_master_cf = true;
  config::Config full = config::Config::load(c.config_dir, lo);
  if (::geteuid() == 0) prepare_chroot(c, full);
  for (const std::string& w : full.warnings()) log::warning("%s", w.c_str());
  if (::access((c.daemon_dir + "/master").c_str(), X_OK) != 0)
    say(log::Level::fatal, "no Postfix master program " + c.daemon_dir + "/master!");
  struct stat st{};
  if (::stat(c.queue_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    say(log::Level::fatal, "no Postfix queue directory " + c.queue_dir + "!");
  queue::QueueOwners owners;
  std::string error;
  std::vector<std::string> changes;
  if (!queue::queue_owners_from_config(c.config, &owners, &error) ||
      !queue::setup_queue_directories(queue::QueueLayout::from_config(c.config), owners,
                                      fix_permissions ? queue::DirSetup::set_permissions : queue::DirSetup::create,
                                      &changes, &error))
    say(log::Level::fatal, "unable to create missing queue directories: " + error);
  for (const std::string& change : changes) log::debug("%s", change.c_str());
  // set-permissions, as Postfix's post-install: the two programs that let
  // ordinary users submit mail and list the queue run set-gid setgid_group.
  if (fix_permissions && ::geteuid() == 0) {
    for (const char* name : {"postdrop", "postqueue"}) {
      std::string path = c.command_dir + "/" + name;
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (::chown(path.c_str(), 0, owners.setgid_gid) != 0 || ::chmod(path.c_str(), 02755) != 0)
        log::warning("cannot make %s set-gid %s: %s", path.c_str(), c.config.get("setgid_group").c_str(),
                     std::strerror(errno));
    }
  }
}

int start(Context& c, bool foreground) {
  if (running_master(c)) say(log::Level::fatal, "the Postfix mail system is already running");
  check(c, false);
  say(log::Level::info, "starting the Postfix mail system");
  std::string master = c.daemon_dir + "/master";
  std::string flag = foreground ? "-d" : "-w";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(master.c_str(), "master", flag.c_str(), "-c", c.config_dir.c_str(), static_cast<char*>(nullptr));
    log::fatal("exec %s: %s", master.c_str(), std::strerror(errno));
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    say(log::Level::fatal, "mail system startup failed");
  return 0;
}

int stop(Context& c, bool force_wait) {
  pid_t pid = running_master(c);
  if (!pid) say(log::Level::fatal, "the Postfix mail system is not running");
  say(log::Level::info, force_wait ? "stopping the Postfix mail system" : "aborting the Postfix mail system");
  ::kill(pid, SIGTERM);
  if (!force_wait) return 0;
  for (int i = 0; i < 50; ++i) {
    if (!running_master(c)) return 0;
    if (i % 10 == 9) say(log::Level::info, "waiting for the Postfix mail system to terminate");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  say(log::Level::warning, "stopping the Postfix mail system with force");
  ::kill(-pid, SIGKILL);
  return 0;
}

int run(int argc, char** argv) {
  Context c;
  c.config_dir = config::Config::default_config_dir();
  int ch;
  while ((ch = getopt(argc, argv, "c:Dv")) != -1) {
    switch (ch) {
      case 'c': c.config_dir = optarg; break;
      case 'D': break;  // debugging of daemons is per service (master.cf -D)
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      default: log::fatal("usage: postfix [-c config_dir] [-Dv] command");
    }
  }
  if (optind >= argc) log::fatal("usage: postfix [-c config_dir] [-Dv] command");
  std::string command = argv[optind];
  ::setenv("MAIL_CONFIG", c.config_dir.c_str(), 1);
  try {
    c.config = config::Config::load(c.config_dir, {.read_main_cf = true, .read_master_cf = false, .process_name = "postfix"});
    log::init("postfix-script");
    config::setup_logging(c.config, ::isatty(2));
    c.queue_dir = c.config.get("queue_directory");
    c.daemon_dir = c.config.get("daemon_directory");
    c.command_dir = c.config.get("command_directory");
  } catch (const config::ConfigError& e) {
    log::fatal("%s", e.what());
  }
  try {
    if (command == "start") return start(c, false);
    if (command == "start-fg") return start(c, true);
    if (command == "stop") return stop(c, true);
    if (command == "abort") return stop(c, false);
    if (command == "status") {
      pid_t pid = running_master(c);
      if (!pid) {
        say(log::Level::info, "the Postfix mail system is not running");
        return 1;
      }
      say(log::Level::info, "the Postfix mail system is running: PID: " + std::to_string(pid));
      return 0;
    }
    if (command == "reload") {
      pid_t pid = running_master(c);
      if (!pid) say(log::Level::fatal, "the Postfix mail system is not running");
      say(log::Level::info, "refreshing the Postfix mail system");
      ::kill(pid, SIGHUP);
      return 0;
    }
    if (command == "check") {
      check(c, false);
      return 0;
    }
    if (command == "set-permissions") {
      check(c, true);
      return 0;
    }
    if (command == "flush") {
      std::string postqueue = c.command_dir + "/postqueue";
      ::execl(postqueue.c_str(), "postqueue", "-c", c.config_dir.c_str(), "-f", static_cast<char*>(nullptr));
      say(log::Level::fatal, "cannot execute " + postqueue + ": " + std::strerror(errno));
    }
  } catch (const config::ConfigError& e) {
    say(log::Level::fatal, e.what());
  }
  say(log::Level::fatal,
      "unknown command: '" + command +
          "'. Usage: postfix start (or stop, reload, abort, flush, check, status, set-permissions)");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  mta::log::init("postfix");
  return run(argc, argv);
}
