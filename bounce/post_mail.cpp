// post_mail.cpp: see post_mail.hpp.
#include "bounce/post_mail.hpp"

#include <sys/time.h>

#include "bounce/rfc822_text.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/service.hpp"
#include "queue/record.hpp"

namespace mta::bounce {

std::vector<ContentRecord> post_mail_head(const std::string& new_id, const std::string& myhostname,
                                          const std::string& mail_name, std::time_t now) {
  std::string date = mail_date(now);
  return {{'N', "Received: by " + myhostname + " (" + mail_name + ")"},
          {'N', "\tid " + new_id + "; " + date},
          {'N', "Date: " + date}};
}

int post_mail(const PostSettings& settings, const std::string& sender, const std::string& recipient, int smtputf8,
              int trace_flags, const std::vector<ContentRecord>& content, std::string* new_id, std::string* error) {
  namespace proto = ipc::proto;
  ipc::Channel ch;
  ipc::ConnectOptions connect{.timeout = settings.timeout, .attempts = 1, .warn = false};
  if (ipc::Status st = ipc::connect_service(ch, settings.queue_directory, proto::kClassPublic,
                                            settings.cleanup_service, connect);
      !st) {
    *error = "connect to " + std::string(proto::kClassPublic) + "/" + settings.cleanup_service + ": " + st.message();
    return kCleanupStatWrite;
  }
  auto failed = [&](const ipc::Status& st) {
    *error = "unable to contact the " + settings.cleanup_service + " service: " + st.message();
    ch.close();
    return kCleanupStatWrite;
  };
  proto::CleanupHello hello;
  if (ipc::Status st = ch.read(hello); !st) return failed(st);
  int flags = settings.cleanup_flags | ((smtputf8 & kSmtputf8Requested) ? kCleanupFlagSmtputf8 : 0);
  if (ipc::Status st = ch.write(proto::CleanupOpen{flags}); !st) return failed(st);

  timeval now{};
  ::gettimeofday(&now, nullptr);
  std::string records;
  queue::append_record(records, queue::rec::kTime, queue::format_time_record(now));
  queue::append_record(records, queue::rec::kAttr, "log_message_origin=local");
  queue::append_record(records, queue::rec::kAttr, "trace_flags=" + std::to_string(trace_flags));
  queue::append_record(records, queue::rec::kFrom, sender);
  queue::append_record(records, queue::rec::kRcpt, recipient);
  queue::append_record(records, queue::rec::kMessage, "");
  for (const ContentRecord& r : post_mail_head(hello.queue_id, settings.myhostname, settings.mail_name, now.tv_sec))
    queue::append_record(records, r.type, r.text);
  for (const ContentRecord& r : content) queue::append_record(records, r.type, r.text);
  queue::append_record(records, queue::rec::kExtracted, "");
  queue::append_record(records, queue::rec::kEnd, "");
  if (!ch.stream().write(records) || !ch.flush()) return failed(ipc::write_failure(ch.stream()));

  ipc::AttrList reply;
  if (ipc::Status st = ch.read_list(reply, {.strict = false}); !st) return failed(st);
  std::optional<uint64_t> status = reply.number(proto::kAttrStatus);
  ch.close();
  if (!status) {
    *error = "unable to contact the " + settings.cleanup_service + " service: no status in its reply";
    return kCleanupStatWrite;
  }
  *new_id = hello.queue_id;
  int result = static_cast<int>(static_cast<uint32_t>(*status));
  if (result != 0) *error = reply.get("reason");
  return result;
}

}  // namespace mta::bounce
