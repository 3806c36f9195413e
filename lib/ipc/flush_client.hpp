// flush_client.hpp: the client of the fast flush service (Postfix's
// flush_clnt), for ETRN (smtpd), "postqueue -s site" / "sendmail -qRsite",
// "postqueue -i queue_id" and defer_append().
//
// Each call is one connection to $queue_directory/public/flush (one
// connect attempt, as mail_command_client): read the announcement, send
// the request, read {status=N}.  The result is one of flush_proto.hpp's
// codes:
//   kStatOk    done; for send_site the site's deferred mail is now in the
//              incoming queue and qmgr was asked to deliver it (also when
//              the site had no mail queued)
//   kStatDeny  the site is not one of fast_flush_domains
//   kStatBad   the site or queue ID is malformed
//   kStatFail  the service could not be reached or did not answer (a
//              warning says why), or fast_flush_domains could not be read
// The free functions ask the service, which decides.  FlushClient adds
// what Postfix's client checks before it asks: add and send_site answer
// kStatDeny without a connection when fast_flush_domains does not list the
// site (kStatFail when a table in the list fails), refresh and purge
// answer kStatDeny when the list is empty.
#pragma once

#include <string>
#include <string_view>

#include "ipc/flush_proto.hpp"
#include "ipc/stream.hpp"
#include "maps/match_list.hpp"

namespace mta::ipc {

struct FlushOptions {
  std::string service = "flush";        // flush_service_name, under public/
  Millis timeout = kDefaultIpcTimeout;  // ipc_timeout, for each read and write
};

// Register QUEUE_ID as queued for SITE (a domain or "[address]").
int flush_add(std::string_view queue_dir, std::string_view site, std::string_view queue_id,
              const FlushOptions& options = {});
// Deliver the mail queued for SITE now.
int flush_send_site(std::string_view queue_dir, std::string_view site, const FlushOptions& options = {});
// Deliver one deferred message now.
int flush_send_file(std::string_view queue_dir, std::string_view queue_id, const FlushOptions& options = {});
// Housekeeping: logs unread for fast_flush_refresh_time are flushed, empty
// ones older than fast_flush_purge_time removed (done after the reply).
int flush_refresh(std::string_view queue_dir, const FlushOptions& options = {});
// The same for every log, whatever its age.
int flush_purge(std::string_view queue_dir, const FlushOptions& options = {});

// The client with Postfix's local checks (flush_init()).
class FlushClient {
 public:
  // fast_flush_domains and whether parent_domain_matches_subdomains names it.
  FlushClient(std::string queue_dir, std::string_view fast_flush_domains, bool parent_style,
              FlushOptions options = {});

  // False when fast_flush_domains is empty: nothing is ever registered.
  bool enabled() const { return !domains_.empty(); }
  const std::string& service() const { return options_.service; }
  int add(std::string_view site, std::string_view queue_id) const;
  int send_site(std::string_view site) const;
  int send_file(std::string_view queue_id) const;
  int refresh() const;
  int purge() const;

 private:
  // kStatOk when SITE is listed, else kStatDeny or kStatFail (with a warning).
  int eligible(std::string_view site) const;

  std::string queue_dir_;
  maps::MatchList domains_;
  FlushOptions options_;
};

}  // namespace mta::ipc
