// header_table.cpp: see header_table.hpp.
#include "cleanup/header_table.hpp"

#include <cctype>

#include "config/config.hpp"

namespace mta::message {
namespace {

using namespace header_flag;
constexpr unsigned kXRecipient = kRecipient | kExtract;

struct Entry {
  const char* name;
  HeaderType type;
  unsigned flags;
};

// Postfix 3.7's header_opts table.
constexpr Entry kHeaders[] = {
    {"Apparently-To", HeaderType::apparently_to, kRecipient},
    {"Bcc", HeaderType::bcc, kXRecipient},
    {"Cc", HeaderType::cc, kXRecipient},
    {"Content-Description", HeaderType::content_description, kMime},
    {"Content-Disposition", HeaderType::content_disposition, kMime},
    {"Content-ID", HeaderType::content_id, kMime},
    {"Content-Length", HeaderType::content_length, 0},
    {"Content-Transfer-Encoding", HeaderType::content_transfer_encoding, kMime},
    {"Content-Type", HeaderType::content_type, kMime},
    {"Delivered-To", HeaderType::delivered_to, 0},
    {"Disposition-Notification-To", HeaderType::disposition_notification_to, kSender},
    {"Date", HeaderType::date, 0},
    {"Errors-To", HeaderType::errors_to, kSender},
    {"From", HeaderType::from, kSender},
    {"Mail-Followup-To", HeaderType::mail_followup_to, kSender},
    {"Message-Id", HeaderType::message_id, 0},
    {"MIME-Version", HeaderType::mime_version, kMime},
    {"Received", HeaderType::received, 0},
    {"Reply-To", HeaderType::reply_to, kSender},
    {"Resent-Bcc", HeaderType::resent_bcc, kXRecipient | kResent},
    {"Resent-Cc", HeaderType::resent_cc, kXRecipient | kResent},
    {"Resent-Date", HeaderType::resent_date, kResent},
    {"Resent-From", HeaderType::resent_from, kSender | kResent},
    {"Resent-Message-Id", HeaderType::resent_message_id, kResent},
    {"Resent-Reply-To", HeaderType::resent_reply_to, kRecipient | kResent},
    {"Resent-Sender", HeaderType::resent_sender, kSender | kResent},
    {"Resent-To", HeaderType::resent_to, kXRecipient | kResent},
    {"Return-Path", HeaderType::return_path, kSender},
    {"Return-Receipt-To", HeaderType::return_receipt_to, kSender},
    {"Sender", HeaderType::sender, kSender},
    {"To", HeaderType::to, kXRecipient},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

HeaderTable::HeaderTable() {
  for (const Entry& e : kHeaders) by_name_[lower(e.name)] = HeaderInfo{e.name, e.type, e.flags};
}

void HeaderTable::set_drop_list(std::string_view names) {
  for (const std::string& name : config::split_list(names)) {
    std::string key = lower(name);
    auto it = by_name_.find(key);
    if (it == by_name_.end()) it = by_name_.emplace(key, HeaderInfo{key, HeaderType::other, 0}).first;
    it->second.flags |= kDrop;
  }
}

const HeaderInfo* HeaderTable::find(std::string_view header) const {
  size_t colon = header.find(':');
  if (colon == std::string_view::npos) return nullptr;
  std::string_view name = header.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  auto it = by_name_.find(lower(name));
  return it == by_name_.end() ? nullptr : &it->second;
}

size_t header_name_length(std::string_view line) {
  enum { init, in_name, in_space } state = init;
  size_t len = 0;
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if (c == ':') return state == init ? 0 : len;
    if (c == ' ' || c == '\t') {
      if (state == init) return 0;
      state = in_space;
      continue;
    }
    if (c == 0 || c > 126 || c < 32 || state == in_space) return 0;
    state = in_name;
    ++len;
  }
  return 0;
}

}  // namespace mta::message
