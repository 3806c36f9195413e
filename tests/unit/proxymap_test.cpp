// proxymap: the request logic of proxymap/proxy_tables.hpp (approval,
// the open/lookup/update answers and flags) and the DICT_FLAG_* bits that
// the proxy: client sends (ipc/dict_proxy.hpp).  The expected statuses and
// flags are what the real Postfix 3.7 proxymap answered
// (tests/integration/proxymap_interop.sh compares the two).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_PROXYMAP)

#include "ipc/dict_proxy.hpp"
#include "ipc/proxy_proto.hpp"
#include "proxymap/proxy_tables.hpp"

namespace pp = mta::ipc::proxy_proto;
using mta::proxymap::ProxyTables;

namespace {
// What the real postmap -q sends: UTF8_REQUEST|LOCK|DUP_WARN.
constexpr uint32_t kPostmapFlags = 524353;
}  // namespace

TEST_CASE("proxymap: only proxy: words of proxy_read_maps are approved", "[proxymap]") {
  ProxyTables t({"proxy:unix:passwd.byname", "hash:/etc/aliases", "proxy:proxy:inline:{a=b}", "localhost",
                 "proxy:nocolon"},
                false);
  CHECK(t.is_approved("unix:passwd.byname"));
  CHECK(t.is_approved("inline:{a=b}"));
  CHECK_FALSE(t.is_approved("hash:/etc/aliases"));
  CHECK_FALSE(t.is_approved("nocolon"));
  CHECK(mta::proxymap::strip_proxy_prefix("proxy:proxy:hash:/x") == "hash:/x");
}

TEST_CASE("proxymap: open and lookup answer as Postfix's proxymap", "[proxymap]") {
  ProxyTables t({"proxy:inline:{key=Value}", "proxy:regexp:/nonexistent/re"}, false);
  pp::OpenReply o = t.open({"proxy:inline:{key=Value}", 0});
  CHECK(o.status == pp::kStatOk);
  CHECK(o.flags == pp::flag::kFixed);

  pp::LookupReply r = t.lookup({"inline:{key=Value}", kPostmapFlags | pp::flag::kFoldFix, "KEY"});
  CHECK(r.status == pp::kStatOk);
  CHECK(r.value == "Value");
  r = t.lookup({"inline:{key=Value}", kPostmapFlags, "nothere"});
  CHECK(r.status == pp::kStatNokey);
  CHECK(r.value.empty());

  // Not approved, no type: refused before anything is opened.
  CHECK(t.open({"hash:/etc/aliases", 0}).status == pp::kStatDeny);
  CHECK(t.lookup({"hash:/etc/aliases", 0, "x"}).status == pp::kStatDeny);
  CHECK(t.open({"nocolon", 0}).status == pp::kStatBad);

  // A table that fails to open: a pattern-type surrogate that says retry.
  o = t.open({"regexp:/nonexistent/re", 0});
  CHECK(o.status == pp::kStatOk);
  CHECK(o.flags == pp::flag::kPattern);
  CHECK(t.lookup({"regexp:/nonexistent/re", kPostmapFlags, "x"}).status == pp::kStatRetry);
}

TEST_CASE("proxymap: updates only on the proxywrite service", "[proxymap]") {
  ProxyTables reader({"proxy:inline:{a=b}"}, false);
  CHECK(reader.update({"inline:{a=b}", 0, "a", "c"}).status == pp::kStatDeny);
  CHECK(reader.remove({"inline:{a=b}", 0, "a"}).status == pp::kStatDeny);
  ProxyTables writer({"proxy:inline:{a=b}"}, true);
  // inline tables do not support updates: a retry, as in Postfix.
  CHECK(writer.update({"inline:{a=b}", 0, "a", "c"}).status == pp::kStatRetry);
  CHECK(writer.sequence({"inline:{a=b}", 0, 7}).status == pp::kStatBad);
}

TEST_CASE("proxy: client flags are Postfix's", "[proxymap]") {
  mta::maps::OpenFlags f;  // postmap -q: fold, warn about duplicates
  CHECK(mta::ipc::dict_flags_of(f) == (kPostmapFlags | pp::flag::kFoldFix));
  f.fold_fixed = false;
  f.no_regsub = true;
  f.keys = mta::maps::NulKeys::with_nul;
  f.duplicates = mta::maps::Duplicates::replace;
  CHECK(mta::ipc::dict_flags_of(f, false) ==
        (pp::flag::kLock | pp::flag::kNoRegsub | pp::flag::kTry1Null | pp::flag::kDupReplace));
  // The instance bits of a default open are none: open sends flags=0.
  CHECK((mta::ipc::dict_flags_of({}) & pp::flag::kInstMask) == 0);
}

#endif
