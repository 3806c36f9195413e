// security_options.cpp: parsing of the SASL security option lists.
#include "sasl/security_options.hpp"

#include <strings.h>

namespace mta::sasl {

namespace {

struct Name {
  const char* name;
  bool SecurityOptions::*flag;
};

constexpr Name kNames[] = {
    {"noanonymous", &SecurityOptions::noanonymous},
    {"noplaintext", &SecurityOptions::noplaintext},
    {"noactive", &SecurityOptions::noactive},
    {"nodictionary", &SecurityOptions::nodictionary},
    {"mutual_auth", &SecurityOptions::mutual_auth},
    {"forward_secrecy", &SecurityOptions::forward_secrecy},
};

bool is_separator(char c) { return c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n'; }

}  // namespace

bool parse_security_options(std::string_view value, std::string_view param, SecurityOptions& out,
                            std::string& error) {
  out = SecurityOptions{};
  size_t i = 0;
  while (i < value.size()) {
    if (is_separator(value[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < value.size() && !is_separator(value[end])) ++end;
    std::string word(value.substr(i, end - i));
    i = end;
    bool known = false;
    for (const Name& n : kNames) {
      if (strcasecmp(word.c_str(), n.name) == 0) {
        out.*n.flag = true;
        known = true;
        break;
      }
    }
    if (!known) {
      error = "unknown " + std::string(param) + " value \"" + word + "\" in \"" +
              std::string(value) + "\"";
      return false;
    }
  }
  return true;
}

}  // namespace mta::sasl
