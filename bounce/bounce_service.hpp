// bounce_service.hpp: what the bounce, defer and trace services do with a
// request, as Postfix 3.7's bounce(8):
//
//   append  add one recipient's status to the log SERVICE/ID
//           (bounce_append_service.c)
//   flush   send the sender a non-delivery notification ("failure"
//           template) for the recipients in SERVICE/ID, a copy to
//           bounce_notice_recipient when notify_classes has "bounce";
//           for a message from the null sender, a double bounce to
//           2bounce_notice_recipient instead (when notify_classes has
//           "bounce" or "2bounce"); nothing for a message from the
//           double-bounce sender.  Then, with BOUNCE_FLAG_DELRCPT, mark
//           those recipients done in the queue file, and remove the log
//           (bounce_notify_service.c)
//   warn    the same with the "delay" template, NOTIFY=DELAY, headers only,
//           to delay_notice_recipient per "delay"; the log stays
//           (bounce_warn_service.c)
//   trace   a delivery status report ("success" or, for sendmail -bv/-v,
//           "verify" template) from SERVICE/ID (bounce_trace_service.c)
//   one     a non-delivery notification for one recipient given in the
//           request, no log (bounce_one_service.c)
//   verp    flush, one notification per recipient to a VERP sender
//           address (bounce_notify_verp.c)
//
// Each returns the status that goes back to the client: 0 when done (the
// notice was queued, or there was nothing to send), non-zero when the
// client should try again later.  Log lines are Postfix's ("QUEUEID:
// sender non-delivery notification: NEWQUEUEID").
#pragma once

#include <memory>
#include <set>
#include <string>

#include "bounce/bounce_log.hpp"
#include "bounce/bounce_template.hpp"
#include "bounce/dsn_report.hpp"
#include "bounce/original_file.hpp"
#include "bounce/post_mail.hpp"
#include "config/config.hpp"
#include "ipc/mail_proto.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::bounce {

inline constexpr int kBounceFlagClean = 1 << 0;
inline constexpr int kBounceFlagDelrcpt = 1 << 1;

// The configuration a bounce process reads once.
struct BounceSettings {
  queue::QueueLayout layout{"."};
  PostSettings post;
  std::string myhostname;
  std::string mail_name = "Postfix";
  std::set<std::string> notify_classes;  // lower case
  std::string bounce_rcpt = "postmaster";
  std::string double_bounce_rcpt = "postmaster";  // 2bounce_notice_recipient
  std::string delay_rcpt = "postmaster";
  std::string double_bounce_sender;               // double_bounce_sender@myhostname
  std::string mailer_daemon;                      // MAILER-DAEMON@myhostname: the null sender in reports
  long max_queue_time = 5 * 86400;
  long bounce_size_limit = 50000;
  bool smtputf8_enable = true;
  bool threaded = false;      // enable_threaded_bounces
  bool old_log_line = true;   // backwards_bounce_logfile_compatibility
  LockPolicy lock;

  // From main.cf.  The queue is addressed relative to the current
  // directory (the daemon runs in queue_directory, maybe chrooted there).
  // Throws config::ConfigError.
  static BounceSettings from_config(const config::Config& config, std::vector<std::string>* warnings);
};

struct NotifyRequest {
  int flags = 0;
  std::string service;  // the log: bounce, defer or trace
  std::string queue_name;
  std::string queue_id;
  std::string encoding;
  int smtputf8 = 0;
  std::string sender;  // of the original message: who gets the notice
  std::string dsn_envid;
  int dsn_ret = 0;
};

class BounceService {
 public:
  BounceService(BounceSettings settings, Templates templates, const config::Config& config)
      : s_(std::move(settings)), templates_(std::move(templates)), config_(config) {}

  int append(int flags, const std::string& service, const std::string& queue_id, ipc::proto::Recipient rcpt,
             ipc::proto::Dsn dsn);
  int flush(const NotifyRequest& req);
  int warn(const NotifyRequest& req);
  int trace(const NotifyRequest& req);
  int one(const NotifyRequest& req, ipc::proto::Recipient rcpt, ipc::proto::Dsn dsn);
  int verp(const NotifyRequest& req, const std::string& delimiters);

  const BounceSettings& settings() const { return s_; }

 private:
  enum class Kind { failure, delay };
  int notify(const NotifyRequest& req, Kind kind);
  // The message being reported on, or null (the reason is logged).
  std::unique_ptr<OriginalFile> open_original(const NotifyRequest& req) const;
  ReportSettings report_settings(const NotifyRequest& req, std::time_t now) const;
  bool expand(TemplateClass klass, std::vector<std::string>* text) const;
  // Posts one notice; logs "QUEUEID: WHAT notification: NEWID" on success
  // and a warning on failure.  Returns cleanup's status.
  int post(const NotifyRequest& req, const std::string& sender, const std::string& recipient,
           const std::vector<ContentRecord>& content, const char* what);
  bool is_double_bounce(const std::string& address) const;
  bool notify_class(const char* name) const { return s_.notify_classes.count(name) > 0; }

  BounceSettings s_;
  Templates templates_;
  const config::Config& config_;
};

}  // namespace mta::bounce
