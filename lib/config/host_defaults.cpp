// host_defaults.cpp: see host_defaults.hpp.
#include "config/host_defaults.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "config/config_file.hpp"

namespace mta::config {
namespace {

constexpr const char* kDefaultDomain = "localdomain";

std::string gethostname_string() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

int prefix_length(const unsigned char* mask, size_t bytes) {
  int n = 0;
  for (size_t i = 0; i < bytes; ++i)
    for (int b = 7; b >= 0; --b)
      if (mask[i] & (1u << b)) ++n;
  return n;
}

void apply_prefix(unsigned char* addr, size_t bytes, int prefix) {
  for (size_t i = 0; i < bytes; ++i) {
    int keep = std::clamp(prefix - static_cast<int>(i) * 8, 0, 8);
    addr[i] &= static_cast<unsigned char>(keep == 0 ? 0 : (0xFF << (8 - keep)) & 0xFF);
  }
}

}  // namespace

std::string compute_myhostname(const std::optional<std::string>& mydomain) {
  std::string name = gethostname_string();
  if (name.find('.') == std::string::npos)
    name += "." + (mydomain && !mydomain->empty() ? *mydomain : std::string(kDefaultDomain));
  return name;
}

std::string compute_mydomain(const std::string& myhostname) {
  size_t dot = myhostname.find('.');
  if (dot == std::string::npos || dot + 1 >= myhostname.size()) return kDefaultDomain;
  return myhostname.substr(dot + 1);
}

std::string compute_mynetworks(std::string_view style, std::string_view inet_protocols) {
  if (style != "host" && style != "subnet" && style != "class")
    throw ConfigError("unknown mynetworks_style parameter value: " + std::string(style));
  bool v4 = false, v6 = false;
  {
    std::string protos(inet_protocols);
    for (char& c : protos)
      if (c == ',') c = ' ';
    size_t i = 0;
    while (i < protos.size()) {
      while (i < protos.size() && is_blank(protos[i])) ++i;
      size_t j = i;
      while (j < protos.size() && !is_blank(protos[j])) ++j;
      std::string p = protos.substr(i, j - i);
      if (p == "all") v4 = v6 = true;
      else if (p == "ipv4") v4 = true;
      else if (p == "ipv6") v6 = true;
      else if (!p.empty()) throw ConfigError("bad inet_protocols parameter value: " + std::string(inet_protocols));
      i = j;
    }
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.0/8";
  std::vector<std::string> four, six;
  for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr) continue;
    char text[INET6_ADDRSTRLEN];
    if (ifa->ifa_addr->sa_family == AF_INET && v4) {
      in_addr a = reinterpret_cast<sockaddr_in*>(ifa->ifa_addr)->sin_addr;
      auto* bytes = reinterpret_cast<unsigned char*>(&a);
      int prefix = 32;
      if (style == "subnet" && ifa->ifa_netmask) {
        in_addr m = reinterpret_cast<sockaddr_in*>(ifa->ifa_netmask)->sin_addr;
        prefix = prefix_length(reinterpret_cast<unsigned char*>(&m), 4);
      } else if (style == "class") {
        prefix = bytes[0] < 128 ? 8 : bytes[0] < 192 ? 16 : bytes[0] < 224 ? 24 : 32;
      }
      apply_prefix(bytes, 4, prefix);
      inet_ntop(AF_INET, &a, text, sizeof text);
      std::string net = std::string(text) + "/" + std::to_string(prefix);
      if (std::find(four.begin(), four.end(), net) == four.end()) four.push_back(net);
    } else if (ifa->ifa_addr->sa_family == AF_INET6 && v6) {
      in6_addr a = reinterpret_cast<sockaddr_in6*>(ifa->ifa_addr)->sin6_addr;
      int prefix = 128;
      if (style != "host" && ifa->ifa_netmask) {
        in6_addr m = reinterpret_cast<sockaddr_in6*>(ifa->ifa_netmask)->sin6_addr;
        prefix = prefix_length(m.s6_addr, 16);
      }
      apply_prefix(a.s6_addr, 16, prefix);
      inet_ntop(AF_INET6, &a, text, sizeof text);
      std::string net = "[";
      net.append(text).append("]/").append(std::to_string(prefix));
      if (std::find(six.begin(), six.end(), net) == six.end()) six.push_back(net);
    }
  }
  freeifaddrs(list);
  std::string out;
  for (const auto* group : {&four, &six})
    for (const std::string& n : *group) {
      if (!out.empty()) out += ' ';
      out += n;
    }
  return out;
}

}  // namespace mta::config
