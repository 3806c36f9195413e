// cleanup_status.cpp: see cleanup_status.hpp.
#include "cleanup/cleanup_status.hpp"

#include <string>

#include "config/config.hpp"

namespace mta::message {
namespace {

using namespace cleanup_stat;

// Most severe first: only one can be reported.
constexpr CleanupStatDetail kDetails[] = {
    {kDefer, 451, "4.7.1", "service unavailable"},
    {kProxy, 451, "4.3.0", "queue file write error"},
    {kBad, 451, "4.3.0", "internal protocol error"},
    {kRcpt, 550, "5.1.0", "no recipients specified"},
    {kHops, 554, "5.4.0", "too many hops"},
    {kSize, 552, "5.3.4", "message file too big"},
    {kCont, 550, "5.7.1", "message content rejected"},
    {kWrite, 451, "4.3.0", "queue file write error"},
    {kNoPerm, 550, "5.7.1", "service denied"},
};
constexpr CleanupStatDetail kSuccess{kOk, 250, "2.0.0", "Success"};
constexpr CleanupStatDetail kUnknown{-1, 451, "4.3.0", "unknown cleanup status"};

}  // namespace

const CleanupStatDetail& cleanup_stat_detail(int status) {
  if (status == kOk) return kSuccess;
  for (const CleanupStatDetail& d : kDetails)
    if (d.status & status) return d;
  return kUnknown;
}

int input_transp_cleanup(int flags, std::string_view receive_override_options) {
  for (const std::string& word : config::split_list(receive_override_options)) {
    if (word == "no_address_mappings") flags &= ~(cleanup_flag::kMapOk | cleanup_flag::kBccOk);
    else if (word == "no_header_body_checks") flags &= ~cleanup_flag::kFilter;
    else if (word == "no_milters") flags &= ~cleanup_flag::kMilter;
  }
  return flags;
}

}  // namespace mta::message
