// queue_id.cpp: see queue_id.hpp.
#include "queue/queue_id.hpp"

#include <climits>
#include <cstdio>

namespace mta::queue {
namespace {

constexpr std::string_view kSafeAlphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
constexpr unsigned kTimeBase = 52;  // seconds and microseconds of a long ID
constexpr unsigned kInodeBase = 51;  // the inode of a long ID: no 'z'
constexpr size_t kSecondsMinWidth = 6;
constexpr size_t kMicrosWidth = 4;
constexpr size_t kTimeWidth = kSecondsMinWidth + kMicrosWidth;
constexpr char kInodeSeparator = 'z';
constexpr size_t kShortMicrosWidth = 5;

int safe_digit(char c, unsigned base) {
  size_t pos = kSafeAlphabet.substr(0, base).find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

bool is_upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

std::string hex(unsigned long value, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*lX", width, value);
  return buf;
}

// Position of the separator of a long ID, or npos.
size_t long_id_separator(std::string_view id) {
  size_t z = id.rfind(kInodeSeparator);
  if (z == std::string_view::npos || z < kTimeWidth) return std::string_view::npos;
  return z;
}

}  // namespace

std::string safe_ultostr(unsigned long value, unsigned base, size_t min_width) {
  if (base < 2 || base > kSafeAlphabet.size()) return {};
  std::string out;
  while (value != 0) {
    out.insert(out.begin(), kSafeAlphabet[value % base]);
    value /= base;
  }
  if (out.size() < min_width) out.insert(0, min_width - out.size(), '0');
  return out;
}

std::optional<unsigned long> safe_strtoul(std::string_view text, unsigned base) {
  if (text.empty() || base < 2 || base > kSafeAlphabet.size()) return std::nullopt;
  unsigned long value = 0;
  for (char c : text) {
    int digit = safe_digit(c, base);
    if (digit < 0) return std::nullopt;
    if (value > (ULONG_MAX - static_cast<unsigned long>(digit)) / base) return std::nullopt;
    value = value * base + static_cast<unsigned long>(digit);
  }
  return value;
}

std::string short_queue_id(long usec, unsigned long inode) {
  return hex(static_cast<unsigned long>(usec), static_cast<int>(kShortMicrosWidth)) + hex(inode, 1);
}

std::string long_queue_id(long sec, long usec, unsigned long inode) {
  return safe_ultostr(static_cast<unsigned long>(sec), kTimeBase, kSecondsMinWidth) +
         safe_ultostr(static_cast<unsigned long>(usec), kTimeBase, kMicrosWidth) + kInodeSeparator +
         safe_ultostr(inode, kInodeBase, 0);
}

std::string make_queue_id(bool long_form, const timeval& when, unsigned long inode) {
  return long_form ? long_queue_id(when.tv_sec, when.tv_usec, inode) : short_queue_id(when.tv_usec, inode);
}

bool is_short_queue_id(std::string_view id) {
  if (id.size() <= kShortMicrosWidth || id.size() > kShortMicrosWidth + 16) return false;
  for (char c : id)
    if (!is_upper_hex(c)) return false;
  return true;
}

bool is_long_queue_id(std::string_view id) {
  size_t z = long_id_separator(id);
  if (z == std::string_view::npos || z + 1 == id.size() || id.size() > 255) return false;
  for (char c : id.substr(0, z))
    if (safe_digit(c, kTimeBase) < 0) return false;
  for (char c : id.substr(z + 1))
    if (safe_digit(c, kInodeBase) < 0) return false;
  return true;
}

bool is_valid_queue_id(std::string_view id) { return is_short_queue_id(id) || is_long_queue_id(id); }

bool is_queue_file_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!alnum && c != '_') return false;
  }
  return true;
}

std::optional<unsigned long> queue_id_inode(std::string_view id) {
  if (is_long_queue_id(id)) return safe_strtoul(id.substr(long_id_separator(id) + 1), kInodeBase);
  if (!is_short_queue_id(id)) return std::nullopt;
  unsigned long value = 0;
  for (char c : id.substr(kShortMicrosWidth)) {
    unsigned digit = static_cast<unsigned>(c <= '9' ? c - '0' : c - 'A' + 10);
    if (value > (ULONG_MAX >> 4)) return std::nullopt;
    value = (value << 4) | digit;
  }
  return value;
}

std::string queue_id_hash_key(std::string_view id) {
  size_t z = long_id_separator(id);
  if (z == std::string_view::npos) return std::string(id);
  auto usec = safe_strtoul(id.substr(z - kMicrosWidth, kMicrosWidth), kTimeBase);
  // A malformed time part hashes on the ID itself; it never names a real file.
  if (!usec) return std::string(id);
  return hex(*usec, static_cast<int>(kShortMicrosWidth));
}

std::string dir_forest(std::string_view key, int depth) {
  if (depth < 1 || key.empty()) return {};
  std::string out;
  for (int level = 0; level < depth; ++level) {
    char c = static_cast<size_t>(level) < key.size() ? key[static_cast<size_t>(level)] : '_';
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '.' || c == '/') return {};
    out += c;
    out += '/';
  }
  return out;
}

std::string queue_id_hash_dirs(std::string_view id, int depth) {
  return dir_forest(queue_id_hash_key(id), depth);
}

}  // namespace mta::queue
