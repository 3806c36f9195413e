// pipe_attributes.cpp: see pipe_attributes.hpp.
#include "pipe/pipe_attributes.hpp"

#include <grp.h>
#include <pwd.h>
#include <strings.h>

#include <climits>

#include "deliver/mail_copy.hpp"
#include "deliver/pipe_command.hpp"

namespace mta::pipe {
namespace {

// "name=" at the start of WORD, in any case: the value after it.
bool attribute(const std::string& word, std::string_view name, std::string* value) {
  if (word.size() < name.size() || ::strncasecmp(word.c_str(), name.data(), name.size()) != 0) return false;
  *value = word.substr(name.size());
  return true;
}

int flag_bits(char c) {
  namespace d = mta::deliver;
  switch (c) {
    case 'B': return d::kCopyBlank;
    case 'D': return d::kCopyDelivered;
    case 'F': return d::kCopyFrom;
    case 'O': return d::kCopyOrigRcpt;
    case 'R': return d::kCopyReturnPath;
    case 'X': return kFinalDelivery;
    case '.': return d::kCopyDot;
    case '>': return d::kCopyQuote;
    case 'h': return kFoldHost;
    case 'q': return kQuoteLocal;
    case 'u': return kFoldUser;
    default: return 0;
  }
}

// off_cvt_string(): decimal digits only; -1 for anything else or overflow.
long long size_value(const std::string& text) {
  long long n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return -1;
    if (n > (LLONG_MAX - (c - '0')) / 10) return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

std::string unescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == text.size()) break;  // a lone backslash at the end is dropped
    c = text[i];
    switch (c) {
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case '\\': out += '\\'; break;
      default:
        if (c >= '0' && c <= '7') {
          int v = 0, digits = 0;
          while (digits < 3 && i < text.size() && text[i] >= '0' && text[i] <= '7') {
            v = v * 8 + (text[i] - '0');
            ++i, ++digits;
          }
          --i;
          out += static_cast<char>(v);
        } else {
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

PipeAttributes parse_attributes(const std::vector<std::string>& words, const ForbiddenIds& forbidden) {
  PipeAttributes attr;
  bool have_user = false, have_command = false;
  std::string value;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (attribute(w, "flags=", &value)) {
      for (char c : value) {
        int bits = flag_bits(c);
        if (bits == 0) throw AttributeError(std::string("unknown flag: ") + c + " (ignored)");
        attr.flags |= bits;
      }
    } else if (attribute(w, "user=", &value)) {
      std::string user = value, group;
      size_t colon = user.find(':');
      if (colon != std::string::npos) {
        group = user.substr(colon + 1);
        user.resize(colon);
      }
      const passwd* pw = ::getpwnam(user.c_str());
      if (!pw) throw AttributeError("get_service_attr: unknown username: " + user);
      attr.uid = pw->pw_uid;
      attr.gid = pw->pw_gid;
      if (!group.empty()) {
        const struct group* gr = ::getgrnam(group.c_str());
        if (!gr) throw AttributeError("get_service_attr: unknown group: " + group);
        attr.gid = gr->gr_gid;
      }
      have_user = true;
    } else if (attribute(w, "directory=", &value)) {
      attr.exec_dir = value;
    } else if (attribute(w, "chroot=", &value)) {
      attr.chroot_dir = value;
    } else if (attribute(w, "eol=", &value)) {
      attr.eol = unescape(value);
    } else if (attribute(w, "null_sender=", &value)) {
      attr.null_sender = value;
    } else if (attribute(w, "size=", &value)) {
      attr.size_limit = size_value(value);
      if (attr.size_limit < 0) throw AttributeError("get_service_attr: bad size= value: " + value);
    } else if (attribute(w, "argv=", &value)) {
      attr.command.push_back(value);
      attr.command.insert(attr.command.end(), words.begin() + static_cast<long>(i) + 1, words.end());
      have_command = true;
      break;
    } else {
      throw AttributeError("unknown attribute name: " + w);
    }
  }
  if (!have_user) throw AttributeError("missing user= command-line attribute");
  if (!have_command) throw AttributeError("missing argv= command-line attribute");
  if (attr.uid == 0) throw AttributeError("user= command-line attribute specifies root privileges");
  if (attr.uid == forbidden.owner_uid)
    throw AttributeError("user= command-line attribute specifies mail system owner " + forbidden.mail_owner);
  if (attr.gid == 0) throw AttributeError("user= command-line attribute specifies privileged group id 0");
  if (attr.gid == forbidden.owner_gid)
    throw AttributeError("user= command-line attribute specifies mail system owner " + forbidden.mail_owner +
                         " group id " + std::to_string(attr.gid));
  if (attr.gid == forbidden.setgid_gid)
    throw AttributeError("user= command-line attribute specifies mail system " + forbidden.setgid_group +
                         " group id " + std::to_string(attr.gid));
  return attr;
}

}  // namespace mta::pipe
