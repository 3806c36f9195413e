// pipe_command.hpp: running a delivery command (Postfix's pipe_command(3)),
// shared by local(8)'s "|command" leaf and pipe(8).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "deliver/status_reporter.hpp"
#include "deliver/mail_copy.hpp"

namespace mta::deliver {

struct PipeCommand {
  std::string command;          // run directly, or by /bin/sh when it needs a shell
  std::string shell;            // local_command_shell: run "SHELL... command" instead
  uid_t uid = 0;                // never 0: the caller picks default_privs
  gid_t gid = 0;
  std::vector<std::pair<std::string, std::string>> env;  // set after export_environment
  std::vector<std::string> export_environment;
  std::string cwd;              // command_execution_directory (empty: the queue directory)
  long long time_limit = 1000;  // seconds for the whole run
  long long file_size_limit = 0;
  int copy_flags = 0;
  CopyEnvelope envelope;
};

struct PipeOutcome {
  enum Status { ok, bounce, defer, corrupt } status = ok;
  Dsn why;
};

PipeOutcome pipe_command(const PipeCommand& cmd, int queue_fd, const std::string& queue_path, long data_offset);

}  // namespace mta::deliver
