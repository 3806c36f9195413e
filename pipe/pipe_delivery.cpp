// pipe_delivery.cpp: see pipe_delivery.hpp.
#include "pipe/pipe_delivery.hpp"

#include <strings.h>

#include <ctime>

#include "deliver/delivered_to.hpp"
#include "deliver/pipe_command.hpp"
#include "log/log.hpp"
#include "pipe/argv_expansion.hpp"
#include "queue/record.hpp"

namespace mta::pipe {

using deliver::Dsn;
namespace proto = ipc::proto;


int PipeAgent::report_all(agent::Delivery& d, Dsn why, bool ok) {
  const auto& req = d.request;
  deliver::StatusReporter status(settings_.reporter, req.queue_id, req.stats, settings_.service);
  const int flags = agent::trace_flags(req.flags);
  int result = 0;
  for (const proto::Recipient& rcpt : req.recipients) {
    int rc;
    if (ok) {
      rc = status.sent(flags, rcpt, why);
      if (rc == 0 && (req.flags & proto::kDelReqFlagSuccess)) agent::mark_done(d, rcpt);
    } else {
      rc = why.temporary() ? status.defer_append(flags, rcpt, why) : status.bounce_append(flags, rcpt, why);
      if (rc == 0) agent::mark_done(d, rcpt);
    }
    result |= rc;
  }
  return result;
}

int PipeAgent::deliver_message(agent::Delivery& d) {
  const auto& req = d.request;
  if (req.nexthop.empty()) log::fatal("empty nexthop hostname");
  if (req.recipients.empty()) log::fatal("recipient count: %zu", req.recipients.size());
  if (!attr_) {
    try {
      attr_ = parse_attributes(settings_.attribute_words, settings_.forbidden);
    } catch (const AttributeError& e) {
      log::fatal("%s", e.what());
    }
  }
  const PipeAttributes& attr = *attr_;
  const std::string& service = settings_.service;

  // Delivered-To: and X-Original-To: name one recipient.
  for (auto [bit, letter] : {std::pair{deliver::kCopyDelivered, 'D'}, std::pair{deliver::kCopyOrigRcpt, 'O'}}) {
    if ((attr.flags & bit) && req.recipients.size() > 1) {
      int rc = report_all(d, Dsn::simple("4.3.5", "mail system configuration error"), false);
      log::warning("pipe flag `%c' requires %s_destination_recipient_limit = 1", letter, service.c_str());
      return rc;
    }
  }
  if (attr.size_limit != 0 && req.data_size > attr.size_limit)
    return report_all(d, Dsn::simple("5.2.3", "message too large"), false);

  // sendmail -bv and friends: say what would happen, run nothing.
  if (req.flags & deliver::kTraceOnlyMask)
    return report_all(d, Dsn::simple("2.0.0", "delivers to command: " + attr.command[0]), true);

  if ((attr.flags & deliver::kCopyDelivered) &&
      deliver::read_delivered_to(d.file->fd(), d.path, req.data_offset)
          .count(deliver::fold_case(req.recipients[0].address)))
    return report_all(d, Dsn::simple("5.4.6", "mail forwarding loop for " + req.recipients[0].address), false);

  const std::string sender = req.sender.empty() ? attr.null_sender : req.sender;
  ExpansionContext ctx;
  ctx.service = service;
  ctx.config_directory = settings_.config_directory;
  ctx.flags = attr.flags;
  ctx.recipient_delimiter = settings_.recipient_delimiter;
  ctx.owner_request_special = settings_.owner_request_special;
  ctx.double_bounce_sender = settings_.double_bounce_sender;
  ctx.message_macros = message_macros(req, sender, attr.flags);
  std::optional<std::vector<std::string>> argv = expand_argv(attr.command, req.recipients, ctx);
  if (!argv || argv->empty()) return report_all(d, Dsn::simple("4.3.5", "mail system configuration error"), false);

  deliver::PipeCommand cmd;
  cmd.argv = std::move(*argv);
  cmd.uid = attr.uid;
  cmd.gid = attr.gid;
  cmd.export_environment = settings_.export_environment;
  cmd.cwd = attr.exec_dir.value_or("");
  cmd.chroot_dir = attr.chroot_dir.value_or("");
  cmd.eol = attr.eol;
  cmd.time_limit = settings_.time_limit;
  cmd.copy_flags = attr.flags & kCopyFlagsMask;
  cmd.envelope = deliver::CopyEnvelope{sender, req.recipients[0].orig_addr, req.recipients[0].address, std::time(nullptr)};
  deliver::PipeOutcome out = deliver::pipe_command(cmd, d.file->fd(), d.path, req.data_offset);
  switch (out.status) {
    case deliver::PipeOutcome::ok: {
      // Up to 100 bytes of what the command said, trailing blanks removed.
      std::string said = out.output;
      while (!said.empty() && (said.back() == ' ' || said.back() == '\t')) said.pop_back();
      std::string reason = "delivered via " + service + " service";
      if (!said.empty()) reason += " (" + said.substr(0, 100) + ")";
      Dsn dsn = Dsn::simple("2.0.0", reason);
      dsn.action = (attr.flags & kFinalDelivery) ? "delivered" : "relayed";
      return report_all(d, std::move(dsn), true);
    }
    case deliver::PipeOutcome::bounce:
    case deliver::PipeOutcome::defer:
      return report_all(d, std::move(out.why), false);
    case deliver::PipeOutcome::corrupt:
      return -1;
  }
  return -1;
}

}  // namespace mta::pipe
