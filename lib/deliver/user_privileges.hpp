// user_privileges.hpp: acting as a recipient, as Postfix's set_eugid(3),
// stat_as(3) and open_as(3), and passwd lookups that tell "no such user"
// from "lookup failed".
//
// local(8) runs with real uid root.  Between deliveries its effective ids
// are mail_owner's (queue files, service sockets); a mailbox, file or
// .forward access switches the effective uid and gid (and the group list,
// to the one gid) to the recipient's and back.  A command runs in a child
// that sets real and effective ids for good.  When the process is not
// root (an instance run by a developer) nothing is switched: every
// delivery runs as that user.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

namespace mta::deliver {

struct UserInfo {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::string shell;
};

// 0 and the entry (or nullopt: no such user), or an errno value.
int find_user_by_name(const std::string& name, std::optional<UserInfo>& out);
int find_user_by_uid(uid_t uid, std::optional<UserInfo>& out);

// Whether we can switch identities at all (real uid 0).
bool can_switch_ids();

// set_eugid(): the effective uid/gid and the group list; fatal on failure.
void set_eugid(uid_t uid, gid_t gid);

// The identity between deliveries (mail_owner); set once in post_init.
void set_resting_ids(uid_t uid, gid_t gid);
uid_t resting_uid();
gid_t resting_gid();

// Acts as uid/gid while it lives, then returns to the resting identity.
class ActAs {
 public:
  ActAs(uid_t uid, gid_t gid);
  ~ActAs();
  ActAs(const ActAs&) = delete;
  ActAs& operator=(const ActAs&) = delete;
};

// stat/lstat/open as another user; errno is kept.
int stat_as(const std::string& path, struct stat* st, uid_t uid, gid_t gid);
int lstat_as(const std::string& path, struct stat* st, uid_t uid, gid_t gid);
int open_as(const std::string& path, int flags, mode_t mode, uid_t uid, gid_t gid);

// In a forked child: the ids for good (setgid, setgroups, setuid).
void set_ugid(uid_t uid, gid_t gid);

}  // namespace mta::deliver
