// log_setup.cpp: see log_setup.hpp.
#include "config/log_setup.hpp"

#include "log/log.hpp"

namespace mta::config {

void setup_logging(const Config& config, bool to_stderr) {
  log::set_syslog_name(config.get("syslog_name"));
  log::set_stderr(to_stderr);
  std::string file = config.get("maillog_file");
  if (file.empty()) {
    log::set_file("");
    log::set_syslog(true);
    return;
  }
  bool allowed = false;
  for (const std::string& prefix : config.get_list("maillog_file_prefixes"))
    if (file.compare(0, prefix.size(), prefix) == 0) allowed = true;
  if (!allowed)
    throw ConfigError("maillog_file value '" + file +
                      "' does not match any prefix in maillog_file_prefixes");
  std::string error;
  if (!log::set_file(file, &error)) throw ConfigError(error);
  log::set_syslog(false);
}

}  // namespace mta::config
