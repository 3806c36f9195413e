// parameter_table.hpp: the ONE table of main.cf parameters.
//
// Every parameter that Postfix 3.7 defines is a row here: its name, its
// default (Postfix 3.7.11's value, unexpanded, exactly as `postconf -d`
// prints it), its type and the programs that use it.  `postconf -d` and every
// program take their defaults from this table and nowhere else.  Defaults that
// Postfix computes from the host (myhostname, mydomain, mynetworks, ...) are
// marked Computed and worked out by host_defaults.cpp.
//
// Per-transport parameters (relay_destination_concurrency_limit, ...) exist
// for each master.cf service that runs a delivery agent; they are made from
// the templates below, as Postfix's postconf makes them.
//
// Intended differences from Postfix 3.7 (see README): smtpd_forbid_unauth_pipelining
// defaults to yes and smtpd_forbid_bare_newline to normalize, as newer
// Postfix releases do; both close SMTP smuggling and pipelining abuse.
#pragma once

#include <span>
#include <string_view>

namespace mta::config {

enum class ParamType { string, integer, boolean, time, size, list };
enum class Computed { none, myhostname, mydomain, mynetworks, process_id, process_name };

struct ParameterDef {
  std::string_view name;
  std::string_view default_value;  // empty for Computed parameters
  ParamType type;
  Computed computed;
  std::string_view used_by;  // program names, space separated; "global" for all
};

// Sorted by name, byte order (as postconf sorts its output).
std::span<const ParameterDef> parameter_table();
const ParameterDef* find_parameter(std::string_view name);

struct ServiceParameterTemplate {
  std::string_view suffix;         // appended to the service name
  std::string_view default_value;  // e.g. "$default_destination_concurrency_limit"
  ParamType type;
  bool pipe_only;                  // only for services running pipe(8)
};
std::span<const ServiceParameterTemplate> service_parameter_templates();

// True when a master.cf command (argv[0]) is a delivery agent that qmgr
// schedules, so that per-transport parameters exist for its service.
bool is_delivery_agent_command(std::string_view command);

// Raw parameters are expanded by their users with per-request macros, never
// as main.cf values (postconf -x shows them unexpanded).
bool is_raw_parameter(std::string_view name);

// Parameters whose default we change on purpose (name, Postfix 3.7's value).
struct IntendedDifference {
  std::string_view name;
  std::string_view postfix_default;
};
std::span<const IntendedDifference> intended_differences();

}  // namespace mta::config
