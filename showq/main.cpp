// showq: list the mail queue for postqueue -p and -j (Postfix's showq(8)).
//
// usage: showq [generic daemon options]  (started by master; -S -u by
// postqueue when the mail system is down)
//
// A single-threaded server: for each client it announces
// mail_queue_list_protocol, then sends one attribute list per queued
// message (queue_report.hpp says what is in it), then a lone terminator.
// It takes no input from the client.  Run stand-alone (-S) with a pipe or
// file on standard output, the listing goes to standard output, as
// Postfix's stand-alone showq does.
//
// Parameters: queue_directory, hash_queue_names, hash_queue_depth,
// duplicate_filter_limit, empty_address_recipient, smtputf8_enable,
// ipc_timeout.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "config/config.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "queue/queue_dirs.hpp"
#include "server/server.hpp"
#include "showq/queue_report.hpp"

namespace {

using namespace mta;

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void serve(int fd, server::ServerContext& ctx) {
  showq::ReportOptions options;
  queue::QueueLayout layout(".");
  std::chrono::seconds timeout(3600);
  try {
    options.empty_address_recipient = ctx.config.get("empty_address_recipient");
    options.duplicate_filter_limit = static_cast<long>(ctx.config.get_int("duplicate_filter_limit"));
    options.utf8 = ctx.config.get_bool("smtputf8_enable");
    layout = queue::QueueLayout(".", ctx.config.get_list("hash_queue_names"),
                                static_cast<int>(ctx.config.get_int("hash_queue_depth")));
    timeout = std::chrono::seconds(ctx.config.get_time("ipc_timeout"));
  } catch (const config::ConfigError& e) {
    log::fatal("%s", e.what());
  }
  options.verbose = log::verbose_level() > 0;

  // Stand-alone, descriptor 0 is whatever the caller left there; the
  // listing goes to standard output.
  int out = fd == 0 && !is_socket(0) ? 1 : fd;
  ipc::Channel ch = ipc::server_channel(out, "showq socket", ipc::Format::zero, timeout);
  if (!ch.announce(ipc::proto::kProtoShowq)) return;
  bool client_gone = false;
  // As Postfix's showq, the listing goes out as the buffer fills, not one
  // write (and one wakeup of postqueue) per message.
  showq::list_queue("", layout, options, [&](const ipc::proto::ShowqMessage& msg) {
    if (!ipc::proto::write_showq_message(ch, msg)) {
      client_gone = true;
      return false;
    }
    return true;
  });
  if (!client_gone) (void)ipc::proto::write_showq_end(ch);
}

}  // namespace

int main(int argc, char** argv) {
  mta::server::SingleServer server;
  server.service = serve;
  return mta::server::run_single_server(argc, argv, server);
}
