// lib/maps: Berkeley DB tables in Postfix's convention, the simple types,
// map lists and the lookup orders.
#include <catch2/catch.hpp>

#include <db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "maps/dict.hpp"
#include "maps/maps.hpp"
#include "maps/table_source.hpp"

using namespace mta::maps;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-maps-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& text = {}) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

void build(const std::string& spec, const std::vector<std::pair<std::string, std::string>>& entries,
           OpenFlags flags = {}) {
  flags.create = true;
  DictPtr d = open_dict_or_throw(spec, flags);
  for (const auto& [k, v] : entries) d->update(k, v);
  d->commit();
}

// Writes a raw Berkeley DB file the way another program might.
void write_raw_db(const std::string& path, DBTYPE type, const std::string& key, const std::string& value) {
  DB* db = nullptr;
  REQUIRE(db_create(&db, nullptr, 0) == 0);
  REQUIRE(db->open(db, nullptr, path.c_str(), nullptr, type, DB_CREATE | DB_TRUNCATE, 0644) == 0);
  DBT k{}, v{};
  k.data = const_cast<char*>(key.data());
  k.size = static_cast<u_int32_t>(key.size());
  v.data = const_cast<char*>(value.data());
  v.size = static_cast<u_int32_t>(value.size());
  REQUIRE(db->put(db, nullptr, &k, &v, 0) == 0);
  db->close(db, 0);
}

}  // namespace

TEST_CASE("hash and btree tables build, fold keys, and answer") {
  TempDir t;
  for (std::string type : {"hash", "btree"}) {
    std::string name = t.file("map-" + type);
    build(type + ":" + name, {{"User@Example.COM", "value one"}, {"other", "two"}});
    REQUIRE(fs::exists(name + ".db"));
    CHECK_FALSE(fs::exists(name + ".db.tmp"));
    DictPtr d = open_dict(type + ":" + name);
    CHECK(d->lookup("user@example.com").value == "value one");
    CHECK(d->lookup("USER@EXAMPLE.COM").value == "value one");
    CHECK(d->lookup("nope").status == Status::not_found);
    std::vector<std::string> keys;
    std::string k, v;
    for (bool first = true; d->sequence(first, &k, &v); first = false) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    CHECK(keys == std::vector<std::string>{"other", "user@example.com"});
  }
}

TEST_CASE("keys and values carry the trailing NUL, and either convention is read") {
  TempDir t;
  std::string name = t.file("nul");
  build("hash:" + name, {{"a", "1"}});
  {
    DB* db = nullptr;
    REQUIRE(db_create(&db, nullptr, 0) == 0);
    REQUIRE(db->open(db, nullptr, (name + ".db").c_str(), nullptr, DB_HASH, DB_RDONLY, 0) == 0);
    DBT k{}, v{};
    k.data = const_cast<char*>("a");
    k.size = 2;  // with the NUL, as Postfix writes it on Linux
    REQUIRE(db->get(db, nullptr, &k, &v, 0) == 0);
    CHECK(v.size == 2);
    CHECK(std::memcmp(v.data, "1", 2) == 0);
    db->close(db, 0);
  }
  // A table written without NULs (postmap -n, or other software) still answers.
  write_raw_db(name + ".db", DB_HASH, "b", "2");
  CHECK(open_dict("hash:" + name)->lookup("b").value == "2");
  OpenFlags without;
  without.keys = NulKeys::without_nul;
  build("btree:" + name, {{"c", "3"}}, without);
  CHECK(open_dict("btree:" + name)->lookup("c").value == "3");
}

TEST_CASE("duplicates: first wins with a warning, -r replaces, -w keeps quietly") {
  TempDir t;
  std::string name = t.file("dup");
  build("hash:" + name, {{"k", "first"}, {"K", "second"}});
  CHECK(open_dict("hash:" + name)->lookup("k").value == "first");
  OpenFlags replace;
  replace.duplicates = Duplicates::replace;
  build("hash:" + name, {{"k", "first"}, {"k", "second"}}, replace);
  CHECK(open_dict("hash:" + name)->lookup("k").value == "second");
}

TEST_CASE("update and delete in place") {
  TempDir t;
  std::string name = t.file("upd");
  build("hash:" + name, {{"a", "1"}});
  OpenFlags w;
  w.write = true;
  {
    DictPtr d = open_dict_or_throw("hash:" + name, w);
    CHECK(d->update("b", "2").found());
    CHECK(d->remove("a") == Status::found);
    CHECK(d->remove("zzz") == Status::not_found);
    d->commit();
  }
  DictPtr d = open_dict("hash:" + name);
  CHECK(d->lookup("a").status == Status::not_found);
  CHECK(d->lookup("b").value == "2");
}

TEST_CASE("a failing table reports an error, never not-found") {
  TempDir t;
  DictPtr missing = open_dict("hash:" + (t.path / "absent").string());
  Result r = missing->lookup("x");
  CHECK(r.status == Status::error);
  CHECK(r.error == "open database " + (t.path / "absent.db").string() + ": No such file or directory");
  std::string garbage = t.file("bad.db", "this is not a database");
  CHECK(open_dict("hash:" + (t.path / "bad").string())->lookup("x").status == Status::error);
  CHECK(open_dict("bogus:x")->lookup("x").error == "unsupported dictionary type: bogus");
  CHECK(open_dict("fail:x")->lookup("x").status == Status::error);
  CHECK_THROWS_WITH(open_dict_or_throw("unix:bogus"), "unknown table: unix:bogus");
}

TEST_CASE("a rebuilt table is seen as changed") {
  TempDir t;
  std::string name = t.file("chg");
  build("hash:" + name, {{"a", "1"}});
  DictPtr d = open_dict("hash:" + name);
  CHECK_FALSE(d->has_changed());
  build("hash:" + name, {{"a", "2"}});
  CHECK(d->has_changed());
  CHECK(d->lookup("a").value == "1");  // the open table still answers, from the old file
  CHECK(open_dict("hash:" + name)->lookup("a").value == "2");
}

TEST_CASE("texthash, inline and static") {
  TempDir t;
  std::string file = t.file("th", "# comment\nFoo bar baz\nkeyonly\n  continued\n");
  DictPtr th = open_dict("texthash:" + file);
  CHECK(th->lookup("foo").value == "bar baz");
  CHECK(th->lookup("keyonly").value == "continued");
  DictPtr in = open_dict("inline:{ X=1, { y = two words }, z=3 }");
  CHECK(in->lookup("x").value == "1");
  CHECK(in->lookup("y").value == "two words");
  CHECK(in->lookup("z").value == "3");
  CHECK_THROWS_WITH(open_dict_or_throw("inline:x=1"), "bad syntax: \"inline:x=1\"; need \"inline:{name=value...}\"");
  CHECK_THROWS_WITH(open_dict_or_throw("inline:{x}"),
                    "missing '=' after attribute name: \"inline:{x}\"; need \"inline:{name=value...}\"");
  CHECK(open_dict("static:{ a b }")->lookup("anything").value == "a b");
  CHECK(open_dict("static:ab")->lookup("x").value == "ab");
}

TEST_CASE("unix tables return passwd and group lines") {
  CHECK(open_dict("unix:passwd.byname")->lookup("root").value.rfind("root:x:0:0:", 0) == 0);
  CHECK(open_dict("unix:group.byname")->lookup("root").value.rfind("root:x:0:", 0) == 0);
  CHECK(open_dict("unix:passwd.byname")->lookup("no-such-user-here").status == Status::not_found);
}

TEST_CASE("a list of tables is searched in order and stops at an error") {
  Maps m("virtual_alias_maps", "inline:{a=1}, inline:{a=2, b=2} static:last");
  CHECK(m.find("a").value == "1");
  CHECK(m.find("b").value == "2");
  CHECK(m.find("c").value == "last");
  Maps failing("transport_maps", "inline:{a=1}, fail:broken, static:never");
  CHECK(failing.find("a").value == "1");
  Result r = failing.find("b");
  CHECK(r.status == Status::error);
  CHECK(r.error.find("fail:broken") != std::string::npos);
}

TEST_CASE("address lookup order: full, without extension, local part, @domain") {
  AddressLookup how;
  how.recipient_delimiter = "+";
  how.is_local_domain = [](std::string_view d) { return d == "local.example"; };
  std::string key;
  Maps full("m", "inline:{ user+ext@example.com=full, user@example.com=noext, @example.com=catchall }");
  CHECK(find_address(full, "user+ext@example.com", how, &key).value == "full");
  CHECK(find_address(full, "user+other@example.com", how, &key).value == "noext");
  CHECK(key == "user@example.com");
  CHECK(find_address(full, "someone@example.com", how, &key).value == "catchall");
  CHECK(key == "@example.com");
  Maps local("m", "inline:{ user=bare, user+ext=bareext }");
  CHECK(find_address(local, "user+ext@local.example", how).value == "bareext");
  CHECK(find_address(local, "user+x@local.example", how).value == "bare");
  CHECK(find_address(local, "user@remote.example", how).status == Status::not_found);
  Maps failing("m", "fail:x");
  CHECK(find_address(failing, "user@example.com", how).status == Status::error);
}

TEST_CASE("domain lookup: parent domains per parent_domain_matches_subdomains") {
  Maps plain("transport_maps", "inline:{ example.com=parent, .example.org=dotted }");
  std::string key;
  CHECK(find_domain(plain, "a.b.example.com", true, &key).value == "parent");
  CHECK(key == "example.com");
  CHECK(find_domain(plain, "a.b.example.com", false).status == Status::not_found);
  CHECK(find_domain(plain, "a.example.org", false, &key).value == "dotted");
  CHECK(key == ".example.org");
  CHECK(find_domain(plain, "example.org", false).status == Status::not_found);
}

TEST_CASE("postmap and postalias source files") {
  TempDir t;
  auto src = parse_table_source("k1 v1\nk2\tv two  \nbad\n  more\nlonely\n", "src");
  REQUIRE(src.size() == 3);  // "bad" takes the continuation line as its value
  CHECK(src[1].value == "v two");
  CHECK(src[1].line == 2);
  CHECK(src[2].key == "bad");
  CHECK(src[2].value == "more");
  auto al = parse_alias_source(
      "Root: a,b\n\"quoted name\": c\nx: |\"/usr/lib/x\" -f\ny: a.  b , \\root\nbad line\nempty:\n", "aliases");
  REQUIRE(al.size() == 4);
  CHECK(al[0].key == "Root");
  CHECK(al[0].value == "a, b");
  CHECK(al[1].key == "quoted name");
  CHECK(al[2].value == "|\"/usr/lib/x\" -f");
  CHECK(al[3].value == "a.b, root");
  CHECK_THROWS_WITH(read_table_source((t.path / "none").string()),
                    "open " + (t.path / "none").string() + ": No such file or directory");
}

TEST_CASE("text tables notice a changed file") {
  TempDir t;
  std::string file = t.file("re", "/a/ one\n");
  for (std::string type : {"regexp", "pcre", "texthash"}) {
    std::string name = t.file(type + "-tbl", type == "texthash" ? "a one\n" : "/a/ one\n");
    DictPtr d = open_dict(type + ":" + name);
    CHECK_FALSE(d->has_changed());
    std::string tmp = name + ".new";
    std::ofstream(tmp) << (type == "texthash" ? "a two\n" : "/a/ two\n");
    fs::rename(tmp, name);
    CHECK(d->has_changed());
  }
  CHECK_FALSE(open_dict("regexp:{ {/a/ b} }")->has_changed());
}

TEST_CASE("alias tables refuse $n substitution (Postfix's paranoid flag)") {
  TempDir t;
  std::string file = t.file("alias.re", "/^(.*)-x$/ |/bin/run $1\n/^plain$/ |/bin/fixed\n");
  OpenFlags paranoid;
  paranoid.no_regsub = true;
  for (std::string type : {"regexp", "pcre"}) {
    DictPtr d = open_dict(type + ":" + file, paranoid);
    CHECK(d->lookup("evil-x").status == Status::not_found);  // the $1 rule is skipped
    CHECK(d->lookup("plain").value == "|/bin/fixed");
    CHECK(open_dict(type + ":" + file)->lookup("evil-x").value == "|/bin/run evil");
  }
}
