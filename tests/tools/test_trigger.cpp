// test_trigger: a trigger-server worker for testing master's wakeup timers;
// appends every trigger it receives to trigger.log in the queue directory.
#include <fstream>

#include "server/server.hpp"

int main(int argc, char** argv) {
  mta::server::TriggerServer s;
  s.trigger = [](std::string_view bytes, mta::server::ServerContext&) {
    std::ofstream("trigger.log", std::ios::app) << bytes;
  };
  return mta::server::run_trigger_server(argc, argv, s);
}
