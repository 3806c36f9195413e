// enqueue.cpp: see enqueue.hpp.
#include "sendmail/enqueue.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cleanup/cleanup_status.hpp"
#include "cleanup/header_reader.hpp"
#include "cleanup/header_table.hpp"
#include "cleanup/rfc822_tree.hpp"
#include "cleanup/user_acl.hpp"
#include "ipc/attr.hpp"
#include "ipc/stream.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

extern char** environ;

namespace mta::sendmail {

void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log::vlog(log::Level::fatal, fmt, ap);
  va_end(ap);
  std::exit(kExitTempfail);
}

namespace {

namespace rec = queue::rec;

std::string errno_text(int err) { return err ? std::strerror(err) : "Application error"; }

// The sender's full name: $NAME, else the passwd comment up to the first
// comma, with '&' standing for the capitalized login name (Postfix's
// fullname()).  nullopt when the user has no passwd entry.
std::optional<std::string> full_name_of_user(uid_t uid) {
  if (const char* name = std::getenv("NAME")) return std::string(name);
  struct passwd* pw = ::getpwuid(uid);
  if (!pw) return std::nullopt;
  std::string out;
  for (const char* cp = pw->pw_gecos ? pw->pw_gecos : ""; *cp && *cp != ','; ++cp) {
    if (*cp == '&') {
      std::string login = pw->pw_name ? pw->pw_name : "";
      if (!login.empty()) login[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(login[0])));
      out += login;
    } else {
      out += *cp;
    }
  }
  return out;
}

// The environment for postdrop: only what export_environment names.
std::vector<std::string> export_environment(const config::Config& config) {
  std::vector<std::string> env;
  for (const std::string& item : config::split_list(config.get("export_environment"))) {
    if (item.find('=') != std::string::npos) {
      env.push_back(item);
    } else if (const char* value = std::getenv(item.c_str())) {
      env.push_back(item + "=" + value);
    }
  }
  return env;
}

// postdrop as a child process: records go to its standard input, its
// answers come from its standard output.
class Postdrop {
 public:
  Postdrop(const config::Config& config, int verbose, std::string who)
      : who_(std::move(who)), command_(config.get("command_directory") + "/postdrop") {
    std::vector<std::string> args = {command_, "-r"};
    for (int i = 0; i < verbose; ++i) args.emplace_back("-v");
    label_ = command_ + " -r";
    for (int i = 0; i < verbose; ++i) label_ += " -v";
    std::vector<std::string> env = export_environment(config);

    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
      fatal("%s: unable to execute %s: %s", who_.c_str(), label_.c_str(), std::strerror(errno));
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (;;) {
      pid_ = ::fork();
      if (pid_ >= 0) break;
      log::warning("fork: %s", std::strerror(errno));
      ::sleep(10);
    }
    if (pid_ == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      ::execve(command_.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    out_fd_ = to_child[1];
    in_ = ipc::Stream(from_child[0], label_);
  }

  ~Postdrop() {
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  // {protocol=postdrop_protocol, queue_id=ID}; false when postdrop did
  // not say that.
  bool read_queue_id() {
    ipc::AttrReader reader(in_);
    ipc::AttrList list;
    if (!reader.read_list(list, {.strict = false}).ok()) return false;
    const std::string* protocol = list.find("protocol");
    return protocol && *protocol == "postdrop_protocol" && list.find("queue_id") != nullptr;
  }

  void put(char type, std::string_view payload) {
    queue::append_record(buf_, type, payload);
    if (buf_.size() >= 65536) flush();
  }

  void flush() {
    size_t done = 0;
    while (done < buf_.size()) {
      ssize_t n = ::write(out_fd_, buf_.data() + done, buf_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fatal("%s: error writing queue file: %s", who_.c_str(), std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    buf_.clear();
  }

  // After E: postdrop's {status} (CLEANUP_STAT_WRITE when it said nothing),
  // then waits for it.
  int finish() {
    flush();
    ::close(out_fd_);
    out_fd_ = -1;
    int status = message::cleanup_stat::kWrite;
    ipc::AttrReader reader(in_);
    ipc::AttrList list;
    if (reader.read_list(list, {.strict = false}).ok()) {
      if (auto n = list.number("status")) status = static_cast<int>(static_cast<uint32_t>(*n));
    }
    if (wait() != 0) log::warning("mail_stream_cleanup: close error");
    return status;
  }

  // Exit status of the child (after it exited).
  int wait() {
    in_.close();
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  const std::string& label() const { return label_; }

 private:
  std::string who_;
  std::string command_;
  std::string label_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  ipc::Stream in_;
  std::string buf_;
};

// Standard input as records (rec_streamlf_get): N for a line without its
// newline, L for LIMIT bytes of a longer line or for text that ends without
// a newline; false at the end.
class InputReader {
 public:
  explicit InputReader(size_t limit) : limit_(limit) {}

  bool next(char* type, std::string* text) {
    text->clear();
    while (text->size() < limit_) {
      if (pos_ == len_ && !fill()) {
        if (text->empty()) return false;
        *type = rec::kCont;
        return true;
      }
      char c = buf_[pos_++];
      if (c == '\n') {
        *type = rec::kNorm;
        return true;
      }
      *text += c;
    }
    *type = rec::kCont;
    return true;
  }

  bool failed() const { return error_ != 0; }
  int error() const { return error_; }

 private:
  bool fill() {
    for (;;) {
      ssize_t n = ::read(0, buf_, sizeof buf_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) error_ = errno;
      if (n <= 0) return false;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
      return true;
    }
  }

  size_t limit_;
  char buf_[65536];
  size_t pos_ = 0, len_ = 0;
  int error_ = 0;
};

// Writes a header line by line, each line cut into L records of LIMIT.
void put_header_lines(Postdrop& out, std::string_view header, size_t limit) {
  size_t start = 0;
  for (;;) {
    size_t nl = header.find('\n', start);
    std::string_view line = header.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    while (line.size() > limit) {
      out.put(rec::kCont, line.substr(0, limit));
      line.remove_prefix(limit);
    }
    out.put(rec::kNorm, line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
}

}  // namespace

void enqueue(const config::Config& config, const EnqueueRequest& req) {
  uid_t uid = ::getuid();
  if (auto who = message::check_user_acl(config.get("authorized_submit_users"), uid))
    fatal("User %s(%ld) is not allowed to submit mail", who->c_str(), static_cast<long>(uid));

  std::string sender;
  if (req.has_sender) {
    int count = 0;
    sender = rfc822::first_address(req.sender, &count);
    if (count > 1) log::warning("-f option specified malformed sender: %s", req.sender.c_str());
  } else {
    sender = message::user_name(uid);
    if (sender.empty()) fatal("no login name found for user ID %lu", static_cast<unsigned long>(uid));
  }
  std::string who = sender + "(" + std::to_string(static_cast<long>(uid)) + ")";
  size_t line_limit = static_cast<size_t>(std::max<long long>(1, config.get_int("line_length_limit")));
  size_t header_limit = static_cast<size_t>(std::max<long long>(1, config.get_int("header_size_limit")));

  Postdrop dst(config, req.verbose, who);
  if (!dst.read_queue_id()) {
    int saved = errno;
    int status = dst.wait();
    if (status != 0) {
      // postdrop said why on standard error; the errno we have is ours.
      log::warning("command \"%s\" exited with status %d", dst.label().c_str(), status);
      saved = 0;
    }
    fatal("%s: unable to execute %s: %s", who.c_str(), dst.label().c_str(), errno_text(saved).c_str());
  }

  // The envelope.
  if (!req.dsn_envid.empty()) dst.put(rec::kAttr, "envelope_id=" + req.dsn_envid);
  dst.put(rec::kAttr, "rewrite_context=" + req.rewrite_context);
  std::optional<std::string> full_name;
  if (req.has_full_name)
    full_name = req.full_name;
  else
    full_name = full_name_of_user(uid);
  if (full_name) dst.put(rec::kFullName, *full_name);
  dst.put(rec::kFrom, sender);
  if (!req.verp_delims.empty() && sender.empty())
    fatal("%s: -V option requires non-null sender address", who.c_str());
  if (!req.encoding.empty()) dst.put(rec::kAttr, "encoding=" + req.encoding);
  int trace_flags = req.flags & kTraceMask;
  if (trace_flags) dst.put(rec::kAttr, "trace_flags=" + std::to_string(trace_flags));
  if (!req.verp_delims.empty()) dst.put(rec::kVerp, req.verp_delims);
  int rcpt_count = 0;
  for (const std::string& arg : req.recipients) {
    std::vector<std::string> addrs = rfc822::address_list(arg);
    for (const std::string& a : addrs) {
      if (req.dsn_notify) dst.put(rec::kAttr, "notify_flags=" + std::to_string(req.dsn_notify));
      dst.put(rec::kRcpt, a);
      ++rcpt_count;
    }
    if (addrs.empty()) {
      dst.put(rec::kRcpt, "");
      ++rcpt_count;
    }
  }

  // The content.
  dst.put(rec::kMessage, "");
  bool extract = (req.flags & kFlagExtractRcpt) != 0;
  std::vector<std::string> recipients, resent_recipients;
  bool resent = false;
  if ((req.flags & (kTraceMask & ~kTraceRecord)) != 0) {  // -bv: a probe, no message
    if (extract) fatal("%s: -t option cannot be used with -bv", who.c_str());
    if (!sender.empty()) dst.put(rec::kNorm, "From: " + sender);
    dst.put(rec::kNorm, "Subject: probe");
    if (!req.recipients.empty()) {
      dst.put(rec::kCont, "To:");
      for (size_t i = 0; i < req.recipients.size(); ++i)
        dst.put(rec::kNorm, "\t" + req.recipients[i] + (i + 1 < req.recipients.size() ? "," : ""));
    }
  } else {
    message::HeaderTable headers;
    message::HeaderReader::Callbacks cb;
    cb.header = [&](std::string& header) {
      std::string_view h(header.data(), std::strlen(header.c_str()));  // C string, as Postfix
      const message::HeaderInfo* info = headers.find(h);
      using namespace message::header_flag;
      if (info && (info->flags & kRecipient) && (info->flags & kExtract) &&
          (!resent || (info->flags & kResent))) {
        std::vector<std::string>* list = &recipients;
        if (info->flags & kResent) {
          list = &resent_recipients;
          resent = true;
        }
        size_t colon = h.find(':');
        std::string_view value = colon == std::string_view::npos ? std::string_view() : h.substr(colon + 1);
        for (std::string& a : rfc822::address_list(value)) list->push_back(std::move(a));
      }
      put_header_lines(dst, h, line_limit);
    };
    cb.body = [&](char type, std::string_view text) { dst.put(type, text); };
    message::HeaderReader reader(header_limit, cb);

    enum class StripCr { unknown, strip, keep };
    std::string fix = config.get("sendmail_fix_line_endings");
    StripCr strip_cr;
    if (fix == "always")
      strip_cr = StripCr::strip;
    else if (fix == "strict")
      strip_cr = StripCr::unknown;
    else if (fix == "never")
      strip_cr = StripCr::keep;
    else
      fatal("invalid sendmail_fix_line_endings value: %s", fix.c_str());

    InputReader in(line_limit);
    bool skip_from = true;
    char type = 0, prev_type = 0;
    std::string buf;
    for (; in.next(&type, &buf); prev_type = type) {
      if (strip_cr == StripCr::unknown && type == rec::kNorm)
        strip_cr = !buf.empty() && buf.back() == '\r' ? StripCr::strip : StripCr::keep;
      if (skip_from) {
        if (type == rec::kNorm) {
          std::string_view s(buf.c_str());
          size_t quotes = s.find_first_not_of('>');
          if (quotes != std::string_view::npos && s.substr(quotes).starts_with("From ")) continue;
        }
        skip_from = false;
      }
      if (strip_cr == StripCr::strip && type == rec::kNorm)
        while (!buf.empty() && buf.back() == '\r') buf.pop_back();
      if ((req.flags & kFlagArchaicEof) && prev_type != rec::kCont && buf == ".") break;
      if (extract) {
        reader.record(type, buf);
        if (reader.truncated())
          fatal("%s: unable to extract recipients: message header length exceeds safety limit", who.c_str());
      } else {
        dst.put(type, buf);
      }
    }
    if (in.failed()) fatal("%s: error reading input: %s", who.c_str(), std::strerror(in.error()));
    if (extract) reader.end();
  }

  // Recipients from the headers.
  dst.put(rec::kExtracted, "");
  if (extract) {
    for (const std::string& a : resent ? resent_recipients : recipients) {
      if (req.dsn_notify) dst.put(rec::kAttr, "notify_flags=" + std::to_string(req.dsn_notify));
      dst.put(rec::kRcpt, a);
      ++rcpt_count;
    }
  }
  if (rcpt_count == 0) {
    if (extract) fatal("%s: No recipient addresses found in message header", who.c_str());
    fatal("%s: Recipient addresses must be specified on the command line or via the -t option", who.c_str());
  }
  dst.put(rec::kEnd, "");

  int status = dst.finish();
  if (status != 0) fatal("%s: %s", who.c_str(), std::string(message::cleanup_strerror(status)).c_str());
  if (trace_flags) {
    std::printf("Mail Delivery Status Report will be mailed to <%s>.\n", sender.c_str());
    std::fflush(stdout);
  }
}

}  // namespace mta::sendmail
