// local_agent.cpp: the inner nodes of the delivery graph (recipient,
// switch, aliases, .forward, :include:, destinations, forwarding, unknown
// users).  The leaves are in mailbox_delivery.cpp and command_delivery.cpp.
#include "local/local_agent.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "address/address.hpp"
#include "local/destination_list.hpp"
#include "log/log.hpp"
#include "queue/queue_file.hpp"
#include "queue/record.hpp"

namespace mta::local {
namespace proto = ipc::proto;

namespace {

std::string fold(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool iequal(std::string_view a, std::string_view b) { return fold(a) == fold(b); }

// Postfix's split_addr(): the extension after the first delimiter, except
// for names that are never split.
std::optional<std::string> split_extension(std::string& user, const std::string& delimiters,
                                           bool owner_request_special) {
  if (delimiters.empty()) return std::nullopt;
  if (iequal(user, "postmaster") || iequal(user, "mailer-daemon") || iequal(user, "double-bounce"))
    return std::nullopt;
  if (delimiters.find('-') != std::string::npos && owner_request_special) {
    if (fold(user).rfind("owner-", 0) == 0) return std::nullopt;
    if (user.size() > 8 && fold(user.substr(user.size() - 8)) == "-request") return std::nullopt;
  }
  size_t len = user.find_first_of(delimiters);
  if (len == 0 || len == std::string::npos) return std::nullopt;
  std::string ext = user.substr(len + 1);
  user.resize(len);
  return ext;
}

// Whose file an alias table is: the owner of the file behind it, or root
// for tables without one (inline:, static:, ...).
uid_t table_owner(const maps::Dict& dict) {
  const std::string& type = dict.type();
  std::string file = dict.name();
  if (type == "hash" || type == "btree") file += ".db";
  else if (type == "lmdb") file += ".lmdb";
  else if (type == "cdb") file += ".cdb";
  else if (type != "texthash" && type != "regexp" && type != "pcre" && type != "cidr") return 0;
  struct stat st {};
  if (file.empty() || file[0] != '/' || ::stat(file.c_str(), &st) != 0) return 0;
  return st.st_uid;
}

}  // namespace


LocalAgent::LocalAgent(const Settings& settings, const proto::DeliverRequest& request, QueueMessage& message,
                       AddressResolver& resolver)
    : settings_(settings),
      request_(request),
      message_(message),
      resolver_(resolver),
      reporter_(ReporterConfig{settings.queue_directory, settings.bounce_service, settings.defer_service,
                               settings.trace_service, settings.verify_service, settings.ipc_timeout,
                               settings.soft_bounce, settings.verify_neg_cache,
                               settings.delay_logging_resolution_limit, settings.flush},
                request.queue_id, request.stats, settings.service) {}

bool LocalAgent::been_here(const std::string& key) {
  std::string k = fold(key);
  if (dup_filter_.count(k)) return true;
  if (settings_.duplicate_filter_limit <= 0 ||
      dup_filter_.size() < static_cast<size_t>(settings_.duplicate_filter_limit))
    dup_filter_.insert(std::move(k));
  return false;
}

bool LocalAgent::been_here_check(const std::string& key) const { return dup_filter_.count(fold(key)) != 0; }

int LocalAgent::deliver_all() {
  int msg_stat = 0;
  ForwardSource source{&request_, message_.fd, message_.path, message_.data_offset};
  for (const proto::Recipient& rcpt : request_.recipients) {
    dup_filter_.clear();
    forwarder_ = std::make_unique<Forwarder>(settings_, source);
    State state;
    state.msg.sender = request_.sender;
    state.msg.dsn_envid = request_.dsn_envid;
    state.msg.dsn_ret = request_.dsn_ret;
    state.msg.rcpt = rcpt;
    int rcpt_stat = deliver_recipient(state, UserAttr{});
    rcpt_stat |= forwarder_->finish(reporter_, trace_flags(), rcpt, rcpt_stat);
    if (rcpt_stat == 0 && (request_.flags & proto::kDelReqFlagSuccess) && rcpt.offset > 0) {
      std::string why;
      if (!queue::update_record_type(message_.fd, rcpt.offset, queue::rec::kDone, "RD", &why))
        log::fatal("update queue file %s: %s", message_.path.c_str(), why.c_str());
    }
    msg_stat |= rcpt_stat;
  }
  forwarder_.reset();
  return msg_stat;
}

int LocalAgent::deliver_recipient(State state, UserAttr usr) {
  state.level++;
  MsgAttr& m = state.msg;
  if (state.level > 100) {
    log::warning("recipient nesting limit exceeded for %s", m.rcpt.address.c_str());
    return bounce(state, Dsn::simple("5.4.6", "recipient nesting limit exceeded"));
  }
  if (been_here("recipient " + std::to_string(state.level) + " " + m.rcpt.address)) return 0;

  // An address that the message was already delivered to: a loop.
  if (message_.delivered_to.count(fold(m.rcpt.address)))
    return bounce_workaround(state, Dsn::simple("5.4.6", "mail forwarding loop for " + m.rcpt.address));

  if (!m.delivered) m.delivered = m.rcpt.address;
  m.local = fold(m.rcpt.address);
  size_t at = m.local.rfind('@');
  if (at == std::string::npos) {
    log::warning("no @ in recipient address: %s", m.local.c_str());
    m.domain.reset();
  } else {
    m.domain = m.local.substr(at + 1);
    m.local.resize(at);
  }
  m.user = m.local;
  m.extension = split_extension(m.user, settings_.recipient_delimiter, settings_.owner_request_special);
  if (m.extension && m.extension->find('/') != std::string::npos) {
    log::warning("%s: address with illegal extension: %s", request_.queue_id.c_str(), m.local.c_str());
    m.extension.reset();
    m.local = m.user;
  }
  m.unmatched = m.extension;
  if (m.user.empty())
    return bounce(state, Dsn::simple("5.1.3", "null username in \"" + m.rcpt.address + "\""));
  return deliver_switch(state, usr);
}

int LocalAgent::deliver_switch(State state, UserAttr usr) {
  state.level++;
  MsgAttr& m = state.msg;
  int status = 0;

  // Aliases first: the whole local part, then the user without extension.
  m.unmatched.reset();
  if (deliver_alias(state, usr, m.local, &status)) return status;
  if (m.extension) {
    if (settings_.ext_prop_mask & kExtPropAlias) m.unmatched = m.extension;
    if (deliver_alias(state, usr, m.user, &status)) return status;
    m.unmatched = m.extension;
  }

  // A local address found in an expansion with its own owner (an owner-
  // alias or a .forward file of someone else), or in an :include: file,
  // gets a new queue file so that it has its own delivery status.
  if (m.owner && !iequal(*m.owner, m.user)) return deliver_indirect(state);
  if (m.exp_type == kExpandInclude) return deliver_indirect(state);

  if (settings_.require_home_directory) {
    std::optional<UserInfo> pw;
    if (int err = find_user_by_name(m.user, pw); err != 0) {
      log::warning("error looking up passwd info for %s: %s", m.user.c_str(), std::strerror(err));
      return defer(state, Dsn::simple("4.0.0", "user lookup error"));
    }
    struct stat st {};
    if (pw && stat_as(pw->home, &st, pw->uid, pw->gid) < 0)
      return defer(state, Dsn::simple("4.3.0", "cannot access home directory " + pw->home + ": " +
                                                   std::strerror(errno)));
  }
  if (!deliver_dotforward(state, usr, &status) && !deliver_mailbox(state, usr, &status))
    status = deliver_unknown(state, usr);
  return status;
}

bool LocalAgent::deliver_alias(State state, UserAttr usr, const std::string& name, int* status) {
  state.level++;
  MsgAttr& m = state.msg;
  if (m.exp_from && iequal(*m.exp_from, name)) return false;  // an alias that lists itself
  if (state.level > 100) {
    log::warning("alias database loop for %s", name.c_str());
    *status = bounce(state, Dsn::simple("5.4.6", "alias database loop for " + name));
    return true;
  }
  m.exp_from = name;

  for (const maps::DictPtr& dict : settings_.alias_maps.dicts()) {
    maps::Result r = dict->lookup(name);
    if (r.failed()) {
      log::warning("%s: %s lookup error for \"%s\": %s", request_.queue_id.c_str(), dict->spec().c_str(),
                   name.c_str(), r.error.c_str());
      *status = defer(state, Dsn::simple("4.3.0", "alias database unavailable"));
      return true;
    }
    if (!r.found()) continue;

    if (request_.flags & proto::kDelReqFlagMtaVrfy) {
      *status = sent(state, Dsn::simple("2.0.0", "aliased to " + r.value));
      return true;
    }
    m.exp_type = kExpandAlias;

    // Files and commands get the rights of the table's owner, or
    // default_privs for a table that root owns.
    uid_t owner_uid = table_owner(*dict);
    if (owner_uid == 0) {
      usr.reset();
    } else {
      std::optional<UserInfo> pw;
      if (find_user_by_uid(owner_uid, pw) != 0 || !pw) {
        log::warning("cannot find alias database owner for %s", dict->spec().c_str());
        *status = defer(state, Dsn::simple("4.3.0", "cannot find alias database owner"));
        return true;
      }
      usr.set(*pw);
    }

    // owner-NAME receives the delivery problems of NAME's expansion.
    bool has_owner = false;
    if (settings_.owner_request_special) {
      std::string owner_name = "owner-" + name;
      maps::Result o = settings_.alias_maps.find(owner_name);
      if (o.found()) {
        std::string canon;
        if (!resolver_.canonicalize_internal(settings_.expand_owner_alias ? o.value : owner_name, &canon)) {
          *status = defer(state, Dsn::simple("4.3.0", "address resolver failure"));
          return true;
        }
        m.sender = canon;
        m.owner = canon;
        has_owner = true;
      } else if (settings_.reset_owner_alias) {
        m.owner.reset();
      }
    }
    if (!settings_.frozen_delivered_to) m.delivered = m.rcpt.address;

    // DSN: a list (owner- alias) gets fresh DSN parameters; an alias keeps
    // them, without NOTIFY=SUCCESS.
    const int saved_notify = m.rcpt.dsn_notify;
    const std::string saved_envid = m.dsn_envid, saved_orcpt = m.rcpt.dsn_orcpt;
    const int saved_ret = m.dsn_ret;
    m.rcpt.dsn_notify = saved_notify == kDsnNotifySuccess ? kDsnNotifyNever : (saved_notify & ~kDsnNotifySuccess);
    if (has_owner) {
      m.dsn_envid.clear();
      m.dsn_ret = 0;
      m.rcpt.dsn_orcpt.clear();
      m.rcpt.orig_addr.clear();
    }
    int count = 0;
    *status = deliver_token_string(state, usr, r.value, &count);
    if (count < 1) {
      log::warning("no recipient in alias lookup result for %s", name.c_str());
      *status = defer(state, Dsn::simple("4.3.0", "alias database unavailable"));
    } else if (saved_notify & kDsnNotifySuccess) {
      m.rcpt.dsn_notify = saved_notify;
      if (has_owner) {
        m.dsn_envid = saved_envid;
        m.dsn_ret = saved_ret;
        m.rcpt.dsn_orcpt = saved_orcpt;
      }
      Dsn d = Dsn::simple("2.0.0", "alias expanded");
      d.action = has_owner ? "delivered" : "expanded";
      (void)reporter_.trace_append(0, m.rcpt, d);
    }
    return true;
  }
  return false;
}

bool LocalAgent::deliver_dotforward(State state, UserAttr usr, int* status) {
  state.level++;
  MsgAttr& m = state.msg;
  *status = 0;
  if (settings_.forward_path.empty()) return false;
  std::optional<UserInfo> pw;
  if (find_user_by_name(m.user, pw) != 0 || !pw) return false;  // the mailbox code reports it

  if (!settings_.frozen_delivered_to) m.delivered = m.rcpt.address;
  usr.set(*pw);
  m.exp_type = kExpandForward;
  m.owner = m.user;

  // The first forward_path entry that names an existing file.
  std::string path;
  bool found = false;
  struct stat st {};
  for (const std::string& lhs : config::split_list(settings_.forward_path)) {
    ExpandOutcome e = expand_attributes(
        lhs,
        [&](std::string_view n) { return local_attribute(n, m, usr); },
        &settings_.forward_expansion_filter);
    if (e.error || e.undefined) continue;
    if (lstat_as(e.text, &st, usr.uid, usr.gid) == 0) {
      path = e.text;
      found = true;
      if (e.extension_matched || (settings_.ext_prop_mask & kExtPropForward) == 0) m.unmatched.reset();
      break;
    }
  }
  if (!found) return false;

  bool forward_found = false;
  if (request_.flags & proto::kDelReqFlagMtaVrfy) {
    *status = sent(state, Dsn::simple("2.0.0", "forward via file: " + path));
    return true;
  }
  if (!been_here("forward " + path)) {
    m.exp_from = m.local;
    int fd = -1;
    if (!S_ISREG(st.st_mode)) {
      log::warning("file %s is not a regular file", path.c_str());
    } else if (st.st_uid != 0 && st.st_uid != usr.uid) {
      log::warning("file %s has bad owner uid %ld", path.c_str(), static_cast<long>(st.st_uid));
    } else if (st.st_mode & 002) {
      log::warning("file %s is world writable", path.c_str());
    } else if ((fd = open_as(path, O_RDONLY, 0, usr.uid, usr.gid)) < 0) {
      log::warning("cannot open file %s: %s", path.c_str(), std::strerror(errno));
    } else {
      int count = 0;
      const int saved_notify = m.rcpt.dsn_notify;
      m.rcpt.dsn_notify = saved_notify == kDsnNotifySuccess ? kDsnNotifyNever : (saved_notify & ~kDsnNotifySuccess);
      *status = deliver_token_file(state, usr, fd, &count);
      ::close(fd);
      if (count > 0) {
        forward_found = true;
        (void)been_here("forward-done " + path);
        if (*status == 0 && (saved_notify & kDsnNotifySuccess)) {
          m.rcpt.dsn_notify = saved_notify;
          Dsn d = Dsn::simple("2.0.0", "alias expanded");
          d.action = "expanded";
          (void)reporter_.trace_append(0, m.rcpt, d);
        }
      }
    }
  } else if (been_here_check("forward-done " + path)) {
    forward_found = true;  // else: we are inside our own expansion
  }
  return forward_found;
}

int LocalAgent::deliver_include(State state, UserAttr usr, const std::string& path) {
  state.level++;
  MsgAttr& m = state.msg;
  if (been_here("include " + std::to_string(usr.uid) + " " + path)) return 0;
  m.exp_from = m.local;
  auto config_error = [&](const std::string& warning) {
    log::warning("%s", warning.c_str());
    return bounce(state, Dsn::simple("5.3.5", "mail system configuration error"));
  };
  if (path.empty() || path[0] != '/') return config_error(":include:" + path + " uses a relative path");
  struct stat st {};
  if (stat_as(path, &st, usr.uid, usr.gid) < 0)
    return config_error("unable to lookup :include: file " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return config_error(":include: file " + path + " is not a regular file");
  if (st.st_mode & S_IWOTH) return config_error(":include: file " + path + " is world writable");

  m.exp_type = kExpandInclude;
  // A file in a root-owned alias gets its owner's rights (never root's).
  if (usr.uid == 0 && st.st_uid != 0) {
    std::optional<UserInfo> pw;
    if (find_user_by_uid(st.st_uid, pw) != 0 || !pw) {
      log::warning("cannot find username for uid %ld", static_cast<long>(st.st_uid));
      log::warning("%s: cannot find :include: file owner username", path.c_str());
      return defer(state, Dsn::simple("4.3.5", "mail system configuration error"));
    }
    if (pw->uid != 0) usr.set(*pw);
  }
  if (!m.owner) m.owner = "root";  // local addresses in the list are forwarded

  int fd = open_as(path, O_RDONLY, 0, usr.uid, usr.gid);
  if (fd < 0) return bounce(state, Dsn::simple("5.3.0", "cannot open include file " + path + ": " + std::strerror(errno)));
  int status = deliver_token_file(state, usr, fd, nullptr);
  ::close(fd);
  return status;
}

int LocalAgent::deliver_token(State state, UserAttr usr, const std::string& token) {
  MsgAttr& m = state.msg;
  if (token[0] == '/') return deliver_file(state, usr, token);
  if (token[0] == '~') {
    if (token.size() < 2 || token[1] != '/')
      return bounce(state, Dsn::simple("5.3.0", "bad home directory syntax for: " + token));
    if (!usr.home || usr.home->empty())
      return bounce(state, Dsn::simple("5.3.0", "unknown home directory for: " + token));
    if (*usr.home == "/") return deliver_file(state, usr, token.substr(1));
    return deliver_file(state, usr, *usr.home + token.substr(1));
  }
  if (token[0] == '|') {
    if ((settings_.command_mask & m.exp_type) == 0)
      return bounce_workaround(state, Dsn::simple("5.7.1", "mail to command is restricted"));
    return deliver_command(state, usr, token.substr(1));
  }
  if (token.size() >= 9 && fold(token.substr(0, 9)) == ":include:") return deliver_include(state, usr, token.substr(9));
  return deliver_resolve_addr(state, usr, token);
}

int LocalAgent::deliver_token_string(State state, UserAttr usr, const std::string& text, int* count) {
  int status = 0;
  for (const std::string& token : parse_destinations(text)) {
    if (count) ++*count;
    status |= deliver_token(state, usr, token);
  }
  return status;
}

int LocalAgent::deliver_token_file(State state, UserAttr usr, int fd, int* count) {
  // Lines of at most line_length_limit bytes; '#' starts a comment line.
  const size_t limit = settings_.line_length_limit > 0 ? static_cast<size_t>(settings_.line_length_limit) : 2048;
  std::string pending, line;
  char buf[8192];
  bool eof = false;
  int status = 0;
  while (status == 0) {
    size_t nl = pending.find('\n');
    if (nl == std::string::npos && pending.size() < limit && !eof) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        eof = true;
      else
        pending.append(buf, static_cast<size_t>(n));
      continue;
    }
    size_t take = nl == std::string::npos ? std::min(pending.size(), limit) : std::min(nl + 1, limit);
    if (take == 0) break;
    line = pending.substr(0, take);
    pending.erase(0, take);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    if (!line.empty() && line[0] == '#') continue;
    status = deliver_token_string(state, usr, line, count);
  }
  return status;
}

int LocalAgent::deliver_resolve_addr(State state, UserAttr usr, const std::string& address) {
  state.level++;
  MsgAttr& m = state.msg;
  std::string canonical;
  if (!resolver_.rewrite_local(address::to_external(address).text, &canonical))
    return defer(state, Dsn::simple("4.3.0", "address resolver failure"));
  ResolvedAddress r = resolver_.resolve(address::to_internal(canonical).text);
  if (r.failed) return defer(state, Dsn::simple("4.3.0", "address resolver failure"));
  if (r.bad_syntax) return bounce(state, Dsn::simple("5.1.3", "bad recipient address syntax: " + r.recipient));

  // Carry an unmatched extension over: user+foo aliased to joe gives joe+foo.
  std::string recipient = r.recipient;
  if (m.unmatched) {
    char delim = settings_.recipient_delimiter.empty() ? '+' : settings_.recipient_delimiter[0];
    if (m.extension && m.local.size() > m.user.size()) delim = m.local[m.user.size()];
    size_t at = recipient.rfind('@');
    std::string ext = std::string(1, delim) + *m.unmatched;
    if (at == std::string::npos)
      recipient += ext;
    else
      recipient.insert(at, ext);
  }
  m.rcpt.address = recipient;
  if (r.transport == settings_.service) return deliver_recipient(state, usr);
  return deliver_indirect(state);
}

int LocalAgent::deliver_indirect(State state) {
  MsgAttr& m = state.msg;
  if (trace_only()) return sent(state, Dsn::simple("2.0.0", "forwards to " + m.rcpt.address));
  if (!forwarder_->append(m.delivered.value_or(m.rcpt.address), m.sender, m.rcpt))
    return defer(state, Dsn::simple("4.3.0", "unable to forward message"));
  return 0;
}

std::optional<std::string> LocalAgent::local_attribute(std::string_view n, const MsgAttr& m,
                                                      const UserAttr& usr) const {
  if (n == "user") return m.user;
  if (n == "home") return usr.home;
  if (n == "shell") return usr.shell;
  if (n == "recipient") return m.rcpt.address;
  if (n == "extension") return m.extension;
  if (n == "domain") return m.domain;
  if (n == "local") return m.local;
  if (n == "recipient_delimiter") {
    // The delimiter that this address used, else the first one configured.
    if (settings_.recipient_delimiter.empty()) return std::nullopt;
    if (m.extension && m.local.size() > m.user.size()) return std::string(1, m.local[m.user.size()]);
    return settings_.recipient_delimiter.substr(0, 1);
  }
  return std::nullopt;
}

int LocalAgent::deliver_unknown(State state, UserAttr usr) {
  MsgAttr& m = state.msg;
  // fallback_transport_maps, fallback_transport: for users we do not know.
  if (!settings_.fallback_transport_table.empty()) {
    maps::Result r = settings_.fallback_transport_table.find(m.user);
    if (r.found()) {
      proto::Recipient rcpt = m.rcpt;
      return deliver_pass(settings_, reporter_, request_, r.value, rcpt, request_.flags);
    }
    if (r.failed()) {
      log::warning("%s", r.error.c_str());
      return defer(state, Dsn::simple("4.3.0", "table lookup failure"));
    }
  }
  if (!settings_.fallback_transport.empty())
    return deliver_pass(settings_, reporter_, request_, settings_.fallback_transport, m.rcpt, request_.flags);

  // luser_relay: $name-expanded, resolved and delivered like an alias.
  if (!settings_.luser_relay.empty()) {
    m.unmatched.reset();
    ExpandOutcome e = expand_attributes(
        settings_.luser_relay,
        [&](std::string_view n) { return local_attribute(n, m, usr); },
        nullptr);
    return deliver_resolve_addr(state, usr, e.text);
  }

  // Required names without an alias: discard, with a warning.
  if (iequal(m.user, "mailer-daemon") || iequal(m.user, "postmaster")) {
    log::warning("required alias not found: %s", m.user.c_str());
    return sent(state, Dsn::simple("2.0.0", "discarded"));
  }
  return bounce(state, Dsn::simple("5.1.1", "unknown user: \"" + m.user + "\""));
}

int LocalAgent::bounce_workaround(State state, Dsn dsn) {
  MsgAttr& m = state.msg;
  // With an owner-NAME alias for the failing address, the owner hears of
  // the failure at once, in a notice of its own.
  if (settings_.owner_request_special) {
    auto find_owner = [&](const std::string& addr, std::string* key) {
      *key = "owner-" + std::string(address::local_part(addr));
      return settings_.alias_maps.find(*key);
    };
    std::string key;
    maps::Result r = find_owner(m.rcpt.address, &key);
    if (!r.found() && !r.failed() && !settings_.recipient_delimiter.empty()) {
      std::string user(address::local_part(m.rcpt.address));
      std::string domain(address::domain_part(m.rcpt.address));
      if (split_extension(user, settings_.recipient_delimiter, settings_.owner_request_special))
        r = find_owner(domain.empty() ? user : user + "@" + domain, &key);
    }
    if (r.failed()) return defer(state, std::move(dsn));
    if (r.found()) {
      std::string canon;
      if (!resolver_.canonicalize_internal(settings_.expand_owner_alias ? r.value : key, &canon))
        return defer(state, std::move(dsn));
      if (dsn.temporary()) return defer(state, std::move(dsn));
      return reporter_.bounce_one(trace_flags(), request_, canon, m.rcpt, std::move(dsn));
    }
  }
  return bounce_or_defer(state, std::move(dsn));
}

}  // namespace mta::local
