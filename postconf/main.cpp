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
#include <bit>
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

void warn_unused_master(const Config& c, const std::set<std::string>& refs) {
  for (const config::MasterEntry& e : c.services())
    for (const auto& [name, value] : e.overrides())
      if (!c.is_builtin(name) && !refs.count(name) && !c.explicit_value(name))
        log::warning("%s: unused parameter: %s=%s", c.master_cf_path().c_str(), name.c_str(),
                     value.c_str());
}

void warn_unused(const Config& c, const std::set<std::string>& refs) {
  std::cout.flush();
  for (const auto& [name, value] : c.explicit_values())
    if (!is_known(c, refs, name))
      log::warning("%s: unused parameter: %s=%s", c.main_cf_path().c_str(), name.c_str(),
                   value.c_str());
  warn_unused_master(c, refs);
}

// Postfix reports bad references in main.cf values before it shows
// anything: syntax errors and references to undefined parameters, one value
// at a time (a loop is reported when a value is expanded, not here).
class ShallowSource : public config::MacroSource {
 public:
  ShallowSource(const Config& c, std::string path) : c_(c), path_(std::move(path)) {}
  std::optional<std::string> lookup(std::string_view name) const override {
    if (c_.lookup(name)) return std::string();  // defined: do not descend
    return std::nullopt;
  }
  void undefined(std::string_view name) const override {
    log::warning("%s: undefined parameter: %.*s", path_.c_str(), static_cast<int>(name.size()), name.data());
  }
 private:
  const Config& c_;
  std::string path_;
};

void check_main_cf_values(const Config& c) {
  ShallowSource source(c, c.main_cf_path());
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

std::vector<config::MasterEntry> load_master(const Options& o) {
  std::string path = o.dir + "/master.cf";
  std::vector<std::string> warnings;
  auto entries = config::parse_master_cf(config::read_file(path), path, &warnings);
  for (const std::string& w : warnings) log::warning("%s", w.c_str());
  return entries;
}

// A -M, -F or -P query: its service pattern (and field or parameter), and
// how often it matched; each match prints, so a line that two requests
// match prints twice, as Postfix's.
struct Query {
  std::string raw;
  std::vector<std::string> pattern;
  int field = kAnyField;
  int matches = 0;
};

// -x on master.cf: the value of an -o setting, expanded as its service sees
// it ($service_name, the entry's other -o settings, then main.cf).
class ServiceSource : public config::MacroSource {
 public:
  ServiceSource(const Config& c, const config::MasterEntry& e) : c_(c), e_(e) {}
  std::optional<std::string> lookup(std::string_view name) const override {
    if (name == "service_name") return e_.service;
    for (const auto& [n, v] : e_.overrides())
      if (n == name) return v;
    return c_.lookup(name);
  }
 private:
  const Config& c_;
  const config::MasterEntry& e_;
};

// What the three queries share, as Postfix's postconf: main.cf and master.cf
// are read, references in -o values to undefined parameters are reported
// first, matches are printed (with -x, -o values expanded), then requests
// that matched nothing and -o settings of unknown parameters are reported.
class MasterQuery {
 public:
  MasterQuery(const Options& o, size_t max_parts, const char* error) {
    entries_ = load_master(o);
    config::LoadOptions lo;
    lo.read_master_cf = true;
    lo.process_name = "postconf";
    config_ = Config::load(o.dir, lo);
    for (const auto& [n, v] : o.overrides) config_->set_override(n, v);
    refs_ = referenced_names(*config_);
    ShallowSource source(*config_, config_->master_cf_path());
    for (const config::MasterEntry& e : entries_)
      for (const auto& [name, value] : e.overrides()) try {
          config::expand(value, source);
        } catch (const config::ExpandError& err) {
          log::warning("%s", err.what());
        }
    for (const std::string& arg : o.args) {
      auto p = parse_service_pattern(arg, 1, max_parts);
      if (!p) log::fatal("%s", error);
      Query q;
      q.raw = arg;
      q.pattern = *p;
      if (o.fields) q.field = parse_field_pattern(q.pattern[2]);
      queries_.push_back(std::move(q));
    }
    if (queries_.empty()) {
      queries_.emplace_back();
      queries_.back().pattern.assign(max_parts, "*");
    }
    if (o.expand)
      for (config::MasterEntry& e : entries_) expand_entry(e);
  }
  ~MasterQuery() {
    std::cout.flush();
    for (const Query& q : queries_)
      if (q.matches == 0 && !q.raw.empty()) log::warning("unmatched request: \"%s\"", q.raw.c_str());
    warn_unused_master(*config_, refs_);
  }
  std::vector<config::MasterEntry>& entries() { return entries_; }
  std::vector<Query>& queries() { return queries_; }

 private:
  void expand_entry(config::MasterEntry& e) {
    ServiceSource source(*config_, e);
    std::vector<std::string> argv = e.argv;
    for (size_t i = 1; i + 1 < argv.size(); ++i) {
      if (argv[i] != "-o") continue;
      std::string& nv = argv[++i];
      size_t eq = nv.find('=');
      if (eq == std::string::npos) continue;
      try {
        nv = nv.substr(0, eq + 1) + config::expand(std::string_view(nv).substr(eq + 1), source);
      } catch (const config::ExpandError& err) {
        log::warning("%s", err.what());
        log::fatal("macro processing error");
      }
    }
    e.argv = std::move(argv);
  }

  std::vector<Query> queries_;
  std::vector<config::MasterEntry> entries_;
  std::optional<Config> config_;
  std::set<std::string> refs_;
};

int show_master(const Options& o) {
  MasterQuery m(o, 2, "-M option requires service_name[/type]");
  for (const config::MasterEntry& e : m.entries())
    for (Query& q : m.queries())
      if (match_service_pattern(q.pattern, e)) {
        ++q.matches;
        std::cout << config::format_master_entry(e, o.fold) << '\n';
      }
  return 0;
}

int show_fields(const Options& o) {
  MasterQuery m(o, 3, "-F option requires service_name[/type[/field]]");
  for (const config::MasterEntry& e : m.entries()) {
    const std::string values[] = {e.service, e.type, e.private_, e.unprivileged, e.chroot,
                                  e.wakeup, e.process_limit, config::format_master_command(e)};
    for (Query& q : m.queries()) {
      if (!match_service_pattern(q.pattern, e)) continue;
      for (int i = 0; i < 8; ++i) {
        if (q.field != kAnyField && q.field != i) continue;
        ++q.matches;
        print_parameter(o, e.service + "/" + e.type + "/" + config::kMasterFieldNames[i], values[i]);
      }
    }
  }
  return 0;
}

int show_master_parameters(const Options& o) {
  MasterQuery m(o, 3, "-P option requires service_name[/type[/parameter]]");
  for (const config::MasterEntry& e : m.entries()) {
    auto params = e.overrides();
    std::stable_sort(params.begin(), params.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (Query& q : m.queries()) {
      if (!match_service_pattern(q.pattern, e)) continue;
      for (const auto& [name, value] : params) {
        if (!pattern_matches(q.pattern[2], name)) continue;
        ++q.matches;
        print_parameter(o, e.service + "/" + e.type + "/" + name, value);
      }
    }
  }
  return 0;
}

int edit_files(const Options& o) {
  Edit edit = o.edit ? Edit::set : o.exclude ? Edit::remove : Edit::comment;
  if (o.args.empty()) log::fatal("missing service argument");  // Postfix's words, for main.cf too
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

// Postfix's option compatibility rules: the major modes exclude each other,
// so do the modifiers of each group below, and each major mode allows only
// the modifiers listed with it; the messages name options in this order.
constexpr std::string_view kOptionOrder = "aAbCdefFhHlmMnopPtTxX#";
constexpr unsigned bit(char c) { return 1u << kOptionOrder.find(c); }
constexpr unsigned bits(std::string_view opts) {
  unsigned m = 0;
  for (char c : opts) m |= bit(c);
  return m;
}
constexpr unsigned kMajorModes = bits("aAblmtpMFPT");
constexpr unsigned kExclusive[] = {kMajorModes, bits("den#X"), bits("fe#X"), bits("xe#X"), bits("ode#X"),
                                   bits("he#XH")};
constexpr std::pair<char, std::string_view> kAllowed[] = {
    {'a', ""}, {'A', ""}, {'b', ""}, {'l', ""}, {'m', ""}, {'T', ""}, {'t', ""},
    {'p', "eX#fhCxdnoH"}, {'M', "eX#fox"}, {'F', "efhoxH"}, {'P', "eXfhoxH"}};

std::string option_names(unsigned mask) {
  std::string out;
  for (char c : kOptionOrder)
    if (mask & bit(c)) out += (out.empty() ? "-" : " -") + std::string(1, c);
  return out;
}

void check_options(unsigned mode) {
  for (unsigned group : kExclusive)
    if (std::popcount(mode & group) > 1) log::fatal("specify one of %s", option_names(mode & group).c_str());
  for (const auto& [major, allowed] : kAllowed)
    if (unsigned excess = mode & ~(bit(major) | bits(allowed)); (mode & bit(major)) && excess)
      log::fatal("with option -%c, do not specify %s", major, option_names(excess).c_str());
}

int run(int argc, char** argv) {
  Options o;
  o.dir = Config::default_config_dir();
  int c;
  opterr = 0;
  unsigned mode = 0;  // the options of kOptionOrder given
  while ((c = getopt(argc, argv, "aAbc:deEfFhHlmMno:pPtT:vxX#")) != -1) {
    if (kOptionOrder.find(static_cast<char>(c)) != std::string_view::npos) mode |= bit(static_cast<char>(c));
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
      case 'b': case 't':
        if (o.templates) log::fatal("specify one of -b and -t");
        o.templates = static_cast<char>(c);
        break;
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
  if (!(mode & kMajorModes)) mode |= bit('p');
  if ((mode & bits("pMFP")) && !o.args.empty() && o.args[0].find('=') != std::string::npos) {
    mode |= bit('e');
    o.edit = true;
  }
  check_options(mode);
  if (o.edit && o.args.empty()) log::fatal("-e requires name=value argument");
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
