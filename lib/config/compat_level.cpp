// compat_level.cpp: parsing of compatibility levels.
#include "config/compat_level.hpp"

#include <charconv>

namespace mta::config {

std::optional<CompatLevel> parse_compat_level(std::string_view text) {
  CompatLevel level{0, 0, 0};
  size_t part = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  if (p == end) return std::nullopt;
  for (;;) {
    if (part >= level.size() || p == end || *p < '0' || *p > '9') return std::nullopt;
    auto [next, ec] = std::from_chars(p, end, level[part]);
    if (ec != std::errc()) return std::nullopt;
    p = next;
    ++part;
    if (p == end) return level;
    if (*p != '.') return std::nullopt;
    ++p;
  }
}

}  // namespace mta::config
