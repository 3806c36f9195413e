// pipe_command.cpp: see pipe_command.hpp.  The command gets the message on
// standard input, runs as the given user (never as root) in its own process
// group with Postfix's environment, and is killed after its time limit; its
// exit status and a little of its output become the delivery status
// (<sysexits.h> codes, or an RFC 3463 code that the output starts with).
#include "deliver/pipe_command.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "deliver/mail_copy.hpp"
#include "config/config.hpp"
#include "deliver/user_privileges.hpp"
#include "log/log.hpp"

extern char** environ;

namespace mta::deliver {
namespace proto = ipc::proto;

namespace {

using Clock = std::chrono::steady_clock;

// Writes into the command's standard input within the time limit.
class PipeSink : public CopySink {
 public:
  PipeSink(int fd, Clock::time_point deadline, bool* timed_out, std::string eol, bool dot)
      : fd_(fd), deadline_(deadline), timed_out_(timed_out), eol_(std::move(eol)), dot_(dot) {}
  ~PipeSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool write(std::string_view bytes) override {
    if (eol_ == "\n" && !dot_) return write_raw(bytes);
    // pipe's eol= and flags=.: mail_copy() ends every line with "\n", and
    // no record holds a newline, so each "\n" here is a line end.
    std::string converted;
    converted.reserve(bytes.size() + bytes.size() / 16);
    for (char c : bytes) {
      if (at_line_start_ && dot_ && c == '.') converted += '.';
      at_line_start_ = c == '\n';
      if (c == '\n') converted += eol_;
      else converted += c;
    }
    return write_raw(converted);
  }
  bool write_raw(std::string_view bytes) {
    while (!bytes.empty()) {
      int wait_ms = remaining_ms();
      if (wait_ms <= 0) return time_out();
      pollfd p{fd_, POLLOUT, 0};
      int rc = ::poll(&p, 1, wait_ms);
      if (rc < 0 && errno == EINTR) continue;
      if (rc == 0) return time_out();
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool finish() override {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0;
  }
  void abandon() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int remaining_ms() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return left > INT32_MAX ? INT32_MAX : static_cast<int>(left);
  }
  bool time_out() {
    if (!*timed_out_) log::warning("pipe_command_write: write time limit exceeded");
    *timed_out_ = true;
    errno = ETIMEDOUT;
    return false;
  }
  int fd_;
  Clock::time_point deadline_;
  bool* timed_out_;
  std::string eol_;
  bool dot_;
  bool at_line_start_ = true;
};

// In the child: a fatal error as Postfix's child reports it (the log, and
// "pipe: fatal: ..." on standard error when that is the command's output
// already), then EX_TEMPFAIL, so that the delivery is deferred.
[[noreturn]] void child_fatal(bool to_output, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void child_fatal(bool to_output, const char* fmt, ...) {
  log::set_stderr(false);
  va_list ap;
  va_start(ap, fmt);
  va_list copy;
  va_copy(copy, ap);
  log::vlog(log::Level::fatal, fmt, copy);
  va_end(copy);
  if (to_output) {
    char text[1024];
    std::vsnprintf(text, sizeof text, fmt, ap);
    std::fprintf(stderr, "%s: fatal: %s\n", program_invocation_short_name, text);
    std::fflush(stderr);
  }
  va_end(ap);
  ::_exit(EX_TEMPFAIL);
}

// Postfix's exec_command(): no shell unless the command needs one.
[[noreturn]] void exec_command(const std::string& command) {
  static const char kPlain[] =
      "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \t";
  bool plain = command.find_first_not_of(kPlain) == std::string::npos &&
               command.find_first_not_of(" \t") != std::string::npos;
  if (plain) {
    std::vector<std::string> words;
    size_t i = 0;
    while (i < command.size()) {
      size_t j = command.find_first_of(" \t", i);
      if (j == std::string::npos) j = command.size();
      if (j > i) words.push_back(command.substr(i, j - i));
      i = j + 1;
    }
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    // Perhaps a shell built-in ("exit 67").
    if (errno != ENOENT || words[0].find('/') != std::string::npos) {
      std::fprintf(stderr, "execvp %s: %s\n", words[0].c_str(), std::strerror(errno));
      ::_exit(EX_OSERR);
    }
  }
  ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
  std::fprintf(stderr, "execl /bin/sh: %s\n", std::strerror(errno));
  ::_exit(EX_OSERR);
}

// A leading "D.S.N " in the command output (Postfix's dsn_valid + dsn_split).
bool split_dsn(const std::string& text, std::string* status, std::string* rest) {
  size_t i = 0;
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') return false;
  i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return false;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ' && text[i] != '\t') return false;
  *status = text.substr(0, i);
  size_t b = text.find_first_not_of(" \t", i);
  *rest = b == std::string::npos ? std::string() : text.substr(b);
  return true;
}

}  // namespace

PipeOutcome pipe_command(const PipeCommand& cmd, int queue_fd, const std::string& queue_path, long data_offset) {
  PipeOutcome out;
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) log::fatal("pipe_command: pipe: %s", std::strerror(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) log::fatal("pipe_command: pipe: %s", std::strerror(errno));
  // The command's output is only read after its input is written: it must
  // never block on a full output pipe.
  ::fcntl(out_pipe[1], F_SETFL, ::fcntl(out_pipe[1], F_GETFL) | O_NONBLOCK);

  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(in_pipe[0]), ::close(in_pipe[1]), ::close(out_pipe[0]), ::close(out_pipe[1]);
    out.status = PipeOutcome::defer;
    out.why = Dsn::unix_diag("4.3.0", sys_exits_detail(EX_OSERR)->text,
                             std::string("Delivery failed: ") + std::strerror(err));
    return out;
  }
  if (pid == 0) {
    const bool argv_mode = !cmd.argv.empty();
    // chroot= first (as root), then the user's ids for good.
    if (!cmd.chroot_dir.empty()) {
      if (::geteuid() != 0) (void)::seteuid(0);
      if (::chroot(cmd.chroot_dir.c_str()) != 0)
        child_fatal(false, "chroot(\"%s\"): %s", cmd.chroot_dir.c_str(), std::strerror(errno));
      if (::chdir("/") != 0) child_fatal(false, "chdir(\"/\"): %s", std::strerror(errno));
    }
    set_ugid(cmd.uid, cmd.gid);
    ::setsid();
    // pipe's directory=: a failure is logged, not part of the output.
    if (argv_mode && !cmd.cwd.empty() && ::chdir(cmd.cwd.c_str()) != 0)
      child_fatal(false, "cannot change directory to \"%s\" for uid=%ld gid=%ld: %s", cmd.cwd.c_str(),
                  static_cast<long>(cmd.uid), static_cast<long>(cmd.gid), std::strerror(errno));
    if (::dup2(in_pipe[0], STDIN_FILENO) < 0 || ::dup2(out_pipe[1], STDOUT_FILENO) < 0 ||
        ::dup2(out_pipe[1], STDERR_FILENO) < 0)
      ::_exit(EX_OSERR);
    // Nothing of ours (queue file, master's pipes and sockets) for the
    // command: closed at exec, so that a failed exec can still be logged.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) (void)::close_range(3, ~0U, 0);
    for (int sig : {SIGPIPE, SIGXFSZ, SIGCHLD, SIGTERM, SIGHUP, SIGINT}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (cmd.file_size_limit > 0) {
      rlimit rl{static_cast<rlim_t>(cmd.file_size_limit), static_cast<rlim_t>(cmd.file_size_limit)};
      (void)::setrlimit(RLIMIT_FSIZE, &rl);
    }
    // The environment: only what export_environment blesses, a fixed PATH,
    // then the delivery attributes.
    std::vector<std::pair<std::string, std::string>> keep;
    for (const std::string& e : cmd.export_environment) {
      size_t eq = e.find('=');
      if (eq != std::string::npos) {
        keep.emplace_back(e.substr(0, eq), e.substr(eq + 1));
      } else if (const char* v = ::getenv(e.c_str())) {
        keep.emplace_back(e, v);
      }
    }
    ::clearenv();
    for (const auto& [n, v] : keep) ::setenv(n.c_str(), v.c_str(), 1);
    ::setenv("PATH", "/usr/bin:/bin", 1);
    for (const auto& [n, v] : cmd.env) ::setenv(n.c_str(), v.c_str(), 1);
    if (argv_mode) {
      std::vector<char*> args;
      std::vector<std::string> words = cmd.argv;
      for (std::string& w : words) args.push_back(w.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      child_fatal(true, "pipe_command: execvp %s: %s", args[0], std::strerror(errno));
    }
    if (!cmd.cwd.empty() && ::chdir(cmd.cwd.c_str()) != 0) {
      std::fprintf(stderr, "unable to change to directory %s: %s\n", cmd.cwd.c_str(), std::strerror(errno));
      ::_exit(EX_TEMPFAIL);
    }
    if (!cmd.shell.empty()) {
      std::vector<std::string> words = config::split_list(cmd.shell);
      words.push_back(cmd.command);
      std::vector<char*> argv;
      for (std::string& w : words) argv.push_back(w.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "execvp %s: %s\n", argv[0], std::strerror(errno));
      ::_exit(EX_OSERR);
    }
    exec_command(cmd.command);
  }

  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  // Our end of the command's input never blocks past the time limit.
  ::fcntl(in_pipe[1], F_SETFL, ::fcntl(in_pipe[1], F_GETFL) | O_NONBLOCK);
  const auto deadline = Clock::now() + std::chrono::seconds(cmd.time_limit > 0 ? cmd.time_limit : 1000);
  bool timed_out = false;
  CopyResult copy;
  {
    PipeSink sink(in_pipe[1], deadline, &timed_out, cmd.eol, (cmd.copy_flags & kCopyDot) != 0);
    copy = mail_copy(queue_fd, queue_path, data_offset, cmd.envelope, cmd.copy_flags & ~kCopyDot, sink);
  }

  // A little of the output, for the bounce message.
  std::string output;
  while (output.size() < 4096 && !timed_out) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT32_MAX)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      log::warning("pipe_command_read: read time limit exceeded");
      timed_out = true;
      break;
    }
    char buf[4096];
    ssize_t n = ::read(out_pipe[0], buf, std::min(sizeof buf, 4096 - output.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(out_pipe[0]);
  for (char& c : output) {
    if (c == '\t' || c == '\n') c = ' ';
    else if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) >= 127) c = '_';
  }

  // Wait for the command; kill its whole process group when time is up
  // (as root: the command runs under another uid than our effective one).
  auto kill_group = [pid] {
    ActAs root(0, 0);
    ::kill(-pid, SIGKILL);
  };
  int wstatus = 0;
  if (timed_out) kill_group();
  for (;;) {
    pid_t r = ::waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) log::fatal("wait: %s", std::strerror(errno));
    if (!timed_out && Clock::now() >= deadline) {
      log::warning("pipe_command_wait_or_kill: command time limit exceeded");
      timed_out = true;
      kill_group();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(timed_out ? 10 : 5));
  }

  out.output = output;
  const std::string& c = cmd.argv.empty() ? cmd.command : cmd.argv[0];
  std::string tail = output.empty() ? std::string() : ". Command output: " + output;
  if (timed_out) {
    out.status = PipeOutcome::bounce;
    out.why = Dsn::unix_diag("5.3.0", output.empty() ? sys_exits_detail(EX_SOFTWARE)->text : output,
                             "Command time limit exceeded: \"" + c + "\"" + tail);
    return out;
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    if (WIFSIGNALED(wstatus)) {
      out.status = PipeOutcome::defer;
      out.why = Dsn::unix_diag("4.3.0", output.empty() ? sys_exits_detail(EX_SOFTWARE)->text : output,
                               "Command died with signal " + std::to_string(WTERMSIG(wstatus)) + ": \"" + c +
                                   "\"" + tail);
      return out;
    }
    int code = WEXITSTATUS(wstatus);
    std::string dsn_status, dsn_text;
    if (split_dsn(output, &dsn_status, &dsn_text)) {
      out.why = Dsn::unix_diag(dsn_status, dsn_text, dsn_text);
      out.status = dsn_status[0] == '4' ? PipeOutcome::defer : PipeOutcome::bounce;
      return out;
    }
    if (const SysExit* sx = sys_exits_detail(code)) {
      out.why = Dsn::unix_diag(sx->dsn, output.empty() ? sx->text : output, std::string(sx->text) + tail);
      out.status = sx->dsn[0] == '4' ? PipeOutcome::defer : PipeOutcome::bounce;
      return out;
    }
    out.status = PipeOutcome::bounce;
    out.why = Dsn::unix_diag("5.3.0", output.empty() ? sys_exits_detail(EX_SOFTWARE)->text : output,
                             "Command died with status " + std::to_string(code) + ": \"" + c + "\"" + tail);
    return out;
  }
  if (copy.status & kCopyStatCorrupt) {
    out.status = PipeOutcome::corrupt;
    return out;
  }
  if (copy.status != 0 && copy.error != EPIPE) {
    out.status = PipeOutcome::defer;
    out.why = Dsn::unix_diag("4.3.0", sys_exits_detail(EX_IOERR)->text,
                             std::string("Command failed: ") + std::strerror(copy.error) + ": \"" + c + "\"");
    return out;
  }
  out.status = PipeOutcome::ok;
  return out;
}

}  // namespace mta::deliver
