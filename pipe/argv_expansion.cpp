// argv_expansion.cpp: see argv_expansion.hpp.
#include "pipe/argv_expansion.hpp"

#include <strings.h>

#include <cctype>
#include <string_view>

#include "deliver/mail_copy.hpp"
#include "log/log.hpp"
#include "pipe/pipe_attributes.hpp"

namespace mta::pipe {
namespace {

// What a per-recipient macro needs (PIPE_FLAG_*); 0 for message macros.
enum : int { kNeedRcpt = 1, kNeedUser = 2, kNeedExtension = 4, kNeedMailbox = 8, kNeedDomain = 16, kNeedOrigRcpt = 32 };

struct MacroName {
  const char* name;
  int needs;
};
constexpr MacroName kMacros[] = {
    {"nexthop", 0},          {"recipient", kNeedRcpt},   {"original_recipient", kNeedOrigRcpt},
    {"sender", 0},           {"user", kNeedUser},        {"extension", kNeedExtension},
    {"mailbox", kNeedMailbox}, {"domain", kNeedDomain},  {"size", 0},
    {"client_address", 0},   {"client_hostname", 0},     {"client_port", 0},
    {"client_protocol", 0},  {"client_helo", 0},         {"sasl_method", 0},
    {"sasl_username", 0},    {"sasl_sender", 0},         {"queue_id", 0},
};

// One piece of an argument: literal text, or a macro name.
struct Piece {
  bool macro;
  std::string text;
};

// Postfix's mac_parse(): false after a warning.
bool parse_pieces(const std::string& arg, std::vector<Piece>& out) {
  std::string literal;
  size_t i = 0;
  while (i < arg.size()) {
    if (arg[i] != '$') {
      literal += arg[i++];
      continue;
    }
    if (i + 1 < arg.size() && arg[i + 1] == '$') {
      literal += '$';
      i += 2;
      continue;
    }
    if (!literal.empty()) out.push_back({false, std::move(literal)}), literal.clear();
    ++i;
    std::string name;
    if (i < arg.size() && (arg[i] == '{' || arg[i] == '(')) {
      const char open = arg[i], close = open == '{' ? '}' : ')';
      int level = 1;
      size_t start = ++i;
      while (level > 0) {
        if (i >= arg.size()) {
          log::warning("truncated macro reference: \"%s\"", arg.c_str());
          return false;
        }
        if (arg[i] == open) ++level;
        if (arg[i] == close) --level;
        ++i;
      }
      name = arg.substr(start, i - 1 - start);
    } else {
      size_t start = i;
      while (i < arg.size() && (std::isalnum(static_cast<unsigned char>(arg[i])) || arg[i] == '_')) ++i;
      name = arg.substr(start, i - start);
    }
    if (name.empty()) {
      log::warning("empty macro name: \"%s\"", arg.c_str());
      return false;
    }
    out.push_back({true, std::move(name)});
  }
  if (!literal.empty()) out.push_back({false, std::move(literal)});
  return true;
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// morph_recipient(): quoted (q) and folded (u, h) as FLAGS say.
std::string morph(const std::string& address, int flags) {
  std::string out = (flags & kQuoteLocal) ? deliver::quote_822_local(address) : address;
  return fold_address(std::move(out), flags);
}

// The local part (everything before the rightmost @), with a warning when
// there is no @; *domain gets the rest (nullopt when there is no @).
std::string local_part(const std::string& morphed, const std::string& original, std::optional<std::string>* domain) {
  size_t at = morphed.rfind('@');
  if (at == std::string::npos) {
    log::warning("no @ in recipient address: %s", original.c_str());
    if (domain) domain->reset();
    return morphed;
  }
  if (domain) *domain = morphed.substr(at + 1);
  return morphed.substr(0, at);
}

// split_addr(): the extension of LOCAL (which keeps the user part), or
// nullopt when Postfix would not split this address.
std::optional<std::string> split_extension(std::string& local, const ExpansionContext& c) {
  const std::string& delims = c.recipient_delimiter;
  if (delims.empty()) return std::nullopt;
  if (iequal(local, "postmaster") || iequal(local, "mailer-daemon") || iequal(local, c.double_bounce_sender))
    return std::nullopt;
  if (delims.find('-') != std::string::npos && c.owner_request_special) {
    if (local.size() >= 6 && iequal(std::string_view(local).substr(0, 6), "owner-")) return std::nullopt;
    if (local.size() > 8 && iequal(std::string_view(local).substr(local.size() - 8), "-request")) return std::nullopt;
  }
  size_t len = local.find_first_of(delims);
  if (len == 0 || len == std::string::npos) return std::nullopt;
  std::string ext = local.substr(len + 1);
  local.resize(len);
  return ext;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

std::string fold_address(std::string address, int flags) {
  const bool user = flags & kFoldUser, host = flags & kFoldHost;
  size_t at = address.rfind('@');
  if (user && host) return lower(std::move(address));
  if (user) return at == std::string::npos ? lower(std::move(address)) : lower(address.substr(0, at)) + address.substr(at);
  if (host && at != std::string::npos) return address.substr(0, at + 1) + lower(address.substr(at + 1));
  return address;
}

std::map<std::string, std::string> message_macros(const ipc::proto::DeliverRequest& request,
                                                  const std::string& sender, int flags) {
  std::map<std::string, std::string> m;
  // A non-empty null sender replacement is quoted too.
  m["sender"] = !sender.empty() && (flags & kQuoteLocal) ? deliver::quote_822_local(sender) : sender;
  m["nexthop"] = (flags & kFoldHost) ? lower(request.nexthop) : request.nexthop;
  m["size"] = std::to_string(request.data_size);
  m["client_address"] = request.client_addr;
  m["client_helo"] = request.client_helo;
  m["client_hostname"] = request.client_name;
  m["client_port"] = request.client_port;
  m["client_protocol"] = request.client_proto;
  m["sasl_method"] = request.sasl_method;
  m["sasl_username"] = request.sasl_username;
  m["sasl_sender"] = request.sasl_sender;
  m["queue_id"] = request.queue_id;
  return m;
}

std::optional<std::vector<std::string>> expand_argv(const std::vector<std::string>& command,
                                                    const std::vector<ipc::proto::Recipient>& recipients,
                                                    const ExpansionContext& c) {
  std::vector<std::string> result;
  const int fold = c.flags & kFoldAll;
  for (const std::string& arg : command) {
    std::vector<Piece> pieces;
    if (!parse_pieces(arg, pieces)) return std::nullopt;
    int needs = 0;
    bool known_all = true;
    for (const Piece& p : pieces) {
      if (!p.macro) continue;
      bool known = false;
      for (const MacroName& m : kMacros)
        if (p.text == m.name) known = true, needs |= m.needs;
      if (!known) {
        log::warning("file %s/master.cf: service %s: unknown macro name: \"%s\"", c.config_directory.c_str(),
                     c.service.c_str(), p.text.c_str());
        known_all = false;
      }
    }
    if (!known_all) return std::nullopt;

    auto expand = [&](const std::map<std::string, std::string>& rcpt_values) {
      std::string out;
      for (const Piece& p : pieces) {
        if (!p.macro) {
          out += p.text;
        } else if (auto it = rcpt_values.find(p.text); it != rcpt_values.end()) {
          out += it->second;
        } else if (auto jt = c.message_macros.find(p.text); jt != c.message_macros.end()) {
          out += jt->second;
        }
      }
      return out;
    };
    if (needs == 0) {
      result.push_back(expand({}));
      continue;
    }
    for (const ipc::proto::Recipient& r : recipients) {
      std::map<std::string, std::string> v;
      if (needs & kNeedRcpt) v["recipient"] = morph(r.address, c.flags);
      if (needs & kNeedOrigRcpt) v["original_recipient"] = morph(r.orig_addr, c.flags);
      if (needs & kNeedUser) {
        // An empty user name (e.g. "@host") leaves the argument out.
        std::string user = local_part(morph(r.address, fold), r.address, nullptr);
        split_extension(user, c);
        if (user.empty()) continue;
        v["user"] = user;
      }
      if (needs & kNeedExtension) {
        std::string local = local_part(morph(r.address, fold), r.address, nullptr);
        v["extension"] = split_extension(local, c).value_or("");
      }
      if (needs & kNeedMailbox) v["mailbox"] = local_part(morph(r.address, fold), r.address, nullptr);
      if (needs & kNeedDomain) {
        std::optional<std::string> domain;
        local_part(morph(r.address, fold), r.address, &domain);
        v["domain"] = domain.value_or("");
      }
      result.push_back(expand(v));
    }
  }
  return result;
}

}  // namespace mta::pipe
