// cleanup_session.cpp: see cleanup_session.hpp.  Messages and checks follow
// Postfix 3.7's cleanup_envelope.c, cleanup_message.c, cleanup_extracted.c,
// cleanup_addr.c, cleanup_out_recipient.c, cleanup_api.c, cleanup_bounce.c.
#include "cleanup/cleanup_session.hpp"

#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "cleanup/cleanup_status.hpp"
#include "cleanup/mail_date.hpp"
#include "cleanup/mail_trigger.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

namespace mta::cleanup {
namespace {

namespace rec = queue::rec;
namespace cflag = message::cleanup_flag;
namespace cstat = message::cleanup_stat;
using message::HeaderInfo;
using message::HeaderType;
namespace hflag = message::header_flag;

constexpr std::string_view kEnvRecipientTypes = "MDRO/Kon";  // REC_TYPE_ENV_RECIPIENT
constexpr std::string_view kExtRecipientTypes = "EDRO/Kon";  // REC_TYPE_EXT_RECIPIENT
constexpr std::string_view kGeneratedByCleanup = "L>Are";    // extracted records we make ourselves
constexpr std::string_view kMailerDaemon = "MAILER-DAEMON";
constexpr int kDsnNotifyNever = 1;
constexpr int kDsnNotifySuccess = 2;
constexpr int kDsnNotifyAny = 1 | 2 | 4 | 8;
constexpr int kDsnRetFull = 1, kDsnRetHdrs = 2;

bool contains(std::string_view set, char c) { return set.find(c) != std::string_view::npos; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool all_printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 32 && c <= 126; });
}

bool dsn_notify_ok(int m) { return m == kDsnNotifyNever || (m != 0 && (m & ~kDsnNotifyAny) == 0 && (m & kDsnNotifyNever) == 0); }
bool dsn_ret_ok(int r) { return r == kDsnRetFull || r == kDsnRetHdrs; }

std::string type_number(char type) { return std::to_string(static_cast<unsigned char>(type)); }

// Postfix's split_nameval messages.
std::string split_error(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) return "missing '=' after attribute name";
  return "missing attribute name";
}

// What follows the colon of a header.
std::string_view header_value(std::string_view header) {
  size_t colon = header.find(':');
  return colon == std::string_view::npos ? std::string_view() : header.substr(colon + 1);
}

// Delays in the log, as Postfix's log_adhoc: two significant digits, whole
// seconds from ten seconds on, 0 below 10ms.
std::string pretty_delay(double seconds) {
  char buf[32];
  if (seconds < 0.01) return "0";
  if (seconds >= 10) {
    std::snprintf(buf, sizeof buf, "%ld", std::lround(seconds));
  } else {
    std::snprintf(buf, sizeof buf, "%.2g", seconds);
  }
  return buf;
}

}  // namespace

// ---------------------------------------------------------------- settings

CleanupSettings CleanupSettings::from_config(const config::Config& c) {
  CleanupSettings s;
  auto positive = [](long long v, long long fallback) { return v > 0 ? v : fallback; };
  s.myhostname = c.get("myhostname");
  s.line_limit = static_cast<size_t>(positive(c.get_int("line_length_limit"), 2048));
  s.header_limit = static_cast<size_t>(positive(c.get_int("header_size_limit"), 102400));
  s.message_limit = c.get_int("message_size_limit");
  s.hopcount_limit = static_cast<int>(c.get_int("hopcount_limit"));
  s.token_limit = static_cast<int>(c.get_int("header_address_token_limit"));
  s.always_add_headers = c.get_bool("always_add_missing_headers");
  s.undisclosed_header = c.get("undisclosed_recipients_header");
  s.empty_address = c.get("empty_address_recipient");
  s.duplicate_limit = static_cast<int>(c.get_int("duplicate_filter_limit"));
  s.enable_original_recipient = c.get_bool("enable_original_recipient");
  s.delay_warning_time = static_cast<long>(c.get_time("delay_warning_time", 'h'));
  s.remote_rewrite_domain = c.get("remote_header_rewrite_domain");
  std::string from_format = c.get("header_from_format");
  if (from_format != "standard" && from_format != "obsolete")
    throw config::ConfigError("invalid header_from_format value: \"" + from_format + "\"");
  s.header_from_standard = from_format == "standard";
  s.long_queue_ids = c.get_bool("enable_long_queue_ids");
  s.queue_service = c.get("queue_service_name");
  s.attribute_limit = static_cast<int>(c.get_int("queue_file_attribute_count_limit"));
  s.verp_filter = c.get("verp_delimiter_filter");
  s.always_bcc = c.get("always_bcc");
  s.headers.set_drop_list(c.get("message_drop_headers"));
  s.checks = ContentCheckTables::from_config(c);
  s.mime.disable_mime = c.get_bool("disable_mime_input_processing");
  s.mime.header_limit = s.header_limit;
  s.mime.nesting_limit = static_cast<int>(c.get_int("mime_nesting_limit"));
  s.mime.boundary_limit = static_cast<size_t>(positive(c.get_int("mime_boundary_length_limit"), 2048));
  s.strict_7bit_headers = c.get_bool("strict_7bit_headers");
  s.strict_8bitmime = c.get_bool("strict_8bitmime");
  s.strict_8bitmime_body = c.get_bool("strict_8bitmime_body");
  s.strict_encoding = c.get_bool("strict_mime_encoding_domain");
  return s;
}

// ---------------------------------------------------------------- bounce client

namespace {

class BounceService : public BounceClient {
 public:
  explicit BounceService(std::string service) : client_(".", std::string(ipc::proto::kClassPrivate), std::move(service), options()) {}

  bool append(const ipc::proto::BounceAppendArgs& args) override {
    ipc::proto::BounceAppendRequest req;
    static_cast<ipc::proto::BounceAppendArgs&>(req) = args;
    ipc::proto::StatusReply reply;
    ipc::Status st = client_.call(req, reply);
    client_.disconnect();  // the bounce service takes one request per connection
    if (!st.ok()) log::warning("%s", st.message().c_str());
    return st.ok() && reply.status == 0;
  }

  bool flush(const ipc::proto::BounceNotifyArgs& args) override {
    ipc::proto::BounceNotifyRequest req;
    static_cast<ipc::proto::BounceNotifyArgs&>(req) = args;
    req.command = ipc::proto::BounceCommand::flush;
    ipc::proto::StatusReply reply;
    ipc::Status st = client_.call(req, reply);
    client_.disconnect();
    if (!st.ok()) log::warning("%s", st.message().c_str());
    return st.ok() && reply.status == 0;
  }

 private:
  static ipc::ClientOptions options() {
    ipc::ClientOptions o;
    o.protocol = std::string(ipc::proto::kProtoBounce);
    o.max_attempts = 2;  // a failure keeps the message in the maildrop for later
    o.connect.attempts = 2;
    o.connect.retry_delay = std::chrono::seconds(1);
    return o;
  }
  ipc::ServiceClient client_;
};

}  // namespace

std::unique_ptr<BounceClient> make_bounce_client(std::string service) {
  return std::make_unique<BounceService>(std::move(service));
}

// ---------------------------------------------------------------- session

CleanupSession::CleanupSession(const CleanupSettings& settings, const queue::QueueLayout& layout,
                               AddressRewriter& rewriter, const AddressMapper& mapper, BounceClient* bounce)
    : settings_(settings), layout_(layout), rewriter_(rewriter), mapper_(mapper), bounce_(bounce) {}

CleanupSession::~CleanupSession() = default;

bool CleanupSession::open(std::string* error) {
  file_ = queue::QueueFileWriter::create(
      layout_, {.queue = queue::queue_name::kIncoming, .extra_mode = 0, .long_queue_id = settings_.long_queue_ids},
      error);
  if (!file_) return false;
  queue_id_ = file_->id();
  // Logs a previous message with the same ID left behind (Postfix checks
  // each time: the ID repeats when inode numbers do).
  for (std::string_view q : {queue::queue_name::kDefer, queue::queue_name::kBounce}) {
    std::string path = layout_.path(q, queue_id_);
    if (::unlink(path.c_str()) == 0)
      log::warning("%s: removed spurious %s log", std::string(q).c_str(), queue_id_.c_str());
    else if (errno != ENOENT)
      log::warning("%s: remove %s log: %s", std::string(q).c_str(), queue_id_.c_str(), std::strerror(errno));
  }
  return true;
}

void CleanupSession::control(int flags) {
  flags_ = flags;
  // A client that lets us bounce gets its message processed to the end
  // unless it cannot be; others are told at the first problem.
  err_mask_ = (flags & cflag::kBounce) ? cstat::kMaskIncomplete : ~0;
}

void CleanupSession::check_size() {
  if (settings_.message_limit > 0 && file_->offset() > settings_.message_limit && !(errs_ & cstat::kSize)) {
    log::warning("%s: queue file size limit exceeded", queue_id_.c_str());
    errs_ |= cstat::kSize;
  }
}

void CleanupSession::put(char type, std::string_view data) {
  if (!out_ok()) return;
  file_->put(type, data);
  check_size();
}

void CleanupSession::put_text(char type, std::string_view text) {
  while (text.size() > settings_.line_limit) {
    put(rec::kCont, text.substr(0, settings_.line_limit));
    text.remove_prefix(settings_.line_limit);
  }
  put(type, text);
}

void CleanupSession::record(char type, std::string_view data) {
  if (!out_ok() || end_seen_) return;
  // Pseudo record types are for queue files only.
  if (contains("<ionc", type)) {
    log::warning("%s: record type %d not allowed - discarding this message", queue_id_.c_str(),
                 static_cast<unsigned char>(type));
    errs_ |= cstat::kBad;
    return;
  }
  switch (stage_) {
    case Stage::envelope: envelope(type, data); break;
    case Stage::message: message(type, data); break;
    case Stage::extracted: extracted(type, data); break;
  }
}

// ---------------------------------------------------------------- envelope

// DSN and original-recipient records that belong to the next recipient;
// true when TYPE was one.
bool CleanupSession::recipient_attribute(char type, std::string_view data, bool extracted_segment) {
  if (type == rec::kDsnOrcpt) {
    if (dsn_orcpt_) {
      log::warning("%s: ignoring out-of-order DSN original recipient record <%.200s>", queue_id_.c_str(),
                   dsn_orcpt_->c_str());
    }
    dsn_orcpt_ = std::string(data);
    return true;
  }
  if (type == rec::kDsnNotify) {
    if (dsn_notify_) {
      log::warning("%s: ignoring out-of-order DSN notify record <%d>", queue_id_.c_str(), dsn_notify_);
      dsn_notify_ = 0;
    }
    int n = all_digits(data) ? std::atoi(std::string(data).c_str()) : 0;
    if (n == 0 || !dsn_notify_ok(n))
      log::warning(extracted_segment ? "%s: ignoring malformed dsn notify record <%.200s>"
                                     : "%s: ignoring malformed DSN notify record <%.200s>",
                   queue_id_.c_str(), std::string(data).c_str());
    else {
      dsn_notify_ = n;
      // Postfix's qmgr_opts: the client's NOTIFY as it came in, so that
      // qmgr flushes the trace log of an expanded NOTIFY=SUCCESS alias
      // whose new recipients no longer ask for success notices.
      notify_seen_ |= n;
    }
    return true;
  }
  if (type == rec::kOrigRcpt) {
    if (orig_rcpt_) {
      log::warning("%s: ignoring out-of-order original recipient record <%.200s>", queue_id_.c_str(),
                   extracted_segment ? std::string(data).c_str() : orig_rcpt_->c_str());
    }
    orig_rcpt_ = std::string(data);
    return true;
  }
  return false;
}

void CleanupSession::envelope(char type, std::string_view data) {
  if (!started_) {
    file_->put_size_placeholder();
    started_ = true;
  }
  if (type == rec::kFlags) {  // not part of the queue file
    int extra = std::atoi(std::string(data).c_str());
    if (extra & ~cflag::kMaskExtra)
      log::warning("%s: ignoring bad extra flags: 0x%x", queue_id_.c_str(), extra);
    else
      flags_ |= extra;
    return;
  }
  if (type == rec::kDelay || type == rec::kMilterCount) return;  // no DELAY action, no Milters

  char mapped = type;
  std::string_view value = data, name, avalue;
  if (type == rec::kAttr) {
    if (!queue::split_attribute(data, &name, &avalue)) {
      log::warning("%s: message rejected: malformed attribute: %s: %.100s", queue_id_.c_str(),
                   split_error(data).c_str(), std::string(data).c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (char pseudo = queue::attribute_record_type(name)) {
      mapped = pseudo;
      value = avalue;
    }
  }
  if (!contains(rec::kEnvelopeTypes, type)) {
    log::warning("%s: message rejected: unexpected record type %s in envelope", queue_id_.c_str(),
                 type_number(type).c_str());
    errs_ |= cstat::kBad;
    return;
  }

  // The first recipient (or the end of the envelope): checks, W record.
  if (!in_rcpt_ && contains(kEnvRecipientTypes, mapped)) {
    if (!sender_) {
      log::warning("%s: message rejected: missing sender envelope record", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (!have_arrival_) {
      log::warning("%s: message rejected: missing time envelope record", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (!warn_seen_ && !sender_->empty() && settings_.delay_warning_time > 0)
      put(rec::kWarn, queue::format_fixed_number(arrival_.tv_sec + settings_.delay_warning_time));
    in_rcpt_ = true;
  }

  if (type == rec::kRcpt) {
    if (!orig_rcpt_) orig_rcpt_ = std::string(data);
    add_recipient(data);
    orig_rcpt_.reset();
    dsn_orcpt_.reset();
    dsn_notify_ = 0;
    return;
  }
  if (type == rec::kDone || type == rec::kCanceled) {
    orig_rcpt_.reset();
    dsn_orcpt_.reset();
    dsn_notify_ = 0;
    return;
  }
  if (recipient_attribute(mapped, mapped == rec::kOrigRcpt ? data : value, false)) return;
  if (type == rec::kMessage) {
    stage_ = Stage::message;
    in_rcpt_ = false;
    return;
  }

  if (type == rec::kSize || mapped == rec::kCreateTime) return;  // we write our own
  // Content filter and redirect (smtpd's access actions, content_filter):
  // kept for the start of the extracted segment, where header/body checks
  // may have overruled them; the last one wins.
  if (type == rec::kFilter) {
    if (data.find(':') == std::string_view::npos)
      log::warning("%s: ignoring invalid content filter: %.100s", queue_id_.c_str(), std::string(data).c_str());
    else
      filter_ = std::string(data);
    return;
  }
  if (type == rec::kRedirect) {
    if (data.find('@') == std::string_view::npos)
      log::warning("%s: ignoring invalid redirect address: %.100s", queue_id_.c_str(), std::string(data).c_str());
    else
      redirect_ = std::string(data);
    return;
  }
  if (type == rec::kTime) {
    if (!have_arrival_) {  // the first one wins
      if (auto tv = queue::parse_time_record(data)) {
        arrival_ = *tv;
        have_arrival_ = true;
      }
      put(type, data);
    }
    put(rec::kAttr, "create_time=" + std::to_string(static_cast<long>(std::time(nullptr))));
    return;
  }
  if (type == rec::kFullName) {
    if (!fullname_) {
      fullname_ = std::string(data);
      put(type, data);
    }
    return;
  }
  if (type == rec::kFrom) {
    if (sender_) {
      log::warning("%s: message rejected: multiple envelope sender records", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    add_sender(data);
    return;
  }
  if (mapped == rec::kDsnEnvid) {
    if (dsn_envid_) {
      log::warning("%s: message rejected: multiple DSN envelope ID records", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (!all_printable(value)) {
      log::warning("%s: message rejected: bad DSN envelope ID record", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    dsn_envid_ = std::string(value);
    put(type, data);
    return;
  }
  if (mapped == rec::kDsnRet) {
    if (dsn_ret_) {
      log::warning("%s: message rejected: multiple DSN RET records", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    int r = all_digits(value) ? std::atoi(std::string(value).c_str()) : 0;
    if (r == 0 || !dsn_ret_ok(r)) {
      log::warning("%s: message rejected: bad DSN RET record <%.200s>", queue_id_.c_str(), std::string(data).c_str());
      errs_ |= cstat::kBad;
      return;
    }
    dsn_ret_ = r;
    put(type, data);
    return;
  }
  if (type == rec::kWarn) {
    if (!warn_seen_) {
      warn_seen_ = true;
      put(type, data);
    }
    return;
  }
  if (type == rec::kVerp) {
    if (!verp_delims_) {
      bool ok = data.size() == 2 && settings_.verp_filter.find(data[0]) != std::string::npos &&
                settings_.verp_filter.find(data[1]) != std::string::npos;
      if (!sender_ || sender_->empty()) {
        log::warning("%s: ignoring VERP request for null sender", queue_id_.c_str());
      } else if (!ok) {
        log::warning("%s: ignoring bad VERP request: \"%.100s\"", queue_id_.c_str(), std::string(data).c_str());
      } else {
        verp_delims_ = std::string(data);
        put(type, data);
      }
    }
    return;
  }
  if (type == rec::kAttr) {
    if (attribute_count_ >= settings_.attribute_limit) {
      log::warning("%s: message rejected: attribute count exceeds limit %d", queue_id_.c_str(),
                   settings_.attribute_limit);
      errs_ |= cstat::kBad;
      return;
    }
    if (name == "rewrite_context") {
      if (avalue == "local") {
        hdr_rewrite_context_ = "local";
      } else if (avalue == "remote") {
        hdr_rewrite_context_ = settings_.remote_rewrite_domain.empty() ? "" : "remote";
      } else {
        log::warning("%s: message rejected: bad rewriting context: %.100s", queue_id_.c_str(),
                     std::string(avalue).c_str());
        errs_ |= cstat::kBad;
        return;
      }
    }
    if (!avalue.empty()) {
      ++attribute_count_;
      if (name == "encoding") encoding_ = std::string(avalue);
      // For the log lines of header/body checks (cleanup_act_log).
      if (name == "log_message_origin") log_origin_ = std::string(avalue);
      if (name == "log_protocol_name") log_proto_ = std::string(avalue);
      if (name == "log_helo_name") log_helo_ = std::string(avalue);
    }
    put(type, data);
    return;
  }
  put(type, data);
}

std::string CleanupSession::rewrite_internal(std::string_view rule, std::string_view address) {
  return rfc822::unquote_local(rewriter_.rewrite(rule, rfc822::quote_local(address)));
}

void CleanupSession::add_sender(std::string_view address) {
  std::string clean = rewrite_internal("local", address);
  // MAILER-DAEMON@$myorigin is the null sender (bounces stay bounces).
  if (clean.size() > kMailerDaemon.size() && ::strncasecmp(clean.c_str(), "MAILER-DAEMON@", 14) == 0 &&
      ::strcasecmp(clean.c_str(), rewrite_internal("local", kMailerDaemon).c_str()) == 0)
    clean.clear();
  if (flags_ & cflag::kMapOk) {
    mapper_.envelope_sender(clean, queue_id_, mapped_);
    take_map_errors();
  }
  put(rec::kFrom, clean);
  if (!sender_) sender_ = clean;
  if ((flags_ & cflag::kBccOk) && !clean.empty()) {
    std::optional<std::string> bcc = mapper_.sender_bcc(clean, queue_id_, mapped_);
    take_map_errors();
    if (bcc) add_bcc(*bcc);
  }
}

// Takes the status bits and reason of a mapping step into the message's.
void CleanupSession::take_map_errors() {
  errs_ |= mapped_.errs;
  if (!mapped_.reason.empty() && reason_.empty()) reason_ = mapped_.reason;
  mapped_ = MapOutcome();
}

// An automatic BCC recipient (always_bcc, sender/recipient_bcc_maps):
// rewritten locally, never notified about.
void CleanupSession::add_bcc(std::string_view address) {
  std::string clean = rewrite_internal("local", address);
  if (flags_ & cflag::kMapOk) {
    mapper_.envelope_recipient(clean, queue_id_, mapped_);
    take_map_errors();
  }
  out_recipient("", kDsnNotifyNever, clean, clean);
}

void CleanupSession::add_recipient(std::string_view address) {
  std::string clean = rewrite_internal("local", address.empty() ? std::string_view(settings_.empty_address) : address);
  if (flags_ & cflag::kMapOk) {
    mapper_.envelope_recipient(clean, queue_id_, mapped_);
    take_map_errors();
  }
  out_recipient(dsn_orcpt_.value_or(""), dsn_notify_, orig_rcpt_.value_or(std::string(address)), clean);
  if (!recip_) recip_ = clean;
  if ((flags_ & cflag::kBccOk) && !clean.empty()) {
    std::optional<std::string> bcc = mapper_.recipient_bcc(clean, queue_id_, mapped_);
    take_map_errors();
    if (bcc) add_bcc(*bcc);
  }
}

void CleanupSession::out_recipient(std::string dsn_orcpt, int notify, std::string orcpt, const std::string& address) {
  if (!settings_.enable_original_recipient) orcpt.clear();
  // RFC 3461 lets a relay add ORCPT; Postfix records the address as
  // received (after rewriting) when the client gave none.
  if (dsn_orcpt.empty() && !address.empty()) dsn_orcpt = "rfc822;" + address;
  std::vector<std::string> targets{address};
  if ((flags_ & cflag::kMapOk) && mapper_.has_virtual_aliases()) {
    targets = mapper_.expand_recipient(address, queue_id_, mapped_);
    take_map_errors();
    // RFC 3461 for an alias: NOTIFY=SUCCESS gets an "expanded" notice now
    // (through the trace log that qmgr flushes), and the new recipients
    // keep the other NOTIFY conditions.
    if ((notify & kDsnNotifySuccess) && (targets.size() > 1 || targets.front() != address)) {
      trace_expanded(dsn_orcpt, notify, orcpt, address);
      notify = notify == kDsnNotifySuccess ? kDsnNotifyNever : (notify & ~kDsnNotifySuccess);
    }
  }
  for (const std::string& target : targets) {
    std::string key = settings_.enable_original_recipient
                          ? dsn_orcpt + "\n" + std::to_string(notify) + "\n" + orcpt + "\n" + target
                          : target;
    if (dups_.count(key)) continue;
    if (settings_.duplicate_limit <= 0 || dups_.size() < static_cast<size_t>(settings_.duplicate_limit))
      dups_.insert(key);
    if (!out_ok()) return;
    off_t at = file_->put_recipient(target, orcpt, dsn_orcpt, notify);
    written_.push_back({target, orcpt, dsn_orcpt, notify, at});
    check_size();
  }
}

// cleanup_trace_append(): "alias expanded" into the trace log.
void CleanupSession::trace_expanded(const std::string& dsn_orcpt, int notify, const std::string& orcpt,
                                    const std::string& address) {
  ipc::proto::BounceAppendArgs args;
  args.flags = ipc::proto::kBounceFlagClean;
  args.queue_id = queue_id_;
  args.rcpt.orig_addr = orcpt;
  args.rcpt.address = address;
  args.rcpt.dsn_orcpt = dsn_orcpt;
  args.rcpt.dsn_notify = notify;
  args.dsn.status = "2.0.0";
  args.dsn.action = "expanded";
  args.dsn.reason = "alias expanded";
  if (!trace_ || !trace_->append(args)) {
    log::warning("%s: trace logfile update error", queue_id_.c_str());
    errs_ |= cstat::kWrite;
  }
}

// ---------------------------------------------------------------- content

void CleanupSession::message(char type, std::string_view data) {
  if (!mime_) {
    if (out_ok()) file_->begin_content();
    // MIME reports only when inspecting (not when bouncing or forwarding).
    mime::MimeOptions opt = settings_.mime;
    if (!opt.disable_mime && (flags_ & cflag::kFilter)) {
      opt.report_8bit_in_header = settings_.strict_8bitmime || settings_.strict_7bit_headers;
      opt.report_8bit_in_7bit_body = settings_.strict_8bitmime || settings_.strict_8bitmime_body;
      opt.report_encoding_domain = settings_.strict_encoding;
      opt.report_nesting = opt.report_8bit_in_header || opt.report_8bit_in_7bit_body || opt.report_encoding_domain ||
                           (settings_.checks && settings_.checks->any_header_checks());
    }
    mime::MimeState::Callbacks cb;
    cb.header = [this](mime::HeaderClass cls, std::string& h) { header(cls, h); };
    cb.headers_done = [this] { headers_done(); };
    cb.body = [this](char t, std::string_view text, long long offset) { body(t, text, offset); };
    cb.error = [this](int error, std::string_view text) { mime_error(error, text); };
    mime_ = std::make_unique<mime::MimeState>(opt, std::move(cb));
  }
  if (type == rec::kNorm || type == rec::kCont) {
    mime_->record(type, data);
  } else if (type == rec::kExtracted) {
    // A MIME problem rejects the message unless something else did first
    // (header truncation is not one: the header was cut).
    int mime_errs = mime_->end() & ~mime::mime_err::kTruncHeader;
    if (mime_errs && reason_.empty()) {
      const mime::MimeErrorDetail& d = mime::mime_error_detail(mime_errs);
      errs_ |= cstat::kCont;
      reason_ = dsn_prepend(d.dsn, d.text);
    }
    stage_ = Stage::extracted;
    if (out_ok()) file_->begin_extracted();
  } else {
    log::warning("%s: message rejected: unexpected record type %s in message content", queue_id_.c_str(),
                 type_number(type).c_str());
    errs_ |= cstat::kBad;
  }
}

void CleanupSession::out_header(std::string_view text) {
  size_t start = 0;
  for (bool first = true;; first = false) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (first || (!line.empty() && (line[0] == ' ' || line[0] == '\t')))
      put_text(rec::kNorm, line);
    else
      put_text(rec::kNorm, "\t" + std::string(line));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
}

// A rewritten address list has one address per line: join lines while
// they fit in 70 columns, then write them as header lines.
void CleanupSession::fold_header(std::string text) {
  size_t start_line = 0;
  size_t line = 0;
  for (;;) {
    size_t end_line = text.find('\n', line);
    if (end_line == std::string::npos) end_line = text.size();
    if (line > start_line) {
      if (end_line - start_line < 70)
        text[line - 1] = ' ';
      else
        start_line = line;
    }
    if (end_line >= text.size()) break;
    line = end_line + 1;
  }
  out_header(text);
}

bool CleanupSession::rewrite_tree(rfc822::Tree& tree, int node) {
  std::string src = tree.externalize_address(node);
  std::string dst = rewriter_.rewrite(hdr_rewrite_context_, src);
  tree.replace_address(node, dst);
  return dst != src;
}

void CleanupSession::rewrite_header(const HeaderInfo& info, std::string_view text, bool sender_header) {
  std::string_view value = header_value(text);
  rfc822::Tree tree = rfc822::Tree::parse(value, settings_.token_limit);
  bool did_rewrite = false;
  for (int node : tree.addresses()) {
    did_rewrite |= rewrite_tree(tree, node);
    if (flags_ & cflag::kMapOk) {
      std::string address = tree.externalize_address(node);
      bool changed = sender_header ? mapper_.header_sender(address, queue_id_, mapped_)
                                   : mapper_.header_recipient(address, queue_id_, mapped_);
      take_map_errors();
      if (changed) {
        tree.replace_address(node, address);
        did_rewrite = true;
      }
    }
  }
  if (info.flags & hflag::kDrop) return;
  if (did_rewrite)
    fold_header(std::string(text.substr(0, info.name.size())) + ": " + tree.externalize(true));
  else
    out_header(text);
}

CheckLogFacts CleanupSession::log_facts() const {
  CheckLogFacts f;
  f.queue_id = queue_id_;
  f.origin = log_origin_;
  if (sender_) f.sender = &*sender_;
  if (recip_) f.recipient = &*recip_;
  if (log_proto_) f.proto = &*log_proto_;
  if (log_helo_) f.helo = &*log_helo_;
  return f;
}

void CleanupSession::mime_error(int error, std::string_view text) {
  if ((error & ~mime::mime_err::kTruncHeader) == 0) return;  // handled after the primary header
  log::info("%s: reject: mime-error %s: %.*s from %s; from=<%s> to=<%s>", queue_id_.c_str(),
            std::string(mime::mime_error_detail(error).text).c_str(), static_cast<int>(std::min<size_t>(text.size(), 100)),
            text.data(), log_origin_.c_str(), sender_.value_or("").c_str(), recip_.value_or("unknown").c_str());
}

void CleanupSession::header(mime::HeaderClass cls, std::string& raw) {
  std::string_view text(raw.c_str());  // Postfix works on C strings here
  const HeaderInfo* info = settings_.headers.find(text);
  // MIME headers go to mime_header_checks wherever they are.
  if (info && (info->flags & hflag::kMime)) cls = mime::HeaderClass::multipart;
  const maps::Maps* checks = settings_.checks ? settings_.checks->for_class(cls) : nullptr;
  if ((flags_ & cflag::kFilter) && checks) {
    maps::Result r = checks->find(text);
    if (r.found()) {
      CheckOutcome o = act(log_facts(), check_target(), "header", text, r.value, checks->title());
      if (o.prepend) out_header(*o.prepend);
      if (o.kind == CheckOutcome::drop) return;
      if (o.kind == CheckOutcome::replace) {
        raw = o.replacement;
        text = raw.c_str();
        info = settings_.headers.find(text);
      }
    } else if (r.failed()) {
      log::warning("%s: %s map lookup problem -- message not accepted, try again later", queue_id_.c_str(),
                   checks->title().c_str());
      errs_ |= cstat::kWrite;
    }
  }
  if (!info) {
    out_header(text);
    return;
  }
  std::string_view value = header_value(text);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
  if (info->type == HeaderType::content_transfer_encoding) {
    std::string v(value);
    if (::strcasecmp(v.c_str(), "8bit") == 0 || ::strcasecmp(v.c_str(), "binary") == 0) encoding_ = "8bit";
  }
  // Attachment and nested header blocks are copied as they are.
  if (cls != mime::HeaderClass::primary) {
    out_header(text);
    return;
  }
  headers_seen_ |= 1ULL << static_cast<int>(info->type);
  if (info->type == HeaderType::message_id)
    log::info("%s: message-id=%s", queue_id_.c_str(), std::string(value).c_str());
  if (info->type == HeaderType::resent_message_id)
    log::info("%s: resent-message-id=%s", queue_id_.c_str(), std::string(value).c_str());
  if (info->type == HeaderType::received && ++hop_count_ >= settings_.hopcount_limit) {
    log::warning("%s: message rejected: hopcount exceeded", queue_id_.c_str());
    errs_ |= cstat::kHops;
  }
  if (!out_ok()) return;
  if (info->flags & hflag::kResent) resent_ = "Resent-";
  if ((info->flags & hflag::kSender) && !hdr_rewrite_context_.empty())
    rewrite_header(*info, text, true);
  else if ((info->flags & hflag::kRecipient) && !hdr_rewrite_context_.empty())
    rewrite_header(*info, text, false);
  else if (!(info->flags & hflag::kDrop))
    out_header(text);
}

void CleanupSession::headers_done() {
  if (!out_ok()) return;
  bool add = !hdr_rewrite_context_.empty() || settings_.always_add_headers;
  bool resent = !resent_.empty();
  auto seen = [this](HeaderType t) { return (headers_seen_ & (1ULL << static_cast<int>(t))) != 0; };

  if (add && !seen(resent ? HeaderType::resent_message_id : HeaderType::message_id)) {
    std::string id = message::message_id_stamp(file_->create_time().tv_sec) + "." + queue_id_ + "@" +
                     settings_.myhostname;
    put_text(rec::kNorm, resent_ + "Message-Id: <" + id + ">");
    log::info("%s: %smessage-id=<%s>", queue_id_.c_str(), resent ? "resent-" : "", id.c_str());
    headers_seen_ |= 1ULL << static_cast<int>(resent ? HeaderType::resent_message_id : HeaderType::message_id);
  }
  if (!seen(HeaderType::message_id)) log::info("%s: message-id=<>", queue_id_.c_str());

  if (add && !seen(resent ? HeaderType::resent_date : HeaderType::date))
    put_text(rec::kNorm, resent_ + "Date: " + message::mail_date(arrival_.tv_sec));

  if (add && !seen(resent ? HeaderType::resent_from : HeaderType::from)) {
    std::string sender = sender_.value_or("");
    std::string address = rfc822::quote_local(sender.empty() ? kMailerDaemon : std::string_view(sender));
    std::string line;
    if (!sender.empty() && fullname_ && !fullname_->empty()) {
      std::string name = *fullname_;
      std::replace(name.begin(), name.end(), '\r', ' ');
      std::replace(name.begin(), name.end(), '\n', ' ');
      if (settings_.header_from_standard) {
        line = resent_ + "From: ";
        std::string phrase;
        if (name.find_first_of("%!()<>@,;:\\\".[]") == std::string::npos) {
          phrase = rfc822::Tree::scan(name, settings_.token_limit).externalize();  // normalizes blanks
        } else {
          phrase = "\"";
          for (char ch : name) {
            if (ch == '"' || ch == '\\' || ch == '\r' || ch == '\n') phrase += '\\';
            phrase += ch;
          }
          phrase += '"';
        }
        if (!phrase.empty()) line += phrase + " ";
        line += "<" + address + ">";
      } else {
        line = resent_ + "From: " + address + " " + rfc822::Tree::parse("(" + name + ")").externalize();
      }
    } else {
      line = resent_ + "From: " + address;
    }
    put_text(rec::kNorm, line);
  }

  constexpr unsigned long long kVisible =
      (1ULL << static_cast<int>(HeaderType::to)) | (1ULL << static_cast<int>(HeaderType::resent_to)) |
      (1ULL << static_cast<int>(HeaderType::cc)) | (1ULL << static_cast<int>(HeaderType::resent_cc));
  if (add && (headers_seen_ & kVisible) == 0 && !settings_.undisclosed_header.empty()) {
    if (!message::is_header(settings_.undisclosed_header))
      log::warning("bad undisclosed_recipients_header header text \"%s\" -- need \"headername: headervalue\"",
                   settings_.undisclosed_header.c_str());
    else
      put_text(rec::kNorm, settings_.undisclosed_header);
  }
}

void CleanupSession::body(char type, std::string_view text, long long offset) {
  if (!out_ok()) return;
  // Each body part is inspected up to body_checks_size_limit; empty lines
  // never match.
  const maps::Maps* checks = settings_.checks ? settings_.checks->body.get() : nullptr;
  if ((flags_ & cflag::kFilter) && checks && !text.empty() &&
      (settings_.checks->body_limit == 0 || offset < settings_.checks->body_limit)) {
    std::string line(text.substr(0, text.find('\0')));  // Postfix looks at a C string
    maps::Result r = checks->find(line);
    if (r.found()) {
      CheckOutcome o = act(log_facts(), check_target(), "body", line, r.value, checks->title());
      if (o.prepend) put_text(rec::kNorm, *o.prepend);
      if (o.kind == CheckOutcome::drop) return;
      if (o.kind == CheckOutcome::replace) {
        put_text(type, o.replacement);
        return;
      }
    } else if (r.failed()) {
      log::warning("%s: %s map lookup problem -- message not accepted, try again later", queue_id_.c_str(),
                   checks->title().c_str());
      errs_ |= cstat::kWrite;
    }
  }
  put_text(type, text);
}

// ---------------------------------------------------------------- extracted

void CleanupSession::extracted(char type, std::string_view data) {
  if (!contains(rec::kExtractTypes, type)) {
    log::warning("%s: message rejected: unexpected record type %s in extracted envelope", queue_id_.c_str(),
                 type_number(type).c_str());
    errs_ |= cstat::kBad;
    return;
  }
  char mapped = type;
  std::string_view value = data;
  if (type == rec::kAttr) {
    std::string_view name;
    if (!queue::split_attribute(data, &name, &value)) {
      log::warning("%s: message rejected: malformed attribute: %s: %.100s", queue_id_.c_str(),
                   split_error(data).c_str(), std::string(data).c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (value.empty()) {
      log::warning("%s: spurious null attribute value for \"%s\" -- ignored", queue_id_.c_str(),
                   std::string(name).c_str());
      return;
    }
    char pseudo = queue::attribute_record_type(name);
    if (pseudo == rec::kDsnOrcpt || pseudo == rec::kDsnNotify) mapped = pseudo;
  }

  // The first recipient (or the end): what the headers told us.
  if (!in_rcpt_ && contains(kExtRecipientTypes, mapped)) {
    if (filter_) put(rec::kFilter, *filter_);
    if (redirect_) put(rec::kRedirect, *redirect_);
    if (encoding_) put(rec::kAttr, "encoding=" + *encoding_);
    in_rcpt_ = true;
  }
  if (type == rec::kRcpt) {
    if (!sender_) {
      log::warning("%s: message rejected: envelope recipient precedes sender", queue_id_.c_str());
      errs_ |= cstat::kBad;
      return;
    }
    if (!orig_rcpt_) orig_rcpt_ = std::string(data);
    add_recipient(data);
    orig_rcpt_.reset();
    dsn_orcpt_.reset();
    dsn_notify_ = 0;
    return;
  }
  if (type == rec::kDone) {
    orig_rcpt_.reset();
    dsn_orcpt_.reset();
    dsn_notify_ = 0;
    return;
  }
  if (recipient_attribute(mapped, mapped == rec::kOrigRcpt ? data : value, true)) return;
  if (type == rec::kEnd) {
    in_rcpt_ = false;
    end_seen_ = true;
    extracted_finish();
    return;
  }
  // A requeued message's filter and redirect: header/body checks win.
  if (type == rec::kFilter) {
    if (!filter_) filter_ = std::string(data);
    return;
  }
  if (type == rec::kRedirect) {
    if (!redirect_) redirect_ = std::string(data);
    return;
  }
  if (contains(kGeneratedByCleanup, type)) return;  // we make our own
  put(type, data);
}

void CleanupSession::extracted_finish() {
  if ((flags_ & cflag::kBccOk) && recip_ && !settings_.always_bcc.empty()) add_bcc(settings_.always_bcc);
  // BCC recipients from header/body checks.
  if (out_ok() && recip_)
    for (const std::string& bcc : hbc_rcpt_) add_bcc(bcc);
  hbc_rcpt_.clear();
  if (!out_ok()) return;
  file_->put_end();
}

// ---------------------------------------------------------------- finish

bool CleanupSession::bounce() {
  if (!bounce_) return false;
  // The bounce service reads the message from our file: make it complete
  // enough to read, but not ready for the queue manager.
  std::string error;
  if (!file_->ended()) {
    if (file_->data_offset() < 0) file_->begin_content();
    if (file_->xtra_offset() < 0) file_->begin_extracted();
    file_->put_end();
  }
  if (!file_->flush(&error)) {
    log::warning("%s: %s", queue_id_.c_str(), error.c_str());
    return false;
  }
  const message::CleanupStatDetail& detail = message::cleanup_stat_detail(errs_);
  std::string status(detail.dsn), text(detail.text);
  if (!reason_.empty()) {  // "5.7.1 text", or text alone
    status = "5.0.0";
    text = reason_;
    if (reason_.size() > 6 && std::isdigit(static_cast<unsigned char>(reason_[0])) && reason_[1] == '.') {
      size_t sp = reason_.find(' ');
      if (sp != std::string::npos) {
        status = reason_.substr(0, sp);
        text = reason_.substr(sp + 1);
      }
    }
  }
  timeval now{};
  ::gettimeofday(&now, nullptr);
  double delay = static_cast<double>(now.tv_sec - arrival_.tv_sec) + static_cast<double>(now.tv_usec - arrival_.tv_usec) / 1e6;
  std::vector<WrittenRecipient> rcpts = written_;
  if (rcpts.empty()) rcpts.push_back({"unknown", "", "", 0, 0});
  for (const WrittenRecipient& r : rcpts) {
    ipc::proto::BounceAppendArgs args;
    args.flags = ipc::proto::kBounceFlagClean;
    args.queue_id = queue_id_;
    args.rcpt.orig_addr = r.original.empty() ? r.address : r.original;
    args.rcpt.address = r.address;
    args.rcpt.offset = static_cast<long>(r.offset);
    args.rcpt.dsn_orcpt = r.dsn_orcpt;
    args.rcpt.dsn_notify = r.notify;
    args.dsn.status = status;
    args.dsn.action = "failed";
    args.dsn.reason = text;
    if (!bounce_->append(args)) return false;
    std::string line = queue_id_ + ": to=<" + r.address + ">";
    if (!r.original.empty() && ::strcasecmp(r.original.c_str(), r.address.c_str()) != 0)
      line += ", orig_to=<" + r.original + ">";
    line += ", relay=none, delay=" + pretty_delay(delay) + ", delays=" + pretty_delay(delay) + "/0/0/0, dsn=" +
            status + ", status=bounced (" + text + ")";
    log::info("%s", line.c_str());
  }
  ipc::proto::BounceNotifyArgs notify;
  notify.flags = ipc::proto::kBounceFlagClean;
  notify.queue_name = std::string(queue::queue_name::kIncoming);
  notify.queue_id = queue_id_;
  notify.encoding = encoding_.value_or("");
  notify.sender = sender_.value_or("");
  notify.dsn_envid = dsn_envid_.value_or("");
  notify.dsn_ret = (errs_ & (cstat::kCont | cstat::kSize)) ? kDsnRetHdrs : dsn_ret_;
  return bounce_->flush(notify);
}

int CleanupSession::finish() {
  if (!file_) return cstat::kWrite;
  if (out_ok()) {
    if (!recip_) errs_ |= cstat::kRcpt;
    if (!end_seen_) errs_ |= cstat::kBad;
  }
  // A DISCARD (access rule or content check) always reports success.
  bool discard = (flags_ & cflag::kDiscard) != 0;
  if (discard) errs_ = 0;
  if (errs_ != 0 && (flags_ & cflag::kBounce) && (errs_ & cstat::kMaskCantBounce) == 0 && sender_) {
    if (bounce()) {
      errs_ = 0;
      discard = true;
    } else {
      log::warning("%s: bounce message failure", queue_id_.c_str());
      errs_ = cstat::kWrite;
    }
  }
  if (errs_ == 0 && !discard) {
    bool hold = (flags_ & cflag::kHold) != 0;
    std::string error;
    if (hold && !layout_.move(queue_id_, queue::queue_name::kIncoming, queue::queue_name::kHold, &error)) {
      log::warning("%s: %s", queue_id_.c_str(), error.c_str());
      errs_ = cstat::kWrite;
    } else if (!file_->finish(queue::QueueFileWriter::Finish{.qmgr_flags = queue::qmgr_flag::from_dsn_notify(notify_seen_)},
                              &error)) {
      log::warning("%s: %s", queue_id_.c_str(), error.c_str());
      errs_ = error.find("File too large") != std::string::npos ? cstat::kSize : cstat::kWrite;
      if (hold) ::unlink(layout_.path(queue::queue_name::kHold, queue_id_).c_str());
    } else if (!hold) {
      message::mail_trigger(ipc::proto::kClassPublic, settings_.queue_service, "W");
    }
  } else {
    file_->abort();
  }
  return errs_;
}

}  // namespace mta::cleanup
