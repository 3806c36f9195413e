// pipe_attributes.hpp: the command attributes at the end of a pipe(8)
// master.cf entry, as Postfix's get_service_attr() reads them:
//
//   flags=BDFORXhqu.>   mail_copy() flags (B blank line at the end,
//                       D Delivered-To:, F From_ line, O X-Original-To:,
//                       R Return-Path:, . dot-stuffing, > From_ quoting)
//                       and pipe's own (X final delivery: DSN "delivered"
//                       instead of "relayed"; h, u fold the domain and the
//                       local part of $recipient etc.; q quotes them)
//   user=name[:group]   never root, mail_owner or setgid_group's ids
//   directory=path      the command's working directory
//   chroot=path         its root directory
//   eol=string          the output line end, with C escapes (default \n)
//   null_sender=text    what the null sender becomes (default MAILER-DAEMON)
//   size=bytes          larger messages bounce (5.2.3)
//   argv=command ...    the command and its arguments, the last attribute
//
// Attribute names are matched case-insensitively, as in Postfix.  Anything
// else, or a missing user= or argv=, is fatal: parse_attributes() throws
// AttributeError with Postfix's text, which pipe(8) logs as "fatal: TEXT".
#pragma once

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mta::pipe {

// pipe's own flags, above the mail_copy() bits (deliver/mail_copy.hpp and
// kCopyDot in deliver/pipe_command.hpp).
inline constexpr int kFoldUser = 1 << 16;       // u
inline constexpr int kFoldHost = 1 << 17;       // h
inline constexpr int kQuoteLocal = 1 << 18;     // q
inline constexpr int kFinalDelivery = 1 << 19;  // X
inline constexpr int kFoldAll = kFoldUser | kFoldHost;
inline constexpr int kCopyFlagsMask = (1 << 16) - 1;

struct AttributeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The identities that user= must not name.
struct ForbiddenIds {
  std::string mail_owner;  // name, for the messages
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::string setgid_group;
  gid_t setgid_gid = static_cast<gid_t>(-1);
};

struct PipeAttributes {
  std::vector<std::string> command;  // argv= and everything after it
  uid_t uid = 0;
  gid_t gid = 0;
  int flags = 0;
  std::optional<std::string> exec_dir;    // directory=
  std::optional<std::string> chroot_dir;  // chroot=
  std::string eol = "\n";
  std::string null_sender = "MAILER-DAEMON";
  long long size_limit = 0;  // 0: none
};

PipeAttributes parse_attributes(const std::vector<std::string>& words, const ForbiddenIds& forbidden);

// Postfix's unescape(): \a \b \f \n \r \t \v \\ and \ddd (one to three
// octal digits); any other escaped character keeps its backslash.
std::string unescape(std::string_view text);

}  // namespace mta::pipe
