// biff_notify.cpp: see biff_notify.hpp.
#include "deliver/biff_notify.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace mta::deliver {

void biff_notify(std::string_view text) {
  // The service port once; 512 when /etc/services does not know "biff".
  static const int port = [] {
    const struct servent* sp = ::getservbyname("biff", "udp");
    return sp ? sp->s_port : static_cast<int>(htons(512));
  }();
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return;
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = static_cast<in_port_t>(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string datagram(text);
  datagram.push_back('\0');
  (void)::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  ::close(fd);
}

}  // namespace mta::deliver
