// bounce: the Postfix-compatible delivery status service (bounce(8)).
//
// master.cf runs this one program as three services, and the service name
// is the log it keeps: bounce (bounce/ID: recipients that failed), defer
// (defer/ID: recipients that must wait; read by showq for mailq's
// reasons) and trace (trace/ID: delivery records for DSN SUCCESS and
// sendmail -v/-bv).
//
//   bounce    unix  -       -       y       -       0       bounce
//   defer     unix  -       -       y       -       0       bounce
//   trace     unix  -       -       y       -       0       bounce
//
// Protocol (delivery_status_protocol, see ipc/mail_proto.hpp): on accept
// the server announces {protocol=delivery_status_protocol}; the client
// sends one request {nrequest=N, ...}: 0 append, 1 flush, 2 warn, 3 verp,
// 4 one, 5 trace; the server answers {status=N}, 0 for success.  With
// BOUNCE_FLAG_CLEAN in the request, a failed request removes the log.
// What each request does is in bounce_service.hpp.
//
// Special service names, as Postfix's bounce (for postconf -b / -t):
// "dump_templates" prints the templates, "expand_templates" their text
// expanded, and exit.
//
// Parameters: bounce_notice_recipient, 2bounce_notice_recipient,
// delay_notice_recipient, notify_classes, bounce_size_limit,
// bounce_template_file, backwards_bounce_logfile_compatibility,
// enable_threaded_bounces, double_bounce_sender, mail_name, myhostname,
// maximal_queue_lifetime, delay_warning_time, deliver_lock_attempts,
// deliver_lock_delay, smtputf8_enable, ipc_timeout, hash_queue_names,
// hash_queue_depth, cleanup_service_name.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "bounce/bounce_service.hpp"
#include "ipc/attr.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "queue/queue_id.hpp"
#include "server/server.hpp"

namespace {

using namespace mta;
namespace proto = ipc::proto;

struct Daemon {
  bounce::Templates templates = bounce::default_templates();
  std::unique_ptr<bounce::BounceService> service;
  std::chrono::milliseconds ipc_timeout{std::chrono::seconds(3600)};
};

std::string printable(const std::string& s) { return ipc::printable(s, true); }

bool notify_args_ok(const proto::BounceNotifyArgs& a) {
  if (!queue::is_valid_queue_name(a.queue_name)) {
    log::warning("malformed queue name: %s", printable(a.queue_name).c_str());
    return false;
  }
  if (!queue::is_queue_file_name(a.queue_id)) {
    log::warning("malformed queue id: %s", printable(a.queue_id).c_str());
    return false;
  }
  return true;
}

bounce::NotifyRequest notify_request(const proto::BounceNotifyArgs& a, const std::string& service, bool utf8) {
  bounce::NotifyRequest r;
  r.flags = a.flags;
  r.service = service;
  r.queue_name = a.queue_name;
  r.queue_id = a.queue_id;
  r.encoding = ipc::printable(a.encoding, utf8);
  r.smtputf8 = a.smtputf8;
  r.sender = ipc::printable(a.sender, utf8);
  r.dsn_envid = ipc::printable(a.dsn_envid, utf8);
  r.dsn_ret = a.dsn_ret;
  return r;
}

// One client: one request, one reply.
void serve(int fd, const std::string& service_name, Daemon& d) {
  bounce::BounceService& svc = *d.service;
  const bool utf8 = svc.settings().smtputf8_enable;
  ipc::Channel ch = ipc::server_channel(fd, service_name + " socket", ipc::Format::zero, d.ipc_timeout);
  if (!ch.announce(proto::kProtoBounce)) return;

  int status = -1;
  std::string clean_id;  // BOUNCE_FLAG_CLEAN: remove this log if the request fails
  auto malformed = [](const ipc::Status& st) {
    if (st.code() != ipc::Errc::closed) log::warning("malformed request: %s", st.message().c_str());
  };
  proto::RequestNumber cmd;
  if (ipc::Status head = ch.read(cmd, {.more = true}); !head) {
    if (head.code() == ipc::Errc::closed) return;  // the client left without asking
    malformed(head);
  } else {
    switch (static_cast<proto::BounceCommand>(cmd.nrequest)) {
      case proto::BounceCommand::append: {
        proto::BounceAppendArgs a;
        if (ipc::Status st = ch.read(a); !st) {
          malformed(st);
        } else if (!queue::is_queue_file_name(a.queue_id)) {
          log::warning("malformed queue id: %s", printable(a.queue_id).c_str());
        } else {
          if (a.flags & bounce::kBounceFlagClean) clean_id = a.queue_id;
          status = svc.append(a.flags, service_name, a.queue_id, a.rcpt, a.dsn);
        }
        break;
      }
      case proto::BounceCommand::flush:
      case proto::BounceCommand::warn:
      case proto::BounceCommand::trace: {
        proto::BounceNotifyArgs a;
        if (ipc::Status st = ch.read(a); !st) {
          malformed(st);
        } else if (notify_args_ok(a)) {
          if (a.flags & bounce::kBounceFlagClean) clean_id = a.queue_id;
          bounce::NotifyRequest r = notify_request(a, service_name, utf8);
          auto c = static_cast<proto::BounceCommand>(cmd.nrequest);
          status = c == proto::BounceCommand::flush  ? svc.flush(r)
                   : c == proto::BounceCommand::warn ? svc.warn(r)
                                                     : svc.trace(r);
        }
        break;
      }
      case proto::BounceCommand::verp: {
        proto::BounceVerpArgs a;
        if (ipc::Status st = ch.read(a); !st) {
          malformed(st);
        } else if (notify_args_ok(a)) {
          std::string delims = ipc::printable(a.verp_delims, utf8);
          if (delims.size() != 2) {
            log::warning("malformed verp delimiter string: %s", delims.c_str());
          } else {
            if (a.flags & bounce::kBounceFlagClean) clean_id = a.queue_id;
            status = svc.verp(notify_request(a, service_name, utf8), delims);
          }
        }
        break;
      }
      case proto::BounceCommand::one: {
        proto::BounceOneArgs a;
        if (ipc::Status st = ch.read(a); !st) {
          malformed(st);
        } else if (service_name != proto::kServiceBounce) {
          log::warning("wrong service name \"%s\" for one-recipient bouncing", service_name.c_str());
        } else if (notify_args_ok(a)) {
          status = svc.one(notify_request(a, service_name, utf8), a.rcpt, a.dsn);
        }
        break;
      }
      default:
        log::warning("unknown command: %d", cmd.nrequest);
        break;
    }
  }
  bool replied = static_cast<bool>(ipc::reply_status(ch, status));
  if (!clean_id.empty() && (status != 0 || !replied)) {
    std::string error;
    if (!bounce::remove_log(svc.settings().layout, service_name, clean_id, &error))
      log::warning("%s", error.c_str());
  }
}

void print_expanded(const bounce::Templates& templates, const config::Config& config) {
  bool first = true;
  for (auto k : {bounce::TemplateClass::failure, bounce::TemplateClass::delay, bounce::TemplateClass::success,
                 bounce::TemplateClass::verify}) {
    std::vector<std::string> lines, warnings;
    std::string error;
    if (!bounce::expand_template_text(templates.get(k), config, &lines, &warnings, &error)) log::fatal("%s", error.c_str());
    for (const std::string& w : warnings) log::warning("%s", w.c_str());
    std::printf("%sexpanded_%s_text = <<EOF\n", first ? "" : "\n", bounce::class_name(k));
    first = false;
    for (const std::string& l : lines) std::printf("%s\n", l.c_str());
    std::printf("EOF\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Daemon d;
  server::SingleServer srv;
  srv.pre_init = [&](server::ServerContext& ctx) {
    // The template file lies outside the chroot jail: read it now.
    std::string file;
    try {
      file = ctx.config.get("bounce_template_file");
    } catch (const config::ConfigError& e) {
      log::fatal("%s", e.what());
    }
    if (!file.empty()) {
      std::vector<std::string> warnings;
      std::string error;
      if (!bounce::load_template_file(file, d.templates, &warnings, &error)) log::fatal("%s", error.c_str());
      for (const std::string& w : warnings) log::warning("%s", w.c_str());
    }
  };
  srv.post_init = [&](server::ServerContext& ctx) {
    if (ctx.service_name == "dump_templates" || ctx.service_name == "expand_templates") {
      // postconf's helper: talk to postconf's user on stderr only, as
      // "postfix/bounce: warning: ..." (Postfix's -V).
      log::init(log::tag());
      log::set_syslog(false);
      log::set_file("");
      log::set_stderr(true);
    }
    if (ctx.service_name == "dump_templates") {
      std::fputs(bounce::dump_templates(d.templates).c_str(), stdout);
      std::exit(0);
    }
    if (ctx.service_name == "expand_templates") {
      print_expanded(d.templates, ctx.config);
      std::exit(0);
    }
    if (!queue::is_valid_queue_name(ctx.service_name))
      log::fatal("malformed service name: %s", ctx.service_name.c_str());
    std::vector<std::string> warnings;
    try {
      d.service = std::make_unique<bounce::BounceService>(bounce::BounceSettings::from_config(ctx.config, &warnings),
                                                          d.templates, ctx.config);
      d.ipc_timeout = std::chrono::seconds(ctx.config.get_time("ipc_timeout", 's'));
    } catch (const config::ConfigError& e) {
      log::fatal("%s", e.what());
    }
    for (const std::string& w : warnings) log::warning("%s", w.c_str());
  };
  srv.service = [&](int fd, server::ServerContext& ctx) { serve(fd, ctx.service_name, d); };
  return server::run_single_server(argc, argv, srv);
}
