// queue_dirs.cpp: see queue_dirs.hpp.
#include "queue/queue_dirs.hpp"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "config/config.hpp"
#include "queue/queue_id.hpp"

namespace mta::queue {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void set_error(std::string* error, const std::string& what, const std::string& path) {
  if (error) *error = what + " " + path + ": " + std::strerror(errno);
}

std::string octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%03o", mode);
  return buf;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// d_type, or lstat when the file system does not say.
bool is_directory(const std::string& path, const dirent* entry) {
  if (entry->d_type != DT_UNKNOWN) return entry->d_type == DT_DIR;
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool scan_dir(const std::string& dir, bool top,
              const std::function<void(std::string_view, const std::string&)>& visit, std::string* error) {
  DirPtr d(::opendir(dir.c_str()));
  if (!d) {
    if (top && errno == ENOENT) return true;
    set_error(error, "open directory", dir);
    return false;
  }
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(d.get());
    if (!entry) break;
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + std::string(name);
    if (name.size() == 1) {  // a hash level, as Postfix's mail_scan_dir assumes
      if (is_directory(path, entry) && !scan_dir(path, false, visit, error)) return false;
      continue;
    }
    if (is_queue_file_name(name)) visit(name, path);
  }
  if (errno != 0) {
    set_error(error, "read directory", dir);
    return false;
  }
  return true;
}

struct PathOwner {
  uid_t uid;
  gid_t gid;  // (gid_t)-1: leave alone
};

// chown -R without following symbolic links.
bool chown_tree(const std::string& path, const PathOwner& owner, std::string* error) {
  if (::lchown(path.c_str(), owner.uid, owner.gid) != 0) {
    set_error(error, "change owner of", path);
    return false;
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return true;
  DirPtr d(::opendir(path.c_str()));
  if (!d) {
    set_error(error, "open directory", path);
    return false;
  }
  while (const dirent* entry = ::readdir(d.get())) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (!chown_tree(path + "/" + std::string(name), owner, error)) return false;
  }
  return true;
}

// chmod of every directory below PATH (not PATH itself, not files).
bool chmod_subdirs(const std::string& path, unsigned mode, std::string* error) {
  DirPtr d(::opendir(path.c_str()));
  if (!d) {
    set_error(error, "open directory", path);
    return false;
  }
  while (const dirent* entry = ::readdir(d.get())) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string sub = path + "/" + std::string(name);
    if (!is_directory(sub, entry)) continue;
    if (::chmod(sub.c_str(), mode) != 0) {
      set_error(error, "change mode of", sub);
      return false;
    }
    if (!chmod_subdirs(sub, mode, error)) return false;
  }
  return true;
}

bool apply_spec(const std::string& path, const QueueDirSpec& spec, const QueueOwners& owners,
                std::vector<std::string>* changes, std::string* error) {
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0) {
    set_error(error, "stat", path);
    return false;
  }
  if (owners.change_owners) {
    PathOwner owner{spec.root_owned ? 0 : owners.mail_owner_uid,
                    spec.setgid_group ? owners.setgid_gid : static_cast<gid_t>(-1)};
    if (spec.recursive) {
      if (!chown_tree(path, owner, error)) return false;
    } else if (::chown(path.c_str(), owner.uid, owner.gid) != 0) {
      set_error(error, "change owner of", path);
      return false;
    }
    if (changes && (before.st_uid != owner.uid || (spec.setgid_group && before.st_gid != owner.gid)))
      changes->push_back(path + ": owner set");
  }
  if (::chmod(path.c_str(), spec.mode) != 0) {
    set_error(error, "change mode of", path);
    return false;
  }
  if (changes && (before.st_mode & 07777) != spec.mode)
    changes->push_back(path + ": mode " + octal(before.st_mode & 07777) + " -> " + octal(spec.mode));
  if (spec.recursive && !chmod_subdirs(path, spec.mode, error)) return false;
  return true;
}

constexpr QueueDirSpec kDirSpecs[] = {
    {"", true, false, 0755, false},
    {"active", false, false, 0700, true},
    {"bounce", false, false, 0700, true},
    {"corrupt", false, false, 0700, true},
    {"defer", false, false, 0700, true},
    {"deferred", false, false, 0700, true},
    {"flush", false, false, 0700, true},
    {"hold", false, false, 0700, true},
    {"incoming", false, false, 0700, true},
    {"private", false, false, 0700, false},
    {"maildrop", false, true, 0730, false},
    {"public", false, true, 0710, false},
    {"pid", true, false, 0755, false},
    {"saved", false, false, 0700, true},
    {"trace", false, false, 0700, true},
};

}  // namespace

bool is_ready_queue_file(mode_t mode) { return S_ISREG(mode) && (mode & S_IRWXU) == kQueueFileReady; }

bool is_valid_queue_name(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

QueueLayout::QueueLayout(std::string queue_directory, std::vector<std::string> hash_queue_names,
                         int hash_queue_depth)
    : queue_directory_(std::move(queue_directory)),
      hash_names_(std::move(hash_queue_names)),
      hash_depth_(hash_queue_depth < 1 ? 1 : hash_queue_depth) {
  while (queue_directory_.size() > 1 && queue_directory_.back() == '/') queue_directory_.pop_back();
}

QueueLayout QueueLayout::from_config(const config::Config& config) {
  return QueueLayout(config.get("queue_directory"), config.get_list("hash_queue_names"),
                     static_cast<int>(config.get_int("hash_queue_depth")));
}

bool QueueLayout::is_hashed(std::string_view queue) const {
  for (const std::string& name : hash_names_)
    if (iequals(name, queue)) return true;
  return false;
}

std::string QueueLayout::relative_dir(std::string_view queue, std::string_view id) const {
  std::string out(queue);
  out += '/';
  if (is_hashed(queue)) out += queue_id_hash_dirs(id, hash_depth_);
  return out;
}

std::string QueueLayout::relative_path(std::string_view queue, std::string_view id) const {
  return relative_dir(queue, id) + std::string(id);
}

std::string QueueLayout::queue_path(std::string_view queue) const {
  return queue_directory_ + "/" + std::string(queue);
}

std::string QueueLayout::dir(std::string_view queue, std::string_view id) const {
  return queue_directory_ + "/" + relative_dir(queue, id);
}

std::string QueueLayout::path(std::string_view queue, std::string_view id) const {
  return queue_directory_ + "/" + relative_path(queue, id);
}

bool QueueLayout::make_parent_dirs(const std::string& path, std::string* error, unsigned mode) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  std::string dir = path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return true;
    errno = ENOTDIR;
    set_error(error, "make directory", dir);
    return false;
  }
  if (!make_parent_dirs(dir, error, mode)) return false;
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
    set_error(error, "make directory", dir);
    return false;
  }
  return true;
}

bool QueueLayout::move(std::string_view id, std::string_view from, std::string_view to,
                       std::string* error) const {
  std::string old_path = path(from, id);
  std::string new_path = path(to, id);
  if (::rename(old_path.c_str(), new_path.c_str()) == 0) return true;
  if (errno == ENOENT && make_parent_dirs(new_path) && ::rename(old_path.c_str(), new_path.c_str()) == 0)
    return true;
  set_error(error, "rename " + old_path + " to", new_path);
  return false;
}

bool QueueLayout::remove(std::string_view queue, std::string_view id, std::string* error) const {
  std::string p = path(queue, id);
  if (::unlink(p.c_str()) == 0) return true;
  set_error(error, "remove", p);
  return false;
}

bool QueueLayout::scan(std::string_view queue,
                       const std::function<void(std::string_view id, const std::string& path)>& visit,
                       std::string* error) const {
  return scan_dir(queue_path(queue), true, visit, error);
}

std::span<const QueueDirSpec> queue_directory_specs() { return kDirSpecs; }

bool queue_owners_from_config(const config::Config& config, QueueOwners* owners, std::string* error) {
  *owners = QueueOwners{};
  if (::geteuid() != 0) return true;
  std::string owner = config.get("mail_owner");
  std::string group = config.get("setgid_group");
  const passwd* pw = ::getpwnam(owner.c_str());
  if (!pw) {
    if (error) *error = "unknown mail_owner user: " + owner;
    return false;
  }
  const struct group* gr = ::getgrnam(group.c_str());
  if (!gr) {
    if (error) *error = "unknown setgid_group group: " + group;
    return false;
  }
  owners->change_owners = true;
  owners->mail_owner_uid = pw->pw_uid;
  owners->setgid_gid = gr->gr_gid;
  return true;
}

bool setup_queue_directories(const QueueLayout& layout, const QueueOwners& owners, DirSetup how,
                             std::vector<std::string>* changes, std::string* error) {
  for (const QueueDirSpec& spec : kDirSpecs) {
    std::string path = spec.name.empty() ? layout.queue_directory()
                                         : layout.queue_directory() + "/" + std::string(spec.name);
    bool created = false;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        set_error(error, "stat", path);
        return false;
      }
      // Above the queue directory: traversable, as /var/spool is.
      if (spec.name.empty() && !QueueLayout::make_parent_dirs(path, error, 0755)) return false;
      if (::mkdir(path.c_str(), spec.mode) != 0) {
        set_error(error, "make directory", path);
        return false;
      }
      created = true;
      if (changes) changes->push_back(path + ": created");
    } else if (!S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      set_error(error, "use", path);
      return false;
    }
    if (created || how == DirSetup::set_permissions) {
      if (!apply_spec(path, spec, owners, created ? nullptr : changes, error)) return false;
    }
  }
  return true;
}

}  // namespace mta::queue
