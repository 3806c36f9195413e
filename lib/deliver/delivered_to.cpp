// delivered_to.cpp: see delivered_to.hpp.
#include "deliver/delivered_to.hpp"

#include "queue/record.hpp"

namespace mta::deliver {

std::string fold_case(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::unordered_set<std::string> read_delivered_to(int fd, const std::string& path, long data_offset) {
  std::unordered_set<std::string> out;
  queue::RecordReader in(fd, path);
  in.seek(data_offset);
  queue::Record rec;
  std::string line;
  bool continued = false;
  for (;;) {
    if (in.next(rec) != queue::ReadStatus::ok || rec.type == queue::rec::kExtracted) break;
    if (rec.type != queue::rec::kNorm && rec.type != queue::rec::kCont) break;
    if (!continued) line.clear();
    line += rec.data;
    continued = rec.type == queue::rec::kCont;
    if (continued) continue;
    // The primary header ends at the first line that is neither a header
    // nor a continuation.
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) break;
    std::string name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    bool header = !name.empty();
    for (char c : name)
      if (static_cast<unsigned char>(c) <= 32 || static_cast<unsigned char>(c) >= 127) header = false;
    if (!header) break;
    if (fold_case(name) != "delivered-to") continue;
    std::string value = line.substr(colon + 1);
    size_t b = value.find_first_not_of(" \t");
    value = b == std::string::npos ? std::string() : value.substr(b);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) value.pop_back();
    out.insert(fold_case(value));
  }
  return out;
}

}  // namespace mta::deliver
