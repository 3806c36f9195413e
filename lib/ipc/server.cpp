// server.cpp: per-connection helpers for daemons (see server.hpp).
#include "ipc/server.hpp"

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

void await_close(Channel& ch) {
  if (ch.is_open()) (void)ch.stream().get();
}

}  // namespace mta::ipc
