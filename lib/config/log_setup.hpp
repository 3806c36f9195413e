// log_setup.hpp: point lib/log at where main.cf says logs go.
//
// syslog_name sets the tag; maillog_file (Postfix 3.4+) sends lines to a
// file instead of syslog, but only when the file name starts with one of
// maillog_file_prefixes, as Postfix insists, so that a typo in main.cf cannot
// make a root process append to an arbitrary file.
#pragma once

#include "config/config.hpp"

namespace mta::config {

// Throws ConfigError with Postfix's message when maillog_file is refused
// or cannot be opened.  to_stderr keeps messages on stderr too (commands).
void setup_logging(const Config& config, bool to_stderr);

}  // namespace mta::config
