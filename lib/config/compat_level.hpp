// compat_level.hpp: Postfix compatibility levels ("0", "2", "3.6", "3.7.1").
//
// A level is major[.minor[.patch]]; missing parts count as 0, so "3.6" ==
// "3.6.0" and "3.10" > "3.9".  The <level, >=level, ... operators of main.cf
// expansion and the compatibility_level parameter itself use this order.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace mta::config {

using CompatLevel = std::array<unsigned long, 3>;

std::optional<CompatLevel> parse_compat_level(std::string_view text);

// The highest level whose defaults this program implements (Postfix 3.7's).
inline constexpr std::string_view kCurrentCompatLevel = "3.6";

}  // namespace mta::config
