// dict_simple.cpp: the tables that need no index file.
//
//   texthash:/file   a postmap source file read into memory when opened
//   inline:{ k=v, { k = v with spaces } }   the table in its own name
//   static:value     every key maps to value (static:{ v with spaces })
//   fail:name        every lookup fails (for tests and for pinning a
//                    misconfigured map to "try again later")
//   unix:passwd.byname, unix:group.byname   the system's accounts, in
//                    passwd(5)/group(5) line form
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <map>

#include "config/config_file.hpp"
#include "maps/dict_types.hpp"
#include "maps/table_source.hpp"

namespace mta::maps {
namespace {

// A fixed-string table held in memory, in insertion order for sequence.
class MemoryDict : public Dict {
 public:
  MemoryDict(std::string type, std::string name) : Dict(std::move(type), std::move(name), false) {}

  void add(std::string key, std::string value) {
    if (fold_fixed()) key = fold_key(key);
    if (index_.emplace(key, entries_.size()).second) entries_.emplace_back(std::move(key), std::move(value));
  }

  bool sequence(bool first, std::string* key, std::string* value, std::string*) override {
    if (first) next_ = 0;
    if (next_ >= entries_.size()) return false;
    *key = entries_[next_].first;
    *value = entries_[next_].second;
    ++next_;
    return true;
  }

 protected:
  Result do_lookup(std::string_view key) override {
    auto it = index_.find(std::string(key));
    if (it == index_.end()) return Result::miss();
    return Result::hit(entries_[it->second].second);
  }

 private:
  std::map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::string>> entries_;
  size_t next_ = 0;
};

std::string strip_braces(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && config::is_blank(s[b])) ++b;
  while (e > b && config::is_blank(s[e - 1])) --e;
  if (e - b >= 2 && s[b] == '{' && s[e - 1] == '}') {
    ++b;
    --e;
    while (b < e && config::is_blank(s[b])) ++b;
    while (e > b && config::is_blank(s[e - 1])) --e;
  }
  return std::string(s.substr(b, e - b));
}

class StaticDict : public Dict {
 public:
  StaticDict(std::string name, std::string value) : Dict("static", std::move(name), false), value_(std::move(value)) {}
  bool sequence(bool, std::string*, std::string*, std::string* error) override {
    if (error) *error = "table " + spec() + ": sequence operation is not supported";
    return false;
  }

 protected:
  Result do_lookup(std::string_view) override { return Result::hit(value_); }

 private:
  std::string value_;
};

class FailDict : public Dict {
 public:
  explicit FailDict(std::string name) : Dict("fail", std::move(name), false) {}
  Result update(std::string_view, std::string_view) override { return Result::fail("Application error"); }
  Status remove(std::string_view) override { return Status::error; }
  bool sequence(bool, std::string*, std::string*, std::string* error) override {
    if (error) *error = "table " + spec() + ": sequence error: Application error";
    return false;
  }

 protected:
  Result do_lookup(std::string_view) override { return Result::fail("Application error"); }
};

class UnixDict : public Dict {
 public:
  explicit UnixDict(std::string name, bool passwd) : Dict("unix", std::move(name), false), passwd_(passwd) {}

 protected:
  Result do_lookup(std::string_view key) override {
    std::string k(key);
    if (passwd_) {
      struct passwd* pw = ::getpwnam(k.c_str());
      if (!pw) return Result::miss();
      return Result::hit(std::string(pw->pw_name) + ":" + pw->pw_passwd + ":" + std::to_string(pw->pw_uid) +
                         ":" + std::to_string(pw->pw_gid) + ":" + pw->pw_gecos + ":" + pw->pw_dir + ":" +
                         pw->pw_shell);
    }
    struct group* gr = ::getgrnam(k.c_str());
    if (!gr) return Result::miss();
    std::string members;
    for (char** m = gr->gr_mem; m && *m; ++m) {
      if (!members.empty()) members += ',';
      members += *m;
    }
    return Result::hit(std::string(gr->gr_name) + ":" + gr->gr_passwd + ":" + std::to_string(gr->gr_gid) + ":" +
                       members);
  }

 private:
  bool passwd_;
};

}  // namespace

DictPtr open_texthash(std::string_view name, const OpenFlags& flags) {
  auto d = std::make_unique<MemoryDict>("texthash", std::string(name));
  d->set_fold_fixed(flags.fold_fixed);
  std::string path(name);
  d->watch_file(path);
  for (SourceEntry& e : read_table_source(path)) d->add(std::move(e.key), std::move(e.value));
  return d;
}

DictPtr open_inline(std::string_view name, const OpenFlags& flags) {
  std::string spec = "inline:" + std::string(name);
  std::string need = "; need \"inline:{name=value...}\"";
  std::string_view n = name;
  while (!n.empty() && config::is_blank(n.front())) n.remove_prefix(1);
  if (n.empty() || n.front() != '{' || n.back() != '}')
    throw DictError("bad syntax: \"" + spec + "\"" + need);
  auto d = std::make_unique<MemoryDict>("inline", std::string(name));
  d->set_fold_fixed(flags.fold_fixed);
  std::string body = strip_braces(n);
  // Items are separated by commas or blanks; a braced item may hold both.
  size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && (config::is_blank(body[i]) || body[i] == ',')) ++i;
    if (i >= body.size()) break;
    std::string item;
    if (body[i] == '{') {
      int depth = 0;
      size_t j = i;
      for (; j < body.size(); ++j) {
        if (body[j] == '{') ++depth;
        else if (body[j] == '}' && --depth == 0) break;
      }
      if (j >= body.size()) throw DictError("bad syntax: \"" + spec + "\"" + need);
      item = strip_braces(std::string_view(body).substr(i, j - i + 1));
      i = j + 1;
    } else {
      size_t j = i;
      while (j < body.size() && !config::is_blank(body[j]) && body[j] != ',') ++j;
      item = body.substr(i, j - i);
      i = j;
    }
    std::string key, value;
    std::string err = config::split_name_value(item, &key, &value);
    if (!err.empty()) {
      if (err.rfind("missing '=' after attribute name", 0) == 0) err = "missing '=' after attribute name: \"" + spec + "\"";
      throw DictError(err + need);
    }
    d->add(std::move(key), std::move(value));
  }
  return d;
}

DictPtr open_static(std::string_view name, const OpenFlags&) {
  return std::make_unique<StaticDict>(std::string(name), strip_braces(name));
}

DictPtr open_fail(std::string_view name, const OpenFlags&) { return std::make_unique<FailDict>(std::string(name)); }

DictPtr open_unix(std::string_view name, const OpenFlags&) {
  if (name == "passwd.byname") return std::make_unique<UnixDict>(std::string(name), true);
  if (name == "group.byname") return std::make_unique<UnixDict>(std::string(name), false);
  throw DictError("unknown table: unix:" + std::string(name));
}

}  // namespace mta::maps
