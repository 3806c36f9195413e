// mail_trigger.hpp: waking up a trigger service (pickup, qmgr) the way
// Postfix's mail_trigger does, from a process whose working directory is
// the queue directory (chrooted or not).
#pragma once

#include <string_view>

namespace mta::message {

// Sends BYTES to ./CLASS/NAME (a unix socket or a fifo) and closes.  A
// missing one is logged as Postfix does ("unable to look up public/qmgr: No
// such file or directory"), a service that does not answer is not; false on
// any failure (the caller goes on: the service also runs on its own timer).
bool mail_trigger(std::string_view service_class, std::string_view name, std::string_view bytes);

}  // namespace mta::message
