// mail_proto.cpp: the multi-list messages of mail_proto.hpp (delivery
// requests, showq listings) and the MSG_STATS blob.
#include "ipc/mail_proto.hpp"

#include <sys/time.h>

#include <cstring>

namespace mta::ipc::proto {

// ---- MsgStats: the LP64 struct layout, native byte order, as Postfix
// copies it.

namespace {

void put_int(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }

template <class T>
T get_int(std::string_view bytes, size_t& pos) {
  T v;
  std::memcpy(&v, bytes.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

}  // namespace

// The peer's struct is laid out by the same (LP64) ABI as ours.
static_assert(sizeof(timeval) == 16 && sizeof(int) == 4, "MSG_STATS layout assumes LP64");

std::string MsgStats::to_attr_data() const {
  std::string out;
  out.reserve(kWireSize);
  for (const Time* t : {&incoming_arrival, &active_arrival, &agent_handoff, &conn_setup_done, &deliver_done}) {
    put_int(out, &t->sec, sizeof t->sec);
    put_int(out, &t->usec, sizeof t->usec);
  }
  put_int(out, &reuse_count, sizeof reuse_count);
  out.append(kWireSize - out.size(), '\0');  // struct padding
  return out;
}

bool MsgStats::from_attr_data(std::string_view bytes) {
  if (bytes.size() != kWireSize) return false;
  size_t pos = 0;
  for (Time* t : {&incoming_arrival, &active_arrival, &agent_handoff, &conn_setup_done, &deliver_done}) {
    t->sec = get_int<int64_t>(bytes, pos);
    t->usec = get_int<int64_t>(bytes, pos);
  }
  reuse_count = get_int<int32_t>(bytes, pos);
  return true;
}

// ---- delivery requests

Status write_deliver_request(Channel& ch, const DeliverRequest& req) {
  if (req.recipient_count != static_cast<int>(req.recipients.size())) {
    DeliverRequest counted = req;  // (qmgr sets the count: no copy there)
    counted.recipient_count = static_cast<int>(req.recipients.size());
    return write_deliver_request(ch, counted);
  }
  if (Status st = ch.write(req); !st) return st;
  for (const Recipient& r : req.recipients)
    if (Status st = ch.write(r); !st) return st;
  return ch.flush();
}

Status read_deliver_request(Channel& ch, DeliverRequest& req, const ReadOptions& options) {
  ReadOptions whole = options;
  whole.more = false;
  if (Status st = ch.read(req, whole); !st) return st;
  if (req.recipient_count < 0 || static_cast<size_t>(req.recipient_count) > ch.reader().limits().max_table * 64)
    return {Errc::malformed, "bad recipient_count " + std::to_string(req.recipient_count) + " from " + ch.name()};
  req.recipients.assign(static_cast<size_t>(req.recipient_count), Recipient{});
  for (Recipient& r : req.recipients)
    if (Status st = ch.read(r, whole); !st) return st;
  if (req.recipients.empty())
    return {Errc::malformed, req.queue_id + ": no recipients in delivery request for destination " + req.nexthop};
  return {};
}

// ---- showq

Status write_showq_message(Channel& ch, const ShowqMessage& msg) {
  if (Status st = ch.write(msg, false); !st) return st;
  for (const ShowqRecipient& r : msg.recipients)
    if (Status st = ch.write(r, false); !st) return st;
  ch.writer().encoder().end();
  return ch.writer().send();
}

Status write_showq_end(Channel& ch) {
  ch.writer().encoder().end();
  if (Status st = ch.writer().send(); !st) return st;
  return ch.flush();
}

Status read_showq_listing(Channel& ch, std::vector<ShowqMessage>& out) {
  out.clear();
  const ReadOptions opts{.strict = true, .more = true, .printable = true};
  Status why;
  for (;;) {
    switch (ch.more(&why)) {
      case AttrReader::More::error: return why;
      case AttrReader::More::end: return {};
      case AttrReader::More::more: break;
    }
    ShowqMessage msg;
    if (Status st = ch.read(msg, opts); !st) return st;
    for (;;) {
      auto m = ch.more(&why);
      if (m == AttrReader::More::error) return why;
      if (m == AttrReader::More::end) break;
      ShowqRecipient r;
      if (Status st = ch.read(r, opts); !st) return st;
      msg.recipients.push_back(std::move(r));
    }
    out.push_back(std::move(msg));
  }
}

}  // namespace mta::ipc::proto
