// master: the Postfix-compatible resident process manager.
//
// usage: master [-dtvw] [-c config_dir] [-e exit_time]
//   -c dir  configuration directory (also MAIL_CONFIG)
//   -d      stay in the foreground (no fork, no new session)
//   -t      test: exit 0 when no master runs for this configuration, 1 when one does
//   -w      wait until every service is open, and exit 0 then (or 1 on failure)
//   -e sec  exit after sec seconds (tests)
//   -v      more logging
// master takes an exclusive lock on $queue_directory/pid/master.pid (and
// writes its pid there, as Postfix does), so a second master refuses to run.
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "config/config.hpp"
#include "log/log.hpp"
#include "master/master.hpp"

namespace {

int open_pid_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) mta::log::fatal("open lock file %s: %s", path.c_str(), std::strerror(errno));
  return fd;
}

void write_pid(int fd) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%*lu\n", static_cast<int>(sizeof(unsigned long) * 4),
                        static_cast<unsigned long>(::getpid()));
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, buf, static_cast<size_t>(n), 0) != n)
    mta::log::fatal("write pid file: %s", std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mta;
  log::init(argv[0]);
  master::MasterOptions options;
  options.config_dir = config::Config::default_config_dir();
  bool foreground = false, test = false, wait = false;
  int c;
  while ((c = getopt(argc, argv, "c:de:istvw")) != -1) {
    switch (c) {
      case 'c': options.config_dir = optarg; break;
      case 'd': case 'i': case 's': foreground = true; break;
      case 'e': options.exit_after = std::atol(optarg); break;
      case 't': test = true; break;
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      case 'w': wait = true; break;
      default: log::fatal("usage: %s [-dtvw] [-c config_dir] [-e exit_time]", argv[0]);
    }
  }
  ::setenv("MAIL_CONFIG", options.config_dir.c_str(), 1);
  config::Config cfg;
  std::string queue_dir, pid_dir;
  try {
    cfg = config::Config::load(options.config_dir, {.read_main_cf = true, .read_master_cf = false, .process_name = "master"});
    queue_dir = cfg.get("queue_directory");
    pid_dir = cfg.get("process_id_directory");
  } catch (const config::ConfigError& e) {
    log::fatal("%s", e.what());
  }
  if (::chdir(queue_dir.c_str()) != 0) log::fatal("chdir %s: %s", queue_dir.c_str(), std::strerror(errno));
  ::mkdir(pid_dir.c_str(), 0755);
  std::string pid_path = pid_dir + "/master.pid";
  int pid_fd = open_pid_file(pid_path);
  bool locked = ::flock(pid_fd, LOCK_EX | LOCK_NB) == 0;
  if (test) return locked ? 0 : 1;
  if (!locked)
    log::fatal("open lock file %s: unable to set exclusive lock: %s", pid_path.c_str(), std::strerror(errno));

  if (!foreground) {
    int ready[2] = {-1, -1};
    if (wait && ::pipe2(ready, O_CLOEXEC) != 0) log::fatal("pipe: %s", std::strerror(errno));
    pid_t pid = ::fork();
    if (pid < 0) log::fatal("fork: %s", std::strerror(errno));
    if (pid > 0) {
      if (!wait) return 0;
      ::close(ready[1]);
      pollfd p{ready[0], POLLIN, 0};
      char byte = 0;
      if (::poll(&p, 1, 120000) == 1 && ::read(ready[0], &byte, 1) == 1) return 0;
      return 1;
    }
    if (wait) {
      ::close(ready[0]);
      options.ready_fd = ready[1];
    }
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
  }
  write_pid(pid_fd);
  return master::run_master(options);
}
