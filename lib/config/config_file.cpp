// config_file.cpp: logical lines and name = value assignments.
#include "config/config_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mta::config {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::vector<LogicalLine> split_logical_lines(std::string_view text, const std::string& path,
                                             std::vector<std::string>* warnings) {
  std::vector<LogicalLine> out;
  enum { none, open, orphan } state = none;  // what an indented line continues
  std::string orphan_text;
  auto flush_orphan = [&] {
    if (state != orphan) return;
    if (warnings) {
      std::string shown = orphan_text.size() > 30 ? orphan_text.substr(0, 30) + "..." : orphan_text;
      warnings->push_back(path + ": logical line must not start with whitespace: \"" + shown + "\"");
    }
    orphan_text.clear();
  };
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++number;
    size_t first = 0;
    while (first < line.size() && is_blank(line[first])) ++first;
    if (first == line.size() || line[first] == '#') continue;
    if (first > 0) {
      if (state == open) {
        out.back().text += line;
      } else {
        state = orphan;  // reported once per logical line, then ignored
        orphan_text += line;
      }
      continue;
    }
    flush_orphan();
    out.push_back({std::string(line), number});
    state = open;
  }
  flush_orphan();
  for (auto& l : out)
    while (!l.text.empty() && is_blank(l.text.back())) l.text.pop_back();
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError("read " + path + ": " + std::strerror(errno));
  return ss.str();
}

std::string split_name_value(std::string_view text, std::string* name, std::string* value) {
  size_t i = 0;
  while (i < text.size() && is_blank(text[i])) ++i;
  size_t start = i;
  while (i < text.size() && !is_blank(text[i]) && text[i] != '=') ++i;
  if (i == start) return "missing attribute name: \"" + std::string(text) + "\"";
  *name = std::string(text.substr(start, i - start));
  while (i < text.size() && is_blank(text[i])) ++i;
  if (i >= text.size() || text[i] != '=')
    return "missing '=' after attribute name: \"" + std::string(text) + "\"";
  ++i;
  while (i < text.size() && is_blank(text[i])) ++i;
  size_t end = text.size();
  while (end > i && is_blank(text[end - 1])) --end;
  *value = std::string(text.substr(i, end - i));
  return {};
}

std::vector<Assignment> parse_main_cf(std::string_view text, const std::string& path,
                                      std::vector<std::string>* warnings) {
  std::vector<Assignment> out;
  for (const LogicalLine& l : split_logical_lines(text, path, warnings)) {
    Assignment a;
    std::string err = split_name_value(l.text, &a.name, &a.value);
    if (!err.empty()) throw ConfigError(path + ", line " + std::to_string(l.line) + ": " + err);
    a.line = l.line;
    // A second assignment with another value is legal but often a mistake.
    for (auto it = out.rbegin(); warnings && it != out.rend(); ++it) {
      if (it->name != a.name) continue;
      if (it->value != a.value)
        warnings->push_back(path + ", line " + std::to_string(a.line) + ": overriding earlier entry: " +
                            it->name + "=" + it->value);
      break;
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace mta::config
