// user_acl.cpp: see user_acl.hpp.
#include "cleanup/user_acl.hpp"

#include <pwd.h>
#include <strings.h>

#include "config/config.hpp"
#include "maps/maps.hpp"

namespace mta::message {

std::string user_name(uid_t uid) {
  struct passwd* pw = ::getpwuid(uid);
  return pw && pw->pw_name ? std::string(pw->pw_name) : std::string();
}

std::optional<std::string> check_user_acl(std::string_view acl, uid_t uid) {
  std::string name = user_name(uid);
  std::string who = name.empty() ? std::to_string(uid) : name;
  for (std::string item : config::split_list(acl)) {
    bool negate = false;
    while (!item.empty() && item[0] == '!') {
      negate = !negate;
      item.erase(0, 1);
    }
    bool match;
    if (item.find(':') != std::string::npos) {
      maps::Maps table("authorized_submit_users", item);
      match = table.find(who).found();
    } else {
      match = ::strcasecmp(item.c_str(), who.c_str()) == 0;
    }
    if (match) {
      if (negate) return who;
      return std::nullopt;
    }
  }
  return who;
}

}  // namespace mta::message
