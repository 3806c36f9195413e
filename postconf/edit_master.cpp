// edit_master.cpp: postconf -Me/-MX/-M#, -Fe and -Pe/-PX on master.cf, and
// the service patterns that these and the -M, -F and -P queries share.
//
// As Postfix's postconf: every request is checked before the file is read;
// a request names services by "name/type" where either may be "*", and
// applies to every entry that it matches.  Comment and blank lines are
// copied where they are, also between an entry's continuation lines.  An
// entry that -Me replaces is printed where it was; one that -Fe or -Pe
// changes is printed after the comment and blank lines that follow it (up
// to the next entry), as Postfix does; -M# puts "#" before the entry's own
// lines only.  -Me of a pattern that matches nothing appends the entry;
// -Fe, -Pe and -PX of one warn "unmatched service_name/type".
#include <algorithm>
#include <optional>

#include "config/config_file.hpp"
#include "config/master_cf.hpp"
#include "log/log.hpp"
#include "postconf/postconf.hpp"

namespace mta::postconf {
using config::ConfigError;
using config::MasterEntry;

std::optional<std::vector<std::string>> parse_service_pattern(std::string_view expr, size_t min_parts,
                                                              size_t max_parts) {
  if (!expr.empty() && expr.front() == '/') return std::nullopt;
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < expr.size()) {  // empty parts do not count ("a//b" is a/b)
    size_t slash = expr.find('/', i);
    if (slash == std::string_view::npos) slash = expr.size();
    if (slash > i) parts.emplace_back(expr.substr(i, slash - i));
    i = slash + 1;
  }
  if (parts.size() < min_parts || parts.size() > max_parts) return std::nullopt;
  for (const std::string& p : parts)
    if (p != "*" && p.find('*') != std::string::npos) return std::nullopt;  // "*" only alone
  parts.resize(max_parts, "*");
  return parts;
}

bool match_service_pattern(const std::vector<std::string>& pattern, const MasterEntry& e) {
  return pattern_matches(pattern[0], e.service) && pattern_matches(pattern[1], e.type);
}

int parse_field_pattern(const std::string& name) {
  if (name == "*") return kAnyField;
  auto it = std::find(std::begin(config::kMasterFieldNames), std::end(config::kMasterFieldNames), name);
  if (it == std::end(config::kMasterFieldNames))
    throw ConfigError("invalid service attribute name: \"" + name + "\"");
  return static_cast<int>(it - std::begin(config::kMasterFieldNames));
}

namespace {

constexpr int kCommandField = 7;

// One physical line of master.cf.
struct Line {
  std::string text;
  int entry = -1;      // the entry that it starts or continues; -1: comment, blank or stray
  bool start = false;  // the entry's first line
};

struct Entry {
  MasterEntry parsed;
  bool removed = false, commented = false;
  std::optional<MasterEntry> replaced;  // -Me: printed in place
  std::optional<MasterEntry> edited;    // -Fe, -Pe, -PX: printed after the comments below it
};

struct Request {
  std::string raw;
  std::vector<std::string> pattern;  // service, type[, field or parameter]
  std::string value;
  int field = -1;
  int matches = 0;
};

bool comment_or_blank(const std::string& line) {
  size_t f = 0;
  while (f < line.size() && config::is_blank(line[f])) ++f;
  return f == line.size() || line[f] == '#';
}

bool has_blank(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return config::is_blank(c); });
}

void parse_file(const std::string& text, const std::string& path, std::vector<Line>& lines,
                std::vector<Entry>& entries) {
  std::vector<std::string> logical;
  std::vector<int> first_line;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    Line l;
    l.text = text.substr(pos, (nl == std::string::npos ? text.size() : nl) - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (!comment_or_blank(l.text)) {
      if (!config::is_blank(l.text[0])) {
        l.entry = static_cast<int>(logical.size());
        l.start = true;
        logical.push_back(l.text);
        first_line.push_back(static_cast<int>(lines.size()) + 1);
      } else if (!logical.empty()) {  // continues the last entry, comments between or not
        l.entry = static_cast<int>(logical.size()) - 1;
        logical.back() += l.text;
      }
    }
    lines.push_back(std::move(l));
  }
  std::vector<std::string> warnings;
  for (size_t i = 0; i < logical.size(); ++i) {
    std::string& t = logical[i];
    while (!t.empty() && config::is_blank(t.back())) t.pop_back();
    Entry e;
    e.parsed = config::parse_master_entry(t, path, first_line[i], &warnings);
    entries.push_back(std::move(e));
  }
}

// -Fe: the field's value is checked alone, with Postfix's message.
void set_field(MasterEntry& e, int field, const std::string& value) {
  if (field == kCommandField) {
    std::vector<std::string> warnings;
    std::vector<std::string> argv = config::split_master_args(value, &warnings);
    if (argv.empty()) throw ConfigError("empty command field");
    e.argv = std::move(argv);
    return;
  }
  if (!config::valid_master_field(static_cast<size_t>(field), value))
    throw ConfigError("invalid " + std::string(config::kMasterFieldNames[field]) + " field \"" + value + "\" in \"" +
                      value + "\"");
  std::string* fields[] = {&e.service, &e.type, &e.private_, &e.unprivileged, &e.chroot, &e.wakeup, &e.process_limit};
  *fields[field] = value;
}

// -Pe (a value) and -PX (none) of "-o name=value" in the command.
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

// Checks one request as Postfix does, before anything is read.
Request parse_request(const std::string& arg, MasterScope scope, Edit edit) {
  static const char* kEditOptions = "-Me, -Fe, -Pe, -X, or -#";
  Request r;
  r.raw = arg;
  if (arg.find('\n') != std::string::npos)
    throw ConfigError(std::string(kEditOptions) + " accept no multi-line input");
  size_t f = 0;
  while (f < arg.size() && config::is_blank(arg[f])) ++f;
  if (f < arg.size() && arg[f] == '#') throw ConfigError(std::string(kEditOptions) + " accept no comment input");
  std::string pattern;
  if (edit == Edit::set) {
    std::string err = config::split_name_value(std::string_view(arg).substr(f), &pattern, &r.value);
    if (!err.empty()) throw ConfigError(err);
  } else {
    if (arg.find('=') != std::string::npos) throw ConfigError("-X or -# requires names without value");
    pattern = arg.substr(f);
    while (!pattern.empty() && config::is_blank(pattern.back())) pattern.pop_back();
  }
  switch (scope) {
    case MasterScope::entry: {
      auto p = parse_service_pattern(pattern, 2, 2);
      if (!p) throw ConfigError("-Me, -MX or -M# requires service_name/type");
      r.pattern = *p;
      break;
    }
    case MasterScope::field: {
      auto p = parse_service_pattern(pattern, 3, 3);
      if (!p) throw ConfigError("-Fe or -FX requires service_name/type/field_name");
      r.pattern = *p;
      r.field = parse_field_pattern(r.pattern[2]);
      if (r.field == kAnyField) throw ConfigError("-Fe does not accept wild-card field name");
      if (edit == Edit::set && r.field < kCommandField && has_blank(r.value))
        throw ConfigError("-Fe does not accept whitespace in non-command field");
      break;
    }
    case MasterScope::parameter: {
      auto p = parse_service_pattern(pattern, 3, 3);
      if (!p) throw ConfigError("-Pe or -PX requires service_name/type/parameter");
      r.pattern = *p;
      if (r.pattern[2] == "*") throw ConfigError("-Pe does not accept wild-card parameter name");
      if (edit == Edit::set && has_blank(r.value))
        throw ConfigError("-Pe does not accept whitespace in parameter value");
      break;
    }
  }
  return r;
}

}  // namespace

std::string edit_master_cf(const std::string& text, const std::string& path, MasterScope scope,
                           Edit edit, const std::vector<std::string>& args) {
  std::vector<Request> requests;
  for (const std::string& arg : args) requests.push_back(parse_request(arg, scope, edit));
  auto new_entry = [&](const Request& r) {
    try {
      return config::parse_master_entry(r.value, path, 0, nullptr);
    } catch (const ConfigError& e) {
      // A field's own error stands; the count's names the request.
      if (!std::string_view(e.what()).ends_with("bad field count")) throw;
      throw ConfigError("bad field count: \"" + r.raw + "\"");
    }
  };

  std::vector<Line> lines;
  std::vector<Entry> entries;
  parse_file(text, path, lines, entries);
  for (Entry& e : entries) {
    for (Request& r : requests) {
      if (!match_service_pattern(r.pattern, e.parsed)) continue;
      ++r.matches;
      if (scope == MasterScope::entry) {
        if (edit == Edit::set) e.replaced = new_entry(r);
        else if (edit == Edit::remove) e.removed = true;
        else e.commented = true;
        continue;
      }
      if (!e.edited) e.edited = e.parsed;
      if (scope == MasterScope::field) set_field(*e.edited, r.field, r.value);
      else set_parameter(*e.edited, r.pattern[2], edit == Edit::set ? std::optional(r.value) : std::nullopt);
    }
  }

  std::string out;
  std::string deferred;  // an edited entry waits for the next entry or the end
  for (const Line& l : lines) {
    if (l.start && !deferred.empty()) {
      out += deferred;
      deferred.clear();
    }
    if (l.entry < 0) {
      out += l.text + "\n";
      continue;
    }
    const Entry& e = entries[static_cast<size_t>(l.entry)];
    if (e.removed) continue;
    if (e.replaced) {
      if (l.start) out += config::format_master_entry(*e.replaced, true) + "\n";
      continue;
    }
    if (e.commented) {
      out += "#" + l.text + "\n";
      continue;
    }
    if (e.edited) {
      if (l.start) deferred = config::format_master_entry(*e.edited, true) + "\n";
      continue;
    }
    out += l.text + "\n";
  }
  out += deferred;
  for (const Request& r : requests) {
    if (r.matches > 0) continue;
    if (scope == MasterScope::entry && edit == Edit::set)
      out += config::format_master_entry(new_entry(r), true) + "\n";
    else if (scope != MasterScope::entry)
      log::warning("unmatched service_name/type: \"%s\"", r.raw.c_str());
  }
  return out;
}

}  // namespace mta::postconf
