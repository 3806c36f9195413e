// listener.cpp: see listener.hpp.
#include "master/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mta::master {
namespace {

using config::ConfigError;

[[noreturn]] void fail(const std::string& what) { throw ConfigError(what + ": " + std::strerror(errno)); }

int bind_inet(const std::string& host, const std::string& port, int family, const std::string& label) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    // Not numeric: a host name to resolve, or a service name from /etc/services.
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  }
  if (rc != 0) throw ConfigError(label + ": " + gai_strerror(rc));
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    fail("socket " + label);
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
    int e = errno;
    freeaddrinfo(res);
    ::close(fd);
    errno = e;
    fail("bind " + label);
  }
  freeaddrinfo(res);
  if (::listen(fd, 1024) != 0) fail("listen " + label);
  return fd;
}

}  // namespace

std::string service_path(const config::MasterEntry& e) {
  return std::string(e.private_ == "n" ? "public/" : "private/") + e.service;
}

std::vector<int> open_listeners(const config::MasterEntry& e, const config::Config& c, int uid, int gid) {
  std::vector<int> fds;
  if (e.type == "inet") {
    std::string host, port = e.service;
    size_t colon = e.service.rfind(':');
    if (colon != std::string::npos) {
      host = e.service.substr(0, colon);
      port = e.service.substr(colon + 1);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    }
    std::vector<std::string> protocols = c.get_list("inet_protocols");
    bool v4 = false, v6 = false;
    for (const std::string& p : protocols) {
      if (p == "all") v4 = v6 = true;
      else if (p == "ipv4") v4 = true;
      else if (p == "ipv6") v6 = true;
    }
    if (!host.empty()) {
      fds.push_back(bind_inet(host, port, AF_UNSPEC, e.service));
      return fds;
    }
    std::vector<std::string> interfaces = c.get_list("inet_interfaces");
    bool all = interfaces.empty() || (interfaces.size() == 1 && interfaces[0] == "all");
    bool loopback = interfaces.size() == 1 && interfaces[0] == "loopback-only";
    if (all || loopback) {
      if (v4) fds.push_back(bind_inet(loopback ? "127.0.0.1" : "0.0.0.0", port, AF_INET, e.service));
      if (v6) {
        try {
          fds.push_back(bind_inet(loopback ? "::1" : "::", port, AF_INET6, e.service));
        } catch (const ConfigError&) {
          if (!v4) throw;  // a host without IPv6 still serves IPv4
        }
      }
    } else {
      for (const std::string& i : interfaces) {
        std::string h = i;
        if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
        fds.push_back(bind_inet(h, port, AF_UNSPEC, h + ":" + port));
      }
    }
    return fds;
  }
  std::string path = service_path(e);
  if (e.type == "unix") {
    ::unlink(path.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket " + path);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) throw ConfigError("service path too long: " + path);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail("bind " + path);
    if (::listen(fd, 1024) != 0) fail("listen " + path);
    ::chmod(path.c_str(), 0666);
    if (uid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)
      fail("chown " + path);
    fds.push_back(fd);
    return fds;
  }
  if (e.type == "fifo") {
    ::unlink(path.c_str());
    if (::mkfifo(path.c_str(), 0622) != 0) fail("mkfifo " + path);
    if (uid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)
      fail("chown " + path);
    // Read-write, so that the reader never sees end-of-file between writers.
    int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail("open " + path);
    fds.push_back(fd);
    return fds;
  }
  throw ConfigError("service " + e.service + ": unsupported type " + e.type);
}

bool send_trigger(const config::MasterEntry& e, char trigger) {
  std::string path = service_path(e);
  int fd;
  if (e.type == "fifo") {
    fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
  } else {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), std::min(path.size() + 1, sizeof sa.sun_path - 1));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS) {
      ::close(fd);
      return false;
    }
  }
  bool ok = ::write(fd, &trigger, 1) == 1;
  ::close(fd);
  return ok;
}

}  // namespace mta::master
