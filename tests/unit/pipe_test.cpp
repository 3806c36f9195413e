// pipe: the master.cf attributes (pipe/pipe_attributes.hpp) and the macro
// expansion of the command line (pipe/argv_expansion.hpp).  The expected
// words and messages are the real Postfix 3.7 pipe(8)'s (seen through
// tests/integration/pipe_delivery.sh, which runs both on the same mail).
#include <catch2/catch.hpp>

#if defined(MTA_HAVE_PIPE)

#include <grp.h>
#include <pwd.h>

#include <string>
#include <vector>

#include "deliver/mail_copy.hpp"
#include "deliver/pipe_command.hpp"
#include "pipe/argv_expansion.hpp"
#include "pipe/pipe_attributes.hpp"

using namespace mta::pipe;
namespace d = mta::deliver;
using Words = std::vector<std::string>;

namespace {

// "nobody" exists on every Debian system; the forbidden ids are someone else's.
ForbiddenIds others() {
  ForbiddenIds f;
  f.mail_owner = "postfix";
  f.owner_uid = 99999;
  f.owner_gid = 99999;
  f.setgid_group = "postdrop";
  f.setgid_gid = 99998;
  return f;
}

std::string parse_error(const Words& words, const ForbiddenIds& forbidden = others()) {
  try {
    parse_attributes(words, forbidden);
  } catch (const AttributeError& e) {
    return e.what();
  }
  return "(no error)";
}

mta::ipc::proto::Recipient rcpt(const std::string& address, const std::string& orig = "") {
  mta::ipc::proto::Recipient r;
  r.address = address;
  r.orig_addr = orig.empty() ? address : orig;
  return r;
}

ExpansionContext context(int flags) {
  ExpansionContext c;
  c.service = "test";
  c.config_directory = "/etc/postfix";
  c.flags = flags;
  c.recipient_delimiter = "+";
  mta::ipc::proto::DeliverRequest req;
  req.nexthop = "Next.Hop";
  req.data_size = 354;
  req.queue_id = "4E4BBA780B5";
  req.client_addr = "127.0.0.1";
  c.message_macros = message_macros(req, "snd@example.org", flags);
  return c;
}

}  // namespace

TEST_CASE("pipe attributes: flags, user, the other attributes, argv last", "[pipe]") {
  PipeAttributes a = parse_attributes(
      {"flags=BDFORX.>hqu", "user=nobody", "directory=/tmp", "chroot=/srv", "eol=\\r\\n", "null_sender=",
       "size=1000", "argv=/usr/bin/maildrop", "-d", "${recipient}", "user=ignored"},
      others());
  CHECK(a.flags == (d::kCopyBlank | d::kCopyDelivered | d::kCopyFrom | d::kCopyOrigRcpt | d::kCopyReturnPath |
                    kFinalDelivery | d::kCopyDot | d::kCopyQuote | kFoldHost | kQuoteLocal | kFoldUser));
  const passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody);
  CHECK(a.uid == nobody->pw_uid);
  CHECK(a.gid == nobody->pw_gid);
  CHECK(a.exec_dir == std::optional<std::string>("/tmp"));
  CHECK(a.chroot_dir == std::optional<std::string>("/srv"));
  CHECK(a.eol == "\r\n");
  CHECK(a.null_sender.empty());
  CHECK(a.size_limit == 1000);
  // Everything after argv= is the command, attribute-like words included.
  CHECK(a.command == Words{"/usr/bin/maildrop", "-d", "${recipient}", "user=ignored"});
  // The copy bits and pipe's own bits do not overlap.
  CHECK((a.flags & kCopyFlagsMask & (kFoldAll | kQuoteLocal | kFinalDelivery)) == 0);
}

TEST_CASE("pipe attributes: defaults, case-insensitive names, user=name:group", "[pipe]") {
  PipeAttributes a = parse_attributes({"USER=nobody:nogroup", "Argv=/bin/true"}, others());
  const group* nogroup = ::getgrnam("nogroup");
  REQUIRE(nogroup);
  CHECK(a.gid == nogroup->gr_gid);
  CHECK(a.flags == 0);
  CHECK(a.eol == "\n");
  CHECK(a.null_sender == "MAILER-DAEMON");
  CHECK(a.size_limit == 0);
  CHECK_FALSE(a.exec_dir);
  // "user=name:" is the user's own group.
  CHECK(parse_attributes({"user=nobody:", "argv=/bin/true"}, others()).gid == ::getpwnam("nobody")->pw_gid);
}

TEST_CASE("pipe attributes: Postfix's fatal errors", "[pipe]") {
  CHECK(parse_error({"user=nobody", "colour=blue", "argv=x"}) == "unknown attribute name: colour=blue");
  CHECK(parse_error({"flags=Rz", "user=nobody", "argv=x"}) == "unknown flag: z (ignored)");
  CHECK(parse_error({"argv=x"}) == "missing user= command-line attribute");
  CHECK(parse_error({"user=nobody"}) == "missing argv= command-line attribute");
  CHECK(parse_error({"user=no-such-user-here", "argv=x"}) == "get_service_attr: unknown username: no-such-user-here");
  CHECK(parse_error({"user=nobody:no-such-group", "argv=x"}) == "get_service_attr: unknown group: no-such-group");
  CHECK(parse_error({"user=nobody", "size=10k", "argv=x"}) == "get_service_attr: bad size= value: 10k");
  CHECK(parse_error({"user=root", "argv=x"}) == "user= command-line attribute specifies root privileges");
  CHECK(parse_error({"user=nobody:root", "argv=x"}) ==
        "user= command-line attribute specifies privileged group id 0");
  const passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody);
  ForbiddenIds owner = others();
  owner.owner_uid = nobody->pw_uid;
  CHECK(parse_error({"user=nobody", "argv=x"}, owner) == "user= command-line attribute specifies mail system owner postfix");
  owner = others();
  owner.owner_gid = nobody->pw_gid;
  CHECK(parse_error({"user=nobody", "argv=x"}, owner) ==
        "user= command-line attribute specifies mail system owner postfix group id " + std::to_string(nobody->pw_gid));
  owner = others();
  owner.setgid_gid = nobody->pw_gid;
  CHECK(parse_error({"user=nobody", "argv=x"}, owner) ==
        "user= command-line attribute specifies mail system postdrop group id " + std::to_string(nobody->pw_gid));
}

TEST_CASE("pipe eol=: Postfix's unescape()", "[pipe]") {
  CHECK(unescape("\\r\\n") == "\r\n");
  CHECK(unescape("\\a\\b\\f\\t\\v\\\\") == "\a\b\f\t\v\\");
  CHECK(unescape("\\015\\12x") == "\r\nx");
  CHECK(unescape("\\1011") == "A1");  // at most three octal digits
  CHECK(unescape("\\q") == "\\q");
  CHECK(unescape("a\\") == "a");
}

TEST_CASE("pipe macros: message macros, $name ${name} $(name) $$", "[pipe]") {
  auto out = expand_argv({"cmd", "${sender}", "$nexthop", "$(size)", "${queue_id}", "x$$y", "${client_address}:${client_port}"},
                         {rcpt("a@b")}, context(0));
  REQUIRE(out);
  CHECK(*out == Words{"cmd", "snd@example.org", "Next.Hop", "354", "4E4BBA780B5", "x$y", "127.0.0.1:"});
}

TEST_CASE("pipe macros: per-recipient arguments repeat, $user and $extension", "[pipe]") {
  // As the real pipe, on one message to three recipients (qmgr's order).
  auto out = expand_argv({"-f", "$sender", "--", "${recipient}", "x${user}y", "${extension}", "${mailbox}", "${domain}"},
                         {rcpt("+three@pmul.test"), rcpt("Two@pmul.test"), rcpt("one+a@pmul.test")}, context(0));
  REQUIRE(out);
  CHECK(*out == Words{"-f", "snd@example.org", "--", "+three@pmul.test", "Two@pmul.test", "one+a@pmul.test",
                      "x+threey", "xTwoy", "xoney", "", "", "a", "+three", "Two", "one+a", "pmul.test", "pmul.test",
                      "pmul.test"});
}

TEST_CASE("pipe macros: the h, q and u flags", "[pipe]") {
  // flags=hqu on Mi.xed.+EXT@PFLG.test, as the real pipe expands it.
  ExpansionContext c = context(kFoldHost | kQuoteLocal | kFoldUser);
  auto out = expand_argv({"${recipient}", "${nexthop}", "${user}", "${domain}", "${original_recipient}", "${extension}",
                          "${mailbox}"},
                         {rcpt("Mi.xed.+EXT@PFLG.test")}, c);
  REQUIRE(out);
  CHECK(*out == Words{"mi.xed.+ext@pflg.test", "next.hop", "mi.xed.", "pflg.test", "mi.xed.+ext@pflg.test", "ext",
                      "mi.xed.+ext"});
  // q quotes the sender, and the recipient's local part, but not $user.
  auto quoted = message_macros(mta::ipc::proto::DeliverRequest{}, "a.b.@Ex.COM", kQuoteLocal);
  CHECK(quoted["sender"] == "\"a.b.\"@Ex.COM");
  CHECK(message_macros(mta::ipc::proto::DeliverRequest{}, "", kQuoteLocal)["sender"].empty());
  c = context(kQuoteLocal);
  out = expand_argv({"${recipient}", "${user}"}, {rcpt("a b@X.org")}, c);
  REQUIRE(out);
  CHECK(*out == Words{"\"a b\"@X.org", "a b"});
  // h alone folds the domain, u alone the local part.
  CHECK(fold_address("Ab@Cd", kFoldHost) == "Ab@cd");
  CHECK(fold_address("Ab@Cd", kFoldUser) == "ab@Cd");
  CHECK(fold_address("AbCd", kFoldUser) == "abcd");
  CHECK(fold_address("AbCd", kFoldHost) == "AbCd");
}

TEST_CASE("pipe macros: addresses that are never split", "[pipe]") {
  ExpansionContext c = context(0);
  c.recipient_delimiter = "-";
  auto out = expand_argv({"${user}/${extension}"},
                         {rcpt("owner-list@x"), rcpt("list-request@x"), rcpt("postmaster@x"), rcpt("joe-ext@x")}, c);
  REQUIRE(out);
  CHECK(*out == Words{"owner-list/", "list-request/", "postmaster/", "joe/ext"});
  c.owner_request_special = false;
  out = expand_argv({"${user}"}, {rcpt("owner-list@x")}, c);
  REQUIRE(out);
  CHECK(*out == Words{"owner"});
}

TEST_CASE("pipe macros: configuration errors", "[pipe]") {
  CHECK_FALSE(expand_argv({"/bin/echo", "${bogus}"}, {rcpt("a@b")}, context(0)));
  CHECK_FALSE(expand_argv({"/bin/echo", "${recipient"}, {rcpt("a@b")}, context(0)));
  CHECK_FALSE(expand_argv({"/bin/echo", "cost: $"}, {rcpt("a@b")}, context(0)));
  CHECK_FALSE(expand_argv({"/bin/echo", "${recipient?x}"}, {rcpt("a@b")}, context(0)));
}

#endif
