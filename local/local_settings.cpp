// local_settings.cpp: see local_settings.hpp.
#include "local/local_settings.hpp"

#include <grp.h>
#include <pwd.h>

#include <cstdlib>
#include <utility>

#include "deliver/delivery_status.hpp"
#include "log/log.hpp"

namespace mta::local {
int parse_expand_mask(std::string_view parameter, std::string_view value) {
  return config::name_mask(parameter, value,
                   {{"alias", kExpandAlias}, {"forward", kExpandForward}, {"include", kExpandInclude}});
}

int parse_delivered_header_mask(std::string_view value) {
  return config::name_mask("prepend_delivered_header", value,
                   {{"command", kDeliveredHdrCommand}, {"file", kDeliveredHdrFile}, {"forward", kDeliveredHdrForward}});
}

int parse_ext_prop_mask(std::string_view value) {
  return config::name_mask("propagate_unmatched_extensions", value,
                   {{"canonical", kExtPropCanonical},
                    {"virtual", kExtPropVirtual},
                    {"alias", kExtPropAlias},
                    {"forward", kExtPropForward},
                    {"include", kExtPropInclude},
                    {"generic", kExtPropGeneric}});
}

int parse_lock_mask(std::string_view value) {
  return config::name_mask("mailbox_delivery_lock", value,
                   {{"flock", kLockFlock}, {"fcntl", kLockFcntl}, {"dotlock", kLockDotlock}});
}

std::string local_alias_maps_spec(std::string_view alias_maps) {
  std::string out;
  for (const std::string& spec : config::split_list(alias_maps)) {
    std::string_view s = spec;
    while (s.substr(0, 6) == "proxy:") s.remove_prefix(6);
    if (s.substr(0, 4) == "nis:") continue;
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

Settings load_settings(const config::Config& config, const std::string& service_name) {
  Settings s;
  s.service = service_name;
  auto raw = [&](std::string_view name) { return config.lookup(name).value_or(""); };
  s.queue_directory = config.get("queue_directory");
  s.hash_queue_names = config.get_list("hash_queue_names");
  s.hash_queue_depth = static_cast<int>(config.get_int("hash_queue_depth"));
  if (s.hash_queue_depth < 1) s.hash_queue_depth = 1;
  s.biff = config.get_bool("biff");

  s.alias_maps_spec = local_alias_maps_spec(config.get("alias_maps"));
  s.home_mailbox = config.get("home_mailbox");
  s.mail_spool_directory = config.get("mail_spool_directory");
  s.mailbox_command = raw("mailbox_command");
  s.mailbox_command_maps = raw("mailbox_command_maps");
  s.mailbox_transport = config.get("mailbox_transport");
  s.mailbox_transport_maps = config.get("mailbox_transport_maps");
  s.fallback_transport = config.get("fallback_transport");
  s.fallback_transport_maps = config.get("fallback_transport_maps");
  s.luser_relay = raw("luser_relay");
  s.forward_path = raw("forward_path");
  s.recipient_delimiter = config.get("recipient_delimiter");
  s.command_execution_directory = raw("command_execution_directory");
  s.local_command_shell = config.get("local_command_shell");
  s.command_expansion_filter = config.get("command_expansion_filter");
  s.forward_expansion_filter = config.get("forward_expansion_filter");
  s.execution_directory_expansion_filter = config.get("execution_directory_expansion_filter");
  s.export_environment = config.get_list("export_environment");
  s.myhostname = config.get("myhostname");
  s.mail_name = config.get("mail_name");

  s.mailbox_size_limit = config.get_int("mailbox_size_limit");
  s.message_size_limit = config.get_int("message_size_limit");
  s.command_time_limit = config.get_time("command_time_limit");
  s.deliver_lock_attempts = config.get_int("deliver_lock_attempts");
  s.deliver_lock_delay = config.get_time("deliver_lock_delay");
  s.stale_lock_time = config.get_time("stale_lock_time");
  s.duplicate_filter_limit = config.get_int("duplicate_filter_limit");
  s.line_length_limit = config.get_int("line_length_limit");
  s.delay_logging_resolution_limit = static_cast<int>(config.get_int("delay_logging_resolution_limit"));
  if (s.delay_logging_resolution_limit < 0 || s.delay_logging_resolution_limit > 6)
    throw config::ConfigError("invalid delay_logging_resolution_limit parameter value " +
                              std::to_string(s.delay_logging_resolution_limit) + " < 0 or > 6");
  s.ipc_timeout = config.get_time("ipc_timeout");

  s.file_mask = parse_expand_mask("allow_mail_to_files", config.get("allow_mail_to_files"));
  s.command_mask = parse_expand_mask("allow_mail_to_commands", config.get("allow_mail_to_commands"));
  s.delivered_hdr_mask = parse_delivered_header_mask(config.get("prepend_delivered_header"));
  s.ext_prop_mask = parse_ext_prop_mask(config.get("propagate_unmatched_extensions"));
  s.lock_mask = parse_lock_mask(config.get("mailbox_delivery_lock"));
  if (config.get_bool("sun_mailtool_compatibility")) {
    log::warning("sun_mailtool_compatibility: deprecated parameter, use \"mailbox_delivery_lock = dotlock\" instead");
    s.lock_mask &= kLockDotlock;
  }
  if (s.lock_mask == 0)
    throw config::ConfigError("parameter mailbox_delivery_lock specifies no applicable mailbox locking method");

  s.frozen_delivered_to = config.get_bool("frozen_delivered_to");
  s.strict_mailbox_ownership = config.get_bool("strict_mailbox_ownership");
  s.owner_request_special = config.get_bool("owner_request_special");
  s.expand_owner_alias = config.get_bool("expand_owner_alias");
  s.reset_owner_alias = config.get_bool("reset_owner_alias");
  s.require_home_directory = config.get_bool("require_home_directory");
  s.soft_bounce = config.get_bool("soft_bounce");
  s.enable_original_recipient = config.get_bool("enable_original_recipient");
  s.verify_neg_cache = config.get_bool("address_verify_negative_cache");

  s.bounce_service = config.get("bounce_service_name");
  s.defer_service = config.get("defer_service_name");
  s.flush = deliver::flush_client_from_config(config);
  s.trace_service = config.get("trace_service_name");
  s.verify_service = config.get("address_verify_service_name");
  s.cleanup_service = config.get("cleanup_service_name");
  s.rewrite_service = config.get("rewrite_service_name");

  maps::OpenFlags paranoid;
  paranoid.no_regsub = true;  // as Postfix: no $n from a sender's address into a file or command
  s.alias_maps = maps::Maps("alias_maps", s.alias_maps_spec, paranoid);
  if (!s.mailbox_command_maps.empty())
    s.mailbox_command_table = maps::Maps("mailbox_command_maps", config.get("mailbox_command_maps"));
  if (!s.mailbox_transport_maps.empty())
    s.mailbox_transport_table = maps::Maps("mailbox_transport_maps", s.mailbox_transport_maps);
  if (!s.fallback_transport_maps.empty())
    s.fallback_transport_table = maps::Maps("fallback_transport_maps", s.fallback_transport_maps);

  // default_privs: an unprivileged account, as Postfix insists.
  s.default_privs = config.get("default_privs");
  struct passwd* pw = ::getpwnam(s.default_privs.c_str());
  if (!pw) throw config::ConfigError("unknown default_privs user name value: " + s.default_privs);
  if (pw->pw_uid == 0) throw config::ConfigError("default_privs: user " + s.default_privs + " has privileged user ID");
  s.default_uid = pw->pw_uid;
  s.default_gid = pw->pw_gid;
  if (s.default_gid == 0)
    throw config::ConfigError("default_privs: user " + s.default_privs + " has privileged group ID");

  s.mail_owner = config.get("mail_owner");
  if (struct passwd* owner = ::getpwnam(s.mail_owner.c_str())) {
    s.owner_uid = owner->pw_uid;
    s.owner_gid = owner->pw_gid;
  } else if (::geteuid() == 0) {
    throw config::ConfigError("unknown mail_owner user name value: " + s.mail_owner);
  }

  // A file size limit below the message size limit would stop us from
  // updating the queue file (Postfix refuses it the same way).
  if (s.mailbox_size_limit > 0 && s.mailbox_size_limit < s.message_size_limit)
    throw config::ConfigError("main.cf configuration error: mailbox_size_limit is smaller than message_size_limit");
  return s;
}

}  // namespace mta::local
