// postqueue: Postfix queue control for everyone (Postfix's postqueue(1)).
//
// usage: postqueue [-v] [-c config_dir] -f | -i queue_id | -j | -p | -s site
//   -p   the queue in sendmail's mailq format, through the showq service
//   -j   the same, one JSON object per message and line
//   -f   flush: ask qmgr to retry all deferred mail now ("FADI" to
//        public/qmgr) and pickup to look at the maildrop ("W"), each with
//        a NUL after it, byte for byte as Postfix's postqueue
//   -i   ask the flush service to deliver one message
//   -s   ask the flush service to deliver the mail for a site (one of
//        fast_flush_domains)
// The listing goes through public/showq, so that it works for every user;
// when showq cannot be reached, root reads the queue directly by running
// "$daemon_directory/showq -u -S" and the others are told the mail system
// is down.  authorized_mailq_users and authorized_flush_users say who may
// list and flush (root and mail_owner always may).  Problems are reported
// on stderr and logged; every fatal error exits with status 69
// (EX_UNAVAILABLE), as Postfix's postqueue does.
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "ipc/attr.hpp"
#include "ipc/channel.hpp"
#include "ipc/flush_client.hpp"
#include "ipc/mail_proto.hpp"
#include "log/log.hpp"
#include "postqueue/destination.hpp"
#include "postqueue/queue_listing.hpp"
#include "queue/queue_id.hpp"

namespace {

using namespace mta;

constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: every fatal error

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log::vlog(log::Level::fatal, fmt, ap);
  va_end(ap);
  std::exit(kExitUnavailable);
}

[[noreturn]] void usage() {
  die("usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site");
}

enum class Mode { none, mailq_list, json_list, flush_queue, flush_site, flush_file };

struct Settings {
  std::string mail_name;
  std::string showq_service;
  std::string queue_service;
  std::string pickup_service;
  std::string flush_service;
  std::string daemon_directory;
  std::string mailq_acl;
  std::string flush_acl;
  std::string fast_flush_domains;
  bool parent_style = true;
  bool long_queue_ids = false;
  bool utf8 = true;
  std::chrono::seconds ipc_timeout{3600};
  std::chrono::seconds trigger_timeout{10};
  unsigned owner_uid = 0;
  bool have_owner = false;
};

Settings read_settings(const config::Config& c) {
  Settings s;
  s.mail_name = c.get("mail_name");
  s.showq_service = c.get("showq_service_name");
  s.queue_service = c.get("queue_service_name");
  s.pickup_service = c.get("pickup_service_name");
  s.flush_service = c.get("flush_service_name");
  s.daemon_directory = c.get("daemon_directory");
  s.mailq_acl = c.get("authorized_mailq_users");
  s.flush_acl = c.get("authorized_flush_users");
  s.fast_flush_domains = c.get("fast_flush_domains");
  s.parent_style = false;
  for (const std::string& name : c.get_list("parent_domain_matches_subdomains"))
    if (name == "fast_flush_domains") s.parent_style = true;
  s.long_queue_ids = c.get_bool("enable_long_queue_ids");
  s.utf8 = c.get_bool("smtputf8_enable");
  s.ipc_timeout = std::chrono::seconds(c.get_time("ipc_timeout"));
  s.trigger_timeout = std::chrono::seconds(c.get_time("trigger_timeout"));
  if (const passwd* pw = ::getpwnam(c.get("mail_owner").c_str())) {
    s.owner_uid = pw->pw_uid;
    s.have_owner = true;
  }
  return s;
}

// Root and mail_owner may do anything; the others as the list says.
void check_acl(const Settings& s, std::string_view title, const std::string& acl, const char* what) {
  uid_t uid = ::getuid();
  if (uid == 0 || (s.have_owner && uid == s.owner_uid)) return;
  std::string who = postqueue::check_user_acl(title, acl, uid);
  if (!who.empty()) die("User %s(%ld) is not allowed to %s the mail queue", who.c_str(), static_cast<long>(uid), what);
}

// A blocking connection to a unix socket relative to the queue directory;
// -1 with errno on failure.
int connect_local(const std::string& path, std::chrono::seconds timeout) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // Bound the connect as Postfix's timed connect does.
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  timeval none{0, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  return fd;
}

// Writes to standard output; false on error (errno says which).
bool put(const std::string& text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) return false;
  return std::fflush(stdout) == 0;
}

[[noreturn]] void malformed() { die("malformed showq server response"); }

// Reads the listing and prints it in the chosen format.
void showq_client(Mode mode, ipc::Channel& ch, const Settings& s) {
  if (!ch.expect_announcement(ipc::proto::kProtoShowq)) malformed();
  postqueue::MailqFormatter mailq(s.long_queue_ids);
  const ipc::ReadOptions opts{.strict = true, .more = true, .printable = false};
  for (;;) {
    ipc::AttrReader::More more = ch.more();
    if (more == ipc::AttrReader::More::error) malformed();
    if (more == ipc::AttrReader::More::end) break;
    ipc::proto::ShowqMessage msg;
    if (!ch.read(msg, opts)) malformed();
    for (;;) {
      ipc::AttrReader::More m = ch.more();
      if (m == ipc::AttrReader::More::error) malformed();
      if (m == ipc::AttrReader::More::end) break;
      ipc::proto::ShowqRecipient r;
      if (!ch.read(r, opts)) malformed();
      msg.recipients.push_back(std::move(r));
    }
    bool ok = put(mode == Mode::json_list ? postqueue::json_message(msg, s.utf8) : mailq.message(msg));
    if (!ok) {
      // A reader that stopped early (mailq | head) is not an error.
      if (errno == EPIPE) return;
      die("output write error: %s", std::strerror(errno));
    }
  }
  if (mode == Mode::mailq_list && !put(mailq.trailer()) && errno != EPIPE)
    die("output write error: %s", std::strerror(errno));
}

// The queue read directly by a stand-alone showq (root only, when the
// mail system is down).
void run_standalone_showq(Mode mode, const Settings& s) {
  std::string path = s.daemon_directory + "/" + s.showq_service;
  std::vector<std::string> args = {path, "-u", "-S"};
  for (int i = 0; i < log::verbose_level(); ++i) args.push_back("-v");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) die("pipe: %s", std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) die("fork: %s", std::strerror(errno));
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(pipefd[1], 1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    log::warning("execv %s: %s", path.c_str(), std::strerror(errno));
    ::_exit(1);
  }
  ::close(pipefd[1]);
  ipc::Channel ch(ipc::Stream(pipefd[0], "showq pipe"), ipc::Format::zero);
  ch.stream().set_timeout(s.ipc_timeout);
  showq_client(mode, ch, s);
  ch.close();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("Error running %s", path.c_str());
}

void show_queue(Mode mode, const Settings& s) {
  check_acl(s, "authorized_mailq_users", s.mailq_acl, "view");
  int fd = connect_local("public/" + s.showq_service, s.ipc_timeout);
  if (fd >= 0) {
    ipc::Channel ch(ipc::Stream(fd, "public/" + s.showq_service + " socket"), ipc::Format::zero);
    ch.stream().set_timeout(s.ipc_timeout);
    showq_client(mode, ch, s);
    ch.close();
    return;
  }
  int err = errno;
  // No permission to the socket does not mean the mail system is down.
  if (err == EACCES || err == EPERM)
    die("Connect to the %s %s service: %s", s.mail_name.c_str(), s.showq_service.c_str(), std::strerror(err));
  if (::geteuid() == 0) {
    log::warning("Mail system is down -- accessing queue directly (Connect to the %s %s service: %s)",
                 s.mail_name.c_str(), s.showq_service.c_str(), std::strerror(err));
    run_standalone_showq(mode, s);
    return;
  }
  die("Queue report unavailable - mail system is down (Connect to the %s %s service: %s)", s.mail_name.c_str(),
      s.showq_service.c_str(), std::strerror(err));
}

// Postfix's mail_trigger(): a few bytes to a public fifo or socket.
bool mail_trigger(const std::string& service, std::string_view bytes, const Settings& s) {
  std::string path = "public/" + service;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    log::warning("unable to look up %s: %s", path.c_str(), std::strerror(errno));
    return false;
  }
  int fd = S_ISFIFO(st.st_mode) ? ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                                : connect_local(path, s.trigger_timeout);
  if (fd < 0) {
    log::debug("connect to %s: %s", path.c_str(), std::strerror(errno));
    return false;
  }
  ipc::Stream stream(fd, path);
  stream.set_timeout(std::chrono::duration_cast<ipc::Millis>(s.trigger_timeout));
  bool ok = stream.write(bytes) && stream.flush();
  stream.close();
  return ok;
}

void flush_queue(const Settings& s) {
  check_acl(s, "authorized_flush_users", s.flush_acl, "flush");
  // All hosts, all time stamps, the deferred and the incoming queue.  Like
  // Postfix 3.7's postqueue, each request ends in a NUL byte, which a
  // trigger server ignores.
  const char qmgr_request[] = {ipc::proto::kQmgrFlushDead, ipc::proto::kQmgrScanAll,
                               ipc::proto::kQmgrScanDeferred, ipc::proto::kQmgrScanIncoming, '\0'};
  if (!mail_trigger(s.queue_service, std::string_view(qmgr_request, sizeof qmgr_request), s))
    die("Cannot flush mail queue - mail system is down");
  const char wakeup[] = {ipc::proto::kTriggerWakeup, '\0'};
  if (!mail_trigger(s.pickup_service, std::string_view(wakeup, sizeof wakeup), s))
    die("Cannot flush mail queue - mail system is down");
}

// flush_clnt.h's reply codes.
constexpr int kFlushOk = ipc::flush_proto::kStatOk;
constexpr int kFlushFail = ipc::flush_proto::kStatFail;
constexpr int kFlushBad = ipc::flush_proto::kStatBad;
constexpr int kFlushDeny = ipc::flush_proto::kStatDeny;

// The flush service, under the queue directory (our working directory).
ipc::FlushOptions flush_options(const Settings& s) {
  ipc::FlushOptions o;
  o.service = s.flush_service;
  o.timeout = s.ipc_timeout;
  return o;
}

[[noreturn]] void flush_site(const Settings& s, const std::string& site) {
  check_acl(s, "authorized_flush_users", s.flush_acl, "flush");
  int status;
  switch (postqueue::domain_list_match("fast_flush_domains", s.fast_flush_domains, site, s.parent_style)) {
    case postqueue::ListMatch::match:
      status = ipc::flush_send_site(".", site, flush_options(s));
      break;
    case postqueue::ListMatch::no_match: status = kFlushDeny; break;
    default: status = kFlushFail; break;
  }
  switch (status) {
    case kFlushOk: std::exit(0);
    case kFlushBad: die("Invalid request: \"%s\"", site.c_str());
    case kFlushFail: die("Cannot flush mail queue - mail system is down");
    case kFlushDeny: die("Flush service is not configured for destination \"%s\"", site.c_str());
    default: die("Unknown flush server reply status %d", status);
  }
}

[[noreturn]] void flush_file(const Settings& s, const std::string& queue_id) {
  check_acl(s, "authorized_flush_users", s.flush_acl, "flush");
  int status = ipc::flush_send_file(".", queue_id, flush_options(s));
  switch (status) {
    case kFlushOk: std::exit(0);
    case kFlushBad: die("Invalid request: \"%s\"", queue_id.c_str());
    case kFlushFail: die("Cannot flush mail queue - mail system is down");
    default: die("Unexpected flush server reply status %d", status);
  }
}

// "%.100s" and "..." when longer, as Postfix quotes user input.
std::string shorten(const std::string& text) { return text.size() > 100 ? text.substr(0, 100) + "..." : text; }

int run(int argc, char** argv) {
  ::umask(022);
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) == -1 && ::open("/dev/null", O_RDWR) != fd) die("open /dev/null: %s", std::strerror(errno));
  }
  // The user names the program; messages say "postqueue".
  static char program[] = "postqueue";
  argv[0] = program;
  log::init(program);

  Mode mode = Mode::none;
  std::string site, queue_id;
  auto set_mode = [&](Mode m) {
    if (mode != Mode::none) usage();
    mode = m;
  };
  int c;
  while ((c = ::getopt(argc, argv, "+c:fi:jps:v")) != -1) {
    switch (c) {
      case 'c':
        if (::setenv("MAIL_CONFIG", optarg, 1) != 0) die("out of memory");
        break;
      case 'f': set_mode(Mode::flush_queue); break;
      case 'i':
        set_mode(Mode::flush_file);
        queue_id = optarg;
        break;
      case 'j': set_mode(Mode::json_list); break;
      case 'p': set_mode(Mode::mailq_list); break;
      case 's':
        set_mode(Mode::flush_site);
        site = optarg;
        break;
      case 'v':
        if (::geteuid() == 0) log::set_verbose(log::verbose_level() + 1);
        break;
      default: usage();
    }
  }
  if (argc > optind) usage();
  // Set-gid (mailq for users): a non-default directory must be blessed by
  // /etc/postfix/main.cf (alternate_config_directories).
  if (config::Config::running_set_id()) config::Config::check_trusted_dir(config::Config::default_config_dir());

  Settings s;
  try {
    config::Config cfg = config::Config::load(config::Config::default_config_dir(),
                                              {.read_main_cf = true, .read_master_cf = false, .process_name = program});
    // Warnings about main.cf go to stderr only, as Postfix's do.
    for (const std::string& w : cfg.warnings()) log::warning("%s", w.c_str());
    try {
      config::setup_logging(cfg, true);
    } catch (const config::ConfigError& e) {
      // A user who may not write the log file still gets the listing;
      // Postfix's postqueue logs through postlogd and loses nothing here.
      log::debug("%s", e.what());
    }
    s = read_settings(cfg);
    std::string queue_dir = cfg.get("queue_directory");
    if (::chdir(queue_dir.c_str()) != 0) die("chdir %s: %s", queue_dir.c_str(), std::strerror(errno));
  } catch (const config::ConfigError& e) {
    die("%s", e.what());
  }
  ::signal(SIGPIPE, SIG_IGN);

  if (mode == Mode::flush_site && !postqueue::valid_flush_destination(site))
    die("Cannot flush mail queue - invalid destination: \"%s\"", shorten(site).c_str());
  if (mode == Mode::flush_file && !queue::is_queue_file_name(queue_id))
    die("Cannot flush queue ID - invalid name: \"%s\"", shorten(queue_id).c_str());

  switch (mode) {
    case Mode::mailq_list:
    case Mode::json_list: show_queue(mode, s); return 0;
    case Mode::flush_site: flush_site(s, site);
    case Mode::flush_file: flush_file(s, queue_id);
    case Mode::flush_queue: flush_queue(s); return 0;
    case Mode::none: break;
  }
  usage();
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
