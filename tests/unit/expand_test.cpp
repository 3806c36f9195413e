// Unit tests of main.cf macro expansion: every form and every error.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "config/expand.hpp"

using mta::config::expand;
using mta::config::ExpandError;

namespace {

struct MapSource : mta::config::MacroSource {
  std::map<std::string, std::string, std::less<>> values;
  mutable std::set<std::string> undefined_seen;
  std::optional<std::string> lookup(std::string_view name) const override {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
  void undefined(std::string_view name) const override { undefined_seen.emplace(name); }
};

MapSource source() {
  MapSource s;
  s.values = {{"name", "value"}, {"empty", ""}, {"host", "mail.$domain"}, {"domain", "example.org"},
              {"compatibility_level", "3.6"}, {"level2", "2"}, {"ten", "10"}};
  return s;
}

}  // namespace

TEST_CASE("plain references in all three spellings") {
  auto s = source();
  CHECK(expand("$name", s) == "value");
  CHECK(expand("${name}", s) == "value");
  CHECK(expand("$(name)", s) == "value");
  CHECK(expand("a $name, b", s) == "a value, b");
  CHECK(expand("$name.x", s) == "value.x");
  CHECK(expand("no macros here", s) == "no macros here");
}

TEST_CASE("$$ is a literal dollar") {
  auto s = source();
  CHECK(expand("a$$b", s) == "a$b");
  CHECK(expand("$$name", s) == "$name");
}

TEST_CASE("expansion is recursive") {
  auto s = source();
  CHECK(expand("$host", s) == "mail.example.org");
  s.values["a"] = "$b";
  s.values["b"] = "${c}";
  s.values["c"] = "$(host)";
  CHECK(expand("<$a>", s) == "<mail.example.org>");
}

TEST_CASE("undefined parameters expand to nothing and are reported") {
  auto s = source();
  CHECK(expand("x${nope}y", s) == "xy");
  CHECK(s.undefined_seen.count("nope") == 1);
}

TEST_CASE("conditional forms") {
  auto s = source();
  CHECK(expand("${name?set}", s) == "set");
  CHECK(expand("${empty?set}", s) == "");
  CHECK(expand("${nope?set}", s) == "");
  CHECK(expand("${name:unset}", s) == "");
  CHECK(expand("${empty:unset}", s) == "unset");
  CHECK(expand("${nope:unset}", s) == "unset");
  CHECK(expand("${name?}x", s) == "x");
  // The conditional text is expanded too.
  CHECK(expand("${name?$domain}", s) == "example.org");
  CHECK(expand("$(empty:$(domain))", s) == "example.org");
}

TEST_CASE("braced conditional forms") {
  auto s = source();
  CHECK(expand("${name?{yes}:{no}}", s) == "yes");
  CHECK(expand("${empty?{yes}:{no}}", s) == "no");
  CHECK(expand("${nope?{yes} : {no}}", s) == "no");
  CHECK(expand("${name?{yes}}", s) == "yes");
  CHECK(expand("${empty:{a}}", s) == "a");
  CHECK(expand("${name:{a}}", s) == "");
  CHECK(expand("${name?{$domain}:{x}}", s) == "example.org");
}

TEST_CASE("relational forms compare strings and numbers") {
  auto s = source();
  CHECK(expand("${{a} == {a} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{a}=={b}?{t}:{f}}", s) == "f");
  CHECK(expand("${{a} != {b} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{a} < {b} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{10} < {9} ? {t} : {f}}", s) == "f");  // numeric, not byte order
  CHECK(expand("${{$ten} >= {10} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{9} <= {10} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{b} > {a} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{a} == {a}}", s) == "true");
  CHECK(expand("${{a} == {b}}", s) == "");
  CHECK(expand("${{a} == {a} ? t : f}", s) == "t : f");  // unbraced: the rest is the value
  CHECK(expand("${{$domain} == {example.org} ? {$name} : {f}}", s) == "value");
}

TEST_CASE("compatibility level comparisons") {
  auto s = source();
  CHECK(expand("${{3.10} <level {3.6} ? {t} : {f}}", s) == "f");
  CHECK(expand("${{3.6.1} >level {3.6} ? {t}}", s) == "t");
  CHECK(expand("${{3.6} <=level {3.6.0} ? {t} : {f}}", s) == "t");
  CHECK(expand("${{2} >=level {3.6} ? {t} : {f}}", s) == "f");
  // Postfix 3.7's own defaults:
  CHECK(expand("${{$compatibility_level} <level {3.6} ? {no} : {yes}}", s) == "yes");
  CHECK(expand("${{$level2} <level {3.6} ? {md5} : {sha256}}", s) == "md5");
  CHECK(expand("${{$compatibility_level} <level {2} ? {subnet} : {host}}", s) == "host");
  CHECK_THROWS_WITH(expand("${{x} <level {3.6} ? {a}}", s),
                    "malformed compatibility level syntax: \"x\"");
}

TEST_CASE("errors carry Postfix's messages") {
  auto s = source();
  CHECK_THROWS_WITH(expand("a${name", s), "truncated macro reference: \"a${name\"");
  CHECK_THROWS_WITH(expand("a$(name}", s), "truncated macro reference: \"a$(name}\"");
  CHECK_THROWS_WITH(expand("a$-b", s), "empty macro name: \"a$-b\"");
  CHECK_THROWS_WITH(expand("trailing $", s), "empty macro name: \"trailing $\"");
  CHECK_THROWS_WITH(expand("${?x}", s), "empty macro name: \"${?x}\"");
  CHECK_THROWS_AS(expand("${{a} ~ {b} ? {t}}", s), ExpandError);
  CHECK_THROWS_AS(expand("${name!x}", s), ExpandError);
}

TEST_CASE("loops are caught") {
  auto s = source();
  s.values["a"] = "$b";
  s.values["b"] = "$a";
  CHECK_THROWS_WITH(expand("$a", s), Catch::Contains("unreasonable macro call nesting"));
  s.values["self"] = "x$self";
  CHECK_THROWS_AS(expand("$self", s), ExpandError);
}

TEST_CASE("references are found for user-defined parameter detection") {
  std::set<std::string> refs;
  mta::config::for_each_reference("$a ${b?{$c}} $(d:x) $$e ${{$f} == {1}}",
                                  [&](std::string_view n) { refs.emplace(n); });
  CHECK(refs == std::set<std::string>{"a", "b", "c", "d", "f"});
}
