// queue_file.cpp: see queue_file.hpp.
#include "queue/queue_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "queue/queue_id.hpp"

namespace mta::queue {
namespace {

constexpr int kRenameAttempts = 1000;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool in_set(std::string_view set, char type) { return set.find(type) != std::string_view::npos; }

// Records that belong to a recipient: cleanup's REC_TYPE_ENV_RECIPIENT, with
// the DSN attributes by their pseudo types.
bool is_recipient_record(char type, std::string_view payload) {
  if (in_set("DRO/K", type)) return true;
  if (type != rec::kAttr) return false;
  std::string_view name, value;
  if (!split_attribute(payload, &name, &value)) return false;
  char pseudo = attribute_record_type(name);
  return pseudo == rec::kDsnOrcpt || pseudo == rec::kDsnNotify;
}

std::string type_text(char type) { return std::to_string(static_cast<unsigned char>(type)); }

}  // namespace

// ---------------------------------------------------------------- Envelope

const Attribute* Envelope::find_attribute(std::string_view name) const {
  for (const Attribute& a : attributes)
    if (a.name == name) return &a;
  return nullptr;
}

size_t Envelope::pending_recipients() const {
  size_t n = 0;
  for (const Recipient& r : recipients) n += r.pending();
  return n;
}

// ---------------------------------------------------------------- writing

std::unique_ptr<QueueFileWriter> QueueFileWriter::create(const QueueLayout& layout, const CreateOptions& options,
                                                         std::string* error) {
  if (!is_valid_queue_name(options.queue)) {
    if (error) *error = "bad queue name: " + std::string(options.queue);
    return nullptr;
  }
  // A temporary name that no other writer uses (the pid alone is not enough
  // when a maildrop is shared), then the name that the inode makes unique.
  std::string temp;
  int fd = -1;
  timeval tv{};
  mode_t mode = static_cast<mode_t>(kQueueFileInProgress | options.extra_mode);
  for (;;) {
    ::gettimeofday(&tv, nullptr);
    temp = layout.queue_path(options.queue) + "/" + std::to_string(tv.tv_usec) + "." + std::to_string(::getpid());
    fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0) break;
    if (errno == EEXIST || errno == EISDIR) continue;
    if (error) *error = errno_text("create file " + temp);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (error) *error = errno_text("fstat " + temp);
    ::close(fd);
    ::unlink(temp.c_str());
    return nullptr;
  }
  for (int attempt = 0;; ++attempt) {
    ::gettimeofday(&tv, nullptr);
    std::string id = make_queue_id(options.long_queue_id, tv, static_cast<unsigned long>(st.st_ino));
    std::string path = layout.path(options.queue, id);
    if (::rename(temp.c_str(), path.c_str()) == 0)
      return std::unique_ptr<QueueFileWriter>(new QueueFileWriter(fd, id, path, tv, options.extra_mode));
    int saved = errno;
    if (saved == ENOENT) QueueLayout::make_parent_dirs(path);
    if ((saved != EPERM && saved != EISDIR && saved != ENOENT) || attempt >= kRenameAttempts) {
      errno = saved;
      if (error) *error = errno_text("rename " + temp + " to " + path);
      ::close(fd);
      ::unlink(temp.c_str());
      return nullptr;
    }
  }
}

QueueFileWriter::QueueFileWriter(int fd, std::string id, std::string path, timeval created, unsigned extra_mode)
    : fd_(fd), id_(std::move(id)), path_(std::move(path)), created_(created), extra_mode_(extra_mode), out_(fd) {}

QueueFileWriter::~QueueFileWriter() {
  if (!done_) abort();
}

void QueueFileWriter::abort() {
  if (done_) return;
  done_ = true;
  ::close(fd_);
  ::unlink(path_.c_str());
}

void QueueFileWriter::note_record(char type, std::string_view payload) {
  if (type == rec::kMessage || type == rec::kExtracted) in_envelope_ = false;
  if (type == rec::kRcpt) ++rcpt_count_;
  if (!in_envelope_) return;
  // As cleanup: a non-recipient record after the first recipient tells qmgr
  // that it must read the whole envelope before it can start deliveries.
  if (is_recipient_record(type, payload))
    in_recipients_ = true;
  else if (in_recipients_)
    qmgr_flags_ |= qmgr_flag::kMixedRcptOther;
}

off_t QueueFileWriter::put(char type, std::string_view payload) {
  note_record(type, payload);
  return out_.put(type, payload);
}

void QueueFileWriter::put_size_placeholder() {
  size_offset_ = put(rec::kSize, format_size_record(SizeRecord{}));
}

void QueueFileWriter::put_time(const timeval& arrival) { put(rec::kTime, format_time_record(arrival)); }

void QueueFileWriter::put_attribute(std::string_view name, std::string_view value) {
  std::string text(name);
  text += '=';
  text += value;
  put(rec::kAttr, text);
}

void QueueFileWriter::put_sender(std::string_view sender) { put(rec::kFrom, sender); }

void QueueFileWriter::put_warn_time(long when) { put(rec::kWarn, format_fixed_number(when)); }

off_t QueueFileWriter::put_recipient(std::string_view address, std::string_view original, std::string_view dsn_orcpt,
                                     int dsn_notify) {
  if (dsn_notify != 0) {
    put_attribute(attr::kDsnNotify, std::to_string(dsn_notify));
    qmgr_flags_ |= qmgr_flag::from_dsn_notify(dsn_notify);
  }
  if (!dsn_orcpt.empty()) put_attribute(attr::kDsnOrcpt, dsn_orcpt);
  put(rec::kOrigRcpt, original);
  return put(rec::kRcpt, address);
}

void QueueFileWriter::begin_content() {
  put(rec::kMessage, {});
  data_offset_ = out_.offset();
}

void QueueFileWriter::put_line(std::string_view line, size_t line_limit) {
  while (line_limit > 0 && line.size() > line_limit) {
    put(rec::kCont, line.substr(0, line_limit));
    line.remove_prefix(line_limit);
  }
  put(rec::kNorm, line);
}

void QueueFileWriter::begin_extracted() { xtra_offset_ = put(rec::kExtracted, {}); }

void QueueFileWriter::put_end() {
  put(rec::kEnd, {});
  ended_ = true;
}

bool QueueFileWriter::flush(std::string* error) {
  if (out_.flush()) return true;
  if (error) *error = path_ + ": " + out_.error();
  return false;
}

bool QueueFileWriter::finish(const Finish& how, std::string* error) {
  if (done_) {
    if (error) *error = path_ + ": already finished or aborted";
    return false;
  }
  std::string why;
  if (!out_.flush()) {
    why = out_.error();
  } else if (!ended_) {
    why = "no end record";
  } else if (size_offset_ >= 0) {
    if (data_offset_ < 0 || xtra_offset_ < data_offset_) {
      why = "no message content or extracted segment";
    } else {
      SizeRecord size;
      size.message_size = static_cast<long>(xtra_offset_ - data_offset_);
      size.data_offset = static_cast<long>(data_offset_);
      size.rcpt_count = rcpt_count_;
      size.qmgr_flags = qmgr_flags_ | how.qmgr_flags;
      size.content_length = how.content_length >= 0 ? how.content_length : size.message_size;
      size.smtputf8 = how.smtputf8;
      std::string e;
      if (!update_record_payload(fd_, size_offset_, rec::kSize, format_size_record(size), &e)) why = e;
    }
  }
  // Postfix's order: the mode that marks the file complete, then one fsync
  // for data and mode.  A reader that finds the mode but not the data (a
  // crash in between) also finds no end record and rejects the file.
  if (why.empty() && ::fchmod(fd_, static_cast<mode_t>(kQueueFileReady | extra_mode_)) != 0)
    why = errno_text("fchmod");
  if (why.empty() && ::fsync(fd_) != 0) why = errno_text("fsync");
  if (why.empty()) {
    done_ = true;
    if (::close(fd_) != 0) why = errno_text("close");
    if (why.empty()) return true;
    ::unlink(path_.c_str());
  } else {
    abort();
  }
  if (error) *error = path_ + ": " + why;
  return false;
}

// ---------------------------------------------------------------- reading

std::unique_ptr<QueueFileReader> QueueFileReader::open(const std::string& path, bool for_update,
                                                       std::string* error) {
  int fd = ::open(path.c_str(), (for_update ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = errno_text("open " + path);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (error) *error = S_ISREG(st.st_mode) ? errno_text("fstat " + path) : path + ": not a regular file";
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<QueueFileReader>(new QueueFileReader(fd, path, st));
}

QueueFileReader::~QueueFileReader() { ::close(fd_); }

bool QueueFileReader::lock(LockMode mode, bool wait, std::string* error) {
  int op = (mode == LockMode::shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);
  for (;;) {
    if (::flock(fd_, op) == 0) return true;
    if (errno != EINTR) break;
  }
  if (error) *error = errno_text("lock " + path_);
  return false;
}

namespace {

// Per-recipient records seen before the R (D, /) record they describe.
struct PendingRecipient {
  std::optional<std::string> original;
  std::string dsn_orcpt;
  int dsn_notify = 0;
};

}  // namespace

bool QueueFileReader::read_envelope(Envelope* env, std::string* error) {
  *env = Envelope{};
  RecordReader in(fd_, path_);
  Record r;
  PendingRecipient pending;
  bool extracted = false;
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  for (bool first = true;; first = false) {
    ReadStatus status = in.next(r);
    if (status == ReadStatus::error) return fail(in.error());
    if (status == ReadStatus::eof) return fail(path_ + ": missing end record");
    if (first && r.type != rec::kSize) return fail(path_ + ": first record is not a size record");
    if (!in_set(extracted ? rec::kExtractTypes : rec::kEnvelopeTypes, r.type))
      return fail(path_ + ": unexpected record type " + type_text(r.type) +
                  (extracted ? " in extracted segment" : " in envelope"));
    switch (r.type) {
      case rec::kEnd:
        return true;
      case rec::kMessage: {
        // Skip the content: the extracted segment starts where the size
        // record says, whatever pointer records the content holds.
        const SizeRecord& size = *env->size;
        if (size.fields < 2 || size.data_offset <= 0 || size.message_size <= 0 ||
            size.data_offset >= st_.st_size || size.message_size >= st_.st_size - size.data_offset)
          return fail(path_ + ": invalid size record: " + format_size_record(size));
        env->data_offset = size.data_offset;
        in.seek(static_cast<off_t>(size.data_offset + size.message_size));
        if (in.next(r) != ReadStatus::ok || r.type != rec::kExtracted)
          return fail(path_ + ": no extracted segment at offset " +
                      std::to_string(size.data_offset + size.message_size));
        env->xtra_offset = r.offset;
        extracted = true;
        break;
      }
      case rec::kSize: {
        if (env->size) return fail(path_ + ": file contains multiple size records");
        auto size = parse_size_record(r.data);
        if (!size) return fail(path_ + ": invalid size record: " + r.data);
        env->size = *size;
        break;
      }
      case rec::kTime:
        if (!env->arrival) {
          auto tv = parse_time_record(r.data);
          if (!tv) return fail(path_ + ": invalid time record: " + r.data);
          env->arrival = *tv;
        }
        break;
      case rec::kFullName:
        if (!env->fullname) env->fullname = r.data;
        break;
      case rec::kFrom:
        if (!env->sender) env->sender = r.data;
        break;
      case rec::kFilter:  // rec::kCont outside the content
        env->filter = r.data;
        break;
      case rec::kInspector:
        env->inspector = r.data;
        break;
      case rec::kRedirect:
        env->redirect = r.data;
        break;
      case rec::kVerp:
        if (!env->verp) env->verp = r.data;
        break;
      case rec::kErrorsTo:
        env->errors_to = r.data;
        break;
      case rec::kReturnReceipt:
        env->return_receipt = r.data;
        break;
      case rec::kWarn:
        if (!env->warn_time) {
          auto when = parse_number(r.data);
          if (!when) return fail(path_ + ": invalid warning time record: " + r.data);
          env->warn_time = *when;
          env->warn_offset = r.offset;
        }
        break;
      case rec::kOrigRcpt:
        pending.original = r.data;
        break;
      case rec::kDsnOrcpt:
        pending.dsn_orcpt = r.data;
        break;
      case rec::kDsnNotify:
        pending.dsn_notify = static_cast<int>(parse_number(r.data).value_or(0));
        break;
      case rec::kRcpt:
      case rec::kDone:
      case rec::kCanceled: {
        Recipient rcpt;
        rcpt.address = r.data;
        rcpt.original = std::move(pending.original);
        rcpt.dsn_orcpt = std::move(pending.dsn_orcpt);
        rcpt.dsn_notify = pending.dsn_notify;
        rcpt.status = r.type;
        rcpt.offset = r.offset;
        rcpt.extracted = extracted;
        env->recipients.push_back(std::move(rcpt));
        pending = PendingRecipient{};
        break;
      }
      case rec::kAttr: {
        std::string_view name, value;
        if (!split_attribute(r.data, &name, &value))
          return fail(path_ + ": malformed attribute: " + r.data);
        char pseudo = attribute_record_type(name);
        if (pseudo == rec::kDsnOrcpt) {
          pending.dsn_orcpt = std::string(value);
          break;
        }
        if (pseudo == rec::kDsnNotify) {
          auto n = parse_number(value);
          if (!n || *n <= 0 || *n > 15) return fail(path_ + ": malformed DSN notify flags: " + r.data);
          pending.dsn_notify = static_cast<int>(*n);
          break;
        }
        if (pseudo == rec::kCreateTime && !env->create_time) env->create_time = parse_number(value);
        if (pseudo == rec::kDsnEnvid && !env->dsn_envid) env->dsn_envid = std::string(value);
        if (pseudo == rec::kDsnRet && env->dsn_ret == 0)
          env->dsn_ret = static_cast<int>(parse_number(value).value_or(0));
        env->attributes.push_back(Attribute{std::string(name), std::string(value), r.offset});
        break;
      }
      default:  // K (killed), P (priority), raw pseudo types: nothing to keep
        break;
    }
  }
}

bool QueueFileReader::read_content(const Envelope& env,
                                   const std::function<bool(char type, std::string_view text)>& visit,
                                   std::string* error) {
  if (env.data_offset <= 0) {
    if (error) *error = path_ + ": no content offset (read the envelope first)";
    return false;
  }
  RecordReader in(fd_, path_);
  in.seek(env.data_offset);
  Record r;
  for (;;) {
    ReadStatus status = in.next(r);
    if (status != ReadStatus::ok) {
      if (error) *error = status == ReadStatus::error ? in.error() : path_ + ": missing extracted segment";
      return false;
    }
    if (r.type == rec::kExtracted) return true;
    if (r.type != rec::kNorm && r.type != rec::kCont) {
      if (error) *error = path_ + ": unexpected record type " + type_text(r.type) + " in message content";
      return false;
    }
    if (!visit(r.type, r.data)) return true;
  }
}

bool QueueFileReader::read_lines(const Envelope& env, std::vector<std::string>* lines, std::string* error) {
  lines->clear();
  std::string partial;
  bool open_line = false;
  bool ok = read_content(
      env,
      [&](char type, std::string_view text) {
        partial.append(text);
        open_line = type == rec::kCont;
        if (!open_line) {
          lines->push_back(std::move(partial));
          partial.clear();
        }
        return true;
      },
      error);
  if (ok && open_line) lines->push_back(std::move(partial));  // unterminated last line
  return ok;
}

bool QueueFileReader::mark_done(const Recipient& recipient, std::string* error) {
  std::string why;
  if (recipient.offset < 0 || !update_record_type(fd_, recipient.offset, rec::kDone, "R", &why)) {
    if (error) *error = path_ + ": " + (why.empty() ? "recipient has no offset" : why);
    return false;
  }
  return true;
}

bool QueueFileReader::kill_attribute(off_t offset, std::string* error) {
  std::string why;
  if (offset < 0 || !update_record_type(fd_, offset, rec::kKill, std::string_view(&rec::kAttr, 1), &why)) {
    if (error) *error = path_ + ": " + (why.empty() ? "attribute has no offset" : why);
    return false;
  }
  return true;
}

bool QueueFileReader::update_warn_time(const Envelope& env, long when, std::string* error) {
  std::string why;
  if (env.warn_offset < 0 ||
      !update_record_payload(fd_, env.warn_offset, rec::kWarn, format_fixed_number(when), &why)) {
    if (error) *error = path_ + ": " + (why.empty() ? "no warning time record" : why);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- whole files

namespace {

// Postfix's is_header(): a name of printable characters other than ':' and
// blanks, optional blanks, then ':'.
bool is_header_line(std::string_view line) {
  size_t i = 0;
  while (i < line.size()) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == ':' || c <= ' ' || c >= 0x7f) break;
    ++i;
  }
  if (i == 0) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  return i < line.size() && line[i] == ':';
}

}  // namespace

size_t count_header_lines(const std::vector<std::string>& lines) {
  size_t n = 0;
  for (; n < lines.size(); ++n) {
    const std::string& line = lines[n];
    bool continuation = n > 0 && !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (!continuation && !is_header_line(line)) break;
  }
  return n;
}

bool load_queue_file(const std::string& path, QueueMessage* message, std::string* error) {
  auto reader = QueueFileReader::open(path, false, error);
  if (!reader) return false;
  if (!reader->read_envelope(&message->envelope, error)) return false;
  if (!reader->read_lines(message->envelope, &message->lines, error)) return false;
  message->header_lines = count_header_lines(message->lines);
  return true;
}

}  // namespace mta::queue
