// smtp_reply.cpp: see smtp_reply.hpp.
#include "smtp/smtp_reply.hpp"

#include <netdb.h>
#include <netinet/in.h>

namespace mta::smtp {

std::string Reply::flat() const {
  std::string out = text;
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
}

size_t dsn_length(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return 0;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 3) return 0;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return 0;
      ++i;
    }
  }
  if (i < s.size() && s[i] != ' ' && s[i] != '\t') return 0;
  return i;
}

std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return out;
}

bool ReplyReader::add_line(std::string_view raw) {
  std::string line = printable(raw);
  if (reply_.text.size() < limit_) {
    if (!reply_.text.empty()) reply_.text += '\n';
    reply_.text += line;
  }
  last_ = line;
  size_t digits = 0;
  while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') ++digits;
  if (digits == 3) {
    if (line.size() > 3 && line[3] == '-') return false;
    if (line.size() == 3 || line[3] == ' ') return true;
  }
  return false;  // garbage: keep reading, as Postfix does without pipelining
}

Reply ReplyReader::take() {
  Reply r = std::move(reply_);
  reply_ = Reply{};
  size_t digits = 0;
  while (digits < last_.size() && last_[digits] >= '0' && last_[digits] <= '9') ++digits;
  r.dsn = "5.5.0";
  if (digits == 3) {
    r.code = std::stoi(last_.substr(0, 3));
    char cls = last_[0];
    if (cls == '2' || cls == '4' || cls == '5') {
      size_t p = 4;
      while (p < last_.size() && last_[p] == ' ') ++p;
      std::string_view rest = p < last_.size() ? std::string_view(last_).substr(p) : std::string_view();
      size_t len = dsn_length(rest);
      if (len > 0 && rest[0] == cls) r.dsn = std::string(rest.substr(0, len));
      else r.dsn = std::string(1, cls) + ".0.0";
    }
  } else {
    r.code = 0;
  }
  last_.clear();
  return r;
}

std::optional<NextHop> parse_nexthop(std::string_view dest, std::string_view def_service, bool lmtp,
                                     std::string& error) {
  NextHop hop;
  std::string_view d = dest;
  if (lmtp) {
    if (d.substr(0, 5) == "unix:") {
      hop.unix_socket = true;
      hop.path = std::string(d.substr(5));
      return hop;
    }
    if (d.substr(0, 5) == "inet:") d.remove_prefix(5);
  }
  // host_port(): "[host]:port", "[host]", "host:port", "host".
  std::string_view host, service;
  if (!d.empty() && d[0] == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) {
      error = "missing \"]\" in server description: " + std::string(dest);
      return std::nullopt;
    }
    host = d.substr(1, close - 1);
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        error = "garbage after \"]\" in server description: " + std::string(dest);
        return std::nullopt;
      }
      service = rest.substr(1);
    }
  } else {
    size_t colon = d.rfind(':');
    if (colon != std::string_view::npos && d.find(':') == colon) {
      host = d.substr(0, colon);
      service = d.substr(colon + 1);
    } else {
      host = d;
    }
    hop.lookup_mx = !lmtp;
  }
  if (host.empty()) {
    error = "missing host in server description: " + std::string(dest);
    return std::nullopt;
  }
  hop.host = std::string(host);
  if (service.empty()) service = def_service;
  bool all_digits = !service.empty();
  for (char c : service) all_digits = all_digits && c >= '0' && c <= '9';
  if (all_digits) {
    unsigned long port = service.size() > 6 ? 70000 : std::stoul(std::string(service));
    if (port == 0 || port >= 65536) {
      error = "bad network port in destination: " + std::string(dest);
      return std::nullopt;
    }
    hop.port = static_cast<unsigned>(port);
  } else {
    servent* sp = ::getservbyname(std::string(service).c_str(), "tcp");
    if (sp == nullptr) {
      error = "unknown service: " + std::string(service) + "/tcp";
      return std::nullopt;
    }
    hop.port = ntohs(static_cast<uint16_t>(sp->s_port));
  }
  return hop;
}

}  // namespace mta::smtp
