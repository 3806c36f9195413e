// table_source.hpp: the text files that postmap, postalias and texthash read.
//
// Line discipline as main.cf (comments, blank lines, continuation lines that
// start with whitespace).  A postmap source line is "key whitespace value";
// an aliases line is "name: value, value..." where the name may be quoted.
// Bad lines are warned about with file and line, as Postfix phrases it, and
// skipped: a build never stops silently halfway.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mta::maps {

struct SourceEntry {
  std::string key;
  std::string value;
  int line = 0;
};

// Throws DictError("open PATH: reason") when the file cannot be read.
std::vector<SourceEntry> read_table_source(const std::string& path);
std::vector<SourceEntry> read_alias_source(const std::string& path);
// The same on text already read ("-" for standard input, say).
std::vector<SourceEntry> parse_table_source(std::string_view text, const std::string& path);
std::vector<SourceEntry> parse_alias_source(std::string_view text, const std::string& path);

}  // namespace mta::maps
