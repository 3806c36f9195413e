// service.hpp: the client side of the internal services: connecting to
// $queue_directory/{private,public}/NAME with Postfix's retry behaviour,
// reading the protocol announcement, and requests with replies over a
// persistent connection (Postfix's mail_connect, clnt_stream and the
// rewrite/resolve clients).  The protocol itself is in attr.hpp.
//
// Nothing here exits the process: where Postfix calls msg_fatal (the
// mail system is down) we return Errc::connect with Postfix's message, and
// the caller decides.  Retries are logged as warnings, in Postfix's words.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "ipc/attr.hpp"
#include "ipc/channel.hpp"
#include "ipc/stream.hpp"

namespace mta::ipc {

// "$queue_directory/CLASS/NAME".
std::string service_path(std::string_view queue_directory, std::string_view service_class, std::string_view name);

// mail_connect() tries once; mail_connect_wait() tries 11 times, 10s apart.
inline constexpr int kConnectWaitAttempts = 11;

struct ConnectOptions {
  Millis timeout = kDefaultIpcTimeout;  // ipc_timeout, for all I/O on the connection
  int attempts = 1;
  Millis retry_delay = std::chrono::seconds(10);
  bool warn = true;  // "connect #N to subsystem CLASS/NAME: ERROR" between attempts
};

// A unix stream socket connection to path; the stream is named name.
Status connect_unix(Stream& out, const std::string& path, std::string name, Millis timeout);

// Connects to CLASS/NAME under the queue directory.  The stream is named
// "CLASS/NAME socket", as Postfix names it in messages.  No announcement is
// read here (trigger servers and policy services send none).
Status connect_service(Channel& out, std::string_view queue_directory, std::string_view service_class,
                       std::string_view name, const ConnectOptions& options = {}, Format format = Format::zero,
                       Limits limits = {});

// Connects, writes the bytes, and closes: a wakeup for pickup or qmgr.
Status send_trigger(std::string_view queue_directory, std::string_view service_class, std::string_view name,
                    std::string_view bytes, const ConnectOptions& options = {});

struct ClientOptions {
  std::string protocol;  // the expected announcement; empty: the server sends none
  Format format = Format::zero;
  Limits limits{};
  ConnectOptions connect{.attempts = kConnectWaitAttempts};
  Millis idle_limit = std::chrono::seconds(5);    // ipc_idle: reconnect after this much idle time
  Millis ttl_limit = std::chrono::seconds(1000);  // ipc_ttl: reconnect after this much age
  int max_attempts = 0;                           // per call; 0: until it works, as Postfix
  Millis retry_delay = std::chrono::seconds(1);
  ReadOptions read{};
};

// A persistent connection to one service, as Postfix's clnt_stream: opened
// on first use, checked before each use (the server may have closed it,
// or it may have been idle or alive too long), and on failure closed and
// retried after retry_delay, with "problem talking to service NAME: ..."
// warnings (the first failure on a reused connection that the server
// closed is silent, as in Postfix).  The rewrite and resolve clients retry
// until it works (max_attempts 0); attr_clnt's users (anvil, policy
// services, tlsmgr) try twice (max_attempts 2).
class ServiceClient {
 public:
  ServiceClient(std::string queue_directory, std::string service_class, std::string name,
                ClientOptions options = {});

  template <Described Req, Described Rep>
  Status call(const Req& req, Rep& rep) {
    return run([&](Channel& ch) { return ch.request(req, rep, options_.read); });
  }
  Status call(const AttrList& req, AttrList& rep) {
    return run([&](Channel& ch) { return ch.request(req, rep, options_.read); });
  }
  // Any exchange on the connection, with the same reconnect-and-retry.
  Status run(const std::function<Status(Channel&)>& exchange);

  // The open connection (connecting and reading the announcement when
  // needed).
  Status access(Channel*& out);
  void disconnect();
  bool connected() const { return channel_.is_open(); }
  const std::string& name() const { return name_; }
  ClientOptions& options() { return options_; }

 private:
  std::string queue_directory_;
  std::string class_;
  std::string name_;
  ClientOptions options_;
  Channel channel_;
  Clock::time_point opened_{};
  Clock::time_point last_used_{};
};

}  // namespace mta::ipc
