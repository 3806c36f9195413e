// master_cf.cpp: parsing and printing of master.cf entries.
#include "config/master_cf.hpp"

#include <algorithm>

namespace mta::config {
namespace {

bool yes_no_dash(std::string_view v) { return v == "y" || v == "n" || v == "-"; }

bool digits(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// "name = value" -> "name=value" for -o arguments.
std::string normalise_override(const std::string& arg) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos) return arg;
  return trim(std::string_view(arg).substr(0, eq)) + "=" + trim(std::string_view(arg).substr(eq + 1));
}

bool needs_braces(const std::string& arg) {
  return arg.empty() || std::any_of(arg.begin(), arg.end(), [](char c) { return is_blank(c); });
}

std::string shown(const std::string& arg) { return needs_braces(arg) ? "{" + arg + "}" : arg; }

}  // namespace

std::vector<std::string> split_master_args(std::string_view text, std::vector<std::string>* warnings) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i])) ++i;
    if (i >= text.size()) break;
    if (text[i] == '{') {
      int depth = 0;
      size_t j = i;
      for (; j < text.size(); ++j) {
        if (text[j] == '{') ++depth;
        else if (text[j] == '}' && --depth == 0) break;
      }
      if (j >= text.size()) {
        if (warnings)
          warnings->push_back("master.cf: missing '}' in \"" + std::string(text.substr(i)) + "\"");
        out.push_back(trim(text.substr(i + 1)));
        break;
      }
      out.push_back(trim(text.substr(i + 1, j - i - 1)));
      i = j + 1;
    } else {
      size_t j = i;
      while (j < text.size() && !is_blank(text[j])) ++j;
      out.emplace_back(text.substr(i, j - i));
      i = j;
    }
  }
  return out;
}

bool valid_master_field(size_t index, std::string_view value) {
  switch (index) {
    case 0: return !value.empty();
    case 1: return value == "inet" || value == "unix" || value == "unix-dgram" || value == "fifo" || value == "pass";
    case 2: case 3: case 4: return yes_no_dash(value);
    case 5:
      if (!value.empty() && value.back() == '?') value.remove_suffix(1);
      return value == "-" || digits(value);
    case 6: return value == "-" || digits(value);
    default: return true;  // the command is checked when it is split
  }
}

MasterEntry parse_master_entry(std::string_view text, const std::string& path, int line,
                               std::vector<std::string>* warnings) {
  std::vector<std::string> f = split_master_args(text, warnings);
  if (f.size() < 8)
    throw ConfigError("file " + path + ": line " + std::to_string(line) + ": bad field count");
  for (size_t i = 1; i < 7; ++i)
    if (!valid_master_field(i, f[i]))
      throw ConfigError("invalid " + std::string(kMasterFieldNames[i]) + " field \"" + f[i] + "\" in \"" +
                        std::string(text) + "\"");
  MasterEntry e;
  e.line = line;
  e.service = f[0];
  e.type = f[1];
  e.private_ = f[2];
  e.unprivileged = f[3];
  e.chroot = f[4];
  e.wakeup = f[5];
  e.process_limit = f[6];
  e.argv.assign(f.begin() + 7, f.end());
  for (size_t i = 1; i + 1 < e.argv.size(); ++i) {
    if (e.argv[i] == "-o") {
      e.argv[i + 1] = normalise_override(e.argv[i + 1]);
      ++i;
    }
  }
  return e;
}

std::vector<MasterEntry> parse_master_cf(std::string_view text, const std::string& path,
                                         std::vector<std::string>* warnings) {
  std::vector<MasterEntry> out;
  for (const LogicalLine& l : split_logical_lines(text, path, warnings))
    out.push_back(parse_master_entry(l.text, path, l.line, warnings));
  return out;
}

std::vector<std::pair<std::string, std::string>> MasterEntry::overrides() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] != "-o") continue;
    const std::string& nv = argv[++i];
    size_t eq = nv.find('=');
    if (eq == std::string::npos) continue;
    out.emplace_back(nv.substr(0, eq), nv.substr(eq + 1));
  }
  return out;
}

std::string format_master_entry(const MasterEntry& e, bool fold) {
  static constexpr size_t kColumn[] = {0, 11, 17, 25, 33, 41, 49, 57};
  static constexpr size_t kLineLimit = 80, kIndent = 4;
  const std::string* fields[] = {&e.service,   &e.type,   &e.private_, &e.unprivileged,
                                 &e.chroot,    &e.wakeup, &e.process_limit};
  std::string out;
  size_t len = 0;
  auto add = [&](std::string_view s) {
    out += s;
    len += s.size();
  };
  auto separate = [&](size_t goal) {
    do add(" ");
    while (len < goal);
  };
  for (size_t i = 0; i < 7; ++i) {
    if (i > 0) separate(kColumn[i]);
    add(*fields[i]);
  }
  if (e.argv.empty()) return out;
  separate(kColumn[7]);
  add(e.argv[0]);
  // Arguments: an option that takes a value stays with it; when folding, such
  // a pair always starts and ends a line, and other words wrap at the limit.
  bool in_options = true;
  auto wrap_or_space = [&](size_t width) {
    if (fold && len > kIndent && len + 1 + width >= kLineLimit) {
      out += "\n    ";
      len = kIndent;
    } else {
      add(" ");
    }
  };
  for (size_t i = 1; i < e.argv.size(); ++i) {
    const std::string& arg = e.argv[i];
    if (in_options && (arg.empty() || arg[0] != '-' || arg == "--")) in_options = false;
    bool takes_value = in_options && arg.size() == 2 && std::string_view("o").find(arg[1]) !=
                                                            std::string_view::npos;
    if (takes_value && i + 1 < e.argv.size()) {
      std::string value = shown(e.argv[i + 1]);
      if (fold) len = kLineLimit;
      wrap_or_space(arg.size() + 1 + value.size());
      add(arg);
      add(" ");
      add(value);
      if (fold) len = kLineLimit;
      ++i;
      continue;
    }
    std::string text = shown(arg);
    wrap_or_space(text.size());
    add(text);
  }
  return out;
}

std::string format_master_command(const MasterEntry& e) {
  std::string out;
  for (const std::string& a : e.argv) {
    if (!out.empty()) out += ' ';
    out += shown(a);
  }
  return out;
}

}  // namespace mta::config
