// listener.hpp: the endpoints master opens for master.cf services.
//
//   inet        host:port, port, [v6addr]:port; a bare port binds per
//               inet_interfaces (all, loopback-only, or a list) and
//               inet_protocols; ports may be /etc/services names
//   unix, fifo  private/NAME or public/NAME under the queue directory,
//               mode 0666 (the directory's mode guards private/), owned by
//               mail_owner when master runs as root
// Each opener returns descriptors ready for the workers, or throws
// config::ConfigError with the reason.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/master_cf.hpp"

namespace mta::master {

// Listening descriptors for the entry (more than one for an inet service
// on several addresses).  Owner: mail_owner's uid/gid when root, else -1.
std::vector<int> open_listeners(const config::MasterEntry& entry, const config::Config& config, int owner_uid,
                                int owner_gid);

// The path of a unix or fifo service (relative to the queue directory).
std::string service_path(const config::MasterEntry& entry);

// Sends a wakeup trigger to a unix or fifo service; false when nobody listens.
bool send_trigger(const config::MasterEntry& entry, char trigger);

}  // namespace mta::master
