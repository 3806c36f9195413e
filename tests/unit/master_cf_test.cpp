// Unit tests of the master.cf parser and printer.
#include <catch2/catch.hpp>

#include "config/master_cf.hpp"

using namespace mta::config;

TEST_CASE("fields, continuation lines, -o forms and braces") {
  std::vector<std::string> warnings;
  auto entries = parse_master_cf(
      "# comment\n"
      "smtp      inet  n       -       y       -       -       smtpd\n"
      "  -o { smtpd_banner = hello world $myhostname }\n"
      "  -o smtpd_tls_security_level=may -v\n"
      "pickup    unix  n       -       y       60      1       pickup\n"
      "tlsmgr    unix  -       -       y       1000?   1       tlsmgr\n"
      "x unix - n n - 2 pipe flags=R argv=/bin/cat {a b} { c d }\n",
      "master.cf", &warnings);
  REQUIRE(entries.size() == 4);
  const MasterEntry& smtp = entries[0];
  CHECK(smtp.service == "smtp");
  CHECK(smtp.type == "inet");
  CHECK(smtp.private_ == "n");
  CHECK(smtp.chroot == "y");
  CHECK(smtp.line == 2);
  REQUIRE(smtp.argv.size() == 6);
  CHECK(smtp.argv[2] == "smtpd_banner=hello world $myhostname");
  auto o = smtp.overrides();
  REQUIRE(o.size() == 2);
  CHECK(o[0] == std::pair<std::string, std::string>{"smtpd_banner", "hello world $myhostname"});
  CHECK(o[1].second == "may");
  CHECK(entries[1].wakeup == "60");
  CHECK(entries[2].wakeup == "1000?");
  CHECK(entries[3].argv == std::vector<std::string>{"pipe", "flags=R", "argv=/bin/cat", "a b", "c d"});
  CHECK(warnings.empty());
}

TEST_CASE("postconf -M columns and folding") {
  auto e = parse_master_entry("smtp inet n - y - - smtpd -o {smtpd_banner = a b} -v", "m", 1, nullptr);
  CHECK(format_master_entry(e, false) ==
        "smtp       inet  n       -       y       -       -       smtpd -o {smtpd_banner=a b} -v");
  CHECK(format_master_entry(e, true) ==
        "smtp       inet  n       -       y       -       -       smtpd\n"
        "    -o {smtpd_banner=a b}\n"
        "    -v");
  auto long_name = parse_master_entry("verylongservicename-abcdef unix - n n - 2 pipe flags=R", "m", 1, nullptr);
  CHECK(format_master_entry(long_name, false) ==
        "verylongservicename-abcdef unix - n n    -       2       pipe flags=R");
  CHECK(format_master_command(e) == "smtpd -o {smtpd_banner=a b} -v");
}

TEST_CASE("bad entries get Postfix's messages") {
  CHECK_THROWS_WITH(parse_master_cf("smtp inet n - y - -\n", "/d/master.cf", nullptr),
                    "file /d/master.cf: line 1: bad field count");
  CHECK_THROWS_WITH(parse_master_entry("smtp bogus n - y - - smtpd", "m", 1, nullptr),
                    "invalid type field \"bogus\" in \"smtp bogus n - y - - smtpd\"");
  CHECK_THROWS_WITH(parse_master_entry("smtp inet x - y - - smtpd", "m", 1, nullptr),
                    "invalid private field \"x\" in \"smtp inet x - y - - smtpd\"");
  CHECK_THROWS_WITH(parse_master_entry("smtp inet n q y - - smtpd", "m", 1, nullptr),
                    Catch::StartsWith("invalid unprivileged field \"q\""));
  CHECK_THROWS_WITH(parse_master_entry("smtp inet n - 1 - - smtpd", "m", 1, nullptr),
                    Catch::StartsWith("invalid chroot field \"1\""));
  CHECK_THROWS_WITH(parse_master_entry("smtp inet n - y abc - smtpd", "m", 1, nullptr),
                    Catch::StartsWith("invalid wakeup field \"abc\""));
  CHECK_THROWS_WITH(parse_master_entry("smtp inet n - y - -5 smtpd", "m", 1, nullptr),
                    Catch::StartsWith("invalid process_limit field \"-5\""));
}

TEST_CASE("an unbalanced brace is a warning, not a loss") {
  std::vector<std::string> warnings;
  auto e = parse_master_entry("smtp inet n - y - - smtpd -o {a = b", "m", 1, &warnings);
  CHECK(e.argv.back() == "a=b");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "master.cf: missing '}' in \"{a = b\"");
}
