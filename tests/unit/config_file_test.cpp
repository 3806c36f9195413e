// Unit tests of main.cf line discipline and assignments.
#include <catch2/catch.hpp>

#include "config/config_file.hpp"

using namespace mta::config;

TEST_CASE("comments, blank lines and continuation lines") {
  std::vector<std::string> warnings;
  auto a = parse_main_cf(
      "# comment\n"
      "a = x   \n"
      "   y\n"
      "  # an indented comment inside is skipped\n"
      "\n"
      "\ty z\n"
      "b=1\n"
      "b = 2\n"
      "empty =\n",
      "main.cf", &warnings);
  REQUIRE(a.size() == 4);
  CHECK(a[0].name == "a");
  CHECK(a[0].value == "x      y\ty z");  // appended as is, as Postfix does
  CHECK(a[0].line == 2);
  CHECK(a[1].name == "b");
  CHECK(a[1].value == "1");
  CHECK(a[2].value == "2");
  CHECK(a[2].line == 8);
  CHECK(a[3].name == "empty");
  CHECK(a[3].value.empty());
  // Postfix warns when a later assignment changes an earlier value.
  CHECK(warnings == std::vector<std::string>{"main.cf, line 8: overriding earlier entry: b=1"});
}

TEST_CASE("the same value twice is not reported") {
  std::vector<std::string> warnings;
  parse_main_cf("a = 1\na = 1\n", "main.cf", &warnings);
  CHECK(warnings.empty());
}

TEST_CASE("an orphan continuation is reported once, shortened to 30 characters") {
  std::vector<std::string> warnings;
  auto a = parse_main_cf("  first orphan line that is rather long\n  more of it\ny = 2\n", "m", &warnings);
  CHECK(a.size() == 1);
  CHECK(warnings == std::vector<std::string>{
                        "m: logical line must not start with whitespace: \"  first orphan line that is ra...\""});
}

TEST_CASE("a first line that starts with whitespace is reported and ignored") {
  std::vector<std::string> warnings;
  auto a = parse_main_cf("  x = 1\ny = 2\n", "/etc/postfix/main.cf", &warnings);
  REQUIRE(a.size() == 1);
  CHECK(a[0].name == "y");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] ==
        "/etc/postfix/main.cf: logical line must not start with whitespace: \"  x = 1\"");
}

TEST_CASE("a line that is neither assignment nor comment names file and line") {
  CHECK_THROWS_WITH(parse_main_cf("a = 1\n\njunk line here\n", "/d/main.cf", nullptr),
                    "/d/main.cf, line 3: missing '=' after attribute name: \"junk line here\"");
  CHECK_THROWS_WITH(parse_main_cf("= value\n", "/d/main.cf", nullptr),
                    "/d/main.cf, line 1: missing attribute name: \"= value\"");
}

TEST_CASE("split_name_value trims blanks around the value") {
  std::string n, v;
  CHECK(split_name_value("  name  =  some value  ", &n, &v).empty());
  CHECK(n == "name");
  CHECK(v == "some value");
  CHECK(split_name_value("name=", &n, &v).empty());
  CHECK(v.empty());
  CHECK_FALSE(split_name_value("bad name=1", &n, &v).empty());
}

TEST_CASE("a missing file is an error naming it") {
  CHECK_THROWS_WITH(read_file("/nonexistent/main.cf"),
                    "open /nonexistent/main.cf: No such file or directory");
}
