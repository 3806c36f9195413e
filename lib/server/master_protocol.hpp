// master_protocol.hpp: what master and its children agree on.
//
// master starts a worker with its listening sockets dup'ed to descriptors
// kListenFd, kListenFd+1, ... (the count follows -s), a status pipe on
// kStatusFd on which the worker reports whether it can take another client,
// and a lifeline on kLifelineFd: the read end of a pipe whose write end only
// master holds, so a worker sees end-of-file when master is gone and exits.
// The generation (environment MTA_MASTER_GENERATION) lets master ignore
// reports from workers of a service that a reload has since replaced.
//
// Worker command line, after the master.cf command name:
//   -n service_name -t type -s socket_count [-u] [-c] [master.cf arguments]
// -u: drop privileges to mail_owner (master.cf unpriv = y);
// -c: chroot to queue_directory (master.cf chroot = y); both only as root.
#pragma once

#include <cstdint>

namespace mta::server {

inline constexpr int kLifelineFd = 4;
inline constexpr int kStatusFd = 5;
inline constexpr int kListenFd = 6;
inline constexpr const char* kGenerationEnv = "MTA_MASTER_GENERATION";

enum class Availability : std::int32_t { taken = 0, available = 1 };

// Written with one write(2), smaller than PIPE_BUF, so reports never interleave.
struct StatusReport {
  std::int32_t pid;
  std::uint32_t generation;
  Availability availability;
};

// The trigger a wakeup timer sends (Postfix's TRIGGER_REQ_WAKEUP).
inline constexpr char kWakeupTrigger = 'W';

}  // namespace mta::server
