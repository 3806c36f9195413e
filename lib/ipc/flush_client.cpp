// flush_client.cpp: requests to the fast flush service, one connection each.
#include "ipc/flush_client.hpp"

#include <cstdint>
#include <limits>
#include <optional>

#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"

namespace mta::ipc {

namespace fp = flush_proto;

namespace {

// mail_command_client(): connect once, expect the announcement, send the
// request, read the status.
int flush_request(std::string_view queue_dir, const AttrList& request, const FlushOptions& options) {
  const std::string where = std::string(proto::kClassPublic) + "/" + options.service;
  Stream stream;
  Status st = connect_unix(stream, service_path(queue_dir, proto::kClassPublic, options.service),
                           where + " socket", options.timeout);
  if (!st) {
    log::warning("connect to %s: %s", where.c_str(), st.message().c_str());
    return fp::kStatFail;
  }
  Channel ch(std::move(stream), Format::zero);
  AttrList reply;
  st = ch.expect_announcement(proto::kProtoFlush);
  if (st) st = ch.request(request, reply);
  if (!st) {
    log::warning("problem talking to service %s: %s", options.service.c_str(), st.message().c_str());
    return fp::kStatFail;
  }
  // INT values are unsigned on the wire: "4294967295" is -1.
  std::optional<uint64_t> status = reply.number(fp::kAttrStatus);
  if (!status || *status > std::numeric_limits<uint32_t>::max()) {
    log::warning("problem talking to service %s: no status in the reply", options.service.c_str());
    return fp::kStatFail;
  }
  return static_cast<int>(static_cast<uint32_t>(*status));
}

AttrList make_request(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> args) {
  AttrList req;
  req.add(std::string(fp::kAttrRequest), std::string(name));
  for (const auto& [attr, value] : args) req.add(std::string(attr), std::string(value));
  return req;
}

}  // namespace

int flush_add(std::string_view queue_dir, std::string_view site, std::string_view queue_id,
              const FlushOptions& options) {
  return flush_request(queue_dir, make_request(fp::kReqAdd, {{fp::kAttrSite, site}, {fp::kAttrQueueId, queue_id}}),
                       options);
}

int flush_send_site(std::string_view queue_dir, std::string_view site, const FlushOptions& options) {
  return flush_request(queue_dir, make_request(fp::kReqSendSite, {{fp::kAttrSite, site}}), options);
}

int flush_send_file(std::string_view queue_dir, std::string_view queue_id, const FlushOptions& options) {
  return flush_request(queue_dir, make_request(fp::kReqSendFile, {{fp::kAttrQueueId, queue_id}}), options);
}

int flush_refresh(std::string_view queue_dir, const FlushOptions& options) {
  return flush_request(queue_dir, make_request(fp::kReqRefresh, {}), options);
}

int flush_purge(std::string_view queue_dir, const FlushOptions& options) {
  return flush_request(queue_dir, make_request(fp::kReqPurge, {}), options);
}

FlushClient::FlushClient(std::string queue_dir, std::string_view fast_flush_domains, bool parent_style,
                         FlushOptions options)
    : queue_dir_(std::move(queue_dir)),
      domains_("fast_flush_domains", fast_flush_domains, maps::MatchList::Kind::hostname, parent_style),
      options_(std::move(options)) {}

int FlushClient::eligible(std::string_view site) const {
  switch (domains_.match(site)) {
    case maps::Match::yes: return fp::kStatOk;
    case maps::Match::no: return fp::kStatDeny;
    case maps::Match::error: break;
  }
  log::warning("%s: %s", domains_.title().c_str(), domains_.error().c_str());
  return fp::kStatFail;
}

int FlushClient::add(std::string_view site, std::string_view queue_id) const {
  if (int st = eligible(site); st != fp::kStatOk) return st;
  return flush_add(queue_dir_, site, queue_id, options_);
}

int FlushClient::send_site(std::string_view site) const {
  if (int st = eligible(site); st != fp::kStatOk) return st;
  return flush_send_site(queue_dir_, site, options_);
}

int FlushClient::send_file(std::string_view queue_id) const { return flush_send_file(queue_dir_, queue_id, options_); }

int FlushClient::refresh() const { return enabled() ? flush_refresh(queue_dir_, options_) : fp::kStatDeny; }

int FlushClient::purge() const { return enabled() ? flush_purge(queue_dir_, options_) : fp::kStatDeny; }

}  // namespace mta::ipc
