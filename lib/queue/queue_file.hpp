// queue_file.hpp: writing a queue file the way cleanup does, and reading one
// the way qmgr and the delivery agents do, byte-compatible with Postfix 3.7.
//
// A queue file is three segments of records (record.hpp):
//
//   envelope   C size (fixed width, filled in last), T arrival time,
//              A create_time=..., F full name, A name=value attributes,
//              S sender, W warning time, then per recipient
//              [A notify_flags=N] [A dsn_orig_rcpt=TYPE;ADDR] O original R recipient
//   content    M, then the message as text records: N a line, L a piece of a
//              longer line that the next record continues
//   extracted  X, then information from the headers (e errors-to,
//              r return-receipt, more recipients, attributes), E end
//
// QueueFileWriter creates the file as Postfix's mail_queue_enter: a
// temporary name ("incoming/USEC.PID"), then renamed to the queue ID made
// from the time and the file's inode.  The file stays mode 0600 while it is
// written; finish() fills in the size record, sets mode 0700 (the mark of a
// complete file: Postfix readers skip files without it), then fsyncs.  A
// writer destroyed before finish() removes its file.  Errors stick: put*()
// never fail, finish() reports the first error.
//
// QueueFileReader reads a file that cleanup (ours or Postfix's) wrote.  It
// follows pointer records and skips padding; it checks that every record is
// of a type its segment allows and that the file ends with E, so a truncated
// or damaged file is an error with a message, never a crash.  Recipients
// come with the offset of their record, so that mark_done() can turn R into
// D in place; update_warn_time() rewrites W in place.
#pragma once

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queue_dirs.hpp"
#include "queue/record.hpp"

namespace mta::queue {

struct Attribute {
  std::string name;
  std::string value;
  off_t offset = -1;
};

struct Recipient {
  std::string address;
  std::optional<std::string> original;  // the O record before it
  std::string dsn_orcpt;                // A dsn_orig_rcpt (e.g. "rfc822;a@b"), "" when none
  int dsn_notify = 0;                   // A notify_flags (DSN NOTIFY mask), 0 when none
  char status = rec::kRcpt;             // kRcpt (to do), kDone, kCanceled
  off_t offset = -1;                    // of the R (D, /) record
  bool extracted = false;               // from the extracted segment
  bool pending() const { return status == rec::kRcpt; }
};

struct Envelope {
  std::optional<SizeRecord> size;
  std::optional<timeval> arrival;        // T
  std::optional<long> create_time;       // A create_time
  std::optional<std::string> sender;     // S ("" is the null sender)
  std::optional<std::string> fullname;   // F
  std::optional<long> warn_time;         // W
  off_t warn_offset = -1;
  std::optional<std::string> filter;     // L in the envelope: content_filter
  std::optional<std::string> inspector;  // I
  std::optional<std::string> redirect;   // >
  std::optional<std::string> verp;       // V
  std::optional<std::string> errors_to;       // e
  std::optional<std::string> return_receipt;  // r
  std::optional<std::string> dsn_envid;  // A envelope_id
  int dsn_ret = 0;                       // A ret_flags
  // Every A record that is not about one recipient, from both segments, in
  // file order (create_time, envelope_id and ret_flags included).
  std::vector<Attribute> attributes;
  // Both segments, in file order.
  std::vector<Recipient> recipients;
  off_t data_offset = -1;  // first content record
  off_t xtra_offset = -1;  // the X record

  // The first attribute of that name.
  const Attribute* find_attribute(std::string_view name) const;
  size_t pending_recipients() const;
};

struct CreateOptions {
  std::string_view queue = queue_name::kIncoming;
  unsigned extra_mode = 0;     // or'ed into 0600 while written and 0700 when done
  bool long_queue_id = false;  // enable_long_queue_ids
};

class QueueFileWriter {
 public:
  // Makes a new file in the queue; nullptr with a message when the queue
  // directory cannot take one.
  static std::unique_ptr<QueueFileWriter> create(const QueueLayout& layout, const CreateOptions& options,
                                                 std::string* error);
  ~QueueFileWriter();
  QueueFileWriter(const QueueFileWriter&) = delete;
  QueueFileWriter& operator=(const QueueFileWriter&) = delete;

  const std::string& id() const { return id_; }
  const std::string& path() const { return path_; }
  const timeval& create_time() const { return created_; }  // the time in the ID
  int fd() const { return fd_; }

  // Any record; returns its offset.
  off_t put(char type, std::string_view payload);
  void put_size_placeholder();  // first: a size record of zeros, filled in by finish()
  void put_time(const timeval& arrival);
  void put_attribute(std::string_view name, std::string_view value);
  void put_sender(std::string_view sender);
  void put_warn_time(long when);
  // [A notify_flags] [A dsn_orig_rcpt] O R, as cleanup writes a recipient;
  // returns the offset of the R record.  The DSN notify bits go into the
  // size record's qmgr flags.
  off_t put_recipient(std::string_view address, std::string_view original, std::string_view dsn_orcpt = {},
                      int dsn_notify = 0);
  void begin_content();  // M
  // One line: N, or L records of LINE_LIMIT bytes and an N with the rest
  // (0: no limit).
  void put_line(std::string_view line, size_t line_limit = 2048);
  void begin_extracted();  // X
  void put_end();          // E

  off_t offset() const { return out_.offset(); }
  off_t data_offset() const { return data_offset_; }
  off_t xtra_offset() const { return xtra_offset_; }
  long recipient_count() const { return rcpt_count_; }

  struct Finish {
    long qmgr_flags = 0;        // or'ed with the DSN and mixed-recipient bits seen
    long content_length = -1;   // -1: the message segment length
    long smtputf8 = 0;
  };
  // Fills in the size record (when there is one), sets the complete mode,
  // fsyncs and closes.  False with the first error of the whole write; the
  // file is then removed.
  bool finish(const Finish& how, std::string* error);
  bool finish(std::string* error) { return finish(Finish{}, error); }
  // Removes the file (also what the destructor does before finish()).
  void abort();
  // Writes what is buffered without marking the file complete (cleanup
  // lets the bounce service read a message it refuses); false with the
  // first error of the whole write.
  bool flush(std::string* error);
  bool ended() const { return ended_; }

 private:
  QueueFileWriter(int fd, std::string id, std::string path, timeval created, unsigned extra_mode);
  void note_record(char type, std::string_view payload);

  int fd_;
  std::string id_;
  std::string path_;
  timeval created_;
  unsigned extra_mode_;
  RecordWriter out_;
  bool done_ = false;
  off_t size_offset_ = -1;
  off_t data_offset_ = -1;
  off_t xtra_offset_ = -1;
  long rcpt_count_ = 0;
  long qmgr_flags_ = 0;
  bool in_envelope_ = true;
  bool in_recipients_ = false;
  bool ended_ = false;
};

enum class LockMode { shared, exclusive };

class QueueFileReader {
 public:
  // Opens PATH read-only, or for update (mark_done, update_warn_time).
  static std::unique_ptr<QueueFileReader> open(const std::string& path, bool for_update,
                                               std::string* error);
  ~QueueFileReader();
  QueueFileReader(const QueueFileReader&) = delete;
  QueueFileReader& operator=(const QueueFileReader&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const struct stat& file_stat() const { return st_; }

  // flock(2), as Postfix's internal queue file lock; WAIT false fails at
  // once with EWOULDBLOCK when another process holds it.
  bool lock(LockMode mode, bool wait, std::string* error);

  // Reads the envelope and extracted segments (skipping the content with
  // the size record's offsets).  The file must start with a size record and
  // end with E.
  bool read_envelope(Envelope* envelope, std::string* error);
  // Calls VISIT for each text record (N or L) of the content, in order;
  // VISIT returns false to stop early.
  bool read_content(const Envelope& envelope,
                    const std::function<bool(char type, std::string_view text)>& visit,
                    std::string* error);
  // The content as lines (L pieces joined to their N).
  bool read_lines(const Envelope& envelope, std::vector<std::string>* lines, std::string* error);

  // R -> D at the recipient's offset (checked to be an R first).
  bool mark_done(const Recipient& recipient, std::string* error);
  bool update_warn_time(const Envelope& envelope, long when, std::string* error);
  // A -> K: the attribute record at OFFSET no longer counts (Postfix's
  // qmgr_message_kill_record()).  Written, not synced, as Postfix does.
  bool kill_attribute(off_t offset, std::string* error);

 private:
  QueueFileReader(int fd, std::string path, const struct stat& st) : fd_(fd), path_(std::move(path)), st_(st) {}
  int fd_;
  std::string path_;
  struct stat st_;
};

// A whole message, for tools and tests.
struct QueueMessage {
  Envelope envelope;
  std::vector<std::string> lines;
  size_t header_lines = 0;  // the primary header: lines[0..header_lines)
};
bool load_queue_file(const std::string& path, QueueMessage* message, std::string* error);
// How many of LINES form the primary header: header lines ("Name:") and
// their continuations, up to the first other line (the blank line is body).
size_t count_header_lines(const std::vector<std::string>& lines);

}  // namespace mta::queue
