// header_reader.hpp: splits message content into the primary header and
// the body, as Postfix's mime_state does with MIME processing off.
//
// Content arrives as records: N is a line, L a piece of a longer line that
// the next record continues.  A header starts with "name:" (see
// header_table.hpp) and takes the lines that follow it when they start with
// a blank; its lines are joined with '\n'.  A header is cut at LIMIT bytes
// (header_size_limit); the rest of it is dropped and truncated() says so.
// The first record that is not part of a header ends the header: the
// reader calls headers_done(), then passes that record and all later ones
// to body().  When the body does not start with an empty line, the reader
// inserts one first, so that the body is never taken for more header.
// end() finishes: a pending header is delivered, headers_done() is called
// if it was not, and a last line that was left unterminated (an L record at
// the end of the input) is terminated with an empty N record.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace mta::message {

class HeaderReader {
 public:
  struct Callbacks {
    std::function<void(std::string& header)> header;
    std::function<void()> headers_done;
    std::function<void(char type, std::string_view text)> body;
  };

  HeaderReader(size_t limit, Callbacks callbacks) : limit_(limit), cb_(std::move(callbacks)) {}

  void record(char type, std::string_view text);
  void end();

  bool in_header() const { return !in_body_; }
  bool truncated() const { return truncated_; }

 private:
  void append_limited(std::string_view text);
  void flush_header();
  void start_body();
  void body(char type, std::string_view text);

  size_t limit_;
  Callbacks cb_;
  std::string header_;
  bool in_body_ = false;
  bool ended_ = false;
  bool truncated_ = false;
  bool body_seen_ = false;
  char prev_type_ = 0;       // of the previous input record
  char last_body_type_ = 0;  // of the last body record passed on
};

}  // namespace mta::message
