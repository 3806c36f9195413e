// delivery_service.cpp: see delivery_service.hpp.
#include "local/delivery_service.hpp"

#include <chrono>

#include "deliver/agent_session.hpp"
#include "ipc/server.hpp"
#include "local/local_agent.hpp"
#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "queue/queue_id.hpp"

namespace mta::local {
namespace proto = ipc::proto;

namespace {

// One request on ch; false when the connection is done with.
bool serve_request(ipc::Channel& ch, const Settings& settings, AddressResolver& resolver) {
  proto::DeliverRequest request;
  if (ipc::Status st = proto::read_deliver_request(ch, request); !st) {
    if (st.code() != ipc::Errc::closed) log::warning("%s", st.message().c_str());
    return false;
  }
  log::debug("local_deliver: %s from %s", request.queue_id.c_str(), request.sender.c_str());
  if (!queue::is_valid_queue_name(request.queue_name) || !queue::is_queue_file_name(request.queue_id)) {
    log::warning("invalid message file name: %s %s", request.queue_name.c_str(), request.queue_id.c_str());
    return false;
  }

  // The path relative to the queue directory (our working directory), as
  // Postfix names queue files in its messages.
  queue::QueueLayout layout = settings.layout();
  std::string path = layout.relative_path(request.queue_name, request.queue_id);
  std::string error;
  auto file = queue::QueueFileReader::open(path, true, &error);
  if (!file) {
    log::warning("%s", error.c_str());
    return false;
  }
  if (!file->lock(queue::LockMode::shared, false, &error)) {
    log::warning("shared lock %s", error.c_str());
    return false;
  }

  QueueMessage message;
  message.fd = file->fd();
  message.path = path;
  message.data_offset = request.data_offset;
  message.delivered_to = read_delivered_to(message.fd, path, request.data_offset);

  LocalAgent agent(settings, request, message, resolver);
  int status = agent.deliver_all();

  proto::DeliverReply reply;
  reply.status = status;
  if (ipc::Status st = ipc::reply(ch, reply); !st) {
    log::warning("%s", st.message().c_str());
    return false;
  }
  return true;
}

}  // namespace

void serve_delivery_request(int fd, const Settings& settings, AddressResolver& resolver,
                            const std::function<bool(int fd)>& next_request) {
  ipc::Channel ch = ipc::server_channel(fd, "local socket", ipc::Format::zero, std::chrono::seconds(settings.ipc_timeout));
  if (ipc::Status st = ch.announce(proto::kProtoDeliver); !st) {
    log::warning("%s", st.message().c_str());
    return;
  }
  agent::serve_requests(ch, fd, [&] { return serve_request(ch, settings, resolver); }, next_request);
}

}  // namespace mta::local
