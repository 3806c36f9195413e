// interface_addresses.cpp: see interface_addresses.hpp.
#include "trivial-rewrite/interface_addresses.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/config.hpp"
#include "log/log.hpp"

namespace mta::rewrite {
namespace {

bool from_sockaddr(const sockaddr* sa, InterfaceAddresses::Address* out) {
  if (!sa) return false;
  if (sa->sa_family == AF_INET) {
    out->family = AF_INET;
    out->bytes.fill(0);
    std::memcpy(out->bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    out->family = AF_INET6;
    std::memcpy(out->bytes.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return true;
  }
  return false;
}

struct Families {
  bool v4 = false;
  bool v6 = false;
};

Families protocols(const config::Config& config) {
  Families f;
  for (const std::string& p : config.get_list("inet_protocols")) {
    if (p == "all") f.v4 = f.v6 = true;
    else if (p == "ipv4") f.v4 = true;
    else if (p == "ipv6") f.v6 = true;
  }
  return f;
}

bool wanted(const Families& f, int family) { return (family == AF_INET && f.v4) || (family == AF_INET6 && f.v6); }

}  // namespace

bool parse_numeric_address(std::string_view text, InterfaceAddresses::Address* out) {
  std::string s(text);
  InterfaceAddresses::Address a;
  if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
  } else if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
  } else {
    return false;
  }
  *out = a;
  return true;
}

void InterfaceAddresses::add(const Address& a) {
  if (std::find(addresses_.begin(), addresses_.end(), a) == addresses_.end()) addresses_.push_back(a);
}

InterfaceAddresses InterfaceAddresses::from_list(const std::vector<std::string>& numeric) {
  InterfaceAddresses out;
  for (const std::string& s : numeric) {
    Address a;
    if (parse_numeric_address(s, &a)) out.add(a);
  }
  return out;
}

InterfaceAddresses InterfaceAddresses::from_config(const config::Config& config) {
  InterfaceAddresses out;
  Families fam = protocols(config);
  auto add_name = [&](const std::string& parameter, std::string name) {
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
    Address a;
    if (parse_numeric_address(name, &a)) {
      if (wanted(fam, a.family)) out.add(a);
      return;
    }
    addrinfo hints{};
    hints.ai_family = fam.v4 && fam.v6 ? AF_UNSPEC : fam.v6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
    if (rc != 0) {
      log::warning("%s: host not found: %s (%s)", parameter.c_str(), name.c_str(), gai_strerror(rc));
      return;
    }
    for (addrinfo* ai = res; ai; ai = ai->ai_next)
      if (from_sockaddr(ai->ai_addr, &a) && wanted(fam, a.family)) out.add(a);
    ::freeaddrinfo(res);
  };

  std::vector<std::string> interfaces = config.get_list("inet_interfaces");
  bool all = false, loopback = false;
  for (const std::string& i : interfaces) {
    if (i == "all") all = true;
    else if (i == "loopback-only") loopback = true;
  }
  if (all || loopback) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        Address a;
        if (!from_sockaddr(ifa->ifa_addr, &a) || !wanted(fam, a.family)) continue;
        bool is_loopback = (a.family == AF_INET && a.bytes[0] == 127) ||
                           (a.family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(reinterpret_cast<const in6_addr*>(a.bytes.data())));
        if (all || is_loopback) out.add(a);
      }
      ::freeifaddrs(list);
    } else {
      log::warning("getifaddrs: %s", std::strerror(errno));
    }
  } else {
    for (const std::string& i : interfaces) add_name("inet_interfaces", i);
  }
  for (const std::string& p : config.get_list("proxy_interfaces")) add_name("proxy_interfaces", p);
  return out;
}

bool InterfaceAddresses::contains(std::string_view numeric) const {
  Address a;
  if (!parse_numeric_address(numeric, &a)) return false;
  return std::find(addresses_.begin(), addresses_.end(), a) != addresses_.end();
}

}  // namespace mta::rewrite
