// postconf.hpp: the parts of postconf(1) shared by its source files.
#pragma once

#include <string>
#include <vector>

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

}  // namespace mta::postconf
