// proxy_tables.hpp: what proxymap(8) does with a request, apart from the
// socket: the approved-table list, the cache of open tables, and the
// answer to open/lookup/update/delete/sequence (ipc/proxy_proto.hpp), as
// Postfix 3.7's proxymap does.
//
//  - A table name loses any leading "proxy:"s; a name without a type is a
//    bad request (status 3).
//  - Only tables listed as proxy:TYPE:NAME in proxy_read_maps (the
//    proxymap service) or proxy_write_maps (proxywrite) are served; any
//    other is refused (status 4) with Postfix's two warnings.
//  - A table is opened on first use and kept, one instance per name and
//    instance flags.  A table that fails to open is logged once ("error:
//    REASON") and answers every request with status 2 (retry) after the
//    warning "TYPE:NAME is unavailable. REASON".
//  - Update and delete are for proxywrite only (status 4 and "refusing
//    ... request on non-proxywrite service" otherwise); updates replace
//    duplicates and are synced at once.  proxywrite opens a table for each
//    request and closes it after (our tables open for writing hold an
//    exclusive lock that would keep readers out).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/proxy_proto.hpp"
#include "maps/dict.hpp"

namespace mta::proxymap {

class ProxyTables {
 public:
  // approved: the words of proxy_read_maps (or proxy_write_maps, when
  // writer); words that are not proxy:TYPE:NAME are ignored.
  ProxyTables(const std::vector<std::string>& approved, bool writer);

  ipc::proxy_proto::OpenReply open(const ipc::proxy_proto::OpenArgs& req);
  ipc::proxy_proto::LookupReply lookup(const ipc::proxy_proto::LookupArgs& req);
  ipc::proxy_proto::StatusReply update(const ipc::proxy_proto::UpdateArgs& req);
  ipc::proxy_proto::StatusReply remove(const ipc::proxy_proto::DeleteArgs& req);
  ipc::proxy_proto::SequenceReply sequence(const ipc::proxy_proto::SequenceArgs& req);

  bool is_approved(std::string_view table) const { return approved_.count(std::string(table)) > 0; }
  bool writer() const { return writer_; }
  // The first open table whose file changed since it was opened, or "".
  std::string changed_table() const;

 private:
  struct Table {
    maps::DictPtr dict;     // null when the open failed
    std::string reason;     // why it failed
    uint32_t flags = 0;     // Postfix's dict flags, as the open reply shows them
  };
  // The open table for a request, or null with *status set.
  Table* find(std::string_view name, uint32_t request_flags, int* status);
  Table open_table(const std::string& name, uint32_t request_flags) const;
  // Before each request: the requestor flags of this request apply.
  static void apply_request_flags(Table& t, uint32_t request_flags);
  static bool unavailable(const Table& t, std::string_view name);
  struct WriterSession;

  bool writer_;
  std::set<std::string> approved_;
  std::map<std::string, Table> tables_;
};

// "proxy:proxy:hash:/x" -> "hash:/x".
std::string_view strip_proxy_prefix(std::string_view name);

}  // namespace mta::proxymap
