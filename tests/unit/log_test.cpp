// lib/log: Postfix's line shape, prefixes and sinks.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "log/log.hpp"

namespace fs = std::filesystem;

TEST_CASE("file lines have Postfix's shape and the syslog_name/program tag") {
  mta::log::init("/usr/lib/postfix/sbin/smtpd");
  mta::log::set_syslog_name("postfix/submission");
  CHECK(mta::log::tag() == "postfix/submission/smtpd");
  mta::log::set_syslog_name("postfix");
  std::string line = mta::log::format_file_line("connect from localhost[127.0.0.1]");
  std::regex shape(R"(^[A-Z][a-z]{2} [0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [^ .]+ postfix/smtpd\[)" +
                   std::to_string(getpid()) + R"(\]: connect from localhost\[127\.0\.0\.1\]$)");
  CHECK(std::regex_match(line, shape));
}

TEST_CASE("levels carry Postfix's prefixes in the log file") {
  fs::path file = fs::temp_directory_path() / ("mta-log-" + std::to_string(getpid()));
  mta::log::init("postconf");
  mta::log::set_stderr(false);
  std::string err;
  REQUIRE(mta::log::set_file(file.string(), &err));
  mta::log::info("plain %d", 1);
  mta::log::warning("careful");
  mta::log::error("bad %s", "thing");
  mta::log::debug("hidden");
  mta::log::set_verbose(1);
  mta::log::debug("shown");
  mta::log::set_verbose(0);
  mta::log::set_file("");
  mta::log::set_stderr(true);
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  fs::remove(file);
  std::string text = ss.str();
  CHECK(text.find("postfix/postconf[" + std::to_string(getpid()) + "]: plain 1\n") != std::string::npos);
  CHECK(text.find("]: warning: careful\n") != std::string::npos);
  CHECK(text.find("]: error: bad thing\n") != std::string::npos);
  CHECK(text.find("hidden") == std::string::npos);
  CHECK(text.find("]: shown\n") != std::string::npos);
}

TEST_CASE("an unopenable log file is reported") {
  std::string err;
  CHECK_FALSE(mta::log::set_file("/nonexistent-dir/maillog", &err));
  CHECK(err == "open /nonexistent-dir/maillog: No such file or directory");
}

TEST_CASE("fatal logs and exits 1") {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mta::log::init("child");
    mta::log::set_stderr(false);
    mta::log::fatal("stop");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
}

#include "config/log_setup.hpp"

TEST_CASE("maillog_file must match maillog_file_prefixes") {
  fs::path dir = fs::temp_directory_path() / ("mta-logsetup-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "main.cf") << "maillog_file = " << (dir / "maillog").string()
                                 << "\nsyslog_name = postfix/test\n";
  auto c = mta::config::Config::load(dir.string());
  // The default prefixes are /var and /dev/stdout.
  CHECK_THROWS_WITH(mta::config::setup_logging(c, false),
                    "maillog_file value '" + (dir / "maillog").string() +
                        "' does not match any prefix in maillog_file_prefixes");
  c.set_override("maillog_file_prefixes", dir.string());
  mta::log::init("/usr/sbin/postqueue");
  mta::config::setup_logging(c, false);
  mta::log::info("hello");
  mta::log::set_file("");
  mta::log::set_stderr(true);
  std::ifstream in(dir / "maillog");
  std::string line;
  std::getline(in, line);
  fs::remove_all(dir);
  CHECK(line.find(" postfix/test/postqueue[") != std::string::npos);
  CHECK(line.size() > 6);
  CHECK(line.substr(line.size() - 8) == "]: hello");
}
