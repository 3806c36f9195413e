// header_reader.cpp: see header_reader.hpp.
#include "cleanup/header_reader.hpp"

#include "cleanup/header_table.hpp"

namespace mta::message {
namespace {
constexpr char kNorm = 'N';
constexpr char kCont = 'L';
}  // namespace

void HeaderReader::append_limited(std::string_view text) {
  if (header_.size() >= limit_) {
    if (!text.empty()) truncated_ = true;
    return;
  }
  size_t room = limit_ - header_.size();
  if (text.size() > room) {
    truncated_ = true;
    text = text.substr(0, room);
  }
  header_.append(text);
}

void HeaderReader::flush_header() {
  if (header_.empty()) return;
  std::string h;
  h.swap(header_);
  if (cb_.header) cb_.header(h);
}

void HeaderReader::start_body() {
  in_body_ = true;
  if (cb_.headers_done) cb_.headers_done();
}

void HeaderReader::body(char type, std::string_view text) {
  if (!body_seen_) {
    body_seen_ = true;
    if (!(type == kNorm && text.empty()) && cb_.body) cb_.body(kNorm, {});
  }
  last_body_type_ = type;
  if (cb_.body) cb_.body(type, text);
}

void HeaderReader::record(char type, std::string_view text) {
  if (ended_) return;
  if (in_body_) {
    body(type, text);
    prev_type_ = type;
    return;
  }
  if (!header_.empty()) {
    if (prev_type_ == kCont) {  // more of the same line
      append_limited(text);
      prev_type_ = type;
      return;
    }
    if (!text.empty() && (text[0] == ' ' || text[0] == '\t')) {  // a continuation line
      if (header_.size() < limit_) {
        header_ += '\n';
        append_limited(text);
      } else {
        truncated_ = true;
      }
      prev_type_ = type;
      return;
    }
  }
  flush_header();
  if (is_header(text)) {
    append_limited(text);
    prev_type_ = type;
    return;
  }
  start_body();
  body(type, text);
  prev_type_ = type;
}

void HeaderReader::end() {
  if (ended_) return;
  if (!in_body_) {
    flush_header();
    start_body();
  }
  if (last_body_type_ == kCont && cb_.body) cb_.body(kNorm, {});
  ended_ = true;
}

}  // namespace mta::message
