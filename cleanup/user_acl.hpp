// user_acl.hpp: who may submit mail (authorized_submit_users) and similar
// user lists, as Postfix's check_user_acl_byuid.
//
// The list holds user names, "!name" (a match refuses), and lookup tables
// ("static:anyone", "hash:/etc/postfix/submitters"), checked in order; the
// first match decides and no match refuses.  A table that fails counts as
// no match.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace mta::message {

// Empty when UID may; else the name (or the number) of the user, for the
// message "User NAME(UID) is not allowed to submit mail".
std::optional<std::string> check_user_acl(std::string_view acl, uid_t uid);

// The login name of UID, or empty.
std::string user_name(uid_t uid);

}  // namespace mta::message
