// postmap, postalias and newaliases: build, query, update and list lookup tables.
//
// usage: postmap [-fiNnoprsvw] [-c config_dir] [-d key] [-q key] [type:]file ...
//        postalias [-fiNnoprsvw] [-c config_dir] [-d key] [-q key] [type:]file ...
//        newaliases   (postalias of each $alias_database)
//
// Building reads FILE (postmap: "key value" lines; postalias: "name: value"
// lines) into TYPE:FILE (FILE.db for hash and btree) through a locked
// temporary file renamed into place, so a lookup during a rebuild sees the
// old table or the new one.  The new file takes the source file's mode (-p:
// 0644), and when root runs it on a file that someone else owns, the build
// runs as that owner (-o: stay root), as Postfix does.
// -q key prints the value (exit 0 found, 1 not found); -q - reads keys on
// stdin and prints "key<TAB>value"; -s lists the table; -d deletes (exit 0
// when something was deleted); -i adds "key value" lines from stdin.
// -f keeps key case, -N/-n write keys with/without the trailing NUL, -r
// replaces duplicates silently, -w keeps the first silently.
#include <getopt.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "ipc/dict_proxy.hpp"
#include "log/log.hpp"
#include "maps/dict.hpp"
#include "maps/table_source.hpp"

namespace mta::tabletool {
namespace {

using maps::DictPtr;
using maps::OpenFlags;

enum class Tool { postmap, postalias, newaliases };

struct Options {
  Tool tool = Tool::postmap;
  std::string config_dir;
  OpenFlags flags;
  bool incremental = false, keep_root = false, default_mode = false, list = false;
  std::vector<std::string> query_keys;   // -q
  std::vector<std::string> delete_keys;  // -d
  std::vector<std::string> tables;
};

const char* name_of(Tool t) { return t == Tool::postmap ? "postmap" : t == Tool::postalias ? "postalias" : "newaliases"; }

[[noreturn]] void usage(Tool t) {
  log::fatal("usage: %s [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...", name_of(t));
}

std::string spec_of(const std::string& table, const std::string& default_type) {
  size_t colon = table.find(':');
  bool typed = colon != std::string::npos && colon > 0 && table.find('/') > colon;
  return typed ? table : default_type + ":" + table;
}

std::string type_of(const std::string& spec) { return spec.substr(0, spec.find(':')); }
std::string name_part(const std::string& spec) { return spec.substr(spec.find(':') + 1); }

DictPtr open_or_die(const std::string& spec, const OpenFlags& flags) {
  try {
    return maps::open_dict_or_throw(spec, flags);
  } catch (const maps::DictError& e) {
    log::fatal("%s", e.what());
  }
}

// Root builds a table from someone else's file with that someone's rights.
void drop_to_owner(const struct stat& st, bool keep_root) {
  if (keep_root || geteuid() != 0 || st.st_uid == 0) return;
  if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0)
    log::fatal("change to uid %ld gid %ld: %s", static_cast<long>(st.st_uid), static_cast<long>(st.st_gid),
               std::strerror(errno));
}

void add_entry(maps::Dict& d, const std::string& key, const std::string& value) {
  maps::Result r = d.update(key, value);
  if (r.failed()) log::fatal("table %s: write error: %s", d.spec().c_str(), r.error.c_str());
}

void build(const Options& o, const config::Config& c, const std::string& spec) {
  std::string type = type_of(spec), source = name_part(spec);
  if (type != "hash" && type != "btree")
    log::fatal("unsupported dictionary type: %s does not support bulk-mode creation.", type.c_str());
  struct stat st{};
  if (::stat(source.c_str(), &st) != 0) log::fatal("open %s: %s", source.c_str(), std::strerror(errno));
  drop_to_owner(st, o.keep_root);
  std::vector<maps::SourceEntry> entries;
  try {
    entries = o.tool == Tool::postmap ? maps::read_table_source(source) : maps::read_alias_source(source);
  } catch (const maps::DictError& e) {
    log::fatal("%s", e.what());
  }
  OpenFlags flags = o.flags;
  flags.create = true;
  flags.create_mode = o.default_mode ? 0644 : (st.st_mode & 0777);
  flags.size_hint = static_cast<size_t>(st.st_size);
  DictPtr d = open_or_die(spec, flags);
  for (const maps::SourceEntry& e : entries) add_entry(*d, e.key, e.value);
  if (o.tool != Tool::postmap) {
    // What Postfix adds for sendmail and NIS compatibility, in upper case.
    d->set_fold_fixed(false);
    add_entry(*d, "YP_LAST_MODIFIED", std::to_string(::time(nullptr)));
    add_entry(*d, "YP_MASTER_NAME", c.get("myhostname"));
    add_entry(*d, "@", "@");
  }
  try {
    d->commit();
  } catch (const maps::DictError& e) {
    log::fatal("%s", e.what());
  }
}

// Looks a key up in each table in turn; fatal on a table error.
bool query_one(std::vector<DictPtr>& dicts, const std::string& key, std::string* value) {
  for (DictPtr& d : dicts) {
    maps::Result r = d->lookup(key);
    if (r.failed()) log::fatal("table %s: query error: %s", d->spec().c_str(), r.error.c_str());
    if (r.found()) {
      *value = r.value;
      return true;
    }
  }
  return false;
}

int query(const Options& o, const std::vector<std::string>& specs) {
  std::vector<DictPtr> dicts;
  for (const std::string& s : specs) dicts.push_back(open_or_die(s, o.flags));
  std::string value;
  if (o.query_keys.size() == 1 && o.query_keys[0] == "-") {
    bool any = false;
    std::string key;
    // Answers go out in blocks, not one write per key (cin is tied to
    // cout, which flushes before every read), but before we would wait for
    // more keys, so that a program feeding keys one at a time still gets
    // each answer (Postfix's postmap holds them all until the end).  A
    // feeder must end each key with a newline before it waits: part of the
    // next line counts as input at hand.
    std::cin.tie(nullptr);
    for (;;) {
      if (std::cin.rdbuf()->in_avail() <= 0) std::cout.flush();
      if (!std::getline(std::cin, key)) break;
      if (!key.empty() && key.back() == '\r') key.pop_back();
      if (key.empty()) continue;
      if (query_one(dicts, key, &value)) {
        std::cout << key << '\t' << value << '\n';
        any = true;
      }
    }
    return any ? 0 : 1;
  }
  if (!query_one(dicts, o.query_keys[0], &value)) return 1;
  std::cout << value << '\n';
  return 0;
}

int remove(const Options& o, const std::vector<std::string>& specs) {
  std::vector<std::string> keys;
  if (o.delete_keys.size() == 1 && o.delete_keys[0] == "-") {
    std::string key;
    while (std::getline(std::cin, key))
      if (!key.empty()) keys.push_back(key);
  } else {
    keys = o.delete_keys;
  }
  bool any = false;
  OpenFlags flags = o.flags;
  flags.write = true;
  for (const std::string& s : specs) {
    DictPtr d = open_or_die(s, flags);
    for (const std::string& k : keys) {
      maps::Status st = d->remove(k);
      if (st == maps::Status::error) log::fatal("table %s: delete error", d->spec().c_str());
      any |= st == maps::Status::found;
    }
    d->commit();
  }
  return any ? 0 : 1;
}

int list(const Options& o, const std::vector<std::string>& specs) {
  const char* separator = o.tool == Tool::postmap ? "\t" : ":\t";
  for (const std::string& s : specs) {
    DictPtr d = open_or_die(s, o.flags);
    std::string key, value, error;
    for (bool first = true; d->sequence(first, &key, &value, &error); first = false)
      std::cout << key << separator << value << '\n';
    if (!error.empty()) log::fatal("%s", error.c_str());
  }
  return 0;
}

int incremental(const Options& o, const std::vector<std::string>& specs) {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto entries = o.tool == Tool::postmap ? maps::parse_table_source(text, "-") : maps::parse_alias_source(text, "-");
  OpenFlags flags = o.flags;
  flags.write = true;
  for (const std::string& s : specs) {
    DictPtr d = open_or_die(s, flags);
    for (const maps::SourceEntry& e : entries) add_entry(*d, e.key, e.value);
    d->commit();
  }
  return 0;
}

int run(int argc, char** argv, Tool tool) {
  std::ios::sync_with_stdio(false);
  Options o;
  o.tool = tool;
  o.config_dir = config::Config::default_config_dir();
  int ch;
  opterr = 0;
  while (tool != Tool::newaliases && (ch = getopt(argc, argv, "c:d:fiNnopq:rsuvw")) != -1) {
    switch (ch) {
      case 'c': o.config_dir = optarg; break;
      case 'd': o.delete_keys.emplace_back(optarg); break;
      case 'f': o.flags.fold_fixed = false; break;
      case 'i': o.incremental = true; break;
      case 'N': o.flags.keys = maps::NulKeys::with_nul; break;
      case 'n': o.flags.keys = maps::NulKeys::without_nul; break;
      case 'o': o.keep_root = true; break;
      case 'p': o.default_mode = true; break;
      case 'q': o.query_keys.emplace_back(optarg); break;
      case 'r': o.flags.duplicates = maps::Duplicates::replace; break;
      case 's': o.list = true; break;
      case 'u': break;  // no SMTPUTF8 checks are made, so there is nothing to disable
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      case 'w': o.flags.duplicates = maps::Duplicates::ignore; break;
      default: usage(tool);
    }
  }
  if (tool != Tool::newaliases)
    for (int i = optind; i < argc; ++i) o.tables.emplace_back(argv[i]);
  int modes = (!o.query_keys.empty()) + (!o.delete_keys.empty()) + o.list;
  if (modes > 1 || o.query_keys.size() > 1) log::fatal("specify only one of -s -q or -d");

  config::Config c;
  try {
    c = config::Config::load(o.config_dir, {.read_main_cf = true, .read_master_cf = false, .process_name = name_of(tool)});
  } catch (const config::ConfigError& e) {
    log::fatal("%s", e.what());
  }
  std::string default_type = c.get("default_database_type");
  mta::ipc::register_proxy_tables({.queue_directory = c.get("queue_directory"),
                                   .proxymap_service = c.get("proxymap_service_name"),
                                   .proxywrite_service = c.get("proxywrite_service_name"),
                                   .timeout = std::chrono::seconds(c.get_time("ipc_timeout")),
                                   .utf8_request = c.get_bool("smtputf8_enable")});
  if (tool == Tool::newaliases) o.tables = c.get_list("alias_database");
  if (o.tables.empty()) usage(tool);
  std::vector<std::string> specs;
  for (const std::string& t : o.tables) specs.push_back(spec_of(t, default_type));

  if (!o.query_keys.empty()) return query(o, specs);
  if (!o.delete_keys.empty()) return remove(o, specs);
  if (o.list) return list(o, specs);
  if (o.incremental) return incremental(o, specs);
  for (const std::string& s : specs) build(o, c, s);
  return 0;
}

}  // namespace
}  // namespace mta::tabletool

int main(int argc, char** argv) {
  std::string_view argv0 = argv[0];
  std::string_view base = argv0.substr(argv0.rfind('/') == std::string_view::npos ? 0 : argv0.rfind('/') + 1);
  using mta::tabletool::Tool;
  Tool tool = base == "postalias" ? Tool::postalias : base == "newaliases" ? Tool::newaliases : Tool::postmap;
  mta::log::init(base);
  return mta::tabletool::run(argc, argv, tool);
}
