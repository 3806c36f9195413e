// config_file.hpp: the line discipline of main.cf and master.cf.
//
// As Postfix's readlline: a line whose first non-blank character is '#' is
// a comment and an all-blank line is empty; both are skipped, even between a
// line and its continuation.  A line that starts with whitespace continues
// the previous logical line (appended as is, without its newline); with no
// previous line it is reported and ignored.  Line numbers are those of the
// first physical line of each logical line.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mta::config {

// A configuration error; what() names file and line where there is one.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LogicalLine {
  std::string text;
  int line = 0;
};

// Splits text into logical lines; warnings (already phrased as Postfix
// phrases them, with the file name) are appended to *warnings.
std::vector<LogicalLine> split_logical_lines(std::string_view text, const std::string& path,
                                             std::vector<std::string>* warnings);

// Reads a whole file; throws ConfigError("open PATH: reason") when it cannot.
std::string read_file(const std::string& path);

struct Assignment {
  std::string name;
  std::string value;
  int line = 0;
};

// "name = value" with blanks around '=' and trailing blanks removed.
// Returns an error text (Postfix's) or an empty string on success.
std::string split_name_value(std::string_view text, std::string* name, std::string* value);

// Every assignment of a main.cf, in file order (a later assignment of
// another value is reported, as Postfix does); throws ConfigError with
// "PATH, line N: missing '=' after attribute name: "TEXT"" and the like.
std::vector<Assignment> parse_main_cf(std::string_view text, const std::string& path,
                                      std::vector<std::string>* warnings);

bool is_blank(char c);

}  // namespace mta::config
