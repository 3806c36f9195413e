// config.cpp: see config.hpp.
#include "config/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "config/config_file.hpp"
#include "config/host_defaults.hpp"
#include "log/log.hpp"

namespace mta::config {

std::string Config::default_config_dir() {
  const char* env = std::getenv("MAIL_CONFIG");
  return env && *env ? env : std::string(kDefaultConfigDir);
}

bool Config::listed_as_alternate(const std::string& dir, const std::string& main_cf) {
  std::ifstream in(main_cf);
  if (!in) throw ConfigError("open file " + main_cf + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The file's logical lines as Postfix reads them (comments, continuations);
  // the values literally, without $name expansion.  Postfix's
  // mail_conf_checkdir() also trusts multi_instance_directories.
  std::vector<std::string> warnings;
  for (const LogicalLine& line : split_logical_lines(text, main_cf, &warnings)) {
    std::string name, value;
    if (!split_name_value(line.text, &name, &value).empty()) continue;
    if (name != "alternate_config_directories" && name != "multi_instance_directories") continue;
    size_t i = 0;
    while (i < value.size()) {
      size_t e = value.find_first_of(", \t\r\n", i);
      if (e == std::string::npos) e = value.size();
      if (e > i && value.compare(i, e - i, dir) == 0) return true;
      i = e + 1;
    }
  }
  return false;
}

void Config::check_trusted_dir(const std::string& dir) {
  if (dir == kDefaultConfigDir || ::geteuid() == 0) return;
  std::string path = std::string(kDefaultConfigDir) + "/main.cf";
  bool listed = false;
  try {
    listed = listed_as_alternate(dir, path);
  } catch (const ConfigError& e) {
    log::fatal("%s", e.what());
  }
  if (!listed) {
    log::error("untrusted configuration directory name: %s", dir.c_str());
    log::fatal("specify \"alternate_config_directories = %s\" in %s", dir.c_str(), path.c_str());
  }
}

bool Config::running_set_id() { return ::getuid() != ::geteuid() || ::getgid() != ::getegid(); }

Config Config::load(const std::string& config_dir, const LoadOptions& options) {
  Config c;
  c.dir_ = config_dir;
  c.process_name_ = options.process_name;
  if (options.read_main_cf) {
    std::string path = c.main_cf_path();
    for (Assignment& a : parse_main_cf(read_file(path), path, &c.warnings_))
      c.main_[a.name] = std::move(a.value);
    if (config_dir != kDefaultConfigDir && !c.main_.count("config_directory"))
      c.main_["config_directory"] = config_dir;
  }
  if (options.read_master_cf) {
    // Without master.cf there are no per-service parameters; Postfix warns
    // and goes on, and so do we (programs that need the services, such as
    // postconf -M and master, read the file themselves and fail).
    std::string path = c.master_cf_path();
    std::string text;
    try {
      text = read_file(path);
    } catch (const ConfigError& e) {
      c.warnings_.push_back(e.what());
    }
    c.services_ = parse_master_cf(text, path, &c.warnings_);
    for (const MasterEntry& e : c.services_) {
      if (e.argv.empty() || !is_delivery_agent_command(e.argv[0])) continue;
      for (const ServiceParameterTemplate& t : service_parameter_templates()) {
        if (t.pipe_only && e.argv[0] != "pipe") continue;
        std::string name = e.service + std::string(t.suffix);
        if (!find_parameter(name)) c.service_params_.emplace(name, t.default_value);
      }
    }
  }
  return c;
}

std::optional<std::string> Config::computed_default(Computed what) const {
  switch (what) {
    case Computed::none: return std::nullopt;
    case Computed::myhostname: {
      auto domain = configured("mydomain");
      return compute_myhostname(domain ? std::optional(expand(*domain, *this)) : std::nullopt);
    }
    case Computed::mydomain: {
      auto host = configured("myhostname");
      return compute_mydomain(host ? expand(*host, *this) : compute_myhostname(std::nullopt));
    }
    case Computed::mynetworks:
      return compute_mynetworks(get("mynetworks_style"), get("inet_protocols"));
    case Computed::process_id: return std::to_string(getpid());
    case Computed::process_name: return process_name_;
  }
  return std::nullopt;
}

std::optional<std::string> Config::default_value(std::string_view name) const {
  if (const ParameterDef* p = find_parameter(name)) {
    if (p->computed != Computed::none) return computed_default(p->computed);
    return std::string(p->default_value);
  }
  if (auto it = service_params_.find(name); it != service_params_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Config::explicit_value(std::string_view name) const {
  if (auto it = main_.find(name); it != main_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Config::configured(std::string_view name) const {
  if (auto it = overrides_.find(name); it != overrides_.end()) return it->second;
  return explicit_value(name);
}

std::optional<std::string> Config::lookup(std::string_view name) const {
  if (auto v = configured(name)) return v;
  return default_value(name);
}

void Config::set_override(std::string name, std::string value) {
  overrides_[std::move(name)] = std::move(value);
}

void Config::set_explicit(std::string name, std::string value) {
  main_[std::move(name)] = std::move(value);
}

bool Config::is_builtin(std::string_view name) const {
  return find_parameter(name) || service_params_.count(name);
}

std::vector<std::string> Config::builtin_names() const {
  std::vector<std::string> names;
  for (const ParameterDef& p : parameter_table()) names.emplace_back(p.name);
  for (const auto& [n, v] : service_params_) names.push_back(n);
  std::sort(names.begin(), names.end());
  return names;
}

std::string Config::get(std::string_view name) const {
  auto raw = lookup(name);
  if (!raw) return {};
  try {
    return expand(*raw, *this);
  } catch (const ExpandError& e) {
    throw ConfigError(std::string(e.what()) + " (in parameter " + std::string(name) + ")");
  }
}

long long Config::get_int(std::string_view name) const {
  std::string v = get(name);
  long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size())
    throw ConfigError("bad numerical configuration: " + std::string(name) + " = " + v);
  return n;
}

bool Config::get_bool(std::string_view name) const {
  std::string v = get(name);
  std::string lower;
  for (char c : v) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "yes" || lower == "true") return true;
  if (lower == "no" || lower == "false") return false;
  throw ConfigError("bad boolean configuration: " + std::string(name) + " = " + v);
}

long long Config::get_time(std::string_view name, char default_unit) const {
  std::string v = get(name);
  long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  size_t rest = static_cast<size_t>(v.data() + v.size() - p);
  char unit = rest == 0 ? default_unit : rest == 1 ? *p : '?';
  long long scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400
                  : unit == 'w' ? 604800 : 0;
  if (v.empty() || ec != std::errc() || p == v.data() || scale == 0 || n < 0)
    throw ConfigError("parameter " + std::string(name) + ": bad time value or unit: " + v);
  return n * scale;
}

long long Config::get_size(std::string_view name) const { return get_int(name); }

std::vector<std::string> split_list(std::string_view value) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < value.size()) {
    while (i < value.size() && (is_blank(value[i]) || value[i] == ',')) ++i;
    size_t j = i;
    while (j < value.size() && !is_blank(value[j]) && value[j] != ',') ++j;
    if (j > i) out.emplace_back(value.substr(i, j - i));
    i = j;
  }
  return out;
}

int name_mask(std::string_view parameter, std::string_view value,
              std::initializer_list<std::pair<std::string_view, int>> table) {
  int mask = 0;
  for (const std::string& word : split_list(value)) {
    auto it = std::find_if(table.begin(), table.end(), [&word](const auto& entry) {
      return entry.first.size() == word.size() &&
             std::equal(word.begin(), word.end(), entry.first.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
             });
    });
    if (it == table.end())
      throw ConfigError("unknown " + std::string(parameter) + " value \"" + word + "\" in \"" + std::string(value) +
                        "\"");
    mask |= it->second;
  }
  return mask;
}

std::vector<std::string> Config::get_list(std::string_view name) const { return split_list(get(name)); }

}  // namespace mta::config
