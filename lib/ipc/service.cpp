// service.cpp: connecting to internal services, and persistent clients.
#include "ipc/service.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "log/log.hpp"

namespace mta::ipc {

std::string service_path(std::string_view queue_directory, std::string_view service_class, std::string_view name) {
  std::string path(queue_directory);
  if (!path.empty() && path.back() != '/') path += '/';
  path += service_class;
  path += '/';
  path += name;
  return path;
}

Status connect_unix(Stream& out, const std::string& path, std::string name, Millis timeout) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path)
    return {Errc::connect, "unix-domain name too long: " + path};
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {Errc::connect, std::string("socket: ") + std::strerror(errno)};
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    ::close(fd);
    return {Errc::connect, std::strerror(err)};
  }
  out = Stream(fd, std::move(name));
  out.set_timeout(timeout);
  return {};
}

Status connect_service(Channel& out, std::string_view queue_directory, std::string_view service_class,
                       std::string_view name, const ConnectOptions& options, Format format, Limits limits) {
  const std::string path = service_path(queue_directory, service_class, name);
  const std::string subsystem = std::string(service_class) + "/" + std::string(name);
  const int attempts = options.attempts < 1 ? 1 : options.attempts;
  for (int count = 1;; ++count) {
    Stream stream;
    Status st = connect_unix(stream, path, subsystem + " socket", options.timeout);
    if (st) {
      out = Channel(std::move(stream), format, limits);
      return {};
    }
    std::string text = "connect #" + std::to_string(count) + " to subsystem " + subsystem + ": " + st.message();
    if (count >= attempts) return {Errc::connect, attempts > 1 ? text : "connect to " + path + ": " + st.message()};
    if (options.warn) log::warning("%s", text.c_str());
    std::this_thread::sleep_for(options.retry_delay);
  }
}

Status send_trigger(std::string_view queue_directory, std::string_view service_class, std::string_view name,
                    std::string_view bytes, const ConnectOptions& options) {
  Channel ch;
  if (Status st = connect_service(ch, queue_directory, service_class, name, options); !st) return st;
  if (!ch.stream().write(bytes) || !ch.stream().flush()) return write_failure(ch.stream());
  ch.close();
  return {};
}

ServiceClient::ServiceClient(std::string queue_directory, std::string service_class, std::string name,
                             ClientOptions options)
    : queue_directory_(std::move(queue_directory)),
      class_(std::move(service_class)),
      name_(std::move(name)),
      options_(std::move(options)) {}

void ServiceClient::disconnect() { channel_.close(); }

Status ServiceClient::access(Channel*& out) {
  auto now = Clock::now();
  if (channel_.is_open()) {
    // A connection that is readable while idle was closed by the server
    // (or carries garbage); one that is too old or idle too long is
    // replaced, as clnt_stream's timers would have done.
    bool stale = channel_.stream().readable_now() || now - last_used_ >= options_.idle_limit ||
                 now - opened_ >= options_.ttl_limit;
    if (stale) disconnect();
  }
  if (!channel_.is_open()) {
    if (Status st = connect_service(channel_, queue_directory_, class_, name_, options_.connect, options_.format,
                                    options_.limits);
        !st)
      return st;
    opened_ = now;
    if (!options_.protocol.empty()) {
      if (Status st = channel_.expect_announcement(options_.protocol); !st) {
        disconnect();
        return st;
      }
    }
  }
  last_used_ = now;
  out = &channel_;
  return {};
}

Status ServiceClient::run(const std::function<Status(Channel&)>& exchange) {
  for (int attempt = 1;; ++attempt) {
    Channel* ch = nullptr;
    bool reused = channel_.is_open();
    Status st = access(ch);
    if (st.code() == Errc::connect) return st;  // connect_service retried already
    if (st) st = exchange(*ch);
    if (st) {
      last_used_ = Clock::now();
      return st;
    }
    int err = channel_.is_open() ? channel_.stream().error_number() : 0;
    disconnect();
    // A server that closed a pooled connection is expected; say nothing the
    // first time.
    bool quiet = attempt == 1 && reused && (st.code() == Errc::closed || st.code() == Errc::eof || err == EPIPE);
    if (!quiet) log::warning("problem talking to service %s: %s", name_.c_str(), st.message().c_str());
    if (options_.max_attempts > 0 && attempt >= options_.max_attempts) return st;
    std::this_thread::sleep_for(options_.retry_delay);
  }
}

}  // namespace mta::ipc
