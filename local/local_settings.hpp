// local_settings.hpp: what the local(8) delivery agent takes from main.cf,
// read once per process (as Postfix's parameter tables), and the masks that
// Postfix derives from list parameters.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "deliver/mailbox_file.hpp"
#include "ipc/flush_client.hpp"
#include "maps/maps.hpp"
#include "queue/queue_dirs.hpp"

namespace mta::local {

// Dsn, StatusReporter, mail_copy, LockedMailbox, pipe_command, ActAs ...
using namespace mta::deliver;

// Expansion types: which kind of list a destination came from
// (allow_mail_to_commands, allow_mail_to_files).
inline constexpr int kExpandAlias = 1 << 0;
inline constexpr int kExpandForward = 1 << 1;
inline constexpr int kExpandInclude = 1 << 2;

// prepend_delivered_header.
inline constexpr int kDeliveredHdrCommand = 1 << 0;
inline constexpr int kDeliveredHdrFile = 1 << 1;
inline constexpr int kDeliveredHdrForward = 1 << 2;

// propagate_unmatched_extensions (ext_prop.h).
inline constexpr int kExtPropCanonical = 1 << 0;
inline constexpr int kExtPropVirtual = 1 << 1;
inline constexpr int kExtPropAlias = 1 << 2;
inline constexpr int kExtPropForward = 1 << 3;
inline constexpr int kExtPropInclude = 1 << 4;
inline constexpr int kExtPropGeneric = 1 << 5;


// Parses "alias, forward, include" style lists into masks; throws
// config::ConfigError with Postfix's message ("unknown NAME value "X"
// in "LIST"") on a bad word.
int parse_expand_mask(std::string_view parameter, std::string_view value);
int parse_delivered_header_mask(std::string_view value);
int parse_ext_prop_mask(std::string_view value);
int parse_lock_mask(std::string_view value);

struct Settings {
  std::string service = "local";  // master.cf service name: relay=, and the transport we are
  std::string queue_directory;
  std::vector<std::string> hash_queue_names;
  int hash_queue_depth = 1;

  std::string alias_maps_spec;
  maps::Maps alias_maps;
  std::string home_mailbox;
  std::string mail_spool_directory = "/var/mail";
  std::string mailbox_command;         // raw: not subject to $name expansion
  std::string mailbox_command_maps;
  std::string mailbox_transport;
  std::string mailbox_transport_maps;
  std::string fallback_transport;
  std::string fallback_transport_maps;
  // The tables of the three *_maps parameters (empty when unset).
  maps::Maps mailbox_command_table;
  maps::Maps mailbox_transport_table;
  maps::Maps fallback_transport_table;
  std::string luser_relay;             // raw
  std::string forward_path;            // raw
  std::string recipient_delimiter;
  std::string command_execution_directory;  // raw
  std::string local_command_shell;
  std::string command_expansion_filter;
  std::string forward_expansion_filter;
  std::string execution_directory_expansion_filter;
  std::vector<std::string> export_environment;
  std::string default_privs = "nobody";
  uid_t default_uid = 65534;
  gid_t default_gid = 65534;
  std::string mail_owner = "postfix";
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::string myhostname;
  std::string mail_name = "Postfix";

  long long mailbox_size_limit = 51200000;
  long long message_size_limit = 10240000;
  long long command_time_limit = 1000;
  long long deliver_lock_attempts = 20;
  long long deliver_lock_delay = 1;
  long long stale_lock_time = 500;
  long long duplicate_filter_limit = 1000;
  long long line_length_limit = 2048;
  int delay_logging_resolution_limit = 2;

  int file_mask = kExpandAlias | kExpandForward;
  int command_mask = kExpandAlias | kExpandForward;
  int delivered_hdr_mask = kDeliveredHdrCommand | kDeliveredHdrFile | kDeliveredHdrForward;
  int ext_prop_mask = kExtPropCanonical | kExtPropVirtual;
  int lock_mask = kLockFcntl | kLockDotlock;

  bool frozen_delivered_to = true;
  bool biff = true;  // comsat notice after an mbox delivery
  bool strict_mailbox_ownership = true;
  bool owner_request_special = true;
  bool expand_owner_alias = false;
  bool reset_owner_alias = false;
  bool require_home_directory = false;
  bool soft_bounce = false;
  bool enable_original_recipient = true;
  bool verify_neg_cache = true;

  std::string bounce_service = "bounce";
  std::string defer_service = "defer";
  // Told about deferred mail (fast_flush_domains); null when the list is empty.
  std::shared_ptr<const ipc::FlushClient> flush;
  std::string trace_service = "trace";
  std::string verify_service = "verify";
  std::string cleanup_service = "cleanup";
  std::string rewrite_service = "rewrite";
  long long ipc_timeout = 3600;

  queue::QueueLayout layout() const { return queue::QueueLayout(queue_directory, hash_queue_names, hash_queue_depth); }
};

// Reads the parameters (and opens alias_maps).  Throws config::ConfigError
// with Postfix's message on a bad value.
Settings load_settings(const config::Config& config, const std::string& service_name);

// alias_maps as local(8) opens it: "proxy:" prefixes dropped (local opens
// tables directly, as Postfix's does), and "nis:" tables left out (Postfix
// reads them as empty when the host has no NIS domain; we have no NIS).
std::string local_alias_maps_spec(std::string_view alias_maps);

}  // namespace mta::local
