// interface_addresses.hpp: the network addresses this mail system receives
// mail on (Postfix's own_inet_addr and proxy_inet_addr): an address literal
// such as user@[192.0.2.1] is local when its address is one of them.
//
// inet_interfaces: "all" means every address of the host's interfaces,
// "loopback-only" the loopback addresses, otherwise the listed host names
// and addresses; proxy_interfaces lists more (a NAT or proxy in front).
// inet_protocols limits the address families.  Names are resolved once,
// when the list is built.
#pragma once

#include <netinet/in.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace mta::config {
class Config;
}

namespace mta::rewrite {

class InterfaceAddresses {
 public:
  struct Address {
    int family = AF_INET;
    std::array<unsigned char, 16> bytes{};
    bool operator==(const Address&) const = default;
  };

  InterfaceAddresses() = default;
  // Reads inet_interfaces, proxy_interfaces and inet_protocols.  Names
  // that do not resolve are logged as warnings and skipped.
  static InterfaceAddresses from_config(const config::Config& config);
  // For tests: exactly these numeric addresses.
  static InterfaceAddresses from_list(const std::vector<std::string>& numeric);

  // A numeric address (IPv4 dotted quad or IPv6, no brackets or prefix).
  bool contains(std::string_view numeric) const;
  const std::vector<Address>& addresses() const { return addresses_; }

 private:
  void add(const Address& a);
  std::vector<Address> addresses_;
};

// An IPv4 or IPv6 numeric address in binary form.
bool parse_numeric_address(std::string_view text, InterfaceAddresses::Address* out);

}  // namespace mta::rewrite
