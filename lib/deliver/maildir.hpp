// maildir.hpp: delivery of one message into a qmail-style maildir, as the
// local(8) and virtual(8) agents of Postfix write it (their maildir.c).
//
// As the recipient (set_eugid to the given uid/gid; nothing changes when
// the process is not root): the message goes into tmp/ under
// "TIME.P<pid>.HOST" (a leftover of a crashed delivery under that name gets
// a "Q<n>" counter instead of failing the delivery), with the prolog that
// the copy flags ask for (Return-Path, X-Original-To, Delivered-To), is
// fsync'd, and is linked into new/ as "TIME.VdevIinoMusec.HOST" (device,
// inode, microseconds: a name no other file can have); then the new/
// directory is fsync'd too, so that "delivered" survives a crash of the
// machine (Postfix stops at the link), and the tmp/ name is removed.
// Missing tmp/, new/ and cur/ directories (and their parents) are made on
// the way, mode 0700, as the recipient.
//
// On failure the result carries Postfix's reason, "maildir delivery
// failed: create maildir file PATH: ERROR" or "... error writing message:
// ...", whose status follows the errno (mbox_dsn: a full disk 4.3.0, a
// file over the size limit 5.2.2) or else the caller's default; for
// EACCES the two warnings of Postfix ("maildir access problem for
// UID/GID=...", "perhaps you need to create the maildirs in advance") are
// logged.  The caller decides between bounce and defer, and reports.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "deliver/mail_copy.hpp"

namespace mta::deliver {

// A file sink that refuses to grow a file beyond LIMIT bytes (0: no
// limit) with EFBIG, as the file size limit (setrlimit) of Postfix's
// mailbox_size_limit and virtual_mailbox_limit does.
class LimitedFileSink : public FileSink {
 public:
  LimitedFileSink(int fd, bool regular, long long limit) : FileSink(fd, regular), limit_(limit) {}
  bool write(std::string_view bytes) override;

 private:
  long long limit_;
  long long written_ = 0;
};

// The queued message: its open queue file and where the content starts.
struct QueuedContent {
  int fd = -1;
  std::string path;  // for messages
  off_t data_offset = 0;
};

struct MaildirTarget {
  std::string path;             // the maildir, ending in '/'
  uid_t uid = 0;                // the recipient: files and directories are made as this user
  gid_t gid = 0;
  long long size_limit = 0;     // per-file limit in bytes; 0: none
  const char* default_dsn = "5.2.0";  // status for files that cannot be made (local 5.2.0, virtual 4.2.0)
  int copy_flags = kCopyToFile | kCopyReturnPath | kCopyOrigRcpt | kCopyDelivered;
};

// Delivers; envelope.now is set here (the time in the file names).
// status 0 on success; otherwise copy.why as described above (and
// kCopyStatCorrupt when the queue file is damaged).
CopyResult deliver_maildir_file(const MaildirTarget& target, const QueuedContent& message, CopyEnvelope envelope);

// Postfix's make_dirs(): mkdir -p with MODE for each level made.
int make_dirs(const std::string& path, mode_t mode);

}  // namespace mta::deliver
