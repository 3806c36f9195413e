// maildrop_pickup.cpp: see maildrop_pickup.hpp.
#include "pickup/maildrop_pickup.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "cleanup/cleanup_status.hpp"
#include "cleanup/mail_date.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"
#include "queue/maildrop_file.hpp"
#include "queue/record.hpp"

namespace mta::pickup {
namespace {

namespace rec = queue::rec;
namespace cflag = message::cleanup_flag;
namespace cstat = message::cleanup_stat;

constexpr long kDaySeconds = 86400;
constexpr long kHourSeconds = 3600;

bool list_has(const std::vector<std::string>& list, std::string_view word) {
  return std::any_of(list.begin(), list.end(), [&](const std::string& w) { return ::strcasecmp(w.c_str(), std::string(word).c_str()) == 0; });
}

}  // namespace

PickupSettings PickupSettings::from_config(const config::Config& config) {
  PickupSettings s;
  s.myhostname = config.get("myhostname");
  s.mail_name = config.get("mail_name");
  s.cleanup_service = config.get("cleanup_service_name");
  s.content_filter = config.get("content_filter");
  s.line_limit = static_cast<size_t>(std::max<long long>(1, config.get_int("line_length_limit")));
  // Bounce bad mail, and everything that mail from outside gets, minus
  // what receive_override_options turns off (input_transp_cleanup).
  int flags = message::input_transp_cleanup(cflag::kBounce | cflag::kMaskExternal,
                                            config.get("receive_override_options"));
  // SMTPUTF8 autodetection for mail from sendmail (smtputf8_autodetect_classes).
  if (config.get_bool("smtputf8_enable") && list_has(config::split_list(config.get("smtputf8_autodetect_classes")), "sendmail"))
    flags |= cflag::kAutoUtf8;
  s.cleanup_flags = flags;
  if (struct passwd* pw = ::getpwnam(config.get("mail_owner").c_str())) {
    s.mail_owner_uid = pw->pw_uid;
    s.have_mail_owner = true;
  }
  return s;
}

void MaildropPickup::scan() {
  int removed;
  do {
    removed = 0;
    std::vector<std::pair<std::string, std::string>> files;
    std::string error;
    if (!layout_.scan(queue::queue_name::kMaildrop,
                      [&](std::string_view id, const std::string& path) { files.emplace_back(std::string(id), path); },
                      &error)) {
      log::warning("%s", error.c_str());
      return;
    }
    for (const auto& [id, path] : files) {
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;
      if (!S_ISREG(st.st_mode)) {
        log::warning("%s: uid %ld: not a regular file", path.c_str(), static_cast<long>(st.st_uid));
        continue;
      }
      if (!queue::is_ready_queue_file(st.st_mode)) continue;  // still being written
      switch (pickup_file(id, path)) {
        case Outcome::remove:
          if (::unlink(path.c_str()) != 0)
            log::warning("remove %s: %s", path.c_str(), std::strerror(errno));
          else
            ++removed;
          break;
        case Outcome::corrupt:
          if (!layout_.move(id, queue::queue_name::kMaildrop, queue::queue_name::kCorrupt, &error))
            log::warning("%s: cannot move to the corrupt queue: %s", path.c_str(), error.c_str());
          else
            log::warning("%s: moved to the corrupt queue: %s/%s", path.c_str(),
                         std::string(queue::queue_name::kCorrupt).c_str(), id.c_str());
          ++removed;
          break;
        case Outcome::keep: break;
      }
    }
  } while (removed > 0);
}

MaildropPickup::Outcome MaildropPickup::pickup_file(const std::string& name, const std::string& path) {
  // Can we open it at all?  (Gone: nothing to do; not readable: perhaps
  // a file from a very old Postfix, keep it.)
  {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return Outcome::keep;
      log::warning("open input file %s: %s", path.c_str(), std::strerror(err));
      if (err == EACCES) {
        log::warning("if this file was created by Postfix < 1.1, then you may have to chmod a+r %s", path.c_str());
        return Outcome::keep;
      }
      return Outcome::corrupt;
    }
    ::close(fd);
  }

  ipc::Channel cleanup;
  std::string queue_id;
  bool connected = false, cleanup_failed = false;
  queue::MaildropInfo info;
  int sent_segment = -1;  // -1 nothing yet; 0 envelope, 1 content, 2 extracted
  bool time_seen = false, check_first = true;
  auto send = [&](char type, std::string_view data) {
    if (!cleanup.stream().write(queue::encode_record(type, data))) cleanup_failed = true;
  };

  auto connect = [&]() -> bool {
    ipc::ConnectOptions options;
    options.attempts = ipc::kConnectWaitAttempts;
    ipc::Status st = ipc::connect_service(cleanup, ".", ipc::proto::kClassPublic, settings_.cleanup_service, options);
    ipc::proto::CleanupHello hello;
    if (st.ok()) st = cleanup.read(hello);
    int flags = settings_.cleanup_flags;
    bool requeued = settings_.have_mail_owner && queue::is_requeued_maildrop_file(info.st, settings_.mail_owner_uid);
    if (requeued) flags &= ~(cflag::kMilter | cflag::kAutoUtf8);
    if (st.ok()) st = cleanup.write(ipc::proto::CleanupOpen{flags});
    if (st.ok()) st = cleanup.flush();
    if (!st.ok()) {
      log::warning("%s: %s", path.c_str(), st.message().c_str());
      cleanup_failed = true;
      return false;
    }
    queue_id = hello.queue_id;
    connected = true;
    // Time-warped files.
    std::time_t now = std::time(nullptr);
    if (info.st.st_mtime > now + 2 * kHourSeconds) {
      log::warning("%s: message %s dated %ld seconds into the future", queue_id.c_str(), path.c_str(),
                   static_cast<long>(info.st.st_mtime - now));
      info.st.st_mtime = now;
    } else if (info.st.st_mtime < now - kDaySeconds) {
      log::warning("%s: message %s has been queued for %d days", queue_id.c_str(), path.c_str(),
                   static_cast<int>((now - info.st.st_mtime) / kDaySeconds));
    }
    if (!settings_.content_filter.empty()) send(rec::kFilter, settings_.content_filter);
    sent_segment = 0;
    return true;
  };

  // Moves what cleanup has seen on to SEGMENT.
  auto advance = [&](int segment) {
    while (sent_segment < segment) {
      if (sent_segment == 0) {
        // The envelope is done: log, then the content with our Received:.
        std::string sender = info.sender.value_or("");
        bool requeued = settings_.have_mail_owner && queue::is_requeued_maildrop_file(info.st, settings_.mail_owner_uid);
        if (requeued)
          log::info("%s: uid=%d from=<%s> orig_id=%s", queue_id.c_str(), static_cast<int>(info.st.st_uid),
                    sender.c_str(), name.c_str());
        else
          log::info("%s: uid=%d from=<%s>", queue_id.c_str(), static_cast<int>(info.st.st_uid), sender.c_str());
        send(rec::kMessage, "");
        send(rec::kNorm, "Received: by " + settings_.myhostname + " (" + settings_.mail_name + ", from userid " +
                             std::to_string(static_cast<long>(info.st.st_uid)) + ")");
        send(rec::kNorm, "\tid " + queue_id + "; " + message::mail_date(info.st.st_mtime));
      } else if (sent_segment == 1) {
        send(rec::kExtracted, "");
      }
      ++sent_segment;
    }
  };

  queue::MaildropOptions options;
  options.line_limit = settings_.line_limit;
  std::string error;
  bool parsed = queue::read_maildrop_file(
      path, options,
      [&](queue::Segment segment, const queue::Record& r) {
        if (!connected && !connect()) return false;
        int seg = segment == queue::Segment::envelope ? 0 : segment == queue::Segment::content ? 1 : 2;
        advance(seg);
        if (seg == 0) {
          if (r.type == rec::kFrom && !time_seen)  // Postfix < 2.3 wrote no T record
            send(rec::kTime, std::to_string(static_cast<long>(info.st.st_mtime)));
          if (r.type == rec::kTime) time_seen = true;
          // A content filter or redirect left over from "postsuper -r".
          if (r.type == rec::kFilter || r.type == rec::kRedirect) return !cleanup_failed;
        } else if (seg == 1) {
          // Keep content that starts with a blank from joining our Received:.
          if (check_first && (r.type == rec::kNorm || r.type == rec::kCont)) {
            check_first = false;
            if (!r.data.empty() && (r.data[0] == ' ' || r.data[0] == '\t')) send(rec::kNorm, "");
          }
        } else {
          if (r.type == rec::kReturnReceipt || r.type == rec::kErrorsTo) return !cleanup_failed;
          if (r.type == rec::kAttr) {
            std::string_view an, av;
            if (queue::split_attribute(r.data, &an, &av) && queue::attribute_record_type(an) == 0)
              return !cleanup_failed;  // header/body actions after "postsuper -r"
          }
        }
        send(r.type, r.data);
        return !cleanup_failed;
      },
      &info, &error);

  if (cleanup_failed) {
    log::warning("%s: error writing %s: %s", path.c_str(), queue_id.empty() ? name.c_str() : queue_id.c_str(),
                 std::string(message::cleanup_strerror(cstat::kWrite)).c_str());
    return Outcome::keep;
  }
  if (!parsed) {
    // Cleanup (when we got that far) sees the connection end without the
    // end record and throws its copy away.
    log::warning("%s: uid=%ld: malformed maildrop file: %s", name.c_str(), static_cast<long>(info.st.st_uid),
                 error.c_str());
    return Outcome::corrupt;
  }
  if (!connected && !connect()) return Outcome::keep;
  advance(2);
  send(rec::kEnd, "");
  ipc::proto::CleanupReply reply;
  ipc::Status st = cleanup.flush();
  if (st.ok()) st = cleanup.read(reply, {.strict = false});
  if (!st.ok() || cleanup_failed) {
    log::warning("%s: error writing %s: %s", path.c_str(), queue_id.c_str(),
                 std::string(message::cleanup_strerror(cstat::kWrite)).c_str());
    return Outcome::keep;
  }
  if (reply.status == 0) return Outcome::remove;
  if (reply.reason.empty())  // else cleanup logged it already
    log::warning("%s: error writing %s: %s", path.c_str(), queue_id.c_str(),
                 std::string(message::cleanup_strerror(reply.status)).c_str());
  if (reply.status & cstat::kBad) return Outcome::corrupt;
  if (reply.status & cstat::kRcpt) return Outcome::remove;
  return Outcome::keep;
}

}  // namespace mta::pickup
