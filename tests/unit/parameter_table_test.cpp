// The parameter table against Postfix 3.7.11's `postconf -d` (Debian 12),
// with Debian's master.cf supplying the per-transport parameters.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "config/config.hpp"

using namespace mta::config;
namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> reference() {
  std::ifstream in(std::string(MTA_TEST_DATA) + "/postfix-3.7-postconf-d.txt");
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find(" =");
    REQUIRE(eq != std::string::npos);
    out[line.substr(0, eq)] = eq + 3 <= line.size() ? line.substr(eq + 3) : "";
  }
  return out;
}

}  // namespace

TEST_CASE("the table is sorted and has no duplicates") {
  auto table = parameter_table();
  for (size_t i = 1; i < table.size(); ++i) CHECK(table[i - 1].name < table[i].name);
}

TEST_CASE("every default matches Postfix 3.7's postconf -d") {
  auto ref = reference();
  REQUIRE(ref.size() == 1043);
  fs::path dir = fs::temp_directory_path() / ("mta-table-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy_file(std::string(MTA_TEST_DATA) + "/debian-master.cf", dir / "master.cf",
                fs::copy_options::overwrite_existing);
  LoadOptions lo;
  lo.read_main_cf = false;
  lo.read_master_cf = true;
  lo.process_name = "postconf";
  Config c = Config::load(dir.string(), lo);
  fs::remove_all(dir);

  auto names = c.builtin_names();
  CHECK(names.size() == ref.size());
  size_t same = 0, computed = 0, intended = 0;
  for (const auto& [name, postfix_value] : ref) {
    INFO("parameter " << name);
    REQUIRE(c.is_builtin(name));
    std::string ours = c.default_value(name).value_or("<none>");
    const ParameterDef* def = find_parameter(name);
    if (def && def->computed != Computed::none) {
      ++computed;
      continue;  // host-dependent: compared with the live Postfix by the oracle test
    }
    bool is_intended = false;
    for (const IntendedDifference& d : intended_differences()) {
      if (d.name == name) {
        CHECK(postfix_value == d.postfix_default);
        CHECK(ours != postfix_value);
        is_intended = true;
        ++intended;
      }
    }
    if (is_intended) continue;
    CHECK(ours == postfix_value);
    if (ours == postfix_value) ++same;
  }
  WARN("parameter table: " << same << " of " << ref.size()
                           << " defaults identical to Postfix 3.7, " << computed
                           << " computed from the host, " << intended << " intended differences");
  CHECK(same + computed + intended == ref.size());
  CHECK(intended == 2);
}

TEST_CASE("computed defaults follow Postfix's rules") {
  LoadOptions lo;
  lo.read_main_cf = false;
  lo.process_name = "test-program";
  Config c = Config::load("/nonexistent", lo);
  std::string host = c.get("myhostname");
  CHECK(host.find('.') != std::string::npos);
  CHECK(c.get("mydomain") == host.substr(host.find('.') + 1));
  CHECK(c.get("process_id") == std::to_string(getpid()));
  CHECK(c.get("process_name") == "test-program");
  // Compatibility level 0: subnet style, so loopback shows as 127.0.0.0/8.
  CHECK(c.get("mynetworks").rfind("127.0.0.0/8", 0) == 0);
  c.set_override("mynetworks_style", "host");
  CHECK(c.get("mynetworks").rfind("127.0.0.1/32", 0) == 0);
  c.set_override("mynetworks_style", "class");
  CHECK(c.get("mynetworks").rfind("127.0.0.0/8", 0) == 0);
  c.set_override("inet_protocols", "ipv6");
  CHECK(c.get("mynetworks").find("127.") == std::string::npos);
  CHECK(c.get("mynetworks").find("[::1]/128") != std::string::npos);
  c.set_override("mynetworks_style", "bogus");
  CHECK_THROWS_WITH(c.get("mynetworks"), "unknown mynetworks_style parameter value: bogus");
}
