// rfc822_text.cpp: see rfc822_text.hpp.
#include "bounce/rfc822_text.hpp"

#include <cstdio>
#include <cstdlib>

namespace mta::bounce {
namespace {

bool is_822_dot_string(std::string_view local, bool eight_bit_clean) {
  if (local.empty() || local.front() == '.') return false;
  for (size_t i = 0; i < local.size(); ++i) {
    auto ch = static_cast<unsigned char>(local[i]);
    if (ch == 0) break;
    if (ch == '.' && i + 1 < local.size() && local[i + 1] == '.') return false;
    if (ch > 127 && !eight_bit_clean) return false;
    if (ch == ' ' || ch < 32 || ch == 127) return false;
    if (std::string_view("()<>@,;:\\\"[]").find(static_cast<char>(ch)) != std::string_view::npos) return false;
  }
  return local.back() != '.';
}

}  // namespace

std::string quote_822_local(std::string_view address, bool eight_bit_clean) {
  // A source route ("@a,@b:user@c") stays as it is; the local part follows it.
  size_t start = 0;
  if (!address.empty() && address.front() == '@') {
    size_t colon = address.find(':');
    if (colon != std::string_view::npos) start = colon + 1;
  }
  size_t at = address.rfind('@');
  size_t end = at == std::string_view::npos || at < start ? address.size() : at;
  std::string_view local = address.substr(start, end - start);
  if (is_822_dot_string(local, eight_bit_clean)) return std::string(address);
  std::string out(address.substr(0, start));
  out += '"';
  for (char c : local) {
    auto ch = static_cast<unsigned char>(c);
    if ((ch > 127 && !eight_bit_clean) || c == '"' || c == '\\' || c == '\r') out += '\\';
    out += c;
  }
  out += '"';
  out.append(address.substr(end));
  return out;
}

size_t header_name_length(std::string_view line) {
  size_t len = 0;
  bool after_name = false;
  for (char c : line) {
    auto ch = static_cast<unsigned char>(c);
    if (c == ':') return len > 0 ? len : 0;
    if (c == ' ' || c == '\t') {
      if (len == 0) return 0;
      after_name = true;
      continue;
    }
    if (ch == 0 || ch >= 128 || ch < 32 || ch == 127 || after_name) return 0;
    ++len;
  }
  return 0;
}

bool is_header_or_continuation(std::string_view line) {
  return (!line.empty() && (line.front() == ' ' || line.front() == '\t')) || header_name_length(line) > 0;
}

std::string mail_date(std::time_t when) {
  constexpr int kHourMin = 60;
  constexpr int kDayMin = 24 * kHourMin;
  struct tm gmt {};
  struct tm lt {};
  gmtime_r(&when, &gmt);
  localtime_r(&when, &lt);
  // The offset from UTC by hand, as Postfix computes it (tm_gmtoff is not POSIX).
  int gmtoff = (lt.tm_hour - gmt.tm_hour) * kHourMin + lt.tm_min - gmt.tm_min;
  if (lt.tm_year < gmt.tm_year)
    gmtoff -= kDayMin;
  else if (lt.tm_year > gmt.tm_year)
    gmtoff += kDayMin;
  else if (lt.tm_yday < gmt.tm_yday)
    gmtoff -= kDayMin;
  else if (lt.tm_yday > gmt.tm_yday)
    gmtoff += kDayMin;
  if (lt.tm_sec <= gmt.tm_sec - 60)
    gmtoff -= 1;
  else if (lt.tm_sec >= gmt.tm_sec + 60)
    gmtoff += 1;
  char buf[128];
  size_t n = std::strftime(buf, sizeof buf, "%a, %e %b %Y %H:%M:%S ", &lt);
  std::string out(buf, n);
  std::snprintf(buf, sizeof buf, "%+03d%02d", gmtoff / kHourMin, std::abs(gmtoff) % kHourMin);
  out += buf;
  n = std::strftime(buf, sizeof buf, " (%Z)", &lt);
  out.append(buf, n);
  return out;
}

std::vector<std::string> line_wrap(std::string_view text, int width, int indent) {
  std::vector<std::string> lines;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  auto emit = [&](size_t from, size_t len, int at_indent) {
    while (len > 0 && is_space(text[from + len - 1])) --len;
    lines.push_back(std::string(static_cast<size_t>(at_indent), ' ') + std::string(text.substr(from, len)));
  };
  int curr_indent = 0;
  long curr_len = width;
  if (indent < 0) {
    curr_indent = -indent;
    curr_len = width + indent;
  }
  size_t start_line = 0;
  size_t word = 0;
  bool more = true;
  while (more) {
    size_t next_space = text.find_first_of(" \t", word);
    if (next_space == std::string_view::npos) next_space = text.size();
    if (word > start_line && static_cast<long>(next_space - start_line) > curr_len) {
      emit(start_line, word - start_line, curr_indent);
      while (word < text.size() && is_space(text[word])) ++word;
      if (start_line == 0) {
        curr_indent += indent;
        curr_len -= indent;
      }
      start_line = word;
    }
    more = next_space < text.size();
    word = next_space + 1;
  }
  emit(start_line, text.size() - start_line, curr_indent);
  return lines;
}

std::string dsn_mail_name(std::string_view mail_name) {
  std::string out(mail_name);
  for (char& c : out)
    if (std::string_view(" \t\r\n()<>@,;:\\\".[]").find(c) != std::string_view::npos) c = '-';
  return out;
}

bool equal_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool is_utf8_non_ascii(std::string_view text) {
  bool ascii = true;
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    ascii = false;
    size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (c >= 0xF5 || n == 0 || i + n > text.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    auto c1 = static_cast<unsigned char>(text[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F))
      return false;
    i += n;
  }
  return !text.empty() && !ascii;
}

}  // namespace mta::bounce
