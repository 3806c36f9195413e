// scache_client.cpp: the connection cache client (see scache_client.hpp).
#include "ipc/scache_client.hpp"

#include <unistd.h>

#include "ipc/mail_proto.hpp"
#include "ipc/scache_proto.hpp"
#include "log/log.hpp"

namespace mta::ipc {

namespace {

constexpr int kMaxTries = 2;  // SCACHE_MAX_TRIES

// A descriptor that failed to arrive, or a stream failure, as a Status.
Status stream_status(const Stream& stream, const char* what) {
  return {stream.timed_out() ? Errc::timeout : Errc::io,
          std::string(what) + " on " + stream.name() + ": " + stream.error_text()};
}

// find_dest and find_endp: the reply, then, when something is cached, the
// descriptor between the dummy hand-shakes; FD stays -1 otherwise.
template <typename Request, typename Reply>
Status find_with_fd(Channel& ch, const Request& req, Reply& rep, int& fd) {
  if (Status st = ch.request(req, rep); !st) return st;
  if (rep.status != scache::kStatusOk) return Status{};
  if (Status st = ch.write(scache::Dummy{}); !st) return st;
  if (Status st = ch.flush(); !st) return st;
  fd = ch.stream().recv_fd();
  if (fd < 0) return stream_status(ch.stream(), "cannot receive file descriptor");
  // MUST_READ_AFTER_SENDING_FD: the server waits for this before closing its copy.
  (void)ch.write(scache::Dummy{});
  (void)ch.flush();
  return Status{};
}

}  // namespace

ScacheClient::ScacheClient(std::string queue_directory, std::string service, Millis timeout) {
  ClientOptions options;
  options.protocol = std::string(proto::kProtoScache);
  options.connect.timeout = timeout;
  options.max_attempts = kMaxTries;
  client_ = std::make_unique<ServiceClient>(std::move(queue_directory), std::string(proto::kClassPrivate),
                                            std::move(service), options);
}

bool ScacheClient::exchange(const std::function<Status(Channel&)>& body) {
  if (!client_) return false;
  Status st = client_->run(body);
  if (st) return true;
  if (st.code() == Errc::connect) log::warning("%s", st.message().c_str());
  log::warning("disabling connection caching");
  client_.reset();
  return false;
}

void ScacheClient::save_dest(int ttl, const std::string& dest_label, const std::string& dest_prop,
                             const std::string& endp_label) {
  scache::SaveDestRequest req;
  req.ttl = ttl;
  req.dest_label = dest_label;
  req.dest_prop = dest_prop;
  req.endp_label = endp_label;
  exchange([&](Channel& ch) {
    proto::StatusReply rep;
    return ch.request(req, rep);
  });
}

void ScacheClient::save_endp(int ttl, const std::string& endp_label, const std::string& endp_prop, int fd) {
  scache::SaveEndpRequest req;
  req.ttl = ttl;
  req.endp_label = endp_label;
  req.endp_prop = endp_prop;
  exchange([&](Channel& ch) {
    scache::Dummy dummy;
    if (Status st = ch.request(req, dummy); !st) return st;
    if (!ch.stream().send_fd(fd)) return stream_status(ch.stream(), "cannot send file descriptor");
    proto::StatusReply rep;
    return ch.read(rep);
  });
  ::close(fd);  // always, as scache_clnt_save_endp()
}

int ScacheClient::find_dest(const std::string& dest_label, std::string& dest_prop, std::string& endp_prop) {
  int fd = -1;
  scache::FindDestRequest req;
  req.label = dest_label;
  exchange([&](Channel& ch) {
    scache::FindDestReply rep;
    Status st = find_with_fd(ch, req, rep, fd);
    if (fd >= 0) {
      dest_prop = std::move(rep.dest_prop);
      endp_prop = std::move(rep.endp_prop);
    }
    return st;
  });
  return fd;
}

int ScacheClient::find_endp(const std::string& endp_label, std::string& endp_prop) {
  int fd = -1;
  scache::FindEndpRequest req;
  req.label = endp_label;
  exchange([&](Channel& ch) {
    scache::FindEndpReply rep;
    Status st = find_with_fd(ch, req, rep, fd);
    if (fd >= 0) endp_prop = std::move(rep.endp_prop);
    return st;
  });
  return fd;
}

}  // namespace mta::ipc
