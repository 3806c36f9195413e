// log.cpp: the three sinks of log.hpp.
#include "log/log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace mta::log {
namespace {

struct State {
  std::string argv0 = "mta";
  std::string program = "mta";
  std::string syslog_name = "postfix";
  std::string syslog_ident;  // must outlive openlog()
  bool to_stderr = true;
  bool to_syslog = false;
  int file_fd = -1;
  bool own_file_fd = false;
  int verbose = 0;
};

State& state() {
  static State s;
  return s;
}

std::string short_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  if (auto dot = h.find('.'); dot != std::string::npos) h.resize(dot);
  return h;
}

const char* prefix(Level level) {
  switch (level) {
    case Level::info: return "";
    case Level::warning: return "warning: ";
    case Level::error: return "error: ";
    case Level::fatal: return "fatal: ";
    case Level::panic: return "panic: ";
  }
  return "";
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::info: return LOG_INFO;
    case Level::warning: return LOG_WARNING;
    case Level::error: return LOG_ERR;
    case Level::fatal: return LOG_CRIT;
    case Level::panic: return LOG_ALERT;
  }
  return LOG_INFO;
}

void write_all(int fd, const std::string& s) {
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to complain to
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void reopen_syslog() {
  State& s = state();
  if (!s.to_syslog) return;
  closelog();
  s.syslog_ident = tag();
  openlog(s.syslog_ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
}

}  // namespace

void init(std::string_view argv0) {
  State& s = state();
  s.argv0 = std::string(argv0);
  auto slash = argv0.rfind('/');
  s.program = std::string(slash == std::string_view::npos ? argv0 : argv0.substr(slash + 1));
  reopen_syslog();
}

void set_syslog_name(std::string_view syslog_name) {
  state().syslog_name = std::string(syslog_name);
  reopen_syslog();
}

void set_stderr(bool on) { state().to_stderr = on; }

void set_syslog(bool on) {
  State& s = state();
  if (s.to_syslog == on) return;
  s.to_syslog = on;
  if (on) reopen_syslog(); else closelog();
}

bool set_file(const std::string& path, std::string* error) {
  State& s = state();
  if (s.own_file_fd && s.file_fd >= 0) ::close(s.file_fd);
  s.file_fd = -1;
  s.own_file_fd = false;
  if (path.empty()) return true;
  if (path == "/dev/stdout") { s.file_fd = STDOUT_FILENO; return true; }
  if (path == "/dev/stderr") { s.file_fd = STDERR_FILENO; return true; }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    if (error) *error = "open " + path + ": " + std::strerror(errno);
    return false;
  }
  s.file_fd = fd;
  s.own_file_fd = true;
  return true;
}

void set_verbose(int level) { state().verbose = level; }
int verbose_level() { return state().verbose; }

std::string tag() {
  const State& s = state();
  return s.syslog_name + "/" + s.program;
}

// The process ID for each line, without a system call per line; a forked
// child (a delivery agent's command, for example) asks again.
std::atomic<pid_t> g_pid{0};
pid_t current_pid() {
  static const bool hooked = [] {
    ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)hooked;
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

std::string format_file_line(std::string_view text) {
  char when[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%b %d %H:%M:%S", &tm);
  static const std::string host = short_hostname();
  std::string line = when;
  line += ' ';
  line += host;
  line += ' ';
  line += tag();
  line += '[' + std::to_string(current_pid()) + "]: ";
  line += text;
  return line;
}

void vlog(Level level, const char* fmt, va_list ap) {
  State& s = state();
  int saved_errno = errno;
  char stack_buf[2048];
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(stack_buf, sizeof stack_buf, fmt, copy);
  va_end(copy);
  std::string body;
  if (n >= 0 && static_cast<size_t>(n) < sizeof stack_buf) {
    body = stack_buf;
  } else if (n >= 0) {
    body.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(body.data(), body.size(), fmt, ap);
    body.resize(static_cast<size_t>(n));
  }
  std::string text = std::string(prefix(level)) + body;
  if (s.to_stderr) write_all(STDERR_FILENO, s.argv0 + ": " + text + "\n");
  if (s.to_syslog) syslog(syslog_priority(level), "%s", text.c_str());
  if (s.file_fd >= 0 && !(s.to_stderr && s.file_fd == STDERR_FILENO))
    write_all(s.file_fd, format_file_line(text) + "\n");
  errno = saved_errno;
}

#define MTA_LOG_FORWARD(level)  \
  va_list ap;                   \
  va_start(ap, fmt);            \
  vlog(level, fmt, ap);         \
  va_end(ap)

void info(const char* fmt, ...) { MTA_LOG_FORWARD(Level::info); }
void warning(const char* fmt, ...) { MTA_LOG_FORWARD(Level::warning); }
void error(const char* fmt, ...) { MTA_LOG_FORWARD(Level::error); }
void fatal(const char* fmt, ...) {
  MTA_LOG_FORWARD(Level::fatal);
  std::exit(1);
}
void panic(const char* fmt, ...) {
  MTA_LOG_FORWARD(Level::panic);
  std::abort();
}
void debug(const char* fmt, ...) {
  if (state().verbose == 0) return;
  MTA_LOG_FORWARD(Level::info);
}

}  // namespace mta::log
