// mime_state.hpp: the MIME structure of a message, as Postfix 3.7's
// mime_state(3) sees it while cleanup reads the content.
//
// Content arrives as records: N is a line, L a piece of a longer line that
// the next record continues.  The machine is in one of four states:
//
//   primary    the message's own header block
//   multipart  the header block of a part, after a "--boundary" line
//   nested     the header block of an attached message (message/rfc822)
//   body       anything else
//
// In a header state, a line that starts with "name:" (blanks allowed before
// the colon, and removed: "Name : v" becomes "Name: v") begins a header, and
// the lines that follow it and start with a blank continue it (joined with
// '\n'; the header is cut at header_limit bytes, the rest is dropped).  The
// header is passed on complete, with its class.  An empty line ends a header
// block; any other line also ends it, and an empty line is inserted first so
// that the body is never taken for more header.  The end of the primary
// header is reported once (headers_done) before the line that ends it.
//
// Content-Type and Content-Transfer-Encoding are read from every header
// block (unless MIME processing is disabled, when everything after the
// primary header is body):
//   multipart/ANY; boundary=B   pushes B (cut at boundary_limit bytes) while
//                               the nesting level is at most nesting_limit;
//                               parts default to text/plain (message/rfc822
//                               for multipart/digest)
//   message/rfc822              the body starts with a nested header block
// A body line "--B" (not the rest of a longer line) for any open boundary
// starts a part's header block; "--B--" closes that multipart.
//
// Body lines go to body() with their offset in the current body block (it
// restarts at 0 at every part), which cleanup compares with
// body_checks_size_limit.  A last line left unterminated (an L record at the
// end) is terminated with an empty N record.
//
// Optional reports, each once per message: MIME nesting beyond the limit,
// 8-bit data in a header, 8-bit data in a 7-bit body, and message/* or
// multipart/* with an encoding other than 7bit, 8bit or binary (the
// strict_* parameters).  The error flags are returned by every call.
//
// With the downgrade option (Postfix's MIME_OPT_DOWNGRADE, used by smtp
// when the server lacks 8BITMIME), content that claims to be 8-bit (the
// Content-Transfer-Encoding of its header block is 8bit or binary) becomes
// 7-bit: that header is dropped, and the header block ends with a new
// "Content-Transfer-Encoding: quoted-printable" (leaf parts, whose body is
// encoded with qp_encode_line) or "...: 7bit" (multipart and message, whose
// parts are handled in turn).  Only the header decides: 8-bit bytes in a
// part without such a header, and 8-bit bytes in headers, are left alone.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mta::mime {

enum class HeaderClass { primary, multipart, nested };

namespace mime_err {
inline constexpr int kNesting = 1 << 0;
inline constexpr int kTruncHeader = 1 << 1;
inline constexpr int k8bitInHeader = 1 << 2;
inline constexpr int k8bitIn7bitBody = 1 << 3;
inline constexpr int kEncodingDomain = 1 << 4;
}  // namespace mime_err

struct MimeErrorDetail {
  int code;
  std::string_view dsn;
  std::string_view text;
};
// The most important error in FLAGS (Postfix's mime_state_detail); FLAGS
// must not be 0.
const MimeErrorDetail& mime_error_detail(int flags);

struct MimeOptions {
  bool disable_mime = false;              // disable_mime_input_processing
  bool report_8bit_in_header = false;     // strict_7bit_headers
  bool report_8bit_in_7bit_body = false;  // strict_8bitmime_body
  bool report_encoding_domain = false;    // strict_mime_encoding_domain
  bool report_nesting = false;
  bool report_trunc_header = false;
  size_t header_limit = 102400;   // header_size_limit
  int nesting_limit = 100;        // mime_nesting_limit
  size_t boundary_limit = 2048;   // mime_boundary_length_limit
  bool downgrade = false;         // 8-bit to 7-bit conversion (see above)
};

// Quoted-printable as Postfix's mime_state_downgrade() writes it.  *LINE
// holds the encoded output line in progress; TEXT is the next piece of
// input.  Bytes below 32 except TAB, '=' and bytes above 126 become "=XX";
// before each byte, a line already longer than 72 is passed to EMIT with a
// soft line break "=" appended.  When HARD_END (the input line ends here),
// a trailing blank is encoded and the line is passed to EMIT; otherwise
// the line stays in *LINE for the next piece.
void qp_encode_line(std::string* line, std::string_view text, bool hard_end,
                    const std::function<void(std::string_view)>& emit);

// The length of the header name when LINE starts with "name:" (blanks
// allowed before the colon), else 0 (Postfix's is_header): printable ASCII
// without blanks and colons.
size_t header_name_length(std::string_view line);

class MimeState {
 public:
  struct Callbacks {
    std::function<void(HeaderClass cls, std::string& header)> header;
    std::function<void()> headers_done;  // the end of the primary header
    std::function<void(char type, std::string_view text, long long offset)> body;
    std::function<void(int error, std::string_view context)> error;  // once per error kind
  };

  MimeState(const MimeOptions& options, Callbacks callbacks);

  // One N or L record; returns the error flags so far.
  int record(char type, std::string_view text);
  // The end of the content (the X record): pending output is flushed.
  int end();
  int errors() const { return errors_; }

 private:
  enum class State { primary, multipart, nested, body };
  enum class Ctype { other, text, message, multipart };
  enum class Stype { other, plain, rfc822, partial, external_body };
  enum Encoding { kEnc7bit = 7, kEnc8bit = 8, kEncBinary = 9, kEncQp = 1, kEncBase64 = 2 };
  struct Boundary {
    Ctype def_ctype;
    Stype def_stype;
    std::string text;
  };

  void set_state(State s, Ctype c, Stype st);
  void set_state(State s);
  void report(int error, std::string_view context);
  void flush_header();
  void content_type(std::string_view value);
  void content_encoding(std::string_view value);
  void body_out(char type, std::string_view text);
  void append_limited(std::string_view text);
  int body(char type, std::string_view text);
  void downgrade_header_end();
  void body_or_downgrade(char type, std::string_view text);

  MimeOptions opt_;
  Callbacks cb_;
  State state_ = State::primary;
  Ctype ctype_ = Ctype::text;
  Stype stype_ = Stype::plain;
  int encoding_ = kEnc7bit;
  int domain_ = kEnc7bit;
  std::string header_;
  bool have_header_ = false;
  char prev_type_ = 0;
  std::vector<Boundary> stack_;  // innermost last
  int errors_ = 0;
  long long body_offset_ = 0;
  bool ended_ = false;
  std::string qp_line_;  // downgrade: the quoted-printable line in progress
};

}  // namespace mta::mime
