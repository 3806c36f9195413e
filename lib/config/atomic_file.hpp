// atomic_file.hpp: replace a configuration file as a whole or not at all.
//
// The new text goes to PATH.tmp (locked, so two editors never mix), is
// fsync'd, takes the old file's mode and owner, and is renamed over PATH;
// the directory is fsync'd after.  A failure leaves PATH untouched and
// throws ConfigError with the failing step ("open /etc/postfix/main.cf.tmp:
// Permission denied").
#pragma once

#include <string>
#include <string_view>

namespace mta::config {

void replace_file_atomically(const std::string& path, std::string_view text);

}  // namespace mta::config
