// dict_db.cpp: hash: and btree: tables in Berkeley DB 5.3, file for file
// compatible with Postfix's.
//
// On disk the table for "hash:/etc/aliases" is /etc/aliases.db.  Postfix
// stores keys and values with their terminating NUL on Linux and reads
// either convention: try the key with a NUL, then without, and remember
// which one the file uses.  We do the same, so that a .db built by the real
// postmap is read here and the reverse.
//
// A new table (postmap) is built in NAME.db.tmp, which is locked so that two
// builders never write one file, then fsync'd and renamed over NAME.db: a
// reader sees the old table or the new one, never half of one.  Readers take
// a shared lock per lookup and updaters (postmap -i, -d) an exclusive one for
// the whole session, as Postfix does.
#include <db.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "maps/dict_types.hpp"

namespace mta::maps {
namespace {

// Postfix's defaults of berkeley_db_read_buffer_size and _create_buffer_size.
constexpr unsigned kReadCacheSize = 128 * 1024;
constexpr unsigned kCreateCacheSize = 16 * 1024 * 1024;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }
 private:
  int fd_ = -1;
};

struct DbCloser {
  void operator()(DB* db) const { db->close(db, 0); }
};
using DbHandle = std::unique_ptr<DB, DbCloser>;

// Key or value bytes, with or without the terminating NUL.
struct Datum {
  std::string bytes;
  DBT dbt{};
  Datum(std::string_view s, bool with_nul) : bytes(s) {
    if (with_nul) bytes.push_back('\0');
    dbt.data = bytes.data();
    dbt.size = static_cast<u_int32_t>(bytes.size());
  }
};

class DbDict : public Dict {
 public:
  DbDict(std::string type, std::string name, DBTYPE db_type, const OpenFlags& flags)
      : Dict(std::move(type), std::move(name), false), flags_(flags) {
    path_ = this->name() + ".db";
    // Postfix on Linux writes the NUL unless told otherwise (postmap -n);
    // an update of an existing table follows what the table holds.
    write_nul_ = flags.keys != NulKeys::without_nul;
    if (flags.keys == NulKeys::with_nul) try_without_nul_ = false;
    if (flags.keys == NulKeys::without_nul) try_with_nul_ = false;
    if (flags.create) open_for_build(db_type);
    else open_existing(db_type);
  }

  ~DbDict() override {
    if (cursor_) cursor_->close(cursor_);
    db_.reset();
    if (tmp_fd_.get() >= 0) ::unlink(tmp_path_.c_str());  // a build never committed
  }

  Result update(std::string_view key_in, std::string_view value) override {
    std::string key = fold_fixed() ? fold_key(key_in) : std::string(key_in);
    Datum k(key, write_nul_), v(value, write_nul_);
    int flag = flags_.duplicates == Duplicates::replace ? 0 : DB_NOOVERWRITE;
    int ret = db_->put(db_.get(), nullptr, &k.dbt, &v.dbt, static_cast<u_int32_t>(flag));
    if (ret == DB_KEYEXIST) {
      if (flags_.duplicates == Duplicates::warn)
        log::warning("%s: duplicate entry: \"%s\"", path_.c_str(), key.c_str());
      return Result::miss();
    }
    if (ret != 0) return Result::fail("error writing " + path_ + ": " + db_strerror(ret));
    return Result::hit({});
  }

  Status remove(std::string_view key_in) override {
    std::string key = fold_fixed() ? fold_key(key_in) : std::string(key_in);
    for (bool nul : {true, false}) {
      if ((nul && !try_with_nul_) || (!nul && !try_without_nul_)) continue;
      Datum k(key, nul);
      int ret = db_->del(db_.get(), nullptr, &k.dbt, 0);
      if (ret == 0) return Status::found;
      if (ret != DB_NOTFOUND) return Status::error;
    }
    return Status::not_found;
  }

  bool sequence(bool first, std::string* key, std::string* value, std::string* error) override {
    if (first || !cursor_) {
      if (cursor_) cursor_->close(cursor_);
      cursor_ = nullptr;
      if (int ret = db_->cursor(db_.get(), nullptr, &cursor_, 0); ret != 0) {
        if (error) *error = "cursor on " + path_ + ": " + db_strerror(ret);
        return false;
      }
    }
    DBT k{}, v{};
    int ret = cursor_->get(cursor_, &k, &v, DB_NEXT);
    if (ret == DB_NOTFOUND) {
      cursor_->close(cursor_);
      cursor_ = nullptr;
      return false;
    }
    if (ret != 0) {
      if (error) *error = "read " + path_ + ": " + db_strerror(ret);
      return false;
    }
    *key = strip_nul(k);
    *value = strip_nul(v);
    return true;
  }

  void commit() override {
    if (cursor_) {
      cursor_->close(cursor_);
      cursor_ = nullptr;
    }
    if (int ret = db_->sync(db_.get(), 0); ret != 0)
      throw DictError("sync " + (tmp_fd_.get() >= 0 ? tmp_path_ : path_) + ": " + db_strerror(ret));
    if (tmp_fd_.get() < 0) return;
    DB* db = db_.release();
    if (int ret = db->close(db, 0); ret != 0)
      throw DictError("close " + tmp_path_ + ": " + db_strerror(ret));
    if (::fsync(tmp_fd_.get()) != 0) throw DictError("fsync " + tmp_path_ + ": " + std::strerror(errno));
    if (::fchmod(tmp_fd_.get(), flags_.create_mode & 07777) != 0)
      throw DictError("set permissions of " + tmp_path_ + ": " + std::strerror(errno));
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
      throw DictError("rename " + tmp_path_ + " to " + path_ + ": " + std::strerror(errno));
    std::string dir = path_.rfind('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/'));
    if (dir.empty()) dir = "/";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    tmp_fd_.reset();  // releases the builder's lock
  }

 protected:
  Result do_lookup(std::string_view key) override {
    SharedLock lock(flags_.write || flags_.create ? -1 : db_fd());
    if (try_with_nul_) {
      Datum k(key, true);
      DBT v{};
      int ret = db_->get(db_.get(), nullptr, &k.dbt, &v, 0);
      if (ret == 0) {
        try_without_nul_ = false;
        return Result::hit(strip_nul(v));
      }
      if (ret != DB_NOTFOUND) return Result::fail("error reading " + path_ + ": " + db_strerror(ret));
    }
    if (try_without_nul_) {
      Datum k(key, false);
      DBT v{};
      int ret = db_->get(db_.get(), nullptr, &k.dbt, &v, 0);
      if (ret == 0) {
        try_with_nul_ = false;
        return Result::hit(strip_nul(v));
      }
      if (ret != DB_NOTFOUND) return Result::fail("error reading " + path_ + ": " + db_strerror(ret));
    }
    return Result::miss();
  }

 private:
  struct SharedLock {
    int fd;
    explicit SharedLock(int f) : fd(f) { if (fd >= 0) ::flock(fd, LOCK_SH); }
    ~SharedLock() { if (fd >= 0) ::flock(fd, LOCK_UN); }
  };

  static std::string strip_nul(const DBT& d) {
    std::string s(static_cast<const char*>(d.data), d.size);
    if (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

  int db_fd() const {
    int fd = -1;
    if (db_ && db_->fd(db_.get(), &fd) != 0) return -1;
    return fd;
  }

  void make_db(DBTYPE db_type, unsigned cache) {
    DB* db = nullptr;
    if (int ret = db_create(&db, nullptr, 0); ret != 0)
      throw DictError("create DB database: " + std::string(db_strerror(ret)));
    db_.reset(db);
    // Berkeley DB would print its own diagnostics on stderr; the error we
    // return says what matters, and -v shows the library's words too.
    db->set_errcall(db, [](const DB_ENV*, const char*, const char* msg) { log::debug("Berkeley DB: %s", msg); });
    db->set_cachesize(db, 0, cache, 0);
    if (db_type == DB_HASH) db->set_h_nelem(db, 4096);  // as Postfix sizes a new hash table
  }

  void open_existing(DBTYPE db_type) {
    make_db(db_type, kReadCacheSize);
    u_int32_t how = flags_.write ? 0 : DB_RDONLY;
    if (int ret = db_->open(db_.get(), nullptr, path_.c_str(), nullptr, db_type, how, 0644); ret != 0)
      throw DictError("open database " + path_ + ": " + db_strerror(ret));
    watch_file(path_);
    if (flags_.write && flags_.keys == NulKeys::auto_detect) {
      // Updates follow the convention of the entries already there.
      DBC* c = nullptr;
      DBT k{}, v{};
      if (db_->cursor(db_.get(), nullptr, &c, 0) == 0) {
        if (c->get(c, &k, &v, DB_FIRST) == 0) {
          write_nul_ = k.size > 0 && static_cast<const char*>(k.data)[k.size - 1] == '\0';
          try_with_nul_ = write_nul_;
          try_without_nul_ = !write_nul_;
        }
        c->close(c);
      }
    }
    if (flags_.write) {
      lock_fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
      if (lock_fd_.get() < 0 || ::flock(lock_fd_.get(), LOCK_EX) != 0)
        throw DictError("lock database " + path_ + ": " + std::strerror(errno));
    }
  }

  void open_for_build(DBTYPE db_type) {
    tmp_path_ = path_ + ".tmp";
    // Lock NAME.db.tmp; if another builder renamed it away while we waited,
    // the file we locked is the live table: start over on a fresh one.
    for (int attempt = 0; attempt < 100; ++attempt) {
      int fd = ::open(tmp_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0) throw DictError("open database " + tmp_path_ + ": " + std::strerror(errno));
      if (::flock(fd, LOCK_EX) != 0) {
        ::close(fd);
        throw DictError("lock " + tmp_path_ + ": " + std::strerror(errno));
      }
      struct stat by_fd{}, by_path{};
      if (::fstat(fd, &by_fd) == 0 && ::stat(tmp_path_.c_str(), &by_path) == 0 &&
          by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev) {
        tmp_fd_.reset(fd);
        break;
      }
      ::close(fd);
    }
    if (tmp_fd_.get() < 0) throw DictError("lock " + tmp_path_ + ": too many attempts");
    if (::ftruncate(tmp_fd_.get(), 0) != 0) throw DictError("truncate " + tmp_path_ + ": " + std::strerror(errno));
    // Postfix builds with a 16 MB cache (berkeley_db_create_buffer_size);
    // a cache that holds the whole table turns the build's page writes into
    // one sequential flush, so a big table gets a bigger one, up to 1 GB.
    size_t cache = std::clamp<size_t>(flags_.size_hint * 3, kCreateCacheSize, size_t{1} << 30);
    make_db(db_type, static_cast<unsigned>(cache));
    if (int ret = db_->open(db_.get(), nullptr, tmp_path_.c_str(), nullptr, db_type, DB_CREATE | DB_TRUNCATE, 0644);
        ret != 0)
      throw DictError("open database " + tmp_path_ + ": " + db_strerror(ret));
  }

  OpenFlags flags_;
  std::string path_;
  std::string tmp_path_;
  DbHandle db_;
  DBC* cursor_ = nullptr;
  Fd tmp_fd_;
  Fd lock_fd_;
  bool try_with_nul_ = true;
  bool try_without_nul_ = true;
  bool write_nul_ = true;
};

}  // namespace

DictPtr open_hash(std::string_view name, const OpenFlags& flags) {
  return std::make_unique<DbDict>("hash", std::string(name), DB_HASH, flags);
}

DictPtr open_btree(std::string_view name, const OpenFlags& flags) {
  return std::make_unique<DbDict>("btree", std::string(name), DB_BTREE, flags);
}

}  // namespace mta::maps
