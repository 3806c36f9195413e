// mime_downgrade_test.cpp: the 8-bit to 7-bit conversion that smtp uses
// for servers without 8BITMIME (lib/mime's qp_encode_line and MimeState's
// downgrade option), against the output of Postfix's mime_state_downgrade().
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mime/mime_state.hpp"

using mta::mime::HeaderClass;
using mta::mime::MimeOptions;
using mta::mime::MimeState;
using mta::mime::qp_encode_line;

namespace {

std::vector<std::string> qp(const std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  std::string line;
  for (size_t i = 0; i < pieces.size(); ++i)
    qp_encode_line(&line, pieces[i], i + 1 == pieces.size(), [&](std::string_view l) { out.emplace_back(l); });
  return out;
}

// Runs records through a MimeState and returns the output lines: headers
// as "H:" + text, body lines as "B" + type + ":" + text.
std::vector<std::string> run(const std::vector<std::pair<char, std::string>>& records, bool downgrade) {
  MimeOptions opt;
  opt.downgrade = downgrade;
  std::vector<std::string> out;
  MimeState::Callbacks cb;
  cb.header = [&](HeaderClass, std::string& h) { out.push_back("H:" + h); };
  cb.body = [&](char type, std::string_view text, long long) { out.push_back(std::string("B") + type + ":" + std::string(text)); };
  MimeState m(opt, std::move(cb));
  for (const auto& [type, text] : records) m.record(type, text);
  m.end();
  return out;
}

std::vector<std::pair<char, std::string>> lines(const std::vector<std::string>& l) {
  std::vector<std::pair<char, std::string>> r;
  for (const std::string& s : l) r.emplace_back('N', s);
  return r;
}

}  // namespace

TEST_CASE("qp_encode_line: 8-bit bytes, '=' and control characters are encoded", "[mime][downgrade]") {
  CHECK(qp({"caf\xe9 = ok"}) == std::vector<std::string>{"caf=E9 =3D ok"});
  CHECK(qp({"a\tb\x01" "c\x7f"}) == std::vector<std::string>{"a\tb=01c=7F"});
  CHECK(qp({""}) == std::vector<std::string>{""});
}

TEST_CASE("qp_encode_line: a trailing blank before the hard line break is encoded", "[mime][downgrade]") {
  CHECK(qp({"abc "}) == std::vector<std::string>{"abc=20"});
  CHECK(qp({"abc\t"}) == std::vector<std::string>{"abc=09"});
  CHECK(qp({"  x  "}) == std::vector<std::string>{"  x =20"});
}

TEST_CASE("qp_encode_line: soft line breaks once the line is longer than 72", "[mime][downgrade]") {
  std::string a100(100, 'a');
  CHECK(qp({a100}) == std::vector<std::string>{std::string(73, 'a') + "=", std::string(27, 'a')});
  // An encoded byte may take the line to 75 before the break: 76 with "=".
  std::string s = std::string(72, 'a') + "\xe9\xe9";
  CHECK(qp({s}) == std::vector<std::string>{std::string(72, 'a') + "=E9=", "=E9"});
  // Exactly 73 characters: no break (the test comes before each byte).
  CHECK(qp({std::string(73, 'b')}) == std::vector<std::string>{std::string(73, 'b')});
}

TEST_CASE("qp_encode_line: a line in pieces (L records) is encoded as one", "[mime][downgrade]") {
  CHECK(qp({"abc", "d\xe9", "f "}) == std::vector<std::string>{"abcd=E9f=20"});
  std::vector<std::string> got = qp({std::string(50, 'x'), std::string(50, 'y')});
  CHECK(got == std::vector<std::string>{std::string(50, 'x') + std::string(23, 'y') + "=", std::string(27, 'y')});
}

TEST_CASE("downgrade: an 8bit text body becomes quoted-printable", "[mime][downgrade]") {
  auto out = run(lines({"Subject: x", "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: 8bit",
                        "", "caf\xe9", ". dot="}),
                 true);
  CHECK(out == std::vector<std::string>{"H:Subject: x", "H:Content-Type: text/plain; charset=iso-8859-1",
                                        "H:Content-Transfer-Encoding: quoted-printable", "BN:", "BN:caf=E9",
                                        "BN:. dot=3D"});
  // Without the option nothing changes.
  auto raw = run(lines({"Content-Transfer-Encoding: 8bit", "", "caf\xe9"}), false);
  CHECK(raw == std::vector<std::string>{"H:Content-Transfer-Encoding: 8bit", "BN:", "BN:caf\xe9"});
}

TEST_CASE("downgrade: only the Content-Transfer-Encoding header decides", "[mime][downgrade]") {
  // 8-bit bytes without an 8bit/binary header, and in headers, stay.
  auto out = run(lines({"Subject: caf\xe9", "", "caf\xe9"}), true);
  CHECK(out == std::vector<std::string>{"H:Subject: caf\xe9", "BN:", "BN:caf\xe9"});
  auto qp7 = run(lines({"Content-Transfer-Encoding: quoted-printable", "", "a=3D"}), true);
  CHECK(qp7 == std::vector<std::string>{"H:Content-Transfer-Encoding: quoted-printable", "BN:", "BN:a=3D"});
  auto bin = run(lines({"Content-Transfer-Encoding: binary", "", "x\xff"}), true);
  CHECK(bin == std::vector<std::string>{"H:Content-Transfer-Encoding: quoted-printable", "BN:", "BN:x=FF"});
}

TEST_CASE("downgrade: multipart parts one by one, the container becomes 7bit", "[mime][downgrade]") {
  auto out = run(lines({"Content-Type: multipart/alternative; boundary=\"BB\"", "Content-Transfer-Encoding: 8bit", "",
                        "pre\xe9", "--BB", "Content-Transfer-Encoding: 8bit", "", "\xe9t\xe9", "--BB",
                        "Content-Type: text/html", "", "<p>x=1</p>", "--BB--", "post"}),
                 true);
  CHECK(out == std::vector<std::string>{"H:Content-Type: multipart/alternative; boundary=\"BB\"",
                                        "H:Content-Transfer-Encoding: 7bit", "BN:", "BN:pre\xe9", "BN:--BB",
                                        "H:Content-Transfer-Encoding: quoted-printable", "BN:", "BN:=E9t=E9",
                                        "BN:--BB", "H:Content-Type: text/html", "BN:", "BN:<p>x=1</p>", "BN:--BB--",
                                        "BN:post"});
}

TEST_CASE("downgrade: message/rfc822 headers pass, its 8bit body is converted", "[mime][downgrade]") {
  auto out = run(lines({"Content-Type: message/rfc822", "Content-Transfer-Encoding: 8bit", "", "Subject: inner\xe9",
                        "Content-Transfer-Encoding: 8bit", "", "body\xe9 "}),
                 true);
  CHECK(out == std::vector<std::string>{"H:Content-Type: message/rfc822", "H:Content-Transfer-Encoding: 7bit", "BN:",
                                        "H:Subject: inner\xe9", "H:Content-Transfer-Encoding: quoted-printable",
                                        "BN:", "BN:body=E9=20"});
}

TEST_CASE("downgrade: an unterminated last line is flushed at the end", "[mime][downgrade]") {
  std::vector<std::pair<char, std::string>> rec = {
      {'N', "Content-Transfer-Encoding: 8bit"}, {'N', ""}, {'L', "x\xe9"}};
  CHECK(run(rec, true) == std::vector<std::string>{"H:Content-Transfer-Encoding: quoted-printable", "BN:", "BN:x=E9"});
  // Headers only: the new header still ends the block.
  CHECK(run(lines({"Content-Transfer-Encoding: 8bit"}), true) ==
        std::vector<std::string>{"H:Content-Transfer-Encoding: quoted-printable"});
}
