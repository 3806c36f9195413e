// header_table.hpp: the message headers that Postfix treats specially
// (header_opts), and how a header line is recognized (is_header).
//
// Each known header has a type and flags: a sender or recipient address
// list (rewritten by cleanup), recipients that "sendmail -t" extracts, a
// Resent- header, a MIME header.  Names are matched without case, with
// blanks before the colon allowed.  A HeaderTable adds the DROP flag to the
// names in message_drop_headers (bcc, content-length, resent-bcc,
// return-path by default), unknown names included, as Postfix does.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace mta::message {

enum class HeaderType : int {
  other = 0,
  apparently_to,
  bcc,
  cc,
  content_description,
  content_disposition,
  content_id,
  content_length,
  content_transfer_encoding,
  content_type,
  delivered_to,
  disposition_notification_to,
  date,
  errors_to,
  from,
  mail_followup_to,
  message_id,
  mime_version,
  received,
  reply_to,
  resent_bcc,
  resent_cc,
  resent_date,
  resent_from,
  resent_message_id,
  resent_reply_to,
  resent_sender,
  resent_to,
  return_path,
  return_receipt_to,
  sender,
  to,
};

namespace header_flag {
inline constexpr unsigned kSender = 1 << 0;     // sender address list
inline constexpr unsigned kRecipient = 1 << 1;  // recipient address list
inline constexpr unsigned kExtract = 1 << 2;    // sendmail -t takes recipients from it
inline constexpr unsigned kResent = 1 << 3;     // a Resent- header
inline constexpr unsigned kMime = 1 << 4;       // a MIME header
inline constexpr unsigned kDrop = 1 << 5;       // removed by cleanup (message_drop_headers)
}  // namespace header_flag

struct HeaderInfo {
  std::string name;  // canonical spelling (lower case for names only in the drop list)
  HeaderType type = HeaderType::other;
  unsigned flags = 0;
};

class HeaderTable {
 public:
  HeaderTable();  // the built-in table, nothing dropped
  // Adds DROP to each name of the list (split on blanks and commas).
  void set_drop_list(std::string_view names);
  // The entry for HEADER ("Name: value" or just "Name:"), or null.
  const HeaderInfo* find(std::string_view header) const;

 private:
  std::map<std::string, HeaderInfo, std::less<>> by_name_;  // lower-case keys
};

// The length of the header name when LINE starts with "name:" (blanks
// allowed before the colon), else 0 (is_header_buf): the name is printable
// ASCII without blanks and colons.
size_t header_name_length(std::string_view line);
inline bool is_header(std::string_view line) { return header_name_length(line) > 0; }

}  // namespace mta::message
