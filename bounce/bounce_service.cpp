// bounce_service.cpp: see bounce_service.hpp.
#include "bounce/bounce_service.hpp"

#include <ctime>

#include "address/address.hpp"
#include "bounce/original_file.hpp"
#include "bounce/rfc822_text.hpp"
#include "log/log.hpp"

namespace mta::bounce {
namespace {

constexpr int kDelReqFlagUserVrfy = ipc::proto::kDelReqFlagUserVrfy;
constexpr int kDelReqFlagRecord = ipc::proto::kDelReqFlagRecordDelivery;

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool list_has(const config::Config& config, const char* param, const char* name) {
  for (const std::string& v : config.get_list(param))
    if (equal_ignore_case(v, name)) return true;
  return false;
}

}  // namespace

BounceSettings BounceSettings::from_config(const config::Config& config, std::vector<std::string>* warnings) {
  BounceSettings s;
  s.layout = queue::QueueLayout(".", config.get_list("hash_queue_names"),
                                static_cast<int>(config.get_int("hash_queue_depth")));
  s.myhostname = config.get("myhostname");
  s.mail_name = config.get("mail_name");
  static const std::set<std::string> kClasses = {"bounce", "2bounce", "delay", "policy",
                                                 "protocol", "resource", "software", "data"};
  for (const std::string& c : config.get_list("notify_classes")) {
    if (kClasses.count(lower(c)))
      s.notify_classes.insert(lower(c));
    else if (warnings)
      warnings->push_back("unknown notify_classes value \"" + c + "\" -- ignored");
  }
  s.bounce_rcpt = config.get("bounce_notice_recipient");
  s.double_bounce_rcpt = config.get("2bounce_notice_recipient");
  s.delay_rcpt = config.get("delay_notice_recipient");
  s.double_bounce_sender = config.get("double_bounce_sender") + "@" + s.myhostname;
  s.mailer_daemon = "MAILER-DAEMON@" + s.myhostname;
  s.max_queue_time = static_cast<long>(config.get_time("maximal_queue_lifetime", 'd'));
  s.bounce_size_limit = static_cast<long>(config.get_int("bounce_size_limit"));
  s.smtputf8_enable = config.get_bool("smtputf8_enable");
  s.threaded = config.get_bool("enable_threaded_bounces");
  s.old_log_line = config.get_bool("backwards_bounce_logfile_compatibility");
  s.lock.attempts = static_cast<int>(config.get_int("deliver_lock_attempts"));
  s.lock.delay = std::chrono::seconds(config.get_time("deliver_lock_delay", 's'));
  s.post.cleanup_service = config.get("cleanup_service_name");
  s.post.myhostname = s.myhostname;
  s.post.mail_name = s.mail_name;
  s.post.timeout = std::chrono::seconds(config.get_time("ipc_timeout", 's'));
  s.post.cleanup_flags = kCleanupFlagMapOk;
  if (list_has(config, "internal_mail_filter_classes", "bounce"))
    s.post.cleanup_flags |= kCleanupFlagFilter | kCleanupFlagMilter;
  if (s.smtputf8_enable && list_has(config, "smtputf8_autodetect_classes", "bounce"))
    s.post.cleanup_flags |= kCleanupFlagAutoUtf8;
  return s;
}


bool BounceService::is_double_bounce(const std::string& address) const {
  return equal_ignore_case(address, s_.double_bounce_sender);
}

ReportSettings BounceService::report_settings(const NotifyRequest& req, std::time_t now) const {
  ReportSettings rs;
  rs.queue_id = req.queue_id;
  rs.myhostname = s_.myhostname;
  rs.mail_name = s_.mail_name;
  rs.boundary = report_boundary(req.queue_id, now, s_.myhostname);
  std::string warning;
  rs.mime_encoding = report_mime_encoding(s_.smtputf8_enable, req.encoding, &warning);
  if (!warning.empty()) log::warning("%s: %s", req.queue_id.c_str(), warning.c_str());
  rs.smtputf8 = req.smtputf8;
  rs.dsn_envid = req.dsn_envid;
  rs.max_queue_time = s_.max_queue_time;
  rs.bounce_size_limit = s_.bounce_size_limit;
  return rs;
}

bool BounceService::expand(TemplateClass klass, std::vector<std::string>* text) const {
  std::vector<std::string> warnings;
  std::string error;
  bool ok = expand_template_text(templates_.get(klass), config_, text, &warnings, &error);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  if (!ok) log::error("%s", error.c_str());
  return ok;
}

int BounceService::post(const NotifyRequest& req, const std::string& sender, const std::string& recipient,
                        const std::vector<ContentRecord>& content, const char* what) {
  std::string new_id, error;
  int status = post_mail(s_.post, sender, recipient, req.smtputf8, 0, content, &new_id, &error);
  if (status == 0)
    log::info("%s: %s notification: %s", req.queue_id.c_str(), what, new_id.c_str());
  else
    log::warning("%s: %s notification not queued: %s", req.queue_id.c_str(), what,
                 error.empty() ? "cleanup service failure" : error.c_str());
  return status;
}

int BounceService::append(int, const std::string& service, const std::string& queue_id, ipc::proto::Recipient rcpt,
                          ipc::proto::Dsn dsn) {
  neuter(rcpt, s_.smtputf8_enable);
  neuter(dsn, s_.smtputf8_enable);
  std::string error;
  if (!append_log(s_.layout, service, queue_id, format_log_entry(rcpt, dsn, s_.old_log_line), s_.lock, &error)) {
    // Postfix gives up (fatal) so that the client backs off and retries.
    log::error("%s", error.c_str());
    return -1;
  }
  if (!error.empty()) log::warning("%s", error.c_str());
  return 0;
}

std::unique_ptr<OriginalFile> BounceService::open_original(const NotifyRequest& req) const {
  std::string error;
  std::unique_ptr<OriginalFile> orig = OriginalFile::open(s_.layout, req.queue_name, req.queue_id, s_.threaded,
                                                          s_.mailer_daemon, s_.bounce_size_limit, &error);
  if (!orig) log::error("%s", error.c_str());
  return orig;
}

int BounceService::notify(const NotifyRequest& req, Kind kind) {
  const bool failure = kind == Kind::failure;
  const TemplateClass klass = failure ? TemplateClass::failure : TemplateClass::delay;
  const Template& tmpl = templates_.get(klass);
  const std::time_t now = std::time(nullptr);
  const ReportSettings rs = report_settings(req, now);
  const char* what_sender = failure ? "sender non-delivery" : "sender delay";
  const char* what_postmaster = failure ? "postmaster non-delivery" : "postmaster delay";

  std::string error;
  std::unique_ptr<OriginalFile> orig = open_original(req);
  if (!orig) return 1;
  std::vector<LogEntry> entries;
  const std::vector<LogEntry>* logged = nullptr;
  switch (read_log(s_.layout, req.service, req.queue_id, s_.smtputf8_enable, &entries, &error)) {
    case LogRead::ok: logged = &entries; break;
    case LogRead::missing: break;
    case LogRead::error: log::error("%s", error.c_str()); return 1;
  }

  int status = 1;
  if (is_double_bounce(req.sender)) {
    // Never send a triple bounce.
    log::warning("%s: undeliverable postmaster notification discarded", req.queue_id.c_str());
    status = 0;
  } else if (req.sender.empty()) {
    // A bounce that bounced: a double bounce to the postmaster, if wanted.
    bool wanted = failure ? notify_class("bounce") || notify_class("2bounce") : notify_class("delay");
    if (!wanted) {
      status = 0;
    } else {
      const std::string& rcpt = failure ? s_.double_bounce_rcpt : s_.delay_rcpt;
      Notice n = compose_notice(rs, tmpl, nullptr, orig->info(), logged, rcpt, true, kNotifyOverride, kRetFull);
      status = n.count > 0 ? post(req, s_.double_bounce_sender, rcpt, n.content, what_postmaster) : 0;
    }
  } else {
    std::vector<std::string> text;
    if (!expand(klass, &text)) return 1;
    int ret = failure ? (req.dsn_ret ? req.dsn_ret : kRetFull) : kRetHdrs;
    Notice n = compose_notice(rs, tmpl, &text, orig->info(), logged, req.sender, false,
                              failure ? kNotifyFailure : kNotifyDelay, ret);
    status = n.count > 0 ? post(req, "", req.sender, n.content, what_sender) : 0;
    // The postmaster copy is not critical: a failure is only logged.
    if (status == 0 && notify_class(failure ? "bounce" : "delay")) {
      const std::string& rcpt = failure ? s_.bounce_rcpt : s_.delay_rcpt;
      Notice pm = compose_notice(rs, tmpl, nullptr, orig->info(), logged, rcpt, true, kNotifyOverride, kRetHdrs);
      int pm_status = pm.count > 0 ? post(req, s_.double_bounce_sender, rcpt, pm.content, what_postmaster) : 0;
      if (pm_status != 0)
        log::warning(failure ? "%s: postmaster notice failed while bouncing to %s"
                             : "%s: postmaster notice failed while warning %s",
                     req.queue_id.c_str(), req.sender.c_str());
    }
  }
  if (!failure) return status;  // a warning leaves the log for the final report

  if (status == 0 && (req.flags & kBounceFlagDelrcpt) && logged) {
    for (const LogEntry& e : *logged) {
      if (e.rcpt.offset > 0 && !orig->mark_done(e.rcpt.offset, &error)) {
        log::error("%s", error.c_str());
        return 1;
      }
    }
  }
  if (status == 0 && !remove_log(s_.layout, req.service, req.queue_id, &error)) {
    log::error("%s", error.c_str());
    return 1;
  }
  return status;
}

int BounceService::flush(const NotifyRequest& req) { return notify(req, Kind::failure); }

int BounceService::warn(const NotifyRequest& req) { return notify(req, Kind::delay); }

int BounceService::trace(const NotifyRequest& req) {
  std::string sender, recipient, error;
  if (is_double_bounce(req.sender)) {
    log::info("%s: not sending trace/success notification for double-bounce message", req.queue_id.c_str());
    return 0;
  }
  if (req.sender.empty()) {
    if (!notify_class("2bounce")) {
      log::info("%s: not sending trace/success notification for single-bounce message", req.queue_id.c_str());
      if (!remove_log(s_.layout, req.service, req.queue_id, &error)) {
        log::error("%s", error.c_str());
        return 1;
      }
      return 0;
    }
    recipient = s_.double_bounce_rcpt;
    sender = s_.double_bounce_sender;
  } else {
    recipient = req.sender;
  }
  const TemplateClass klass =
      req.flags & (kDelReqFlagUserVrfy | kDelReqFlagRecord) ? TemplateClass::verify : TemplateClass::success;
  std::unique_ptr<OriginalFile> orig = open_original(req);
  if (!orig) return 1;
  std::vector<LogEntry> entries;
  switch (read_log(s_.layout, req.service, req.queue_id, s_.smtputf8_enable, &entries, &error)) {
    case LogRead::ok: break;
    case LogRead::missing:
      log::debug("%s: no trace file -- not sending a notification", req.queue_id.c_str());
      return 0;
    case LogRead::error: log::error("%s", error.c_str()); return 1;
  }
  std::vector<std::string> text;
  if (!expand(klass, &text)) return 1;
  const ReportSettings rs = report_settings(req, std::time(nullptr));
  Notice n = compose_notice(rs, templates_.get(klass), &text, orig->info(), &entries, recipient, false,
                            kNotifyOverride, kRetHdrs);
  int status = n.count > 0 ? post(req, sender, recipient, n.content, "sender delivery status") : 0;
  if (status == 0 && !remove_log(s_.layout, req.service, req.queue_id, &error)) {
    log::error("%s", error.c_str());
    return 1;
  }
  return status;
}

int BounceService::one(const NotifyRequest& req, ipc::proto::Recipient rcpt, ipc::proto::Dsn dsn) {
  neuter(rcpt, s_.smtputf8_enable);
  neuter(dsn, s_.smtputf8_enable);
  const Template& tmpl = templates_.failure;
  std::string error;
  std::unique_ptr<OriginalFile> orig = open_original(req);
  if (!orig) return 1;
  const long offset = rcpt.offset;
  const int notify = rcpt.dsn_notify;
  const std::vector<LogEntry> single{LogEntry{std::move(rcpt), std::move(dsn)}};
  const ReportSettings rs = report_settings(req, std::time(nullptr));
  int status = 1;
  if (is_double_bounce(req.sender)) {
    log::warning("%s: undeliverable postmaster notification discarded", req.queue_id.c_str());
    status = 0;
  } else if (req.sender.empty()) {
    if (!notify_class("bounce") && !notify_class("2bounce")) {
      status = 0;
    } else {
      Notice n = compose_notice(rs, tmpl, nullptr, orig->info(), &single, s_.double_bounce_rcpt, true,
                                kNotifyOverride, kRetFull);
      status = post(req, s_.double_bounce_sender, s_.double_bounce_rcpt, n.content, "postmaster non-delivery");
    }
  } else {
    if (notify != 0 && (notify & kNotifyFailure) == 0) {
      status = 0;
    } else {
      std::vector<std::string> text;
      if (!expand(TemplateClass::failure, &text)) return 1;
      Notice n = compose_notice(rs, tmpl, &text, orig->info(), &single, req.sender, false, kNotifyOverride,
                                req.dsn_ret ? req.dsn_ret : kRetFull);
      status = post(req, "", req.sender, n.content, "sender non-delivery");
    }
    if (status == 0 && notify_class("bounce")) {
      Notice pm = compose_notice(rs, tmpl, nullptr, orig->info(), &single, s_.bounce_rcpt, true, kNotifyOverride,
                                 kRetHdrs);
      if (post(req, s_.double_bounce_sender, s_.bounce_rcpt, pm.content, "postmaster non-delivery") != 0)
        log::warning("%s: postmaster notice failed while bouncing to %s", req.queue_id.c_str(), req.sender.c_str());
    }
  }
  if (status == 0 && (req.flags & kBounceFlagDelrcpt) && !orig->mark_done(offset, &error)) {
    log::error("%s", error.c_str());
    return 1;
  }
  return status;
}

int BounceService::verp(const NotifyRequest& req, const std::string& delimiters) {
  // A returned bounce is not VERPified.
  if (req.sender.empty() || is_double_bounce(req.sender)) {
    log::warning("request to send VERP-style notification of bounced mail");
    return flush(req);
  }
  std::string error;
  std::unique_ptr<OriginalFile> orig = open_original(req);
  if (!orig) return 1;
  std::vector<LogEntry> entries;
  switch (read_log(s_.layout, req.service, req.queue_id, s_.smtputf8_enable, &entries, &error)) {
    case LogRead::ok: break;
    case LogRead::missing: {
      // No recipients to VERP to: send *something*, so the mail is not lost.
      ipc::proto::Recipient rcpt;
      rcpt.address = "(recipient address unavailable)";
      ipc::proto::Dsn dsn;
      dsn.status = "5.0.0";
      dsn.action = "failed";
      dsn.reason = "(error report unavailable)";
      orig.reset();
      return one(req, std::move(rcpt), std::move(dsn));
    }
    case LogRead::error: log::error("%s", error.c_str()); return 1;
  }
  std::vector<std::string> text;
  if (!expand(TemplateClass::failure, &text)) return 1;
  const Template& tmpl = templates_.failure;
  const ReportSettings rs = report_settings(req, std::time(nullptr));
  int status = 0;
  for (const LogEntry& e : entries) {
    const std::vector<LogEntry> single{e};
    if (e.rcpt.dsn_notify != 0 && (e.rcpt.dsn_notify & kNotifyFailure) == 0) {
      status = 0;
    } else {
      std::string to = address::verp_sender(delimiters, req.sender, e.rcpt.orig_addr.empty() ? e.rcpt.address : e.rcpt.orig_addr);
      Notice n = compose_notice(rs, tmpl, &text, orig->info(), &single, to, false, kNotifyOverride,
                                req.dsn_ret ? req.dsn_ret : kRetFull);
      status = post(req, "", to, n.content, "sender non-delivery");
      if (status != 0) break;  // do not make trouble worse
      if ((req.flags & kBounceFlagDelrcpt) && !orig->mark_done(e.rcpt.offset, &error)) {
        log::error("%s", error.c_str());
        return 1;
      }
    }
    if (notify_class("bounce")) {
      Notice pm = compose_notice(rs, tmpl, nullptr, orig->info(), &single, s_.bounce_rcpt, true, kNotifyOverride,
                                 kRetHdrs);
      if (post(req, s_.double_bounce_sender, s_.bounce_rcpt, pm.content, "postmaster non-delivery") != 0)
        log::warning("%s: postmaster notice failed while bouncing to %s", req.queue_id.c_str(), req.sender.c_str());
    }
  }
  if (status == 0 && !remove_log(s_.layout, req.service, req.queue_id, &error)) {
    log::error("%s", error.c_str());
    return 1;
  }
  return status;
}

}  // namespace mta::bounce
