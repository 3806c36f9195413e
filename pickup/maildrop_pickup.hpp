// maildrop_pickup.hpp: what pickup does on each wakeup, as Postfix 3.7's
// pickup(8): take every complete file out of the maildrop queue and hand it
// to the cleanup service.
//
// For each file whose mode says it is complete (postdrop's 0744; a file
// still being written is 0644 and is left alone), pickup opens it without
// following links, connects to public/cleanup, reads {protocol, queue_id},
// sends {flags} (bounce bad mail, header/body checks, address mapping,
// automatic BCC, as receive_override_options allows) and then the records:
//
//   [L content_filter]  the envelope (T, A, F, S, R ...; a T from the file's
//                       time when there is none)
//   M  Received: by $myhostname ($mail_name, from userid UID)
//      <TAB>id QUEUEID; DATE          (the file's modification time)
//      the content (an empty line first when it starts with a blank)
//   X  the extracted segment  E
//
// and logs "QUEUEID: uid=UID from=<SENDER>" (with orig_id=NAME for a file
// that postsuper -r put there).  The file is removed only after cleanup
// answered status 0, that is after the queue file is on disk: a crash of
// pickup or cleanup at any point leaves the maildrop file, which is then
// picked up again (at least once, never lost).  Cleanup's refusals:
// "no recipients" removes the file (as Postfix: nothing to deliver); any
// other refusal keeps it for the next wakeup.  A file that cannot be
// parsed, or that cleanup calls malformed, goes to the corrupt queue with a
// warning (Postfix removes it; we keep it for the administrator).
#pragma once

#include <sys/types.h>

#include <string>

#include "config/config.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::pickup {

struct PickupSettings {
  std::string myhostname;
  std::string mail_name = "Postfix";
  std::string cleanup_service = "cleanup";
  std::string content_filter;
  size_t line_limit = 2048;
  int cleanup_flags = 0;
  uid_t mail_owner_uid = 0;
  bool have_mail_owner = false;

  static PickupSettings from_config(const config::Config& config);
};

class MaildropPickup {
 public:
  MaildropPickup(PickupSettings settings, queue::QueueLayout layout)
      : settings_(std::move(settings)), layout_(std::move(layout)) {}

  // Scans the maildrop queue until a pass removes nothing.
  void scan();

 private:
  enum class Outcome { remove, keep, corrupt };
  Outcome pickup_file(const std::string& id, const std::string& path);

  PickupSettings settings_;
  queue::QueueLayout layout_;
};

}  // namespace mta::pickup
