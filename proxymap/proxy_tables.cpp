// proxy_tables.cpp: proxymap's request logic (see proxy_tables.hpp).
#include "proxymap/proxy_tables.hpp"

#include "log/log.hpp"

namespace mta::proxymap {

namespace pp = ipc::proxy_proto;
namespace pf = ipc::proxy_proto::flag;

namespace {
constexpr std::string_view kProxyColon = "proxy:";
}  // namespace

// proxywrite closes its tables after every request: our Berkeley DB tables
// hold an exclusive lock for as long as they are open for writing, which
// would lock readers out for the life of the process.
struct ProxyTables::WriterSession {
  ProxyTables& tables;
  ~WriterSession() {
    if (tables.writer_) tables.tables_.clear();
  }
};

std::string_view strip_proxy_prefix(std::string_view name) {
  while (name.substr(0, kProxyColon.size()) == kProxyColon) name.remove_prefix(kProxyColon.size());
  return name;
}

ProxyTables::ProxyTables(const std::vector<std::string>& approved, bool writer) : writer_(writer) {
  for (const std::string& word : approved) {
    std::string_view w = word;
    if (w.substr(0, kProxyColon.size()) != kProxyColon) continue;
    w = strip_proxy_prefix(w);
    if (w.find(':') != std::string_view::npos) approved_.emplace(w);
  }
}

ProxyTables::Table ProxyTables::open_table(const std::string& name, uint32_t request_flags) const {
  maps::OpenFlags o;
  o.write = writer_;
  o.lock = (request_flags & pf::kLock) != 0;
  o.fold_fixed = (request_flags & pf::kFoldFix) != 0;
  o.no_regsub = (request_flags & pf::kNoRegsub) != 0;
  bool nul = (request_flags & pf::kTry1Null) != 0, no_nul = (request_flags & pf::kTry0Null) != 0;
  if (nul != no_nul) o.keys = nul ? maps::NulKeys::with_nul : maps::NulKeys::without_nul;
  // Postfix's proxywrite replaces duplicates (its table layer would abort).
  if (writer_) o.duplicates = maps::Duplicates::replace;
  Table t;
  try {
    t.dict = maps::open_dict_or_throw(name, o);
  } catch (const maps::DictError& e) {
    t.reason = e.what();
    log::error("%s", t.reason.c_str());
  }
  // The flags Postfix's table would carry: the opener's, plus what the
  // implementation sets (a failed open is a pattern-type surrogate; Berkeley
  // DB tables try keys with and without NUL unless told; UTF-8 checks are
  // active when asked for).
  t.flags = request_flags;
  if (!t.dict || t.dict->is_pattern()) t.flags |= pf::kPattern;
  else t.flags |= pf::kFixed;
  if (t.dict && (t.dict->type() == "hash" || t.dict->type() == "btree") &&
      (request_flags & (pf::kTry0Null | pf::kTry1Null)) == 0)
    t.flags |= pf::kTry0Null | pf::kTry1Null;
  if (request_flags & pf::kUtf8Request) t.flags |= pf::kUtf8Active;
  return t;
}

ProxyTables::Table* ProxyTables::find(std::string_view requested, uint32_t request_flags, int* status) {
  std::string name(strip_proxy_prefix(requested));
  if (name.find(':') == std::string::npos) {
    *status = pp::kStatBad;
    return nullptr;
  }
  if (!is_approved(name)) {
    log::warning("request for unapproved table: \"%s\"", name.c_str());
    log::warning("to approve this table for %s access, list proxy:%s in main.cf:%s",
                 writer_ ? "read-write" : "read-only", name.c_str(),
                 writer_ ? "proxy_write_maps" : "proxy_read_maps");
    *status = pp::kStatDeny;
    return nullptr;
  }
  // One instance per name and instance flags (plus the paranoid flags,
  // which our tables take at open time).
  uint32_t inst = request_flags & (pf::kInstMask | pf::kNoRegsub);
  std::string handle = name + ":" + std::to_string(inst);
  auto it = tables_.find(handle);
  if (it == tables_.end()) it = tables_.emplace(handle, open_table(name, request_flags)).first;
  *status = pp::kStatOk;
  return &it->second;
}

void ProxyTables::apply_request_flags(Table& t, uint32_t request_flags) {
  t.flags = (t.flags & ~pf::kRqstMask) | (request_flags & pf::kRqstMask);
  if (t.dict) t.dict->set_fold_fixed((request_flags & pf::kFoldFix) != 0);
}

bool ProxyTables::unavailable(const Table& t, std::string_view name) {
  if (t.dict) return false;
  log::warning("%.*s is unavailable. %s", static_cast<int>(name.size()), name.data(), t.reason.c_str());
  return true;
}

pp::OpenReply ProxyTables::open(const pp::OpenArgs& req) {
  WriterSession session{*this};
  pp::OpenReply rep;
  Table* t = find(req.table, req.flags, &rep.status);
  rep.flags = t ? t->flags : 0;
  return rep;
}

pp::LookupReply ProxyTables::lookup(const pp::LookupArgs& req) {
  WriterSession session{*this};
  pp::LookupReply rep;
  Table* t = find(req.table, req.flags, &rep.status);
  if (!t) return rep;
  apply_request_flags(*t, req.flags);
  if (unavailable(*t, strip_proxy_prefix(req.table))) {
    rep.status = pp::kStatRetry;
    return rep;
  }
  maps::Result r = t->dict->lookup(req.key);
  if (r.found()) {
    rep.value = std::move(r.value);
  } else if (r.failed()) {
    log::warning("%s", r.error.c_str());
    rep.status = pp::kStatRetry;
  } else {
    rep.status = pp::kStatNokey;
  }
  return rep;
}

pp::StatusReply ProxyTables::update(const pp::UpdateArgs& req) {
  WriterSession session{*this};
  pp::StatusReply rep;
  if (!writer_) {
    log::warning("refusing %s update request on non-proxywrite service", req.table.c_str());
    rep.status = pp::kStatDeny;
    return rep;
  }
  Table* t = find(req.table, req.flags, &rep.status);
  if (!t) return rep;
  apply_request_flags(*t, req.flags);
  if (unavailable(*t, strip_proxy_prefix(req.table))) {
    rep.status = pp::kStatRetry;
    return rep;
  }
  try {
    maps::Result r = t->dict->update(req.key, req.value);
    if (r.failed()) log::warning("%s", r.error.c_str());
    if (!r.failed()) t->dict->commit();  // synchronous update: no close will come
    rep.status = r.found() ? pp::kStatOk : r.failed() ? pp::kStatRetry : pp::kStatNokey;
  } catch (const maps::DictError& e) {
    log::warning("%s", e.what());
    rep.status = pp::kStatRetry;
  }
  return rep;
}

pp::StatusReply ProxyTables::remove(const pp::DeleteArgs& req) {
  WriterSession session{*this};
  pp::StatusReply rep;
  if (!writer_) {
    log::warning("refusing %s delete request on non-proxywrite service", req.table.c_str());
    rep.status = pp::kStatDeny;
    return rep;
  }
  Table* t = find(req.table, req.flags, &rep.status);
  if (!t) return rep;
  apply_request_flags(*t, req.flags);
  if (unavailable(*t, strip_proxy_prefix(req.table))) {
    rep.status = pp::kStatRetry;
    return rep;
  }
  try {
    maps::Status st = t->dict->remove(req.key);
    if (st == maps::Status::found) t->dict->commit();
    rep.status = st == maps::Status::found ? pp::kStatOk : st == maps::Status::not_found ? pp::kStatNokey : pp::kStatRetry;
  } catch (const maps::DictError& e) {
    log::warning("%s", e.what());
    rep.status = pp::kStatRetry;
  }
  return rep;
}

pp::SequenceReply ProxyTables::sequence(const pp::SequenceArgs& req) {
  WriterSession session{*this};
  pp::SequenceReply rep;
  if (req.function != pp::kSeqFirst && req.function != pp::kSeqNext) return rep;  // bad request
  Table* t = find(req.table, req.flags, &rep.status);
  if (!t) return rep;
  apply_request_flags(*t, req.flags);
  if (unavailable(*t, strip_proxy_prefix(req.table))) {
    rep.status = pp::kStatRetry;
    return rep;
  }
  std::string error;
  if (t->dict->sequence(req.function == pp::kSeqFirst, &rep.key, &rep.value, &error)) return rep;
  rep.key.clear();
  rep.value.clear();
  if (!error.empty()) log::warning("%s", error.c_str());
  rep.status = error.empty() ? pp::kStatNokey : pp::kStatRetry;
  return rep;
}

std::string ProxyTables::changed_table() const {
  for (const auto& [handle, t] : tables_)
    if (t.dict && t.dict->has_changed()) return t.dict->spec();
  return {};
}

}  // namespace mta::proxymap
