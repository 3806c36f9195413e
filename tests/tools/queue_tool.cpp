// queue_tool: drives lib/queue from the integration tests.
//
//   queue_tool write QUEUE_DIR [-q QUEUE] [-l] [-H DEPTH] [-t SEC.USEC] [-s SENDER]
//              [-F FULLNAME] [-a NAME=VALUE]... [-w WARN] [-L LINE_LIMIT]
//              [-r RCPT[,ORIG[,NOTIFY[,ORCPT]]]]... [-x RCPT]... [-m]  < message
//       writes a queue file as cleanup would (message lines from stdin,
//       without their line ends; -x adds extracted-segment recipients) and
//       prints "ID PATH"; -m writes a maildrop file as postdrop would
//       instead (queue maildrop, no size record or original recipients,
//       mode 0744)
//   queue_tool records FILE      the records as postcat prints them
//   queue_tool show FILE         what QueueFileReader understood
//   queue_tool mark-done FILE ADDRESS   marks that recipient's record done
//   queue_tool maildrop FILE     a maildrop file as pickup reads it
//   queue_tool path QUEUE_DIR QUEUE ID [DEPTH]   where the file lives
//   queue_tool dirs QUEUE_DIR [set-permissions] [MAIL_OWNER SETGID_GROUP]
//       makes the queue directories (owners when root and names are given)
//
// Exit status 0 on success, 1 with a message on standard error otherwise.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "queue/maildrop_file.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "queue/record.hpp"

using namespace mta::queue;

namespace {

int die(const std::string& message) {
  std::cerr << "queue_tool: " << message << "\n";
  return 1;
}

std::string ctime_text(long when) {
  time_t t = static_cast<time_t>(when);
  return std::asctime(std::localtime(&t));  // ends in a newline, as in postcat
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

int cmd_write(int argc, char** argv) {
  if (argc < 3) return die("usage: write QUEUE_DIR [options]");
  std::string queue_dir = argv[2];
  CreateOptions create;
  std::string queue = "incoming";
  int depth = 1;
  timeval arrival{};
  ::gettimeofday(&arrival, nullptr);
  std::string sender, fullname;
  bool have_fullname = false;
  std::vector<std::string> attrs, rcpts, extracted;
  long warn = 0;
  size_t line_limit = 2048;
  bool maildrop = false;
  for (int i = 3; i < argc; ++i) {
    std::string opt = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (opt == "-q") queue = value();
    else if (opt == "-l") create.long_queue_id = true;
    else if (opt == "-H") depth = std::stoi(value());
    else if (opt == "-t") {
      auto parts = split(value(), '.');
      arrival.tv_sec = std::stol(parts[0]);
      arrival.tv_usec = parts.size() > 1 ? std::stol(parts[1]) : 0;
    } else if (opt == "-s") sender = value();
    else if (opt == "-F") fullname = value(), have_fullname = true;
    else if (opt == "-a") attrs.push_back(value());
    else if (opt == "-r") rcpts.push_back(value());
    else if (opt == "-x") extracted.push_back(value());
    else if (opt == "-w") warn = std::stol(value());
    else if (opt == "-L") line_limit = std::stoul(value());
    else if (opt == "-m") maildrop = true, queue = "maildrop";
    else return die("unknown option " + opt);
  }
  create.queue = queue;
  if (maildrop) create.extra_mode = 0044;
  QueueLayout layout(queue_dir, {"deferred", "defer"}, depth);
  std::string error;
  auto w = QueueFileWriter::create(layout, create, &error);
  if (!w) return die(error);
  if (!maildrop) w->put_size_placeholder();
  w->put_time(arrival);
  if (!maildrop) w->put_attribute("create_time", std::to_string(arrival.tv_sec));
  for (const std::string& a : attrs) w->put(rec::kAttr, a);
  if (have_fullname) w->put(rec::kFullName, fullname);
  w->put_sender(sender);
  if (warn > 0) w->put_warn_time(warn);
  for (const std::string& r : rcpts) {
    auto f = split(r, ',');
    int notify = f.size() > 2 && !f[2].empty() ? std::stoi(f[2]) : 0;
    if (maildrop) {  // postdrop: [A notify_flags] R
      if (notify) w->put_attribute("notify_flags", std::to_string(notify));
      w->put(rec::kRcpt, f[0]);
      continue;
    }
    w->put_recipient(f[0], f.size() > 1 ? f[1] : f[0], f.size() > 3 ? f[3] : "", notify);
  }
  w->begin_content();
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    w->put_line(line, line_limit);
  }
  w->begin_extracted();
  for (const std::string& r : extracted) maildrop ? void(w->put(rec::kRcpt, r)) : void(w->put_recipient(r, r));
  w->put_end();
  std::string id = w->id(), path = w->path();
  if (!w->finish(&error)) return die(error);
  std::cout << id << " " << path << "\n";
  return 0;
}

// postcat's default output (-beh), from the raw records.
int cmd_records(const std::string& path) {
  auto reader = QueueFileReader::open(path, false, nullptr);
  int fd = reader ? reader->fd() : -1;
  if (fd < 0) return die("cannot open " + path);
  RecordReader in(fd, path);
  Record r;
  std::string out = "*** ENVELOPE RECORDS " + path + " ***\n";
  bool content = false;
  char prev = 0;
  for (;;) {
    ReadStatus status = in.next(r);
    if (status == ReadStatus::eof) break;
    if (status == ReadStatus::error) {
      std::cout << out;
      return die(in.error());
    }
    switch (r.type) {
      case rec::kMessage:
        out += "*** MESSAGE CONTENTS " + path + " ***\n";
        content = true;
        break;
      case rec::kExtracted:
        if (prev == rec::kCont) out += "\n";
        out += "*** HEADER EXTRACTED " + path + " ***\n";
        content = false;
        break;
      case rec::kEnd:
        out += "*** MESSAGE FILE END " + path + " ***\n";
        std::cout << out;
        return 0;
      case rec::kTime:
        out += "message_arrival_time: " + ctime_text(parse_time_record(r.data).value_or(timeval{}).tv_sec);
        break;
      case rec::kWarn:
        out += "warning_message_time: " + ctime_text(parse_number(r.data).value_or(0));
        break;
      case rec::kAttr: {
        std::string_view name, value;
        if (!split_attribute(r.data, &name, &value)) return die("malformed attribute " + r.data);
        if (name == attr::kCreateTime)
          out += "create_time: " + ctime_text(parse_number(value).value_or(0));
        else
          out += "named_attribute: " + std::string(name) + "=" + std::string(value) + "\n";
        break;
      }
      case rec::kNorm:
        if (content) {
          out += r.data + "\n";
          break;
        }
        [[fallthrough]];
      default:
        if (content && r.type == rec::kCont)
          out += r.data;
        else
          out += std::string(record_type_name(r.type)) + ": " + r.data + "\n";
    }
    prev = r.type;
  }
  std::cout << out;
  return 0;
}

int cmd_show(const std::string& path) {
  QueueMessage m;
  std::string error;
  if (!load_queue_file(path, &m, &error)) return die(error);
  const Envelope& e = m.envelope;
  if (e.size) std::cout << "message_size: " << format_size_record(*e.size) << "\n";
  if (e.arrival) std::cout << "message_arrival_time: " << ctime_text(e.arrival->tv_sec);
  if (e.create_time) std::cout << "create_time: " << ctime_text(*e.create_time);
  if (e.warn_time) std::cout << "warning_message_time: " << ctime_text(*e.warn_time);
  if (e.sender) std::cout << "sender: " << *e.sender << "\n";
  for (const Attribute& a : e.attributes)
    if (a.name != attr::kCreateTime) std::cout << "named_attribute: " << a.name << "=" << a.value << "\n";
  std::cout << "--recipients\n";
  for (const Recipient& r : e.recipients) {
    if (r.dsn_notify) std::cout << "named_attribute: notify_flags=" << r.dsn_notify << "\n";
    if (!r.dsn_orcpt.empty()) std::cout << "named_attribute: dsn_orig_rcpt=" << r.dsn_orcpt << "\n";
    if (r.original) std::cout << "original_recipient: " << *r.original << "\n";
    std::cout << record_type_name(r.status) << ": " << r.address << "\n";
  }
  std::cout << "--content\n";
  for (const std::string& line : m.lines) std::cout << line << "\n";
  std::cout << "--summary\n"
            << "header_lines=" << m.header_lines << " pending=" << e.pending_recipients()
            << " data_offset=" << e.data_offset << " xtra_offset=" << e.xtra_offset << "\n";
  return 0;
}

int cmd_mark_done(const std::string& path, const std::string& address) {
  std::string error;
  auto reader = QueueFileReader::open(path, true, &error);
  if (!reader) return die(error);
  if (!reader->lock(LockMode::exclusive, false, &error)) return die(error);
  Envelope e;
  if (!reader->read_envelope(&e, &error)) return die(error);
  int marked = 0;
  for (const Recipient& r : e.recipients) {
    if (r.address != address || !r.pending()) continue;
    if (!reader->mark_done(r, &error)) return die(error);
    ++marked;
  }
  if (marked == 0) return die("no pending recipient " + address);
  ::fsync(reader->fd());
  return 0;
}

int cmd_maildrop(const std::string& path) {
  MaildropFile f;
  std::string error;
  if (!load_maildrop_file(path, &f, &error)) return die(error);
  auto dump = [](const char* segment, const std::vector<Record>& records) {
    for (const Record& r : records) std::cout << segment << " " << r.type << " " << r.data << "\n";
  };
  dump("envelope", f.envelope);
  dump("content", f.content);
  dump("extracted", f.extracted);
  std::cout << "sender=" << f.info.sender.value_or("(none)") << " recipients=" << f.info.recipients << "\n";
  return 0;
}

int cmd_dirs(int argc, char** argv) {
  if (argc < 3) return die("usage: dirs QUEUE_DIR [set-permissions] [MAIL_OWNER SETGID_GROUP]");
  QueueLayout layout(argv[2]);
  DirSetup how = DirSetup::create;
  int i = 3;
  if (i < argc && std::string(argv[i]) == "set-permissions") how = DirSetup::set_permissions, ++i;
  QueueOwners owners;
  if (i + 1 < argc && ::geteuid() == 0) {
    const passwd* pw = ::getpwnam(argv[i]);
    const group* gr = ::getgrnam(argv[i + 1]);
    if (!pw || !gr) return die("unknown user or group");
    owners.change_owners = true;
    owners.mail_owner_uid = pw->pw_uid;
    owners.setgid_gid = gr->gr_gid;
  }
  std::vector<std::string> changes;
  std::string error;
  if (!setup_queue_directories(layout, owners, how, &changes, &error)) return die(error);
  for (const std::string& c : changes) std::cout << c << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return die("usage: queue_tool write|records|show|mark-done|maildrop|path|dirs ...");
  std::string cmd = argv[1];
  try {
    if (cmd == "write") return cmd_write(argc, argv);
    if (cmd == "records" && argc == 3) return cmd_records(argv[2]);
    if (cmd == "show" && argc == 3) return cmd_show(argv[2]);
    if (cmd == "mark-done" && argc == 4) return cmd_mark_done(argv[2], argv[3]);
    if (cmd == "maildrop" && argc == 3) return cmd_maildrop(argv[2]);
    if (cmd == "path" && argc >= 5) {
      QueueLayout layout(argv[2], {"deferred", "defer"}, argc > 5 ? std::atoi(argv[5]) : 1);
      std::cout << layout.path(argv[3], argv[4]) << "\n";
      return 0;
    }
    if (cmd == "dirs") return cmd_dirs(argc, argv);
  } catch (const std::exception& e) {
    return die(e.what());
  }
  return die("bad command or arguments: " + cmd);
}
