// postconf.hpp: the parts of postconf(1) shared by its source files.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/master_cf.hpp"

namespace mta::postconf {

enum class Edit { none, set, remove, comment };

// main.cf editing (-e, -X, -#): returns the new text of main.cf.
// For Edit::set, args are "name=value"; otherwise parameter names.
std::string edit_main_cf(const std::string& text, const std::string& path, Edit edit,
                         const std::vector<std::string>& args);

// master.cf editing (-Me, -MX, -M#, -Fe, -Pe, -PX): returns the new text.
enum class MasterScope { entry, field, parameter };
std::string edit_master_cf(const std::string& text, const std::string& path, MasterScope scope,
                           Edit edit, const std::vector<std::string>& args);

// Service patterns, as Postfix's postconf: "name[/type[/field or parameter]]"
// split on '/' (empty parts do not count), where a part may be "*" (only
// alone); missing trailing parts are "*".  nullopt when the expression has
// fewer than min_parts or more than max_parts parts, starts with '/', or has
// a '*' inside a part.
std::optional<std::vector<std::string>> parse_service_pattern(std::string_view expr, size_t min_parts,
                                                              size_t max_parts);
inline bool pattern_matches(const std::string& pattern, const std::string& value) {
  return pattern == "*" || pattern == value;
}
bool match_service_pattern(const std::vector<std::string>& pattern, const config::MasterEntry& e);
// The index of a master.cf field name in config::kMasterFieldNames, or
// kAnyField for "*"; throws ConfigError for other names.
inline constexpr int kAnyField = -1;
int parse_field_pattern(const std::string& name);

}  // namespace mta::postconf
