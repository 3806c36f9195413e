// dict.hpp: one lookup table ("type:name"), as Postfix's dict(3) layer.
//
// Every table type implements Dict.  A lookup has three outcomes: found (with
// a value), not found, and error (a table that cannot be read).  An error is
// never confused with "not found": callers defer mail on error and never
// bounce it.  A table that fails to open is replaced by a surrogate whose
// every lookup reports the open error, so that a daemon keeps running and
// says why at the point of use, as Postfix does.
//
// Key case: fixed-string tables (hash, btree, texthash, inline, ...) fold
// the key to lower case before the lookup when fold_fixed is set (the default,
// Postfix's DICT_FLAG_FOLD_FIX); pattern tables (regexp, pcre, cidr) see the
// key as given and apply their own case rules.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mta::maps {

enum class Status { found, not_found, error };

struct Result {
  Status status = Status::not_found;
  std::string value;  // when found
  std::string error;  // when error, a Postfix-style message
  static Result hit(std::string v) { return {Status::found, std::move(v), {}}; }
  static Result miss() { return {}; }
  static Result fail(std::string e) { return {Status::error, {}, std::move(e)}; }
  bool found() const { return status == Status::found; }
  bool failed() const { return status == Status::error; }
};

enum class Duplicates { warn, replace, ignore };  // postmap default, -r, -w
// Keys and values with or without their terminating NUL (postmap -N, -n);
// by default both are tried on lookup and the NUL is written.
enum class NulKeys { auto_detect, with_nul, without_nul };

struct OpenFlags {
  bool create = false;      // build a new table (postmap): truncate, write, rename into place
  bool write = false;       // open an existing table for update (postmap -i, -d)
  bool fold_fixed = true;   // lower-case keys of fixed-string tables
  bool lock = false;        // take the table's lock for the duration of updates
  Duplicates duplicates = Duplicates::warn;
  NulKeys keys = NulKeys::auto_detect;
  unsigned create_mode = 0644;  // permissions of a newly built table file
  size_t size_hint = 0;         // bytes of source text, to size a build's cache
  bool no_regsub = false;       // refuse $n substitution in regexp/pcre results (alias_maps)
};

class Dict {
 public:
  Dict(std::string type, std::string name, bool pattern)
      : type_(std::move(type)), name_(std::move(name)), pattern_(pattern) {}
  virtual ~Dict();
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;

  const std::string& type() const { return type_; }
  const std::string& name() const { return name_; }
  std::string spec() const { return type_ + ":" + name_; }
  bool is_pattern() const { return pattern_; }

  // Folds the key where the flags say so, then asks the table.
  Result lookup(std::string_view key);
  // Update and delete: found = done; not_found = no such key (delete) or a
  // duplicate kept per Duplicates (update); error = not supported or failed.
  virtual Result update(std::string_view key, std::string_view value);
  virtual Status remove(std::string_view key);
  // Sequence: first=true restarts; returns false at the end (or on error,
  // with *error set when given).
  virtual bool sequence(bool first, std::string* key, std::string* value, std::string* error = nullptr);
  // True when the file behind the table changed since it was opened, so a
  // long-running daemon should restart (Postfix: "table has changed").
  virtual bool has_changed() const;
  // Remembers the file's identity and time for has_changed() (openers call it).
  void watch_file(const std::string& path);
  // Makes updates durable and visible (postmap: fsync and rename).
  virtual void commit() {}

  void set_fold_fixed(bool fold) { fold_fixed_ = fold; }
  bool fold_fixed() const { return fold_fixed_; }

 protected:
  virtual Result do_lookup(std::string_view key) = 0;
  std::string fold_key(std::string_view key) const;
  // For tables that learn their kind after construction (proxy: asks the
  // server whether the remote table is a pattern table).
  void set_pattern(bool pattern) { pattern_ = pattern; }
  // For tables whose server folds the key (proxy:): lookup() then passes
  // the key as the caller gave it, and the table sends fold_fixed() along.
  void fold_remotely() { fold_remotely_ = true; }

 private:
  std::string type_;
  std::string name_;
  bool pattern_;
  bool fold_fixed_ = true;
  bool fold_remotely_ = false;
  std::string watched_;
  int watch_fd_ = -1;  // the watched file, open: still visible after a chroot
  struct FileStamp {
    unsigned long dev = 0, ino = 0;
    long sec = 0, nsec = 0;
  } stamp_;
};

using DictPtr = std::unique_ptr<Dict>;

// Opens "type:name" (a name without a type uses default_type).  Never
// returns null: an unknown type or an open failure gives a surrogate table
// whose lookups fail with the reason.
DictPtr open_dict(std::string_view spec, const OpenFlags& flags = {},
                  std::string_view default_type = "hash");
// The same, but reports the failure instead of a surrogate (postmap).
DictPtr open_dict_or_throw(std::string_view spec, const OpenFlags& flags = {},
                           std::string_view default_type = "hash");

// A table that failed: every operation reports the error.
DictPtr make_surrogate(std::string type, std::string name, std::string error);

// The supported types, sorted (postconf -m).
std::vector<std::string> dict_types();
bool is_known_type(std::string_view type);

// A table type that lives outside lib/maps (proxy: is in lib/ipc, which
// depends on lib/maps, not the other way round), as Postfix's
// dict_open_register().  The opener throws DictError when it cannot open.
// Registering a type again replaces its opener; built-in types cannot be
// replaced.  Call before opening tables (programs do it first in main()).
using DictOpener = DictPtr (*)(std::string_view name, const OpenFlags& flags);
void register_dict_type(std::string_view type, DictOpener open);

// The error type thrown by openers and by open_dict_or_throw.
class DictError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mta::maps
