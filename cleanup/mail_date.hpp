// mail_date.hpp: dates in message headers, as Postfix writes them.
#pragma once

#include <ctime>
#include <string>

namespace mta::message {

// Postfix's mail_date(): local time, "%a, %e %b %Y %H:%M:%S +hhmm (%Z)",
// e.g. "Sun,  2 Nov 2025 11:40:39 +0100 (CET)" (a one-digit day is padded
// with a blank, as strftime's %e does).
std::string mail_date(std::time_t when);

// The time stamp of a Message-Id cleanup makes: "%Y%m%d%H%M%S" in UTC.
std::string message_id_stamp(std::time_t when);

}  // namespace mta::message
