// privileges.cpp: see privileges.hpp.
#include "server/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log/log.hpp"

namespace mta::server {

Account mail_owner(const config::Config& config) {
  std::string name = config.get("mail_owner");
  struct passwd* pw = ::getpwnam(name.c_str());
  std::string where = "file " + config.main_cf_path() + ": parameter mail_owner: ";
  if (!pw) throw config::ConfigError(where + "unknown user name value: " + name);
  if (pw->pw_uid == 0) throw config::ConfigError(where + "user " + name + " has privileged user ID");
  return {name, static_cast<unsigned>(pw->pw_uid), static_cast<unsigned>(pw->pw_gid)};
}

void drop_privileges(const Account& account, const std::string& chroot_dir) {
  if (::geteuid() != 0) return;
  if (!chroot_dir.empty()) {
    if (::chroot(chroot_dir.c_str()) != 0)
      log::fatal("chroot(%s): %s", chroot_dir.c_str(), std::strerror(errno));
    if (::chdir("/") != 0) log::fatal("chdir(\"/\"): %s", std::strerror(errno));
  }
  gid_t gid = account.gid;
  if (::setgroups(1, &gid) != 0) log::fatal("setgroups: %s", std::strerror(errno));
  if (::setgid(gid) != 0) log::fatal("setgid(%u): %s", account.gid, std::strerror(errno));
  if (::setuid(account.uid) != 0) log::fatal("setuid(%u): %s", account.uid, std::strerror(errno));
}

}  // namespace mta::server
