// biff_notify.hpp: the "new mail" notice of Postfix's biff_notify(3): one UDP
// datagram "user@offset" (with its terminating NUL) to the comsat service
// ("biff" in /etc/services, port 512) on the loopback address.  local(8)
// sends it after an mbox delivery when main.cf says "biff = yes" (Postfix's
// default; Debian's main.cf says no).  Best effort: nothing waits for an
// answer and a failure is not reported.
#pragma once

#include <string_view>

namespace mta::deliver {

void biff_notify(std::string_view text);

}  // namespace mta::deliver
