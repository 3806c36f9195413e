// mail_trigger.cpp: see mail_trigger.hpp.
#include "cleanup/mail_trigger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "ipc/service.hpp"
#include "log/log.hpp"

namespace mta::message {

bool mail_trigger(std::string_view service_class, std::string_view name, std::string_view bytes) {
  std::string path = std::string(service_class) + "/" + std::string(name);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    log::warning("unable to look up %s: %s", path.c_str(), std::strerror(errno));
    return false;
  }
  if (S_ISFIFO(st.st_mode)) {  // "pickup fifo" in older master.cf files
    int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::close(fd);
    return ok;
  }
  if (!S_ISSOCK(st.st_mode)) {
    log::warning("%s is not a socket or a fifo", path.c_str());
    return false;
  }
  ipc::ConnectOptions options;
  options.timeout = std::chrono::seconds(10);  // trigger_timeout
  options.attempts = 1;
  options.warn = false;
  ipc::Status st2 = ipc::send_trigger(".", service_class, name, bytes, options);
  if (!st2.ok()) {  // as Postfix: the service is not running; it has its own timer
    log::debug("%s", st2.message().c_str());
    return false;
  }
  return true;
}

}  // namespace mta::message
