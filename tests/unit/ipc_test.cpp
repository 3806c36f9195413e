// lib/ipc: Postfix's attribute protocol byte for byte (the expected bytes
// come from the real Postfix 3.7: attr_print0/attr_print_plain/attr_print64
// of libpostfix-util, and what the real daemons sent and received), the
// strict reader and its errors, the timed stream, clients and server helpers.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "ipc/attr.hpp"
#include "ipc/attr_schema.hpp"
#include "ipc/channel.hpp"
#include "ipc/mail_proto.hpp"
#include "ipc/server.hpp"
#include "ipc/service.hpp"
#include "ipc/stream.hpp"

using namespace mta::ipc;
using namespace std::chrono_literals;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

// A zero-form list: every part NUL-terminated, then the list terminator.
std::string zlist(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) {
    out += p;
    out += '\0';
  }
  out += '\0';
  return out;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    REQUIRE(n > 0);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// A channel that reads the given bytes, then EOF (or, with peer, nothing
// more until the caller closes *peer).
Channel input(std::string_view bytes, Format format = Format::zero, Limits limits = {},
              std::unique_ptr<Fd>* peer = nullptr) {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  write_all(sv[1], bytes);
  if (peer)
    *peer = std::make_unique<Fd>(sv[1]);
  else
    ::close(sv[1]);
  Stream s(sv[0], "test socket");
  s.set_timeout(5s);
  return Channel(std::move(s), format, limits);
}

// A channel whose output is collected by output().
struct Capture {
  Channel ch;
  Fd peer;
  explicit Capture(Format format = Format::zero) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ch = Channel(Stream(sv[0], "test socket"), format);
    peer.fd = sv[1];
  }
  std::string output() {
    std::string out;
    char buf[4096];
    for (;;) {
      pollfd p{peer.fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) break;
      ssize_t n = ::read(peer.fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

template <Described T>
std::string encoded(const T& obj, Format format = Format::zero, bool terminate = true) {
  AttrEncoder enc(format);
  Status st = encode(enc, obj, terminate);
  REQUIRE(st.ok());
  return enc.bytes();
}

// The attribute list that Postfix's attr_print test programs send.
struct Everything {
  int number = 0;
  int neg = 0;
  long long_number = 0;
  long neglong = 0;
  std::string string;
  Data data;
  Data bin;
  AttrTable hash;
  std::string empty;
  static constexpr auto attr_schema() {
    using E = Everything;
    return schema(field("number", &E::number), field("neg", &E::neg), field("long_number", &E::long_number),
                  field("neglong", &E::neglong), field("string", &E::string), field("data", &E::data),
                  field("bin", &E::bin), table(&E::hash), field("empty", &E::empty));
  }
  bool operator==(const Everything&) const = default;
};

Everything everything() {
  return {4711, -1, 1234, -1, "whoopee", {"whoopee"}, {"\0\xff\n=a"s}, {{"foo-name", "foo-value"}}, ""};
}

// Output of the real attr_print0/_plain/64 (Postfix 3.7.11) for
// everything(): number=4711, neg=-1, long_number=1234, neglong=-1,
// string=whoopee, data="whoopee", bin="\0\xff\n=a", a table
// {foo-name=foo-value}, empty="".
const std::string kPostfixZero = from_hex(
    "6e756d6265720034373131006e65670034323934393637323935006c6f6e675f6e756d6265720031323334006e65676c"
    "6f6e6700313834343637343430373337303935353136313500737472696e670077686f6f706565006461746100643268"
    "766233426c5a513d3d0062696e004150384b5057453d007b00666f6f2d6e616d6500666f6f2d76616c7565007d00656d"
    "707479000000");
const std::string kPostfixPlain = from_hex(
    "6e756d6265723d343731310a6e65673d343239343936373239350a6c6f6e675f6e756d6265723d313233340a6e65676c"
    "6f6e673d31383434363734343037333730393535313631350a737472696e673d77686f6f7065650a646174613d643268"
    "766233426c5a513d3d0a62696e3d4150384b5057453d0a7b000a666f6f2d6e616d653d666f6f2d76616c75650a7d000a"
    "656d7074793d0a0a");
const std::string kPostfixBase64 = from_hex(
    "626e5674596d56793a4e4463784d513d3d0a626d566e3a4e4449354e446b324e7a49354e513d3d0a624739755a313975"
    "645731695a58493d3a4d54497a4e413d3d0a626d566e624739755a773d3d3a4d5467304e4459334e4451774e7a4d334d"
    "446b314e5445324d54553d0a633352796157356e3a643268766233426c5a513d3d0a5a47463059513d3d3a6432687662"
    "33426c5a513d3d0a596d6c753a4150384b5057453d0a65773d3d0a5a6d39764c5735686257553d3a5a6d39764c585a68"
    "6248566c0a66513d3d0a5a57317764486b3d3a0a0a");

// What the real qmgr of Postfix 3.7.11 sent to a delivery agent (two
// recipients, deferred in the test that captured it).
const std::string kCapturedDeliverRequest = from_hex(
    "666c61677300330071756575655f6e616d65006163746976650071756575655f6964003746423835413732304243006f"
    "6666736574003734380073697a6500323938006e657874686f70006578616d706c652e636f6d00656e636f64696e6700"
    "00736d74707574663800300073656e6465720073656e646572406578616d706c652e6f726700656e76656c6f70655f69"
    "6400007265745f666c61677300300074696d6500443941436177414141414455356763414141414141412f51416d7341"
    "414141413577454941414141414141414141414141414141414141414141414141414141414141414141414141414141"
    "4141414141414141414141414141414141414141414141414141414141414141414141414141414141413d3d006c6f67"
    "5f636c69656e745f6e616d65006c6f63616c686f7374006c6f675f636c69656e745f61646472657373003132372e302e"
    "302e31006c6f675f636c69656e745f706f7274003336333338006c6f675f70726f746f636f6c5f6e616d650045534d54"
    "50006c6f675f68656c6f5f6e616d65005b3132372e302e302e315d007361736c5f6d6574686f6400007361736c5f7573"
    "65726e616d6500007361736c5f73656e64657200006c6f675f6964656e74003746423835413732304243007265777269"
    "74655f636f6e74657874006c6f63616c00726563697069656e745f636f756e74003200006f726967696e616c5f726563"
    "697069656e74007263707431406578616d706c652e636f6d00726563697069656e74007263707431406578616d706c65"
    "2e636f6d006f6666736574003634390064736e5f6f7269675f72637074007266633832323b7263707431406578616d70"
    "6c652e636f6d006e6f746966795f666c616773003000006f726967696e616c5f726563697069656e7400726370743240"
    "6578616d706c652e636f6d00726563697069656e74007263707432406578616d706c652e636f6d006f66667365740037"
    "32370064736e5f6f7269675f72637074007266633832323b7263707432406578616d706c652e636f6d006e6f74696679"
    "5f666c61677300300000");

}  // namespace

// ---------------------------------------------------------------- encodings

TEST_CASE("ipc: the zero, plain and base64 forms are byte for byte Postfix's", "[ipc]") {
  CHECK(encoded(everything(), Format::zero) == kPostfixZero);
  CHECK(encoded(everything(), Format::plain) == kPostfixPlain);
  CHECK(encoded(everything(), Format::base64) == kPostfixBase64);
}

TEST_CASE("ipc: what Postfix wrote reads back into the same values", "[ipc]") {
  for (auto [format, bytes] : {std::pair{Format::zero, kPostfixZero}, std::pair{Format::plain, kPostfixPlain},
                               std::pair{Format::base64, kPostfixBase64}}) {
    INFO(to_string(format));
    Channel ch = input(bytes, format);
    Everything got;
    Status st = ch.read(got);
    REQUIRE(st.message() == "");
    CHECK(got == everything());
    CHECK(ch.more() == AttrReader::More::error);  // nothing left but EOF
  }
}

TEST_CASE("ipc: INT and LONG travel as unsigned decimals, as Postfix's %u and %lu", "[ipc]") {
  struct Nums {
    int i = 0;
    unsigned u = 0;
    long l = 0;
    bool b = false;
    static constexpr auto attr_schema() {
      return schema(field("i", &Nums::i), field("u", &Nums::u), field("l", &Nums::l), field("b", &Nums::b));
    }
  };
  CHECK(encoded(Nums{-2, 4294967295u, -2, true}) == zlist({"i", "4294967294", "u", "4294967295", "l", "18446744073709551614", "b", "1"}));
  Nums back;
  REQUIRE(input(zlist({"i", "4294967294", "u", "0", "l", "18446744073709551614", "b", "7"})).read(back).ok());
  CHECK(back.i == -2);
  CHECK(back.l == -2);
  CHECK(back.b);
}

TEST_CASE("ipc: the requests and replies of trivial-rewrite, as the real one exchanged them", "[ipc]") {
  proto::RewriteRequest rw;
  rw.rule = "local";
  rw.address = "user";
  CHECK(encoded(rw) == zlist({"request", "rewrite", "rule", "local", "address", "user"}));
  proto::ResolveRequest rs;
  rs.address = "user@localhost";
  CHECK(encoded(rs) == zlist({"request", "resolve", "sender", "", "address", "user@localhost"}));
  rs.request = proto::kVerifyRequest;
  CHECK(encoded(rs).starts_with("request\0verify\0"s));

  // Bytes the real trivial-rewrite (3.7.11) sent.
  Channel ch = input(zlist({"protocol", "trivial_rewrite_protocol"}) + zlist({"flags", "0", "address", "user@vm.localdomain"}) +
                     zlist({"flags", "0", "transport", "local", "nexthop", "vm.localdomain", "recipient", "user@localhost",
                            "flags", "256"}));
  REQUIRE(ch.expect_announcement(proto::kProtoTrivialRewrite).ok());
  proto::RewriteReply rr;
  REQUIRE(ch.read(rr).ok());
  CHECK(rr.flags == 0);
  CHECK(rr.address == "user@vm.localdomain");
  proto::ResolveReply res;
  REQUIRE(ch.read(res).ok());
  CHECK(res.server_flags == 0);
  CHECK(res.transport == "local");
  CHECK(res.nexthop == "vm.localdomain");
  CHECK(res.recipient == "user@localhost");
  CHECK(res.flags == proto::kResolveClassLocal);
}

TEST_CASE("ipc: a server reads the request name first, then the rest of the list", "[ipc]") {
  proto::RewriteRequest rw;
  rw.rule = "remote";
  rw.address = "a@b";
  Channel ch = input(encoded(rw));
  proto::RequestName name;
  REQUIRE(ch.read(name, {.more = true}).ok());
  CHECK(name.request == "rewrite");
  proto::RewriteArgs args;
  REQUIRE(ch.read(args).ok());
  CHECK(args.rule == "remote");
  CHECK(args.address == "a@b");
}

TEST_CASE("ipc: the delivery request that the real qmgr sent reads and re-encodes identically", "[ipc]") {
  Channel ch = input(kCapturedDeliverRequest);
  proto::DeliverRequest req;
  Status st = proto::read_deliver_request(ch, req);
  REQUIRE(st.message() == "");
  CHECK(req.flags == (proto::kDelReqFlagSuccess | proto::kDelReqFlagBounce));
  CHECK(req.queue_name == "active");
  CHECK(req.queue_id == "7FB85A720BC");
  CHECK(req.data_offset == 748);
  CHECK(req.data_size == 298);
  CHECK(req.nexthop == "example.com");
  CHECK(req.sender == "sender@example.org");
  CHECK(req.stats.incoming_arrival.sec == 1795346447);
  CHECK(req.stats.incoming_arrival.usec == 517844);
  CHECK(req.stats.active_arrival.usec == 524775);
  CHECK(req.stats.agent_handoff.sec == 0);
  CHECK(req.client_name == "localhost");
  CHECK(req.client_addr == "127.0.0.1");
  CHECK(req.client_port == "36338");
  CHECK(req.client_proto == "ESMTP");
  CHECK(req.client_helo == "[127.0.0.1]");
  CHECK(req.log_ident == "7FB85A720BC");
  CHECK(req.rewrite_context == "local");
  REQUIRE(req.recipients.size() == 2);
  CHECK(req.recipients[0].orig_addr == "rcpt1@example.com");
  CHECK(req.recipients[0].address == "rcpt1@example.com");
  CHECK(req.recipients[0].offset == 649);
  CHECK(req.recipients[0].dsn_orcpt == "rfc822;rcpt1@example.com");
  CHECK(req.recipients[1].offset == 727);

  Capture out;
  REQUIRE(proto::write_deliver_request(out.ch, req).ok());
  CHECK(out.output() == kCapturedDeliverRequest);
}

TEST_CASE("ipc: MSG_STATS is Postfix's 88-byte struct", "[ipc]") {
  proto::MsgStats s;
  s.incoming_arrival = {1795346447, 517844};
  s.reuse_count = 3;
  std::string blob = s.to_attr_data();
  CHECK(blob.size() == 88);
  proto::MsgStats back;
  CHECK(back.from_attr_data(blob));
  CHECK(back == s);
  CHECK_FALSE(back.from_attr_data(blob.substr(0, 80)));
  // A blob of the wrong size is an error, not a silent zero.
  Channel ch = input(zlist({"t", base64_encode("short")}));
  struct T {
    proto::MsgStats stats;
    static constexpr auto attr_schema() { return schema(field("t", &T::stats)); }
  } t;
  Status st = ch.read(t);
  CHECK(st.code() == Errc::malformed);
}

TEST_CASE("ipc: delivery replies, bounce and cleanup messages", "[ipc]") {
  proto::DeliverReply reply{{"4.0.0", "", "", "", "", "", "captured"}, -1};
  CHECK(encoded(reply) == zlist({"status", "4.0.0", "diag_type", "", "diag_text", "", "mta_type", "", "mta_mname", "",
                                 "action", "", "reason", "captured", "status", "4294967295"}));
  proto::BounceAppendRequest b;
  b.flags = proto::kBounceFlagNone;
  b.queue_id = "ABCDEF";
  b.rcpt = {"o@x", "r@x", 12, "rfc822;o@x", 0};
  b.dsn = {"5.1.1", "smtp", "550 no", "dns", "mx.x", "failed", "no such user"};
  CHECK(encoded(b) == zlist({"nrequest", "0", "flags", "0", "queue_id", "ABCDEF", "original_recipient", "o@x",
                             "recipient", "r@x", "offset", "12", "dsn_orig_rcpt", "rfc822;o@x", "notify_flags", "0",
                             "status", "5.1.1", "diag_type", "smtp", "diag_text", "550 no", "mta_type", "dns",
                             "mta_mname", "mx.x", "action", "failed", "reason", "no such user"}));
  proto::BounceNotifyRequest n;
  n.command = proto::BounceCommand::warn;
  n.queue_name = "deferred";
  CHECK(encoded(n).starts_with("nrequest\0" "2\0flags\0" "0\0queue_name\0deferred\0"s));
  // The cleanup server's first list, as the real one sent it.
  Channel ch = input(zlist({"protocol", "cleanup_protocol", "queue_id", "64990A72212"}));
  proto::CleanupHello hello;
  REQUIRE(ch.read(hello).ok());
  CHECK(hello.queue_id == "64990A72212");
  CHECK(encoded(proto::CleanupOpen{0}) == zlist({"flags", "0"}));
}

TEST_CASE("ipc: showq listings: the empty queue of the real showq, and messages", "[ipc]") {
  {
    Channel ch = input(zlist({"protocol", "mail_queue_list_protocol"}) + '\0');
    REQUIRE(ch.expect_announcement(proto::kProtoShowq).ok());
    std::vector<proto::ShowqMessage> list{proto::ShowqMessage{}};
    REQUIRE(proto::read_showq_listing(ch, list).ok());
    CHECK(list.empty());
  }
  proto::ShowqMessage m;
  m.queue_name = "deferred";
  m.queue_id = "7FB85A720BC";
  m.arrival_time = 1795346447;
  m.size = 298;
  m.sender = "sender@example.org";
  m.recipients = {{"a@example.com", ""}, {"b@example.com", "connect timed out"}};
  Capture out;
  REQUIRE(proto::write_showq_message(out.ch, m).ok());
  REQUIRE(proto::write_showq_end(out.ch).ok());
  std::string bytes = out.output();
  std::string one = "queue_name\0deferred\0queue_id\0007FB85A720BC\0time\0001795346447\0size\0" "298\0"
                    "forced_expire\0" "0\0sender\0sender@example.org\0recipient\0a@example.com\0reason\0\0"
                    "recipient\0b@example.com\0reason\0connect timed out\0\0"s;
  CHECK(bytes == one + '\0');
  Channel in = input(one + one + '\0');
  std::vector<proto::ShowqMessage> list;
  REQUIRE(proto::read_showq_listing(in, list).ok());
  REQUIRE(list.size() == 2);
  CHECK(list[1].queue_id == "7FB85A720BC");
  CHECK(list[1].size == 298);
  REQUIRE(list[1].recipients.size() == 2);
  CHECK(list[1].recipients[1].reason == "connect timed out");
  // A listing cut short is an error, never a shorter listing.
  Channel cut = input(one);
  CHECK(proto::read_showq_listing(cut, list).code() == Errc::eof);
}

TEST_CASE("ipc: announcements; verify's is spelled as Postfix spells it; anvil's is plain", "[ipc]") {
  CHECK(proto::kProtoVerify == "address_verification_prrotocol");
  Capture out;
  REQUIRE(out.ch.announce(proto::kProtoDeliver).ok());
  CHECK(out.output() == zlist({"protocol", "delivery_request_protocol"}));
  Channel anvil = input("protocol=anvil_protocol\n\n", Format::plain);
  CHECK(anvil.expect_announcement(proto::kProtoAnvil).ok());
  Channel wrong = input(zlist({"protocol", "cleanup_protocol"}));
  Status st = wrong.expect_announcement(proto::kProtoTrivialRewrite);
  CHECK(st.code() == Errc::mismatch);
  CHECK(st.message() == "unexpected protocol cleanup_protocol from test socket (expected: trivial_rewrite_protocol)");
  // STREQ fields in a schema behave the same.
  Channel cleanup = input(zlist({"protocol", "showq_protocol", "queue_id", "X"}));
  proto::CleanupHello hello;
  CHECK(cleanup.read(hello).code() == Errc::mismatch);
}

TEST_CASE("ipc: dynamic lists round-trip in every form, groups included", "[ipc]") {
  AttrList list{{"request", "smtpd_access_policy"}, {"sender", "a@b"}, {"empty", ""}};
  list.open_group().add("k", "v").close_group().add_number("n", 42);
  for (Format f : {Format::zero, Format::plain, Format::base64}) {
    INFO(to_string(f));
    AttrEncoder enc(f);
    REQUIRE(enc.list(list).ok());
    Channel ch = input(enc.bytes() + enc.bytes(), f);
    AttrList back;
    REQUIRE(ch.read_list(back).ok());
    CHECK(back == list);
    REQUIRE(ch.read_list(back).ok());
    CHECK(back == list);
    CHECK(back.get("sender") == "a@b");
    CHECK(back.number("n") == 42u);
    CHECK(ch.read_list(back).code() == Errc::closed);
  }
  AttrEncoder plain(Format::plain);
  REQUIRE(plain.list(AttrList{{"request", "smtpd_access_policy"}, {"sender", "a@b"}}).ok());
  CHECK(plain.bytes() == "request=smtpd_access_policy\nsender=a@b\n\n");
}

TEST_CASE("ipc: data is any bytes, base64 in transit", "[ipc]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len : {0u, 1u, 2u, 3u, 4u, 255u, 256u}) {
    std::string bytes = all.substr(0, len);
    auto back = base64_decode(base64_encode(bytes));
    REQUIRE(back);
    CHECK(*back == bytes);
  }
  CHECK(base64_encode("whoopee") == "d2hvb3BlZQ==");
  CHECK_FALSE(base64_decode("d2hvb3BlZQ"));     // length not a multiple of 4
  CHECK_FALSE(base64_decode("d2h*b3BlZQ=="));   // not in the alphabet
  CHECK_FALSE(base64_decode("d2==b3BlZQ=="));   // padding inside
  struct D {
    Data d;
    static constexpr auto attr_schema() { return schema(field("data", &D::d)); }
  } d;
  Channel ch = input(zlist({"data", "d2hvb3BlZQ"}));
  Status st = ch.read(d);
  CHECK(st.code() == Errc::malformed);
  CHECK(st.message() == "malformed base64 data from test socket while reading input attribute value: d2hvb3BlZQ");
}

// ---------------------------------------------------------------- errors

TEST_CASE("ipc: every truncation of a message is an error, EOF and clean close told apart", "[ipc]") {
  for (auto [format, bytes] : {std::pair{Format::zero, kPostfixZero}, std::pair{Format::plain, kPostfixPlain},
                               std::pair{Format::base64, kPostfixBase64}}) {
    for (size_t n = 0; n < bytes.size(); ++n) {
      INFO(to_string(format) << " prefix " << n);
      Channel ch = input(bytes.substr(0, n), format);
      Everything got;
      Status st = ch.read(got);
      REQUIRE_FALSE(st.ok());
      CHECK(st.code() == (n == 0 ? Errc::closed : Errc::eof));
    }
  }
  Everything got;
  CHECK(input("number\0"s).read(got).message() ==
        "premature end-of-input on test socket while reading input attribute value");
  CHECK(input("number\0" "47"s).read(got).message() ==
        "unexpected end-of-input from test socket while reading input attribute value");
}

TEST_CASE("ipc: strict reading fails on anything unexpected; lenient reading skips it", "[ipc]") {
  proto::RequestName req;
  Status st = input(zlist({"other", "v", "request", "x"})).read(req);
  CHECK(st.code() == Errc::unexpected);
  CHECK(st.message() == "unexpected attribute other from test socket (expecting: request)");

  REQUIRE(input(zlist({"other", "v", "request", "x"})).read(req, {.strict = false}).ok());
  CHECK(req.request == "x");
  // Lenient reading skips whole groups too.
  REQUIRE(input("{\0a\0b\0}\0request\0y\0\0"s).read(req, {.strict = false}).ok());
  CHECK(req.request == "y");

  st = input(zlist({"other", "v"})).read(req, {.strict = false});
  CHECK(st.code() == Errc::missing);
  CHECK(st.message() == "missing attribute request in input from test socket");

  // An extra attribute after the wanted ones.
  st = input(zlist({"request", "x", "extra", "y"})).read(req);
  CHECK(st.code() == Errc::unexpected);
  CHECK(st.message() == "unexpected attribute extra from test socket (expecting: (list terminator))");
  Channel lenient = input(zlist({"request", "x", "extra", "y"}) + zlist({"request", "next"}));
  REQUIRE(lenient.read(req, {.strict = false}).ok());
  REQUIRE(lenient.read(req).ok());
  CHECK(req.request == "next");

  // A group where none is expected.
  CHECK(input("{\0a\0b\0}\0\0"s).read(req).code() == Errc::unexpected);
}

TEST_CASE("ipc: numbers are decimal digits that fit, nothing else", "[ipc]") {
  struct N {
    int i = 0;
    long l = 0;
    static constexpr auto attr_schema() { return schema(field("i", &N::i), field("l", &N::l)); }
  } n;
  for (std::string bad : {"-1", " 12", "+5", "12x", "", "4294967296", "0x10"}) {
    INFO(bad);
    Status st = input(zlist({"i", bad, "l", "0"})).read(n);
    CHECK(st.code() == Errc::malformed);
    CHECK(st.message() == "malformed numerical data from test socket while reading input attribute value: " + bad);
  }
  CHECK(input(zlist({"i", "0", "l", "18446744073709551616"})).read(n).code() == Errc::malformed);
  REQUIRE(input(zlist({"i", "4294967295", "l", "18446744073709551615"})).read(n).ok());
  CHECK(n.i == -1);
  CHECK(n.l == -1);
}

TEST_CASE("ipc: tables: groups or the rest of the list, first instance wins, 1024 at most", "[ipc]") {
  struct T {
    std::string name;
    AttrTable attrs;
    static constexpr auto attr_schema() { return schema(field("name", &T::name), table(&T::attrs)); }
  } t;
  REQUIRE(input(zlist({"name", "n", "a", "1", "b", "2"})).read(t).ok());  // ungrouped: the rest
  CHECK(t.attrs == AttrTable{{"a", "1"}, {"b", "2"}});
  REQUIRE(input("name\0n\0{\0a\0" "1\0a\0" "2\0}\0\0"s).read(t, {.strict = false}).ok());
  CHECK(t.attrs.at("a") == "1");
  Status st = input("name\0n\0{\0a\0" "1\0a\0" "2\0}\0\0"s).read(t);
  CHECK(st.code() == Errc::unexpected);
  CHECK(st.message() == "duplicate attribute a in input from test socket");
  CHECK(input("name\0n\0{\0a\0" "1\0\0"s).read(t).code() == Errc::malformed);  // no "}"

  auto many = [](int count) {
    std::string s = "name\0n\0{\0"s;
    for (int i = 0; i < count; ++i) s += "k" + std::to_string(i) + '\0' + "v" + '\0';
    return s + "}\0\0"s;
  };
  REQUIRE(input(many(1024)).read(t).ok());
  CHECK(t.attrs.size() == 1024);
  st = input(many(1025)).read(t);
  CHECK(st.code() == Errc::too_many);
  CHECK(st.message() == "attribute count exceeds limit 1024 in input from test socket");
  // Postfix's plain form writes "{\0\n"; "{\n" reads the same.
  REQUIRE(input("name=n\n{\na=1\n}\n\n", Format::plain).read(t).ok());
  CHECK(t.attrs == AttrTable{{"a", "1"}});
}

TEST_CASE("ipc: limits on strings, plain-form values, printable", "[ipc]") {
  proto::RequestName req;
  Status st = input(zlist({"request", "123456789"}), Format::zero, Limits{.max_string = 8}).read(req);
  CHECK(st.code() == Errc::too_long);
  CHECK(st.message() == "string length > 8 characters from test socket while reading input attribute value");
  CHECK(input(zlist({"requestXYZ", "1"}), Format::zero, Limits{.max_string = 8}).read(req).code() == Errc::too_long);
  CHECK(input("request=123456789\n\n", Format::plain, Limits{.max_string = 8}).read(req).code() == Errc::too_long);

  st = input("request\n\n", Format::plain).read(req);
  CHECK(st.code() == Errc::malformed);
  CHECK(st.message() == "missing value for string attribute request from test socket");

  REQUIRE(input(zlist({"request", "a\x01" "b\xc3\xa9\xff"})).read(req, {.printable = true}).ok());
  CHECK(req.request == "a?b\xc3\xa9?");
  CHECK(printable("tab\there", false) == "tab?here");
}

TEST_CASE("ipc: the encoder refuses what a form cannot carry", "[ipc]") {
  AttrEncoder zero(Format::zero), plain(Format::plain), b64(Format::base64);
  CHECK(zero.str("a", "x\0y"s).code() == Errc::unencodable);
  CHECK(zero.str("", "x").code() == Errc::unencodable);
  CHECK(zero.str("{", "x").code() == Errc::unencodable);
  CHECK(plain.str("a=b", "x").code() == Errc::unencodable);
  CHECK(plain.str("a", "two\nlines").code() == Errc::unencodable);
  CHECK(b64.str("a", "two\nlines\0"s).ok());
  CHECK(zero.bytes().empty());
  CHECK(plain.bytes().empty());
  proto::RequestName bad{"x\ny"};
  AttrEncoder enc(Format::plain);
  CHECK(encode(enc, bad).code() == Errc::unencodable);
  CHECK(enc.bytes().empty());
}

// ---------------------------------------------------------------- stream

TEST_CASE("ipc: a read times out after the stream's timeout, distinct from EOF", "[ipc]") {
  std::unique_ptr<Fd> peer;
  Channel ch = input("", Format::zero, {}, &peer);
  ch.stream().set_timeout(100ms);
  auto t0 = Clock::now();
  proto::RequestName req;
  Status st = ch.read(req);
  auto elapsed = Clock::now() - t0;
  CHECK(st.code() == Errc::timeout);
  CHECK(st.message() == "timeout on test socket while reading input attribute name");
  CHECK(ch.stream().timed_out());
  CHECK(elapsed >= 90ms);
  CHECK(elapsed < 3s);

  // A deadline cuts a long timeout short.
  Channel ch2 = input("request\0"s, Format::zero, {}, &peer);
  ch2.stream().set_timeout(10s);
  ch2.stream().set_deadline(Clock::now() + 100ms);
  t0 = Clock::now();
  st = ch2.read(req);
  CHECK(st.code() == Errc::timeout);
  CHECK(Clock::now() - t0 < 3s);

  // A deadline for one call, gone after it.
  Channel ch4 = input("", Format::zero, {}, &peer);
  ch4.stream().set_timeout(10s);
  {
    DeadlineGuard limit(ch4.stream(), 100ms);
    t0 = Clock::now();
    CHECK(ch4.read(req).code() == Errc::timeout);
    CHECK(Clock::now() - t0 < 3s);
  }
  CHECK_FALSE(ch4.stream().deadline().has_value());

  // The same wait ends in EOF when the peer closes.
  Channel ch3 = input("request\0"s, Format::zero, {}, &peer);
  std::thread closer([&] {
    std::this_thread::sleep_for(50ms);
    ::close(peer->fd);
    peer->fd = -1;
  });
  st = ch3.read(req);
  closer.join();
  CHECK(st.code() == Errc::eof);
  CHECK(ch3.stream().state() == IoState::eof);
}

TEST_CASE("ipc: a write times out when the peer does not read; EPIPE without SIGPIPE", "[ipc]") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  Fd peer(sv[1]);
  Stream s(sv[0], "test socket");
  s.set_timeout(100ms);
  std::string chunk(1 << 20, 'x');
  bool ok = true;
  auto t0 = Clock::now();
  for (int i = 0; i < 64 && ok; ++i) ok = s.write(chunk) && s.flush();
  CHECK_FALSE(ok);
  CHECK(s.state() == IoState::timeout);
  CHECK(Clock::now() - t0 < 10s);

  int sv2[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2) == 0);
  ::close(sv2[1]);
  Stream w(sv2[0], "test socket");
  CHECK(w.write("hello"));
  CHECK_FALSE(w.flush());  // and the process is still alive
  CHECK(w.state() == IoState::error);
  CHECK(w.error_number() == EPIPE);
  CHECK(write_failure(w).message() == "write to test socket: Broken pipe");
}

TEST_CASE("ipc: stream reads: bytes, peeks, delimited strings, readability", "[ipc]") {
  std::unique_ptr<Fd> peer;
  Channel ch = input("abc\0def"s, Format::zero, {}, &peer);
  Stream& s = ch.stream();
  CHECK(s.peek() == 'a');
  CHECK(s.get() == 'a');
  std::string out;
  CHECK(s.read_until('\0', out, 100) == 0);
  CHECK(out == "bc");
  CHECK(s.readable_now());
  out.clear();
  CHECK(s.read_until('\0', out, 2) == -2);  // "def" is too long
  CHECK(s.get() == 'f');
  CHECK_FALSE(s.readable_now());
  peer.reset();
  CHECK(s.readable_now());  // EOF is readable
  CHECK(s.get() == -1);
  CHECK(s.state() == IoState::eof);
}

TEST_CASE("ipc: attr_scan_more: lists in a row, then a terminator", "[ipc]") {
  Channel ch = input(zlist({"a", "1"}) + '\0');
  CHECK(ch.more() == AttrReader::More::more);
  AttrList l;
  REQUIRE(ch.read_list(l).ok());
  CHECK(ch.more() == AttrReader::More::end);
  Status why;
  CHECK(ch.more(&why) == AttrReader::More::error);
  CHECK(why.code() == Errc::eof);
}

// ---------------------------------------------------------------- clients and servers

namespace {

struct TempQueue {
  fs::path dir;
  TempQueue() {
    static int n = 0;
    dir = fs::temp_directory_path() / ("mta-ipc-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(dir / "private");
    fs::create_directories(dir / "public");
  }
  ~TempQueue() { fs::remove_all(dir); }
};

// A unix-socket server on its own thread: handle(fd) per connection.
class FakeServer {
 public:
  FakeServer(const fs::path& path, std::function<void(int)> handle) : handle_(std::move(handle)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::string p = path.string();
    std::memcpy(sun.sun_path, p.c_str(), p.size() + 1);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    REQUIRE(::listen(listen_fd_, 16) == 0);
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  int accepted() const { return accepted_; }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      handle_(fd);
      ::close(fd);
    }
  }
  std::function<void(int)> handle_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
};

// A trivial-rewrite look-alike built from the server helpers; it serves
// at most max_requests per connection, then hangs up.
void fake_rewrite(int fd, int max_requests, std::string_view protocol = proto::kProtoTrivialRewrite) {
  Channel ch = server_channel(fd, "rewrite socket", Format::zero, 2s);
  if (!ch.announce(protocol)) return;
  int served = 0;
  (void)serve_requests(ch, [&](Channel& c) -> Status {
    if (served++ >= max_requests) return {Errc::closed, "enough"};
    proto::RequestName req;
    if (Status st = c.read(req, {.more = true}); !st) return st;
    if (req.request == proto::kRewriteRequest) {
      proto::RewriteArgs args;
      if (Status st = c.read(args); !st) return st;
      return reply(c, proto::RewriteReply{0, args.address + "@example.org"});
    }
    proto::ResolveArgs args;
    if (Status st = c.read(args); !st) return st;
    return reply(c, proto::ResolveReply{0, "local", "example.org", args.address, proto::kResolveClassLocal});
  });
}

}  // namespace

TEST_CASE("ipc: a client asks a server built from the helpers, over a persistent connection", "[ipc]") {
  TempQueue q;
  FakeServer server(q.dir / "private" / "rewrite", [](int fd) { fake_rewrite(fd, 2); });
  ServiceClient client(q.dir.string(), "private", "rewrite", {.protocol = std::string(proto::kProtoTrivialRewrite)});
  proto::RewriteRequest rw;
  rw.rule = "local";
  rw.address = "user";
  proto::RewriteReply rr;
  REQUIRE(client.call(rw, rr).message() == "");
  CHECK(rr.address == "user@example.org");
  proto::ResolveRequest rs;
  rs.address = "user@example.org";
  proto::ResolveReply res;
  REQUIRE(client.call(rs, res).ok());
  CHECK(res.transport == "local");
  CHECK(res.flags == proto::kResolveClassLocal);
  CHECK(server.accepted() == 1);
  // The server hung up after two requests: the client notices and reconnects.
  std::this_thread::sleep_for(50ms);
  REQUIRE(client.call(rw, rr).ok());
  CHECK(server.accepted() == 2);
  // Idle too long: a fresh connection.
  client.options().idle_limit = 0ms;
  REQUIRE(client.call(rw, rr).ok());
  CHECK(server.accepted() == 3);
}

TEST_CASE("ipc: a client refuses a server that announces another protocol", "[ipc]") {
  TempQueue q;
  FakeServer server(q.dir / "private" / "rewrite", [](int fd) { fake_rewrite(fd, 1, proto::kProtoCleanup); });
  ServiceClient client(q.dir.string(), "private", "rewrite",
                       {.protocol = std::string(proto::kProtoTrivialRewrite), .max_attempts = 2, .retry_delay = 1ms});
  proto::RewriteRequest rw;
  proto::RewriteReply rr;
  Status st = client.call(rw, rr);
  CHECK(st.code() == Errc::mismatch);
  CHECK(st.message() == "unexpected protocol cleanup_protocol from private/rewrite socket (expected: trivial_rewrite_protocol)");
  CHECK(server.accepted() == 2);
}

TEST_CASE("ipc: connecting retries as mail_connect_wait, then gives up with Postfix's message", "[ipc]") {
  TempQueue q;
  Channel ch;
  auto t0 = Clock::now();
  Status st = connect_service(ch, q.dir.string(), "private", "nothing",
                              {.attempts = 3, .retry_delay = 20ms, .warn = false});
  CHECK(st.code() == Errc::connect);
  CHECK(st.message() == "connect #3 to subsystem private/nothing: No such file or directory");
  CHECK(Clock::now() - t0 >= 40ms);
  st = connect_service(ch, q.dir.string(), "public", "nothing");
  CHECK(st.message() == "connect to " + (q.dir / "public" / "nothing").string() + ": No such file or directory");
  CHECK(service_path("/var/spool/postfix", "public", "showq") == "/var/spool/postfix/public/showq");
}

TEST_CASE("ipc: triggers, and servers that see their client leave", "[ipc]") {
  TempQueue q;
  std::atomic<int> got{0};
  FakeServer server(q.dir / "public" / "pickup", [&](int fd) {
    char c = 0;
    if (::read(fd, &c, 1) == 1) got = c;
  });
  REQUIRE(send_trigger(q.dir.string(), "public", "pickup", std::string(1, proto::kTriggerWakeup)).ok());
  for (int i = 0; i < 100 && got == 0; ++i) std::this_thread::sleep_for(10ms);
  CHECK(got == 'W');

  // serve_requests: a client that hangs up between requests ends it cleanly;
  // one that hangs up inside a request is an error.
  int calls = 0;
  Channel clean = input(zlist({"request", "a"}));
  CHECK(serve_requests(clean, [&](Channel& c) {
          ++calls;
          proto::RequestName r;
          return c.read(r);
        }).ok());
  CHECK(calls == 2);
  Channel broken = input("request\0a\0"s);
  CHECK(serve_requests(broken, [&](Channel& c) {
          proto::RequestName r;
          return c.read(r);
        }).code() == Errc::eof);
}
