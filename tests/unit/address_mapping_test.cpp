// cleanup/address_mapping: canonical maps, masquerading, virtual alias
// expansion and BCC lookups, with the lookup order, extension propagation,
// limits and errors of Postfix 3.7's cleanup.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "cleanup/address_mapping.hpp"
#include "cleanup/cleanup_status.hpp"
#include "config/config.hpp"
#include "trivial-rewrite/local_domains.hpp"

namespace fs = std::filesystem;
using mta::cleanup::AddressMapper;
using mta::cleanup::MapOutcome;
namespace cstat = mta::message::cleanup_stat;

namespace {

// The "local" rewriting context, as trivial-rewrite applies it to lookup
// results: an unqualified address gets @example.org.
class AppendOrigin : public mta::cleanup::AddressRewriter {
 public:
  int calls = 0;
  std::string rewrite(std::string_view rule, std::string_view address) override {
    ++calls;
    CHECK(rule == "local");
    std::string a(address);
    if (!a.empty() && a != "\"\"" && a.find('@') == std::string::npos) a += "@example.org";
    return a;
  }
};

struct Fixture {
  fs::path dir;
  AppendOrigin canon;
  std::unique_ptr<mta::rewrite::LocalDomains> local;
  AddressMapper mapper;

  explicit Fixture(const std::string& extra) {
    static int n = 0;
    dir = fs::temp_directory_path() / ("mta-mapping-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(dir);
    std::ofstream(dir / "main.cf") << "compatibility_level = 3.6\n"
                                      "myhostname = mx.example.org\n"
                                      "mydomain = example.org\n"
                                      "myorigin = $mydomain\n"
                                      "mydestination = $myhostname, localhost\n"
                                      "recipient_delimiter = +\n"
                                   << extra;
    mta::config::Config config = mta::config::Config::load(dir.string());
    local = std::make_unique<mta::rewrite::LocalDomains>(
        config, mta::rewrite::InterfaceAddresses::from_list({"127.0.0.1"}));
    mapper = AddressMapper(config, canon, *local);
  }
  ~Fixture() { fs::remove_all(dir); }

  std::string sender(std::string a, int* errs = nullptr) {
    MapOutcome out;
    mapper.envelope_sender(a, "QID", out);
    if (errs) *errs = out.errs;
    return a;
  }
  std::string recipient(std::string a) {
    MapOutcome out;
    mapper.envelope_recipient(a, "QID", out);
    return a;
  }
  std::string header_sender(std::string a) {
    MapOutcome out;
    mapper.header_sender(a, "QID", out);
    return a;
  }
  std::string expand(const std::string& a, MapOutcome* outcome = nullptr) {
    MapOutcome out;
    std::vector<std::string> list = mapper.expand_recipient(a, "QID", out);
    if (outcome) *outcome = out;
    std::string joined;
    for (const std::string& s : list) joined += (joined.empty() ? "" : " ") + s;
    return joined;
  }
};

}  // namespace

TEST_CASE("canonical_maps: the user part of a local address, extensions propagated") {
  Fixture f("canonical_maps = inline:{alice=alice.johnson, {bob@example.org=robert@example.net}}\n");
  CHECK(f.sender("alice@example.org") == "alice.johnson@example.org");
  CHECK(f.recipient("alice@example.org") == "alice.johnson@example.org");
  CHECK(f.header_sender("alice@example.org") == "alice.johnson@example.org");
  // The extension that the table did not match goes along.
  CHECK(f.sender("alice+news@example.org") == "alice.johnson+news@example.org");
  CHECK(f.sender("bob+x@example.org") == "robert+x@example.net");
  // "user" keys only for local domains ($myorigin, mydestination).
  CHECK(f.sender("alice@elsewhere.example") == "alice@elsewhere.example");
  CHECK(f.sender("alice@mx.example.org") == "alice.johnson@example.org");
  CHECK(f.sender("carol@example.org") == "carol@example.org");
}

TEST_CASE("propagate_unmatched_extensions without canonical drops the extension") {
  Fixture f("canonical_maps = inline:{alice=alice.johnson}\npropagate_unmatched_extensions = virtual\n");
  CHECK(f.sender("alice+news@example.org") == "alice.johnson@example.org");
}

TEST_CASE("sender and recipient canonical maps apply to their classes, before canonical_maps") {
  Fixture f(
      "sender_canonical_maps = inline:{{a@example.org=b@example.org}}\n"
      "recipient_canonical_maps = inline:{{a@example.org=r@example.org}}\n"
      "canonical_maps = inline:{{b@example.org=c@example.org}}\n"
      "canonical_classes = envelope_sender\n");
  CHECK(f.sender("a@example.org") == "c@example.org");
  // canonical_maps is for envelope senders only here.
  CHECK(f.recipient("a@example.org") == "r@example.org");
  CHECK(f.recipient("b@example.org") == "b@example.org");
}

TEST_CASE("canonical: chains, loops and multi-valued entries") {
  Fixture f("canonical_maps = inline:{{a@x.example=b@x.example}, {b@x.example=c@x.example}, "
            "{p@x.example=q@x.example}, {q@x.example=p@x.example}, {m@x.example=n1@x.example,n2@x.example}, "
            "{@old.example=@new.example}}\n");
  CHECK(f.sender("a@x.example") == "c@x.example");
  // A loop ends after 10 rounds (Postfix warns "unreasonable map nesting").
  std::string looped = f.sender("p@x.example");
  CHECK((looped == "p@x.example" || looped == "q@x.example"));
  CHECK(f.sender("m@x.example") == "n1@x.example");
  // "@domain" result: the same user elsewhere.
  CHECK(f.sender("joe@old.example") == "joe@new.example");
}

TEST_CASE("a table error while mapping is a queue-file error (try again later)") {
  Fixture f("canonical_maps = fail:broken\n");
  int errs = 0;
  f.sender("a@example.org", &errs);
  CHECK((errs & cstat::kWrite) != 0);
}

TEST_CASE("masquerade_domains: parent domains, ! exceptions, classes and masquerade_exceptions") {
  Fixture f("masquerade_domains = !special.gogu.ro, gogu.ro\nmasquerade_exceptions = root\n");
  CHECK(f.sender("user@dorel.gogu.ro") == "user@gogu.ro");
  CHECK(f.sender("user@a.b.gogu.ro") == "user@gogu.ro");
  CHECK(f.sender("user@gogu.ro") == "user@gogu.ro");
  CHECK(f.sender("user@special.gogu.ro") == "user@special.gogu.ro");
  CHECK(f.sender("user@notgogu.ro") == "user@notgogu.ro");
  CHECK(f.sender("root@dorel.gogu.ro") == "root@dorel.gogu.ro");
  CHECK(f.header_sender("user@dorel.gogu.ro") == "user@gogu.ro");
  // masquerade_classes leaves envelope recipients alone by default.
  CHECK(f.recipient("user@dorel.gogu.ro") == "user@dorel.gogu.ro");
}

TEST_CASE("virtual_alias_maps: one-to-many, recursive, catch-alls and self references") {
  Fixture f(
      "virtual_alias_maps = inline:{{info@example.com=alice}, {team@example.com=a@example.com, b@example.com}, "
      "{a@example.com=a1@example.net}, {@catch.example=postmaster}, {self@example.com=self@example.com, "
      "copy@example.com}, {list@example.com=list@example.com}, {@moved.example=@example.net}}\n");
  CHECK(f.expand("info@example.com") == "alice@example.org");
  CHECK(f.expand("team@example.com") == "a1@example.net b@example.com");
  CHECK(f.expand("anyone@catch.example") == "postmaster@example.org");
  CHECK(f.expand("self@example.com") == "self@example.com copy@example.com");
  CHECK(f.expand("list@example.com") == "list@example.com");
  CHECK(f.expand("nobody@example.com") == "nobody@example.com");
  // An unmatched extension goes with each address ("virtual" is in the default).
  CHECK(f.expand("info+tag@example.com") == "alice+tag@example.org");
  CHECK(f.expand("joe+x@moved.example") == "joe+x@example.net");
}

TEST_CASE("virtual_alias_maps: the recursion and expansion limits refuse the message for now") {
  Fixture deep("virtual_alias_maps = inline:{{a@e.example=b@e.example}, {b@e.example=c@e.example}, "
               "{c@e.example=d@e.example}}\nvirtual_alias_recursion_limit = 2\n");
  MapOutcome out;
  CHECK(deep.expand("a@e.example", &out) == "a@e.example");
  CHECK((out.errs & cstat::kDefer) != 0);
  CHECK(out.reason == "4.6.0 Alias expansion error");

  Fixture wide("virtual_alias_maps = inline:{{w@e.example=1@e.example,2@e.example,3@e.example}}\n"
               "virtual_alias_expansion_limit = 2\n");
  CHECK(wide.expand("w@e.example", &out) == "w@e.example");
  CHECK((out.errs & cstat::kDefer) != 0);

  Fixture broken("virtual_alias_maps = fail:down\n");
  MapOutcome err;
  CHECK(broken.expand("x@e.example", &err) == "x@e.example");
  CHECK((err.errs & cstat::kWrite) != 0);
  CHECK(err.reason == "4.6.0 Alias expansion error");
}

TEST_CASE("sender_bcc_maps and recipient_bcc_maps") {
  Fixture f("sender_bcc_maps = inline:{{boss@example.org=archive@example.org}}\n"
            "recipient_bcc_maps = inline:{@example.org=copies@example.org}\n");
  MapOutcome out;
  CHECK(f.mapper.sender_bcc("boss@example.org", "QID", out).value_or("") == "archive@example.org");
  CHECK_FALSE(f.mapper.sender_bcc("other@example.org", "QID", out).has_value());
  CHECK(f.mapper.recipient_bcc("x@example.org", "QID", out).value_or("") == "copies@example.org");
}

TEST_CASE("address class lists are checked") {
  CHECK(mta::cleanup::parse_address_classes("canonical_classes", "envelope_sender, header_recipient") ==
        (mta::cleanup::kClassEnvFrom | mta::cleanup::kClassHdrRcpt));
  CHECK_THROWS_WITH(mta::cleanup::parse_address_classes("masquerade_classes", "envelope_sender, bogus"),
                    "unknown masquerade_classes value \"bogus\" in \"envelope_sender, bogus\"");
}

TEST_CASE("virtual_alias_maps: an expansion bomb stops at the limit without making every address canonical") {
  // Lookup results are made canonical one by one (a trivial-rewrite call
  // each); a result beyond the limit must be refused before that.
  std::string list;
  for (int i = 0; i < 5000; ++i) list += (i ? "," : "") + std::string("r") + std::to_string(i) + "@example.net";
  Fixture f("virtual_alias_maps = inline:{{bomb@example.com=" + list + "}, {ten@example.com=" +
            "a@x.example,b@x.example,c@x.example}}\nvirtual_alias_expansion_limit = 3\n");
  MapOutcome out;
  CHECK(f.expand("bomb@example.com", &out) == "bomb@example.com");
  CHECK((out.errs & cstat::kDefer) != 0);
  CHECK(f.canon.calls == 0);
  // Exactly at the limit is fine.
  MapOutcome fine;
  CHECK(f.expand("ten@example.com", &fine) == "a@x.example b@x.example c@x.example");
  CHECK(fine.errs == 0);
}
