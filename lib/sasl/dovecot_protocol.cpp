// dovecot_protocol.cpp: escaping, MECH and reply parsing, request
// formatting for Dovecot's auth client protocol.
#include "sasl/dovecot_protocol.hpp"

#include <charconv>

namespace mta::sasl::dovecot {

std::string tab_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\001': out += "\0011"; break;
      case '\t': out += "\001t"; break;
      case '\n': out += "\001n"; break;
      case '\r': out += "\001r"; break;
      default: out += c;
    }
  }
  return out;
}

std::string tab_unescape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '\001' || i + 1 == value.size()) {
      out += value[i];
      continue;
    }
    switch (value[++i]) {
      case '1': out += '\001'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default: out += value[i];  // unknown escape: keep the character
    }
  }
  return out;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

std::optional<Mechanism> parse_mech(std::string_view line) {
  auto fields = split_fields(line);
  if (fields.size() < 2 || fields[0] != "MECH" || fields[1].empty()) return std::nullopt;
  Mechanism mech;
  mech.name = tab_unescape(fields[1]);
  for (size_t i = 2; i < fields.size(); ++i) {
    std::string_view f = fields[i];
    if (f == "anonymous") mech.anonymous = true;
    else if (f == "plaintext") mech.plaintext = true;
    else if (f == "dictionary") mech.dictionary = true;
    else if (f == "active") mech.active = true;
    else if (f == "forward-secrecy") mech.forward_secrecy = true;
    else if (f == "mutual-auth") mech.mutual_auth = true;
    else if (f == "private") mech.private_mech = true;
    // Unknown flags come from newer servers: ignored, as Postfix does.
  }
  return mech;
}

bool mechanism_allowed(const Mechanism& mech, const SecurityOptions& o) {
  if (mech.private_mech) return false;
  if (o.noanonymous && mech.anonymous) return false;
  if (o.noplaintext && mech.plaintext) return false;
  if (o.noactive && mech.active) return false;
  if (o.nodictionary && mech.dictionary) return false;
  if (o.forward_secrecy && !mech.forward_secrecy) return false;
  if (o.mutual_auth && !mech.mutual_auth) return false;
  return true;
}

bool is_valid_base64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  size_t pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    if (c == '=') {
      ++pad;
      continue;
    }
    if (!alpha || pad > 0) return false;  // data after padding
  }
  return pad <= 2;
}

std::string format_auth(const AuthRequest& r) {
  std::string line = "AUTH\t" + std::to_string(r.id) + "\t" + tab_escape(r.mechanism) +
                     "\tservice=" + tab_escape(r.service) + "\tnologin";
  auto add = [&line](std::string_view key, const std::string& value) {
    if (!value.empty()) line += "\t" + std::string(key) + "=" + tab_escape(value);
  };
  add("lip", r.local_ip);
  add("rip", r.remote_ip);
  add("lport", r.local_port);
  add("rport", r.remote_port);
  if (r.secured) line += "\tsecured";
  if (r.initial_response) line += "\tresp=" + *r.initial_response;
  line += '\n';
  return line;
}

std::string format_cont(unsigned id, std::string_view response_base64) {
  return "CONT\t" + std::to_string(id) + "\t" + std::string(response_base64) + "\n";
}

std::optional<AuthReply> parse_reply(std::string_view line) {
  auto fields = split_fields(line);
  if (fields.size() < 2) return std::nullopt;
  AuthReply reply;
  if (fields[0] == "OK") reply.kind = AuthReply::Kind::ok;
  else if (fields[0] == "CONT") reply.kind = AuthReply::Kind::cont;
  else if (fields[0] == "FAIL") reply.kind = AuthReply::Kind::fail;
  else return std::nullopt;
  std::string_view id = fields[1];
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), reply.id);
  if (ec != std::errc() || end != id.data() + id.size() || id.empty()) return std::nullopt;
  if (reply.kind == AuthReply::Kind::cont) {
    if (fields.size() > 2) reply.data = std::string(fields[2]);
    return reply;
  }
  for (size_t i = 2; i < fields.size(); ++i) {
    std::string_view f = fields[i];
    if (f.starts_with("user=")) {
      reply.user = tab_unescape(f.substr(5));
      reply.has_user = true;
    } else if (f.starts_with("reason=")) {
      reply.reason = tab_unescape(f.substr(7));
      reply.has_reason = true;
    } else if (f == "temp") {
      reply.temp = true;
    }
  }
  return reply;
}

}  // namespace mta::sasl::dovecot
