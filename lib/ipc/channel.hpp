// channel.hpp: one connection that speaks the attribute protocol: a
// stream, its encoding (attr.hpp), and typed reads and writes
// (attr_schema.hpp).  Clients (service.hpp) and servers (server.hpp) use
// the same type; it is movable, and owns its stream.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ipc/attr.hpp"
#include "ipc/attr_schema.hpp"
#include "ipc/stream.hpp"

namespace mta::ipc {

// {protocol=NAME}: what a Postfix 3.7 server sends first.
struct ProtocolAnnouncement {
  std::string protocol;
  static constexpr auto attr_schema() { return schema(field("protocol", &ProtocolAnnouncement::protocol)); }
};

class Channel {
 public:
  Channel() = default;
  explicit Channel(Stream stream, Format format = Format::zero, Limits limits = {});

  bool is_open() const { return stream_ && stream_->is_open(); }
  Stream& stream() { return *stream_; }
  const Stream& stream() const { return *stream_; }
  AttrReader& reader() { return *reader_; }
  AttrWriter& writer() { return *writer_; }
  Format format() const { return writer_->format(); }
  const std::string& name() const { return stream_->name(); }

  template <Described T>
  Status read(T& obj, const ReadOptions& options = {}) {
    return ipc::read(*reader_, obj, options);
  }
  // Buffered; flush() sends.
  template <Described T>
  Status write(const T& obj, bool terminate = true) {
    return ipc::write(*writer_, obj, terminate);
  }
  Status read_list(AttrList& out, const ReadOptions& options = {}) { return reader_->read_list(out, options); }
  Status write_list(const AttrList& attrs, bool terminate = true) { return writer_->send(attrs, terminate); }
  Status flush() { return writer_->flush(); }
  AttrReader::More more(Status* why = nullptr) { return reader_->more(why); }

  // A request and its reply: write, flush, read.
  template <Described Req, Described Rep>
  Status request(const Req& req, Rep& rep, const ReadOptions& options = {}) {
    if (Status st = write(req); !st) return st;
    if (Status st = flush(); !st) return st;
    return read(rep, options);
  }
  Status request(const AttrList& req, AttrList& rep, const ReadOptions& options = {});

  // Server side: send {protocol=NAME} and flush.
  Status announce(std::string_view protocol);
  // Client side: read the announcement; anything but {protocol=NAME} fails.
  Status expect_announcement(std::string_view protocol);

  // Flushes pending output (best effort) and closes.
  void close();

 private:
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<AttrReader> reader_;
  std::unique_ptr<AttrWriter> writer_;
};

}  // namespace mta::ipc
