// privileges.hpp: chroot and the drop to mail_owner, as Postfix daemons do.
#pragma once

#include <string>

#include "config/config.hpp"

namespace mta::server {

struct Account {
  std::string name;
  unsigned uid = 0;
  unsigned gid = 0;
};

// mail_owner's account; throws ConfigError with Postfix's message when the
// user is missing or has uid 0.
Account mail_owner(const config::Config& config);

// As root: optionally chroot to dir, then set groups, gid and uid to the
// account's.  Not root: does nothing (an unprivileged instance).
void drop_privileges(const Account& account, const std::string& chroot_dir);

}  // namespace mta::server
