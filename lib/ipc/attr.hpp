// attr.hpp: Postfix's internal attribute-list protocol, on the wire.
//
// This header is the one place that documents how our processes talk to
// each other and to real Postfix 3.7 processes over the sockets under
// $queue_directory/private and public.  Everything here was checked against
// the real Postfix 3.7 (libpostfix-util's attr_print0/attr_scan0 and
// friends, and the real daemons); tests/unit/ipc_test.cpp holds the bytes.
//
// 1. ATTRIBUTE LISTS
//
// A message is a list of (name, value) attributes followed by a list
// terminator.  Every value travels as a string; the types below only say
// how a program converts it.  Three encodings exist:
//
//   zero ("0", attr_print0/attr_scan0; the default of every internal
//   unix-domain service):
//       attr-list  = (attr | group)* NUL
//       attr       = name NUL value NUL
//       group      = "{" NUL attr* "}" NUL
//     e.g. {request=rewrite, rule=local, address=user} is
//       "request\0rewrite\0rule\0local\0address\0user\0\0"
//
//   plain (attr_print_plain/attr_scan_plain; policy services, anvil):
//       attr-list  = (attr | group)* LF
//       attr       = name "=" value LF      (name: no "=", LF, NUL;
//                                            value: no LF, NUL)
//       group      = "{" NUL LF attr* "}" NUL LF
//     (Postfix 3.7 writes the group delimiters with their C string NUL,
//     "{\0\n"; readers take "{" or "{\0" before the LF.)
//     e.g. "request=smtpd_access_policy\nsender=a@b\n\n"
//
//   base64 ("64", attr_print64/attr_scan64; nothing in a stock 3.7
//   configuration uses it, provided for completeness):
//       attr       = b64(name) ":" b64(value) LF,  terminator LF,
//       group      = b64("{") LF ... b64("}") LF
//
// Value types (Postfix's ATTR_TYPE_*):
//   STR   a string, sent as is (no NUL; plain form: no LF).
//   INT   an unsigned 32-bit number in decimal, "%u": a C int of -1 goes
//         out as "4294967295" and comes back as -1.
//   LONG  an unsigned 64-bit number in decimal, "%lu" (LP64).
//   DATA  bytes, sent as base64 (RFC 4648, with padding) in the zero and
//         plain forms; in the base64 form exactly like a string.
//   HASH  a table of string attributes sent as a group.  A reader that
//         wants a table and finds no group instead takes every attribute up
//         to the list terminator (so a table is the last thing it asks for).
//         At most 1024 entries (ATTR_HASH_LIMIT); the first instance of a
//         name wins.
//   FUNC  a sub-structure printed inline by a helper (DSN, recipient,
//         message statistics): no delimiters, its attributes simply join
//         the list.  Our schemas call this embed().
//   STREQ (reading only) an attribute whose value must equal a constant:
//         how protocol announcements and request names are checked.
//
// 2. READING RULES (what attr_scan does, and what we do)
//
// A reader asks for attributes by name, in order.  Attributes it did not
// ask for are skipped, unless it is strict (ATTR_FLAG_EXTRA), when any of
// them is an error ("unexpected attribute NAME from PATH (expecting: X)");
// Postfix's daemons read strictly, and so do we by default.  A list that
// ends before a wanted attribute is an error ("missing attribute NAME in
// input from PATH").  After the last wanted attribute the reader consumes
// the rest of the list through its terminator, unless told "more"
// (ATTR_FLAG_MORE): then the same list continues in the next read, which is
// how a server reads "request" first and the rest of the list according to
// it.  attr_scan_more() looks at the next byte: a terminator (consumed)
// ends a sequence of lists, anything else means one more list follows;
// showq's listing is built that way.
//
// Errors (all end the conversation; the stream's position is then
// undefined):
//   premature/unexpected end-of-input  the peer closed (before a string, or
//                                      inside one);
//   timeout                            the peer was too slow (told apart
//                                      from EOF); read errors likewise;
//   closed                              EOF before the first byte of a
//                                      list: the peer hung up between
//                                      requests, which is not a failure;
//   malformed numerical/base64 data    INT/LONG must be decimal digits
//                                      only (Postfix's sscanf is more
//                                      lenient, no Postfix writer needs it);
//   unexpected, missing, mismatch      see above; mismatch is a STREQ
//                                      value that differs ("unexpected
//                                      protocol X from PATH (expected: Y)");
//   too long                           a name or value above
//                                      Limits::max_string bytes.  Postfix
//                                      has no such limit (its attr_scan
//                                      grows buffers without bound); ours
//                                      protects memory and is far above any
//                                      real attribute.
//   too many                           a table above 1024 entries.
//
// 3. CONNECTIONS (see service.hpp and server.hpp)
//
// A client connects to the unix stream socket $queue_directory/CLASS/NAME
// (CLASS is "private" or "public").  Postfix's mail_connect_wait() retries
// a failed connect 10 times, 10 seconds apart, with "connect #N to
// subsystem CLASS/NAME: ERROR" warnings, then gives up (fatal in Postfix).
// Every read and write on the connection is limited by ipc_timeout (3600s).
// Persistent clients (rewrite, resolve) drop the connection after ipc_idle
// (5s) idle or ipc_ttl (1000s) of age and reconnect on the next request;
// when a request fails they warn "problem talking to service NAME: ...",
// sleep a second, reconnect and try again.  Requests are not pipelined:
// a Postfix server reads the next request only after it has answered the
// previous one (a second request already sitting in its buffer is not
// seen), so a client waits for each reply.
//
// Postfix 3.7 servers announce their protocol on accept, before the client
// says anything, with one list {protocol=NAME} in the service's form (zero,
// except anvil); the client reads it strictly (STREQ) and gives up on
// anything else.
// Postfix 3.7, service by service (observed on the real daemons):
//
//   socket                    daemon          announcement / exchange
//   private/rewrite           trivial-rewrite trivial_rewrite_protocol
//       request: {request=rewrite, rule=local|remote, address=ADDR}
//         reply: {flags=0, address=RESULT}
//       request: {request=resolve|verify, sender=ADDR, address=ADDR}
//         reply: {flags=0, transport, nexthop, recipient, flags=CLASS|...}
//   public/cleanup            cleanup         cleanup_protocol, and in the
//       same list queue_id=ID.  client: {flags=N} (CLEANUP_FLAG_*), then
//       queue-file records (type byte, base-128 length, data; not
//       attributes) through the END record; reply: {status=N, reason=TEXT}
//   private/local, smtp, relay, lmtp, virtual, error, retry, discard, and
//   pipe(8) services          delivery agents delivery_request_protocol
//       qmgr sends the delivery request (mail_proto.hpp: DeliverRequest,
//       then one list per recipient); reply: {DSN attributes, status=N}
//   private/bounce, defer, trace  bounce      delivery_status_protocol
//       request: {nrequest=CMD, ...}; reply: {status=N}
//   public/showq              showq           mail_queue_list_protocol,
//       then one list per queued message: {queue_name, queue_id, time,
//       size, forced_expire, sender, (recipient, reason)*}, and after the
//       last message a lone terminator (an empty list); the client sends
//       nothing
//   public/flush              flush           queue_flush_protocol
//   private/verify            verify          address_verification_prrotocol
//                                             (sic, Postfix's spelling)
//   private/proxymap, proxywrite  proxymap    proxymap_protocol
//   private/scache            scache          connection_cache_protocol
//   private/tlsmgr            tlsmgr          tlsmgr_protocol
//   private/anvil             anvil           anvil_protocol, in the PLAIN
//                                             form: "protocol=anvil_protocol\n\n"
//   public/pickup, public/qmgr   trigger servers: no announcement; the
//       client writes one-byte triggers (W wakeup, I/D/A/F for qmgr)
//   check_policy_service peers   no announcement; plain form both ways
//
// The names of services, protocols and attributes, and typed schemas of
// the messages above, are in mail_proto.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipc/stream.hpp"

namespace mta::ipc {

enum class Format { zero, plain, base64 };

const char* to_string(Format format);

enum class Errc {
  ok,
  closed,       // EOF before the first byte of a list
  eof,          // EOF inside a list
  timeout,      // no data within the timeout or deadline
  io,           // a system error on the descriptor
  too_long,     // a name or value above Limits::max_string
  malformed,    // bad number, bad base64, plain attribute without "="
  unexpected,   // strict reading: an attribute that was not asked for, a duplicate
  missing,      // the list ended before a wanted attribute
  mismatch,     // a constant (protocol, request name) has another value
  too_many,     // a table above Limits::max_table entries
  unencodable,  // writing: a name or value that the format cannot carry
  connect,      // the service could not be reached
};

const char* to_string(Errc code);

// The outcome of a protocol operation: ok, or a code and a Postfix-style
// message ("premature end-of-input on private/rewrite socket while reading
// input attribute name").
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  bool ok() const { return code_ == Errc::ok; }
  explicit operator bool() const { return ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Errc code_ = Errc::ok;
  std::string message_;
};

struct Limits {
  size_t max_string = size_t{1} << 20;  // bytes per name or value, as sent
  size_t max_table = 1024;              // ATTR_HASH_LIMIT
};

struct ReadOptions {
  bool strict = true;      // ATTR_FLAG_STRICT: unknown attributes are errors
  bool more = false;       // ATTR_FLAG_MORE: leave the list open
  bool printable = false;  // ATTR_FLAG_PRINTABLE: non-printable bytes of strings become '?'
};

// RFC 4648 base64 with padding, as Postfix's base64_code.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// Strict decimal conversions of INT and LONG values.
std::optional<uint32_t> parse_uint32(std::string_view text);
std::optional<uint64_t> parse_uint64(std::string_view text);

// Postfix's printable(): bytes that are not printable ASCII (and, with
// utf8, not part of a valid UTF-8 character) become '?'.
std::string printable(std::string_view text, bool utf8 = true);

// One attribute of a dynamic list.  Group delimiters appear as entries
// named "{" and "}" with empty values.
struct Attr {
  std::string name;
  std::string value;
  bool operator==(const Attr&) const = default;
};

inline constexpr std::string_view kGroupOpen = "{";
inline constexpr std::string_view kGroupClose = "}";

// An ordered list of attributes, for tests and generic code.
class AttrList {
 public:
  AttrList() = default;
  AttrList(std::initializer_list<Attr> attrs) : attrs_(attrs) {}

  AttrList& add(std::string name, std::string value);
  AttrList& add_number(std::string name, uint64_t value);
  AttrList& open_group() { return add(std::string(kGroupOpen), {}); }
  AttrList& close_group() { return add(std::string(kGroupClose), {}); }

  // The first instance of name, or null.
  const std::string* find(std::string_view name) const;
  std::string get(std::string_view name, std::string_view fallback = {}) const;
  std::optional<uint64_t> number(std::string_view name) const;

  size_t size() const { return attrs_.size(); }
  bool empty() const { return attrs_.empty(); }
  const Attr& operator[](size_t i) const { return attrs_[i]; }
  auto begin() const { return attrs_.begin(); }
  auto end() const { return attrs_.end(); }
  void clear() { attrs_.clear(); }
  bool operator==(const AttrList&) const = default;
  // "name=value, name=value" for messages and test output.
  std::string to_string() const;

 private:
  std::vector<Attr> attrs_;
};

// Encodes attributes in one format, appending to a string.  Every call
// checks that the format can carry the name and value (Errc::unencodable
// otherwise; nothing is appended then).
class AttrEncoder {
 public:
  explicit AttrEncoder(Format format = Format::zero) : format_(format) {}
  Format format() const { return format_; }

  Status str(std::string_view name, std::string_view value);
  Status num(std::string_view name, uint32_t value);   // INT
  Status lng(std::string_view name, uint64_t value);   // LONG
  Status data(std::string_view name, std::string_view bytes);  // DATA
  void open_group();
  void close_group();
  void end();  // the list terminator
  // Bytes already encoded in this format.
  void raw(std::string_view bytes) { out_.append(bytes); }
  // A whole dynamic list ("{" / "}" entries become group delimiters).
  Status list(const AttrList& attrs, bool terminate = true);

  const std::string& bytes() const { return out_; }
  std::string take() { return std::exchange(out_, {}); }
  void clear() { out_.clear(); }
  size_t size() const { return out_.size(); }
  void truncate(size_t size) { out_.resize(std::min(size, out_.size())); }  // back to an earlier size()

 private:
  Status check_name(std::string_view name) const;
  bool carries(std::string_view text, std::string_view plain_bad) const;
  void put_string(std::string_view text, char terminator);

  Format format_;
  std::string out_;
};

// Reads attribute lists from a stream.
class AttrReader {
 public:
  enum class Kind { attr, end, open, close };
  struct Item {
    Kind kind = Kind::end;
    std::string name;
    std::string value;       // decoded in the base64 form
    bool has_value = false;  // plain/base64 form: false for "name" without "="/":"
  };
  enum class More { more, end, error };

  explicit AttrReader(Stream& stream, Format format = Format::zero, Limits limits = {})
      : stream_(stream), format_(format), limits_(limits) {}

  Stream& stream() { return stream_; }
  Format format() const { return format_; }
  const Limits& limits() const { return limits_; }
  const std::string& path() const { return stream_.name(); }

  // The next element: an attribute with its value, a group delimiter, or
  // the list terminator.
  Status next(Item& item);
  // attr_scan_more(): a terminator ends the sequence (and is consumed),
  // anything else means more; error at EOF/timeout.
  More more(Status* why = nullptr);
  // Whole lists.  read_list() reads through the terminator (unless more);
  // skip_group() consumes up to and including the "}" of an open group.
  Status read_list(AttrList& out, const ReadOptions& options = {});
  Status skip_group();
  // Consumes the rest of the current list: with strict, anything but the
  // terminator is an error.
  Status finish_list(bool strict, std::string_view expecting = "(list terminator)");
  // Positions at attribute name in the current list, skipping others (or
  // failing, when strict).  On success item holds it.
  Status seek(std::string_view name, bool strict, Item& item);

  // Message helpers in Postfix's words.
  Status bad_number(std::string_view text) const;
  Status bad_base64(std::string_view text) const;

 private:
  Status read_string(std::string& out, std::string_view context, bool is_name, int* delimiter);
  Status io_failure(std::string_view context, bool partial) const;

  Stream& stream_;
  Format format_;
  Limits limits_;
  bool at_list_start_ = true;
};

// Writes encoded lists to a stream (no flush: the caller flushes once per
// message).
class AttrWriter {
 public:
  explicit AttrWriter(Stream& stream, Format format = Format::zero) : stream_(stream), enc_(format) {}
  Format format() const { return enc_.format(); }
  AttrEncoder& encoder() { return enc_; }
  // Sends what the encoder holds.
  Status send();
  Status send(const AttrList& attrs, bool terminate = true);
  Status flush();
  Stream& stream() { return stream_; }

 private:
  Stream& stream_;
  AttrEncoder enc_;
};

// The Status for a failed stream write or flush.
Status write_failure(const Stream& stream);

}  // namespace mta::ipc
