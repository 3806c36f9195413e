// Config: main.cf over defaults, lazy expansion, typed values, -c handling.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"

using namespace mta::config;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-config-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

}  // namespace

TEST_CASE("main.cf overrides defaults, last assignment wins, values expand when used") {
  TempDir d;
  d.write("main.cf",
          "compatibility_level = 3.6\n"
          "myhostname = mx.example.org\n"
          "mydestination = $myhostname,\n  localhost\n"
          "mydestination = $myhostname, localhost.$mydomain\n"
          "message_size_limit = 1024000\n"
          "biff = no\n"
          "maximal_queue_lifetime = 2\n");
  Config c = Config::load(d.path.string());
  CHECK(*c.explicit_value("mydestination") == "$myhostname, localhost.$mydomain");
  CHECK(c.get("mydestination") == "mx.example.org, localhost.example.org");
  CHECK(c.get("mydomain") == "example.org");
  CHECK(c.get_int("message_size_limit") == 1024000);
  CHECK_FALSE(c.get_bool("biff"));
  CHECK(c.get_time("maximal_queue_lifetime", 'd') == 2 * 86400);
  CHECK(c.get_time("smtpd_timeout") == 300);  // ${stress?{10}:{300}}s
  CHECK(c.get("relay_domains").empty());     // level 3.6: {} rather than $mydestination
  CHECK(c.get("smtputf8_enable") == "yes");
  CHECK(c.get_list("mydestination") == std::vector<std::string>{"mx.example.org", "localhost.example.org"});
  // A non-default directory counts as set, as Postfix shows it in postconf -n.
  CHECK(*c.explicit_value("config_directory") == d.path.string());
}

TEST_CASE("compatibility_level changes the defaults that depend on it") {
  TempDir d;
  d.write("main.cf", "myhostname = h.example\n");
  Config c = Config::load(d.path.string());
  CHECK(c.get("compatibility_level") == "0");
  CHECK(c.get("relay_domains") == "h.example, localhost.example, localhost");
  CHECK(c.get("append_dot_mydomain") == "yes");
  CHECK(c.get("smtputf8_enable") == "no");
  c.set_override("compatibility_level", "2");
  CHECK(c.get("relay_domains").empty());
  CHECK(c.get("append_dot_mydomain") == "no");
  CHECK(c.get("smtp_tls_fingerprint_digest") == "md5");
  c.set_override("compatibility_level", "3.6");
  CHECK(c.get("smtp_tls_fingerprint_digest") == "sha256");
}

TEST_CASE("myhostname without a dot takes $mydomain") {
  TempDir d;
  d.write("main.cf", "mydomain = example.net\n");
  Config c = Config::load(d.path.string());
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  std::string h = buf;
  if (h.find('.') == std::string::npos) CHECK(c.get("myhostname") == h + ".example.net");
  CHECK(c.get("mydomain") == "example.net");
}

TEST_CASE("typed values fail with Postfix's messages") {
  TempDir d;
  d.write("main.cf", "biff = maybe\nmessage_size_limit = 10k\nsmtpd_timeout = 5x\nloop = $loop\n");
  Config c = Config::load(d.path.string());
  CHECK_THROWS_WITH(c.get_bool("biff"), "bad boolean configuration: biff = maybe");
  CHECK_THROWS_WITH(c.get_int("message_size_limit"),
                    "bad numerical configuration: message_size_limit = 10k");
  CHECK_THROWS_WITH(c.get_time("smtpd_timeout"),
                    "parameter smtpd_timeout: bad time value or unit: 5x");
  CHECK_THROWS_WITH(c.get("loop"), Catch::Contains("unreasonable macro call nesting"));
}

TEST_CASE("per-transport parameters exist for master.cf's delivery services") {
  TempDir d;
  d.write("main.cf", "relay_destination_concurrency_limit = 3\n");
  d.write("master.cf",
          "relay unix - - n - - smtp\n"
          "maildrop unix - n n - - pipe flags=DRXhu user=vmail argv=/usr/bin/maildrop\n"
          "discard unix - - n - - discard\n"
          "h unix - - n - - /usr/lib/postfix/sbin/local\n");
  LoadOptions lo;
  lo.read_master_cf = true;
  Config c = Config::load(d.path.string(), lo);
  CHECK(c.is_builtin("relay_destination_recipient_limit"));
  CHECK(c.get_int("relay_destination_concurrency_limit") == 3);
  CHECK(c.get_int("relay_destination_recipient_limit") == 50);
  CHECK(c.get_time("maildrop_time_limit") == 1000);
  CHECK_FALSE(c.is_builtin("relay_time_limit"));  // only pipe services have one
  CHECK_FALSE(c.is_builtin("discard_destination_concurrency_limit"));
  CHECK_FALSE(c.is_builtin("h_destination_concurrency_limit"));
  CHECK(c.get_int("local_destination_concurrency_limit") == 2);  // a built-in of its own
}

TEST_CASE("a missing or broken main.cf is an error naming it") {
  TempDir d;
  CHECK_THROWS_WITH(Config::load(d.path.string()),
                    "open " + (d.path / "main.cf").string() + ": No such file or directory");
  d.write("main.cf", "ok = 1\nnot an assignment\n");
  CHECK_THROWS_WITH(Config::load(d.path.string()),
                    (d.path / "main.cf").string() +
                        ", line 2: missing '=' after attribute name: \"not an assignment\"");
}

TEST_CASE("alternate_config_directories blesses other configuration directories (mail_conf_checkdir)") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("mta-altcfg-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string main_cf = (dir / "main.cf").string();
  std::ofstream(main_cf) << "# alternate_config_directories = /commented\n"
                            "myhostname = x.example\n"
                            "alternate_config_directories = /etc/postfix-out,\n"
                            "    /srv/mta/instance\n"
                            "  # a comment line inside\n"
                            "# a comment in column 0 does not end the value\n"
                            "    $other_dirs\n"
                            "multi_instance_directories = /var/lib/postfix-b\r\n";
  using mta::config::Config;
  CHECK(Config::listed_as_alternate("/etc/postfix-out", main_cf));
  CHECK(Config::listed_as_alternate("/srv/mta/instance", main_cf));
  CHECK_FALSE(Config::listed_as_alternate("/srv/mta", main_cf));
  CHECK_FALSE(Config::listed_as_alternate("/commented", main_cf));
  // Literal text only: $names are not expanded.
  CHECK(Config::listed_as_alternate("$other_dirs", main_cf));
  CHECK(Config::listed_as_alternate("/var/lib/postfix-b", main_cf));
  CHECK_THROWS_WITH(Config::listed_as_alternate("/x", (dir / "missing").string()),
                    "open file " + (dir / "missing").string() + ": No such file or directory");
  fs::remove_all(dir);
}
