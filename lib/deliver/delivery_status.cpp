// delivery_status.cpp: see delivery_status.hpp.
#include "deliver/delivery_status.hpp"

#include <sys/time.h>

#include <cctype>
#include <cmath>
#include <cstdio>

#include "config/config.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"
#include "maps/match_list.hpp"

namespace mta::deliver {

std::string format_delay(long long sec, long long usec, int max_decimals) {
  constexpr int kSignificant = 2;
  if (sec < 0 || usec < 0) sec = usec = 0;
  if (sec >= 100) return std::to_string(sec + (usec >= 500000 ? 1 : 0));
  // Decimals for two significant digits, but not finer than the limit.
  int decimals;
  if (sec >= 10) {
    decimals = 0;
  } else if (sec >= 1) {
    decimals = kSignificant - 1;
  } else {
    int first = 1;  // position of the first significant decimal digit
    for (long long scale = 100000; first < 6 && usec < scale; scale /= 10) ++first;
    decimals = first + kSignificant - 1;
  }
  if (decimals > max_decimals) decimals = max_decimals;
  double value = static_cast<double>(sec) + static_cast<double>(usec) / 1e6;
  double factor = std::pow(10.0, decimals);
  value = std::floor(value * factor + 0.5) / factor;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

ipc::proto::MsgStats::Time now() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return {tv.tv_sec, tv.tv_usec};
}

namespace {

using Time = ipc::proto::MsgStats::Time;

bool stamped(const Time& t) { return t.sec > 0; }

Time delta(const Time& later, const Time& earlier) {
  long long sec = later.sec - earlier.sec, usec = later.usec - earlier.usec;
  while (usec < 0) {
    usec += 1000000;
    --sec;
  }
  while (usec >= 1000000) {
    usec -= 1000000;
    ++sec;
  }
  if (sec < 0) sec = usec = 0;
  return {sec, usec};
}

bool append(const std::string& queue_directory, std::string_view service, StatusLine& line, int flags,
            std::string* error) {
  ipc::Channel ch;
  ipc::Status st = ipc::connect_service(ch, queue_directory, ipc::proto::kClassPrivate, service);
  if (st) st = ch.expect_announcement(ipc::proto::kProtoBounce);
  if (st) {
    ipc::proto::BounceAppendRequest req;
    req.flags = flags;
    req.queue_id = line.queue_id;
    req.rcpt = line.recipient;
    req.dsn = line.dsn;
    ipc::proto::StatusReply reply;
    st = ch.request(req, reply);
    if (st && reply.status != 0) st = ipc::Status(ipc::Errc::io, "service " + std::string(service) + " refused");
  }
  if (!st && error) *error = st.message();
  return st.ok();
}

}  // namespace

std::string format_status(const StatusLine& l, int max_decimals) {
  const auto& s = l.stats;
  Time done = stamped(s.deliver_done) ? s.deliver_done : now();
  Time total = delta(done, s.incoming_arrival), before{}, active{}, setup{}, transfer{};
  if (stamped(s.active_arrival)) {
    before = delta(s.active_arrival, s.incoming_arrival);
    if (stamped(s.agent_handoff)) {
      active = delta(s.agent_handoff, s.active_arrival);
      if (stamped(s.conn_setup_done)) {
        setup = delta(s.conn_setup_done, s.agent_handoff);
        transfer = delta(done, s.conn_setup_done);
      } else {
        transfer = delta(done, s.agent_handoff);
      }
    } else {
      active = delta(done, s.active_arrival);
    }
  } else {
    before = delta(done, s.incoming_arrival);
  }
  auto f = [max_decimals](const Time& t) { return format_delay(t.sec, t.usec, max_decimals); };
  std::string out = l.queue_id + ": to=<" + l.recipient.address + ">";
  const std::string& orig = l.recipient.orig_addr;
  if (!orig.empty()) {
    bool same = orig.size() == l.recipient.address.size();
    for (size_t i = 0; same && i < orig.size(); ++i)
      same = std::tolower(static_cast<unsigned char>(orig[i])) ==
             std::tolower(static_cast<unsigned char>(l.recipient.address[i]));
    if (!same) out += ", orig_to=<" + orig + ">";
  }
  out += ", relay=" + l.relay;
  if (s.reuse_count > 0) out += ", conn_use=" + std::to_string(s.reuse_count + 1);
  out += ", delay=" + f(total) + ", delays=" + f(before) + "/" + f(active) + "/" + f(setup) + "/" + f(transfer);
  out += ", dsn=" + l.dsn.status + ", status=" + l.status + " (" + l.dsn.reason + ")";
  return out;
}

void log_status(const StatusLine& line, int max_decimals) {
  log::info("%s", format_status(line, max_decimals).c_str());
}

std::shared_ptr<const ipc::FlushClient> flush_client_from_config(const config::Config& config) {
  std::string domains = config.get("fast_flush_domains");
  if (maps::split_patterns(domains).empty()) return nullptr;
  ipc::FlushOptions options;
  options.service = config.get("flush_service_name");
  options.timeout = std::chrono::seconds(config.get_time("ipc_timeout"));
  return std::make_shared<const ipc::FlushClient>(config.get("queue_directory"), domains,
                                                  maps::match_parent_style(config, "fast_flush_domains"),
                                                  std::move(options));
}

void register_deferred(const ipc::FlushClient* flush, std::string_view queue_id, std::string_view address) {
  if (!flush) return;
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return;
  int status = flush->add(address.substr(at + 1), queue_id);
  if (status != ipc::flush_proto::kStatOk && status != ipc::flush_proto::kStatDeny)
    log::warning("%.*s: %s service failure", static_cast<int>(queue_id.size()), queue_id.data(),
                 flush->service().c_str());
}

bool defer_append(const std::string& queue_directory, StatusLine line, int flags, std::string* error,
                  const ipc::FlushClient* flush) {
  line.status = "deferred";
  if (line.dsn.action.empty()) line.dsn.action = "delayed";
  bool ok = append(queue_directory, ipc::proto::kServiceDefer, line, flags, error);
  log_status(line);
  register_deferred(flush, line.queue_id, line.recipient.address);
  return ok;
}

bool bounce_append(const std::string& queue_directory, StatusLine line, int flags, std::string* error) {
  line.status = "bounced";
  if (line.dsn.action.empty()) line.dsn.action = "failed";
  if (append(queue_directory, ipc::proto::kServiceBounce, line, flags, error)) {
    log_status(line);  // logged once the bounce service has the record, as Postfix
    return true;
  }
  // No bounce service: the recipient waits for a later attempt instead.
  line.dsn.status = "4.3.0";
  line.dsn.reason = "bounce or trace service failure";
  line.dsn.action = "delayed";
  defer_append(queue_directory, line, flags);
  return false;
}

}  // namespace mta::deliver
