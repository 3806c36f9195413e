// stream_fd.cpp: passing descriptors over a UNIX-domain stream socket
// (Stream::send_fd and Stream::recv_fd; see stream.hpp).  The wire form is
// Postfix's unix_send_fd()/unix_recv_fd(): a single byte sent with
// sendmsg(2) and an SCM_RIGHTS control message holding one descriptor.
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ipc/stream.hpp"

namespace mta::ipc {

bool Stream::send_fd(int fd) {
  if (!flush()) return false;
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  for (;;) {
    if (!wait_for(POLLOUT)) return false;
    ssize_t n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == 1) return true;
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    fail(IoState::error, n < 0 ? errno : EIO);
    return false;
  }
}

int Stream::recv_fd() {
  if (state_ != IoState::ok) return -1;
  if (fd_ < 0 || buffered() > 0) {
    fail(IoState::error, fd_ < 0 ? EBADF : EINVAL);
    return -1;
  }
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  for (;;) {
    if (!wait_for(POLLIN)) return -1;
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) {
      fail(IoState::error, errno);
      return -1;
    }
    if (n == 0) {
      fail(IoState::eof, 0);
      return -1;
    }
    int received = -1;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int one;
        std::memcpy(&one, CMSG_DATA(cm) + i * sizeof(int), sizeof one);
        if (received < 0) received = one;
        else ::close(one);  // more than we asked for
      }
    }
    if (received < 0 || (msg.msg_flags & MSG_CTRUNC)) {
      if (received >= 0) ::close(received);
      fail(IoState::error, EBADMSG);
      return -1;
    }
    return received;
  }
}

}  // namespace mta::ipc
