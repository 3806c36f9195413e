// maildrop_file.cpp: see maildrop_file.hpp.
#include "queue/maildrop_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mta::queue {
namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool read_maildrop_file(const std::string& path, const MaildropOptions& options,
                        const std::function<bool(Segment, const Record&)>& visit, MaildropInfo* info,
                        std::string* error) {
  *info = MaildropInfo{};
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  FdCloser fd{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)};
  if (fd.fd < 0) return fail("open " + path + ": " + std::strerror(errno));
  if (::fstat(fd.fd, &info->st) != 0) return fail("fstat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(info->st.st_mode)) return fail(path + ": not a regular file");
  if (info->st.st_nlink != 1)
    return fail(path + ": file has " + std::to_string(info->st.st_nlink) + " hard links");

  RecordReader::Options read_options;
  read_options.max_length = options.line_limit;
  RecordReader in(fd.fd, path, read_options);
  struct Step {
    Segment segment;
    std::string_view allowed;  // the first type ends the segment
  };
  const Step steps[] = {{Segment::envelope, rec::kEnvelopeTypes},
                        {Segment::content, rec::kContentTypes},
                        {Segment::extracted, rec::kExtractTypes}};
  Record r;
  for (const Step& step : steps) {
    for (;;) {
      ReadStatus status = in.next(r);
      if (status == ReadStatus::error) return fail(in.error());
      if (status == ReadStatus::eof) return fail(path + ": premature end of file, no end record");
      if (step.allowed.find(r.type) == std::string_view::npos)
        return fail(path + ": unexpected record type " + std::to_string(static_cast<unsigned char>(r.type)));
      if (r.type == step.allowed.front()) break;
      if (r.type == rec::kFrom && !info->sender && step.segment == Segment::envelope) info->sender = r.data;
      if (r.type == rec::kRcpt) ++info->recipients;
      if (!visit(step.segment, r)) return true;
    }
    if (step.segment == Segment::envelope && !info->sender) return fail(path + ": no envelope sender");
  }
  return true;
}

bool load_maildrop_file(const std::string& path, MaildropFile* file, std::string* error,
                        const MaildropOptions& options) {
  file->envelope.clear();
  file->content.clear();
  file->extracted.clear();
  return read_maildrop_file(
      path, options,
      [file](Segment segment, const Record& r) {
        auto& list = segment == Segment::envelope  ? file->envelope
                     : segment == Segment::content ? file->content
                                                   : file->extracted;
        list.push_back(r);
        return true;
      },
      &file->info, error);
}

bool is_requeued_maildrop_file(const struct stat& st, uid_t mail_owner_uid) {
  return st.st_uid == mail_owner_uid && (st.st_mode & S_IROTH) == 0;
}

}  // namespace mta::queue
