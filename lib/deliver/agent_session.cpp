// agent_session.cpp: see agent_session.hpp.
#include "deliver/agent_session.hpp"

#include <sys/stat.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "deliver/delivery_status.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_id.hpp"

namespace mta::agent {
namespace proto = ipc::proto;
namespace {

constexpr int kDelStatDefer = -1;
// DEL_REQ_FLAG_REC_DLY_SENT: record a delayed delivery (Postfix 3.x).
constexpr int kDelReqFlagRecordDelayed = 1 << 13;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// mail_open_ok(): false (with Postfix's warnings) when the request does
// not name a complete queue file.
bool queue_file_ok(const proto::DeliverRequest& req, const std::string& path) {
  if (!queue::is_valid_queue_name(req.queue_name)) {
    log::warning("bad mail queue name: %s", req.queue_name.c_str());
    return false;
  }
  if (!queue::is_queue_file_name(req.queue_id)) {
    log::warning("bad mail queue ID: %s", req.queue_id.c_str());
    return false;
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno != ENOENT) log::warning("%s: %s", path.c_str(), std::strerror(errno));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    log::warning("%s: uid %ld: not a regular file", path.c_str(), static_cast<long>(st.st_uid));
    return false;
  }
  if ((st.st_mode & S_IRWXU) != queue::kQueueFileReady) return false;
  if (st.st_nlink > 1) {
    log::warning("%s: uid %ld: file has %d links", path.c_str(), static_cast<long>(st.st_uid),
                 static_cast<int>(st.st_nlink));
    return false;
  }
  return true;
}

// False when the reply could not be sent (qmgr is gone).
bool reply(ipc::Channel& ch, int status, const proto::Dsn& hop_status = {}) {
  proto::DeliverReply r;  // an empty hop DSN: the destination is not to blame
  r.hop_status = hop_status;
  r.status = status;
  if (ipc::Status st = ipc::reply(ch, r); !st) {
    log::debug("send final status: %s", st.message().c_str());
    return false;
  }
  return true;
}

}  // namespace

int trace_flags(int request_flags) {
  return request_flags & (proto::kDelReqFlagMtaVrfy | proto::kDelReqFlagUserVrfy | proto::kDelReqFlagRecordDelivery |
                          kDelReqFlagRecordDelayed);
}

size_t dsn_valid(std::string_view text) {
  auto digits = [&](size_t from) {
    size_t n = 0;
    while (from + n < text.size() && text[from + n] >= '0' && text[from + n] <= '9') ++n;
    return n;
  };
  if (text.size() < 2 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') return 0;
  size_t pos = 2;
  size_t len = digits(pos);
  if (len < 1 || len > 3 || pos + len >= text.size() || text[pos + len] != '.') return 0;
  pos += len + 1;
  len = digits(pos);
  if (len < 1 || len > 3 || (pos + len < text.size() && !is_space(text[pos + len]))) return 0;
  return pos + len;
}

DsnSplit dsn_split(std::string_view default_status, std::string_view text) {
  DsnSplit out;
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  if (size_t len = dsn_valid(text.substr(i)); len > 0) {
    out.status = std::string(text.substr(i, len));
    i += len + 1;  // the status and the blank after it
  } else {
    out.status = std::string(default_status);
  }
  while (i < text.size() && is_space(text[i])) ++i;
  out.text = i < text.size() ? std::string(text.substr(i)) : std::string();
  return out;
}

deliver::ReporterConfig reporter_config(const config::Config& config) {
  deliver::ReporterConfig rc;
  rc.queue_directory = config.get("queue_directory");
  rc.bounce_service = config.get("bounce_service_name");
  rc.defer_service = config.get("defer_service_name");
  rc.trace_service = config.get("trace_service_name");
  rc.verify_service = config.get("address_verify_service_name");
  rc.ipc_timeout = config.get_time("ipc_timeout");
  rc.soft_bounce = config.get_bool("soft_bounce");
  rc.verify_neg_cache = config.get_bool("address_verify_negative_cache");
  rc.resolution_limit = static_cast<int>(config.get_int("delay_logging_resolution_limit"));
  rc.flush = deliver::flush_client_from_config(config);
  return rc;
}

void mark_done(Delivery& delivery, const proto::Recipient& rcpt) {
  if (rcpt.offset < 0) return;  // not in the queue file (a recipient added by the agent)
  queue::Recipient r;
  r.address = rcpt.address;
  r.offset = static_cast<off_t>(rcpt.offset);
  // As Postfix's deliver_completed(): the mark is written, not synced.  A
  // crash before the kernel writes it back means at worst one more
  // delivery of this recipient (at least once), never a lost one; an fsync
  // here would cost every delivery a journal commit.
  std::string error;
  if (!delivery.file->mark_done(r, &error))
    log::fatal("update queue file %s: %s", delivery.path.c_str(), error.c_str());
}

namespace {

// One request on ch; false when the connection is done with.
bool serve_request(ipc::Channel& ch, const config::Config& config, const std::function<int(Delivery&)>& deliver) {
  Delivery d;
  if (ipc::Status st = proto::read_deliver_request(ch, d.request); !st) {
    if (st.code() == ipc::Errc::closed) return false;  // qmgr is done, or changed its mind
    log::warning("deliver_request_get: %s", st.message().c_str());
    reply(ch, kDelStatDefer);
    return false;
  }
  proto::DeliverRequest& req = d.request;
  queue::QueueLayout layout = queue::QueueLayout::from_config(config);
  d.path = layout.relative_path(req.queue_name, req.queue_id);
  if (!queue_file_ok(req, d.path)) return reply(ch, kDelStatDefer);

  if (req.stats.agent_handoff.sec == 0) {
    timeval now{};
    ::gettimeofday(&now, nullptr);
    req.stats.agent_handoff = {now.tv_sec, now.tv_usec};
  }

  std::string error;
  d.file = queue::QueueFileReader::open(d.path, true, &error);
  if (!d.file) {
    if (errno != ENOENT) log::fatal("open %s %s: %s", req.queue_name.c_str(), req.queue_id.c_str(), std::strerror(errno));
    log::warning("open %s %s: %s", req.queue_name.c_str(), req.queue_id.c_str(), std::strerror(errno));
    return reply(ch, kDelStatDefer);
  }
  if (!d.file->lock(queue::LockMode::shared, false, &error))
    log::fatal("shared lock %s: %s", d.path.c_str(), std::strerror(errno));

  log::debug("deliver_message: from %s", req.sender.c_str());
  int status = deliver(d);
  d.file.reset();
  return reply(ch, status, d.hop_status);
}

}  // namespace

void serve_connection(int fd, const config::Config& config, const std::string& socket_name,
                      const std::function<int(Delivery&)>& deliver, const std::function<bool(int fd)>& next_request) {
  std::chrono::seconds timeout(config.get_time("ipc_timeout"));
  ipc::Channel ch = ipc::server_channel(fd, socket_name, ipc::Format::zero, timeout);
  if (ipc::Status st = ch.announce(proto::kProtoDeliver); !st) {
    log::debug("send initial status: %s", st.message().c_str());
    return;
  }
  serve_requests(ch, fd, [&] { return serve_request(ch, config, deliver); }, next_request);
}

void serve_requests(ipc::Channel& ch, int fd, const std::function<bool()>& serve_one,
                    const std::function<bool(int fd)>& next_request) {
  while (serve_one())
    if (!next_request || !next_request(fd)) break;
  if (!next_request) ipc::await_close(ch);
}

}  // namespace mta::agent
