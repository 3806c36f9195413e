// log.hpp: Postfix-shaped logging for every program.
//
// A message goes to any of three sinks: standard error ("program: warning:
// text", as Postfix commands print it), syslog(3) with facility mail and the
// tag "syslog_name/program", and a log file (maillog_file) in Postfix 3.4+'s
// line shape "Mon DD HH:MM:SS host postfix/program[pid]: text", written with
// one O_APPEND write per line so that concurrent processes never interleave.
// Levels carry Postfix's prefixes: none for info, then "warning: ",
// "error: ", "fatal: " (log and exit 1) and "panic: " (log and abort).
// This module is generic: it knows no mail parameters; callers hand it the
// values of syslog_name and maillog_file.
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>

namespace mta::log {

enum class Level { info, warning, error, fatal, panic };

// Program identity: argv0 is printed as is on stderr (as Postfix does);
// the syslog and file tag uses its basename.
void init(std::string_view argv0);
void set_syslog_name(std::string_view syslog_name);  // "postfix" by default
void set_stderr(bool on);                            // on after init
void set_syslog(bool on);                            // off after init
// Send lines to a file; "/dev/stdout" and "/dev/stderr" are the streams.
// Returns false (and leaves the sink off) when the file cannot be opened.
bool set_file(const std::string& path, std::string* error = nullptr);
void set_verbose(int level);
int verbose_level();

// The tag that prefixes syslog and file lines, e.g. "postfix/smtpd".
std::string tag();
// One file line for the given text, without the newline (for tests).
std::string format_file_line(std::string_view text);

void vlog(Level level, const char* fmt, va_list ap);
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Logged only when -v raised the verbose level.
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace mta::log
