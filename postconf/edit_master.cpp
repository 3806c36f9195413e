// edit_master.cpp: postconf -Me/-MX/-M#, -Fe and -Pe/-PX on master.cf.
//
// An entry that an edit touches is printed anew as `postconf -Mf` prints it;
// every other line, comments included, stays as it was.  -Me of a service
// that is not there appends it.
#include <algorithm>
#include <optional>

#include "config/config_file.hpp"
#include "config/master_cf.hpp"
#include "log/log.hpp"
#include "postconf/postconf.hpp"

namespace mta::postconf {
using config::ConfigError;
using config::MasterEntry;

namespace {

struct PhysicalEntry {
  std::vector<std::string> lines;  // the entry's lines, comments inside included
  std::optional<MasterEntry> entry;  // nullopt for comment and blank lines
  bool removed = false;
  bool commented = false;
  bool changed = false;
  bool moves = false;  // Postfix writes an entry rewritten by -Fe/-Pe after the comments below it
};

std::vector<PhysicalEntry> group_lines(const std::string& text, const std::string& path) {
  std::vector<PhysicalEntry> out;
  std::vector<std::string> warnings;
  size_t pos = 0;
  int number = 0;
  int entry_index = -1;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, (nl == std::string::npos ? text.size() : nl) - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++number;
    size_t first = 0;
    while (first < line.size() && config::is_blank(line[first])) ++first;
    bool comment_or_blank = first == line.size() || line[first] == '#';
    if (!comment_or_blank && first == 0) {
      out.push_back({{line}, MasterEntry{}, false, false, false});
      out.back().entry->line = number;
      entry_index = static_cast<int>(out.size()) - 1;
      continue;
    }
    if (!comment_or_blank && entry_index >= 0 && entry_index == static_cast<int>(out.size()) - 1) {
      out.back().lines.push_back(line);
      continue;
    }
    if (comment_or_blank && entry_index >= 0 && entry_index == static_cast<int>(out.size()) - 1 &&
        first > 0) {
      out.back().lines.push_back(line);  // indented comment inside an entry
      continue;
    }
    out.push_back({{line}, std::nullopt, false, false, false});
    if (!comment_or_blank) entry_index = -1;
  }
  for (PhysicalEntry& p : out) {
    if (!p.entry) continue;
    std::string logical;
    for (const std::string& l : p.lines) {
      size_t f = 0;
      while (f < l.size() && config::is_blank(l[f])) ++f;
      if (f < l.size() && l[f] == '#') continue;
      logical += l;
    }
    while (!logical.empty() && config::is_blank(logical.back())) logical.pop_back();
    int line = p.entry->line;
    p.entry = config::parse_master_entry(logical, path, line, &warnings);
  }
  return out;
}

std::vector<std::string> split_slash(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return out;
    start = slash + 1;
  }
}

PhysicalEntry* find_entry(std::vector<PhysicalEntry>& all, const std::string& service,
                          const std::string& type) {
  for (PhysicalEntry& p : all)
    if (p.entry && !p.removed && p.entry->service == service && p.entry->type == type) return &p;
  return nullptr;
}

void set_field(MasterEntry& e, const std::string& field, const std::string& value,
               const std::string& path) {
  if (field == "command") {
    std::vector<std::string> warnings;
    e.argv = config::split_master_args(value, &warnings);
    if (e.argv.empty()) throw ConfigError("empty command field");
    return;
  }
  // Re-parse the entry with the field replaced so that its value is checked.
  std::vector<std::string> f = {e.service, e.type, e.private_, e.unprivileged, e.chroot, e.wakeup,
                                e.process_limit};
  static const char* names[] = {"service", "type", "private", "unprivileged", "chroot", "wakeup",
                                "process_limit"};
  auto it = std::find(std::begin(names), std::end(names), field);
  if (it == std::end(names)) throw ConfigError("invalid field name: \"" + field + "\"");
  f[static_cast<size_t>(it - std::begin(names))] = value;
  std::string line;
  for (const std::string& s : f) line += s + " ";
  line += "x";
  MasterEntry checked = config::parse_master_entry(line, path, e.line, nullptr);
  checked.argv = e.argv;
  checked.line = e.line;
  e = checked;
}

void set_parameter(MasterEntry& e, const std::string& name, const std::optional<std::string>& value) {
  std::vector<std::string> argv = {e.argv.empty() ? std::string() : e.argv[0]};
  bool placed = false;
  for (size_t i = 1; i < e.argv.size(); ++i) {
    if (e.argv[i] == "-o" && i + 1 < e.argv.size()) {
      const std::string& nv = e.argv[i + 1];
      if (nv.substr(0, nv.find('=')) == name) {
        if (value && !placed) {
          argv.push_back("-o");
          argv.push_back(name + "=" + *value);
          placed = true;
        }
        ++i;
        continue;
      }
    }
    argv.push_back(e.argv[i]);
  }
  if (value && !placed) {
    // New settings go after the last daemon option, before other arguments.
    size_t at = 1;
    for (size_t i = 1; i < argv.size(); ++i) {
      if (argv[i].empty() || argv[i][0] != '-') break;
      at = i + 1;
      if (argv[i] == "-o" && i + 1 < argv.size()) at = ++i + 1;
    }
    argv.insert(argv.begin() + static_cast<long>(at), {"-o", name + "=" + *value});
  }
  e.argv = std::move(argv);
}

}  // namespace

std::string edit_master_cf(const std::string& text, const std::string& path, MasterScope scope,
                           Edit edit, const std::vector<std::string>& args) {
  std::vector<PhysicalEntry> all = group_lines(text, path);
  for (const std::string& arg : args) {
    std::string key = arg, value;
    bool has_value = false;
    if (edit == Edit::set) {
      size_t eq = arg.find('=');
      if (eq == std::string::npos) throw ConfigError("missing '=' after attribute name: \"" + arg + "\"");
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      while (!key.empty() && config::is_blank(key.back())) key.pop_back();
      while (!value.empty() && config::is_blank(value.front())) value.erase(0, 1);
      has_value = true;
    }
    std::vector<std::string> parts = split_slash(key);
    size_t want = scope == MasterScope::entry ? 2 : 3;
    if (parts.size() != want || std::any_of(parts.begin(), parts.end(), [](auto& p) { return p.empty(); }))
      throw ConfigError("invalid " + std::string(scope == MasterScope::entry ? "service/type"
                                                  : scope == MasterScope::field ? "service/type/field"
                                                                                : "service/type/parameter") +
                        " syntax: \"" + key + "\"");
    PhysicalEntry* target = find_entry(all, parts[0], parts[1]);
    if (scope == MasterScope::entry && edit == Edit::set) {
      MasterEntry e = config::parse_master_entry(value, path, 0, nullptr);
      if (target) {
        e.line = target->entry->line;
        target->entry = e;
        target->changed = true;
      } else {
        all.push_back({{}, e, false, false, true});
      }
      (void)has_value;
      continue;
    }
    if (!target) {
      if (scope != MasterScope::entry) log::warning("unmatched service_name/type: \"%s\"", arg.c_str());
      continue;  // nothing to change
    }
    if (scope == MasterScope::entry) {
      if (edit == Edit::remove) target->removed = true;
      else target->commented = true;
    } else if (scope == MasterScope::field) {
      set_field(*target->entry, parts[2], value, path);
      target->changed = target->moves = true;
    } else {
      set_parameter(*target->entry, parts[2], edit == Edit::set ? std::optional(value) : std::nullopt);
      target->changed = target->moves = true;
    }
  }
  std::string out;
  std::string deferred;  // a moved entry waits for the next entry or the end
  for (const PhysicalEntry& p : all) {
    if (p.entry && !deferred.empty()) {
      out += deferred;
      deferred.clear();
    }
    if (p.removed) continue;
    if (p.commented) {
      for (const std::string& l : p.lines) out += "#" + l + "\n";
      continue;
    }
    if (p.changed) {
      (p.moves ? deferred : out) += config::format_master_entry(*p.entry, true) + "\n";
      continue;
    }
    for (const std::string& l : p.lines) out += l + "\n";
  }
  return out + deferred;
}

}  // namespace mta::postconf
