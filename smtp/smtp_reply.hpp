// smtp_reply.hpp: server replies as Postfix's smtp_chat_resp() reads
// them, and the next-hop syntax of smtp_parse_destination(); both pure.
//
// Replies: lines of "NNN-text" continue, "NNN text" or "NNN" end the reply;
// anything else (garbage) is kept and reading goes on, as in Postfix.
// Non-printable bytes become '?'.  The text is every line, joined with
// "\n" (the caller turns those into spaces for the log, translit), and
// stops growing at line_limit bytes.  The RFC 3463 status comes from the
// last line: "550 5.1.1 ..." gives 5.1.1; a status whose class differs
// from the reply's, or none, gives "X.0.0" for a 2xx/4xx/5xx reply, and
// anything else "5.5.0" (a protocol error).
//
// Next hops: "[host]:port", "[host]", "host:port", "host" (service names
// through getservbyname, else the default service); brackets turn off the
// MX lookup.  LMTP takes "unix:/path" and "inet:host:port" too.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mta::smtp {

struct Reply {
  int code = 0;              // 0: no three-digit code
  std::string dsn = "5.5.0";
  std::string text;          // the lines, joined with '\n'
  // The text with newlines as spaces, as Postfix logs it.
  std::string flat() const;
};

class ReplyReader {
 public:
  explicit ReplyReader(size_t line_limit = 2048) : limit_(line_limit) {}
  // Adds one line (without CR LF); true when the reply is complete.
  bool add_line(std::string_view line);
  Reply take();

 private:
  size_t limit_;
  Reply reply_;
  std::string last_;
};

// Postfix's dsn_valid(): the length of a leading "X.YYY.ZZZ" status (X
// in 2, 4, 5) followed by the end or white space, else 0.
size_t dsn_length(std::string_view text);
// printable(): bytes other than printable ASCII become '?'.
std::string printable(std::string_view text);

struct NextHop {
  bool unix_socket = false;  // LMTP "unix:/path"
  std::string path;          // the socket path
  std::string host;          // without brackets
  unsigned port = 0;
  bool lookup_mx = false;    // SMTP, no brackets (and DNS enabled: the caller decides)
};

// Parses DEST; DEF_SERVICE is "smtp" or lmtp_tcp_port.  nullopt with
// ERROR set (Postfix's fatal texts) for a bad port or unknown service.
std::optional<NextHop> parse_nexthop(std::string_view dest, std::string_view def_service, bool lmtp,
                                     std::string& error);

}  // namespace mta::smtp
