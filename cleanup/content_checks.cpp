// content_checks.cpp: see content_checks.hpp.
#include "cleanup/content_checks.hpp"

#include <strings.h>

#include <cctype>

#include "cleanup/cleanup_status.hpp"
#include "log/log.hpp"
#include "mime/mime_state.hpp"

namespace mta::cleanup {
namespace {

namespace cflag = message::cleanup_flag;
namespace cstat = message::cleanup_stat;

bool command_is(std::string_view command, std::string_view name) {
  return command.size() == name.size() && ::strncasecmp(command.data(), name.data(), name.size()) == 0;
}

std::unique_ptr<maps::Maps> open_checks(const config::Config& config, const char* name) {
  std::string spec = config.get(name);
  if (config::split_list(spec).empty()) return nullptr;
  return std::make_unique<maps::Maps>(name, spec);
}

// The length of a DSN code at the start of TEXT ("5.7.1"), followed by a
// blank or the end, else 0 (Postfix's dsn_valid).
size_t dsn_length(std::string_view text) {
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return 0;
  size_t i = 1;
  for (int field = 0; field < 2; ++field) {
    if (i >= text.size() || text[i] != '.') return 0;
    size_t start = ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == start || i - start > 3) return 0;
  }
  if (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) return 0;
  return i;
}

}  // namespace

std::shared_ptr<const ContentCheckTables> ContentCheckTables::from_config(const config::Config& config) {
  auto t = std::make_shared<ContentCheckTables>();
  t->header = open_checks(config, "header_checks");
  t->mime_header = open_checks(config, "mime_header_checks");
  t->nested_header = open_checks(config, "nested_header_checks");
  t->body = open_checks(config, "body_checks");
  t->body_limit = config.get_int("body_checks_size_limit");
  return t;
}

std::string ContentCheckTables::changed_table() const {
  for (const maps::Maps* m : {header.get(), mime_header.get(), nested_header.get(), body.get()}) {
    if (!m) continue;
    for (const maps::DictPtr& d : m->dicts())
      if (d->has_changed()) return d->spec();
  }
  return {};
}

const maps::Maps* ContentCheckTables::for_class(mime::HeaderClass cls) const {
  switch (cls) {
    case mime::HeaderClass::primary: return header.get();
    case mime::HeaderClass::multipart: return mime_header.get();
    case mime::HeaderClass::nested: return nested_header.get();
  }
  return nullptr;
}

CheckAction split_action(std::string_view value) {
  size_t end = value.find_first_of(" \t");
  CheckAction a;
  a.command = std::string(value.substr(0, end));
  if (end != std::string_view::npos) {
    std::string_view rest = value.substr(end);
    while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
    a.text = std::string(rest);
  }
  return a;
}

std::string dsn_prepend(std::string_view default_dsn, std::string_view text) {
  if (dsn_length(text) > 0) return std::string(text);
  return std::string(default_dsn) + " " + std::string(text);
}

std::string act_log_line(const CheckLogFacts& f, std::string_view action, std::string_view context,
                         std::string_view line, std::string_view text) {
  std::string out(f.queue_id);
  out += ": ";
  out += action;
  out += ": ";
  out += context;
  out += " ";
  out += line.substr(0, 200);
  out += " from ";
  out += f.origin;
  out += ";";
  if (f.sender) out += " from=<" + *f.sender + ">";
  if (f.recipient) out += " to=<" + *f.recipient + ">";
  if (f.proto) out += " proto=" + *f.proto;
  if (f.helo) out += " helo=<" + *f.helo + ">";
  if (!text.empty()) {
    out += ": ";
    out += text;
  }
  return out;
}

CheckOutcome act(const CheckLogFacts& facts, CheckTarget t, std::string_view context, std::string_view line,
                 std::string_view value, std::string_view map_class) {
  CheckAction a = split_action(value);
  const std::string& text = a.text;
  std::string mc(map_class);
  auto log_act = [&](std::string_view action, std::string_view what) {
    log::info("%s", act_log_line(facts, action, context, line, what).c_str());
  };
  auto is = [&a](std::string_view name) { return command_is(a.command, name); };
  CheckOutcome out;

  if (is("REJECT")) {
    // A 4.x.x code defers, which also stops a bounce (cleanup_act).
    if (!text.empty()) {
      t.reason = dsn_prepend("5.7.1", text);
      if (t.reason[0] != '4' && t.reason[0] != '5') {
        log::warning("bad DSN action in %s -- need 4.x.x or 5.x.x", text.c_str());
        t.reason[0] = '4';
      }
    } else {
      const message::CleanupStatDetail& d = message::cleanup_stat_detail(cstat::kCont);
      t.reason = std::string(d.dsn) + " " + std::string(d.text);
    }
    t.errs |= t.reason[0] == '4' ? cstat::kDefer : cstat::kCont;
    t.flags &= ~cflag::kFilterAll;
    log_act("reject", t.reason);
    return out;
  }
  if (is("WARN")) {
    log_act("warning", text);
    return out;
  }
  if (is("INFO")) {
    log_act("info", text);
    return out;
  }
  if (is("FILTER")) {
    if (text.empty()) {
      log::warning("missing FILTER command argument in %s map", mc.c_str());
    } else if (text.find(':') == std::string::npos) {
      log::warning("bad FILTER command %s in %s -- need transport:destination", text.c_str(), mc.c_str());
    } else {
      t.filter = text;
      log_act("filter", text);
    }
    return out;
  }
  if (is("PASS")) {
    log_act("pass", text);
    t.flags &= ~cflag::kFilterAll;
    return out;
  }
  if (is("DISCARD")) {
    log_act("discard", text);
    t.flags |= cflag::kDiscard;
    t.flags &= ~cflag::kFilterAll;
    return out;
  }
  if (is("HOLD")) {
    if ((t.flags & (cflag::kHold | cflag::kDiscard)) == 0) {
      log_act("hold", text);
      t.flags |= cflag::kHold;
    }
    return out;
  }
  if (is("PREPEND")) {
    if (text.empty()) {
      log::warning("PREPEND action without text in %s map", mc.c_str());
    } else if (context == "header" && !mime::header_name_length(text)) {
      log::warning("bad PREPEND header text \"%s\" in %s map -- need \"headername: headervalue\"", text.c_str(),
                   mc.c_str());
    } else {
      log_act("prepend", text);
      out.prepend = text;
    }
    return out;
  }
  if (is("REPLACE")) {
    if (text.empty()) {
      log::warning("REPLACE action without text in %s map", mc.c_str());
    } else if (context == "header" && !mime::header_name_length(text)) {
      log::warning("bad REPLACE header text \"%s\" in %s map -- need \"headername: headervalue\"", text.c_str(),
                   mc.c_str());
    } else {
      log_act("replace", text);
      out.kind = CheckOutcome::replace;
      out.replacement = text;
    }
    return out;
  }
  if (is("REDIRECT")) {
    if (text.find('@') == std::string::npos) {
      log::warning("bad REDIRECT target \"%s\" in %s map -- need user@domain", text.c_str(), mc.c_str());
    } else {
      t.redirect = text;
      log_act("redirect", text);
      t.flags &= ~cflag::kFilterAll;
    }
    return out;
  }
  if (is("BCC")) {
    if (text.find('@') == std::string::npos) {
      log::warning("bad BCC address \"%s\" in %s map -- need user@domain", text.c_str(), mc.c_str());
    } else {
      t.bcc.push_back(text);
      log_act("bcc", text);
    }
    return out;
  }
  if (is("STRIP")) {
    log_act("strip", text);
    out.kind = CheckOutcome::drop;
    return out;
  }
  if (is("IGNORE")) {
    out.kind = CheckOutcome::drop;
    return out;
  }
  if (is("DUNNO") || is("OK")) return out;
  log::warning("unknown command in %s map: %s", mc.c_str(), std::string(value).c_str());
  return out;
}

}  // namespace mta::cleanup
