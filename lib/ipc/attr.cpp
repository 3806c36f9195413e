// attr.cpp: the three encodings of Postfix attribute lists, and the
// element-level reader under the schema layer (see attr.hpp).
#include "ipc/attr.hpp"

#include <array>
#include <cstring>

namespace mta::ipc {

const char* to_string(Format format) {
  switch (format) {
    case Format::zero: return "zero";
    case Format::plain: return "plain";
    case Format::base64: return "base64";
  }
  return "?";
}

const char* to_string(Errc code) {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::closed: return "closed";
    case Errc::eof: return "eof";
    case Errc::timeout: return "timeout";
    case Errc::io: return "io";
    case Errc::too_long: return "too_long";
    case Errc::malformed: return "malformed";
    case Errc::unexpected: return "unexpected";
    case Errc::missing: return "missing";
    case Errc::mismatch: return "mismatch";
    case Errc::too_many: return "too_many";
    case Errc::unencodable: return "unencodable";
    case Errc::connect: return "connect";
  }
  return "?";
}

// ---------------------------------------------------------------- values

namespace {

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_b64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64Alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kB64Table = make_b64_table();

template <class T>
std::optional<T> parse_decimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  T value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    T digit = static_cast<T>(c - '0');
    if (value > (static_cast<T>(-1) - digit) / 10) return std::nullopt;
    value = static_cast<T>(value * 10 + digit);
  }
  return value;
}

// Length of the valid UTF-8 character at s (RFC 3629), or 0.
size_t utf8_char_length(std::string_view s) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;
    if (c == 0xF4 && b(1) > 0x8F) return 0;
    return 4;
  }
  return 0;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += kB64Alphabet[(v >> 18) & 63];
    out += kB64Alphabet[(v >> 12) & 63];
    out += kB64Alphabet[(v >> 6) & 63];
    out += kB64Alphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    unsigned v = at(i) << 16;
    if (rest == 2) v |= at(i + 1) << 8;
    out += kB64Alphabet[(v >> 18) & 63];
    out += kB64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kB64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int a = kB64Table[static_cast<unsigned char>(text[i])];
    int b = kB64Table[static_cast<unsigned char>(text[i + 1])];
    if (a < 0 || b < 0) return std::nullopt;
    out += static_cast<char>((a << 2) | (b >> 4));
    if (text[i + 2] == '=') {
      if (!last || text[i + 3] != '=') return std::nullopt;
      break;
    }
    int c = kB64Table[static_cast<unsigned char>(text[i + 2])];
    if (c < 0) return std::nullopt;
    out += static_cast<char>(((b & 15) << 4) | (c >> 2));
    if (text[i + 3] == '=') {
      if (!last) return std::nullopt;
      break;
    }
    int d = kB64Table[static_cast<unsigned char>(text[i + 3])];
    if (d < 0) return std::nullopt;
    out += static_cast<char>(((c & 3) << 6) | d);
  }
  return out;
}

std::optional<uint32_t> parse_uint32(std::string_view text) { return parse_decimal<uint32_t>(text); }
std::optional<uint64_t> parse_uint64(std::string_view text) { return parse_decimal<uint64_t>(text); }

std::string printable(std::string_view text, bool utf8) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
    } else if (size_t n = utf8 && c >= 0x80 ? utf8_char_length(text.substr(i)) : 0; n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// ---------------------------------------------------------------- AttrList

AttrList& AttrList::add(std::string name, std::string value) {
  attrs_.push_back({std::move(name), std::move(value)});
  return *this;
}

AttrList& AttrList::add_number(std::string name, uint64_t value) { return add(std::move(name), std::to_string(value)); }

const std::string* AttrList::find(std::string_view name) const {
  for (const auto& a : attrs_)
    if (a.name == name) return &a.value;
  return nullptr;
}

std::string AttrList::get(std::string_view name, std::string_view fallback) const {
  const std::string* v = find(name);
  return v ? *v : std::string(fallback);
}

std::optional<uint64_t> AttrList::number(std::string_view name) const {
  const std::string* v = find(name);
  return v ? parse_uint64(*v) : std::nullopt;
}

std::string AttrList::to_string() const {
  std::string out;
  for (const auto& a : attrs_) {
    if (!out.empty()) out += ", ";
    if (a.name == kGroupOpen || a.name == kGroupClose)
      out += a.name;
    else
      out += a.name + "=" + a.value;
  }
  return out;
}

// ---------------------------------------------------------------- encoding

// Whether this form can carry TEXT: the zero form anything but a NUL (one
// memchr), the plain form none of PLAIN_BAD, base64 anything.
bool AttrEncoder::carries(std::string_view text, std::string_view plain_bad) const {
  switch (format_) {
    case Format::zero: return text.find('\0') == std::string_view::npos;
    case Format::plain: return text.find_first_of(plain_bad) == std::string_view::npos;
    case Format::base64: return true;
  }
  return true;
}

Status AttrEncoder::check_name(std::string_view name) const {
  if (name.empty()) return {Errc::unencodable, "empty attribute name"};
  if (name == kGroupOpen || name == kGroupClose)
    return {Errc::unencodable, "attribute name \"" + std::string(name) + "\" is reserved for groups"};
  if (!carries(name, std::string_view("=\n\0", 3)))
    return {Errc::unencodable, "attribute name \"" + printable(name) + "\" cannot be sent in the " +
                                   to_string(format_) + " form"};
  return {};
}

void AttrEncoder::put_string(std::string_view text, char terminator) {
  if (format_ == Format::base64)
    out_ += base64_encode(text);
  else
    out_ += text;
  out_ += terminator;
}

Status AttrEncoder::str(std::string_view name, std::string_view value) {
  if (Status st = check_name(name); !st) return st;
  if (!carries(value, std::string_view("\n\0", 2)))
    return {Errc::unencodable, "value of attribute " + std::string(name) + " cannot be sent in the " +
                                   to_string(format_) + " form"};
  switch (format_) {
    case Format::zero:
      put_string(name, '\0');
      put_string(value, '\0');
      break;
    case Format::plain:
      put_string(name, '=');
      put_string(value, '\n');
      break;
    case Format::base64:
      put_string(name, ':');
      put_string(value, '\n');
      break;
  }
  return {};
}

Status AttrEncoder::num(std::string_view name, uint32_t value) { return str(name, std::to_string(value)); }

Status AttrEncoder::lng(std::string_view name, uint64_t value) { return str(name, std::to_string(value)); }

Status AttrEncoder::data(std::string_view name, std::string_view bytes) {
  // The base64 form encodes every value already.
  return format_ == Format::base64 ? str(name, bytes) : str(name, base64_encode(bytes));
}

void AttrEncoder::open_group() {
  switch (format_) {
    case Format::zero: out_.append("{\0", 2); break;
    case Format::plain: out_.append("{\0\n", 3); break;  // Postfix 3.7 writes the NUL too
    case Format::base64: put_string(kGroupOpen, '\n'); break;
  }
}

void AttrEncoder::close_group() {
  switch (format_) {
    case Format::zero: out_.append("}\0", 2); break;
    case Format::plain: out_.append("}\0\n", 3); break;
    case Format::base64: put_string(kGroupClose, '\n'); break;
  }
}

void AttrEncoder::end() { out_ += format_ == Format::zero ? '\0' : '\n'; }

Status AttrEncoder::list(const AttrList& attrs, bool terminate) {
  AttrEncoder tmp(format_);
  for (const auto& a : attrs) {
    if (a.name == kGroupOpen) {
      tmp.open_group();
    } else if (a.name == kGroupClose) {
      tmp.close_group();
    } else if (Status st = tmp.str(a.name, a.value); !st) {
      return st;
    }
  }
  if (terminate) tmp.end();
  out_ += tmp.out_;
  return {};
}

// ---------------------------------------------------------------- reading

Status AttrReader::io_failure(std::string_view context, bool partial) const {
  std::string ctx(context);
  switch (stream_.state()) {
    case IoState::timeout: return {Errc::timeout, "timeout on " + path() + " while reading " + ctx};
    case IoState::error:
      return {Errc::io, "read error on " + path() + " while reading " + ctx + ": " + stream_.error_text()};
    default: break;
  }
  if (partial && format_ == Format::zero)
    return {Errc::eof, "unexpected end-of-input from " + path() + " while reading " + ctx};
  return {Errc::eof, "premature end-of-input on " + path() + " while reading " + ctx};
}

Status AttrReader::bad_number(std::string_view text) const {
  return {Errc::malformed, "malformed numerical data from " + path() +
                               " while reading input attribute value: " + printable(text.substr(0, 100))};
}

Status AttrReader::bad_base64(std::string_view text) const {
  return {Errc::malformed, "malformed base64 data from " + path() +
                               " while reading input attribute value: " + printable(text.substr(0, 100))};
}

// Reads one name or value in the stream's format; *delimiter receives what
// ended it (plain: '=' or '\n'; base64: ':' or '\n').
Status AttrReader::read_string(std::string& out, std::string_view context, bool is_name, int* delimiter) {
  out.clear();
  const size_t max = limits_.max_string;
  auto too_long = [&] {
    return Status(Errc::too_long, "string length > " + std::to_string(max) + " characters from " + path() +
                                      " while reading " + std::string(context));
  };
  if (format_ == Format::zero) {
    int r = stream_.read_until('\0', out, max);
    if (r == -2) return too_long();
    if (r < 0) return io_failure(context, !out.empty());
    *delimiter = 0;
    return {};
  }
  const char name_end = format_ == Format::plain ? '=' : ':';
  for (;;) {
    int c = stream_.get();
    if (c < 0) return io_failure(context, !out.empty());
    if (c == '\n' || (is_name && c == name_end)) {
      *delimiter = c;
      break;
    }
    if (out.size() >= max) return too_long();
    out += static_cast<char>(c);
  }
  if (format_ == Format::base64) {
    auto decoded = base64_decode(out);
    if (!decoded) return bad_base64(out);
    out = std::move(*decoded);
  }
  return {};
}

Status AttrReader::next(Item& item) {
  item = Item{};
  int delim = 0;
  if (Status st = read_string(item.name, "input attribute name", true, &delim); !st) {
    if (st.code() == Errc::eof && at_list_start_ && item.name.empty()) return {Errc::closed, st.message()};
    return st;
  }
  at_list_start_ = false;
  if (format_ == Format::zero || delim == '\n') {
    // A name without a value: terminator, group delimiter, or (plain and
    // base64 forms only) an attribute that lacks "=" or ":".
    std::string_view bare(item.name.c_str());  // "{\0" counts as "{", as in Postfix
    if (item.name.empty()) {
      item.kind = Kind::end;
      at_list_start_ = true;
      return {};
    }
    if (bare == kGroupOpen || bare == kGroupClose) {
      item.kind = bare == kGroupOpen ? Kind::open : Kind::close;
      item.name = std::string(bare);
      return {};
    }
    if (format_ != Format::zero) {
      item.kind = Kind::attr;
      return {};
    }
  }
  item.kind = Kind::attr;
  item.has_value = true;
  return read_string(item.value, "input attribute value", false, &delim);
}

AttrReader::More AttrReader::more(Status* why) {
  int c = stream_.peek();
  if (c < 0) {
    if (why) *why = io_failure("input attribute name", false);
    return More::error;
  }
  if (c == (format_ == Format::zero ? 0 : '\n')) {
    stream_.get();
    at_list_start_ = true;
    return More::end;
  }
  return More::more;
}

Status AttrReader::skip_group() {
  Item item;
  for (int depth = 1; depth > 0;) {
    if (Status st = next(item); !st) return st;
    if (item.kind == Kind::open) ++depth;
    if (item.kind == Kind::close) --depth;
    if (item.kind == Kind::end)
      return {Errc::malformed, "missing '}' at end of attribute list from " + path()};
  }
  return {};
}

Status AttrReader::read_list(AttrList& out, const ReadOptions& options) {
  out.clear();
  Item item;
  int depth = 0;
  for (;;) {
    if (Status st = next(item); !st) return st;
    switch (item.kind) {
      case Kind::end:
        if (depth > 0) return {Errc::malformed, "missing '}' at end of attribute list from " + path()};
        return {};
      case Kind::open:
        ++depth;
        out.open_group();
        break;
      case Kind::close:
        if (--depth < 0) return {Errc::malformed, "unexpected '}' in attribute list from " + path()};
        out.close_group();
        break;
      case Kind::attr:
        out.add(std::move(item.name), options.printable ? printable(item.value) : std::move(item.value));
        break;
    }
  }
}

Status AttrReader::finish_list(bool strict, std::string_view expecting) {
  Item item;
  for (;;) {
    if (Status st = next(item); !st) return st;
    if (item.kind == Kind::end) return {};
    if (strict)
      return {Errc::unexpected, "unexpected attribute " + printable(item.name) + " from " + path() +
                                    " (expecting: " + std::string(expecting) + ")"};
    if (item.kind == Kind::open) {
      if (Status st = skip_group(); !st) return st;
    }
  }
}

Status AttrReader::seek(std::string_view name, bool strict, Item& item) {
  for (;;) {
    if (Status st = next(item); !st) return st;
    if (item.kind == Kind::end)
      return {Errc::missing, "missing attribute " + std::string(name) + " in input from " + path()};
    if (item.kind == Kind::attr && item.name == name) return {};
    if (strict)
      return {Errc::unexpected, "unexpected attribute " + printable(item.name) + " from " + path() +
                                    " (expecting: " + std::string(name) + ")"};
    if (item.kind == Kind::open) {
      if (Status st = skip_group(); !st) return st;
    }
  }
}

// ---------------------------------------------------------------- writing

Status write_failure(const Stream& stream) {
  if (stream.state() == IoState::timeout) return {Errc::timeout, "timeout on " + stream.name() + " while writing"};
  return {Errc::io, "write to " + stream.name() + ": " + stream.error_text()};
}

Status AttrWriter::send() {
  bool ok = stream_.write(enc_.bytes());
  enc_.clear();
  return ok ? Status() : write_failure(stream_);
}

Status AttrWriter::send(const AttrList& attrs, bool terminate) {
  if (Status st = enc_.list(attrs, terminate); !st) return st;
  return send();
}

Status AttrWriter::flush() { return stream_.flush() ? Status() : write_failure(stream_); }

}  // namespace mta::ipc
