// cleanup_session.hpp: one message through cleanup, as Postfix 3.7's
// cleanup(8) processes it (cleanup_envelope, cleanup_message,
// cleanup_extracted, cleanup_api).
//
// The client sends queue-file records in three segments; the session
// checks them, changes what Postfix changes and writes the queue file
// incoming/QUEUEID:
//
//   envelope   our own size record first; T arrival time (first wins) and
//              A create_time=now; F full name; S sender, rewritten in the
//              "local" context (MAILER-DAEMON@$myorigin becomes <>); W
//              (delay_warning_time) before the first recipient; per
//              recipient [A notify_flags] A dsn_orig_rcpt=rfc822;ADDRESS
//              (made from the rewritten address when the client gave none)
//              O original R rewritten, duplicates dropped; A, V, DSN records
//              checked as Postfix checks them.
//   content    the primary header: Return-Path, Bcc, Resent-Bcc,
//              Content-Length (message_drop_headers) removed; address
//              headers rewritten in the client's rewrite_context (local for
//              sendmail and, in M4, smtpd per local_header_rewrite_clients)
//              and refolded when an address changed; Message-Id, Date, From
//              (with the full name, header_from_format = standard) and
//              undisclosed_recipients_header added when missing; Received:
//              headers counted against hopcount_limit; a header longer than
//              header_size_limit cut there; a missing empty line before the
//              body added; text longer than line_length_limit kept as L
//              records.  The body is copied as is.
//   extracted  recipients after the message (sendmail -t); before the
//              first one the content filter (L), redirect (>) and encoding
//              attribute (8bit Content-Transfer-Encoding); BCC recipients of
//              header/body checks; E.
//
// With the client's FILTER flag (receive_override_options without
// no_header_body_checks), the content is inspected on its way through:
// the MIME structure (lib/mime) tells primary, MIME and nested headers and
// the body lines of each part apart, and each goes to its table
// (content_checks.hpp): header_checks, mime_header_checks,
// nested_header_checks, body_checks.  A REJECT sets "content rejected"
// (or "service unavailable" for 4.x.x) with its reason; HOLD finishes the
// file in hold/ instead of incoming/; DISCARD removes it and reports
// success; FILTER and REDIRECT (and the client's L and > envelope records,
// e.g. content_filter) become L and > records that qmgr obeys.
//
// The whole file is kept under message_size_limit.  A problem sets a
// status bit (cleanup_status.hpp); once a bit in the client's "stop" mask
// is set, later records are read and dropped.  finish() then removes the
// file and reports the status, or -- when the client asked cleanup to
// bounce (pickup) and the problem is the message's (too many hops, too
// big, content) -- asks the bounce service to return the message to the
// sender and reports success.  On success the file is completed (size
// record, mode 0700, fsync) before finish() returns, and qmgr is woken up.
#pragma once

#include <sys/time.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cleanup/address_mapping.hpp"
#include "cleanup/address_rewriting.hpp"
#include "cleanup/content_checks.hpp"
#include "cleanup/header_table.hpp"
#include "cleanup/rfc822_tree.hpp"
#include "config/config.hpp"
#include "ipc/mail_proto.hpp"
#include "mime/mime_state.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"

namespace mta::cleanup {

struct CleanupSettings {
  std::string myhostname;
  size_t line_limit = 2048;           // line_length_limit
  size_t header_limit = 102400;       // header_size_limit
  long long message_limit = 10240000;  // message_size_limit (0: none)
  int hopcount_limit = 50;
  int token_limit = 10240;            // header_address_token_limit
  bool always_add_headers = false;    // always_add_missing_headers
  std::string undisclosed_header;     // undisclosed_recipients_header
  std::string empty_address = "MAILER-DAEMON";  // empty_address_recipient
  int duplicate_limit = 1000;         // duplicate_filter_limit
  bool enable_original_recipient = true;
  long delay_warning_time = 0;        // seconds
  std::string remote_rewrite_domain;  // remote_header_rewrite_domain
  bool header_from_standard = true;   // header_from_format
  bool long_queue_ids = false;
  std::string queue_service = "qmgr";  // queue_service_name
  int attribute_limit = 100;           // queue_file_attribute_count_limit
  std::string verp_filter = "-=+";     // verp_delimiter_filter
  std::string always_bcc;
  message::HeaderTable headers;        // with message_drop_headers
  // Content inspection: the four tables, body_checks_size_limit.
  std::shared_ptr<const ContentCheckTables> checks;
  // disable_mime_input_processing, header_size_limit, mime_nesting_limit,
  // mime_boundary_length_limit; the reports are chosen per message.
  mime::MimeOptions mime;
  bool strict_7bit_headers = false;
  bool strict_8bitmime = false;
  bool strict_8bitmime_body = false;
  bool strict_encoding = false;  // strict_mime_encoding_domain

  static CleanupSettings from_config(const config::Config& config);
};

// The bounce service, as cleanup uses it (replaceable in tests).
class BounceClient {
 public:
  virtual ~BounceClient() = default;
  virtual bool append(const ipc::proto::BounceAppendArgs& args) = 0;
  virtual bool flush(const ipc::proto::BounceNotifyArgs& args) = 0;
};
// private/bounce (bounce_service_name).
std::unique_ptr<BounceClient> make_bounce_client(std::string service);

class CleanupSession {
 public:
  CleanupSession(const CleanupSettings& settings, const queue::QueueLayout& layout, AddressRewriter& rewriter,
                 const AddressMapper& mapper, BounceClient* bounce);
  // The trace service, for "alias expanded" notices (NOTIFY=SUCCESS of a
  // virtual alias); without one such a message is refused for now.
  void set_trace_client(BounceClient* trace) { trace_ = trace; }
  ~CleanupSession();
  CleanupSession(const CleanupSession&) = delete;
  CleanupSession& operator=(const CleanupSession&) = delete;

  // Creates incoming/QUEUEID; false with a message.
  bool open(std::string* error);
  const std::string& queue_id() const { return queue_id_; }

  // The client's {flags}; bad_flags when they could not be read.
  void control(int flags);
  void protocol_error() { errs_ |= kBadBit; }

  // One record from the client.
  void record(char type, std::string_view data);
  // True while records are still processed (false after an error that
  // stops processing, or after the end record).
  bool accepting() const { return out_ok() && !end_seen_; }
  bool end_seen() const { return end_seen_; }

  // Completes or removes the queue file; the status for the client.
  int finish();
  // The reason to pass on ({reason=}), empty unless one was set.
  const std::string& reason() const { return reason_; }
  // The queue file while it is written (for a signal handler), else "".
  std::string file_path() const { return file_ ? file_->path() : std::string(); }

 private:
  static constexpr int kBadBit = 1;
  enum class Stage { envelope, message, extracted };
  struct WrittenRecipient {
    std::string address, original, dsn_orcpt;
    int notify = 0;
    off_t offset = -1;
  };

  bool out_ok() const { return (errs_ & err_mask_) == 0; }
  void check_size();
  void put(char type, std::string_view data);
  void put_text(char type, std::string_view text);  // split at line_length_limit

  void envelope(char type, std::string_view data);
  void message(char type, std::string_view data);
  void extracted(char type, std::string_view data);
  bool recipient_attribute(char type, std::string_view data, bool extracted_segment);

  void add_sender(std::string_view address);
  void add_recipient(std::string_view address);
  void add_bcc(std::string_view address);
  void out_recipient(std::string dsn_orcpt, int notify, std::string orcpt, const std::string& address);
  void trace_expanded(const std::string& dsn_orcpt, int notify, const std::string& orcpt, const std::string& address);
  void take_map_errors();  // mapped_ into errs_ and reason_
  std::string rewrite_internal(std::string_view rule, std::string_view address);
  bool rewrite_tree(rfc822::Tree& tree, int node);

  void header(mime::HeaderClass cls, std::string& text);
  void headers_done();
  void body(char type, std::string_view text, long long offset);
  void mime_error(int error, std::string_view text);
  CheckLogFacts log_facts() const;
  CheckTarget check_target() { return {flags_, errs_, reason_, filter_, redirect_, hbc_rcpt_}; }
  void out_header(std::string_view text);
  void fold_header(std::string text);
  void rewrite_header(const message::HeaderInfo& info, std::string_view text, bool sender_header);
  void extracted_finish();

  bool bounce();

  const CleanupSettings& settings_;
  const queue::QueueLayout& layout_;
  AddressRewriter& rewriter_;
  const AddressMapper& mapper_;
  BounceClient* bounce_;
  BounceClient* trace_ = nullptr;
  MapOutcome mapped_;  // the current mapping step's errors
  std::unique_ptr<queue::QueueFileWriter> file_;
  std::string queue_id_;

  int flags_ = 0;
  int errs_ = 0;
  int err_mask_ = ~0;
  std::string reason_;
  Stage stage_ = Stage::envelope;
  bool started_ = false;    // the size record is written
  bool in_rcpt_ = false;    // CLEANUP_FLAG_INRCPT
  bool warn_seen_ = false;
  bool end_seen_ = false;
  bool size_warned_ = false;

  timeval arrival_{};
  bool have_arrival_ = false;
  std::optional<std::string> fullname_;
  std::optional<std::string> sender_;
  std::optional<std::string> recip_;  // the first recipient
  std::optional<std::string> orig_rcpt_;
  std::optional<std::string> dsn_orcpt_;
  int dsn_notify_ = 0;
  int notify_seen_ = 0;  // every NOTIFY the client sent (queue file size record)
  std::optional<std::string> dsn_envid_;
  int dsn_ret_ = 0;
  std::optional<std::string> verp_delims_;
  std::optional<std::string> encoding_;
  int attribute_count_ = 0;
  std::string hdr_rewrite_context_;  // "", "local" or "remote"
  std::set<std::string> dups_;
  std::vector<WrittenRecipient> written_;

  std::unique_ptr<mime::MimeState> mime_;
  // Content inspection: what the checks (or the client) decided.
  std::optional<std::string> filter_;    // transport:destination
  std::optional<std::string> redirect_;  // user@domain
  std::vector<std::string> hbc_rcpt_;    // BCC actions
  // From the client's attributes, for the log lines of the checks.
  std::string log_origin_ = "local";     // log_message_origin
  std::optional<std::string> log_proto_;  // log_protocol_name
  std::optional<std::string> log_helo_;   // log_helo_name
  unsigned long long headers_seen_ = 0;
  int hop_count_ = 0;
  std::string resent_;  // "" or "Resent-"
};

}  // namespace mta::cleanup
