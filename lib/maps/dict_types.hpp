// dict_types.hpp: the openers that the registry in dict.cpp knows.
// Each opener throws DictError with Postfix's message when it cannot open.
#pragma once

#include <string_view>

#include "maps/dict.hpp"

namespace mta::maps {

DictPtr open_hash(std::string_view name, const OpenFlags& flags);     // dict_db.cpp
DictPtr open_btree(std::string_view name, const OpenFlags& flags);    // dict_db.cpp
DictPtr open_texthash(std::string_view name, const OpenFlags& flags); // dict_simple.cpp
DictPtr open_inline(std::string_view name, const OpenFlags& flags);   // dict_simple.cpp
DictPtr open_static(std::string_view name, const OpenFlags& flags);   // dict_simple.cpp
DictPtr open_fail(std::string_view name, const OpenFlags& flags);     // dict_simple.cpp
DictPtr open_unix(std::string_view name, const OpenFlags& flags);     // dict_simple.cpp
DictPtr open_regexp(std::string_view name, const OpenFlags& flags);   // dict_regexp.cpp
DictPtr open_pcre(std::string_view name, const OpenFlags& flags);     // dict_pcre.cpp
DictPtr open_cidr(std::string_view name, const OpenFlags& flags);     // dict_cidr.cpp

}  // namespace mta::maps
