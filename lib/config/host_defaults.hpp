// host_defaults.hpp: the defaults that Postfix computes from the host.
//
// myhostname: the FQDN from gethostname(), or the short name with
// ".$mydomain" appended (mydomain from main.cf, else "localdomain").
// mydomain: $myhostname minus its first label, or "localdomain".
// mynetworks: the networks of the local interfaces per mynetworks_style
// (host: each address; subnet: each interface's subnet; class: the
// classful A/B/C network for IPv4, the subnet for IPv6), limited to the
// families of inet_protocols, IPv4 first, IPv6 in brackets, duplicates
// dropped.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mta::config {

std::string compute_myhostname(const std::optional<std::string>& mydomain);
std::string compute_mydomain(const std::string& myhostname);
// Throws ConfigError for an unknown style or protocol.
std::string compute_mynetworks(std::string_view style, std::string_view inet_protocols);

}  // namespace mta::config
