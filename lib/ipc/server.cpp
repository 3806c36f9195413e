// server.cpp: per-connection helpers for daemons (see server.hpp).
#include "ipc/server.hpp"

#include "log/log.hpp"

namespace mta::ipc {

Channel server_channel(int fd, std::string name, Format format, Millis timeout, bool owned) {
  Stream stream(fd, std::move(name), owned);
  stream.set_timeout(timeout);
  return Channel(std::move(stream), format);
}

Status reply_status(Channel& ch, int status) { return reply(ch, proto::StatusReply{status}); }

Status serve_requests(Channel& ch, const std::function<Status(Channel&)>& one_request) {
  for (;;) {
    Status st = one_request(ch);
    if (st.code() == Errc::closed) return {};
    if (!st) return st;
  }
}

bool ServerChannels::add(int fd, std::string name, std::string_view protocol, Format format, Millis timeout) {
  Channel ch = server_channel(fd, std::move(name), format, timeout);
  if (!ch.announce(protocol)) return false;
  channels_.insert_or_assign(fd, std::move(ch));
  return true;
}

bool ServerChannels::serve(int fd, const std::function<Status(Channel&)>& one_request, Errc quiet) {
  auto it = channels_.find(fd);
  if (it == channels_.end()) return false;
  Channel& ch = it->second;
  do {
    Status st = one_request(ch);
    if (!st) {
      if (st.code() != Errc::closed && st.code() != quiet) log::warning("%s", st.message().c_str());
      return false;
    }
  } while (ch.stream().buffered() > 0);
  return true;
}

void await_close(Channel& ch) {
  if (ch.is_open()) (void)ch.stream().get();
}

}  // namespace mta::ipc
