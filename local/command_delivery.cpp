// command_delivery.cpp: the "|command" leaf (aliases, .forward,
// mailbox_command), as Postfix's deliver_command() over pipe_command():
// the message on standard input, run as the recipient (never as root) in
// its own process group, with Postfix's environment, killed after
// command_time_limit; its exit status and a little of its output become
// the delivery status (<sysexits.h> codes, or an RFC 3463 code that the
// output starts with).
#include "deliver/pipe_command.hpp"

#include <string>

#include "local/destination_list.hpp"
#include "local/local_agent.hpp"
#include "log/log.hpp"

namespace mta::local {

int LocalAgent::deliver_command(State state, UserAttr usr, const std::string& command) {
  state.level++;
  MsgAttr& m = state.msg;
  if (been_here("command " + m.user + ":" + std::to_string(usr.uid) + " " + command)) return 0;
  if (trace_only()) return sent(state, Dsn::simple("2.0.0", "delivers to command: " + command));

  // Never as root: default_privs when no user context was chosen.
  if (usr.uid == 0) usr.uid = settings_.default_uid;
  if (usr.gid == 0) usr.gid = settings_.default_gid;

  PipeCommand cmd;
  cmd.command = command;
  cmd.uid = usr.uid;
  cmd.gid = usr.gid;
  cmd.copy_flags = kCopyFrom | kCopyReturnPath | kCopyOrigRcpt;
  if (settings_.delivered_hdr_mask & kDeliveredHdrCommand) cmd.copy_flags |= kCopyDelivered;
  cmd.envelope = CopyEnvelope{m.sender, m.rcpt.orig_addr, m.delivered.value_or(m.rcpt.address), std::time(nullptr)};
  cmd.time_limit = settings_.command_time_limit;
  cmd.shell = settings_.local_command_shell;
  cmd.export_environment = settings_.export_environment;
  cmd.file_size_limit = settings_.mailbox_size_limit;

  auto& env = cmd.env;
  if (usr.home) env.emplace_back("HOME", *usr.home);
  env.emplace_back("LOGNAME", m.user);
  env.emplace_back("USER", m.user);
  env.emplace_back("SENDER", m.sender);
  env.emplace_back("RECIPIENT", m.rcpt.address);
  env.emplace_back("LOCAL", m.local);
  if (usr.shell) env.emplace_back("SHELL", *usr.shell);
  if (m.domain) env.emplace_back("DOMAIN", *m.domain);
  if (m.extension) env.emplace_back("EXTENSION", *m.extension);
  if (!m.rcpt.orig_addr.empty()) env.emplace_back("ORIGINAL_RECIPIENT", m.rcpt.orig_addr);
  auto export_request = [&](const char* name, const std::string& value) {
    if (!value.empty()) env.emplace_back(name, value);
  };
  export_request("CLIENT_HOSTNAME", request_.client_name);
  export_request("CLIENT_ADDRESS", request_.client_addr);
  export_request("CLIENT_HELO", request_.client_helo);
  export_request("CLIENT_PROTOCOL", request_.client_proto);
  export_request("SASL_METHOD", request_.sasl_method);
  export_request("SASL_SENDER", request_.sasl_sender);
  export_request("SASL_USERNAME", request_.sasl_username);
  for (auto& [name, value] : env)
    for (char& ch : value)
      if (settings_.command_expansion_filter.find(ch) == std::string::npos) ch = '_';

  if (!settings_.command_execution_directory.empty()) {
    ExpandOutcome e = expand_attributes(
        settings_.command_execution_directory,
        [&](std::string_view n) { return local_attribute(n, m, usr); },
        &settings_.execution_directory_expansion_filter);
    if (e.error) {
      log::warning("bad parameter value syntax for command_execution_directory: %s",
                   settings_.command_execution_directory.c_str());
      return defer(state, Dsn::simple("4.3.5", "mail system configuration error"));
    }
    cmd.cwd = e.text;
  }

  PipeOutcome result = pipe_command(cmd, message_.fd, message_.path, message_.data_offset);
  switch (result.status) {
    case PipeOutcome::ok:
      return sent(state, Dsn::simple("2.0.0", "delivered to command: " + command));
    case PipeOutcome::bounce:
    case PipeOutcome::defer:
      return bounce_workaround(state, std::move(result.why));
    case PipeOutcome::corrupt:
      return -1;
  }
  return -1;
}

}  // namespace mta::local
