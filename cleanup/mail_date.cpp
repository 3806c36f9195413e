// mail_date.cpp: see mail_date.hpp.
#include "cleanup/mail_date.hpp"

#include <cstdio>
#include <cstdlib>

namespace mta::message {

std::string mail_date(std::time_t when) {
  struct tm lt {};
  ::localtime_r(&when, &lt);
  char buf[128];
  std::string out;
  if (std::strftime(buf, sizeof buf, "%a, %e %b %Y %H:%M:%S ", &lt) > 0) out = buf;
  // The offset in minutes, written the way Postfix does (hours with their
  // sign, then the minutes of the absolute value).
  long gmtoff = lt.tm_gmtoff / 60;
  std::snprintf(buf, sizeof buf, "%+03d%02d", static_cast<int>(gmtoff / 60), static_cast<int>(std::labs(gmtoff) % 60));
  out += buf;
  if (std::strftime(buf, sizeof buf, " (%Z)", &lt) > 0) out += buf;
  return out;
}

std::string message_id_stamp(std::time_t when) {
  struct tm gt {};
  ::gmtime_r(&when, &gt);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &gt);
  return buf;
}

}  // namespace mta::message
