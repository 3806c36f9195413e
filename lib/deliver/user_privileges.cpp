// user_privileges.cpp: see user_privileges.hpp.
#include "deliver/user_privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "log/log.hpp"

namespace mta::deliver {
namespace {

uid_t g_rest_uid = 0;
gid_t g_rest_gid = 0;
bool g_rest_set = false;

int lookup(bool by_name, const std::string& name, uid_t uid, std::optional<UserInfo>& out) {
  out.reset();
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(static_cast<size_t>(size > 0 ? size : 16384));
  for (;;) {
    struct passwd pw {};
    struct passwd* result = nullptr;
    int rc = by_name ? ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result)
                     : ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &result);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    // "Not found" comes back as 0 (or, on some systems, ENOENT and friends).
    if (rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) rc = 0;
    if (rc != 0) return rc;
    if (result) out = UserInfo{pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir ? pw.pw_dir : "",
                               pw.pw_shell ? pw.pw_shell : ""};
    return 0;
  }
}

}  // namespace

int find_user_by_name(const std::string& name, std::optional<UserInfo>& out) { return lookup(true, name, 0, out); }
int find_user_by_uid(uid_t uid, std::optional<UserInfo>& out) { return lookup(false, {}, uid, out); }

bool can_switch_ids() { return ::getuid() == 0; }

void set_eugid(uid_t uid, gid_t gid) {
  if (!can_switch_ids()) return;
  int saved = errno;
  if (::geteuid() != 0 && ::seteuid(0) != 0) log::fatal("set_eugid: seteuid(0): %s", std::strerror(errno));
  if (::setegid(gid) != 0) log::fatal("set_eugid: setegid(%ld): %s", static_cast<long>(gid), std::strerror(errno));
  if (::setgroups(1, &gid) != 0)
    log::fatal("set_eugid: setgroups(%ld): %s", static_cast<long>(gid), std::strerror(errno));
  if (uid != 0 && ::seteuid(uid) != 0)
    log::fatal("set_eugid: seteuid(%ld): %s", static_cast<long>(uid), std::strerror(errno));
  errno = saved;
}

void set_resting_ids(uid_t uid, gid_t gid) {
  g_rest_uid = uid;
  g_rest_gid = gid;
  g_rest_set = true;
  set_eugid(uid, gid);
}
uid_t resting_uid() { return g_rest_set ? g_rest_uid : ::geteuid(); }
gid_t resting_gid() { return g_rest_set ? g_rest_gid : ::getegid(); }

ActAs::ActAs(uid_t uid, gid_t gid) { set_eugid(uid, gid); }
ActAs::~ActAs() {
  if (g_rest_set) set_eugid(g_rest_uid, g_rest_gid);
}

int stat_as(const std::string& path, struct stat* st, uid_t uid, gid_t gid) {
  ActAs as(uid, gid);
  return ::stat(path.c_str(), st);
}

int lstat_as(const std::string& path, struct stat* st, uid_t uid, gid_t gid) {
  ActAs as(uid, gid);
  return ::lstat(path.c_str(), st);
}

int open_as(const std::string& path, int flags, mode_t mode, uid_t uid, gid_t gid) {
  ActAs as(uid, gid);
  return ::open(path.c_str(), flags | O_CLOEXEC, mode);
}

void set_ugid(uid_t uid, gid_t gid) {
  if (!can_switch_ids()) return;
  if (::geteuid() != 0 && ::seteuid(0) != 0) log::fatal("set_ugid: seteuid(0): %s", std::strerror(errno));
  if (::setgid(gid) != 0) log::fatal("setgid(%ld): %s", static_cast<long>(gid), std::strerror(errno));
  if (::setgroups(1, &gid) != 0) log::fatal("setgroups(1, &%ld): %s", static_cast<long>(gid), std::strerror(errno));
  if (::setuid(uid) != 0) log::fatal("setuid(%ld): %s", static_cast<long>(uid), std::strerror(errno));
}

}  // namespace mta::deliver
