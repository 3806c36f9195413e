// lib/maps pattern tables: regexp, pcre and cidr as Postfix 3.7 reads and
// searches them.  Expected results and warning texts were taken from the
// real postmap -q (postfix-oracle) on the same table text.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "log/log.hpp"
#include "maps/dict_types.hpp"

namespace fs = std::filesystem;
using mta::maps::DictError;
using mta::maps::DictPtr;
using mta::maps::OpenFlags;

namespace {

// A table file in a fresh directory, removed at the end of the test.
class TableFile {
 public:
  explicit TableFile(const std::string& text) {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("mta-pattern-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::create_directories(dir_);
    path_ = (dir_ / "table").string();
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TableFile() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TableFile(const TableFile&) = delete;
  TableFile& operator=(const TableFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  fs::path dir_;
  std::string path_;
};

// Collects what is logged while it lives (stderr stays quiet).
class LogCapture {
 public:
  LogCapture() : file_(fs::temp_directory_path() / ("mta-pattern-log-" + std::to_string(getpid()))) {
    fs::remove(file_);
    mta::log::set_stderr(false);
    REQUIRE(mta::log::set_file(file_.string()));
  }
  ~LogCapture() {
    mta::log::set_file("");
    mta::log::set_stderr(true);
    fs::remove(file_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The logged texts, without the time/host/tag prefix of the file sink.
  std::vector<std::string> lines() const {
    std::ifstream in(file_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
      size_t at = line.find("]: ");
      out.push_back(at == std::string::npos ? line : line.substr(at + 3));
    }
    return out;
  }
  bool has(const std::string& text) const {
    for (const std::string& l : lines())
      if (l == text) return true;
    return false;
  }

 private:
  fs::path file_;
};

std::string value_of(const DictPtr& d, const std::string& key) {
  mta::maps::Result r = d->lookup(key);
  REQUIRE_FALSE(r.failed());
  return r.found() ? r.value : "<miss>";
}

std::string warning_for(const std::string& type, const TableFile& t, int line, const std::string& text) {
  return "warning: " + type + " map " + t.path() + ", line " + std::to_string(line) + ": " + text;
}

}  // namespace

// ---------------------------------------------------------------- regexp

TEST_CASE("regexp: case-insensitive by default; i toggles") {
  TableFile t("/^xyz$/i sensitive\n/abc/ lower\n/^q$/ii twice\n");
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(d->type() == "regexp");
  CHECK(d->is_pattern());
  CHECK(value_of(d, "ABC") == "lower");
  CHECK(value_of(d, "xabcx") == "lower");
  CHECK(value_of(d, "xyz") == "sensitive");
  CHECK(value_of(d, "XYZ") == "<miss>");
  CHECK(value_of(d, "Q") == "twice");  // "ii" toggles twice: insensitive again
  CHECK(value_of(d, "q") == "twice");
}

TEST_CASE("regexp: x toggles extended syntax, m toggles multi-line") {
  TableFile t("/^a+$/x basic\n/^b+$/ extended\n/^d$/m multi\n/^c$/ single\n");
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "a+") == "basic");  // '+' is literal in basic syntax
  CHECK(value_of(d, "aa") == "<miss>");
  CHECK(value_of(d, "bbb") == "extended");
  CHECK(value_of(d, "x\nd") == "multi");
  CHECK(value_of(d, "x\nc") == "<miss>");
}

TEST_CASE("regexp: negation, double negation and /p1/!/p2/") {
  TableFile t("/^a/!/b/ a-not-b\n!/abc/ not-abc\n!!/abc/ abc\n");
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "ax") == "a-not-b");
  CHECK(value_of(d, "xyz") == "not-abc");
  CHECK(value_of(d, "abc") == "abc");  // line 1 fails on !/b/, line 2 on !/abc/
}

TEST_CASE("regexp: $1 ${2} $(3) and $$ substitution; unset groups are empty") {
  TableFile t("/^(a)(b)?(c)$/ [$1|${2}|$(3)|$$]\n/^(x)(y)$/ $2$1\n");
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "abc") == "[a|b|c|$]");
  CHECK(value_of(d, "ac") == "[a||c|$]");
  CHECK(value_of(d, "xy") == "yx");
}

TEST_CASE("regexp: refused substitutions are warned about and skipped") {
  TableFile t(
      "!/(a)/ x$1\n"
      "/(b)/ x$2\n"
      "/(c)/ y$0\n"
      "/(d)/ z$a$b\n"
      "/(e)/ w${1\n"
      "/(f)/ v$\n"
      "/./ fallback\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  for (const char* key : {"a", "b", "c", "d", "e", "f"}) CHECK(value_of(d, key) == "fallback");
  CHECK(log.has(warning_for("regexp", t, 1, "$number found in negative match replacement text: skipping this rule")));
  CHECK(log.has(warning_for("regexp", t, 2, "out of range replacement index \"2\": skipping this rule")));
  CHECK(log.has(warning_for("regexp", t, 3, "out-of-range replacement index \"0\"")));
  CHECK(log.has(warning_for("regexp", t, 3, "bad replacement syntax: skipping this rule")));
  CHECK(log.has(warning_for("regexp", t, 4, "non-numeric replacement index \"a\"")));
  CHECK(log.has(warning_for("regexp", t, 4, "non-numeric replacement index \"b\"")));
  CHECK(log.has("warning: truncated macro reference: \"w${1\""));
  CHECK(log.has("warning: empty macro name: \"v$\""));
  CHECK(log.lines().size() == 11);  // and "bad replacement syntax" for lines 4-6
}

TEST_CASE("regexp: a rule that does not compile is skipped, the others work") {
  TableFile t("/(a/ broken\n/abc/q unknown-flag\n/a/ works\n/b/\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "abc") == "works");
  CHECK(value_of(d, "b") == "");
  CHECK(log.has(warning_for("regexp", t, 1, "Unmatched ( or \\(")));
  CHECK(log.has(warning_for("regexp", t, 2, "unknown regexp option \"q\": skipping this rule")));
  CHECK(log.has(warning_for("regexp", t, 4, "no replacement text: using empty string")));
}

TEST_CASE("regexp: if/endif nest, in any case, with negation") {
  TableFile t(
      "if /a/\n"
      "/b/ ab\n"
      "IF !/c/\n"
      "/d/ a-d-not-c\n"
      "EndIf\n"
      "/e/ ae\n"
      "endif\n"
      "/./ any\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "ab") == "ab");
  CHECK(value_of(d, "b") == "any");
  CHECK(value_of(d, "ad") == "a-d-not-c");
  CHECK(value_of(d, "adc") == "any");
  CHECK(value_of(d, "ade") == "a-d-not-c");
  CHECK(value_of(d, "ace") == "ae");
  CHECK(log.lines().empty());
}

TEST_CASE("regexp: stray endif, extra text, and an if without endif") {
  TableFile t(
      "endif\n"
      "/a/ x\n"
      "IF /b/ extra\n"
      "/c/ y\n"
      "ENDIF junk\n"
      "if /q/\n"
      "/q/ qq\n"
      "/./ never-without-q\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "a") == "x");
  CHECK(value_of(d, "bc") == "y");
  CHECK(value_of(d, "q") == "qq");
  // An IF without ENDIF that fails ends the search.
  CHECK(value_of(d, "z") == "<miss>");
  CHECK(log.has(warning_for("regexp", t, 1, "ignoring ENDIF without matching IF")));
  CHECK(log.has(warning_for("regexp", t, 3, "ignoring extra text after IF statement: \"extra\"")));
  CHECK(log.has(warning_for("regexp", t, 3, "do not prepend whitespace to statements between IF and ENDIF")));
  CHECK(log.has(warning_for("regexp", t, 5, "ignoring extra text after ENDIF")));
  CHECK(log.has(warning_for("regexp", t, 6, "IF has no matching ENDIF")));
}

TEST_CASE("regexp: continuation lines, comments, blank lines and line numbers") {
  TableFile t(
      "  /z/ leading-continuation-without-a-line\n"
      "/a/ first\n"
      "  second\n"
      "# a comment inside the logical line\n"
      "\n"
      "   third\n"
      "/(b)/ $2\n"
      "foo bar\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "a") == "first  second   third");
  CHECK(value_of(d, "z") == "<miss>");
  CHECK(log.has("warning: " + t.path() +
                ": logical line must not start with whitespace: \"  /z/ leading-continuation-wit...\""));
  CHECK(log.has(warning_for("regexp", t, 7, "out of range replacement index \"2\": skipping this rule")));
  CHECK(log.has(warning_for("regexp", t, 8, "ignoring unrecognized request")));
}

TEST_CASE("regexp: other delimiters, escaped delimiters, missing delimiter") {
  TableFile t("|a/b| slash\n/x\\/y/ escaped\n/unterminated x\n/abc\\\n");
  LogCapture log;
  DictPtr d = mta::maps::open_regexp(t.path(), {});
  CHECK(value_of(d, "a/b") == "slash");
  CHECK(value_of(d, "x/y") == "escaped");
  // Postfix's regexp reader takes a backslash that ends the line for the
  // closing delimiter: "/abc\" is pattern abc with an empty result.
  CHECK(value_of(d, "abc") == "");
  CHECK(log.has(warning_for("regexp", t, 3, "no closing regexp delimiter \"/\": skipping this rule")));
}

TEST_CASE("regexp: inline tables, missing files, read-only") {
  DictPtr d = mta::maps::open_regexp("{ {/a(b)/ x$1}, { /c/ y } }", {});
  CHECK(value_of(d, "ab") == "xb");
  CHECK(value_of(d, "c") == "y");
  CHECK_THROWS_WITH(mta::maps::open_regexp("{{/a/ x}", {}), "regexp map: missing '}' in \"{{/a/ x}\"");
  CHECK_THROWS_WITH(mta::maps::open_regexp("{/a/ x}", {}), "regexp map: no '{' at start of text in \"/a/\"");
  CHECK_THROWS_WITH(mta::maps::open_regexp("/nonexistent-dir/table", {}),
                    "open /nonexistent-dir/table: No such file or directory");
  CHECK(d->update("k", "v").failed());
  std::string key, value, error;
  CHECK_FALSE(d->sequence(true, &key, &value, &error));
  CHECK_FALSE(error.empty());
}

// ---------------------------------------------------------------- pcre

TEST_CASE("pcre: caseless and dotall by default; flags toggle") {
  TableFile t(
      "/^x.y$/s no-dotall\n"
      "/^x.y$/ dotall\n"
      "/^abc$/i sensitive\n"
      "/^abc$/ caseless\n"
      "/^b$/m multi\n"
      "/a b c/x extended\n"
      "/q/A anchored\n"
      "/z$/E end-only\n"
      "/^(r+)/U [$1]\n"
      "/w/X obsolete\n");
  LogCapture log;
  DictPtr d = mta::maps::open_pcre(t.path(), {});
  CHECK(d->type() == "pcre");
  CHECK(value_of(d, "X\nY") == "dotall");
  CHECK(value_of(d, "abc") == "sensitive");
  CHECK(value_of(d, "ABC") == "caseless");
  CHECK(value_of(d, "a\nb") == "multi");
  CHECK(value_of(d, "xABCx") == "extended");
  CHECK(value_of(d, "q") == "anchored");
  CHECK(value_of(d, "zq") == "<miss>");
  CHECK(value_of(d, "z") == "end-only");
  CHECK(value_of(d, "z\n") == "<miss>");
  CHECK(value_of(d, "rrr") == "[r]");
  CHECK(value_of(d, "w") == "obsolete");
  CHECK(log.has(warning_for("pcre", t, 10, "ignoring obsolete regexp option \"X\"")));
}

TEST_CASE("pcre: substitution, negation and refused substitutions") {
  TableFile t(
      "/^(a)(b)?(c)$/ [$1|${2}|$3|$$]\n"
      "!/(d)/ $1\n"
      "/(e)/ $0\n"
      "/(f)/ $2\n"
      "!/^n/ not-n\n"
      "/a/!/b/ pcre-has-no-second-pattern\n");
  LogCapture log;
  DictPtr d = mta::maps::open_pcre(t.path(), {});
  CHECK(value_of(d, "ac") == "[a||c|$]");
  CHECK(value_of(d, "abc") == "[a|b|c|$]");
  CHECK(value_of(d, "x") == "not-n");
  CHECK(value_of(d, "n") == "<miss>");
  CHECK(log.has(warning_for("pcre", t, 2, "$number found in negative match replacement text: skipping this rule")));
  CHECK(log.has(warning_for("pcre", t, 3, "out of range replacement index \"0\"")));
  CHECK(log.has(warning_for("pcre", t, 3, "bad replacement syntax: skipping this rule")));
  CHECK(log.has(warning_for("pcre", t, 4, "out of range replacement index \"2\": skipping this rule")));
  CHECK(log.has(warning_for("pcre", t, 6, "unknown regexp option \"!\": skipping this rule")));
}

TEST_CASE("pcre: a rule that does not compile is skipped, the others work") {
  TableFile t("/(a/ broken\n/v/k unknown\n/unterminated\n/a/ works\n");
  LogCapture log;
  DictPtr d = mta::maps::open_pcre(t.path(), {});
  CHECK(value_of(d, "a") == "works");
  CHECK(value_of(d, "v") == "<miss>");
  CHECK(log.has(warning_for("pcre", t, 1, "error in regex at offset 2: missing closing parenthesis")));
  CHECK(log.has(warning_for("pcre", t, 2, "unknown regexp option \"k\": skipping this rule")));
  CHECK(log.has(warning_for("pcre", t, 3, "no closing regexp delimiter \"/\": ignoring this rule")));
}

TEST_CASE("pcre: if/endif nesting and unbalanced if/endif") {
  TableFile t(
      "endif\n"
      "if !/a/\n"
      "if /b/\n"
      "/c/ b-c-not-a\n"
      "endif\n"
      "/b/ b-not-a\n"
      "endif\n"
      "/./ any\n"
      "if /z/\n");
  LogCapture log;
  DictPtr d = mta::maps::open_pcre(t.path(), {});
  CHECK(value_of(d, "bc") == "b-c-not-a");
  CHECK(value_of(d, "b") == "b-not-a");
  CHECK(value_of(d, "abc") == "any");
  CHECK(log.has(warning_for("pcre", t, 1, "ignoring ENDIF without matching IF")));
  CHECK(log.has(warning_for("pcre", t, 9, "IF has no matching ENDIF")));
  CHECK_THROWS_WITH(mta::maps::open_pcre("/nonexistent-dir/table", {}),
                    "open /nonexistent-dir/table: No such file or directory");
}

// ---------------------------------------------------------------- cidr

TEST_CASE("cidr: IPv4 networks and bare addresses, first match wins") {
  TableFile t(
      "192.168.1.0/24 net24\n"
      "192.168.0.0/16 net16\n"
      "10.0.0.1 bare\n"
      "[10.0.0.2] bracketed\n"
      "10.0.0.0/8   spaced value  \n"
      "0.0.0.0/0 all4\n");
  DictPtr d = mta::maps::open_cidr(t.path(), {});
  CHECK(d->type() == "cidr");
  CHECK(d->is_pattern());
  CHECK(value_of(d, "192.168.1.5") == "net24");
  CHECK(value_of(d, "192.168.2.5") == "net16");
  CHECK(value_of(d, "10.0.0.1") == "bare");
  CHECK(value_of(d, "10.0.0.2") == "bracketed");
  CHECK(value_of(d, "10.0.0.3") == "spaced value");
  CHECK(value_of(d, "8.8.8.8") == "all4");
  CHECK(value_of(d, "::1") == "<miss>");        // other family
  CHECK(value_of(d, "not-an-ip") == "<miss>");
  CHECK(value_of(d, "01.2.3.4") == "<miss>");   // inet_pton refuses leading zeros
}

TEST_CASE("cidr: IPv6 with and without brackets") {
  TableFile t(
      "2001:db8::/32 v6net\n"
      "[2001:db9::1] v6bare\n"
      "[2001:dba::]/48 v6-bracket-then-prefix\n"
      "[2001:dbb::/48] v6-prefix-in-brackets\n"
      "::1 loopback\n");
  DictPtr d = mta::maps::open_cidr(t.path(), {});
  CHECK(value_of(d, "2001:db8::5") == "v6net");
  CHECK(value_of(d, "2001:DB8:ffff::1") == "v6net");
  CHECK(value_of(d, "2001:db9::1") == "v6bare");
  CHECK(value_of(d, "2001:db9::2") == "<miss>");
  CHECK(value_of(d, "2001:dba::7") == "v6-bracket-then-prefix");
  CHECK(value_of(d, "2001:dbb:1::7") == "<miss>");
  CHECK(value_of(d, "2001:dbb::7") == "v6-prefix-in-brackets");
  CHECK(value_of(d, "::1") == "loopback");
  CHECK(value_of(d, "[::1]") == "<miss>");  // keys are plain addresses
}

TEST_CASE("cidr: bad prefixes, host bits and bad addresses are skipped with a warning") {
  TableFile t(
      "1.2.3.0/33 a\n"
      "::/129 b\n"
      "1.2.3.4/24 c\n"
      "2001:db8::1/32 d\n"
      "1.2.3.0/x e\n"
      "1.2.3.256 f\n"
      "1.2.3.4\n"
      "[1.2.3.4 g\n"
      "[1.2.3.4]x h\n"
      "1.2.3.0/24 good\n"
      "2001:db8::/32 good6\n");
  LogCapture log;
  DictPtr d = mta::maps::open_cidr(t.path(), {});
  CHECK(value_of(d, "1.2.3.4") == "good");
  CHECK(value_of(d, "2001:db8::1") == "good6");
  auto w = [&](int line, const std::string& text) {
    return warning_for("cidr", t, line, text + ": skipping this rule");
  };
  CHECK(log.has(w(1, "bad mask length in \"1.2.3.0/33\"")));
  CHECK(log.has(w(2, "bad mask length in \"::/129\"")));
  CHECK(log.has(w(3, "non-null host address bits in \"1.2.3.4/24\", perhaps you should use \"1.2.3.0/24\" instead")));
  CHECK(log.has(
      w(4, "non-null host address bits in \"2001:db8::1/32\", perhaps you should use \"2001:db8::/32\" instead")));
  CHECK(log.has(w(5, "bad mask value in \"1.2.3.0/x\"")));
  CHECK(log.has(w(6, "bad address pattern: \"1.2.3.256\"")));
  CHECK(log.has(w(7, "no lookup result")));
  CHECK(log.has(w(8, "missing ']' character after \"[1.2.3.4\"")));
  CHECK(log.has(w(9, "garbage after \"[1.2.3.4]\"")));
  CHECK(log.lines().size() == 9);
}

TEST_CASE("cidr: negation never crosses address families") {
  TableFile t("!192.168.0.0/16 not-private\n192.168.1.1 private\n! ::/0 not-v6\n");
  DictPtr d = mta::maps::open_cidr(t.path(), {});
  CHECK(value_of(d, "8.8.8.8") == "not-private");
  CHECK(value_of(d, "192.168.1.1") == "private");
  CHECK(value_of(d, "2001:db8::1") == "<miss>");
}

TEST_CASE("cidr: if/endif nesting, negated if, unbalanced if/endif") {
  TableFile t(
      "endif\n"
      "if 10.0.0.0/8\n"
      "if !10.1.0.0/16\n"
      "10.0.0.0/8 ten-not-ten-one\n"
      "endif\n"
      "10.1.2.0/24 ten-one-two\n"
      "ENDIF\n"
      "If 1.0.0.0/8 junk\n"
      "endif junk\n"
      "1.2.3.4 inside-a-broken-if\n"
      "if 2.0.0.0/8\n"
      "2.2.2.2 two\n");
  LogCapture log;
  DictPtr d = mta::maps::open_cidr(t.path(), {});
  CHECK(value_of(d, "10.2.3.4") == "ten-not-ten-one");
  CHECK(value_of(d, "10.1.2.3") == "ten-one-two");
  CHECK(value_of(d, "10.1.3.3") == "<miss>");
  CHECK(value_of(d, "1.2.3.4") == "inside-a-broken-if");  // the broken IF was dropped
  CHECK(value_of(d, "2.2.2.2") == "two");
  CHECK(value_of(d, "3.3.3.3") == "<miss>");
  CHECK(log.has(warning_for("cidr", t, 1, "ENDIF without IF: skipping this rule")));
  CHECK(log.has(warning_for("cidr", t, 8, "bad mask value in \"1.0.0.0/8 junk\": skipping this rule")));
  CHECK(log.has(warning_for("cidr", t, 9, "garbage after ENDIF: skipping this rule")));
  CHECK(log.has(warning_for("cidr", t, 11, "IF has no matching ENDIF")));
}

TEST_CASE("cidr: inline tables and missing files") {
  DictPtr d = mta::maps::open_cidr("{ {192.0.2.0/24 doc}, {2001:db8::/32 doc6} }", {});
  CHECK(value_of(d, "192.0.2.9") == "doc");
  CHECK(value_of(d, "2001:db8::9") == "doc6");
  CHECK_THROWS_WITH(mta::maps::open_cidr("/nonexistent-dir/table", {}),
                    "open /nonexistent-dir/table: No such file or directory");
}
