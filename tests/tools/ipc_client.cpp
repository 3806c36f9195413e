// ipc_client: lib/ipc's driver for tests/integration/ipc_interop.sh.  Talks
// to real (or our) Postfix daemons over their sockets with lib/ipc.
//
// usage: ipc_client [-q queue_directory] [-t timeout_seconds] COMMAND ARGS
//   announce CLASS NAME [plain]     print the first list a service sends
//   rewrite RULE ADDRESS...         trivial-rewrite: one result per line
//   resolve SENDER ADDRESS...       trivial-rewrite: "transport=.. nexthop=..
//   verify SENDER ADDRESS...          recipient=.. flags=.." per address
//   showq                           the queue listing, in postqueue -j's format
//   raw CLASS NAME PROTOCOL|- plain|zero NAME=VALUE...
//                                   one request, print the reply list
//   bounce-append SERVICE QUEUE_ID ORIG RCPT OFFSET DSN_ORCPT NOTIFY STATUS ACTION REASON
//                                   append to a bounce/defer/trace log; prints status
//   cleanup-submit SENDER RECIPIENT put a small message on hold through the
//                                   cleanup service; prints queue_id, status
//   deliver-agent FILE              act as a delivery agent on fd 0 (under
//                                   spawn(8)): announce, read the request,
//                                   write it to FILE, wait for FILE.go (its
//                                   first line is the status to reply), reply
// Exit status: 0 done, 1 protocol or connection failure (message on stderr),
// 2 usage.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "ipc/service.hpp"
#include "log/log.hpp"

using namespace mta::ipc;
namespace proto = mta::ipc::proto;

namespace {

std::string queue_dir = "/var/spool/postfix";
Millis timeout = std::chrono::seconds(30);

[[noreturn]] void usage() {
  std::cerr << "usage: ipc_client [-q queue_directory] [-t seconds] announce|rewrite|resolve|verify|showq|raw|"
               "bounce-append|cleanup-submit|deliver-agent ARGS\n";
  std::exit(2);
}

int fail(const Status& st) {
  std::cerr << "ipc_client: " << st.message() << "\n";
  return 1;
}

ClientOptions client_options(std::string_view protocol, Format format = Format::zero) {
  ClientOptions o;
  o.protocol = std::string(protocol);
  o.format = format;
  o.connect = {.timeout = timeout, .attempts = 1};
  o.max_attempts = 1;
  return o;
}

// postqueue's json_quote().
std::string json(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return printable(out);
}

int cmd_announce(std::vector<std::string> args) {
  if (args.size() < 2) usage();
  Format f = args.size() > 2 && args[2] == "plain" ? Format::plain : Format::zero;
  Channel ch;
  if (Status st = connect_service(ch, queue_dir, args[0], args[1], {.timeout = timeout}, f); !st) return fail(st);
  AttrList list;
  if (Status st = ch.read_list(list); !st) return fail(st);
  std::cout << list.to_string() << "\n";
  return 0;
}

int cmd_rewrite(std::vector<std::string> args) {
  if (args.size() < 2) usage();
  ServiceClient client(queue_dir, "private", "rewrite", client_options(proto::kProtoTrivialRewrite));
  for (size_t i = 1; i < args.size(); ++i) {
    proto::RewriteRequest req;
    req.rule = args[0];
    req.address = args[i];
    proto::RewriteReply reply;
    if (Status st = client.call(req, reply); !st) return fail(st);
    std::cout << reply.address << "\n";
  }
  return 0;
}

int cmd_resolve(std::string_view request, std::vector<std::string> args) {
  if (args.size() < 2) usage();
  ServiceClient client(queue_dir, "private", "rewrite", client_options(proto::kProtoTrivialRewrite));
  for (size_t i = 1; i < args.size(); ++i) {
    proto::ResolveRequest req;
    req.request = std::string(request);
    req.sender = args[0];
    req.address = args[i];
    proto::ResolveReply reply;
    if (Status st = client.call(req, reply); !st) return fail(st);
    std::cout << "transport=" << reply.transport << " nexthop=" << reply.nexthop << " recipient=" << reply.recipient
              << " flags=" << reply.flags << "\n";
  }
  return 0;
}

int cmd_showq() {
  Channel ch;
  if (Status st = connect_service(ch, queue_dir, "public", "showq", {.timeout = timeout}); !st) return fail(st);
  if (Status st = ch.expect_announcement(proto::kProtoShowq); !st) return fail(st);
  std::vector<proto::ShowqMessage> list;
  if (Status st = proto::read_showq_listing(ch, list); !st) return fail(st);
  for (const auto& m : list) {
    std::cout << "{\"queue_name\": \"" << json(m.queue_name) << "\", \"queue_id\": \"" << json(m.queue_id)
              << "\", \"arrival_time\": " << m.arrival_time << ", \"message_size\": " << m.size
              << ", \"forced_expire\": " << (m.forced_expire ? "true" : "false") << ", \"sender\": \""
              << json(m.sender) << "\", \"recipients\": [";
    for (size_t i = 0; i < m.recipients.size(); ++i) {
      if (i) std::cout << ", ";
      std::cout << "{\"address\": \"" << json(m.recipients[i].address) << "\"";
      if (!m.recipients[i].reason.empty()) std::cout << ", \"delay_reason\": \"" << json(m.recipients[i].reason) << "\"";
      std::cout << "}";
    }
    std::cout << "]}\n";
  }
  return 0;
}

int cmd_raw(std::vector<std::string> args) {
  if (args.size() < 4) usage();
  Format f = args[3] == "plain" ? Format::plain : Format::zero;
  AttrList req;
  for (size_t i = 4; i < args.size(); ++i) {
    auto eq = args[i].find('=');
    if (eq == std::string::npos) usage();
    req.add(args[i].substr(0, eq), args[i].substr(eq + 1));
  }
  ServiceClient client(queue_dir, args[0], args[1], client_options(args[2] == "-" ? "" : args[2], f));
  AttrList reply;
  if (Status st = client.call(req, reply); !st) return fail(st);
  for (const auto& a : reply) std::cout << a.name << "=" << a.value << "\n";
  return 0;
}

int cmd_bounce_append(std::vector<std::string> a) {
  if (a.size() != 10) usage();
  proto::BounceAppendRequest req;
  req.flags = proto::kBounceFlagNone;
  req.queue_id = a[1];
  req.rcpt = {a[2], a[3], std::stol(a[4]), a[5], std::stoi(a[6])};
  req.dsn = {a[7], "", "", "", "", a[8], a[9]};
  ServiceClient client(queue_dir, "private", a[0], client_options(proto::kProtoBounce));
  proto::StatusReply reply;
  if (Status st = client.call(req, reply); !st) return fail(st);
  std::cout << "status=" << reply.status << "\n";
  return 0;
}

// A queue-file record (type byte, base-128 length, data): just enough for
// a tiny message; lib/queue owns the real record code.
void put_record(std::string& out, char type, std::string_view data) {
  out += type;
  size_t len = data.size();
  do {
    unsigned char b = len & 0x7f;
    len >>= 7;
    if (len) b |= 0x80;
    out += static_cast<char>(b);
  } while (len);
  out += data;
}

int cmd_cleanup_submit(std::vector<std::string> args) {
  if (args.size() != 2) usage();
  Channel ch;
  if (Status st = connect_service(ch, queue_dir, "public", "cleanup", {.timeout = timeout}); !st) return fail(st);
  proto::CleanupHello hello;
  if (Status st = ch.read(hello); !st) return fail(st);
  if (Status st = ch.write(proto::CleanupOpen{proto::kCleanupFlagHold}); !st) return fail(st);
  std::string recs;
  put_record(recs, 'T', std::to_string(std::time(nullptr)) + " 0");  // REC_TYPE_TIME
  put_record(recs, 'S', args[0]);                                    // REC_TYPE_FROM
  put_record(recs, 'R', args[1]);                                    // REC_TYPE_RCPT
  put_record(recs, 'M', "");                                         // REC_TYPE_MESG
  put_record(recs, 'N', "Received: by ipc.test (ipc_client); Sun, 22 Nov 2026 11:00:00 +0000");
  put_record(recs, 'N', "Subject: lib/ipc cleanup interop");
  put_record(recs, 'N', "");
  put_record(recs, 'N', "hello");
  put_record(recs, 'X', "");  // REC_TYPE_XTRA
  put_record(recs, 'E', "");  // REC_TYPE_END
  if (!ch.stream().write(recs)) return fail(write_failure(ch.stream()));
  if (Status st = ch.flush(); !st) return fail(st);
  proto::CleanupReply reply;
  if (Status st = ch.read(reply); !st) return fail(st);
  std::cout << "queue_id=" << hello.queue_id << " status=" << reply.status << " reason=" << reply.reason << "\n";
  return 0;
}

int cmd_deliver_agent(std::vector<std::string> args) {
  if (args.size() != 1) usage();
  const std::string out = args[0];
  Channel ch = server_channel(0, "delivery agent socket", Format::zero, timeout);
  if (Status st = ch.announce(proto::kProtoDeliver); !st) return fail(st);
  proto::DeliverRequest req;
  if (Status st = proto::read_deliver_request(ch, req); !st) {
    (void)reply(ch, proto::DeliverReply{{}, -1});
    return fail(st);
  }
  {
    std::ofstream f(out + ".tmp");
    f << "queue_name=" << req.queue_name << "\nqueue_id=" << req.queue_id << "\nflags=" << req.flags
      << "\nsize=" << req.data_size << "\nnexthop=" << req.nexthop << "\nsender=" << req.sender
      << "\nclient_name=" << req.client_name << "\nclient_address=" << req.client_addr
      << "\nprotocol=" << req.client_proto << "\nlog_ident=" << req.log_ident
      << "\nrewrite_context=" << req.rewrite_context << "\narrival=" << req.stats.incoming_arrival.sec
      << "\nrecipient_count=" << req.recipient_count << "\n";
    for (const auto& r : req.recipients)
      f << "recipient=" << r.orig_addr << "|" << r.address << "|" << r.offset << "|" << r.dsn_orcpt << "|"
        << r.dsn_notify << "\n";
  }
  std::filesystem::rename(out + ".tmp", out);
  // The test answers through FILE.go: the status to reply.
  int status = -1;
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream go(out + ".go");
    if (go && go >> status) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (Status st = reply(ch, proto::DeliverReply{{}, status}); !st) return fail(st);
  await_close(ch);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mta::log::init(argv[0]);
  int ch;
  while ((ch = getopt(argc, argv, "+q:t:")) > 0) {
    switch (ch) {
      case 'q': queue_dir = optarg; break;
      case 't': timeout = std::chrono::seconds(std::atoi(optarg)); break;
      default: usage();
    }
  }
  if (optind >= argc) usage();
  std::string cmd = argv[optind];
  std::vector<std::string> args(argv + optind + 1, argv + argc);
  if (cmd == "announce") return cmd_announce(args);
  if (cmd == "rewrite") return cmd_rewrite(args);
  if (cmd == "resolve") return cmd_resolve(proto::kResolveRequest, args);
  if (cmd == "verify") return cmd_resolve(proto::kVerifyRequest, args);
  if (cmd == "showq") return cmd_showq();
  if (cmd == "raw") return cmd_raw(args);
  if (cmd == "bounce-append") return cmd_bounce_append(args);
  if (cmd == "cleanup-submit") return cmd_cleanup_submit(args);
  if (cmd == "deliver-agent") return cmd_deliver_agent(args);
  usage();
}
