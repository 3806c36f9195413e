// master.hpp: the resident process that runs every master.cf service.
//
// It opens each service's listening endpoints, starts workers on demand (a
// worker is started when a connection waits and no worker of the service is
// free, up to maxproc, whose "-" is default_process_limit), learns from a
// status pipe which workers are free, sends wakeup triggers (a trailing "?"
// means only after the service was used), restarts workers that die, and
// throttles a service whose workers die before serving anyone (Postfix's
// "bad command startup -- throttling", for service_throttle_time).
// SIGHUP reloads main.cf and master.cf: changed services are reopened, new
// ones added, removed ones closed, and every running worker is asked to
// finish and exit (its lifeline closes) so that the next one reads the new
// configuration; no queued mail is touched.  SIGTERM stops the workers and
// master.
#pragma once

#include <memory>
#include <string>

namespace mta::master {

struct MasterOptions {
  std::string config_dir;
  int ready_fd = -1;     // written to (and closed) once every service is open
  long exit_after = 0;   // -e: seconds, 0 = never
};

// Runs until SIGTERM; returns the exit status.
int run_master(const MasterOptions& options);

}  // namespace mta::master
