// bounce_template.hpp: the texts of delivery status notifications, as
// Postfix 3.7's bounce(5) templates: four classes (failure, delay, success,
// verify), each with pseudo headers (Charset, From, Subject, and for
// failure and delay Postmaster-Subject), a blank line, and message text in
// which $name, ${name} and $(name) expand to main.cf parameters.  The
// parameters delay_warning_time and maximal_queue_lifetime also take a
// unit suffix: $delay_warning_time_hours, $maximal_queue_lifetime_days
// (_seconds, _minutes, _hours, _days, _weeks).
//
// bounce_template_file names a file that replaces some of them, in the
// format that `postconf -b` prints:
//
//   failure_template = <<EOF
//   Charset: us-ascii
//   ...
//   EOF
//
// A template that is not usable (unknown or empty header, 8-bit text with
// charset us-ascii, no text) is ignored with Postfix's warning and the
// built-in one stays.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace mta::bounce {

enum class TemplateClass { failure, delay, success, verify };

struct Template {
  TemplateClass klass = TemplateClass::failure;
  std::string origin = "[built-in]";  // or the file it came from
  std::string charset = "us-ascii";
  std::string mime_encoding = "7bit";  // "8bit" when the text is not ASCII
  std::string from;
  std::string subject;
  std::optional<std::string> postmaster_subject;  // failure and delay only
  std::vector<std::string> text;                   // unexpanded lines
};

const char* class_name(TemplateClass klass);

struct Templates {
  Template failure, delay, success, verify;
  Template& get(TemplateClass klass);
  const Template& get(TemplateClass klass) const;
};

// The built-in templates of Postfix 3.7.
Templates default_templates();

// Replaces templates from a file's text (see above).  Problems that Postfix
// treats as fatal (a line that is not name = value, a bad end marker)
// return false with a message; problems with one template are WARNINGS and
// leave that template alone.
bool load_templates(std::string_view file_text, std::string_view origin, Templates& templates,
                    std::vector<std::string>* warnings, std::string* error);
// Reads bounce_template_file (when set) into TEMPLATES.
bool load_template_file(const std::string& path, Templates& templates, std::vector<std::string>* warnings,
                        std::string* error);

// The template's text with $name expanded from CONFIG.  False with
// Postfix's message for an undefined name or a bad time suffix; WARNINGS
// get the notes about time values that round badly.
bool expand_template_text(const Template& tmpl, const config::Config& config, std::vector<std::string>* lines,
                          std::vector<std::string>* warnings, std::string* error);

// What `postconf -b` shows: the templates as a file in the format above.
std::string dump_templates(const Templates& templates);

}  // namespace mta::bounce
