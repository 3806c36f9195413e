// bounce_template.cpp: see bounce_template.hpp.
#include "bounce/bounce_template.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "bounce/rfc822_text.hpp"
#include "config/expand.hpp"
#include "queue/record.hpp"

namespace mta::bounce {
namespace {

// The built-in templates, in the form postconf -b prints them.
constexpr std::string_view kFailure =
    "Charset: us-ascii\n"
    "From: Mail Delivery System <MAILER-DAEMON>\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "Postmaster-Subject: Postmaster Copy: Undelivered Mail\n"
    "\n"
    "This is the mail system at host $myhostname.\n"
    "\n"
    "I'm sorry to have to inform you that your message could not\n"
    "be delivered to one or more recipients. It's attached below.\n"
    "\n"
    "For further assistance, please send mail to postmaster.\n"
    "\n"
    "If you do so, please include this problem report. You can\n"
    "delete your own text from the attached returned message.\n"
    "\n"
    "                   The mail system";

constexpr std::string_view kDelay =
    "Charset: us-ascii\n"
    "From: Mail Delivery System <MAILER-DAEMON>\n"
    "Subject: Delayed Mail (still being retried)\n"
    "Postmaster-Subject: Postmaster Warning: Delayed Mail\n"
    "\n"
    "This is the mail system at host $myhostname.\n"
    "\n"
    "####################################################################\n"
    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
    "####################################################################\n"
    "\n"
    "Your message could not be delivered for more than $delay_warning_time_hours hour(s).\n"
    "It will be retried until it is $maximal_queue_lifetime_days day(s) old.\n"
    "\n"
    "For further assistance, please send mail to postmaster.\n"
    "\n"
    "If you do so, please include this problem report. You can\n"
    "delete your own text from the attached returned message.\n"
    "\n"
    "                   The mail system";

constexpr std::string_view kSuccess =
    "Charset: us-ascii\n"
    "From: Mail Delivery System <MAILER-DAEMON>\n"
    "Subject: Successful Mail Delivery Report\n"
    "\n"
    "This is the mail system at host $myhostname.\n"
    "\n"
    "Your message was successfully delivered to the destination(s)\n"
    "listed below. If the message was delivered to mailbox you will\n"
    "receive no further notifications. Otherwise you may still receive\n"
    "notifications of mail delivery errors from other systems.\n"
    "\n"
    "                   The mail system";

constexpr std::string_view kVerify =
    "Charset: us-ascii\n"
    "From: Mail Delivery System <MAILER-DAEMON>\n"
    "Subject: Mail Delivery Status Report\n"
    "\n"
    "This is the mail system at host $myhostname.\n"
    "\n"
    "Enclosed is the mail delivery report that you requested.\n"
    "\n"
    "                   The mail system";

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 128) return false;
  return true;
}

bool all_space(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\v' && c != '\f') return false;
  return true;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  for (;;) {
    size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return lines;
}

// Parses template text into TMPL (whose class and defaults are set).  On
// a problem, the warning and false; TMPL is then unchanged.
bool parse_template(std::string_view text, std::string_view origin, Template& tmpl, std::string* warning) {
  Template t = tmpl;
  t.origin = std::string(origin);
  const char* klass = class_name(t.klass);
  std::vector<std::string_view> lines = split_lines(text);
  size_t i = 0;
  for (; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t hlen = header_name_length(line);
    if (hlen == 0) break;
    std::string label(line.substr(0, hlen));
    size_t v = hlen;
    while (v < line.size() && (line[v] == ':' || line[v] == ' ' || line[v] == '\t')) ++v;
    std::string value(line.substr(v));
    auto bad = [&](const std::string& what) {
      *warning = std::string(origin) + ": " + what + " \"" + label + "\" header" +
                 (what.rfind("empty", 0) == 0 || what.rfind("non-ASCII", 0) == 0 ? " value" : " label") + " in " +
                 klass + " template -- ignoring this template";
      return false;
    };
    if (value.empty()) return bad("empty");
    if (!all_ascii(value)) return bad("non-ASCII");
    if (equal_ignore_case(label, "charset")) {
      t.charset = value;
    } else if (equal_ignore_case(label, "from")) {
      t.from = value;
    } else if (equal_ignore_case(label, "subject")) {
      t.subject = value;
    } else if (equal_ignore_case(label, "postmaster-subject")) {
      if (!t.postmaster_subject) return bad("inapplicable");
      t.postmaster_subject = value;
    } else {
      return bad("unknown");
    }
  }
  while (i < lines.size() && all_space(lines[i])) ++i;
  if (i >= lines.size()) {
    *warning = std::string(origin) + ": missing message text in " + klass + " template -- ignoring this template";
    return false;
  }
  t.text.clear();
  bool ascii = true;
  for (; i < lines.size(); ++i) {
    ascii = ascii && all_ascii(lines[i]);
    t.text.emplace_back(lines[i]);
  }
  if (!ascii) {
    if (equal_ignore_case(t.charset, "us-ascii")) {
      *warning = std::string(origin) + ": 8-bit message text in " + klass +
                 " template; please specify a charset value other than us-ascii -- ignoring this template for now";
      return false;
    }
    t.mime_encoding = "8bit";
  }
  tmpl = std::move(t);
  return true;
}

Template builtin(TemplateClass klass, std::string_view text, bool has_postmaster_subject) {
  Template t;
  t.klass = klass;
  if (has_postmaster_subject) t.postmaster_subject = "";
  std::string warning;
  parse_template(text, "[built-in]", t, &warning);
  return t;
}

// main.cf values for template expansion, plus the time parameters with a
// unit suffix.  Values are filtered as Postfix does: bytes other than
// printable ASCII and tab become '_'.
class TemplateMacros : public config::MacroSource {
 public:
  TemplateMacros(const config::Config& config, const Template& tmpl) : config_(config), tmpl_(tmpl) {}

  std::optional<std::string> lookup(std::string_view name) const override {
    // The expander may ask twice for one name: compute (and warn) once.
    auto cached = cache_.find(name);
    if (cached != cache_.end()) return cached->second;
    std::optional<std::string> value = compute(name);
    cache_.emplace(std::string(name), value);
    return value;
  }
  void undefined(std::string_view) const override { undefined_ = true; }

  mutable std::string error_;
  mutable bool undefined_ = false;
  mutable std::vector<std::string> warnings_;

 private:
  std::optional<std::string> compute(std::string_view name) const {
    static constexpr struct {
      std::string_view name;
      char unit;
    } kTimeParams[] = {{"delay_warning_time", 'h'}, {"maximal_queue_lifetime", 'd'}};
    static constexpr struct {
      std::string_view suffix;
      long divisor;
    } kDivisors[] = {{"seconds", 1}, {"minutes", 60}, {"hours", 3600}, {"days", 86400}, {"weeks", 604800}};
    for (const auto& p : kTimeParams) {
      if (name.size() <= p.name.size() + 1 || name.substr(0, p.name.size()) != p.name || name[p.name.size()] != '_')
        continue;
      std::string_view suffix = name.substr(p.name.size() + 1);
      long seconds = 0;
      try {
        seconds = static_cast<long>(config_.get_time(p.name, p.unit));
      } catch (const config::ConfigError& e) {
        if (error_.empty()) error_ = e.what();
        return "0";
      }
      for (const auto& d : kDivisors) {
        if (suffix != d.suffix) continue;
        long result = seconds / d.divisor;
        const char* klass = class_name(tmpl_.klass);
        std::string key(name);
        if (result > 999 && d.divisor < 86400) {
          warnings_.push_back(tmpl_.origin + ": excessive result \"" + std::to_string(result) + "\" in " + klass +
                              " template conversion of parameter \"" + key + "\"");
          warnings_.push_back("please increase time unit \"" + std::string(suffix) + "\" of \"" + key + "\" in " +
                              klass + " template");
          warnings_.push_back("for instructions see the bounce(5) manual");
        } else if (result == 0 && seconds != 0 && d.divisor > 1) {
          warnings_.push_back(tmpl_.origin + ": zero result in " + klass + " template conversion of parameter \"" +
                              key + "\"");
          warnings_.push_back("please reduce time unit \"" + std::string(suffix) + "\" of \"" + key + "\" in " +
                              klass + " template");
          warnings_.push_back("for instructions see the bounce(5) manual");
        }
        return std::to_string(result);
      }
      if (error_.empty())
        error_ = tmpl_.origin + ": unrecognized suffix \"" + std::string(suffix) + "\" in parameter \"" +
                 std::string(name) + "\"";
      return "0";
    }
    std::optional<std::string> raw = config_.lookup(name);
    if (raw)
      for (char& c : *raw) {
        auto ch = static_cast<unsigned char>(c);
        if (c != '\t' && (ch < 32 || ch >= 127)) c = '_';
      }
    return raw;
  }

  const config::Config& config_;
  mutable std::map<std::string, std::optional<std::string>, std::less<>> cache_;
  const Template& tmpl_;
};

}  // namespace

const char* class_name(TemplateClass klass) {
  switch (klass) {
    case TemplateClass::failure: return "failure";
    case TemplateClass::delay: return "delay";
    case TemplateClass::success: return "success";
    case TemplateClass::verify: return "verify";
  }
  return "?";
}

Template& Templates::get(TemplateClass klass) {
  switch (klass) {
    case TemplateClass::failure: return failure;
    case TemplateClass::delay: return delay;
    case TemplateClass::success: return success;
    case TemplateClass::verify: break;
  }
  return verify;
}

const Template& Templates::get(TemplateClass klass) const { return const_cast<Templates*>(this)->get(klass); }

Templates default_templates() {
  Templates t;
  t.failure = builtin(TemplateClass::failure, kFailure, true);
  t.delay = builtin(TemplateClass::delay, kDelay, true);
  t.success = builtin(TemplateClass::success, kSuccess, false);
  t.verify = builtin(TemplateClass::verify, kVerify, false);
  return t;
}

bool load_templates(std::string_view file_text, std::string_view origin, Templates& templates,
                    std::vector<std::string>* warnings, std::string* error) {
  std::vector<std::string_view> lines = split_lines(file_text);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline
  const std::string where(origin);
  for (size_t i = 0; i < lines.size(); ++i) {
    int lineno = static_cast<int>(i) + 2;  // Postfix counts from 2 here
    std::string_view line = lines[i];
    std::string_view body = line;
    while (!body.empty() && std::string_view(" \t\n\v\f\r").find(body.front()) != std::string_view::npos)
      body.remove_prefix(1);
    if (body.empty() || body.front() == '#') continue;
    std::string_view name, value;
    if (!queue::split_attribute(line, &name, &value)) {
      *error = where + ", line " + std::to_string(lineno) + ": missing '=' after attribute name: \"" +
               std::string(line) + "\"";
      return false;
    }
    std::string member(name);
    std::string text(value);
    if (value.size() >= 2 && value[0] == '<' && value[1] == '<') {
      std::string_view marker = value.substr(2);
      while (!marker.empty() && (marker.front() == ' ' || marker.front() == '\t')) marker.remove_prefix(1);
      if (marker.empty()) {
        *error = where + ", line " + std::to_string(lineno) + ": missing end marker after <<";
        return false;
      }
      char m = marker.front();
      if (!((m >= 'a' && m <= 'z') || (m >= 'A' && m <= 'Z') || (m >= '0' && m <= '9'))) {
        *error = where + ", line " + std::to_string(lineno) + ": malformed end marker after <<";
        return false;
      }
      text.clear();
      bool ended = false;
      while (++i < lines.size()) {
        ++lineno;
        if (lines[i] == marker) {
          ended = true;
          break;
        }
        if (!text.empty()) text += '\n';
        text.append(lines[i]);
      }
      if (!ended)
        warnings->push_back(where + ", line " + std::to_string(lineno) + ": missing \"" + std::string(marker) +
                            "\" end marker");
    }
    bool known = false;
    for (TemplateClass k : {TemplateClass::failure, TemplateClass::delay, TemplateClass::success,
                            TemplateClass::verify}) {
      if (member != std::string(class_name(k)) + "_template") continue;
      known = true;
      std::string warning;
      Template fresh = default_templates().get(k);
      if (parse_template(text, origin, fresh, &warning))
        templates.get(k) = std::move(fresh);
      else
        warnings->push_back(warning);
    }
    if (!known)
      warnings->push_back(where + ", line " + std::to_string(lineno) + ": unknown template name: " + member +
                          " -- ignoring this template");
  }
  return true;
}

bool load_template_file(const std::string& path, Templates& templates, std::vector<std::string>* warnings,
                        std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "open " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_templates(text.str(), path, templates, warnings, error);
}

bool expand_template_text(const Template& tmpl, const config::Config& config, std::vector<std::string>* lines,
                          std::vector<std::string>* warnings, std::string* error) {
  lines->clear();
  for (const std::string& line : tmpl.text) {
    TemplateMacros macros(config, tmpl);
    std::string out;
    try {
      out = config::expand(line, macros);
    } catch (const config::ExpandError&) {
      *error = tmpl.origin + ": bad $name syntax in " + class_name(tmpl.klass) + " template: " + line;
      return false;
    }
    if (warnings) warnings->insert(warnings->end(), macros.warnings_.begin(), macros.warnings_.end());
    if (!macros.error_.empty()) {
      *error = macros.error_;
      return false;
    }
    if (macros.undefined_) {
      *error = tmpl.origin + ": undefined $name in " + class_name(tmpl.klass) + " template: " + line;
      return false;
    }
    lines->push_back(std::move(out));
  }
  return true;
}

std::string dump_templates(const Templates& templates) {
  std::string out;
  bool first = true;
  for (TemplateClass k : {TemplateClass::failure, TemplateClass::delay, TemplateClass::success,
                          TemplateClass::verify}) {
    const Template& t = templates.get(k);
    if (!first) out += "\n";
    first = false;
    out += std::string(class_name(k)) + "_template = <<EOF\n";
    out += "Charset: " + t.charset + "\n";
    out += "From: " + t.from + "\n";
    out += "Subject: " + t.subject + "\n";
    if (t.postmaster_subject) out += "Postmaster-Subject: " + *t.postmaster_subject + "\n";
    out += "\n";
    for (const std::string& line : t.text) out += line + "\n";
    out += "EOF\n";
  }
  return out;
}

}  // namespace mta::bounce
