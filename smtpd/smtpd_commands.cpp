// smtpd_commands.cpp: the SMTP commands, with Postfix 3.7's replies (see
// smtpd_session.hpp).
#include <sys/statvfs.h>
#include <sys/time.h>

#include <cctype>
#include <cstdlib>

#include "ipc/flush_client.hpp"
#include "ipc/flush_proto.hpp"
#include "log/log.hpp"
#include "queue/record.hpp"
#include "smtpd/smtp_address.hpp"
#include "smtpd/smtpd_server.hpp"
#include "smtpd/smtpd_session.hpp"

namespace mta::smtpd {

// Postfix's table order, which is also the order of the disconnect
// statistics.
const std::array<Session::Command, Session::kCommandCount> Session::kCommands = {{
    {"HELO", &Session::cmd_helo, kLimit | kPreTls | kLast},
    {"EHLO", &Session::cmd_ehlo, kLimit | kPreTls | kLast},
    {"STARTTLS", &Session::cmd_starttls, kPreTls | kLast},
    {"AUTH", &Session::cmd_auth, 0},
    {"MAIL", &Session::cmd_mail, 0},
    {"RCPT", &Session::cmd_rcpt, 0},
    {"DATA", &Session::cmd_data, kLast},
    {"BDAT", &Session::cmd_bdat, 0},
    {"RSET", &Session::cmd_rset, kLimit},
    {"NOOP", &Session::cmd_noop, kLimit | kPreTls | kLast},
    {"VRFY", &Session::cmd_vrfy, kLimit | kLast},
    {"ETRN", &Session::cmd_etrn, kLimit},
    {"QUIT", &Session::cmd_quit, kPreTls},
}};

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// "NAME=VALUE" -> NAME (upper case) and VALUE.
void split_parameter(std::string_view p, std::string& name, std::string& value, bool& has_value) {
  size_t eq = p.find('=');
  has_value = eq != std::string_view::npos;
  name = std::string(p.substr(0, eq));
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  value = has_value ? std::string(p.substr(eq + 1)) : std::string();
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

Session::Outcome Session::cmd_helo(std::string_view args) { return helo_common(args, false); }
Session::Outcome Session::cmd_ehlo(std::string_view args) { return helo_common(args, true); }

Session::Outcome Session::helo_common(std::string_view args, bool extended) {
  const SmtpdSettings& settings = server_.settings();
  if (args.empty()) {
    reply(extended ? "501 Syntax: EHLO hostname" : "501 Syntax: HELO hostname");
    return Outcome::failed;
  }
  // HELO/EHLO starts over (RFC 5321 4.1.4), as in Postfix even the first.
  reset_transaction();
  std::string previous_helo = facts_.helo;
  facts_.helo = std::string(args);
  helo_verb_ = extended ? "EHLO" : "HELO";
  std::string previous_command = facts_.helo_command;
  facts_.helo_command = helo_verb_;
  if (auto refusal = policy(&Checker::check_helo)) {
    facts_.helo = previous_helo;
    facts_.helo_command = previous_command;
    reply(*refusal);
    return Outcome::failed;
  }
  helo_seen_ = true;
  ehlo_seen_ = extended;
  // RFC 3848 protocol names: ESMTP, plus S with TLS and A after AUTH.
  facts_.protocol = extended ? std::string("ESMTP") + (tls_active_ ? "S" : "") +
                                   (facts_.sasl_username.empty() ? "" : "A")
                             : "SMTP";
  if (!extended) {
    reply("250 " + settings.myhostname);
    return Outcome::ok;
  }
  std::vector<std::string> lines;
  lines.push_back(settings.myhostname);
  auto offer = [&](const std::string& keyword) {
    std::string name = keyword.substr(0, keyword.find(' '));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string& d : settings.discard_ehlo_keywords)
      if (d == name) return;
    lines.push_back(keyword);
  };
  offer("PIPELINING");
  offer(settings.message_size_limit > 0 ? "SIZE " + std::to_string(settings.message_size_limit) : "SIZE");
  if (!settings.disable_vrfy) offer("VRFY");
  offer("ETRN");
  if (server_.verp_client(facts_)) offer("XVERP");
  if (server_.tls_offered() && !tls_active_ && !server_.tls_wrapper_mode()) offer("STARTTLS");
  if (sasl::ServerSession* sasl = sasl_session(); sasl && (!settings.tls_auth_only || tls_active_)) {
    std::string mechs = sasl->mechanisms();
    if (!mechs.empty()) {
      offer("AUTH " + mechs);
      if (settings.broken_sasl_auth_clients) offer("AUTH=" + mechs);
    }
  }
  offer("ENHANCEDSTATUSCODES");
  offer("8BITMIME");
  offer("DSN");
  if (settings.smtputf8_enable) offer("SMTPUTF8");
  offer("CHUNKING");
  for (size_t i = 0; i < lines.size(); ++i) reply((i + 1 < lines.size() ? "250-" : "250 ") + lines[i]);
  return Outcome::ok;
}


Session::Outcome Session::cmd_mail(std::string_view args) {
  const SmtpdSettings& settings = server_.settings();
  if (!helo_seen_ && settings.helo_required) {
    reply("503 5.5.1 Error: send HELO/EHLO first");
    return Outcome::failed;
  }
  if (bdat_active_) {
    reply("503 5.5.1 Error: MAIL after BDAT");
    return Outcome::failed;
  }
  if (tx_active_) {
    reply("503 5.5.1 Error: nested MAIL command");
    return Outcome::failed;
  }
  PathArgument path = parse_path_argument(args, "FROM", settings.strict_rfc821_envelopes);
  if (path.error == PathArgument::Error::syntax) {
    reply("501 5.5.4 Syntax: MAIL FROM:<address>");
    return Outcome::failed;
  }
  if (path.error == PathArgument::Error::bad_address) {
    if (path.illegal)
      log::warning("Illegal address syntax from %s in MAIL command: %s", namaddr_.c_str(), path.bracketed.c_str());
    reply("501 5.1.7 Bad sender address syntax");
    return Outcome::failed;
  }
  std::string ret, envid, body, verp;
  long long size = 0;
  bool smtputf8 = false;
  for (const std::string& p : path.parameters) {
    std::string name, value;
    bool has_value = false;
    split_parameter(p, name, value, has_value);
    if (name == "SIZE" && has_value) {
      if (!all_digits(value)) {
        reply("501 5.5.4 Bad message size syntax");
        return Outcome::failed;
      }
      size = std::strtoll(value.c_str(), nullptr, 10);
    } else if (name == "BODY" && has_value && (iequals(value, "8BITMIME") || iequals(value, "7BIT"))) {
      body = value;
    } else if (name == "RET" && has_value) {
      if (!ret.empty() || (!iequals(value, "FULL") && !iequals(value, "HDRS"))) {
        reply("501 5.5.4 Bad RET parameter syntax");
        return Outcome::failed;
      }
      ret = value;
    } else if (name == "ENVID" && has_value) {
      auto decoded = xtext_decode(value);
      if (!envid.empty() || !decoded || decoded->empty()) {
        reply("501 5.5.4 Bad ENVID parameter syntax");
        return Outcome::failed;
      }
      envid = *decoded;
    } else if (name == "AUTH" && has_value) {
      if (!xtext_valid(value)) {
        reply("501 5.5.4 Bad AUTH parameter syntax");
        return Outcome::failed;
      }
    } else if (name == "SMTPUTF8" && !has_value && settings.smtputf8_enable) {
      smtputf8 = true;
    } else if (name == "XVERP" && server_.verp_client(facts_)) {
      // XVERP or XVERP=xy, two characters of verp_delimiter_filter.
      verp = has_value ? value : server_.default_verp_delimiters();
      if (has_value && (verp.size() != 2 ||
                        server_.verp_delimiter_filter().find(verp[0]) == std::string::npos ||
                        server_.verp_delimiter_filter().find(verp[1]) == std::string::npos)) {
        reply("501 5.5.4 Error: XVERP needs two characters from " + server_.verp_delimiter_filter());
        return Outcome::failed;
      }
    } else {
      reply("555 5.5.4 Unsupported option: " + p);
      return Outcome::failed;
    }
  }
  if (path.eight_bit && !smtputf8) {
    reply("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
    return Outcome::failed;
  }
  if (!verp.empty() && path.internal.empty()) {
    reply("503 5.5.4 Error: XVERP requires non-null sender");
    return Outcome::failed;
  }
  if (settings.message_size_limit > 0 && size > settings.message_size_limit) {
    log::info("NOQUEUE: reject: MAIL from %s: 552 5.3.4 Message size exceeds fixed limit; from=<%s> proto=%s "
              "helo=<%s>",
              namaddr_.c_str(), path.internal.c_str(), facts_.protocol.c_str(), facts_.helo.c_str());
    reply("552 5.3.4 Message size exceeds fixed limit");
    return Outcome::failed;
  }
  // Room in the queue file system for this message and queue_minfree
  // (Postfix: 1.5 times the announced size).
  struct statvfs fs {};
  if (::statvfs(settings.queue_directory.c_str(), &fs) == 0) {
    long double space = static_cast<long double>(fs.f_bavail) * fs.f_frsize;
    long double need = static_cast<long double>(server_.queue_minfree()) + 1.5L * static_cast<long double>(size);
    if (space < need) {
      log::warning("not enough free space in mail queue: %.0Lf bytes < 1.5*message size limit", space);
      reply("452 4.3.1 Insufficient system storage");
      return Outcome::failed;
    }
  }
  int rate = 0;
  if (anvil_ && settings.message_rate_limit > 0 &&
      anvil_->message(settings.service_name, facts_.client_addr, rate) && rate > settings.message_rate_limit) {
    log::warning("Message delivery request rate limit exceeded: %d from %s for service %s", rate,
                 namaddr_.c_str(), settings.service_name.c_str());
    reply("450 4.7.1 Error: too much mail from " + facts_.client_addr);
    return Outcome::failed;
  }
  facts_.have_sender = true;
  facts_.sender = path.internal;
  facts_.message_size = size;
  if (auto refusal = policy(&Checker::check_mail)) {
    facts_.have_sender = false;
    facts_.sender.clear();
    reply(*refusal);
    return Outcome::failed;
  }
  tx_active_ = true;
  ret_ = ret;
  envid_ = envid;
  verp_ = verp;
  body_ = body;
  smtputf8_ = smtputf8;
  declared_size_ = size;
  ::gettimeofday(&arrival_, nullptr);
  if (!settings.delay_open_until_valid_rcpt && !open_cleanup()) {
    reset_transaction();
    reply("451 4.3.0 Error: queue file write error");
    return Outcome::failed;
  }
  reply("250 2.1.0 Ok");
  return Outcome::ok;
}

Session::Outcome Session::cmd_rcpt(std::string_view args) {
  const SmtpdSettings& settings = server_.settings();
  if (!tx_active_) {
    reply("503 5.5.1 Error: need MAIL command");
    return Outcome::failed;
  }
  if (bdat_active_) {
    reply("503 5.5.1 Error: RCPT after BDAT");
    return Outcome::failed;
  }
  PathArgument path = parse_path_argument(args, "TO", settings.strict_rfc821_envelopes);
  if (path.error == PathArgument::Error::syntax) {
    reply("501 5.5.4 Syntax: RCPT TO:<address>");
    return Outcome::failed;
  }
  if (path.error == PathArgument::Error::bad_address || path.internal.empty()) {
    if (path.illegal || (path.error == PathArgument::Error::none && path.internal.empty()))
      log::warning("Illegal address syntax from %s in RCPT command: %s", namaddr_.c_str(), path.bracketed.c_str());
    reply("501 5.1.3 Bad recipient address syntax");
    return Outcome::failed;
  }
  if (settings.recipient_limit > 0 && static_cast<long long>(recipients_.size()) >= settings.recipient_limit) {
    // Past the overshoot limit a client that keeps trying is making errors.
    reply("452 4.5.3 Error: too many recipients");
    return rcpt_total_++ < settings.recipient_overshoot_limit ? Outcome::ok : Outcome::failed;
  }
  int notify = 0;
  std::string orcpt;
  for (const std::string& p : path.parameters) {
    std::string name, value;
    bool has_value = false;
    split_parameter(p, name, value, has_value);
    if (name == "NOTIFY" && has_value && notify == 0) {
      // DSN_NOTIFY_NEVER 1, SUCCESS 2, FAILURE 4, DELAY 8.
      size_t pos = 0;
      bool bad = false;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        std::string word = value.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        int bit = iequals(word, "NEVER") ? 1 : iequals(word, "SUCCESS") ? 2 : iequals(word, "FAILURE") ? 4
                  : iequals(word, "DELAY") ? 8 : 0;
        if (bit == 0 || (notify & bit)) bad = true;
        notify |= bit;
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
      if (bad || ((notify & 1) && notify != 1)) {
        reply("501 5.5.4 Error: Bad NOTIFY parameter syntax");
        return Outcome::failed;
      }
    } else if (name == "ORCPT" && has_value && orcpt.empty()) {
      size_t semi = value.find(';');
      auto decoded = semi == std::string::npos ? std::nullopt : xtext_decode(value.substr(semi + 1));
      if (!decoded || semi == 0 || decoded->empty()) {
        reply("501 5.5.4 Error: Bad ORCPT parameter syntax");
        return Outcome::failed;
      }
      orcpt = value.substr(0, semi) + ";" + *decoded;
    } else {
      reply("555 5.5.4 Unsupported option: " + p);
      return Outcome::failed;
    }
  }
  if (path.eight_bit && !smtputf8_) {
    reply("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
    return Outcome::failed;
  }
  int rate = 0;
  if (anvil_ && settings.recipient_rate_limit > 0 &&
      anvil_->recipient(settings.service_name, facts_.client_addr, rate) && rate > settings.recipient_rate_limit) {
    log::warning("Recipient address rate limit exceeded: %d from %s for service %s", rate, namaddr_.c_str(),
                 settings.service_name.c_str());
    reply("450 4.7.1 Error: too many recipients from " + facts_.client_addr);
    return Outcome::failed;
  }
  facts_.recipient = path.internal;
  facts_.recipient_count = static_cast<int>(recipients_.size());
  if (auto refusal = policy(&Checker::check_rcpt)) {
    facts_.recipient.clear();
    reply(*refusal);
    return Outcome::failed;
  }
  if (orcpt.empty()) orcpt = "rfc822;" + path.given;
  if (!cleanup_ && !server_.stand_alone()) {
    open_cleanup_for({path.internal, path.given, notify, orcpt});
    return Outcome::pending;
  }
  if (!cleanup_ && !open_cleanup()) {
    reply("451 4.3.0 Error: queue file write error");
    return Outcome::failed;
  }
  write_recipient(path.internal, path.given, notify, orcpt);
  recipients_.push_back(path.internal);
  facts_.recipient.clear();
  reply("250 2.1.5 Ok");
  return Outcome::ok;
}

Session::Outcome Session::cmd_rset(std::string_view args) {
  if (!args.empty()) {
    reply("501 5.5.4 Syntax: RSET");
    return Outcome::failed;
  }
  reset_transaction();
  reply("250 2.0.0 Ok");
  return Outcome::ok;
}

Session::Outcome Session::cmd_noop(std::string_view) {
  reply("250 2.0.0 Ok");
  return Outcome::ok;
}

Session::Outcome Session::cmd_vrfy(std::string_view args) {
  if (server_.settings().disable_vrfy) {
    reply("502 5.5.1 VRFY command is disabled");
    return Outcome::failed;
  }
  if (tx_active_) {
    reply("503 5.5.1 Error: MAIL transaction in progress");
    return Outcome::failed;
  }
  if (args.empty()) {
    reply("501 5.5.4 Syntax: VRFY address [SMTPUTF8]");
    return Outcome::failed;
  }
  std::string addr(args);
  if (addr.size() >= 2 && addr.front() == '<' && addr.back() == '>') addr = addr.substr(1, addr.size() - 2);
  PathArgument path = parse_path_argument("TO:<" + addr + ">", "TO", false);
  if (path.error != PathArgument::Error::none || path.internal.empty()) {
    reply("501 5.1.3 Bad recipient address syntax");
    return Outcome::failed;
  }
  facts_.recipient = path.internal;
  auto refusal = policy(&Checker::check_vrfy);
  facts_.recipient.clear();
  if (refusal) {
    reply(*refusal);
    return Outcome::failed;
  }
  reply("252 2.0.0 " + std::string(args));
  return Outcome::ok;
}

Session::Outcome Session::cmd_etrn(std::string_view args) {
  if (!helo_seen_ && server_.settings().helo_required) {
    reply("503 Error: send HELO/EHLO first");
    return Outcome::failed;
  }
  if (tx_active_) {
    reply("503 Error: MAIL transaction in progress");
    return Outcome::failed;
  }
  if (args.empty() || args.find(' ') != std::string_view::npos) {
    reply("500 Syntax: ETRN domain");
    return Outcome::failed;
  }
  std::string domain(args);
  if (domain[0] == '@' || domain[0] == '#') domain.erase(0, 1);
  facts_.etrn_domain = domain;
  auto refusal = policy(&Checker::check_etrn);
  if (refusal) {
    reply(*refusal);
    return Outcome::failed;
  }
  // The flush service moves the site's deferred mail back to qmgr; a site
  // outside fast_flush_domains is refused without asking it.
  const ipc::FlushClient* flush = server_.flush();
  switch (flush ? flush->send_site(domain) : ipc::flush_proto::kStatDeny) {
    case ipc::flush_proto::kStatOk:
      reply("250 Queuing started");
      return Outcome::ok;
    case ipc::flush_proto::kStatDeny:
      log::warning("reject: ETRN %.100s... from %s", domain.c_str(), namaddr_.c_str());
      reply("459 <" + domain + ">: service unavailable");
      return Outcome::failed;
    case ipc::flush_proto::kStatBad:
      log::warning("bad ETRN %.100s... from %s", domain.c_str(), namaddr_.c_str());
      reply("458 Unable to queue messages");
      return Outcome::failed;
    default:
      log::warning("unable to talk to fast flush service");
      reply("458 Unable to queue messages");
      return Outcome::failed;
  }
}

Session::Outcome Session::cmd_quit(std::string_view) {
  reply("221 2.0.0 Bye");
  close_after_output();
  return Outcome::ok;
}

}  // namespace mta::smtpd
