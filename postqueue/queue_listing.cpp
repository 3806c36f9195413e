// queue_listing.cpp: the mailq and JSON formats of queue_listing.hpp.
#include "postqueue/queue_listing.hpp"

#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "ipc/attr.hpp"

namespace mta::postqueue {

namespace {

// snprintf into a std::string.
__attribute__((format(printf, 1, 2))) std::string format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out;
  if (n > 0) {
    out.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(out.data(), out.size(), fmt, ap);
    out.resize(static_cast<size_t>(n));
  }
  va_end(ap);
  return out;
}

// Queue ID, size, arrival time, sender/recipient columns (showq_compat.c),
// as macros so that the compiler checks the arguments against them.
#define SHORT_STRING_FORMAT "%-11s %7s %-20s %s\n"
#define SHORT_SENDER_FORMAT "%-11s %7ld %20.20s %s\n"
#define LONG_STRING_FORMAT "%-17s %8s %-19s %s\n"
#define LONG_SENDER_FORMAT "%-17s %8ld %19.19s %s\n"

}  // namespace

std::string arrival_time_text(long when) {
  std::time_t t = static_cast<std::time_t>(when);
  std::tm tm{};
  if (!localtime_r(&t, &tm)) return "??";
  // asctime()'s format, which is fixed by the C standard.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  return format("%.3s %.3s%3d %.2d:%.2d:%.2d %d", kDays[tm.tm_wday % 7], kMonths[tm.tm_mon % 12], tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, 1900 + tm.tm_year);
}

std::string MailqFormatter::message(const ipc::proto::ShowqMessage& msg) {
  std::string out;
  if (count_ > 0)
    out += "\n";
  else if (long_ids_)
    out += format(LONG_STRING_FORMAT, "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------");
  else
    out += format(SHORT_STRING_FORMAT, "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------");

  std::string id_status = msg.queue_id;
  if (msg.queue_name == "active")
    id_status += '*';
  else if (msg.queue_name == "hold")
    id_status += '!';
  if (msg.forced_expire) id_status += '#';
  // asctime() ends in a newline that the precision cuts off.
  std::string when = arrival_time_text(msg.arrival_time) + "\n";
  if (long_ids_)
    out += format(LONG_SENDER_FORMAT, id_status.c_str(), msg.size, when.c_str(), msg.sender.c_str());
  else
    out += format(SHORT_SENDER_FORMAT, id_status.c_str(), msg.size, when.c_str(), msg.sender.c_str());

  std::string saved_reason;
  for (const ipc::proto::ShowqRecipient& r : msg.recipients) {
    if (r.reason != saved_reason) {
      saved_reason = r.reason;
      const std::string& shown = saved_reason.empty() ? std::string("reason unavailable") : saved_reason;
      int padding = 76 - static_cast<int>(shown.size());
      if (padding < 0) padding = 0;
      out += format("%*s(%s)\n", padding, "", shown.c_str());
    }
    if (long_ids_)
      out += format(LONG_STRING_FORMAT, "", "", "", r.address.c_str());
    else
      out += format(SHORT_STRING_FORMAT, "", "", "", r.address.c_str());
  }
  total_size_ += static_cast<unsigned long>(msg.size);
  ++count_;
  return out;
}

std::string MailqFormatter::trailer() const {
  if (count_ == 0) return "Mail queue is empty\n";
  return format("\n-- %lu Kbytes in %lu Request%s.\n", total_size_ / 1024, count_, count_ == 1 ? "" : "s");
}

std::string json_quote(std::string_view text, bool utf8) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto ch = static_cast<unsigned char>(c);
    if (ch < 0x20 || ch == 0x7F) {
      switch (ch) {
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += format("\\u%04X", static_cast<unsigned>(ch)); break;
      }
    } else {
      if (ch == '\\' || ch == '"') out += '\\';
      out += c;
    }
  }
  return ipc::printable(out, utf8);
}

std::string json_message(const ipc::proto::ShowqMessage& msg, bool utf8) {
  std::string out = "{";
  out += "\"queue_name\": \"" + json_quote(msg.queue_name, utf8) + "\", ";
  out += "\"queue_id\": \"" + json_quote(msg.queue_id, utf8) + "\", ";
  out += "\"arrival_time\": " + std::to_string(msg.arrival_time) + ", ";
  out += "\"message_size\": " + std::to_string(msg.size) + ", ";
  out += std::string("\"forced_expire\": ") + (msg.forced_expire ? "true" : "false") + ", ";
  out += "\"sender\": \"" + json_quote(msg.sender, utf8) + "\", ";
  out += "\"recipients\": [";
  bool first = true;
  for (const ipc::proto::ShowqRecipient& r : msg.recipients) {
    if (!first) out += ", ";
    first = false;
    out += "{\"address\": \"" + json_quote(r.address, utf8) + "\"";
    if (!r.reason.empty()) out += ", \"delay_reason\": \"" + json_quote(r.reason, utf8) + "\"";
    out += "}";
  }
  out += "]}\n";
  return out;
}

}  // namespace mta::postqueue
