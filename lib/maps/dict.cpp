// dict.cpp: the Dict base, the surrogate table and the type registry.
#include "maps/dict.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "log/log.hpp"
#include "maps/dict_types.hpp"

namespace mta::maps {

std::string Dict::fold_key(std::string_view key) const {
  std::string k(key);
  for (char& c : k)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return k;
}

Result Dict::lookup(std::string_view key) {
  Result r = fold_fixed_ && !pattern_ && !fold_remotely_ ? do_lookup(fold_key(key)) : do_lookup(key);
  if (r.found() && r.value.empty()) {
    // Postfix's dict layer says so too: an empty result reads as "found".
    log::warning("table %s: key %.*s: empty string result is not allowed", spec().c_str(),
                 static_cast<int>(key.size()), key.data());
    log::warning("table %s should return NO RESULT in case of NOT FOUND", spec().c_str());
  }
  return r;
}

namespace {
bool stamp_of(const std::string& path, unsigned long* dev, unsigned long* ino, long* sec, long* nsec) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return false;
  *dev = st.st_dev;
  *ino = st.st_ino;
  *sec = st.st_mtim.tv_sec;
  *nsec = st.st_mtim.tv_nsec;
  return true;
}
}  // namespace

Dict::~Dict() {
  if (watch_fd_ >= 0) ::close(watch_fd_);
}

void Dict::watch_file(const std::string& path) {
  if (stamp_of(path, &stamp_.dev, &stamp_.ino, &stamp_.sec, &stamp_.nsec)) watched_ = path;
  if (watch_fd_ >= 0) ::close(watch_fd_);
  watch_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
}

bool Dict::has_changed() const {
  if (watched_.empty()) return false;
  FileStamp now;
  if (!stamp_of(watched_, &now.dev, &now.ino, &now.sec, &now.nsec)) {
    // The path may be out of reach (a daemon chrooted after opening its
    // tables): ask the open file, as Postfix does; a replaced or removed
    // file has no links left.
    struct stat st{};
    if (watch_fd_ >= 0 && ::fstat(watch_fd_, &st) == 0)
      return st.st_nlink == 0 || st.st_mtim.tv_sec != stamp_.sec || st.st_mtim.tv_nsec != stamp_.nsec;
    return true;
  }
  return now.dev != stamp_.dev || now.ino != stamp_.ino || now.sec != stamp_.sec || now.nsec != stamp_.nsec;
}

Result Dict::update(std::string_view, std::string_view) {
  return Result::fail("table " + spec() + " does not support update operations");
}

Status Dict::remove(std::string_view) { return Status::error; }

bool Dict::sequence(bool, std::string*, std::string*, std::string* error) {
  if (error) *error = "table " + spec() + " does not support sequence operations";
  return false;
}

namespace {

class SurrogateDict : public Dict {
 public:
  SurrogateDict(std::string type, std::string name, std::string error)
      : Dict(std::move(type), std::move(name), false), error_(std::move(error)) {}
  Result update(std::string_view, std::string_view) override { return Result::fail(error_); }
  bool sequence(bool, std::string*, std::string*, std::string* error) override {
    if (error) *error = error_;
    return false;
  }

 protected:
  Result do_lookup(std::string_view) override { return Result::fail(error_); }

 private:
  std::string error_;
};

struct TypeEntry {
  std::string_view type;
  DictPtr (*open)(std::string_view, const OpenFlags&);
};

// Sorted by type name.
constexpr TypeEntry kTypes[] = {
    {"btree", open_btree},
    {"cidr", open_cidr},
    {"fail", open_fail},
    {"hash", open_hash},
    {"inline", open_inline},
    {"pcre", open_pcre},
    {"regexp", open_regexp},
    {"static", open_static},
    {"texthash", open_texthash},
    {"unix", open_unix},
};

// Types registered at run time (register_dict_type), in registration order.
struct RegisteredType {
  std::string type;
  DictOpener open;
};
std::vector<RegisteredType>& registered_types() {
  static std::vector<RegisteredType> types;
  return types;
}

DictOpener find_type(std::string_view type) {
  for (const TypeEntry& t : kTypes)
    if (t.type == type) return t.open;
  for (const RegisteredType& t : registered_types())
    if (t.type == type) return t.open;
  return nullptr;
}

void split_spec(std::string_view spec, std::string_view default_type, std::string_view* type,
                std::string_view* name) {
  size_t colon = spec.find(':');
  // "/path:with:colons" has no type; a type is a word before the first colon.
  bool has_type = colon != std::string_view::npos && colon > 0 &&
                  std::all_of(spec.begin(), spec.begin() + static_cast<long>(colon), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
                  });
  *type = has_type ? spec.substr(0, colon) : default_type;
  *name = has_type ? spec.substr(colon + 1) : spec;
}

}  // namespace

DictPtr make_surrogate(std::string type, std::string name, std::string error) {
  return std::make_unique<SurrogateDict>(std::move(type), std::move(name), std::move(error));
}

DictPtr open_dict_or_throw(std::string_view spec, const OpenFlags& flags, std::string_view default_type) {
  std::string_view type, name;
  split_spec(spec, default_type, &type, &name);
  if (name.empty())
    throw DictError("open dictionary: expecting \"type:name\" form instead of \"" + std::string(spec) + "\"");
  DictOpener open = find_type(type);
  if (!open) throw DictError("unsupported dictionary type: " + std::string(type));
  DictPtr d = open(name, flags);
  d->set_fold_fixed(flags.fold_fixed);
  return d;
}

DictPtr open_dict(std::string_view spec, const OpenFlags& flags, std::string_view default_type) {
  try {
    return open_dict_or_throw(spec, flags, default_type);
  } catch (const DictError& e) {
    std::string_view type, name;
    split_spec(spec, default_type, &type, &name);
    return make_surrogate(std::string(type), std::string(name), e.what());
  }
}

std::vector<std::string> dict_types() {
  std::vector<std::string> out;
  for (const TypeEntry& t : kTypes) out.emplace_back(t.type);
  for (const RegisteredType& t : registered_types()) out.push_back(t.type);
  std::sort(out.begin(), out.end());
  return out;
}

bool is_known_type(std::string_view type) { return find_type(type) != nullptr; }

void register_dict_type(std::string_view type, DictOpener open) {
  for (const TypeEntry& t : kTypes)
    if (t.type == type) return;
  for (RegisteredType& t : registered_types())
    if (t.type == type) {
      t.open = open;
      return;
    }
  registered_types().push_back({std::string(type), open});
}

}  // namespace mta::maps
