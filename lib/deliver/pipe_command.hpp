// pipe_command.hpp: running a delivery command (Postfix's pipe_command(3)),
// shared by local(8)'s "|command" leaf and pipe(8).
//
// local(8) gives a command string (run without a shell when it has no
// shell meta characters); pipe(8) gives an argument vector, executed
// directly, and may ask for a chroot, an output line ending other than
// "\n" (eol=) and dot-stuffing (flags=.).  The command's output (at most
// 4096 bytes, tabs and newlines made spaces, other unprintable bytes '_')
// becomes part of the failure reason, and after success pipe(8) reports it
// too (PipeOutcome::output).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "deliver/status_reporter.hpp"
#include "deliver/mail_copy.hpp"

namespace mta::deliver {

// MAIL_COPY_DOT: a line that starts with "." gets another "." in front
// (pipe's flags=.); pipe_command() does it, mail_copy() does not know it.
inline constexpr int kCopyDot = 1 << 5;

struct PipeCommand {
  std::string command;          // run directly, or by /bin/sh when it needs a shell
  // pipe(8): the argument vector, run with execvp() and no shell (command
  // is then ignored; argv[0] names the command in reasons).  A failed exec
  // or chroot is fatal in the child, which exits with EX_TEMPFAIL.
  std::vector<std::string> argv;
  std::string chroot_dir;       // pipe(8) chroot=: before the user's ids are taken
  std::string eol = "\n";       // pipe(8) eol=: the end of every output line
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
  std::string output;  // what the command printed (made printable), also after success
};

PipeOutcome pipe_command(const PipeCommand& cmd, int queue_fd, const std::string& queue_path, long data_offset);

}  // namespace mta::deliver
