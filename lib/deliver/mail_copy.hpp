// mail_copy.hpp: copying a queued message into a mailbox, a maildir
// file or a command's input, as Postfix's mail_copy(3).
//
// Optionally prepended, in this order: the "From sender  date" envelope
// line (mbox), Return-Path: <sender>, X-Original-To: <original recipient>
// (when there is one), Delivered-To: <recipient>.  The content records
// become lines ending in "\n"; a line that starts with "From " gets a '>'
// in front (mbox quoting; a line continued over several records is quoted
// once, at its start); a message without a final newline gets one; mbox
// deliveries end with an empty line.  Files are fsync'd before success is
// reported, and on failure cut back to their previous length, so that a
// failed delivery leaves no partial message behind.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <string>
#include <string_view>

#include "deliver/status_reporter.hpp"

namespace mta::deliver {

// mail_copy.h flags.
inline constexpr int kCopyQuote = 1 << 0;       // "From " lines get a '>'
inline constexpr int kCopyToFile = 1 << 1;      // fsync, truncate on error
inline constexpr int kCopyFrom = 1 << 2;        // the "From " envelope line
inline constexpr int kCopyDelivered = 1 << 3;   // Delivered-To:
inline constexpr int kCopyReturnPath = 1 << 4;  // Return-Path:
inline constexpr int kCopyBlank = 1 << 6;       // an empty line at the end
inline constexpr int kCopyOrigRcpt = 1 << 7;    // X-Original-To:
inline constexpr int kCopyMbox =
    kCopyFrom | kCopyQuote | kCopyToFile | kCopyDelivered | kCopyReturnPath | kCopyBlank | kCopyOrigRcpt;

// Outcome bits (MAIL_COPY_STAT_*).
inline constexpr int kCopyStatCorrupt = 1 << 0;  // the queue file is damaged (now marked corrupt)
inline constexpr int kCopyStatRead = 1 << 1;
inline constexpr int kCopyStatWrite = 1 << 2;

struct CopyEnvelope {
  std::string sender;      // envelope sender; "" is the null sender
  std::string orig_rcpt;   // X-Original-To (none when empty)
  std::string delivered;   // Delivered-To
  time_t now = 0;          // for the "From " line
};

// The lines put in front of the message for these flags (pure).
std::string copy_prolog(const CopyEnvelope& envelope, int flags);

// Turns content records into output bytes (pure): feed() each N or L
// record, then finish().
class ContentWriter {
 public:
  explicit ContentWriter(int flags) : flags_(flags) {}
  void feed(char type, std::string_view text, std::string& out);
  void finish(std::string& out);

 private:
  int flags_;
  bool at_line_start_ = true;
};

// mail_copy() hands the content to its sink in bulks of about kCopyChunk
// bytes (a FileSink writes such a bulk as it is, without copying it).
inline constexpr size_t kCopyChunk = 64 * 1024;
inline constexpr size_t kCopySlack = 4 * 1024;

// Where a copy goes.  write() and finish() return false with errno set.
class CopySink {
 public:
  virtual ~CopySink() = default;
  virtual bool write(std::string_view bytes) = 0;
  // Flushes, fsyncs (files) and closes.
  virtual bool finish() = 0;
  // After a failure: undo what this copy wrote (files), and close.
  virtual void abandon() {}
};

// An open file (mailbox, maildir file, /file/name): appended to.  A
// regular file is fsync'd, and cut back to its length at open on failure.
class FileSink : public CopySink {
 public:
  FileSink(int fd, bool regular_file);
  ~FileSink() override;
  bool write(std::string_view bytes) override;
  bool finish() override;
  void abandon() override;
  off_t start_offset() const { return start_; }

 private:
  int fd_;
  bool regular_;
  off_t start_ = 0;
  std::string buffer_;
  bool flush_buffer();
  bool write_all(std::string_view bytes);
};

struct CopyResult {
  int status = 0;  // kCopyStat* bits; 0 is success
  int error = 0;   // errno of the failure
  Dsn why;         // set on failure
};

// Copies the message content of the queue file (records from data_offset
// to the extracted segment) into SINK with the prolog for FLAGS, then
// finishes the sink.  A damaged queue file is marked corrupt (mode 0400),
// as Postfix's mark_corrupt, so that qmgr moves it aside.
CopyResult mail_copy(int queue_fd, const std::string& queue_path, off_t data_offset, const CopyEnvelope& envelope,
                     int flags, CopySink& sink);

// Postfix's quote_822_local(): the address with its local part quoted
// when RFC 822 needs it.
std::string quote_822_local(std::string_view address);

}  // namespace mta::deliver
