// queue_dirs.hpp: the queue directory tree, where a queue file lives, and
// the owners and modes of the directories.
//
// $queue_directory holds one directory per queue (maildrop incoming active
// deferred hold corrupt bounce defer trace flush saved) plus pid, private
// and public.  Queues named in hash_queue_names (default "deferred, defer";
// compared without case) spread their files over hash_queue_depth levels of
// one-character subdirectories (see queue_id.hpp), which are made on demand
// with mode 0700, as Postfix's mail_queue_mkdirs does.
//
// The owners and modes are Postfix 3.7's postfix-files: the queue directory
// root:755; maildrop mail_owner:setgid_group 730; public mail_owner:
// setgid_group 710; pid root 755; the rest mail_owner 700.  Like
// post-install, setting them changes the group only where the table names
// one, and for the queues ("r" in postfix-files) changes owners throughout
// and modes of subdirectories only: a queue file's mode says whether it is
// complete, so file modes are never touched.  Unprivileged (not root), only
// modes are set.
#pragma once

#include <sys/types.h>

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mta::config {
class Config;
}

namespace mta::queue {

namespace queue_name {
inline constexpr std::string_view kMaildrop = "maildrop";
inline constexpr std::string_view kIncoming = "incoming";
inline constexpr std::string_view kActive = "active";
inline constexpr std::string_view kDeferred = "deferred";
inline constexpr std::string_view kHold = "hold";
inline constexpr std::string_view kCorrupt = "corrupt";
inline constexpr std::string_view kBounce = "bounce";
inline constexpr std::string_view kDefer = "defer";
inline constexpr std::string_view kTrace = "trace";
inline constexpr std::string_view kFlush = "flush";
inline constexpr std::string_view kSaved = "saved";
}  // namespace queue_name

// File modes: a queue file is complete ("ready") when its owner has rwx; it
// is being written while 0600.  qmgr adds group read to ask for an
// immediate retry ("unthrottle"); a corrupt file is 0400.
inline constexpr unsigned kQueueFileReady = 0700;
inline constexpr unsigned kQueueFileInProgress = 0600;
inline constexpr unsigned kQueueFileCorrupt = 0400;
inline constexpr unsigned kQueueFileUnthrottle = 0040;
// A regular file whose owner bits are rwx (Postfix's mail_open_ok).
bool is_ready_queue_file(mode_t mode);

// A queue name: 1..100 letters or digits (mail_queue_name_ok).
bool is_valid_queue_name(std::string_view name);

class QueueLayout {
 public:
  explicit QueueLayout(std::string queue_directory,
                       std::vector<std::string> hash_queue_names = {"deferred", "defer"},
                       int hash_queue_depth = 1);
  // queue_directory, hash_queue_names, hash_queue_depth (at least 1).
  static QueueLayout from_config(const config::Config& config);

  const std::string& queue_directory() const { return queue_directory_; }
  int hash_depth() const { return hash_depth_; }
  bool is_hashed(std::string_view queue) const;

  // Relative to the queue directory, as Postfix names them after its chdir:
  // "deferred/7/", "deferred/7/7B3AEA7224A".
  std::string relative_dir(std::string_view queue, std::string_view id) const;
  std::string relative_path(std::string_view queue, std::string_view id) const;
  // Absolute: the queue directory in front.
  std::string queue_path(std::string_view queue) const;  // ".../deferred"
  std::string dir(std::string_view queue, std::string_view id) const;
  std::string path(std::string_view queue, std::string_view id) const;

  // Moves a file between queues with rename(2), making missing hash
  // directories; false with a message (errno kept) on failure.
  bool move(std::string_view id, std::string_view from, std::string_view to,
            std::string* error = nullptr) const;
  bool remove(std::string_view queue, std::string_view id, std::string* error = nullptr) const;
  // Makes the missing directories above PATH (mode 0700: hash levels).
  static bool make_parent_dirs(const std::string& path, std::string* error = nullptr, unsigned mode = 0700);

  // Calls VISIT with the name and path of every entry of QUEUE that is a
  // queue file name, descending into one-character subdirectories (the hash
  // levels, whatever the depth they were made with).  A missing queue is
  // empty.  False with a message when a directory cannot be read.
  bool scan(std::string_view queue,
            const std::function<void(std::string_view id, const std::string& path)>& visit,
            std::string* error = nullptr) const;

 private:
  std::string queue_directory_;
  std::vector<std::string> hash_names_;
  int hash_depth_;
};

// One line of the directory table.
struct QueueDirSpec {
  std::string_view name;  // below the queue directory; "" is the queue directory itself
  bool root_owned;        // else owned by mail_owner
  bool setgid_group;      // group setgid_group; else the group is left alone
  unsigned mode;
  bool recursive;         // owners throughout, modes of subdirectories too
};
// Postfix 3.7's postfix-files entries for the queue directory, in its order.
std::span<const QueueDirSpec> queue_directory_specs();

struct QueueOwners {
  bool change_owners = false;  // only as root
  uid_t mail_owner_uid = 0;
  gid_t setgid_gid = 0;
};
// mail_owner and setgid_group looked up in the passwd and group files;
// change_owners when running as root.  False with a message when a name is
// unknown (and we are root: unprivileged, the names are not needed).
bool queue_owners_from_config(const config::Config& config, QueueOwners* owners,
                              std::string* error);

enum class DirSetup {
  create,           // make missing directories, with their owners and modes
  set_permissions,  // and fix every directory ("postfix set-permissions")
};
// Makes the tree; CHANGES, when given, receives one line per directory made
// or fixed.  Stops at the first failure with a message.
bool setup_queue_directories(const QueueLayout& layout, const QueueOwners& owners, DirSetup how,
                             std::vector<std::string>* changes, std::string* error);

}  // namespace mta::queue
