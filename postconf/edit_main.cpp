// edit_main.cpp: postconf -e, -X and -# on main.cf.
//
// Works on physical lines so that comments, blank lines and the order of
// everything else stay as they were.  Each active assignment of a named
// parameter is replaced ("name = value"), removed, or commented out with its
// continuation lines (comment lines inside a continuation are kept, as
// Postfix keeps them).  New parameters are appended at the end, in the order
// given.
#include <map>
#include <set>

#include "config/config_file.hpp"
#include "log/log.hpp"
#include "postconf/postconf.hpp"

namespace mta::postconf {
using config::ConfigError;
using config::is_blank;

std::string edit_main_cf(const std::string& text, const std::string& path, Edit edit,
                         const std::vector<std::string>& args) {
  std::map<std::string, std::string> values;  // name -> new value (set)
  std::vector<std::string> order;
  std::set<std::string> names;
  for (const std::string& a : args) {
    std::string name = a, value;
    if (edit == Edit::set) {
      std::string err = config::split_name_value(a, &name, &value);
      if (!err.empty()) throw ConfigError(err);
    }
    if (!names.count(name)) order.push_back(name);
    names.insert(name);
    values[name] = value;
  }

  std::string out;
  std::set<std::string> done;
  bool in_target = false;  // inside the continuation of an edited assignment
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl;
    std::string line = text.substr(pos, end - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    size_t first = 0;
    while (first < line.size() && is_blank(line[first])) ++first;
    bool comment_or_blank = first == line.size() || line[first] == '#';
    if (comment_or_blank) {
      out += line + "\n";
      continue;
    }
    if (first > 0) {  // continuation line
      if (!in_target) out += line + "\n";
      else if (edit == Edit::comment) out += "#" + line + "\n";
      continue;
    }
    size_t n = 0;
    while (n < line.size() && !is_blank(line[n]) && line[n] != '=') ++n;
    std::string name = line.substr(0, n);
    in_target = names.count(name) > 0;
    if (!in_target) {
      out += line + "\n";
      continue;
    }
    if (!done.insert(name).second && edit == Edit::set)
      log::warning("%s: multiple entries for \"%s\"", path.c_str(), name.c_str());
    if (edit == Edit::set) out += name + " = " + values[name] + "\n";
    else if (edit == Edit::comment) out += "#" + line + "\n";
  }
  if (edit == Edit::set)
    for (const std::string& name : order)
      if (!done.count(name)) out += name + " = " + values[name] + "\n";
  return out;
}

}  // namespace mta::postconf
