// attr_schema.hpp: typed messages for the attribute protocol (attr.hpp).
//
// A message type describes itself once, and that one description both
// writes and reads it:
//
//   struct RewriteReply {
//     int flags = 0;
//     std::string address;
//     static constexpr auto attr_schema() {
//       return ipc::schema(ipc::field("flags", &RewriteReply::flags),
//                          ipc::field("address", &RewriteReply::address));
//     }
//   };
//   ipc::write(writer, reply);          // "flags\0" "0\0" "address\0" ...
//   ipc::read(reader, reply);           // strict, in order, as attr_scan
//
// Field kinds (Postfix's ATTR_TYPE_* in brackets):
//   field(name, &T::m)     by the member's type: std::string [STR];
//                          bool, enums and integers of up to 32 bits [INT];
//                          64-bit integers [LONG]; ipc::Data and types with
//                          to_attr_data()/from_attr_data() [DATA].
//   constant(name, value)  written as a string; on reading the value must
//                          match [STREQ] (protocol announcements, request
//                          names).
//   embed(&T::m)           a member that has its own schema, inline [FUNC].
//   inherit<Base>()        the fields of a base class, inline [FUNC].
//   table(&T::m)           an ipc::AttrTable sent as a group [HASH]; when
//                          reading, a list without a group yields all its
//                          remaining attributes, so a table comes last.
// Fields are read in the order declared; see attr.hpp for strictness,
// "more", and the errors.
#pragma once

#include <concepts>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "ipc/attr.hpp"

namespace mta::ipc {

// Binary data, sent base64-encoded [DATA].
struct Data {
  std::string bytes;
  bool operator==(const Data&) const = default;
};

// A table of string attributes [HASH]: the first instance of a name wins.
using AttrTable = std::map<std::string, std::string, std::less<>>;

template <class T>
concept Described = requires { T::attr_schema(); };

template <class T>
concept DataValue = requires(T v, const T cv, std::string_view bytes) {
  { cv.to_attr_data() } -> std::convertible_to<std::string>;
  { v.from_attr_data(bytes) } -> std::same_as<bool>;
};

namespace schema_detail {

template <class T, class M>
struct Field {
  std::string_view name;
  M T::*member;
};
struct Const {
  std::string_view name;
  std::string_view value;
};
template <class T, class M>
struct Embed {
  M T::*member;
};
template <class B>
struct Inherit {};
template <class T>
struct Table {
  AttrTable T::*member;
};

}  // namespace schema_detail

template <class... F>
struct Schema {
  std::tuple<F...> fields;
};

template <class... F>
constexpr Schema<F...> schema(F... fields) {
  return Schema<F...>{std::tuple<F...>(fields...)};
}
template <class T, class M>
constexpr schema_detail::Field<T, M> field(std::string_view name, M T::*member) {
  return {name, member};
}
constexpr schema_detail::Const constant(std::string_view name, std::string_view value) { return {name, value}; }
template <class T, class M>
constexpr schema_detail::Embed<T, M> embed(M T::*member) {
  return {member};
}
template <class B>
constexpr schema_detail::Inherit<B> inherit() {
  return {};
}
template <class T>
constexpr schema_detail::Table<T> table(AttrTable T::*member) {
  return {member};
}

namespace schema_detail {

template <class>
inline constexpr bool kUnsupported = false;

template <class M>
Status put_value(AttrEncoder& enc, std::string_view name, const M& v) {
  if constexpr (std::same_as<M, std::string>) {
    return enc.str(name, v);
  } else if constexpr (std::same_as<M, Data>) {
    return enc.data(name, v.bytes);
  } else if constexpr (DataValue<M>) {
    return enc.data(name, v.to_attr_data());
  } else if constexpr (std::same_as<M, bool>) {
    return enc.num(name, v ? 1u : 0u);
  } else if constexpr (std::is_enum_v<M>) {
    return put_value(enc, name, static_cast<std::underlying_type_t<M>>(v));
  } else if constexpr (std::integral<M> && sizeof(M) <= 4) {
    return enc.num(name, static_cast<uint32_t>(v));  // "%u", as Postfix
  } else if constexpr (std::integral<M> && sizeof(M) == 8) {
    return enc.lng(name, static_cast<uint64_t>(v));  // "%lu"
  } else {
    static_assert(kUnsupported<M>, "no attribute encoding for this member type");
  }
}

template <class M>
Status get_value(const AttrReader& reader, const AttrReader::Item& item, M& out, const ReadOptions& options) {
  auto missing_value = [&](const char* kind) {
    return Status(Errc::malformed, std::string("missing value for ") + kind + " attribute " + item.name +
                                       " from " + reader.path());
  };
  if constexpr (std::same_as<M, std::string>) {
    if (!item.has_value) return missing_value("string");
    out = options.printable ? printable(item.value) : item.value;
    return {};
  } else if constexpr (std::same_as<M, Data> || DataValue<M>) {
    if (!item.has_value) return missing_value("data");
    std::string bytes;
    if (reader.format() == Format::base64) {
      bytes = item.value;
    } else {
      auto decoded = base64_decode(item.value);
      if (!decoded) return reader.bad_base64(item.value);
      bytes = std::move(*decoded);
    }
    if constexpr (std::same_as<M, Data>) {
      out.bytes = std::move(bytes);
    } else if (!out.from_attr_data(bytes)) {
      return Status(Errc::malformed, "malformed data for attribute " + item.name + " from " + reader.path() +
                                         ": " + std::to_string(bytes.size()) + " bytes");
    }
    return {};
  } else if constexpr (std::is_enum_v<M>) {
    std::underlying_type_t<M> raw{};
    if (Status st = get_value(reader, item, raw, options); !st) return st;
    out = static_cast<M>(raw);
    return {};
  } else if constexpr (std::integral<M> && sizeof(M) <= 4) {
    if (!item.has_value) return missing_value("number");
    auto v = parse_uint32(item.value);
    if (!v) return reader.bad_number(item.value);
    if constexpr (std::same_as<M, bool>)
      out = *v != 0;
    else
      out = static_cast<M>(*v);
    return {};
  } else if constexpr (std::integral<M> && sizeof(M) == 8) {
    if (!item.has_value) return missing_value("number");
    auto v = parse_uint64(item.value);
    if (!v) return reader.bad_number(item.value);
    out = static_cast<M>(*v);
    return {};
  } else {
    static_assert(kUnsupported<M>, "no attribute decoding for this member type");
  }
}

// ---- writing

template <class T, class... F>
Status put_fields(AttrEncoder& enc, const T& obj, const Schema<F...>& s);

template <class T, class C, class M>
Status put_field(AttrEncoder& enc, const T& obj, const Field<C, M>& f) {
  return put_value(enc, f.name, obj.*(f.member));
}
template <class T>
Status put_field(AttrEncoder& enc, const T&, const Const& f) {
  return enc.str(f.name, f.value);
}
template <class T, class C, class M>
Status put_field(AttrEncoder& enc, const T& obj, const Embed<C, M>& f) {
  static_assert(Described<M>, "embed() needs a member type with attr_schema()");
  return put_fields(enc, obj.*(f.member), M::attr_schema());
}
template <class T, class B>
Status put_field(AttrEncoder& enc, const T& obj, const Inherit<B>&) {
  return put_fields(enc, static_cast<const B&>(obj), B::attr_schema());
}
template <class T, class C>
Status put_field(AttrEncoder& enc, const T& obj, const Table<C>& f) {
  enc.open_group();
  for (const auto& [name, value] : obj.*(f.member))
    if (Status st = enc.str(name, value); !st) return st;
  enc.close_group();
  return {};
}

template <class T, class... F>
Status put_fields(AttrEncoder& enc, const T& obj, const Schema<F...>& s) {
  Status st;
  std::apply([&](const auto&... f) { ((st ? void(st = put_field(enc, obj, f)) : void()), ...); }, s.fields);
  return st;
}

// ---- reading

struct ReadState {
  bool list_ended = false;  // a table consumed the terminator
};

template <class T, class... F>
Status get_fields(AttrReader& r, T& obj, const Schema<F...>& s, const ReadOptions& o, ReadState& rs);

inline Status seek_field(AttrReader& r, std::string_view name, const ReadOptions& o, ReadState& rs,
                         AttrReader::Item& item) {
  if (rs.list_ended) return {Errc::missing, "missing attribute " + std::string(name) + " in input from " + r.path()};
  return r.seek(name, o.strict, item);
}

template <class T, class C, class M>
Status get_field(AttrReader& r, T& obj, const Field<C, M>& f, const ReadOptions& o, ReadState& rs) {
  AttrReader::Item item;
  if (Status st = seek_field(r, f.name, o, rs, item); !st) return st;
  return get_value(r, item, obj.*(f.member), o);
}
template <class T>
Status get_field(AttrReader& r, T&, const Const& f, const ReadOptions& o, ReadState& rs) {
  AttrReader::Item item;
  if (Status st = seek_field(r, f.name, o, rs, item); !st) return st;
  if (!item.has_value || item.value != f.value)
    return {Errc::mismatch, "unexpected " + std::string(f.name) + " " + printable(item.value) + " from " + r.path() +
                                " (expected: " + std::string(f.value) + ")"};
  return {};
}
template <class T, class C, class M>
Status get_field(AttrReader& r, T& obj, const Embed<C, M>& f, const ReadOptions& o, ReadState& rs) {
  return get_fields(r, obj.*(f.member), M::attr_schema(), o, rs);
}
template <class T, class B>
Status get_field(AttrReader& r, T& obj, const Inherit<B>&, const ReadOptions& o, ReadState& rs) {
  return get_fields(r, static_cast<B&>(obj), B::attr_schema(), o, rs);
}

Status read_table(AttrReader& r, AttrTable& table, const ReadOptions& o, bool& list_ended);

template <class T, class C>
Status get_field(AttrReader& r, T& obj, const Table<C>& f, const ReadOptions& o, ReadState& rs) {
  (obj.*(f.member)).clear();
  if (rs.list_ended) return {};
  return read_table(r, obj.*(f.member), o, rs.list_ended);
}

template <class T, class... F>
Status get_fields(AttrReader& r, T& obj, const Schema<F...>& s, const ReadOptions& o, ReadState& rs) {
  Status st;
  std::apply([&](const auto&... f) { ((st ? void(st = get_field(r, obj, f, o, rs)) : void()), ...); }, s.fields);
  return st;
}

}  // namespace schema_detail

// Appends obj (and the list terminator, unless terminate is false, which is
// ATTR_FLAG_MORE) to enc; on failure nothing is appended.
template <Described T>
Status encode(AttrEncoder& enc, const T& obj, bool terminate = true) {
  size_t mark = enc.size();  // encoded in place, cut back on failure
  if (Status st = schema_detail::put_fields(enc, obj, T::attr_schema()); !st) {
    enc.truncate(mark);
    return st;
  }
  if (terminate) enc.end();
  return {};
}

// Buffers obj on the writer's stream (the caller flushes).
template <Described T>
Status write(AttrWriter& writer, const T& obj, bool terminate = true) {
  if (Status st = encode(writer.encoder(), obj, terminate); !st) return st;
  return writer.send();
}

// Reads obj; unless options.more, also the rest of the list through its
// terminator (strict: nothing else may come).
template <Described T>
Status read(AttrReader& reader, T& obj, const ReadOptions& options = {}) {
  schema_detail::ReadState rs;
  if (Status st = schema_detail::get_fields(reader, obj, T::attr_schema(), options, rs); !st) return st;
  if (!options.more && !rs.list_ended) return reader.finish_list(options.strict);
  return {};
}

}  // namespace mta::ipc
