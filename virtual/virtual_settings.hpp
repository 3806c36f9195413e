// virtual_settings.hpp: what the virtual(8) delivery agent takes from
// main.cf, read once per process (Postfix's parameter tables of
// virtual.c), with Postfix's start-up checks.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "deliver/status_reporter.hpp"
#include "maps/maps.hpp"
#include "trivial-rewrite/local_domains.hpp"

namespace mta::virt {

struct Settings {
  std::string service = "virtual";  // master.cf service name: the relay= of the log lines
  std::string mailbox_base;         // virtual_mailbox_base (checked per delivery, as Postfix does)
  maps::Maps mailbox_maps;          // virtual_mailbox_maps
  maps::Maps uid_maps;              // virtual_uid_maps
  maps::Maps gid_maps;              // virtual_gid_maps
  long long minimum_uid = 100;      // virtual_minimum_uid
  long long mailbox_limit = 51200000;  // virtual_mailbox_limit, 0: none
  int lock_mask = 0;                // virtual_mailbox_lock (deliver::kLock* bits)
  long long deliver_lock_attempts = 20;
  long long deliver_lock_delay = 1;
  long long stale_lock_time = 500;
  bool strict_mailbox_ownership = true;
  std::string recipient_delimiter;
  uid_t owner_uid = 0;  // mail_owner: the identity between deliveries
  gid_t owner_gid = 0;
  // mydestination and our interfaces: the "user" lookups of mail_addr_find.
  std::shared_ptr<const rewrite::LocalDomains> local_domains;
  deliver::ReporterConfig reporter;
};

// Postfix's mbox_lock_mask(): "flock", "fcntl", "dotlock"; throws
// config::ConfigError with name_mask's message on another word.
int parse_virtual_lock_mask(std::string_view value);

// The table list of a virtual_*_maps parameter as virtual(8) opens it:
// "proxy:" prefixes dropped (it opens the tables itself, as Postfix's).
std::string direct_maps_spec(std::string_view value);

// Reads the parameters and opens the tables (pre_init, as root).  Throws
// config::ConfigError with Postfix's message ("configuration error:
// virtual_mailbox_limit is smaller than message_size_limit").  Logs a
// warning for virtual_delivery_status_filter, which is not implemented.
Settings load_settings(const config::Config& config, const std::string& service_name);

}  // namespace mta::virt
