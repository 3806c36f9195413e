// mime_state.cpp: see mime_state.hpp.  The states, offsets and reports
// follow Postfix 3.7's mime_state.c.
#include "mime/mime_state.hpp"

#include <strings.h>

#include <cctype>
#include <string>

namespace mta::mime {
namespace {

constexpr char kNorm = 'N';
constexpr char kCont = 'L';
constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?=";  // RFC 2045

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool has_8bit(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) & 0x80) return true;
  return false;
}

// One token of a structured header value (Postfix's header_token).
struct Token {
  enum Kind { atom, quoted, special } kind = atom;
  std::string value;  // the atom, the unquoted string, or the special
};

// The tokens of *INPUT up to TERMINATOR (consumed) or its end, skipping
// blanks and (nested) comments; at most MAX are kept, all are counted.
// -1 when nothing but blanks was left.
int next_tokens(std::string_view* input, std::string_view specials, char terminator, size_t max,
                std::vector<Token>* out) {
  out->clear();
  std::string_view s = *input;
  size_t i = 0;
  auto skip_blanks = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  skip_blanks();
  if (i >= s.size()) {
    *input = {};
    return -1;
  }
  int count = 0;
  auto keep = [&](Token t) {
    if (out->size() < max) out->push_back(std::move(t));
    ++count;
  };
  while (i < s.size()) {
    char c = s[i];
    if (terminator && c == terminator) {
      ++i;
      break;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '(') {  // a comment, possibly nested
      int depth = 0;
      for (; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          ++i;
        } else if (s[i] == '(') {
          ++depth;
        } else if (s[i] == ')' && --depth == 0) {
          ++i;
          break;
        }
      }
      continue;
    }
    if (c == '"') {
      Token t{Token::quoted, {}};
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        t.value += s[i];
      }
      if (i < s.size()) ++i;
      keep(std::move(t));
      continue;
    }
    if (specials.find(c) != std::string_view::npos) {
      keep({Token::special, std::string(1, c)});
      ++i;
      continue;
    }
    Token t{Token::atom, {}};
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '(' && s[i] != '"' &&
           specials.find(s[i]) == std::string_view::npos && !(terminator && s[i] == terminator))
      t.value += s[i++];
    keep(std::move(t));
  }
  *input = s.substr(i);
  return count;
}

bool atom_is(const Token& t, std::string_view text) { return t.kind == Token::atom && iequals(t.value, text); }
bool special_is(const Token& t, char c) { return t.kind == Token::special && t.value[0] == c; }

constexpr MimeErrorDetail kDetails[] = {
    {mime_err::kNesting, "5.6.0", "MIME nesting exceeds safety limit"},
    {mime_err::kTruncHeader, "5.6.0", "message header length exceeds safety limit"},
    {mime_err::k8bitInHeader, "5.6.0", "improper use of 8-bit data in message header"},
    {mime_err::k8bitIn7bitBody, "5.6.0", "improper use of 8-bit data in message body"},
    {mime_err::kEncodingDomain, "5.6.0", "invalid message/* or multipart/* encoding domain"},
};

}  // namespace

void qp_encode_line(std::string* line, std::string_view text, bool hard_end,
                    const std::function<void(std::string_view)>& emit) {
  static const char hex[] = "0123456789ABCDEF";
  auto encode = [&](unsigned char c) {
    *line += '=';
    *line += hex[c >> 4];
    *line += hex[c & 0xf];
  };
  for (char ch : text) {
    if (line->size() > 72) {  // soft line break before the limit of 76
      *line += '=';
      emit(*line);
      line->clear();
    }
    auto c = static_cast<unsigned char>(ch);
    if ((c < 32 && c != '\t') || c == '=' || c > 126) encode(c);
    else *line += ch;
  }
  if (!hard_end) return;
  // RFC 2045: blanks before a hard line break must be encoded.
  if (!line->empty() && (line->back() == ' ' || line->back() == '\t')) {
    auto c = static_cast<unsigned char>(line->back());
    line->pop_back();
    encode(c);
  }
  emit(*line);
  line->clear();
}

const MimeErrorDetail& mime_error_detail(int flags) {
  for (const MimeErrorDetail& d : kDetails)
    if (flags & d.code) return d;
  return kDetails[0];
}

size_t header_name_length(std::string_view line) {
  enum { init, in_name, in_space } state = init;
  size_t len = 0;
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if (c == ':') return state == init ? 0 : len;
    if (c == ' ' || c == '\t') {
      if (state == init) return 0;
      state = in_space;
      continue;
    }
    if (c == 0 || c > 126 || c < 32 || state == in_space) return 0;
    state = in_name;
    ++len;
  }
  return 0;
}

MimeState::MimeState(const MimeOptions& options, Callbacks callbacks) : opt_(options), cb_(std::move(callbacks)) {}

void MimeState::set_state(State s) {
  state_ = s;
  if (s == State::body) body_offset_ = 0;
}

void MimeState::set_state(State s, Ctype c, Stype st) {
  set_state(s);
  ctype_ = c;
  stype_ = st;
  encoding_ = kEnc7bit;
  domain_ = kEnc7bit;
}

void MimeState::report(int error, std::string_view context) {
  if (errors_ & error) return;
  errors_ |= error;
  if (cb_.error) cb_.error(error, context);
}

void MimeState::append_limited(std::string_view text) {
  if (header_.size() >= opt_.header_limit) {
    if (!text.empty() && opt_.report_trunc_header) report(mime_err::kTruncHeader, header_);
    return;
  }
  size_t room = opt_.header_limit - header_.size();
  if (text.size() > room) {
    if (opt_.report_trunc_header) report(mime_err::kTruncHeader, header_);
    text = text.substr(0, room);
  }
  header_.append(text);
}

void MimeState::content_type(std::string_view value) {
  std::vector<Token> tok;
  int n = next_tokens(&value, kTspecials, ';', 3, &tok);
  if (n <= 0) return;
  bool has_subtype = n >= 3 && special_is(tok[1], '/');
  if (atom_is(tok[0], "text")) {
    ctype_ = Ctype::text;
    stype_ = has_subtype && atom_is(tok[2], "plain") ? Stype::plain : Stype::other;
    return;
  }
  if (atom_is(tok[0], "message")) {
    ctype_ = Ctype::message;
    stype_ = Stype::other;
    if (has_subtype) {
      if (atom_is(tok[2], "rfc822")) stype_ = Stype::rfc822;
      else if (atom_is(tok[2], "partial")) stype_ = Stype::partial;
      else if (atom_is(tok[2], "external-body")) stype_ = Stype::external_body;
    }
    return;
  }
  if (atom_is(tok[0], "multipart")) {
    ctype_ = Ctype::multipart;
    bool digest = has_subtype && atom_is(tok[2], "digest");
    Ctype def_ctype = digest ? Ctype::message : Ctype::text;
    Stype def_stype = digest ? Stype::rfc822 : Stype::plain;
    // Every boundary parameter counts (several are illegal, and could
    // hide content): parts are found whichever one the sender uses.
    while ((n = next_tokens(&value, kTspecials, ';', 3, &tok)) >= 0) {
      if (n >= 3 && atom_is(tok[0], "boundary") && special_is(tok[1], '=') && tok[2].kind != Token::special) {
        if (static_cast<int>(stack_.size()) > opt_.nesting_limit) {
          if (opt_.report_nesting) report(mime_err::kNesting, header_);
        } else {
          std::string b = tok[2].value.substr(0, opt_.boundary_limit);
          stack_.push_back({def_ctype, def_stype, std::move(b)});
        }
      }
    }
    return;
  }
  ctype_ = Ctype::other;
}

void MimeState::content_encoding(std::string_view value) {
  std::vector<Token> tok;
  if (next_tokens(&value, {}, 0, 1, &tok) <= 0 || tok[0].kind != Token::atom) return;
  struct Map {
    std::string_view name;
    int encoding, domain;
  };
  static constexpr Map kMap[] = {{"7bit", kEnc7bit, kEnc7bit},
                                 {"8bit", kEnc8bit, kEnc8bit},
                                 {"binary", kEncBinary, kEncBinary},
                                 {"base64", kEncBase64, kEnc7bit},
                                 {"quoted-printable", kEncQp, kEnc7bit}};
  for (const Map& m : kMap) {
    if (iequals(tok[0].value, m.name)) {
      encoding_ = m.encoding;
      domain_ = m.domain;
      return;
    }
  }
}

void MimeState::flush_header() {
  if (!have_header_) return;
  have_header_ = false;
  size_t name_len = header_name_length(header_);
  std::string_view name(header_.data(), name_len);
  if (!opt_.disable_mime && name_len > 0) {
    std::string_view value = std::string_view(header_).substr(name_len + 1);
    if (iequals(name, "Content-Type")) content_type(value);
    else if (iequals(name, "Content-Transfer-Encoding")) content_encoding(value);
  }
  if (opt_.report_8bit_in_header && has_8bit(header_)) report(mime_err::k8bitInHeader, header_);
  HeaderClass cls = state_ == State::primary   ? HeaderClass::primary
                    : state_ == State::nested ? HeaderClass::nested
                                               : HeaderClass::multipart;
  std::string h;
  h.swap(header_);
  // Downgrading: an 8-bit Content-Transfer-Encoding is replaced at the end
  // of the header block (downgrade_header_end).
  if (opt_.downgrade && domain_ != kEnc7bit && name_len > 0 && iequals(name, "Content-Transfer-Encoding")) return;
  if (cb_.header) cb_.header(cls, h);
}

void MimeState::downgrade_header_end() {
  if (!opt_.downgrade || domain_ == kEnc7bit) return;
  HeaderClass cls = state_ == State::primary   ? HeaderClass::primary
                    : state_ == State::nested ? HeaderClass::nested
                                               : HeaderClass::multipart;
  std::string h = "Content-Transfer-Encoding: ";
  h += ctype_ == Ctype::message || ctype_ == Ctype::multipart ? "7bit" : "quoted-printable";
  if (cb_.header) cb_.header(cls, h);
}

void MimeState::body_or_downgrade(char type, std::string_view text) {
  if (!opt_.downgrade || domain_ == kEnc7bit) return body_out(type, text);
  qp_encode_line(&qp_line_, text, type == kNorm, [&](std::string_view line) { body_out(kNorm, line); });
}

void MimeState::body_out(char type, std::string_view text) {
  if (cb_.body) cb_.body(type, text, body_offset_);
  body_offset_ += static_cast<long long>(text.size()) + 1;
}

int MimeState::record(char type, std::string_view text) {
  if (ended_) return errors_;
  if (state_ != State::body) {
    if (have_header_) {
      if (prev_type_ == kCont) {  // more of the same line
        append_limited(text);
        prev_type_ = type;
        return errors_;
      }
      if (!text.empty() && is_blank(text[0])) {  // a continuation line
        if (header_.size() < opt_.header_limit) {
          header_ += '\n';
          append_limited(text);
        } else if (opt_.report_trunc_header) {
          report(mime_err::kTruncHeader, header_);
        }
        prev_type_ = type;
        return errors_;
      }
      flush_header();
    }
    if (size_t len = header_name_length(text); len > 0) {
      // "Name : value" becomes "Name: value".
      std::string_view rest = text.substr(len);
      while (!rest.empty() && is_blank(rest[0])) rest.remove_prefix(1);
      header_.assign(text.substr(0, len));
      have_header_ = true;
      append_limited(rest);
      prev_type_ = type;
      return errors_;
    }
    // This line ends a header block.
    downgrade_header_end();
    if (state_ == State::primary && cb_.headers_done) cb_.headers_done();
    if (opt_.report_encoding_domain) {
      if (ctype_ == Ctype::message) {
        bool must_be_7bit = stype_ == Stype::partial || stype_ == Stype::external_body;
        if (must_be_7bit ? domain_ != kEnc7bit : encoding_ != domain_)
          report(mime_err::kEncodingDomain, "");
      } else if (ctype_ == Ctype::multipart && encoding_ != domain_) {
        report(mime_err::kEncodingDomain, "");
      }
    }
    if (text.empty()) {
      body_offset_ = 0;
      if (ctype_ == Ctype::message) {
        if (stype_ == Stype::rfc822 && !opt_.disable_mime)
          set_state(State::nested, Ctype::text, Stype::plain);
        else
          set_state(State::body);
      } else if (ctype_ == Ctype::multipart) {
        set_state(State::body, Ctype::other, Stype::other);
      } else {
        set_state(State::body);
      }
    } else {
      set_state(State::body);
      body_out(kNorm, {});
    }
  }
  return body(type, text);
}

int MimeState::body(char type, std::string_view text) {
  if (opt_.report_8bit_in_7bit_body && encoding_ == kEnc7bit && has_8bit(text))
    report(mime_err::k8bitIn7bitBody, text);
  if (!stack_.empty() && prev_type_ != kCont && text.size() >= 2 && text[0] == '-' && text[1] == '-') {
    std::string_view rest = text.substr(2);
    for (size_t i = stack_.size(); i-- > 0;) {
      const std::string& b = stack_[i].text;
      if (rest.substr(0, b.size()) != b) continue;
      Boundary found = stack_[i];
      stack_.resize(i + 1);  // inner multiparts end with their parent's boundary
      if (rest.substr(b.size(), 2) == "--") {
        stack_.pop_back();
        set_state(State::body, Ctype::other, Stype::other);
      } else {
        set_state(State::multipart, found.def_ctype, found.def_stype);
      }
      break;
    }
  }
  body_or_downgrade(type, text);
  prev_type_ = type;
  return errors_;
}

int MimeState::end() {
  if (ended_) return errors_;
  if (prev_type_ == kCont) {
    if (state_ == State::body) {
      body_or_downgrade(kNorm, {});
      prev_type_ = kNorm;
    } else {
      prev_type_ = kNorm;  // the pending header is complete
    }
  }
  if (state_ != State::body) {
    flush_header();
    downgrade_header_end();
    if (state_ == State::primary && cb_.headers_done) cb_.headers_done();
    set_state(State::body);
  }
  ended_ = true;
  return errors_;
}

}  // namespace mta::mime
