// queue_super.hpp: the queue maintenance of postsuper(1), as Postfix 3.7
// does it, on a queue directory that is the current directory (or BASE).
//
// Two kinds of work:
//   - by queue ID (delete, requeue, hold, release, expire): the message is
//     looked for in the given queues in order, and acted on where it is
//     found complete (a regular file, owner rwx); each success is logged
//     ("ID: removed", "ID: requeued", "ID: placed on hold", "ID: released
//     from hold", "ID: expired") and counted;
//   - a pass over whole queue directories (pass()): structure check and
//     repair (file names that do not match the inode are renamed in two
//     steps through "NEWID#FIX", files that are not where hash_queue_names
//     and hash_queue_depth put them are moved, hash directories no longer
//     wanted are removed), purge of temporary files older than a week, and
//     the ALL forms of the operations above, which are silent and counted.
// A delete also removes the message's bounce, defer and trace logs; hold,
// release, requeue and expire leave them.  Requeue moves the file to the
// maildrop queue (pickup and cleanup make a new queue file of it) and
// resets its times to now; expire sets the group execute bit, which qmgr
// reads as "return to sender".  Mass requeue, hold and release move files
// whatever their mode, as Postfix does; mass expire only touches complete
// files.  Failures to remove or rename a file (other than its vanishing)
// are fatal, as in Postfix.
#pragma once

#include <sys/stat.h>

#include <csignal>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queue_dirs.hpp"

namespace mta::postsuper {

// What a pass does (several may be combined).
namespace action {
inline constexpr unsigned kStruct = 1 << 0;         // -s: fix names and places
inline constexpr unsigned kPurge = 1 << 1;          // -p: remove old temporary files
inline constexpr unsigned kDeleteAll = 1 << 2;      // -d ALL
inline constexpr unsigned kRequeueAll = 1 << 3;     // -r ALL
inline constexpr unsigned kHoldAll = 1 << 4;        // -h ALL
inline constexpr unsigned kReleaseAll = 1 << 5;     // -H ALL
inline constexpr unsigned kStructRed = 1 << 6;      // -S: long names must match the inode too
inline constexpr unsigned kExpireAll = 1 << 7;      // -e ALL
inline constexpr unsigned kExpireRelAll = 1 << 8;   // -f ALL
}  // namespace action

struct Counters {
  int requeued = 0;
  int held = 0;
  int released = 0;
  int deleted = 0;
  int expired = 0;
  int inode_fixed = 0;        // "#FIX" names completed
  int inode_mismatch = 0;     // names found not to match the inode
  int position_mismatch = 0;  // files moved to their hash directory
};

struct Settings {
  std::vector<std::string> hash_queue_names{"deferred", "defer"};
  int hash_queue_depth = 1;
  bool long_queue_ids = false;
};

// The default queue lists of postsuper's operations.
const std::vector<std::string>& default_queues();       // -s -p -d -r -e -f
const std::vector<std::string>& default_hold_queues();  // -h
const std::vector<std::string>& default_release_queues();  // -H

class Superintendent {
 public:
  // FATAL must not return: it reports the message (and whatever else the
  // caller wants said) and exits.
  Superintendent(Settings settings, std::string base, std::function<void(const std::string&)> fatal);

  // By queue ID; each returns 1 when the message was found and acted on.
  int delete_one(const std::vector<std::string>& queues, std::string_view id);
  int requeue_one(const std::vector<std::string>& queues, std::string_view id);
  int hold_one(const std::vector<std::string>& queues, std::string_view id);
  int release_one(const std::vector<std::string>& queues, std::string_view id);
  // -e, and with RELEASE -f (expire, and release when on hold).
  int expire_one(const std::vector<std::string>& queues, std::string_view id, bool release);

  // A pass over the queues doing ACTIONS (action::k*).
  void pass(const std::vector<std::string>& queues, unsigned actions);

  // Set to 1 once a structure repair renames something, so that a signal
  // handler can tell that an interruption leaves the queue half repaired.
  void set_repair_flag(volatile std::sig_atomic_t* flag) { repair_flag_ = flag; }

  const Counters& counters() const { return counters_; }
  Counters& counters() { return counters_; }

  // Where ID lives in QUEUE, relative to the queue directory.
  std::string queue_path(std::string_view queue, std::string_view id) const;

 private:
  struct QueueInfo;
  const QueueInfo& find_queue_info(std::string_view name) const;
  bool open_ok(std::string_view queue, std::string_view id, struct stat* st, std::string* path) const;
  std::string full(const std::string& relative) const;
  int postremove(const std::string& path);
  int postrename(const std::string& from, const std::string& to);
  int postrmdir(const std::string& path);
  void postexpire(const std::string& path, const struct stat& st);
  void fix_queue_id(const std::string& actual_path, std::string_view queue, std::string_view id,
                    const struct stat& st);
  [[noreturn]] void die(const std::string& text) const;

  Settings settings_;
  queue::QueueLayout layout_;
  std::string base_;
  std::function<void(const std::string&)> fatal_;
  void note_repair();

  Counters counters_;
  volatile std::sig_atomic_t* repair_flag_ = nullptr;
};

// The inode a queue file name encodes (Postfix's MQID_GET_INUM): after the
// last 'z' (at position 10 or later) in base 51 for a long name, else the
// hexadecimal digits after the first five characters.  False when a long
// name's inode part does not decode or a short one overflows.
bool name_inode(std::string_view name, unsigned long* inode, bool* long_form);

// The name a file should have after its inode changed (Postfix's
// fix_queue_id): the time part kept, the inode part replaced; a long name
// becomes a short one when long queue IDs are off.
std::string fixed_queue_id(std::string_view name, unsigned long inode, bool long_queue_ids);

}  // namespace mta::postsuper
