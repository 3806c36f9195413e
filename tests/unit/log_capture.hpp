// log_capture.hpp: unit tests that check log lines send them to a file of
// their own (log::set_file) and read it back; stderr is quiet meanwhile.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "log/log.hpp"

namespace mta::test {

struct LogCapture {
  std::filesystem::path dir;
  explicit LogCapture(const std::string& program = "smtp")
      : dir(std::filesystem::temp_directory_path() / ("mta-log-" + program + "-" + std::to_string(getpid()))) {
    std::filesystem::create_directories(dir);
    log::init(program);
    log::set_stderr(false);
    REQUIRE(log::set_file((dir / "log").string()));
  }
  ~LogCapture() {
    log::set_file("");
    log::set_stderr(true);
    std::filesystem::remove_all(dir);
  }
  std::string text() const {
    std::ifstream in(dir / "log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

}  // namespace mta::test
