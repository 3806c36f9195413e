// postconf: show and edit the Postfix-compatible configuration.
//
// usage: postconf [-dfhHnx] [-c config_dir] [-o name=value] [name ...]
//        postconf -e name=value ...      edit main.cf (-X remove, -# comment out)
//        postconf -M [service[/type] ...]  show master.cf (-Me, -MX, -M# edit)
//        postconf -F [service/type/field ...]  master.cf fields (-Fe edit)
//        postconf -P [service/type/parameter ...]  master.cf -o settings (-Pe, -PX)
//        postconf -l | -m | -a | -A       lock, map and SASL plug-in types
// Output is Postfix's, byte for byte: "name = value", values with their
// blanks folded to single spaces, sorted by name; warnings on stderr
// ("postconf: warning: NAME: unknown parameter").  Edits replace the file
// atomically (PATH.tmp, fsync, rename); a failed edit changes nothing.
#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>

#include "config/atomic_file.hpp"
#include "config/config.hpp"
#include "ipc/dict_proxy.hpp"
#include "log/log.hpp"
#include "maps/dict.hpp"
#include "postconf/postconf.hpp"

namespace mta::postconf {
namespace {

using config::Config;
using config::ConfigError;

struct Options {
  std::string dir;
  bool defaults = false, edit = false, fold = false, fields = false, no_names = false,
       names_only = false, master = false, non_default = false, parameters = false, expand = false,
       exclude = false, comment = false;
  char list_types = 0;  // 'l', 'm', 'a', 'A'
  char templates = 0;   // 'b' (expanded) or 't' (as written): the bounce templates
  std::vector<std::pair<std::string, std::string>> overrides;
  std::vector<std::string> args;
};

std::string argv0;

[[noreturn]] void usage() {
  log::fatal(
      "usage: %s [-a (server SASL types)] [-A (client SASL types)] [-c config_dir] "
      "[-d (parameter defaults)] [-e (edit configuration)] [-f (fold lines)] [-F (master.cf "
      "fields)] [-h (no names)] [-H (no values)] [-l (lock types)] [-m (map types)] [-M "
      "(master.cf)] [-n (non-default parameters)] [-o name=value (override parameter value)] "
      "[-p (main.cf, default)] [-P (master.cf parameters)] [-v (verbose)] [-x (expand parameter "
      "values)] [-X (exclude)] [-# (comment-out)] [name...]",
      argv0.c_str());
}

// Postfix prints values with runs of blanks folded into one space.
std::string fold_blanks(std::string_view value) {
  std::string out;
  bool pending = false;
  for (char c : value) {
    if (config::is_blank(c)) {
      pending = !out.empty();
      continue;
    }
    if (pending) out += ' ';
    pending = false;
    out += c;
  }
  return out;
}

// "name = value" (or the value or the name alone), folded at 80 columns
// with -f as Postfix folds: words move to a new line indented by a tab.
void print_parameter(const Options& o, const std::string& name, const std::string& value) {
  if (o.names_only) {
    std::cout << name << '\n';
    return;
  }
  std::string text = fold_blanks(value);
  std::string line = o.no_names ? std::string() : name + " =";
  if (!o.fold) {
    if (o.no_names) line = text;
    else if (!text.empty()) line += " " + text;
    std::cout << line << '\n';
    return;
  }
  size_t col = line.size();
  size_t i = 0;
  bool first_word = true;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    std::string word = text.substr(i, j == std::string::npos ? std::string::npos : j - i);
    i = j == std::string::npos ? text.size() : j + 1;
    bool lead = o.no_names && first_word;
    if (!lead && col + 1 + word.size() > 80 && col > 4) {
      line += "\n    ";
      col = 4;
    } else if (!lead) {
      line += ' ';
      ++col;
    }
    line += word;
    col += word.size();
    first_word = false;
  }
  std::cout << line << '\n';
}

// Names that some value refers to: they make main.cf parameters of those
// names "user-defined" rather than unused.
std::set<std::string> referenced_names(const Config& c) {
  std::set<std::string> refs;
  auto add = [&refs](std::string_view n) { refs.emplace(n); };
  for (const auto& [name, value] : c.explicit_values()) config::for_each_reference(value, add);
  for (const config::MasterEntry& e : c.services())
    for (const std::string& a : e.argv) config::for_each_reference(a, add);
  for (const config::ParameterDef& p : config::parameter_table())
    config::for_each_reference(p.default_value, add);
  for (const std::string& n : c.get_list("smtpd_restriction_classes")) refs.insert(n);
  return refs;
}

bool is_known(const Config& c, const std::set<std::string>& refs, const std::string& name) {
  return c.is_builtin(name) || (c.explicit_value(name) && refs.count(name));
}

void warn_unused(const Config& c, const std::set<std::string>& refs) {
  std::cout.flush();
  for (const auto& [name, value] : c.explicit_values())
    if (!is_known(c, refs, name))
      log::warning("%s: unused parameter: %s=%s", c.main_cf_path().c_str(), name.c_str(),
                   value.c_str());
  for (const config::MasterEntry& e : c.services())
    for (const auto& [name, value] : e.overrides())
      if (!c.is_builtin(name) && !refs.count(name) && !c.explicit_value(name))
        log::warning("%s: unused parameter: %s=%s", c.master_cf_path().c_str(), name.c_str(),
                     value.c_str());
}

// Postfix reports bad references in main.cf values before it shows
// anything: syntax errors and references to undefined parameters, one value
// at a time (a loop is reported when a value is expanded, not here).
class ShallowSource : public config::MacroSource {
 public:
  explicit ShallowSource(const Config& c) : c_(c) {}
  std::optional<std::string> lookup(std::string_view name) const override {
    if (c_.lookup(name)) return std::string();  // defined: do not descend
    return std::nullopt;
  }
  void undefined(std::string_view name) const override {
    log::warning("%s: undefined parameter: %.*s", c_.main_cf_path().c_str(),
                 static_cast<int>(name.size()), name.data());
  }
 private:
  const Config& c_;
};

void check_main_cf_values(const Config& c) {
  ShallowSource source(c);
  for (const auto& [name, value] : c.explicit_values()) {
    try {
      config::expand(value, source);
    } catch (const config::ExpandError& e) {
      log::warning("%s", e.what());
    }
  }
}

int show_parameters(const Options& o) {
  config::LoadOptions lo;
  lo.read_main_cf = !o.defaults;
  lo.read_master_cf = true;
  lo.process_name = "postconf";
  Config c = Config::load(o.dir, lo);
  for (const std::string& w : c.warnings()) log::warning("%s", w.c_str());
  for (const auto& [n, v] : o.overrides) c.set_override(n, v);
  std::set<std::string> refs;
  if (!o.defaults) {
    refs = referenced_names(c);
    check_main_cf_values(c);
  }

  std::vector<std::string> names;
  if (!o.args.empty()) {
    names = o.args;
  } else if (o.non_default) {
    for (const auto& [n, v] : c.explicit_values()) names.push_back(n);
  } else {
    names = c.builtin_names();
    if (!o.defaults)
      for (const auto& [n, v] : c.explicit_values())
        if (!c.is_builtin(n) && refs.count(n)) names.push_back(n);
    std::sort(names.begin(), names.end());
  }

  for (const std::string& name : names) {
    std::optional<std::string> value = o.defaults ? c.default_value(name) : c.lookup(name);
    bool known = o.defaults ? c.is_builtin(name) : is_known(c, refs, name);
    if (!known) {
      // -n leaves unused main.cf parameters to the "unused parameter" warning.
      if (!(o.non_default && o.args.empty())) log::warning("%s: unknown parameter", name.c_str());
      continue;
    }
    std::string shown = value.value_or("");
    if (o.expand && !config::is_raw_parameter(name)) {
      try {
        shown = config::expand(shown, c);
      } catch (const config::ExpandError& e) {
        log::warning("%s", e.what());
        log::fatal("macro processing error");
      }
    }
    print_parameter(o, name, shown);
  }
  if (!o.defaults) warn_unused(c, refs);
  return 0;
}

bool matches(const std::vector<std::string>& patterns, const config::MasterEntry& e,
             const std::string& third = {}) {
  if (patterns.empty()) return true;
  for (const std::string& p : patterns) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
      size_t s = p.find('/', start);
      parts.push_back(p.substr(start, s == std::string::npos ? std::string::npos : s - start));
      if (s == std::string::npos) break;
      start = s + 1;
    }
    auto ok = [&](size_t i, const std::string& v) { return i >= parts.size() || parts[i].empty() || parts[i] == v; };
    if (ok(0, e.service) && ok(1, e.type) && ok(2, third)) return true;
  }
  return false;
}

std::vector<config::MasterEntry> load_master(const Options& o) {
  std::string path = o.dir + "/master.cf";
  std::vector<std::string> warnings;
  auto entries = config::parse_master_cf(config::read_file(path), path, &warnings);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  return entries;
}

int show_master(const Options& o) {
  for (const config::MasterEntry& e : load_master(o))
    if (matches(o.args, e)) std::cout << config::format_master_entry(e, o.fold) << '\n';
  return 0;
}

int show_fields(const Options& o) {
  for (const config::MasterEntry& e : load_master(o)) {
    const std::string values[] = {e.service, e.type, e.private_, e.unprivileged, e.chroot,
                                  e.wakeup, e.process_limit, config::format_master_command(e)};
    for (size_t i = 0; i < 8; ++i) {
      std::string field = config::kMasterFieldNames[i];
      if (!matches(o.args, e, field)) continue;
      std::string name = e.service + "/" + e.type + "/" + field;
      print_parameter(o, name, values[i]);
    }
  }
  return 0;
}

int show_master_parameters(const Options& o) {
  for (const config::MasterEntry& e : load_master(o)) {
    auto params = e.overrides();
    std::stable_sort(params.begin(), params.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [name, value] : params) {
      if (!matches(o.args, e, name)) continue;
      print_parameter(o, e.service + "/" + e.type + "/" + name, value);
    }
  }
  return 0;
}

int edit_files(const Options& o) {
  Edit edit = o.edit ? Edit::set : o.exclude ? Edit::remove : Edit::comment;
  if (o.args.empty()) {
    if (edit == Edit::set) log::fatal("-e requires name=value argument");
    log::fatal("%s requires a name argument", edit == Edit::remove ? "-X" : "-#");
  }
  bool master_file = o.master || o.fields || o.parameters;
  std::string path = o.dir + (master_file ? "/master.cf" : "/main.cf");
  std::string text;
  try {
    text = config::read_file(path);
  } catch (const ConfigError&) {
    log::fatal("open %s for reading: %s", path.c_str(), std::strerror(errno));
  }
  std::string updated;
  if (!master_file) {
    updated = edit_main_cf(text, path, edit, o.args);
  } else {
    MasterScope scope = o.master ? MasterScope::entry : o.fields ? MasterScope::field : MasterScope::parameter;
    if (scope == MasterScope::field && edit != Edit::set) log::fatal("-F supports only -e");
    if (scope == MasterScope::parameter && edit == Edit::comment) log::fatal("-P does not support -#");
    updated = edit_master_cf(text, path, scope, edit, o.args);
  }
  config::replace_file_atomically(path, updated);
  return 0;
}

// The bounce daemon knows the templates; as Postfix's postconf, ask it.
int show_templates(const Options& o) {
  config::Config c = Config::load(o.dir, {.read_main_cf = true, .read_master_cf = false, .process_name = "postconf"});
  std::string bounce = c.get("daemon_directory") + "/bounce";
  std::vector<std::string> args = {"bounce", o.templates == 'b' ? "-SVnexpand_templates" : "-SVndump_templates"};
  if (!o.args.empty()) args.push_back("-obounce_template_file=" + o.args[0]);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::setenv("MAIL_CONFIG", o.dir.c_str(), 1);
  std::cout.flush();
  ::execv(bounce.c_str(), argv.data());
  log::fatal("cannot execute %s: %s", bounce.c_str(), std::strerror(errno));
}

int list_types(char which) {
  switch (which) {
    case 'l': std::cout << "flock\nfcntl\ndotlock\n"; break;
    case 'a': std::cout << "cyrus\ndovecot\n"; break;
    case 'A': std::cout << "cyrus\n"; break;
    default:
      for (const std::string& t : maps::dict_types()) std::cout << t << '\n';
  }
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  o.dir = Config::default_config_dir();
  int c;
  opterr = 0;
  while ((c = getopt(argc, argv, "aAbc:deEfFhHlmMno:pPtT:vxX#")) != -1) {
    switch (c) {
      case 'a': case 'A': case 'l': case 'm': o.list_types = static_cast<char>(c); break;
      case 'c': o.dir = optarg; break;
      case 'd': o.defaults = true; break;
      case 'e': o.edit = true; break;
      case 'f': o.fold = true; break;
      case 'F': o.fields = true; break;
      case 'h': o.no_names = true; break;
      case 'H': o.names_only = true; break;
      case 'M': o.master = true; break;
      case 'n': o.non_default = true; break;
      case 'o': {
        std::string name, value;
        std::string err = config::split_name_value(optarg, &name, &value);
        if (!err.empty()) log::fatal("%s", err.c_str());
        o.overrides.emplace_back(name, value);
        break;
      }
      case 'p': break;
      case 'b': case 't': o.templates = static_cast<char>(c); break;
      case 'T':
        log::fatal("-%c: not supported by this version", c);
      case 'P': o.parameters = true; break;
      case 'v': log::set_verbose(log::verbose_level() + 1); break;
      case 'x': o.expand = true; break;
      case 'X': o.exclude = true; break;
      case '#': o.comment = true; break;
      default:
        std::fprintf(stderr, "%s: invalid option -- '%c'\n", argv0.c_str(), optopt);
        usage();
    }
  }
  for (int i = optind; i < argc; ++i) o.args.emplace_back(argv[i]);
  // As Postfix since 2.8: a first argument name=value (or, with -M, -F or
  // -P, service/type...=value) edits without -e.
  if (!o.edit && !o.exclude && !o.comment && !o.args.empty() && o.args[0].find('=') != std::string::npos)
    o.edit = true;
  if (o.edit + o.exclude + o.comment > 1) log::fatal("specify one of -e, -X or -#");
  if (o.master + o.fields + o.parameters > 1) log::fatal("specify one of -M, -F or -P");
  if (o.list_types) return list_types(o.list_types);
  if (o.templates) return show_templates(o);
  if (o.edit || o.exclude || o.comment) return edit_files(o);
  if (o.master) return show_master(o);
  if (o.fields) return show_fields(o);
  if (o.parameters) return show_master_parameters(o);
  return show_parameters(o);
}

}  // namespace
}  // namespace mta::postconf

int main(int argc, char** argv) {
  mta::ipc::register_proxy_tables();  // postconf -m lists proxy, as Postfix's
  mta::postconf::argv0 = argv[0];
  mta::log::init(argv[0]);
  try {
    return mta::postconf::run(argc, argv);
  } catch (const mta::config::ConfigError& e) {
    mta::log::fatal("%s", e.what());
  } catch (const mta::config::ExpandError& e) {
    mta::log::warning("%s", e.what());
    mta::log::fatal("macro processing error");
  }
}
