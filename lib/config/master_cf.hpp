// master_cf.hpp: master.cf entries.
//
// An entry is one logical line (continuations allowed) with eight or more
// fields: service type private unprivileged chroot wakeup process_limit
// command [args...].  "-" keeps a field's default.  An argument in braces,
// "{ text with spaces }", is one argument with the braces and their inner
// blanks removed; "-o { name = value }" is normalised to "-o name=value",
// as Postfix 3.7 does.  Field checks and their messages follow Postfix's.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_file.hpp"

namespace mta::config {

struct MasterEntry {
  std::string service;
  std::string type;  // inet unix unix-dgram fifo pass
  std::string private_;
  std::string unprivileged;
  std::string chroot;
  std::string wakeup;
  std::string process_limit;
  std::vector<std::string> argv;  // command and its arguments
  int line = 0;

  std::string key() const { return service + "/" + type; }
  // The -o name=value settings, in order.
  std::vector<std::pair<std::string, std::string>> overrides() const;
};

inline constexpr const char* kMasterFieldNames[] = {
    "service", "type", "private", "unprivileged", "chroot", "wakeup", "process_limit", "command"};

// Whether VALUE may stand in field INDEX of kMasterFieldNames (service
// non-empty, a known type, y/n/- flags, a wakeup time with an optional '?',
// a process limit); the command is not checked here.
bool valid_master_field(size_t index, std::string_view value);

// Parses one logical line; throws ConfigError with Postfix's message.
// Warnings (unbalanced braces) go to *warnings.
MasterEntry parse_master_entry(std::string_view text, const std::string& path, int line,
                               std::vector<std::string>* warnings);

std::vector<MasterEntry> parse_master_cf(std::string_view text, const std::string& path,
                                         std::vector<std::string>* warnings);

// Splits a command line into arguments with the brace rule above.
std::vector<std::string> split_master_args(std::string_view text, std::vector<std::string>* warnings);

// One entry as `postconf -M` prints it: fields at Postfix's columns, and with
// fold set, arguments wrapped at 80 columns after a four-blank indent.
std::string format_master_entry(const MasterEntry& entry, bool fold);
// The command field as `postconf -F` prints it.
std::string format_master_command(const MasterEntry& entry);

}  // namespace mta::config
