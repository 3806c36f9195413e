// dict_proxy.cpp: the proxy: table, a client of proxymap (see
// dict_proxy.hpp).
#include "ipc/dict_proxy.hpp"

#include <unistd.h>

#include <map>
#include <memory>
#include <optional>

#include "ipc/mail_proto.hpp"
#include "ipc/proxy_proto.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"

namespace mta::ipc {

namespace pp = proxy_proto;
namespace pf = proxy_proto::flag;

namespace {

// Set once at start-up by register_proxy_tables().
ProxyClientSettings& settings() {
  static ProxyClientSettings s;
  return s;
}

// One connection per service, shared by every proxy table of the process.
ServiceClient& client_for(const std::string& service) {
  static std::map<std::string, std::unique_ptr<ServiceClient>> clients;
  auto it = clients.find(service);
  if (it != clients.end()) return *it->second;
  const ProxyClientSettings& s = settings();
  // Postfix: "private/NAME" relative to the current directory when it is
  // there (a daemon in its queue directory or chroot), else the queue
  // directory's.
  std::string relative = std::string(proto::kClassPrivate) + "/" + service;
  std::string dir = ::access(relative.c_str(), F_OK) == 0 ? std::string() : s.queue_directory;
  ClientOptions o;
  o.protocol = std::string(proto::kProtoProxymap);
  o.connect = {.timeout = s.timeout, .attempts = 1, .warn = false};
  o.max_attempts = 2;
  auto client = std::make_unique<ServiceClient>(dir, std::string(proto::kClassPrivate), service, o);
  return *clients.emplace(service, std::move(client)).first->second;
}

class ProxyDict : public maps::Dict {
 public:
  ProxyDict(std::string name, std::string service, uint32_t dict_flags)
      : Dict("proxy", std::move(name), false), service_(std::move(service)), dict_flags_(dict_flags) {
    fold_remotely();
  }

  // The open exchange.  nullopt: opened (or the service is out of reach:
  // lookups try again); otherwise why the server refused the table.
  std::optional<std::string> open_remote() {
    pp::OpenRequest req;
    req.table = name();
    req.flags = dict_flags_ & pf::kInstMask;
    pp::OpenReply rep;
    Status st = call(req, rep);
    if (!st) {
      last_error_ = service_ + " service: " + st.message();
      return std::nullopt;
    }
    switch (rep.status) {
      case pp::kStatOk:
        opened_ = true;
        set_pattern((rep.flags & pf::kPattern) != 0);
        return std::nullopt;
      case pp::kStatBad:
        return service_ + " open failed for table \"" + name() + "\": invalid request";
      case pp::kStatDeny:
        return service_ + " service is not configured for table \"" + name() + "\"";
      default:
        last_error_ = service_ + " open failed for table \"" + name() + "\": unexpected status " +
                      std::to_string(rep.status);
        log::warning("%s", last_error_.c_str());
        return std::nullopt;
    }
  }

  maps::Result update(std::string_view key, std::string_view value) override {
    if (auto err = ensure_open()) return maps::Result::fail(*err);
    pp::UpdateRequest req;
    req.table = name();
    req.flags = request_flags();
    req.key = std::string(key);
    req.value = std::string(value);
    pp::StatusReply rep;
    if (Status st = call(req, rep); !st) return maps::Result::fail(service_ + " service: " + st.message());
    switch (rep.status) {
      case pp::kStatOk: return maps::Result::hit(std::string(value));
      case pp::kStatNokey: return maps::Result::miss();
      default: return maps::Result::fail(failure("update", key, rep.status));
    }
  }

  maps::Status remove(std::string_view key) override {
    if (auto err = ensure_open()) {
      log::warning("%s", err->c_str());
      return maps::Status::error;
    }
    pp::DeleteRequest req;
    req.table = name();
    req.flags = request_flags();
    req.key = std::string(key);
    pp::StatusReply rep;
    if (Status st = call(req, rep); !st) return maps::Status::error;
    if (rep.status == pp::kStatOk) return maps::Status::found;
    if (rep.status == pp::kStatNokey) return maps::Status::not_found;
    log::warning("%s", failure("delete", key, rep.status).c_str());
    return maps::Status::error;
  }

  bool sequence(bool first, std::string* key, std::string* value, std::string* error) override {
    if (auto err = ensure_open()) {
      if (error) *error = *err;
      return false;
    }
    pp::SequenceRequest req;
    req.table = name();
    req.flags = request_flags();
    req.function = first ? pp::kSeqFirst : pp::kSeqNext;
    pp::SequenceReply rep;
    if (Status st = call(req, rep); !st) {
      if (error) *error = service_ + " service: " + st.message();
      return false;
    }
    if (rep.status == pp::kStatOk) {
      *key = std::move(rep.key);
      *value = std::move(rep.value);
      return true;
    }
    if (rep.status != pp::kStatNokey && error)
      *error = service_ + " sequence failed for table \"" + name() + "\": status " + std::to_string(rep.status);
    return false;
  }

 protected:
  maps::Result do_lookup(std::string_view key) override {
    if (auto err = ensure_open()) return maps::Result::fail(*err);
    pp::LookupRequest req;
    req.table = name();
    req.flags = request_flags();
    req.key = std::string(key);
    pp::LookupReply rep;
    if (Status st = call(req, rep); !st) return maps::Result::fail(service_ + " service: " + st.message());
    switch (rep.status) {
      case pp::kStatOk: return maps::Result::hit(std::move(rep.value));
      case pp::kStatNokey: return maps::Result::miss();
      default: return maps::Result::fail(failure("lookup", key, rep.status));
    }
  }

 private:
  template <class Req, class Rep>
  Status call(const Req& req, Rep& rep) {
    Status st = client_for(service_).call(req, rep);
    // ServiceClient warned about failures on a connection; a connection
    // that was never made is ours to report.
    if (st.code() == Errc::connect) log::warning("%s", st.message().c_str());
    return st;
  }

  // Opens the remote table when the first attempt could not reach the
  // service; the error when it still does not work.
  std::optional<std::string> ensure_open() {
    if (opened_) return std::nullopt;
    if (auto refused = open_remote()) return refused;
    if (!opened_) return last_error_;
    return std::nullopt;
  }

  uint32_t request_flags() const {
    uint32_t f = dict_flags_ & ~pf::kFoldFix;
    if (fold_fixed()) f |= pf::kFoldFix;
    return f;
  }

  std::string failure(std::string_view what, std::string_view key, int status) const {
    std::string text = service_ + " " + std::string(what) + " failed for table \"" + name() + "\" key \"" +
                       std::string(key) + "\": ";
    switch (status) {
      case pp::kStatRetry: return text + "temporary error on the server (see its log)";
      case pp::kStatConfig: return text + "table configuration error (see the server's log)";
      case pp::kStatBad: return text + "invalid request";
      case pp::kStatDeny: return service_ + " service is not configured for table \"" + name() + "\"";
      default: return text + "unexpected reply status " + std::to_string(status);
    }
  }

  std::string service_;
  uint32_t dict_flags_;
  bool opened_ = false;
  std::string last_error_;
};

maps::DictPtr open_proxy(std::string_view name, const maps::OpenFlags& flags) {
  const ProxyClientSettings& s = settings();
  bool write = flags.write || flags.create;
  std::string service = write ? s.proxywrite_service : s.proxymap_service;
  auto dict = std::make_unique<ProxyDict>(std::string(name), service, dict_flags_of(flags, s.utf8_request));
  dict->set_fold_fixed(flags.fold_fixed);
  if (auto refused = dict->open_remote()) throw maps::DictError(*refused);
  return dict;
}

}  // namespace

uint32_t dict_flags_of(const maps::OpenFlags& flags, bool utf8_request) {
  // What Postfix's programs pass: LOCK always (mail_dict and postmap),
  // DUP_* as postmap's (-r/-w; warn by default), the NUL convention, paranoid NO_REGSUB.
  uint32_t f = pf::kLock;
  if (flags.fold_fixed) f |= pf::kFoldFix;
  if (utf8_request) f |= pf::kUtf8Request;
  switch (flags.duplicates) {
    case maps::Duplicates::warn: f |= pf::kDupWarn; break;
    case maps::Duplicates::replace: f |= pf::kDupReplace; break;
    case maps::Duplicates::ignore: f |= pf::kDupIgnore; break;
  }
  if (flags.keys == maps::NulKeys::with_nul) f |= pf::kTry1Null;
  if (flags.keys == maps::NulKeys::without_nul) f |= pf::kTry0Null;
  if (flags.no_regsub) f |= pf::kNoRegsub;
  return f;
}

void register_proxy_tables(ProxyClientSettings s) {
  settings() = std::move(s);
  maps::register_dict_type("proxy", open_proxy);
}

}  // namespace mta::ipc
