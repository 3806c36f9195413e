// config.hpp: one program's view of main.cf (and master.cf's services).
//
// A value comes from, in order: a -o override, main.cf (last assignment
// wins), the parameter table (or a computed host default, or a per-service
// template for master.cf's delivery services).  Values stay unexpanded until
// a program asks for one; get() expands it then, as Postfix does.  Typed
// getters fail with Postfix's message when a value does not parse.
//
// MAIL_CONFIG or -c chooses the directory; /etc/postfix is the default.  When
// the directory is not the default, config_directory counts as set in main.cf
// (Postfix shows it in `postconf -n`).
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_file.hpp"
#include "config/expand.hpp"
#include "config/master_cf.hpp"
#include "config/parameter_table.hpp"

namespace mta::config {

inline constexpr std::string_view kDefaultConfigDir = "/etc/postfix";

struct LoadOptions {
  bool read_main_cf = true;     // false: defaults only (postconf -d); then every
                                // value is the default
  bool read_master_cf = false;  // true: per-service parameters from master.cf
  std::string process_name;     // the process_name parameter
};

class Config : public MacroSource {
 public:
  // $MAIL_CONFIG when set, else /etc/postfix.
  static std::string default_config_dir();
  // Postfix's mail_conf_checkdir(): may this process use DIR?  Yes for
  // /etc/postfix, for root, and for a directory that the default main.cf
  // lists in alternate_config_directories (read literally, no $names).
  // Otherwise logs "untrusted configuration directory name: DIR" and exits
  // with "fatal: specify "alternate_config_directories = DIR" in
  // /etc/postfix/main.cf".
  static void check_trusted_dir(const std::string& dir);
  // The test behind it: DIR is listed in MAIN_CF's alternate_config_directories
  // or multi_instance_directories.
  // Throws ConfigError when MAIN_CF cannot be read.
  static bool listed_as_alternate(const std::string& dir, const std::string& main_cf);
  // True when the process runs set-uid or set-gid (postdrop, postqueue):
  // then $MAIL_CONFIG comes from a different trust domain (safe_getenv).
  static bool running_set_id();
  // Throws ConfigError (file and line named) when a file is bad or missing.
  static Config load(const std::string& config_dir, const LoadOptions& options = {});

  const std::string& config_dir() const { return dir_; }
  std::string main_cf_path() const { return dir_ + "/main.cf"; }
  std::string master_cf_path() const { return dir_ + "/master.cf"; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::vector<MasterEntry>& services() const { return services_; }

  // MacroSource: the raw value from overrides, main.cf or defaults.
  std::optional<std::string> lookup(std::string_view name) const override;
  // The default alone (table, computed, service template), raw.
  std::optional<std::string> default_value(std::string_view name) const;
  // The value set in main.cf (or implied by -c), raw.
  std::optional<std::string> explicit_value(std::string_view name) const;
  const std::map<std::string, std::string, std::less<>>& explicit_values() const { return main_; }

  void set_override(std::string name, std::string value);
  // Sets a value as if main.cf had it (postconf -o, tests).
  void set_explicit(std::string name, std::string value);

  bool is_builtin(std::string_view name) const;  // table or service parameter
  // Every built-in name: the table and the service parameters, sorted.
  std::vector<std::string> builtin_names() const;

  // Expanded values; throw ConfigError with Postfix's message.
  std::string get(std::string_view name) const;
  long long get_int(std::string_view name) const;
  bool get_bool(std::string_view name) const;
  long long get_time(std::string_view name, char default_unit = 's') const;  // seconds
  long long get_size(std::string_view name) const;
  std::vector<std::string> get_list(std::string_view name) const;  // split on blanks and commas

 private:
  std::optional<std::string> computed_default(Computed what) const;
  std::optional<std::string> configured(std::string_view name) const;  // override or main.cf

  std::string dir_;
  std::string process_name_;
  std::map<std::string, std::string, std::less<>> main_;
  std::map<std::string, std::string, std::less<>> overrides_;
  std::map<std::string, std::string, std::less<>> service_params_;  // name -> default
  std::vector<MasterEntry> services_;
  std::vector<std::string> warnings_;
};

// Splits a list value on blanks and commas (Postfix's CHARS_COMMA_SP).
std::vector<std::string> split_list(std::string_view value);
// Postfix's name_mask(): the bits of the words of a comma/blank list,
// case-insensitive; an unknown word throws ConfigError ("unknown PARAMETER
// value "WORD" in "VALUE"").
int name_mask(std::string_view parameter, std::string_view value,
              std::initializer_list<std::pair<std::string_view, int>> table);

}  // namespace mta::config
