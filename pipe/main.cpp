// pipe: delivery to external commands (Postfix's pipe(8)).
//
// A master.cf entry such as
//
//   maildrop  unix  -  n  n  -  -  pipe
//     flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
//
// makes a transport whose recipients are handed, one request at a time, to
// the command (pipe_attributes.hpp: the attributes; argv_expansion.hpp: the
// macros; pipe_delivery.hpp: the delivery and its status reports).  The
// process runs as root (master.cf "unpriv" n), with mail_owner's effective
// ids between deliveries; each command runs in a child with user='s ids
// for good.
//
// usage: pipe [generic daemon options] command_attributes... (started by master)
#include <grp.h>
#include <pwd.h>

#include "deliver/agent_session.hpp"
#include "deliver/user_privileges.hpp"
#include "log/log.hpp"
#include "pipe/pipe_delivery.hpp"
#include "server/server.hpp"

namespace {

mta::pipe::PipeSettings load_settings(const mta::server::ServerContext& ctx) {
  const mta::config::Config& cf = ctx.config;
  mta::pipe::PipeSettings s;
  s.service = ctx.service_name;
  s.config_directory = cf.config_dir();
  // SERVICE_time_limit, else command_time_limit.
  const std::string own_limit = ctx.service_name + "_time_limit";
  s.time_limit = cf.lookup(own_limit) ? cf.get_time(own_limit) : cf.get_time("command_time_limit");
  if (s.time_limit < 1) mta::log::fatal("invalid %s parameter value %lld < 1", own_limit.c_str(), s.time_limit);
  s.export_environment = cf.get_list("export_environment");
  s.recipient_delimiter = cf.get("recipient_delimiter");
  s.owner_request_special = cf.get_bool("owner_request_special");
  s.double_bounce_sender = cf.get("double_bounce_sender");
  s.reporter = mta::agent::reporter_config(cf);
  s.attribute_words = ctx.attributes;

  s.forbidden.mail_owner = cf.get("mail_owner");
  if (const passwd* pw = ::getpwnam(s.forbidden.mail_owner.c_str())) {
    s.forbidden.owner_uid = pw->pw_uid;
    s.forbidden.owner_gid = pw->pw_gid;
  } else {
    mta::log::fatal("file %s/main.cf: parameter mail_owner: unknown user name value: %s", s.config_directory.c_str(),
                    s.forbidden.mail_owner.c_str());
  }
  s.forbidden.setgid_group = cf.get("setgid_group");
  if (const group* gr = ::getgrnam(s.forbidden.setgid_group.c_str())) s.forbidden.setgid_gid = gr->gr_gid;

  // Not implemented: say so when it is set.
  for (const char* name : {"pipe_delivery_status_filter", "default_delivery_status_filter"})
    if (!cf.get(name).empty()) mta::log::warning("%s is not implemented: ignored", name);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<mta::pipe::PipeAgent> agent;  // set up once, then used per request
  mta::server::SingleServer server;
  server.post_init = [&](mta::server::ServerContext& ctx) {
    try {
      mta::pipe::PipeSettings settings = load_settings(ctx);
      // Root only in name between deliveries: mail_owner's rights for the
      // queue file and the service sockets.
      if (mta::deliver::can_switch_ids())
        mta::deliver::set_resting_ids(settings.forbidden.owner_uid, settings.forbidden.owner_gid);
      agent = std::make_unique<mta::pipe::PipeAgent>(std::move(settings));
    } catch (const std::exception& e) {
      mta::log::fatal("%s", e.what());
    }
  };
  server.service = [&](int fd, mta::server::ServerContext& ctx) {
    mta::agent::serve_connection(fd, ctx.config, ctx.service_name + " socket",
                                 [&](mta::agent::Delivery& d) { return agent->deliver_message(d); }, ctx.next_request);
  };
  return mta::server::run_single_server(argc, argv, server);
}
