// attr_schema.cpp: the non-template part of the schema layer: tables
// [HASH], with Postfix's group syntax, duplicate rule and size limit.
#include "ipc/attr_schema.hpp"

namespace mta::ipc::schema_detail {

// A table is a group ("{" ... "}"), or, when the list does not start one,
// every remaining attribute of the list (the terminator is then consumed).
Status read_table(AttrReader& r, AttrTable& table, const ReadOptions& o, bool& list_ended) {
  using Kind = AttrReader::Kind;
  AttrReader::Item item;
  if (Status st = r.next(item); !st) return st;
  const bool grouped = item.kind == Kind::open;
  if (grouped) {
    if (Status st = r.next(item); !st) return st;
  }
  for (;;) {
    switch (item.kind) {
      case Kind::end:
        if (grouped) return {Errc::malformed, "missing '}' at end of attribute list from " + r.path()};
        list_ended = true;
        return {};
      case Kind::close:
        if (grouped) return {};
        return {Errc::malformed, "unexpected '}' in attribute list from " + r.path()};
      case Kind::open:
        return {Errc::malformed, "unexpected '{' inside attribute group from " + r.path()};
      case Kind::attr:
        break;
    }
    if (table.find(item.name) != table.end()) {
      if (o.strict)
        return {Errc::unexpected, "duplicate attribute " + printable(item.name) + " in input from " + r.path()};
    } else if (table.size() >= r.limits().max_table) {
      return {Errc::too_many, "attribute count exceeds limit " + std::to_string(r.limits().max_table) +
                                  " in input from " + r.path()};
    } else if (!item.has_value) {
      return {Errc::malformed, "missing value for string attribute " + item.name + " from " + r.path()};
    } else {
      std::string value = o.printable ? printable(item.value) : std::move(item.value);
      table.emplace(std::move(item.name), std::move(value));
    }
    if (Status st = r.next(item); !st) return st;
  }
}

}  // namespace mta::ipc::schema_detail
