// cleanup_stream.hpp: smtpd's conversation with the cleanup service, on the
// session's event loop.
//
// open() connects to public/cleanup and reads {protocol, queue_id} and
// sends {flags} synchronously: a local cleanup answers at once, and master
// starts one when none is free.  Records then go out through a bufferevent
// without blocking the other sessions of the process; pending() tells the
// session how much is still queued, so that it stops reading from a client
// faster than cleanup writes (backpressure).  finish() writes nothing more
// and calls back with cleanup's {status, reason} when the queue file is on
// disk (cleanup fsyncs before it answers): only then may smtpd say 250.
// Destroying the stream before finish() completes closes the connection
// without the end record, and cleanup throws its incomplete file away.
//
// A connection whose conversation ended cleanly is kept (per process, for
// kIdleSeconds, at most kMaxIdle of them) and the next open_async() asks
// cleanup on it for another message ({request=next_message}, ours only):
// no connect, accept and master status reports per message.  When cleanup
// has closed it meanwhile (max_use, a reload, a Postfix cleanup that
// serves one message per connection), the stream connects anew.
#pragma once

#include <functional>
#include <string>
#include <string_view>

struct event_base;
struct event;
struct bufferevent;

namespace mta::smtpd {

class CleanupStream {
 public:
  using Done = std::function<void(int status, const std::string& reason)>;

  CleanupStream() = default;
  ~CleanupStream();
  CleanupStream(const CleanupStream&) = delete;
  CleanupStream& operator=(const CleanupStream&) = delete;

  // False with *error set ("connect to public/cleanup: ...") when cleanup
  // cannot be reached.
  bool open(struct event_base* base, const std::string& queue_directory, const std::string& service, int flags,
            std::string* error);
  // The same, without blocking the event loop: connects, reads the
  // announcement and sends the flags on events, then calls OPENED with
  // true (queue_id() is set) or false and the reason.  Records written
  // before that wait in the output buffer.
  using Opened = std::function<void(bool ok, const std::string& error)>;
  void open_async(struct event_base* base, const std::string& queue_directory, const std::string& service,
                  int flags, Opened opened);

  // The same conversation with "postdrop -r" as a child process, for the
  // stand-alone smtpd of sendmail -bs (Postfix's mail_stream_command):
  // postdrop announces {protocol=postdrop_protocol, queue_id}, takes the
  // records a user may submit and answers {status, reason}.
  bool open_postdrop(struct event_base* base, const std::string& command_directory, const std::string& config_dir,
                     std::string* error);
  bool is_open() const { return bev_ != nullptr; }
  const std::string& queue_id() const { return queue_id_; }

  void record(char type, std::string_view payload);
  // name=value attribute record (REC_TYPE_ATTR).
  void attribute(std::string_view name, std::string_view value);
  // Bytes written but not yet taken by cleanup.  record() holds them back
  // until 64 KB have come, a second has passed, or finish().
  size_t pending() const;
  // Called once when the output drains below the low-water mark.
  void on_drained(std::function<void()> callback);

  // No more records; DONE runs with cleanup's answer, or with
  // cleanup_stat::kWrite and a reason when the connection fails.
  void finish(Done done);
  void close();

 private:
  static void on_read(struct bufferevent* bev, void* self);
  static void on_write(struct bufferevent* bev, void* self);
  static void on_event(struct bufferevent* bev, short what, void* self);
  void deliver(int status, const std::string& reason, bool reusable = false);
  bool parse_reply(bool at_eof = false);
  void connect_new();
  void flush_held();
  void hold();
  static void on_hold(int fd, short what, void* self);
  static constexpr int kHoldSeconds = 1;
  struct event* hold_timer_ = nullptr;
  bool parse_hello();
  void opened(bool ok, const std::string& error);

  struct bufferevent* bev_ = nullptr;
  std::string queue_id_;
  std::string service_;
  Done done_;
  std::function<void()> drained_;
  bool finishing_ = false;
  bool opening_ = false;
  bool reused_ = false;  // opening on a kept connection: fall back to a new one
  int flags_ = 0;
  struct event_base* base_ = nullptr;
  std::string queue_directory_;
  std::string path_;  // public/SERVICE under queue_directory_
  Opened opened_;
  int child_ = -1;  // postdrop's pid
  std::string held_;  // records not yet handed to the bufferevent (record())
};

}  // namespace mta::smtpd
