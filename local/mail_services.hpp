// mail_services.hpp: the other Postfix services that local(8) talks to
// while it delivers, over the attribute protocol (lib/ipc):
//
//   AddressResolver  private/rewrite: canonicalize ("local" rule) and resolve
//                    an address, as the cleanup service and qmgr would, so
//                    that an alias or .forward entry is delivered here when
//                    it resolves to our own transport;
//   Forwarder        public/cleanup: a new message for each (Delivered-To,
//                    sender) pair with the forwarded recipients (Postfix's
//                    forward.c), so each gets its own queue file record;
//   deliver_pass()   private/TRANSPORT: hand one recipient to another
//                    delivery agent (mailbox_transport, fallback_transport),
//                    as qmgr would.
#pragma once

#include <sys/time.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "deliver/status_reporter.hpp"

namespace mta::local {

// Dsn, StatusReporter, mail_copy, LockedMailbox, pipe_command, ActAs ...
using namespace mta::deliver;

struct Settings;

struct ResolvedAddress {
  bool failed = false;  // the service could not answer (or RESOLVE_FLAG_FAIL)
  bool bad_syntax = false;
  std::string transport;
  std::string nexthop;
  std::string recipient;  // internal form
};

class AddressResolver {
 public:
  explicit AddressResolver(const Settings& settings);
  // rewrite_clnt("local", external address): the canonical external form.
  bool rewrite_local(const std::string& external, std::string* out);
  // canon_addr_internal(): internal in, internal out.
  bool canonicalize_internal(const std::string& internal, std::string* out);
  ResolvedAddress resolve(const std::string& internal);

 private:
  ipc::ServiceClient client_;
};

// What a forwarded message is made from.
struct ForwardSource {
  const ipc::proto::DeliverRequest* request = nullptr;
  int queue_fd = -1;
  std::string queue_path;
  long data_offset = 0;
};

class Forwarder {
 public:
  Forwarder(const Settings& settings, ForwardSource source);
  ~Forwarder();
  // Adds a recipient to the message for (delivered, sender); false when
  // the cleanup service cannot be reached.
  bool append(const std::string& delivered, const std::string& sender, const ipc::proto::Recipient& rcpt);
  // Sends every pending message (unless cancel) and reports each one as
  // "forwarded as ID" for TOP (the recipient of the delivery request).
  // Returns 0 or -1, as the reporting functions.
  int finish(StatusReporter& reporter, int flags, const ipc::proto::Recipient& top, int cancel);
  bool empty() const { return pending_.empty(); }

 private:
  struct Pending {
    ipc::Channel channel;
    std::string queue_id;
    timeval posted{};
  };
  std::unique_ptr<Pending> open(const std::string& sender);
  int send(Pending& p, const std::string& delivered);

  const Settings& settings_;
  ForwardSource source_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pending>> pending_;
};

// Hands RCPT to TRANSPORT ("name" or "name:nexthop") with the rest of
// REQUEST; returns that agent's status (0 or -1).  When the agent cannot
// be reached the recipient is deferred ("4.3.0 mail transport
// unavailable").
int deliver_pass(const Settings& settings, StatusReporter& reporter, const ipc::proto::DeliverRequest& request,
                 const std::string& transport, const ipc::proto::Recipient& rcpt, int flags);

// RFC 2822 date as Postfix's mail_date(): "Sat,  1 Nov 2025 10:00:00 +0100 (CET)".
std::string mail_date(time_t when);

}  // namespace mta::local
