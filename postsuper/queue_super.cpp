// queue_super.cpp: postsuper's queue operations (queue_super.hpp).
#include "postsuper/queue_super.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "log/log.hpp"
#include "queue/queue_id.hpp"

namespace mta::postsuper {

namespace {

constexpr std::string_view kSuffix = "#FIX";  // never a valid queue ID: qmgr ignores it
constexpr time_t kMaxTempAge = 60 * 60 * 24 * 7;  // purge temporary files older than this

// The directories of per-message logs, removed with their message.
constexpr std::string_view kLogQueues[] = {queue::queue_name::kBounce, queue::queue_name::kDefer,
                                           queue::queue_name::kTrace};

bool is_ready(const struct stat& st) { return (st.st_mode & S_IRWXU) == S_IRWXU; }

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// What we expect in a queue directory: message files (complete when the
// owner has rwx) or logs, and whether hash subdirectories are entered (not
// in maildrop: a writable maildrop could lead us astray).
struct Superintendent::QueueInfo {
  std::string_view name;
  bool message_queue;
  bool recurse;
};

namespace {
constexpr std::string_view kMaildrop = queue::queue_name::kMaildrop;
constexpr std::string_view kHold = queue::queue_name::kHold;
constexpr std::string_view kDeferred = queue::queue_name::kDeferred;
}  // namespace

const std::vector<std::string>& default_queues() {
  // The log directories first, so that their files are in the right place
  // when message files are renamed to match their inode.
  static const std::vector<std::string> q = {"defer", "bounce", "maildrop", "incoming",
                                             "active", "deferred", "hold", "flush"};
  return q;
}

const std::vector<std::string>& default_hold_queues() {
  static const std::vector<std::string> q = {"incoming", "active", "deferred"};
  return q;
}

const std::vector<std::string>& default_release_queues() {
  static const std::vector<std::string> q = {"hold"};
  return q;
}

bool name_inode(std::string_view name, unsigned long* inode, bool* long_form) {
  size_t z = name.rfind('z');
  *long_form = z != std::string_view::npos && z >= 10;
  if (*long_form) {
    auto v = queue::safe_strtoul(name.substr(z + 1), 51);
    if (!v) return false;
    *inode = *v;
    return true;
  }
  // strtoul(name + 5, 0, 16): digits up to the first other character.
  unsigned long value = 0;
  for (char c : name.substr(name.size() < 5 ? name.size() : 5)) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) break;
    if (value > (ULONG_MAX >> 4)) return false;
    value = (value << 4) | static_cast<unsigned long>(digit);
  }
  *inode = value;
  return true;
}

std::string fixed_queue_id(std::string_view name, unsigned long inode, bool long_queue_ids) {
  size_t z = name.rfind('z');
  bool long_form = z != std::string_view::npos && z >= 10;
  std::string short_inode = queue::short_queue_id(0, inode).substr(5);
  if (!long_form) return std::string(name.substr(0, 5)) + short_inode;
  if (long_queue_ids) {
    std::string l = queue::long_queue_id(0, 0, inode);
    return std::string(name.substr(0, z + 1)) + l.substr(l.rfind('z') + 1);
  }
  return queue::queue_id_hash_key(name) + short_inode;
}

Superintendent::Superintendent(Settings settings, std::string base, std::function<void(const std::string&)> fatal)
    : settings_(std::move(settings)),
      layout_(".", settings_.hash_queue_names, settings_.hash_queue_depth),
      base_(std::move(base)),
      fatal_(std::move(fatal)) {}

void Superintendent::note_repair() {
  if (repair_flag_) *repair_flag_ = 1;
}

void Superintendent::die(const std::string& text) const {
  fatal_(text);
  std::abort();  // fatal_ does not return
}

const Superintendent::QueueInfo& Superintendent::find_queue_info(std::string_view name) const {
  static constexpr QueueInfo kQueues[] = {
      {"maildrop", true, false}, {"incoming", true, true}, {"active", true, true},
      {"deferred", true, true},  {"hold", true, true},     {"trace", false, true},
      {"defer", false, true},    {"bounce", false, true},  {"flush", false, true},
  };
  for (const QueueInfo& q : kQueues)
    if (q.name == name) return q;
  die("invalid directory name: " + std::string(name));
}

std::string Superintendent::queue_path(std::string_view queue, std::string_view id) const {
  return layout_.relative_path(queue, id);
}

std::string Superintendent::full(const std::string& relative) const {
  return base_.empty() ? relative : base_ + "/" + relative;
}

// Postfix's mail_open_ok(): the complete message file where ID says it is.
bool Superintendent::open_ok(std::string_view queue, std::string_view id, struct stat* st, std::string* path) const {
  if (!queue::is_queue_file_name(id)) return false;
  *path = queue_path(queue, id);
  if (::lstat(full(*path).c_str(), st) != 0) {
    if (errno != ENOENT) log::warning("%s: %s", path->c_str(), errno_text().c_str());
    return false;
  }
  if (!S_ISREG(st->st_mode)) {
    log::warning("%s: uid %ld: not a regular file", path->c_str(), static_cast<long>(st->st_uid));
    return false;
  }
  if (!is_ready(*st)) return false;
  if (st->st_nlink > 1) {
    if (log::verbose_level() > 0)
      log::info("%s: uid %ld: file has %d links", path->c_str(), static_cast<long>(st->st_uid),
                static_cast<int>(st->st_nlink));
    else if (st->st_ctime < std::time(nullptr) - 60)
      log::warning("%s: uid %ld: file has %d links", path->c_str(), static_cast<long>(st->st_uid),
                   static_cast<int>(st->st_nlink));
  }
  return true;
}

int Superintendent::postremove(const std::string& path) {
  if (std::remove(full(path).c_str()) != 0) {
    if (errno != ENOENT) die("remove file " + path + ": " + errno_text());
    return -1;
  }
  log::debug("removed file %s", path.c_str());
  return 0;
}

int Superintendent::postrename(const std::string& from, const std::string& to) {
  if (::rename(full(from).c_str(), full(to).c_str()) == 0) {
    log::debug("renamed file %s as %s", from.c_str(), to.c_str());
    return 0;
  }
  // A missing hash directory is made, and the rename tried again.
  if (errno != ENOENT || !queue::QueueLayout::make_parent_dirs(full(to)) ||
      ::rename(full(from).c_str(), full(to).c_str()) != 0) {
    if (errno != ENOENT) die("rename file " + from + " as " + to + ": " + errno_text());
    return -1;
  }
  log::debug("renamed file %s as %s", from.c_str(), to.c_str());
  return 0;
}

int Superintendent::postrmdir(const std::string& path) {
  if (::rmdir(full(path).c_str()) != 0) {
    if (errno != ENOENT) die("remove directory " + path + ": " + errno_text());
    return -1;
  }
  log::debug("remove directory %s", path.c_str());
  return 0;
}

void Superintendent::postexpire(const std::string& path, const struct stat& st) {
  if (::chmod(full(path).c_str(), (st.st_mode & 07777) | S_IXGRP) != 0)
    die("expire file " + path + ": cannot set permission: " + errno_text());
}

int Superintendent::delete_one(const std::vector<std::string>& queues, std::string_view id) {
  if (!queue::is_queue_file_name(id)) {
    log::warning("invalid mail queue id: %s", std::string(id).c_str());
    return 0;
  }
  // The logs go before the message, and only when there is a message,
  // which narrows the race with a new message that reuses the ID.
  for (int tries = 0; tries < 2; ++tries) {
    for (const std::string& q : queues) {
      if (!find_queue_info(q).message_queue) continue;
      struct stat st {};
      std::string path;
      if (!open_ok(q, id, &st, &path)) continue;
      for (std::string_view log_queue : kLogQueues) postremove(queue_path(log_queue, id));
      if (postremove(path) == 0) {
        log::info("%s: removed", std::string(id).c_str());
        return 1;
      }
    }
  }
  return 0;
}

int Superintendent::requeue_one(const std::vector<std::string>& queues, std::string_view id) {
  if (!queue::is_queue_file_name(id)) {
    log::warning("invalid mail queue id: %s", std::string(id).c_str());
    return 0;
  }
  for (int tries = 0; tries < 2; ++tries) {
    for (const std::string& q : queues) {
      if (q == kMaildrop || !find_queue_info(q).message_queue) continue;
      struct stat st {};
      std::string path;
      if (!open_ok(q, id, &st, &path)) continue;
      std::string target = queue_path(kMaildrop, id);
      if (postrename(path, target) == 0) {
        // pickup sees a fresh file, not one that a deferral dated ahead.
        time_t now = std::time(nullptr);
        utimbuf times{now, now};
        if (::utime(full(target).c_str(), &times) != 0)
          log::warning("%s: reset time stamps: %s", target.c_str(), errno_text().c_str());
        log::info("%s: requeued", std::string(id).c_str());
        return 1;
      }
    }
  }
  return 0;
}

int Superintendent::hold_one(const std::vector<std::string>& queues, std::string_view id) {
  if (!queue::is_queue_file_name(id)) {
    log::warning("invalid mail queue id: %s", std::string(id).c_str());
    return 0;
  }
  // Maildrop mail is not sanitized yet and must not mix with what is.
  for (int tries = 0; tries < 2; ++tries) {
    for (const std::string& q : queues) {
      if (q == kMaildrop || q == kHold || !find_queue_info(q).message_queue) continue;
      struct stat st {};
      std::string path;
      if (!open_ok(q, id, &st, &path)) continue;
      if (postrename(path, queue_path(kHold, id)) == 0) {
        log::info("%s: placed on hold", std::string(id).c_str());
        return 1;
      }
    }
  }
  return 0;
}

int Superintendent::release_one(const std::vector<std::string>& queues, std::string_view id) {
  if (!queue::is_queue_file_name(id)) {
    log::warning("invalid mail queue id: %s", std::string(id).c_str());
    return 0;
  }
  for (const std::string& q : queues) {
    if (q != kHold) continue;
    struct stat st {};
    std::string path;
    if (!open_ok(q, id, &st, &path)) continue;
    if (postrename(path, queue_path(kDeferred, id)) == 0) {
      log::info("%s: released from hold", std::string(id).c_str());
      return 1;
    }
  }
  return 0;
}

int Superintendent::expire_one(const std::vector<std::string>& queues, std::string_view id, bool release) {
  if (!queue::is_queue_file_name(id)) {
    log::warning("invalid mail queue id: %s", std::string(id).c_str());
    return 0;
  }
  for (int tries = 0; tries < 2; ++tries) {
    for (const std::string& q : queues) {
      if (q == kMaildrop || !find_queue_info(q).message_queue) continue;
      struct stat st {};
      std::string path;
      if (!open_ok(q, id, &st, &path)) continue;
      if ((st.st_mode & S_IXGRP) == 0) {
        postexpire(path, st);
        log::info("%s: expired", std::string(id).c_str());
        ++counters_.expired;
      }
      if (release && q == kHold && postrename(path, queue_path(kDeferred, id)) == 0) {
        log::info("%s: released from hold", std::string(id).c_str());
        ++counters_.released;
      }
      return 1;
    }
  }
  return 0;
}

void Superintendent::fix_queue_id(const std::string& actual_path, std::string_view queue, std::string_view id,
                                  const struct stat& st) {
  // The new name is a function of the old name and the inode, so that an
  // interrupted run can be completed by the next.
  std::string new_id = fixed_queue_id(id, static_cast<unsigned long>(st.st_ino), settings_.long_queue_ids);
  // Logs first: a message file renamed last says its logs are done.
  for (std::string_view log_queue : kLogQueues)
    postrename(queue_path(log_queue, id), queue_path(log_queue, new_id) + std::string(kSuffix));
  postrename(actual_path, queue_path(queue, new_id) + std::string(kSuffix));
}

namespace {

// A directory and the one-character subdirectories entered below it
// (Postfix's scan_dir with push and pop).
class DirWalk {
 public:
  DirWalk(const std::string& base, std::string path,
          const std::function<void(const std::string&)>& die)
      : base_(base), die_(die) {
    push(std::move(path));
  }
  ~DirWalk() {
    while (!stack_.empty()) pop();
  }
  DirWalk(const DirWalk&) = delete;
  DirWalk& operator=(const DirWalk&) = delete;

  // The next name in the current directory, or "" at its end.
  std::string next() {
    for (;;) {
      const dirent* entry = ::readdir(stack_.back().dir);
      if (!entry) return {};
      std::string name = entry->d_name;
      if (name != "." && name != "..") return name;
    }
  }
  const std::string& path() const { return stack_.back().path; }
  void push(std::string path) {
    std::string where = base_.empty() ? path : base_ + "/" + path;
    DIR* d = ::opendir(where.c_str());
    if (!d) die_("open directory " + path + ": " + std::strerror(errno));
    stack_.push_back({std::move(path), d});
  }
  void pop() {
    ::closedir(stack_.back().dir);
    stack_.pop_back();
  }

 private:
  struct Level {
    std::string path;
    DIR* dir;
  };
  const std::string& base_;
  const std::function<void(const std::string&)>& die_;
  std::vector<Level> stack_;
};

}  // namespace

void Superintendent::pass(const std::vector<std::string>& queues, unsigned actions) {
  auto die_fn = std::function<void(const std::string&)>([this](const std::string& t) { die(t); });
  for (const std::string& queue_name : queues) {
    log::debug("queue: %s", queue_name.c_str());
    const QueueInfo& qp = find_queue_info(queue_name);
    int wanted_depth = 0;
    for (const std::string& h : settings_.hash_queue_names)
      if (h == queue_name) wanted_depth = settings_.hash_queue_depth;
    if (wanted_depth > 0 && !qp.recurse) die(queue_name + " queue must not be hashed");

    DirWalk walk(base_, queue_name, die_fn);
    int actual_depth = 0;
    for (;;) {
      std::string name = walk.next();
      // At the end of a subdirectory, back to its parent; hash levels
      // deeper than wanted go.
      if (name.empty()) {
        if (actual_depth == 0) break;
        if (actual_depth > wanted_depth) postrmdir(walk.path());
        walk.pop();
        --actual_depth;
        continue;
      }
      if (name.size() == 1 && qp.recurse) {
        ++actual_depth;
        walk.push(walk.path() + "/" + name);
        continue;
      }
      std::string actual_path = walk.path() + "/" + name;
      struct stat st {};
      if (::stat(full(actual_path).c_str(), &st) != 0) continue;

      // Alien directories go (when they can: maildrop may hold anything).
      if (S_ISDIR(st.st_mode)) {
        if (::rmdir(full(actual_path).c_str()) != 0) {
          if (errno != ENOENT) log::warning("remove subdirectory %s: %s", actual_path.c_str(), errno_text().c_str());
        } else {
          log::debug("remove subdirectory %s", actual_path.c_str());
        }
        continue;
      }

      // Mass deletion counts the mail that the system had accepted.
      if (actions & action::kDeleteAll) {
        if (postremove(actual_path) == 0 && qp.message_queue && is_ready(st)) ++counters_.deleted;
        continue;
      }

      // Things that are not files, and old temporary files (never logs).
      if (!S_ISREG(st.st_mode) || ((actions & action::kPurge) && qp.message_queue && !is_ready(st) &&
                                   std::time(nullptr) > st.st_mtime + kMaxTempAge)) {
        postremove(actual_path);
        continue;
      }

      // The second step of a rename to match the inode: strip "#FIX" and
      // move the file to its proper place, if the name now fits the inode.
      if ((actions & action::kStruct) && name.size() >= kSuffix.size() &&
          name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
        name.resize(name.size() - kSuffix.size());
        if (!queue::is_queue_file_name(name)) {
          log::warning("bogus file name: %s", actual_path.c_str());
          continue;
        }
        if (qp.message_queue) {
          unsigned long inum = 0;
          bool long_name = false;
          if (!name_inode(name, &inum, &long_name)) {
            log::warning("bogus file name: %s", actual_path.c_str());
            continue;
          }
          if (inum != static_cast<unsigned long>(st.st_ino)) {
            log::warning("name/inode mismatch: %s", actual_path.c_str());
            continue;
          }
        }
        std::string wanted = queue_path(queue_name, name);
        if (postrename(actual_path, wanted) != 0) continue;
        if (qp.message_queue) {
          ++counters_.inode_fixed;
          note_repair();
        }
        actual_path = wanted;
      }

      // The library refuses other names; so do we.
      if (!queue::is_queue_file_name(name)) {
        log::warning("bogus file name: %s", actual_path.c_str());
        continue;
      }

      // A name that does not match the inode (after a restore from backup,
      // or a long name when long IDs are off): first step of the rename.
      if ((actions & action::kStruct) && qp.message_queue) {
        unsigned long inum = 0;
        bool long_name = false;
        if (!name_inode(name, &inum, &long_name)) {
          log::warning("bogus file name: %s", actual_path.c_str());
          continue;
        }
        if ((long_name && !settings_.long_queue_ids) ||
            (inum != static_cast<unsigned long>(st.st_ino) && (!long_name || (actions & action::kStructRed)))) {
          ++counters_.inode_mismatch;
          note_repair();
          fix_queue_id(actual_path, queue_name, name, st);
          continue;
        }
      }

      // Mass requeue: pickup copies the file to a new queue file, so that
      // addresses are rewritten again.  Logs stay.
      if ((actions & action::kRequeueAll) && qp.message_queue && queue_name != kMaildrop) {
        if (postrename(actual_path, queue_path(kMaildrop, name)) == 0) ++counters_.requeued;
        continue;
      }
      // Mass hold: never maildrop files, which are not sanitized yet.
      if ((actions & action::kHoldAll) && qp.message_queue && queue_name != kMaildrop && queue_name != kHold) {
        if (postrename(actual_path, queue_path(kHold, name)) == 0) ++counters_.held;
        continue;
      }
      if ((actions & action::kReleaseAll) && queue_name == kHold) {
        if (postrename(actual_path, queue_path(kDeferred, name)) == 0) ++counters_.released;
        continue;
      }
      // Mass expiry: complete files only; -f also releases held mail.
      if ((actions & (action::kExpireAll | action::kExpireRelAll)) && qp.message_queue && queue_name != kMaildrop) {
        if (is_ready(st) && (st.st_mode & S_IXGRP) == 0) {
          postexpire(actual_path, st);
          ++counters_.expired;
        }
        if ((actions & action::kExpireRelAll) && queue_name == kHold &&
            postrename(actual_path, queue_path(kDeferred, name)) == 0)
          ++counters_.released;
        continue;
      }

      // A file out of place after hash_queue_names or hash_queue_depth
      // changed (logs are put right before messages, see default_queues()).
      if (actions & action::kStruct) {
        std::string wanted = queue_path(queue_name, name);
        if (actual_path != wanted) {
          ++counters_.position_mismatch;
          note_repair();
          postrename(actual_path, wanted);
          continue;
        }
      }
    }
  }
}

}  // namespace mta::postsuper
