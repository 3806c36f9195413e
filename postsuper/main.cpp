// postsuper: queue maintenance for the superuser (Postfix's postsuper(1)).
//
// usage: postsuper [-psSv] [-c config_dir] [-d queue_id] [-e queue_id]
//                  [-f queue_id] [-h queue_id] [-H queue_id] [-r queue_id]
//                  [queue ...]
//   -d ID   delete (default queues: hold, incoming, active, deferred and
//           maildrop), with its bounce, defer and trace logs
//   -h ID   put on hold (from incoming, active, deferred)
//   -H ID   release from hold (to deferred)
//   -r ID   requeue through maildrop, pickup and cleanup
//   -e ID   force expiry (returned to the sender at the next attempt)
//   -f ID   force expiry and release from hold
//   -p      purge temporary files older than a week
//   -s, -S  check and repair the queue structure
// An ID of "ALL" works on every message of the queues (named ones, or the
// defaults); "-" reads IDs from standard input, one a line.  The -p, -s and
// -S work is done first, then the other options in command-line order.
// With no option: -s -p.  Every action taken is logged; at the end the
// counts of the requested operations go to stderr and the log ("Deleted: 3
// messages").  Only root may run it; the work is done as mail_owner.
// Errors are fatal (exit 1), as in Postfix.
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "log/log.hpp"
#include "postsuper/queue_super.hpp"
#include "server/privileges.hpp"

namespace {

using namespace mta;

// Whether a structure repair has renamed anything: then an interruption
// leaves work for the next run, and we say so.
volatile sig_atomic_t g_repair_touched = 0;

void warn_incomplete() {
  if (g_repair_touched) log::warning("OPERATION INCOMPLETE -- RERUN COMMAND TO FIX THE QUEUE FIRST");
}

__attribute__((format(printf, 1, 2))) [[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log::vlog(log::Level::fatal, fmt, ap);
  va_end(ap);
  warn_incomplete();
  std::exit(1);
}

// The handler runs with mail_owner's privileges; like Postfix, it only
// reports and leaves.
void interrupted(int sig) {
  if (::signal(SIGINT, SIG_IGN) != SIG_IGN) {
    ::signal(SIGQUIT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    warn_incomplete();
    ::_exit(sig);
  }
}

struct Operation {
  char option;  // d e f h H r
  std::string id;
};

std::string plural(int n) { return n == 1 ? "" : "s"; }

// Queue IDs from standard input, one a line (the newline removed, nothing
// else; the last line needs no newline).
std::vector<std::string> read_ids() {
  std::vector<std::string> ids;
  std::string data{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    std::string line = data.substr(pos, nl - pos);
    // Postfix's strings end at a NUL.
    if (size_t nul = line.find('\0'); nul != std::string::npos) line.resize(nul);
    ids.push_back(std::move(line));
    pos = nl + 1;
  }
  return ids;
}

int run(int argc, char** argv) {
  ::umask(022);
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) == -1 && ::open("/dev/null", O_RDWR) != fd) die("open /dev/null: %s", std::strerror(errno));
  }
  if (std::getenv("MAIL_VERBOSE")) log::set_verbose(1);
  if (const char* slash = std::strrchr(argv[0], '/'); slash && slash[1]) argv[0] = const_cast<char*>(slash + 1);
  const std::string program = argv[0];
  log::init(program);

  if (::getuid() != 0) die("use of this command is reserved for the superuser");

  std::vector<Operation> ops;
  bool structure = false, structure_red = false, purge = false;
  int c;
  while ((c = ::getopt(argc, argv, "+c:d:e:f:h:H:pr:sSv")) != -1) {
    switch (c) {
      case 'c':
        if (optarg[0] != '/') die("-c requires absolute pathname");
        if (::setenv("MAIL_CONFIG", optarg, 1) != 0) die("setenv: %s", std::strerror(errno));
        break;
      case 'd':
      case 'e':
      case 'f':
      case 'h':
      case 'H':
      case 'r': ops.push_back({static_cast<char>(c), optarg}); break;
      case 'p': purge = true; break;
      case 'S': structure_red = true; [[fallthrough]];
      case 's': structure = true; break;
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      default:
        die("usage: %s [-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)] "
            "[-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] [-H queue_id (un-hold)] "
            "[-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] "
            "[-S (redundant structure fix)][-v (verbose)] [queue...]",
            program.c_str());
    }
  }
  std::vector<std::string> named_queues(argv + optind, argv + argc);

  postsuper::Settings settings;
  server::Account owner;
  try {
    config::Config cfg = config::Config::load(config::Config::default_config_dir(),
                                              {.read_main_cf = true, .read_master_cf = false, .process_name = program});
    // Warnings about main.cf go to stderr only, as Postfix's do.
    for (const std::string& w : cfg.warnings()) log::warning("%s", w.c_str());
    config::setup_logging(cfg, true);
    settings.hash_queue_names = cfg.get_list("hash_queue_names");
    settings.hash_queue_depth = static_cast<int>(cfg.get_int("hash_queue_depth"));
    settings.long_queue_ids = cfg.get_bool("enable_long_queue_ids");
    std::string queue_dir = cfg.get("queue_directory");
    if (::chdir(queue_dir.c_str()) != 0) die("chdir %s: %s", queue_dir.c_str(), std::strerror(errno));
    owner = server::mail_owner(cfg);
  } catch (const config::ConfigError& e) {
    die("%s", e.what());
  }
  if (settings.hash_queue_depth < 1) settings.hash_queue_depth = 1;

  // Files and directories are made and moved as the mail system owner, as
  // its daemons do; a compromised queue then cannot lead root astray.  The
  // log file stays open from before.
  server::drop_privileges(owner, "");
  ::signal(SIGINT, interrupted);
  ::signal(SIGQUIT, interrupted);
  if (::signal(SIGTERM, SIG_IGN) == SIG_DFL) ::signal(SIGTERM, interrupted);
  if (::signal(SIGHUP, SIG_IGN) == SIG_DFL) ::signal(SIGHUP, interrupted);

  postsuper::Superintendent super(settings, "", [](const std::string& text) { die("%s", text.c_str()); });
  super.set_repair_flag(&g_repair_touched);
  auto queues_or = [&](const std::vector<std::string>& defaults) -> const std::vector<std::string>& {
    return named_queues.empty() ? defaults : named_queues;
  };

  // Structure repair and purge first, so that the operations by name see
  // every file where it belongs.
  unsigned repair = (structure ? postsuper::action::kStruct : 0u) | (structure_red ? postsuper::action::kStructRed : 0u) |
                    (purge ? postsuper::action::kPurge : 0u);
  if (ops.empty() && repair == 0) repair = postsuper::action::kStruct | postsuper::action::kPurge;
  const postsuper::Counters& counts = super.counters();
  if (repair) {
    const auto& queues = queues_or(postsuper::default_queues());
    super.pass(queues, repair);
    if (counts.inode_mismatch > 0) {
      // Second pass: the "#FIX" names left by the first become queue IDs.
      super.pass(queues, repair);
    }
  }
  bool by_id = false;
  for (const Operation& op : ops) by_id |= op.id != "ALL";
  if (by_id && (counts.inode_mismatch > 0 || counts.inode_fixed > 0)) {
    // The IDs given may now name other messages.
    log::error("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS");
    die("CHECK YOUR QUEUE IDS AND RE-ISSUE THE COMMAND");
  }

  bool requested[128] = {};
  std::vector<std::string> stdin_ids;
  bool stdin_read = false;
  for (const Operation& op : ops) {
    requested[static_cast<unsigned char>(op.option)] = true;
    postsuper::Counters& n = super.counters();
    if (op.id == "ALL") {
      switch (op.option) {
        case 'd': super.pass(queues_or(postsuper::default_queues()), postsuper::action::kDeleteAll); break;
        case 'r': super.pass(queues_or(postsuper::default_queues()), postsuper::action::kRequeueAll); break;
        case 'h': super.pass(queues_or(postsuper::default_hold_queues()), postsuper::action::kHoldAll); break;
        case 'H': super.pass(queues_or(postsuper::default_release_queues()), postsuper::action::kReleaseAll); break;
        case 'e': super.pass(queues_or(postsuper::default_queues()), postsuper::action::kExpireAll); break;
        case 'f': super.pass(queues_or(postsuper::default_queues()), postsuper::action::kExpireRelAll); break;
      }
      continue;
    }
    std::vector<std::string> ids;
    if (op.id == "-") {
      if (!stdin_read) {
        stdin_ids = read_ids();
        stdin_read = true;
        ids = stdin_ids;
      }
    } else {
      ids.push_back(op.id);
    }
    for (const std::string& id : ids) {
      switch (op.option) {
        case 'd': n.deleted += super.delete_one(queues_or(postsuper::default_queues()), id); break;
        case 'r': n.requeued += super.requeue_one(queues_or(postsuper::default_queues()), id); break;
        case 'h': n.held += super.hold_one(queues_or(postsuper::default_hold_queues()), id); break;
        case 'H': n.released += super.release_one(queues_or(postsuper::default_release_queues()), id); break;
        case 'e': super.expire_one(queues_or(postsuper::default_queues()), id, false); break;
        case 'f': super.expire_one(queues_or(postsuper::default_queues()), id, true); break;
      }
    }
  }

  if (requested['r']) log::info("Requeued: %d message%s", counts.requeued, plural(counts.requeued).c_str());
  if (requested['d']) log::info("Deleted: %d message%s", counts.deleted, plural(counts.deleted).c_str());
  if (requested['e'] || requested['f'])
    log::info("Force-expired: %d message%s", counts.expired, plural(counts.expired).c_str());
  if (requested['h']) log::info("Placed on hold: %d message%s", counts.held, plural(counts.held).c_str());
  if (requested['H'] || requested['f'])
    log::info("Released from hold: %d message%s", counts.released, plural(counts.released).c_str());
  if (counts.inode_fixed > 0)
    log::info("Renamed to match inode number: %d message%s", counts.inode_fixed, plural(counts.inode_fixed).c_str());
  if (counts.inode_mismatch > 0 || counts.inode_fixed > 0)
    log::warning("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
