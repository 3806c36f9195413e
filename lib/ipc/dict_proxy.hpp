// dict_proxy.hpp: the "proxy:TYPE:NAME" lookup table (Postfix's
// dict_proxy), a client of the proxymap(8) service (protocol in
// proxy_proto.hpp).
//
// register_proxy_tables() adds the "proxy" type to lib/maps's registry;
// programs that open tables call it first in main().  Read-only tables go
// to private/proxymap, tables opened for writing (postmap -i/-d) to
// private/proxywrite.  The socket is "private/NAME" relative to the
// current directory when it exists there (daemons run in the queue
// directory, chrooted or not), else under settings.queue_directory, as
// Postfix's client does.  All proxy tables of a process share one
// persistent connection per service (ipc_idle 5s, ipc_ttl 1000s).
//
// Opening sends {request=open}: the server's answer says whether the
// remote table is a pattern table.  A table the server refuses (not in
// proxy_read_maps: "proxymap service is not configured for table ...") or
// calls invalid fails to open (Postfix: fatal; here DictError, so a daemon
// gets a surrogate that reports it at lookup time, and postmap exits).
// When the service cannot be reached the table still opens and every
// lookup tries again; until it works lookups fail with an error, never
// "not found".  Keys go out as the caller gave them, with the requestor
// flags (fold_fixed -> DICT_FLAG_FOLD_FIX, so the server folds the key as
// its local table would).
//
// Differences from Postfix: a request that fails on the connection is
// tried once more after a reconnect (Postfix loops forever, once a second,
// which would stall an event-driven smtpd), and a connect is tried once
// (no 10-second waits); the result is then an error.
#pragma once

#include <cstdint>
#include <string>

#include "ipc/stream.hpp"
#include "maps/dict.hpp"

namespace mta::ipc {

struct ProxyClientSettings {
  std::string queue_directory;  // empty: "private/..." relative to the current directory
  std::string proxymap_service = "proxymap";      // proxymap_service_name
  std::string proxywrite_service = "proxywrite";  // proxywrite_service_name
  Millis timeout = kDefaultIpcTimeout;            // ipc_timeout
  bool utf8_request = true;                       // smtputf8_enable: DICT_FLAG_UTF8_REQUEST
};

// Registers the "proxy" table type (again: replaces the settings).
void register_proxy_tables(ProxyClientSettings settings = {});

// The Postfix DICT_FLAG_* bits that a Postfix program passes for a table
// opened with these flags (requestor and instance bits, no implementation
// bits).
uint32_t dict_flags_of(const maps::OpenFlags& flags, bool utf8_request = true);

}  // namespace mta::ipc
