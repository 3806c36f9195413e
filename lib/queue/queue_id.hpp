// queue_id.hpp: queue IDs in Postfix 3.7's two formats, and their hash
// subdirectories.
//
// A queue file is named after the file's inode and the time it was created,
// so no two files in the queue share a name.  Postfix has two forms:
//
//   short (the default):  "%05X" of the microseconds, then "%lX" of the inode,
//                         e.g. 7B3AEA7224A (upper-case hexadecimal only);
//   long (enable_long_queue_ids = yes): the seconds in base 52 (at least six
//                         characters), the microseconds in base 52 (exactly
//                         four), a 'z', then the inode in base 51, e.g.
//                         4jXRQ74KH9z1bYK8.  The alphabet is digits and
//                         consonants; the inode part never holds a 'z', so
//                         the last 'z' separates the two.
//
// In a hashed queue (hash_queue_names) the file lives under one directory
// level per hash_queue_depth, named after the ID's first characters
// ("deferred/7/B/7B3AEA7224A"); a long ID hashes on its microseconds written
// as a short ID would write them, so both forms of IDs made in the same
// microsecond land in the same place ("deferred/9/4/4jXRQ74KH9z1bYK8").
#pragma once

#include <sys/time.h>

#include <optional>
#include <string>
#include <string_view>

namespace mta::queue {

// Postfix's "safe" alphabet (safe_ultostr): 0-9, then upper and lower case
// consonants; bases up to 52.  Digits are written most significant first and
// left-padded with '0' to at least min_width.
std::string safe_ultostr(unsigned long value, unsigned base, size_t min_width);
// The reverse; nullopt for an empty string, a character outside the first
// BASE letters of the alphabet, or an overflow.
std::optional<unsigned long> safe_strtoul(std::string_view text, unsigned base);

std::string short_queue_id(long usec, unsigned long inode);
std::string long_queue_id(long sec, long usec, unsigned long inode);
std::string make_queue_id(bool long_form, const timeval& when, unsigned long inode);

// The exact formats above.
bool is_short_queue_id(std::string_view id);
bool is_long_queue_id(std::string_view id);
bool is_valid_queue_id(std::string_view id);  // either form
// Postfix's looser rule for names in a queue directory (mail_queue_id_ok):
// 1..255 letters, digits or '_' (the flush service's per-site logs use it).
bool is_queue_file_name(std::string_view name);

// The inode a queue ID names; nullopt when the ID is in neither form.
std::optional<unsigned long> queue_id_inode(std::string_view id);

// The string that names the hash directories of ID: the ID itself, or for a
// long ID its microseconds as five upper-case hex digits.
std::string queue_id_hash_key(std::string_view id);
// Postfix's dir_forest: one "C/" per level from KEY's first DEPTH characters
// ('_' where KEY is shorter).  Empty when depth < 1 or KEY has a character
// that cannot name a directory ('.', '/', or one that is not printable).
std::string dir_forest(std::string_view key, int depth);
// dir_forest(queue_id_hash_key(id), depth).
std::string queue_id_hash_dirs(std::string_view id, int depth);

}  // namespace mta::queue
