// test_echo: a single-server worker for testing master and the skeleton.
// Per connection it writes one line "service=NAME pid=PID uid=UID chroot=yes|no"
// (chroot=yes when /pid exists, i.e. the root is the queue directory), then
// echoes each line it reads until the client closes.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "server/server.hpp"

int main(int argc, char** argv) {
  mta::server::SingleServer s;
  s.service = [](int fd, mta::server::ServerContext& ctx) {
    struct stat st{};
    std::string hello = "service=" + ctx.service_name + " pid=" + std::to_string(::getpid()) +
                        " uid=" + std::to_string(::getuid()) +
                        " chroot=" + (::stat("/pid", &st) == 0 ? "yes" : "no") + "\n";
    if (::write(fd, hello.data(), hello.size()) < 0) return;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      if (::write(fd, buf, static_cast<size_t>(n)) != n) return;
  };
  return mta::server::run_single_server(argc, argv, s);
}
