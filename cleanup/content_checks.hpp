// content_checks.hpp: cleanup's built-in content inspection, as Postfix
// 3.7's header_checks(5) (cleanup_message.c: cleanup_act).
//
// Four tables, opened before the chroot:
//   header_checks         the primary header, except MIME headers
//   mime_header_checks    MIME headers (Content-*, MIME-Version) anywhere
//                         (default: $header_checks)
//   nested_header_checks  headers of attached messages (message/rfc822)
//                         (default: $header_checks)
//   body_checks           every other line, including boundaries, within
//                         the first body_checks_size_limit bytes of each
//                         body part
// Each logical header or body line is looked up whole; a match gives an
// action, which act() carries out on the message's state:
//   REJECT [text]   reject with "5.7.1 text" (a DSN code in the text wins;
//                   4.x.x defers), or "5.7.1 message content rejected";
//                   no more inspection
//   WARN / INFO [text]    log only
//   HOLD [text]     to the hold queue (unless already held or discarded)
//   DISCARD [text]  report success and drop the message; no more inspection
//   PASS [text]     no more inspection
//   FILTER transport:destination   route the whole message (last one wins)
//   REDIRECT user@domain  send it there instead (last wins); no more
//                   inspection
//   BCC user@domain  add a recipient (NOTIFY=NEVER)
//   PREPEND text    write a line before this one (a header before a header)
//   REPLACE text    write this instead (a header for a header)
//   IGNORE          drop the line silently; STRIP drops it and logs
//   DUNNO, OK       nothing
// Each action but IGNORE, DUNNO and OK logs Postfix's line:
//   QID: ACTION: header|body TEXT from ORIGIN; from=<S> to=<R> proto=P helo=<H>: TEXT
// (proto and helo when the client sent them; to= when there is a first
// recipient).  An unknown action logs a warning and does nothing.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "maps/maps.hpp"
#include "mime/mime_state.hpp"

namespace mta::cleanup {

struct ContentCheckTables {
  // Null when the parameter is empty (no inspection of that class).
  std::unique_ptr<maps::Maps> header, mime_header, nested_header, body;
  long long body_limit = 51200;  // body_checks_size_limit (0: no limit)

  static std::shared_ptr<const ContentCheckTables> from_config(const config::Config& config);
  const maps::Maps* for_class(mime::HeaderClass cls) const;
  bool any_header_checks() const { return header || mime_header || nested_header; }
  // A table that changed since it was opened, or "" (the skeleton restarts).
  std::string changed_table() const;
};

// An action value split into its command and the text after it.
struct CheckAction {
  std::string command;  // as written; matched without case
  std::string text;     // after the command and its blanks
};
CheckAction split_action(std::string_view value);

// "5.7.1 text" unless TEXT starts with a DSN code (Postfix's dsn_prepend).
std::string dsn_prepend(std::string_view default_dsn, std::string_view text);

// What a log line says about the message.
struct CheckLogFacts {
  std::string_view queue_id;
  std::string_view origin = "local";  // log_message_origin
  const std::string* sender = nullptr;
  const std::string* recipient = nullptr;  // the first one
  const std::string* proto = nullptr;      // log_protocol_name
  const std::string* helo = nullptr;       // log_helo_name
};

// The message state that actions change.
struct CheckTarget {
  int& flags;  // cleanup flags: kFilter (inspection on), kHold, kDiscard
  int& errs;   // cleanup status: kCont, kDefer
  std::string& reason;
  std::optional<std::string>& filter;
  std::optional<std::string>& redirect;
  std::vector<std::string>& bcc;
};

struct CheckOutcome {
  enum Kind { keep, drop, replace } kind = keep;
  std::string replacement;              // for replace
  std::optional<std::string> prepend;   // a line to write first
};

// Carries out VALUE, the result of MAP_CLASS's lookup of LINE in CONTEXT
// ("header" or "body").
CheckOutcome act(const CheckLogFacts& facts, CheckTarget target, std::string_view context, std::string_view line,
                 std::string_view value, std::string_view map_class);

// Postfix's cleanup_act_log line.
std::string act_log_line(const CheckLogFacts& facts, std::string_view action, std::string_view context,
                         std::string_view line, std::string_view text);

}  // namespace mta::cleanup
