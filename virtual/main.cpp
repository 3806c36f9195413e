// virtual: the Postfix-compatible virtual mailbox delivery agent (virtual(8)).
//
// Usage: virtual [generic daemon options]   (started by master, unpriv = n,
// chroot = n)
//
// Delivers the recipients that qmgr hands it for virtual_transport: each
// recipient's mailbox is $virtual_mailbox_base/$virtual_mailbox_maps(rcpt),
// a maildir when that ends in "/", else an mbox file, written with the uid
// and gid of virtual_uid_maps and virtual_gid_maps (virtual_minimum_uid
// guards the uid); virtual_mailbox_limit caps the file size.  Unknown
// recipients bounce (5.1.1), table trouble defers.  Run by root, the
// process acts as mail_owner between deliveries and as the recipient
// while writing; run by another user (an unprivileged instance), every
// file is written as that user.  See virtual_agent.hpp for the order of
// the steps and Postfix's texts.
#include <memory>
#include <optional>

#include "deliver/agent_session.hpp"
#include "deliver/user_privileges.hpp"
#include "log/log.hpp"
#include "server/server.hpp"
#include "virtual/virtual_agent.hpp"
#include "virtual/virtual_settings.hpp"

int main(int argc, char** argv) {
  using namespace mta;
  std::optional<virt::Settings> settings;
  std::unique_ptr<virt::VirtualAgent> delivery_agent;

  server::SingleServer srv;
  srv.pre_init = [&](server::ServerContext& ctx) {
    try {
      settings = virt::load_settings(ctx.config, ctx.service_name);
    } catch (const std::exception& e) {
      log::fatal("%s", e.what());
    }
  };
  srv.post_init = [&](server::ServerContext& ctx) {
    if (!ctx.attributes.empty()) log::fatal("unexpected command-line argument: %s", ctx.attributes[0].c_str());
    // Root only in name: mail_owner's rights until a delivery needs a recipient's.
    if (deliver::can_switch_ids()) deliver::set_resting_ids(settings->owner_uid, settings->owner_gid);
    delivery_agent = std::make_unique<virt::VirtualAgent>(*settings);
    ctx.table_changed = [&]() -> std::string {
      for (const maps::Maps* m : {&settings->mailbox_maps, &settings->uid_maps, &settings->gid_maps})
        for (const maps::DictPtr& d : m->dicts())
          if (d->has_changed()) return d->spec();
      return {};
    };
  };
  srv.service = [&](int fd, server::ServerContext& ctx) {
    agent::serve_connection(fd, ctx.config, ctx.service_name + " socket",
                            [&](agent::Delivery& d) { return delivery_agent->deliver_message(d); }, ctx.next_request);
  };
  return server::run_single_server(argc, argv, srv);
}
