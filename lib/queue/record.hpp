// record.hpp: Postfix's typed records, the unit of every queue file.
//
// A record is one type byte, the payload length in base 128 (low seven bits
// first, the high bit set on every byte but the last), then the payload:
// 'N' 5 "hello" is the bytes 4E 05 68 65 6C 6C 6F.  The types are Postfix
// 3.7's (rec_type.h); their postcat names come with them.
//
// RecordReader decodes a file or a buffer and fails with a message, never a
// crash, on a truncated or malformed record.  As Postfix's rec_get(), it can
// follow pointer records ('p', used when cleanup edits a file in place: the
// stream continues at the offset the pointer names; 0 means "no jump") and
// skip padding ('w'); a run of more than 10000 backward jumps is an error, so
// a pointer loop cannot hang a reader.  Every record carries the file offset
// where it actually lies, so that a recipient found through a pointer is
// still marked done in the right place.
//
// RecordWriter encodes records at a tracked offset (the first error sticks
// and is reported once, at flush).  update_record_type() and
// update_record_payload() change a record in place, as qmgr does to mark a
// recipient done ('R' becomes 'D') or to move the warning time ('W'); they
// check what is there first and never change a record's length.
//
// The size record ('C', first in every queue file that cleanup writes) and
// the warning-time and pointer records are fixed width so that they can be
// updated in place: "%15ld %15ld %15ld %15ld %15ld %15ld" (message segment
// length = extracted-segment offset - data offset, data offset, recipient
// count, qmgr flags, content length, SMTPUTF8 flags) and "%15ld".
#pragma once

#include <sys/time.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace mta::queue {

namespace rec {
inline constexpr char kSize = 'C';        // first record, written by cleanup
inline constexpr char kTime = 'T';        // arrival time "sec usec"
inline constexpr char kCreateTime = 'c';  // pseudo type of attribute create_time
inline constexpr char kFullName = 'F';    // sender full name
inline constexpr char kInspector = 'I';   // content inspector transport
inline constexpr char kFilter = 'L';      // content filter (envelope; same byte as kCont)
inline constexpr char kFrom = 'S';        // envelope sender
inline constexpr char kDone = 'D';        // delivered recipient
inline constexpr char kRcpt = 'R';        // recipient still to do
inline constexpr char kOrigRcpt = 'O';    // original recipient of the next R
inline constexpr char kCanceled = '/';    // canceled recipient
inline constexpr char kWarn = 'W';        // time of the next delay warning
inline constexpr char kAttr = 'A';        // name=value
inline constexpr char kKill = 'K';        // killed record
inline constexpr char kRedirect = '>';    // redirect target
inline constexpr char kFlags = 'f';       // cleanup flags (stream only)
inline constexpr char kDelay = 'd';       // cleanup delay (stream only)
inline constexpr char kMessage = 'M';     // start of content
inline constexpr char kCont = 'L';        // text without line end (continues)
inline constexpr char kNorm = 'N';        // text line
inline constexpr char kPadding = 'w';     // padding (was: deleted text)
inline constexpr char kExtracted = 'X';   // start of the extracted segment
inline constexpr char kReturnReceipt = 'r';
inline constexpr char kErrorsTo = 'e';
inline constexpr char kPriority = 'P';
inline constexpr char kPointer = 'p';     // "%15ld" offset; 0 = no jump
inline constexpr char kVerp = 'V';        // VERP delimiters
inline constexpr char kDsnRet = '<';      // pseudo type of attribute ret_flags
inline constexpr char kDsnEnvid = 'i';    // pseudo type of attribute envelope_id
inline constexpr char kDsnOrcpt = 'o';    // pseudo type of attribute dsn_orig_rcpt
inline constexpr char kDsnNotify = 'n';   // pseudo type of attribute notify_flags
inline constexpr char kMilterCount = 'm';  // stream only
inline constexpr char kEnd = 'E';         // last record

// The record types each segment of a queue file may hold; the first one ends
// the segment (Postfix's REC_TYPE_ENVELOPE, _CONTENT, _EXTRACT).
inline constexpr std::string_view kEnvelopeTypes = "MCTcFILSDRO/WVA>K<ion";
inline constexpr std::string_view kContentTypes = "XLNw";
inline constexpr std::string_view kExtractTypes = "EDRO/PreAFIL>Kon";
// What postdrop accepts from sendmail (REC_TYPE_POST_*).
inline constexpr std::string_view kPostEnvelopeTypes = "MFSRVAin";
inline constexpr std::string_view kPostContentTypes = "XLN";
inline constexpr std::string_view kPostExtractTypes = "EAR";
}  // namespace rec

// Attribute names with a pseudo record type (rec_attr_map) and others that
// the queue code reads.
namespace attr {
inline constexpr std::string_view kCreateTime = "create_time";
inline constexpr std::string_view kDsnOrcpt = "dsn_orig_rcpt";
inline constexpr std::string_view kDsnNotify = "notify_flags";
inline constexpr std::string_view kDsnEnvid = "envelope_id";
inline constexpr std::string_view kDsnRet = "ret_flags";
inline constexpr std::string_view kRewriteContext = "rewrite_context";
inline constexpr std::string_view kLogIdent = "log_ident";
inline constexpr std::string_view kTraceFlags = "trace_flags";
inline constexpr std::string_view kEncoding = "encoding";
}  // namespace attr

// The pseudo record type of an attribute name, or 0 (rec_attr_map).
char attribute_record_type(std::string_view name);
// The name postcat prints for a record type ("unknown_record_type" if none).
std::string_view record_type_name(int type);

// qmgr flags in the size record (qmgr_user.h): the DSN NOTIFY bits of all
// recipients, shifted left by one, and "recipients are mixed with other
// records".
namespace qmgr_flag {
inline constexpr long kMixedRcptOther = 1 << 0;
inline constexpr long kNotifyNever = 1 << 1;
inline constexpr long kNotifySuccess = 1 << 2;
inline constexpr long kNotifyFailure = 1 << 3;
inline constexpr long kNotifyDelay = 1 << 4;
inline constexpr long kAll = kMixedRcptOther | kNotifyNever | kNotifySuccess | kNotifyFailure | kNotifyDelay;
// From a DSN notify mask (NEVER=1, SUCCESS=2, FAILURE=4, DELAY=8).
inline constexpr long from_dsn_notify(int notify) { return static_cast<long>(notify) << 1; }
}  // namespace qmgr_flag

struct SizeRecord {
  long message_size = 0;    // extracted-segment offset - data offset
  long data_offset = 0;     // offset of the first content record
  long rcpt_count = 0;
  long qmgr_flags = 0;
  long content_length = 0;  // 0 in old files: then message_size
  long smtputf8 = 0;
  int fields = 0;           // how many fields the record had (1..6)
};
// Always six fields, each "%15ld".
std::string format_size_record(const SizeRecord& size);
// Accepts 1 to 6 numeric fields (older Postfix wrote fewer); nullopt when
// the text is not numbers separated by blanks.
std::optional<SizeRecord> parse_size_record(std::string_view text);

std::string format_time_record(const timeval& tv);  // "%ld %ld"
// "sec usec" or "sec" (Postfix < 2.3 wrote seconds only).
std::optional<timeval> parse_time_record(std::string_view text);
std::string format_fixed_number(long value);  // "%15ld": W and p records
// A number with optional leading and trailing blanks.
std::optional<long> parse_number(std::string_view text);

// Splits "name=value" as Postfix's split_nameval: blanks around the name and
// the value are dropped; false when there is no '=' or the name is empty.
bool split_attribute(std::string_view text, std::string_view* name, std::string_view* value);

// Encoding.
size_t record_header_size(size_t payload_size);
void append_record(std::string& out, char type, std::string_view payload);
std::string encode_record(char type, std::string_view payload);

struct Record {
  char type = 0;
  std::string data;
  off_t offset = -1;  // where the type byte lies in the file
};

// A record whose data is read in place: valid until the reader's next call.
struct RecordView {
  char type = 0;
  std::string_view data;
  off_t offset = -1;
};

enum class ReadStatus { ok, eof, error };

class RecordReader {
 public:
  struct Options {
    size_t max_length = 0;        // 0: any length; else longer records are errors
    bool follow_pointers = true;  // 'p' records move the read position
    bool skip_padding = true;     // 'w' records are not returned
  };

  // Reads from FD (not owned; read with pread from the current offset, which
  // starts at 0).  NAME prefixes error messages, as a path would.
  RecordReader(int fd, std::string name, Options options);
  RecordReader(int fd, std::string name) : RecordReader(fd, std::move(name), Options{}) {}
  // Reads from a buffer.
  static RecordReader from_buffer(std::string data, std::string name, Options options);
  static RecordReader from_buffer(std::string data, std::string name = "buffer") {
    return from_buffer(std::move(data), std::move(name), Options{});
  }

  ReadStatus next(Record& record);
  // The same without a copy of the data when it lies in the read buffer
  // (a delivery agent reads a whole message this way).
  ReadStatus next(RecordView& record);
  // After ReadStatus::error: what went wrong, e.g. "FILE: unexpected EOF in
  // data, record type 78 length 100".
  const std::string& error() const { return error_; }

  off_t offset() const { return pos_; }  // where the next record is read
  void seek(off_t offset) { pos_ = offset; }
  const std::string& name() const { return name_; }
  void set_options(const Options& options) { options_ = options; }
  const Options& options() const { return options_; }

 private:
  RecordReader() = default;
  // Makes the byte at POS available; false at the end of the input.
  bool fill(off_t pos);
  int getc();  // -1 at the end
  ReadStatus fail(std::string message);
  bool follow_pointer(std::string_view payload);
  bool next_in_buffer(RecordView& record);

  int fd_ = -1;
  std::string name_;
  Options options_;
  std::string buf_;       // bytes of the input from buf_start_ (the first buf_len_)
  size_t buf_len_ = 0;
  off_t buf_start_ = 0;
  size_t chunk_ = 0;      // the size of the last read (see fill())
  bool memory_ = false;   // buf_ is the whole input
  off_t pos_ = 0;
  std::string error_;
  std::string spill_;     // a record's data that lay across reads (next(RecordView&))
  int reverse_jumps_ = 0;
  off_t last_jump_ = 0;
};

class RecordWriter {
 public:
  // Writes to FD (not owned) from OFFSET on, with pwrite, buffered.
  explicit RecordWriter(int fd, off_t offset = 0) : fd_(fd), offset_(offset) {}
  ~RecordWriter() = default;
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Returns the offset of the new record.
  off_t put(char type, std::string_view payload);
  off_t offset() const { return offset_ + static_cast<off_t>(pending_.size()); }
  // Writes what is buffered; false (and error()) after any failure so far.
  bool flush();
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  int fd_;
  off_t offset_;  // file offset of pending_[0]
  std::string pending_;
  std::string error_;
};

// Writes a whole buffer at OFFSET; false with errno set on failure.
bool pwrite_all(int fd, const void* data, size_t size, off_t offset);

// Changes the type byte of the record at OFFSET to NEW_TYPE, after checking
// that it is one of EXPECTED (empty: anything).  False with a message when
// the byte is not one of those, or on an I/O error.
bool update_record_type(int fd, off_t offset, char new_type, std::string_view expected,
                        std::string* error);
// Rewrites the payload of the TYPE record at OFFSET; the record there must
// have that type and exactly PAYLOAD's length.
bool update_record_payload(int fd, off_t offset, char type, std::string_view payload,
                           std::string* error);

}  // namespace mta::queue
