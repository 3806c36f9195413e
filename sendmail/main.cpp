// sendmail: the /usr/sbin/sendmail interface (also run as mailq and
// newaliases), as Postfix 3.7's sendmail(1).
//
//   sendmail [options] [recipient ...]   post a message (enqueue.hpp)
//   sendmail -bp, mailq                  list the queue: postqueue -p
//   sendmail -q                          flush the queue: postqueue -f
//   sendmail -qRsite, -qIqueueid         postqueue -s site, postqueue -i id
//   sendmail -bi, -I, newaliases         postalias $alias_database
//   sendmail -bd                         postfix start
//   sendmail -bs                         SMTP on standard input and output
//                                        (runs smtpd -S, which uses postdrop)
//
// Options are Postfix's: -t -i -oi -f -r -F -N -V -XV -B -G -C -v -bv -bm,
// and -A -h -L -m -O -o* -R -U -x -e -p -c (ignored).  The options are
// scanned twice, as Postfix does (first for -C), so getopt's complaints
// appear twice.  Errors are "sendmail: fatal: ..." on standard error and in
// the log, with exit status 75 (see enqueue.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include <cctype>
#include <cstdarg>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "log/log.hpp"
#include "sendmail/enqueue.hpp"

namespace {

using mta::sendmail::fatal;

enum class Mode { enqueue, newaliases, mailq, daemon, user, flush, ignore };

constexpr const char* kOptions = "+A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx";

std::string basename_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

// -N: never, or any of success, failure, delay (dsn_notify_mask).
int parse_dsn_notify(const std::string& text) {
  static const struct {
    const char* name;
    int bit;
  } table[] = {{"NEVER", 1}, {"SUCCESS", 2}, {"FAILURE", 4}, {"DELAY", 8}};
  int mask = 0;
  for (const std::string& word : mta::config::split_list(text)) {
    int bit = 0;
    for (const auto& t : table)
      if (::strcasecmp(word.c_str(), t.name) == 0) bit = t.bit;
    if (bit == 0) {
      mta::log::warning("unknown DSN NOTIFY command value \"%s\" in \"%s\"", word.c_str(), text.c_str());
      return 0;
    }
    mask |= bit;
  }
  bool ok = mask == 1 || (mask != 0 && (mask & 1) == 0);
  return ok ? mask : 0;
}

bool all_printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 32 || c > 126) return false;
  return true;
}

// Replaces this process with $command_directory/ARGV[0].
[[noreturn]] void run_command(const std::string& dir, std::vector<std::string> args) {
  std::string path = dir + "/" + args[0];
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  fatal("execvp %s: %s", path.c_str(), std::strerror(errno));
}

void add_verbose(std::vector<std::string>& args, int verbose) {
  for (int i = 0; i < verbose; ++i) args.emplace_back("-v");
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) == -1 && (::close(fd), ::open("/dev/null", O_RDWR)) != fd) std::exit(75);
  }
  // A parent's leaked descriptors could keep a pipe open (Postfix closes them too).
  for (int fd = 3; fd < 100; ++fd) ::close(fd);

  std::string program = basename_of(argv[0]);
  argv[0] = program.data();  // getopt's messages name the program the same way
  mta::log::init(program);
  int verbose = std::getenv("MAIL_VERBOSE") ? 1 : 0;

  // Some sites install sendmail set-uid root by mistake.
  if (::geteuid() == 0 && ::getuid() != 0) {
    mta::log::warning("the Postfix sendmail command has set-uid root file permissions");
    mta::log::warning("or the command is run from a set-uid root process");
    mta::log::warning("the Postfix sendmail command must be installed without set-uid root file permissions");
    if (::setgid(::getgid()) != 0 || ::setuid(::getuid()) != 0) fatal("set_ugid: %s", std::strerror(errno));
  }

  // First pass: only -C, so that main.cf comes from the right place.
  int c;
  while (argv[optind > 0 ? optind : 1] != nullptr) {
    if (std::strcmp(argv[optind > 0 ? optind : 1], "-q") == 0) {
      ++optind;
      continue;
    }
    if ((c = ::getopt(argc, argv, kOptions)) <= 0) break;
    if (c == 'C') {
      std::string arg = optarg;
      std::string dir = arg;
      if (basename_of(arg.c_str()) == "main.cf") {
        size_t slash = arg.rfind('/');
        dir = slash == std::string::npos ? "." : slash == 0 ? "/" : arg.substr(0, slash);
      }
      // Only root may point sendmail at a directory that /etc/postfix/main.cf
      // does not list in alternate_config_directories.
      if (dir != mta::config::kDefaultConfigDir && ::geteuid() != 0) mta::config::Config::check_trusted_dir(dir);
      if (::setenv("MAIL_CONFIG", dir.c_str(), 1) < 0) fatal("out of memory");
    }
  }
  if (mta::config::Config::running_set_id())
    mta::config::Config::check_trusted_dir(mta::config::Config::default_config_dir());
  optind = 0;  // glibc: reinitialize getopt completely

  mta::config::Config config;
  try {
    config = mta::config::Config::load(mta::config::Config::default_config_dir(), {.process_name = program});
  } catch (const mta::config::ConfigError& e) {
    fatal("%s", e.what());
  }
  try {
    mta::config::setup_logging(config, true);
  } catch (const mta::config::ConfigError&) {
    // An ordinary user may not append to maillog_file (Postfix would use
    // postlogd): messages go to standard error only.
  }
  std::string queue_dir = config.get("queue_directory");
  if (::chdir(queue_dir.c_str()) != 0) fatal("chdir %s: %s", queue_dir.c_str(), std::strerror(errno));
  ::signal(SIGPIPE, SIG_IGN);

  Mode mode = program == "mailq" ? Mode::mailq : program == "newaliases" ? Mode::newaliases
            : program == "smtpd" ? Mode::daemon : Mode::enqueue;
  mta::sendmail::EnqueueRequest req;
  req.rewrite_context = "local";
  std::string site_to_flush, id_to_flush, qtime;
  bool have_site = false, have_id = false;

  while (argv[optind > 0 ? optind : 1] != nullptr) {
    int ind = optind > 0 ? optind : 1;
    if (std::strcmp(argv[ind], "-q") == 0) {
      if (mode == Mode::daemon)
        mta::log::warning("ignoring -q option in daemon mode");
      else
        mode = Mode::flush;
      optind = ind + 1;
      continue;
    }
    if (std::strcmp(argv[ind], "-V") == 0 && argv[ind + 1] != nullptr && std::strlen(argv[ind + 1]) == 2) {
      mta::log::warning("option -V is deprecated with Postfix 2.3; specify -XV instead");
      argv[ind] = const_cast<char*>("-XV");
    }
    if (std::strncmp(argv[ind], "-V", 2) == 0 && std::strlen(argv[ind]) == 4) {
      mta::log::warning("option %s is deprecated with Postfix 2.3; specify -X%s instead", argv[ind], argv[ind] + 1);
      static std::string replaced;
      replaced = std::string("-X") + (argv[ind] + 1);
      argv[ind] = replaced.data();
    }
    if (std::strcmp(argv[ind], "-XV") == 0) {
      req.verp_delims = config.get("default_verp_delimiters");
      optind = ind + 1;
      continue;
    }
    if ((c = ::getopt(argc, argv, kOptions)) <= 0) break;
    switch (c) {
      default:
        if (verbose) mta::log::info("-%c option ignored", c);
        break;
      case 'n': fatal("-%c option not supported", c);
      case 'B':
        if (std::strcmp(optarg, "8BITMIME") == 0)
          req.encoding = "8bit";
        else if (std::strcmp(optarg, "7BIT") == 0)
          req.encoding = "7bit";
        else
          fatal("-B option needs 8BITMIME or 7BIT");
        break;
      case 'F':
        req.has_full_name = true;
        req.full_name = optarg;
        break;
      case 'G': req.rewrite_context = "remote"; break;
      case 'I': mode = Mode::newaliases; break;
      case 'N':
        if ((req.dsn_notify = parse_dsn_notify(optarg)) == 0) mta::log::warning("bad -N option value -- ignored");
        break;
      case 'V':
        if (std::strlen(optarg) > 100)
          mta::log::warning("too long -V option value -- ignored");
        else if (!all_printable(optarg))
          mta::log::warning("bad syntax in -V option value -- ignored");
        else
          req.dsn_envid = optarg;
        break;
      case 'X':
        if (*optarg != 'V') fatal("unsupported: -%c%c", c, *optarg);
        {
          std::string delims = optarg + 1;
          std::string filter = config.get("verp_delimiter_filter");
          if (delims.size() != 2 || filter.find(delims[0]) == std::string::npos ||
              filter.find(delims[1]) == std::string::npos)
            fatal("-V requires two characters from %s", filter.c_str());
          req.verp_delims = delims;
        }
        break;
      case 'b':
        switch (*optarg) {
          default: fatal("unsupported: -%c%c", c, *optarg);
          case 'd':
            if (mode == Mode::flush) mta::log::warning("ignoring -q option in daemon mode");
            mode = Mode::daemon;
            break;
          case 'h':
          case 'H': mode = Mode::ignore; break;
          case 'i': mode = Mode::newaliases; break;
          case 'm': mode = Mode::enqueue; break;
          case 'p': mode = Mode::mailq; break;
          case 's': mode = Mode::user; break;
          case 'v': req.flags |= mta::sendmail::kTraceUserVerify; break;
        }
        break;
      case 'f':
      case 'r':
        req.has_sender = true;
        req.sender = optarg;
        break;
      case 'i': req.flags &= ~mta::sendmail::kFlagArchaicEof; break;
      case 'o':
        switch (*optarg) {
          default:
            if (verbose) mta::log::info("-%c%c option ignored", c, *optarg);
            break;
          case 'A':
            if (optarg[1] == 0) fatal("-oA requires pathname");
            config.set_override("alias_database", optarg + 1);
            break;
          case '7':
          case '8':
          case 'm': break;
          case 'i': req.flags &= ~mta::sendmail::kFlagArchaicEof; break;
        }
        break;
      case 'q':
        if (std::isdigit(static_cast<unsigned char>(optarg[0]))) {
          qtime = optarg;
        } else if (optarg[0] == 'R') {
          site_to_flush = optarg + 1;
          have_site = true;
          if (site_to_flush.empty()) fatal("specify: -qRsitename");
        } else if (optarg[0] == 'I') {
          id_to_flush = optarg + 1;
          have_id = true;
          if (id_to_flush.empty()) fatal("specify: -qIqueueid");
        } else {
          fatal("-q%c is not implemented", optarg[0]);
        }
        break;
      case 't': req.flags |= mta::sendmail::kFlagExtractRcpt; break;
      case 'v': ++verbose; break;
      case '?': fatal("usage: %s [options]", program.c_str());
    }
  }
  int first_arg = optind > 0 ? optind : 1;
  bool have_args = argv[first_arg] != nullptr;
  if (verbose > 1) mta::log::set_verbose(verbose - 1);

  if ((req.flags & mta::sendmail::kFlagExtractRcpt) && mode != Mode::enqueue)
    fatal("-t can be used only in delivery mode");
  if (have_site && mode != Mode::enqueue) fatal("-qR can be used only in delivery mode");
  if (have_id && mode != Mode::enqueue) fatal("-qI can be used only in delivery mode");
  if (req.flags & mta::sendmail::kTraceUserVerify) {
    if (req.flags & mta::sendmail::kFlagExtractRcpt) fatal("-t option cannot be used with -bv");
    if (req.dsn_notify) fatal("-N option cannot be used with -bv");
    if (verbose == 1) fatal("-v option cannot be used with -bv");
  }
  // One -v asks for a delivery report; more ask for verbose logging.
  if (verbose == 1 && mode == Mode::enqueue) {
    verbose = 0;
    req.flags |= mta::sendmail::kTraceRecord;
  }
  req.verbose = verbose;
  if (!qtime.empty() && mode != Mode::daemon) return 0;

  std::string command_dir = config.get("command_directory");
  switch (mode) {
    case Mode::enqueue:
      if (have_site) {
        if (have_args) fatal("flush site requires no recipient");
        std::vector<std::string> args = {"postqueue", "-s", site_to_flush};
        add_verbose(args, verbose);
        run_command(command_dir, args);
      }
      if (have_id) {
        if (have_args) fatal("flush queue_id requires no recipient");
        std::vector<std::string> args = {"postqueue", "-i", id_to_flush};
        add_verbose(args, verbose);
        run_command(command_dir, args);
      }
      for (int i = first_arg; i < argc && argv[i]; ++i) req.recipients.emplace_back(argv[i]);
      try {
        mta::sendmail::enqueue(config, req);
      } catch (const mta::config::ConfigError& e) {
        fatal("%s", e.what());
      }
      return 0;
    case Mode::mailq: {
      if (have_args) fatal("display queue mode requires no recipient");
      std::vector<std::string> args = {"postqueue", "-p"};
      add_verbose(args, verbose);
      run_command(command_dir, args);
    }
    case Mode::flush: {
      if (have_args) fatal("flush queue mode requires no recipient");
      std::vector<std::string> args = {"postqueue", "-f"};
      add_verbose(args, verbose);
      run_command(command_dir, args);
    }
    case Mode::daemon: {
      if (have_args) fatal("daemon mode requires no recipient");
      std::vector<std::string> args = {"postfix"};
      add_verbose(args, verbose);
      args.emplace_back("start");
      pid_t pid = ::fork();
      if (pid < 0) return 1;
      if (pid == 0) {
        std::string path = command_dir + "/postfix";
        std::vector<char*> cargv;
        for (std::string& a : args) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        ::execv(path.c_str(), cargv.data());
        mta::log::error("execvp %s: %s", path.c_str(), std::strerror(errno));
        _exit(1);
      }
      return 0;
    }
    case Mode::newaliases: {
      if (have_args) fatal("alias initialization mode requires no recipient");
      std::string databases = config.get("alias_database");
      if (databases.empty()) return 0;
      std::vector<std::string> args = {"postalias"};
      add_verbose(args, verbose);
      for (const std::string& db : mta::config::split_list(databases)) args.push_back(db);
      run_command(command_dir, args);
    }
    case Mode::user: {
      // SMTP on standard input and output: smtpd in stand-alone mode, which
      // submits through postdrop with the user's own rights, as Postfix.
      if (have_args) fatal("stand-alone mode requires no recipient");
      std::vector<std::string> args = {"smtpd", "-S"};
      add_verbose(args, verbose);
      run_command(config.get("daemon_directory"), args);
    }
    case Mode::ignore: return 0;
  }
  return 0;
}
