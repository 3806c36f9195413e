// postdrop: writes a message from sendmail into the maildrop queue, as
// Postfix 3.7's postdrop(1).
//
//   postdrop [-c config_dir] [-r] [-v]
//
// In a real installation postdrop is set-group-id setgid_group (postdrop),
// which lets ordinary users write into the maildrop directory; it also
// works run by root or by the queue owner.  It reads queue-file records
// from standard input (sendmail's output, see sendmail/enqueue.hpp) and:
//   - answers {protocol=postdrop_protocol, queue_id=ID} first (attribute
//     list, zero form);
//   - puts its own arrival time (T) first, ignoring the caller's;
//   - accepts only the records Postfix allows from a user, per segment:
//     envelope "MFSRVAin", content "XLN", extracted "EAR", records no longer
//     than line_length_limit; attributes only encoding, envelope_id,
//     notify_flags, the DSN ones, rewrite_context and trace_flags (others
//     are dropped with a warning);
//   - requires a sender and a recipient;
//   - keeps the file below message_size_limit (else "File too large" and
//     status 4, "message file too big");
//   - makes the file mode 0744 when complete (0644 while written: pickup
//     skips it), fsyncs it, wakes up pickup (public/pickup), and answers
//     {status=N, reason=} with Postfix's cleanup status bits; exits N.
// Input that ends before the end record cancels the request: the file is
// removed and postdrop exits 0.  Malformed input is fatal (exit 1), also
// after removing the file; so are SIGINT, SIGQUIT, SIGTERM and SIGHUP.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cleanup/cleanup_status.hpp"
#include "cleanup/mail_trigger.hpp"
#include "cleanup/record_stream.hpp"
#include "cleanup/user_acl.hpp"
#include "config/config.hpp"
#include "config/log_setup.hpp"
#include "ipc/attr.hpp"
#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "queue/record.hpp"

extern char** environ;

namespace {

namespace rec = mta::queue::rec;
namespace stat_code = mta::message::cleanup_stat;

// The file being written, for the signal handler (async-signal-safe use only).
char g_path[4096];
volatile sig_atomic_t g_have_path = 0;

void remove_and_exit(int sig) {
  if (::signal(SIGINT, SIG_IGN) != SIG_IGN) {
    ::signal(SIGQUIT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    if (g_have_path) {
      ::unlink(g_path);
      g_have_path = 0;
    }
    if (sig) _exit(sig);
  }
}

void set_path(const std::string& path) {
  std::snprintf(g_path, sizeof g_path, "%s", path.c_str());
  g_have_path = 1;
}

[[noreturn]] void fatal_cleanup(const std::string& text) {
  remove_and_exit(0);
  mta::log::fatal("%s", text.c_str());
}

// Keeps only the variables import_environment names (postdrop may run
// set-group-id: nothing from the caller's environment is trusted).
void clean_environment(const mta::config::Config& config) {
  std::vector<std::string> keep;
  for (const std::string& item : mta::config::split_list(config.get("import_environment"))) {
    if (item.find('=') != std::string::npos) {
      keep.push_back(item);
    } else if (const char* v = std::getenv(item.c_str())) {
      keep.push_back(item + "=" + v);
    }
  }
  ::clearenv();
  for (const std::string& kv : keep) {
    size_t eq = kv.find('=');
    ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
  }
}

// The attributes a user may set (postdrop's list).
bool allowed_attribute(std::string_view name, std::string_view value) {
  if (name == "encoding") return value == "7bit" || value == "8bit" || value.empty();
  if (name == "rewrite_context") return value == "local" || value == "remote";
  return name == "envelope_id" || name == "notify_flags" || name == "trace_flags" ||
         mta::queue::attribute_record_type(name) != 0;
}

void reply_status(int status) {
  mta::ipc::AttrEncoder enc;
  (void)enc.num("status", static_cast<uint32_t>(status));
  (void)enc.str("reason", "");
  enc.end();
  const std::string& out = enc.bytes();
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(1, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) == -1 && (::close(fd), ::open("/dev/null", O_RDWR)) != fd) return 1;
  }
  // The process name comes from the user: censor it.
  static char name[] = "postdrop";
  argv[0] = name;
  mta::log::init("postdrop");

  int c;
  while ((c = ::getopt(argc, argv, "+c:rv")) > 0) {
    switch (c) {
      case 'c':
        if (::setenv("MAIL_CONFIG", optarg, 1) < 0) mta::log::fatal("out of memory");
        break;
      case 'r': break;  // forward compatibility
      case 'v':
        if (::geteuid() == 0) mta::log::set_verbose(mta::log::verbose_level() + 1);
        break;
      default: mta::log::fatal("usage: %s [-c config_dir] [-v]", argv[0]);
    }
  }

  // Set-gid, a user's MAIL_CONFIG or -c names a directory of another trust
  // domain: only one that /etc/postfix/main.cf blesses.
  if (mta::config::Config::running_set_id())
    mta::config::Config::check_trusted_dir(mta::config::Config::default_config_dir());

  mta::config::Config config;
  uid_t uid = ::getuid();
  long long size_limit = 0;
  size_t line_limit = 2048;
  std::string queue_dir, pickup_service;
  mta::queue::QueueLayout layout(".");
  bool long_ids = false;
  try {
    config = mta::config::Config::load(mta::config::Config::default_config_dir(), {.process_name = "postdrop"});
    try {
      mta::config::setup_logging(config, true);
    } catch (const mta::config::ConfigError&) {
      // An ordinary user may not append to maillog_file: standard error only.
    }
    if (auto who = mta::message::check_user_acl(config.get("authorized_submit_users"), uid))
      mta::log::fatal("User %s(%ld) is not allowed to submit mail", who->c_str(), static_cast<long>(uid));
    size_limit = config.get_int("message_size_limit");
    line_limit = static_cast<size_t>(std::max<long long>(1, config.get_int("line_length_limit")));
    queue_dir = config.get("queue_directory");
    pickup_service = config.get("pickup_service_name");
    long_ids = config.get_bool("enable_long_queue_ids");
    mta::queue::QueueLayout from = mta::queue::QueueLayout::from_config(config);
    layout = mta::queue::QueueLayout(".", {}, from.hash_depth());
    clean_environment(config);
  } catch (const mta::config::ConfigError& e) {
    mta::log::fatal("%s", e.what());
  }
  if (::chdir(queue_dir.c_str()) != 0) mta::log::fatal("chdir %s: %s", queue_dir.c_str(), std::strerror(errno));
  mta::log::debug("chdir %s", queue_dir.c_str());

  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  ::signal(SIGINT, remove_and_exit);
  ::signal(SIGQUIT, remove_and_exit);
  if (::signal(SIGTERM, SIG_IGN) == SIG_DFL) ::signal(SIGTERM, remove_and_exit);
  if (::signal(SIGHUP, SIG_IGN) == SIG_DFL) ::signal(SIGHUP, remove_and_exit);

  timeval start{};
  ::gettimeofday(&start, nullptr);  // the caller's time is not trusted

  std::string error;
  auto file = mta::queue::QueueFileWriter::create(
      layout, {.queue = mta::queue::queue_name::kMaildrop, .extra_mode = 0044, .long_queue_id = long_ids}, &error);
  if (!file) mta::log::fatal("mail_queue_enter: %s", error.c_str());
  set_path(file->path());
  mta::log::debug("open %s", file->path().c_str());
  {
    mta::ipc::AttrEncoder enc;
    (void)enc.str("protocol", "postdrop_protocol");
    (void)enc.str("queue_id", file->id());
    enc.end();
    if (::write(1, enc.bytes().data(), enc.bytes().size()) < 0) {
      // The caller went away; the end of input will say so.
    }
  }

  static const std::string_view kSegments[] = {rec::kPostEnvelopeTypes, rec::kPostContentTypes,
                                               rec::kPostExtractTypes, ""};
  const std::string_view* expected = kSegments;
  file->put_time(start);
  mta::message::FdSource in(0);
  int from_count = 0, rcpt_count = 0;
  bool validate = true;
  int write_errno = 0;
  char type = 0;
  std::string data;
  const std::string uid_text = "uid=" + std::to_string(static_cast<long>(uid));
  auto too_big = [&] { return size_limit > 0 && file->offset() > size_limit; };
  for (;;) {
    mta::message::RecordStatus rs = mta::message::read_record(in, "stdin", line_limit, &type, &data, &error);
    if (rs == mta::message::RecordStatus::eof) {  // the request was cancelled
      file->abort();
      g_have_path = 0;
      mta::log::debug("remove %s", file->path().c_str());
      return 0;
    }
    if (rs == mta::message::RecordStatus::error) {
      mta::log::warning("%s", error.c_str());
      fatal_cleanup(uid_text + ": malformed input");
    }
    if (expected->find(type) == std::string_view::npos)
      fatal_cleanup(uid_text + ": unexpected record type: " + std::to_string(static_cast<unsigned char>(type)));
    if (!expected->empty() && type == (*expected)[0]) ++expected;
    if (type == rec::kTime) continue;
    if (type == rec::kFrom) ++from_count;
    if (type == rec::kRcpt) ++rcpt_count;
    if (type == rec::kAttr) {
      std::string_view aname, avalue;
      if (!mta::queue::split_attribute(data, &aname, &avalue)) {
        mta::log::warning("%s: ignoring malformed record: missing '=' after attribute name: %.200s", uid_text.c_str(),
                          data.c_str());
        continue;
      }
      if (!allowed_attribute(aname, avalue)) {
        mta::log::warning("%s: ignoring attribute record: %.200s=%.200s", uid_text.c_str(),
                          std::string(aname).c_str(), std::string(avalue).c_str());
        continue;
      }
      file->put_attribute(aname, avalue);
    } else if (type == rec::kEnd) {
      file->put_end();
    } else {
      file->put(type, data);
    }
    if (too_big()) {
      // As Postfix under its file size limit: take the rest of the input
      // (so that the client sees our answer), then report.
      write_errno = EFBIG;
      while (type != rec::kEnd) {
        rs = mta::message::read_record(in, "stdin", line_limit, &type, &data, &error);
        if (rs == mta::message::RecordStatus::eof) break;
        if (rs == mta::message::RecordStatus::error) {
          mta::log::warning("%s", error.c_str());
          fatal_cleanup(uid_text + ": malformed input");
        }
      }
      validate = false;
      break;
    }
    if (type == rec::kEnd) break;
  }

  int status;
  if (validate && (from_count == 0 || rcpt_count == 0)) {
    status = stat_code::kBad;
    file->abort();
  } else if (write_errno != 0) {
    mta::log::warning("%s: %s", uid_text.c_str(), std::strerror(write_errno));
    file->abort();
    status = write_errno == EFBIG ? stat_code::kSize : stat_code::kWrite;
  } else if (!file->finish(&error)) {
    mta::log::warning("%s: %s", uid_text.c_str(), error.c_str());
    status = stat_code::kWrite;
  } else {
    status = 0;
    mta::message::mail_trigger("public", pickup_service, "W");
  }
  // From here on the file is the mail system's, whatever happens to us.
  g_have_path = 0;
  reply_status(status);
  return status;
}
