// delivery_service.hpp: one connection from qmgr, as Postfix's
// deliver_request_read() / deliver_request_done():
//
//   1. announce {protocol=delivery_request_protocol};
//   2. read the request (mail_proto.hpp: DeliverRequest and one list per
//      recipient);
//   3. open the queue file it names (queue_name/queue_id under the queue
//      directory) for update, with a shared lock, so that qmgr cannot hand
//      the same message to another agent after a restart;
//   4. deliver each recipient (LocalAgent), marking finished ones done in
//      the queue file;
//   5. reply {DSN of the hop (empty), status = 0 | -1}; then qmgr's next
//      request on the same connection (while ServerContext::next_request
//      allows), or its close.
//
// A request that cannot be read, or whose queue file cannot be opened, gets
// no reply: qmgr then defers the message ("unknown mail transport error").
#pragma once

#include <functional>

#include "local/local_settings.hpp"
#include "local/mail_services.hpp"

namespace mta::local {

void serve_delivery_request(int fd, const Settings& settings, AddressResolver& resolver,
                            const std::function<bool(int fd)>& next_request = {});

}  // namespace mta::local
