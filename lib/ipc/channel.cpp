// channel.cpp: a connection speaking the attribute protocol.
#include "ipc/channel.hpp"

namespace mta::ipc {

Channel::Channel(Stream stream, Format format, Limits limits)
    : stream_(std::make_unique<Stream>(std::move(stream))),
      reader_(std::make_unique<AttrReader>(*stream_, format, limits)),
      writer_(std::make_unique<AttrWriter>(*stream_, format)) {}

Status Channel::request(const AttrList& req, AttrList& rep, const ReadOptions& options) {
  if (Status st = write_list(req); !st) return st;
  if (Status st = flush(); !st) return st;
  return read_list(rep, options);
}

Status Channel::announce(std::string_view protocol) {
  if (Status st = write(ProtocolAnnouncement{std::string(protocol)}); !st) return st;
  return flush();
}

Status Channel::expect_announcement(std::string_view protocol) {
  ProtocolAnnouncement got;
  if (Status st = read(got); !st) return st;
  if (got.protocol != protocol)
    return {Errc::mismatch, "unexpected protocol " + printable(got.protocol) + " from " + name() +
                                " (expected: " + std::string(protocol) + ")"};
  return {};
}

void Channel::close() {
  if (stream_) (void)stream_->close();
}

}  // namespace mta::ipc
