// virtual_settings.cpp: see virtual_settings.hpp.
#include "virtual/virtual_settings.hpp"

#include <pwd.h>

#include "deliver/agent_session.hpp"
#include "deliver/mailbox_file.hpp"
#include "log/log.hpp"

namespace mta::virt {

int parse_virtual_lock_mask(std::string_view value) {
  static const std::pair<std::string_view, int> kMethods[] = {
      {"flock", deliver::kLockFlock}, {"fcntl", deliver::kLockFcntl}, {"dotlock", deliver::kLockDotlock}};
  int mask = 0;
  for (const std::string& word : config::split_list(value)) {
    bool found = false;
    for (const auto& [name, bit] : kMethods) {
      if (word == name) {  // name_mask(): case matters
        mask |= bit;
        found = true;
      }
    }
    // name_mask() of mbox_lock_mask() names the local parameter, also for virtual.
    if (!found)
      throw config::ConfigError("unknown mailbox_delivery_lock value \"" + word + "\" in \"" + std::string(value) +
                                "\"");
  }
  return mask;
}

std::string direct_maps_spec(std::string_view value) {
  std::string out;
  for (const std::string& spec : config::split_list(value)) {
    std::string_view s = spec;
    while (s.substr(0, 6) == "proxy:") s.remove_prefix(6);
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

Settings load_settings(const config::Config& config, const std::string& service_name) {
  Settings s;
  s.service = service_name;
  s.mailbox_base = config.get("virtual_mailbox_base");
  s.minimum_uid = config.get_int("virtual_minimum_uid");
  if (s.minimum_uid < 1)
    throw config::ConfigError("invalid virtual_minimum_uid parameter value " + std::to_string(s.minimum_uid) + " < 1");
  s.mailbox_limit = config.get_int("virtual_mailbox_limit");
  s.lock_mask = parse_virtual_lock_mask(config.get("virtual_mailbox_lock"));
  s.deliver_lock_attempts = config.get_int("deliver_lock_attempts");
  s.deliver_lock_delay = config.get_time("deliver_lock_delay");
  s.stale_lock_time = config.get_time("stale_lock_time");
  s.strict_mailbox_ownership = config.get_bool("strict_mailbox_ownership");
  s.recipient_delimiter = config.get("recipient_delimiter");

  // The file size limit may not be below the message size limit (Postfix:
  // it would keep the agent from updating the queue file).
  const long long message_limit = config.get_int("message_size_limit");
  if (s.mailbox_limit > 0) {
    if (message_limit <= 0)
      throw config::ConfigError("configuration error: virtual_mailbox_limit is limited but message_size_limit is "
                                "unlimited");
    if (s.mailbox_limit < message_limit)
      throw config::ConfigError("configuration error: virtual_mailbox_limit is smaller than message_size_limit");
  }
  if (!config.get("virtual_delivery_status_filter").empty())
    log::warning("virtual_delivery_status_filter is not implemented by this version and is ignored");

  const std::string owner = config.get("mail_owner");
  if (struct passwd* pw = ::getpwnam(owner.c_str())) {
    s.owner_uid = pw->pw_uid;
    s.owner_gid = pw->pw_gid;
  } else {
    throw config::ConfigError("unknown mail_owner user name value: " + owner);
  }

  // The recipient is folded to lower case before every lookup; $1 in a
  // regexp result is refused (DICT_FLAG_PARANOID).
  maps::OpenFlags flags;
  flags.no_regsub = true;
  s.mailbox_maps = maps::Maps("virtual_mailbox_maps", direct_maps_spec(config.get("virtual_mailbox_maps")), flags);
  s.uid_maps = maps::Maps("virtual_uid_maps", direct_maps_spec(config.get("virtual_uid_maps")), flags);
  s.gid_maps = maps::Maps("virtual_gid_maps", direct_maps_spec(config.get("virtual_gid_maps")), flags);
  s.local_domains = std::make_shared<const rewrite::LocalDomains>(config);
  s.reporter = agent::reporter_config(config);
  return s;
}

}  // namespace mta::virt
