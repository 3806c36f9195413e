// queue_listing.hpp: postqueue's two views of the showq listing, byte for
// byte as Postfix 3.7's postqueue prints them.
//
// mailq format (postqueue -p, showq_compat.c): a heading before the first
// message, a blank line between messages; per message the queue ID with
// '*' (active), '!' (hold) and '#' (force-expired) after it, the size, the
// arrival time as asctime() in local time cut to 20 (19 with long queue IDs)
// columns, and the sender; then the recipients, each preceded by a
// "(reason)" line, right-aligned to column 78, whenever the reason differs
// from the previous recipient's ("(reason unavailable)" when a recipient
// without one follows one with one).  The trailer is "Mail queue is empty"
// or "-- N Kbytes in M Request(s)." (the sum of the message sizes / 1024).
//
// JSON format (postqueue -j, showq_json.c): one object per message and line,
// {"queue_name", "queue_id", "arrival_time", "message_size",
// "force_expired", "sender", "recipients": [{"address", "delay_reason"}]},
// with "delay_reason" only when there is one; strings escaped as Postfix's
// json_quote() does and made printable.
#pragma once

#include <string>
#include <string_view>

#include "ipc/mail_proto.hpp"

namespace mta::postqueue {

class MailqFormatter {
 public:
  explicit MailqFormatter(bool long_queue_ids) : long_ids_(long_queue_ids) {}
  // The text for the next message (the heading or the separating blank
  // line included).
  std::string message(const ipc::proto::ShowqMessage& msg);
  // After the last message.
  std::string trailer() const;

 private:
  bool long_ids_;
  unsigned long count_ = 0;
  unsigned long total_size_ = 0;
};

// asctime(localtime(&when)) without the newline: "Sun Nov 22 11:39:57 2026".
std::string arrival_time_text(long when);

// Postfix's json_quote(): \" \\ and \b \f \n \r \t, other control
// characters as \u00XX; then printable() (UTF8: valid UTF-8 stays).
std::string json_quote(std::string_view text, bool utf8);
// One JSON object and its newline.
std::string json_message(const ipc::proto::ShowqMessage& msg, bool utf8);

}  // namespace mta::postqueue
