// server.hpp: what a daemon's per-connection handler needs to speak the
// internal protocol with Postfix's clients: wrap the accepted descriptor,
// announce the protocol, read requests, write replies.  Independent of
// the server skeleton: these work on a connected descriptor or a Channel.
//
// The usual shape (trivial-rewrite):
//
//   ipc::Channel ch = ipc::server_channel(fd, "rewrite socket");
//   ch.announce(proto::kProtoTrivialRewrite);          // on accept
//   ipc::serve_requests(ch, [&](ipc::Channel& c) {     // until the client leaves
//     proto::RequestName req;
//     if (auto st = c.read(req, {.more = true}); !st) return st;
//     if (req.request == proto::kRewriteRequest) {
//       proto::RewriteArgs args;
//       if (auto st = c.read(args); !st) return st;
//       return ipc::reply(c, proto::RewriteReply{0, rewrite(args)});
//     }
//     ...
//   });
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "ipc/attr.hpp"
#include "ipc/channel.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/stream.hpp"

namespace mta::ipc {

// A channel on an accepted descriptor.  By default the descriptor stays the
// caller's (the skeleton closes it); I/O is limited by timeout (ipc_timeout).
Channel server_channel(int fd, std::string name, Format format = Format::zero, Millis timeout = kDefaultIpcTimeout,
                       bool owned = false);

// Writes obj as one list and flushes.
template <Described T>
Status reply(Channel& ch, const T& obj) {
  if (Status st = ch.write(obj); !st) return st;
  return ch.flush();
}
// {status=N}, flushed: bounce's and mail_command_server's reply.
Status reply_status(Channel& ch, int status);

// Calls one_request until the client hangs up between requests (which
// returns ok) or a request fails (returned; the caller drops the client, as
// multi_server_disconnect).
Status serve_requests(Channel& ch, const std::function<Status(Channel&)>& one_request);

// An event server's clients (Postfix's multi_server, as anvil, proxymap,
// trivial-rewrite and scache serve them): one Channel per accepted
// descriptor.  add() announces the protocol (false: the client is gone);
// serve() runs ONE_REQUEST until nothing more is buffered, since a client
// may send several requests together, and returns false to drop the
// client, after a warning unless it just hung up (Errc::closed, or QUIET).
class ServerChannels {
 public:
  bool add(int fd, std::string name, std::string_view protocol, Format format, Millis timeout);
  bool serve(int fd, const std::function<Status(Channel&)>& one_request, Errc quiet = Errc::closed);
  void remove(int fd) { channels_.erase(fd); }

 private:
  std::map<int, Channel> channels_;
};

// After a final reply: wait, within the stream's timeout, for the client
// to close, as delivery agents do (deliver_request_final) so that the
// reply is not lost on systems that drop data on close.
void await_close(Channel& ch);

}  // namespace mta::ipc
