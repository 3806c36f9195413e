// tr_probe: asks a trivial-rewrite service (ours or Postfix's, under any
// service name) many questions over one connection, and plays qmgr towards
// a delivery agent; for tests/integration/trivial_rewrite_interop.sh and
// error_discard_interop.sh.
//
// usage: tr_probe -q QUEUE_DIRECTORY [-t SECONDS] COMMAND ARGS
//   rewrite SERVICE     stdin: "RULE<TAB>ADDRESS" lines; stdout: one line
//                       per query, the rewritten address
//   resolve SERVICE     stdin: "resolve|verify<TAB>SENDER<TAB>ADDRESS" lines;
//                       stdout: "TRANSPORT<TAB>NEXTHOP<TAB>RECIPIENT<TAB>FLAGS"
//     (a query that makes the server hang up prints "ERROR: reason", and
//     the next query reconnects)
//   deliver SERVICE QUEUE_NAME QUEUE_ID NEXTHOP [FLAGS]
//                       reads the queue file, sends the delivery request
//                       that qmgr would (its pending recipients, with
//                       their record offsets) to private/SERVICE, and
//                       prints the agent's reply "status=N" and the hop DSN
//                       (a file that cannot be read gives a request for
//                       one made-up recipient)
// Exit status: 0 done, 1 failure (message on stderr), 2 usage.
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"

using namespace mta::ipc;
namespace proto = mta::ipc::proto;

namespace {

std::string queue_dir;
Millis timeout = std::chrono::seconds(30);

[[noreturn]] void usage() {
  std::cerr << "usage: tr_probe -q QUEUE_DIRECTORY [-t SECONDS] rewrite|resolve SERVICE < queries\n"
               "       tr_probe -q QUEUE_DIRECTORY [-t SECONDS] deliver SERVICE QUEUE_NAME QUEUE_ID NEXTHOP [FLAGS]\n";
  std::exit(2);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

ClientOptions options() {
  ClientOptions o;
  o.protocol = std::string(proto::kProtoTrivialRewrite);
  o.connect = {.timeout = timeout, .attempts = 1};
  o.max_attempts = 1;
  return o;
}

int cmd_rewrite(const std::string& service) {
  ServiceClient client(queue_dir, "private", service, options());
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> f = split_tabs(line);
    if (f.size() != 2) usage();
    proto::RewriteRequest req;
    req.rule = f[0];
    req.address = f[1];
    proto::RewriteReply reply;
    if (Status st = client.call(req, reply); !st)
      std::cout << "ERROR: " << st.message() << "\n";
    else
      std::cout << reply.address << "\n";
  }
  return 0;
}

int cmd_resolve(const std::string& service) {
  ServiceClient client(queue_dir, "private", service, options());
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> f = split_tabs(line);
    if (f.size() != 3) usage();
    proto::ResolveRequest req;
    req.request = f[0];
    req.sender = f[1];
    req.address = f[2];
    proto::ResolveReply reply;
    if (Status st = client.call(req, reply); !st)
      std::cout << "ERROR: " << st.message() << "\n";
    else
      std::cout << reply.transport << "\t" << reply.nexthop << "\t" << reply.recipient << "\t" << reply.flags << "\n";
  }
  return 0;
}

int cmd_deliver(const std::vector<std::string>& args) {
  if (args.size() < 4) usage();
  const std::string& service = args[0];
  mta::queue::QueueLayout layout(queue_dir);
  std::string path = layout.queue_directory() + "/" + layout.relative_path(args[1], args[2]);
  std::string error;
  mta::queue::QueueMessage msg;
  if (!mta::queue::load_queue_file(path, &msg, &error)) {
    // Still send a request, as a qmgr would for a file that went away.
    std::cerr << "tr_probe: " << error << " (sending a request for one made-up recipient)\n";
    mta::queue::Recipient r;
    r.address = "nobody@missing.test";
    r.offset = 100;
    msg.envelope.recipients.push_back(r);
  }
  const mta::queue::Envelope& e = msg.envelope;
  proto::DeliverRequest req;
  req.flags = args.size() > 4 ? std::atoi(args[4].c_str()) : 3;
  req.queue_name = args[1];
  req.queue_id = args[2];
  req.data_offset = static_cast<long>(e.data_offset);
  req.data_size = e.size ? e.size->message_size : 0;
  req.nexthop = args[3];
  req.sender = e.sender.value_or("");
  req.dsn_envid = e.dsn_envid.value_or("");
  req.dsn_ret = e.dsn_ret;
  timeval now{};
  gettimeofday(&now, nullptr);
  if (e.arrival) req.stats.incoming_arrival = {e.arrival->tv_sec, e.arrival->tv_usec};
  req.stats.active_arrival = {now.tv_sec, now.tv_usec};
  req.log_ident = args[2];
  req.rewrite_context = "local";
  for (const mta::queue::Recipient& r : e.recipients) {
    if (!r.pending()) continue;
    proto::Recipient pr;
    pr.orig_addr = r.original.value_or("");
    pr.address = r.address;
    pr.offset = static_cast<long>(r.offset);
    pr.dsn_orcpt = r.dsn_orcpt;
    pr.dsn_notify = r.dsn_notify;
    req.recipients.push_back(std::move(pr));
  }
  Channel ch;
  if (Status st = connect_service(ch, queue_dir, "private", service, {.timeout = timeout}); !st) {
    std::cerr << "tr_probe: " << st.message() << "\n";
    return 1;
  }
  proto::DeliverReply reply;
  Status st = ch.expect_announcement(proto::kProtoDeliver);
  if (st) st = proto::write_deliver_request(ch, req);
  if (st) st = ch.read(reply);
  if (!st) {
    std::cerr << "tr_probe: " << st.message() << "\n";
    return 1;
  }
  std::cout << "status=" << reply.status << "\n"
            << "hop_status=" << reply.hop_status.status << "|" << reply.hop_status.action << "|"
            << reply.hop_status.reason << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int c;
  while ((c = getopt(argc, argv, "q:t:")) != -1) {
    switch (c) {
      case 'q': queue_dir = optarg; break;
      case 't': timeout = std::chrono::seconds(std::atoi(optarg)); break;
      default: usage();
    }
  }
  if (queue_dir.empty() || optind >= argc) usage();
  std::string cmd = argv[optind];
  std::vector<std::string> args(argv + optind + 1, argv + argc);
  if ((cmd == "rewrite" || cmd == "resolve") && args.size() == 1)
    return cmd == "rewrite" ? cmd_rewrite(args[0]) : cmd_resolve(args[0]);
  if (cmd == "deliver") return cmd_deliver(args);
  usage();
}
