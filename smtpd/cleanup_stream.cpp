// cleanup_stream.cpp: see cleanup_stream.hpp.
#include "smtpd/cleanup_stream.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <map>
#include <vector>

#include "cleanup/cleanup_status.hpp"
#include "ipc/attr.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"

namespace mta::smtpd {

namespace {
constexpr size_t kLowWater = 64 * 1024;
constexpr size_t kHeldSlack = 4 * 1024;  // a record past kLowWater, without growing held_

// Connections kept after a message (see cleanup_stream.hpp), newest last,
// each with its socket path.  While kept, a connection that cleanup closes
// or writes to, or that stays unused for kIdleSeconds, is dropped: cleanup
// processes are not held for an idle smtpd.
constexpr size_t kMaxIdle = 16;
constexpr int kIdleSeconds = 2;
struct IdleConnection {
  struct bufferevent* bev;
  std::string path;
};
std::vector<IdleConnection>& idle_connections() {
  static std::vector<IdleConnection> idle;
  return idle;
}

void drop_idle(struct bufferevent* bev) {
  auto& idle = idle_connections();
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (it->bev == bev) {
      idle.erase(it);
      break;
    }
  }
  bufferevent_free(bev);
}
void on_idle_read(struct bufferevent* bev, void*) { drop_idle(bev); }
void on_idle_event(struct bufferevent* bev, short, void*) { drop_idle(bev); }

void keep_idle(struct bufferevent* bev, const std::string& path) {
  auto& idle = idle_connections();
  if (idle.size() >= kMaxIdle) {
    bufferevent_free(idle.front().bev);
    idle.erase(idle.begin());
  }
  bufferevent_setcb(bev, &on_idle_read, nullptr, &on_idle_event, nullptr);
  bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
  timeval tv{kIdleSeconds, 0};
  bufferevent_set_timeouts(bev, &tv, nullptr);
  bufferevent_disable(bev, EV_WRITE);
  bufferevent_enable(bev, EV_READ);
  idle.push_back({bev, path});
}

// Before a connect that blocks (the listen queue is full): our own kept
// connections may be what holds the cleanup processes.
void drop_all_idle() {
  auto& idle = idle_connections();
  for (IdleConnection& c : idle) bufferevent_free(c.bev);
  idle.clear();
}

struct bufferevent* take_idle(const std::string& path) {
  auto& idle = idle_connections();
  for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
    if (it->path == path) {
      struct bufferevent* bev = it->bev;
      idle.erase(std::next(it).base());
      return bev;
    }
  }
  return nullptr;
}

// OBJ as an attribute list in the zero form (what cleanup reads).
template <typename T>
std::string zero_form(const T& obj) {
  ipc::AttrEncoder enc(ipc::Format::zero);
  (void)ipc::encode(enc, obj);
  return enc.take();
}

// One attribute list in the zero form (name NUL value NUL ... NUL) at the
// start of IN: the bytes it takes, or 0 while it is incomplete.
size_t parse_zero_list(struct evbuffer* in, std::map<std::string, std::string>& out) {
  size_t len = evbuffer_get_length(in);
  if (len == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(evbuffer_pullup(in, -1)), len);
  size_t pos = 0;
  for (;;) {
    size_t end = bytes.find('\0', pos);
    if (end == std::string_view::npos) return 0;
    if (end == pos) return pos + 1;  // the list terminator
    size_t vend = bytes.find('\0', end + 1);
    if (vend == std::string_view::npos) return 0;
    out.emplace(std::string(bytes.substr(pos, end - pos)), std::string(bytes.substr(end + 1, vend - end - 1)));
    pos = vend + 1;
  }
}
}  // namespace

CleanupStream::~CleanupStream() {
  close();
  if (hold_timer_) event_free(hold_timer_);
}

void CleanupStream::close() {
  held_.clear();
  if (hold_timer_) evtimer_del(hold_timer_);
  if (bev_) bufferevent_free(bev_);
  bev_ = nullptr;
  done_ = nullptr;
  drained_ = nullptr;
  opened_ = nullptr;
  opening_ = false;
  if (child_ > 0) {
    // postdrop sees end-of-input (and removes an unfinished file) or has
    // answered already: either way it is about to exit.
    int status = 0;
    while (::waitpid(child_, &status, 0) < 0 && errno == EINTR) {
    }
    child_ = -1;
  }
}

void CleanupStream::open_async(struct event_base* base, const std::string& queue_directory,
                               const std::string& service, int flags, Opened opened) {
  close();
  service_ = service;
  flags_ = flags;
  base_ = base;
  queue_directory_ = queue_directory;
  path_ = ipc::service_path(queue_directory, ipc::proto::kClassPublic, service);
  opened_ = std::move(opened);
  if (struct bufferevent* kept = take_idle(path_)) {
    // cleanup answers {request=next_message} with a new announcement.
    log::debug("reusing connection to %s/%s", std::string(ipc::proto::kClassPublic).c_str(), service.c_str());
    bev_ = kept;
    reused_ = true;
    opening_ = true;
    bufferevent_setcb(bev_, &CleanupStream::on_read, &CleanupStream::on_write, &CleanupStream::on_event, this);
    timeval tv{100, 0};
    bufferevent_set_timeouts(bev_, &tv, nullptr);
    std::string next = zero_form(ipc::proto::CleanupNext{});
    bufferevent_write(bev_, next.data(), next.size());
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    return;
  }
  connect_new();
}

// A new connection to the cleanup service (open_async's parameters).
void CleanupStream::connect_new() {
  reused_ = false;
  const std::string& queue_directory = queue_directory_;
  const std::string& service = service_;
  const int flags = flags_;
  struct event_base* base = base_;
  const std::string& path = path_;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    this->opened(false, "connect to " + path + ": File name too long");
    return;
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  bev_ = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev_, &CleanupStream::on_read, &CleanupStream::on_write, &CleanupStream::on_event, this);
  timeval tv{100, 0};  // cleanup answers at once; master may have to start one
  bufferevent_set_timeouts(bev_, &tv, nullptr);
  opening_ = true;
  if (bufferevent_socket_connect(bev_, reinterpret_cast<sockaddr*>(&sun), static_cast<int>(sizeof sun)) != 0) {
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EAGAIN) {
      // The listen queue is full: wait for room as Postfix's blocking
      // connect would (rare: master adds cleanup processes on demand).
      drop_all_idle();
      Opened callback = std::move(opened_);
      std::string error;
      std::string directory = queue_directory, name = service;  // open() starts with close()
      bool ok = open(base, directory, name, flags, &error);
      opened_ = std::move(callback);
      this->opened(ok, error);
      return;
    }
    this->opened(false, "connect to subsystem " + path + ": " + std::strerror(err));
    return;
  }
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

// {protocol=cleanup_protocol, queue_id=ID} in the zero form; true when the
// whole list has come (and has been handled).
bool CleanupStream::parse_hello() {
  struct evbuffer* in = bufferevent_get_input(bev_);
  std::map<std::string, std::string> hello;
  size_t used = parse_zero_list(in, hello);
  if (used == 0) return false;
  evbuffer_drain(in, used);
  const std::string& protocol = hello["protocol"];
  const std::string& id = hello["queue_id"];
  if (protocol != ipc::proto::kProtoCleanup || id.empty()) {
    opened(false, "unexpected announcement from public/" + service_ + " socket");
    return true;
  }
  queue_id_ = id;
  // {flags} goes out with the first records (held_), in one wakeup of cleanup.
  held_.insert(0, zero_form(ipc::proto::CleanupOpen{flags_}));
  hold();
  bufferevent_set_timeouts(bev_, nullptr, nullptr);
  bufferevent_setwatermark(bev_, EV_WRITE, kLowWater, 0);
  opened(true, "");
  return true;
}

void CleanupStream::opened(bool ok, const std::string& error) {
  opening_ = false;
  Opened callback = std::move(opened_);
  opened_ = nullptr;
  if (!ok && bev_) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
  if (callback) callback(ok, error);
}

bool CleanupStream::open_postdrop(struct event_base* base, const std::string& command_directory,
                                  const std::string& config_dir, std::string* error) {
  close();
  service_ = "postdrop";
  base_ = base;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  std::string path = command_directory + "/postdrop";
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(sv[0]);
    ::close(sv[1]);
    return false;
  }
  if (pid == 0) {
    ::dup2(sv[1], 0);
    ::dup2(sv[1], 1);
    ::setenv("MAIL_CONFIG", config_dir.c_str(), 1);
    ::execl(path.c_str(), "postdrop", "-r", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(sv[1]);
  child_ = pid;
  ipc::Stream stream(sv[0], path + " -r");
  stream.set_timeout(std::chrono::seconds(100));
  ipc::AttrReader reader(stream);
  ipc::AttrList hello;
  ipc::Status st = reader.read_list(hello, {.strict = false});
  const std::string* protocol = hello.find("protocol");
  const std::string* id = hello.find("queue_id");
  if (!st.ok() || !protocol || *protocol != "postdrop_protocol" || !id) {
    *error = st.ok() ? "unexpected answer from " + path : st.message();
    return false;  // close() reaps the child
  }
  queue_id_ = *id;
  int fd = stream.release();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev_) {
    ::close(fd);
    *error = "bufferevent_socket_new failed";
    return false;
  }
  bufferevent_setcb(bev_, &CleanupStream::on_read, &CleanupStream::on_write, &CleanupStream::on_event, this);
  bufferevent_setwatermark(bev_, EV_WRITE, kLowWater, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  return true;
}

bool CleanupStream::open(struct event_base* base, const std::string& queue_directory, const std::string& service,
                         int flags, std::string* error) {
  close();
  service_ = service;
  base_ = base;
  queue_directory_ = queue_directory;
  path_ = ipc::service_path(queue_directory, ipc::proto::kClassPublic, service);
  ipc::Channel channel;
  ipc::ConnectOptions options;
  options.timeout = std::chrono::seconds(100);
  options.attempts = 1;
  ipc::Status st =
      ipc::connect_service(channel, queue_directory, ipc::proto::kClassPublic, service, options);
  ipc::proto::CleanupHello hello;
  if (st.ok()) st = channel.read(hello);
  if (st.ok()) st = channel.write(ipc::proto::CleanupOpen{flags});
  if (st.ok()) st = channel.flush();
  if (!st.ok()) {
    *error = st.message();
    return false;
  }
  queue_id_ = hello.queue_id;
  int fd = channel.stream().release();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev_) {
    ::close(fd);
    *error = "bufferevent_socket_new failed";
    return false;
  }
  bufferevent_setcb(bev_, &CleanupStream::on_read, &CleanupStream::on_write, &CleanupStream::on_event, this);
  bufferevent_setwatermark(bev_, EV_WRITE, kLowWater, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  return true;
}

void CleanupStream::record(char type, std::string_view payload) {
  if (!bev_) return;
  // Held back until there is a bulk's worth or the message ends: cleanup
  // then wakes once for a small message instead of once per SMTP command
  // and per piece of DATA (each wakeup is a context switch on both sides).
  bool was_empty = held_.empty();
  if (was_empty && held_.capacity() < kLowWater) held_.reserve(kLowWater + kHeldSlack);
  queue::append_record(held_, type, payload);
  if (held_.size() >= kLowWater)
    flush_held();
  else if (was_empty)
    hold();  // the first held byte starts the clock
}

// Records are held at most kHoldSeconds: cleanup waits for each read at
// most ipc_timeout, and a slow client must not make it give up.
void CleanupStream::hold() {
  if (!base_) return;
  if (!hold_timer_) hold_timer_ = evtimer_new(base_, &CleanupStream::on_hold, this);
  if (hold_timer_ && !evtimer_pending(hold_timer_, nullptr)) {
    timeval tv{kHoldSeconds, 0};
    evtimer_add(hold_timer_, &tv);
  }
}

void CleanupStream::on_hold(evutil_socket_t, short, void* self) {
  auto* s = static_cast<CleanupStream*>(self);
  if (s->opening_)
    s->hold();  // {flags} goes first, when cleanup has announced itself
  else
    s->flush_held();
}

// The held bytes go to the output buffer without a copy: the buffer owns
// the string until the bytes are written (a 100 KB message was copied
// whole from held_ into the bufferevent).  held_ gets room for the next
// bulk when it starts again (record()), so that it does not grow (and copy)
// by doubling; between messages it holds nothing.
void CleanupStream::flush_held() {
  if (hold_timer_) evtimer_del(hold_timer_);
  if (bev_ && !held_.empty()) {
    auto* bytes = new std::string(std::move(held_));
    auto release = [](const void*, size_t, void* owner) { delete static_cast<std::string*>(owner); };
    if (evbuffer_add_reference(bufferevent_get_output(bev_), bytes->data(), bytes->size(), release, bytes) != 0) {
      bufferevent_write(bev_, bytes->data(), bytes->size());
      delete bytes;
    }
  }
  held_.clear();  // (valid, and empty, after the move too)
}

void CleanupStream::attribute(std::string_view name, std::string_view value) {
  std::string text;
  text.reserve(name.size() + value.size() + 1);
  text.append(name).append("=").append(value);
  record(queue::rec::kAttr, text);
}

size_t CleanupStream::pending() const {
  return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_)) + held_.size() : 0;
}

void CleanupStream::on_drained(std::function<void()> callback) { drained_ = std::move(callback); }

void CleanupStream::finish(Done done) {
  done_ = std::move(done);
  finishing_ = true;
  if (!bev_) {
    deliver(message::cleanup_stat::kWrite, "");
    return;
  }
  flush_held();
  // A cleanup that never answers must not hold the session for ever.
  timeval tv{3600, 0};  // ipc_timeout's default
  bufferevent_set_timeouts(bev_, &tv, nullptr);
  parse_reply();  // in case cleanup answered early (it refused the message)
}

void CleanupStream::on_read(struct bufferevent*, void* self) {
  auto* s = static_cast<CleanupStream*>(self);
  if (s->opening_) {
    s->parse_hello();
    return;
  }
  if (s->finishing_) s->parse_reply();
}

void CleanupStream::on_write(struct bufferevent*, void* self) {
  auto* s = static_cast<CleanupStream*>(self);
  if (s->drained_) {
    auto callback = std::move(s->drained_);
    s->drained_ = nullptr;
    callback();
  }
}

void CleanupStream::on_event(struct bufferevent*, short what, void* self) {
  auto* s = static_cast<CleanupStream*>(self);
  if (s->opening_) {
    if (what & BEV_EVENT_CONNECTED) return;  // the announcement comes next
    if (s->reused_ && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
      // cleanup closed the kept connection before it saw our request.
      bufferevent_free(s->bev_);
      s->bev_ = nullptr;
      s->connect_new();
      return;
    }
    std::string why = (what & BEV_EVENT_TIMEOUT) ? "timeout"
                      : (what & BEV_EVENT_EOF)   ? "premature end-of-input"
                                                 : std::strerror(EVUTIL_SOCKET_ERROR());
    s->opened(false, "public/" + s->service_ + " socket: " + why);
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (s->finishing_ && s->parse_reply(true)) return;
    bufferevent_free(s->bev_);
    s->bev_ = nullptr;
    if (s->finishing_) {
      s->deliver(message::cleanup_stat::kWrite, "");
      return;
    }
    // Before finish(): the session learns at finish() (bev_ is gone); a
    // session paused for backpressure must go on reading to get there.
    if (s->drained_) {
      auto callback = std::move(s->drained_);
      s->drained_ = nullptr;
      callback();
    }
    return;
  }
  if ((what & BEV_EVENT_TIMEOUT) && s->finishing_) {
    s->deliver(message::cleanup_stat::kWrite, "");
  }
}

// Cleanup's answer {status, reason} in the zero form: name NUL value NUL
// ... NUL.  True when it was complete (and delivered).
bool CleanupStream::parse_reply(bool at_eof) {
  if (!bev_) return false;
  struct evbuffer* in = bufferevent_get_input(bev_);
  std::map<std::string, std::string> reply;
  size_t used = parse_zero_list(in, reply);
  if (used == 0) return false;
  // Kept for the next message only after a conversation that ended as it
  // should: the whole reply and nothing after it, from cleanup (not
  // postdrop), on a connection that is still open.
  bool reusable = !at_eof && child_ < 0 && used == evbuffer_get_length(in);
  evbuffer_drain(in, evbuffer_get_length(in));
  const std::string& status_text = reply["status"];
  const std::string& reason = reply["reason"];
  auto status = ipc::parse_uint32(status_text);
  deliver(status ? static_cast<int>(*status) : message::cleanup_stat::kBad, reason, reusable && status.has_value());
  return true;
}

void CleanupStream::deliver(int status, const std::string& reason, bool reusable) {
  Done done = std::move(done_);
  done_ = nullptr;
  finishing_ = false;
  if (reusable && bev_) {
    keep_idle(bev_, path_);
    bev_ = nullptr;
  }
  close();
  if (done) done(status, reason);
}

}  // namespace mta::smtpd
