#!/usr/bin/env bash
# smtp(8): 8-bit to 7-bit MIME conversion for a server without 8BITMIME,
# our smtp beside the real Postfix 3.7 smtp on the same queue files
# (smtp_lib.sh.inc).  The server is smtp_fake_server.py in "no8bit" mode
# (SIZE, PIPELINING, no 8BITMIME); it records the MAIL FROM command and
# the DATA lines of every message, which must be the same bytes from both
# agents.  The messages (encoding= is the queue file's attribute, as
# cleanup records it):
#   plain8   text/plain, Content-Transfer-Encoding: 8bit, encoding=8bit:
#            quoted-printable (long lines, "=", trailing blanks, control
#            characters, a leading dot, a "Name : value" header)
#   binary   the same with Content-Transfer-Encoding: binary
#   alt      multipart/alternative (itself 8bit): an 8bit part and a 7bit
#            part; the container becomes 7bit, only the 8bit part changes
#   nested   multipart/mixed with a message/rfc822 part (8bit) whose inner
#            message has an 8-bit header and an 8bit body
#   seven    a 7-bit message, encoding=7bit: unchanged, SIZE announced
#   nocte    8-bit bytes without a Content-Transfer-Encoding header: as is
#   noenc    Content-Transfer-Encoding: 8bit without an encoding attribute
#            (mail that bypassed MIME processing): converted too
#   raw      plain8's content through a service with
#            disable_mime_output_conversion = yes: sent as is (Postfix 3.7
#            neither converts nor bounces)
#   deep     multipart three levels deep through a service with
#            mime_nesting_limit = 1: the real smtp does not apply that
#            limit (it is cleanup's and smtpd's), every level is converted
# Connection reuse is off (smtp_connection_cache_on_demand = no) so that
# the log lines do not depend on timing.
# Also compared: the smtp log lines and the bounce/defer records.
set -u
export LC_ALL=C
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
make_instance_a smtp_mime_conv

FAKE=$(free_port)
mkdir -p "$T/fake"
python3 "$(dirname "$0")/smtp_fake_server.py" "$T/fake/ready" "$FAKE:no8bit" 2>"$T/fake/err" &
BG_PIDS+=($!)
wait_for 10 test -f "$T/fake/ready" || { bad "the fake server starts" "$(cat "$T/fake/err")"; exit 1; }

{
  echo "conv.test smtp:[127.0.0.1]:$FAKE"
  echo "raw.test smtpraw:[127.0.0.1]:$FAKE"
  echo "deep.test smtpdeep:[127.0.0.1]:$FAKE"
  echo "example.org discard:"
} >"$INST/transport"
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'smtp_connect_timeout = 5s' \
  'smtp_connection_cache_on_demand = no' >/dev/null

configure_agent() {  # AGENT CMD
  pf postconf -c "$INST" -M "smtp/unix=smtp unix - - n - - $2" \
    "smtpraw/unix=smtpraw unix - - n - - $2 -o disable_mime_output_conversion=yes" \
    "smtpdeep/unix=smtpdeep unix - - n - - $2 -o mime_nesting_limit=1" >/dev/null
}

hdr() {  # NAME: the common header lines
  printf 'From: Sender <s@example.org>\nTo: someone\nDate: Sat, 1 Nov 2025 10:00:00 +0000\nMessage-ID: <%s@example.org>\nMIME-Version: 1.0\n' "$1"
}
content() {  # NAME
  local long
  long=$(printf 'x%.0s' $(seq 1 150))
  case $1 in
  plain8 | binary | raw)
    hdr "$1"
    printf 'Subject: %s\nX-Spaced : value\nContent-Type: text/plain; charset=iso-8859-1\n' "$1"
    [ "$1" = binary ] && printf 'Content-Transfer-Encoding: binary\n' || printf 'Content-Transfer-Encoding: 8bit\n'
    printf '\nCaf\351 cr\350me br\373l\351e\n.leading dot \351t\351\n'
    printf 'equals = sign and 100%% \n'
    printf 'trailing tab\t\n'
    printf 'ctrl \001 char \177 del\n'
    printf '%s\n' "$long"
    printf '%s\351\351\351\n' "$(printf 'a%.0s' $(seq 1 71))"
    printf '%s\n' "$(printf 'b%.0s' $(seq 1 73))"
    printf '%s \n' "$(printf 'c%.0s' $(seq 1 72))"
    printf '\n.\n..\nlast l\351ne\n'
    ;;
  alt)
    hdr "$1"
    printf 'Subject: alt\nContent-Type: multipart/alternative; boundary="=_b1"\nContent-Transfer-Encoding: 8bit\n\n'
    printf 'preamble \351\n--=_b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
    printf 'gr\303\274\303\237e = %s\n\n--=_b1\nContent-Type: text/html\nContent-Transfer-Encoding: 7bit\n\n' "$long"
    printf '<p>a = b</p>  \n--=_b1--\nepilogue\n'
    ;;
  nested)
    hdr "$1"
    printf 'Subject: nested\nContent-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: text/plain\n\n'
    printf 'see attached\n--outer\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n'
    printf 'Subject: inner \351t\351\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n'
    printf 'inner body \351t\351 \n--outer--\n'
    ;;
  seven)
    hdr "$1"
    printf 'Subject: seven\nContent-Type: text/plain\n\nplain = ascii  \n.dot\n'
    ;;
  nocte)
    hdr "$1"
    printf 'Subject: nocte\nContent-Type: text/plain; charset=iso-8859-1\n\nno header caf\351 = x\n'
    ;;
  deep)
    hdr "$1"
    printf 'Subject: deep\nContent-Type: multipart/mixed; boundary=l1\nContent-Transfer-Encoding: 8bit\n\n--l1\n'
    printf 'Content-Type: multipart/mixed; boundary=l2\n\n--l2\nContent-Type: multipart/mixed; boundary=l3\n\n'
    printf -- '--l3\nContent-Transfer-Encoding: 8bit\n\ndeep \351\n--l3--\n--l2--\n--l1--\n'
    ;;
  noenc)
    hdr "$1"
    printf 'Subject: noenc\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nno attribute caf\351\n'
    ;;
  esac
}
inject_msg() {  # NAME DOMAIN [QUEUE_TOOL ARGS]
  local name=$1 dom=$2 out id file; shift 2
  out=$(content "$name" | "$QT" write "$T/stage" -s sender@example.org -a rewrite_context=local \
    -r "$name@$dom,$name@$dom" "$@") || return 1
  read -r id file <<<"$out"
  chown postfix:postfix "$file" && mv "$file" "$Q/incoming/$id"
  echo "$id" >>"$T/ids"
}
inject_all() {
  local m
  for m in plain8 binary alt nested nocte; do inject_msg $m conv.test -a encoding=8bit; done
  inject_msg seven conv.test -a encoding=7bit
  inject_msg noenc conv.test
  inject_msg raw raw.test -a encoding=8bit
  inject_msg deep deep.test -a encoding=8bit
}
# The received messages, one per "==" record, sorted by their MAIL FROM
# and RCPT-independent content (the delivery order may differ).
received() {  # OUT_FILE
  python3 - "$T/fake/$FAKE.mbox" "$1" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read() if __import__("os").path.exists(sys.argv[1]) else b""
msgs = [m for m in data.split(b"\n==\n") if m]
open(sys.argv[2], "wb").write(b"".join(sorted(m + b"\n==\n" for m in msgs)))
EOF
  rm -f "$T/fake/$FAKE.mbox"
}

run_agent real
received "$T/out/real/received"
run_agent ours
received "$T/out/ours/received"

R=$T/out/real O=$T/out/ours
same_files "the same smtp log lines as the real smtp" "$R/log" "$O/log"
same_files "the same bounce/defer records" "$R/bounce" "$O/bounce"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the server received the same bytes from both agents" "$R/received" "$O/received"
n=$(grep -c '^==$' "$O/received")
[ "$n" = 9 ] && ok "every message arrived ($n)" || bad "every message arrived" "got $n of 9"
# The bytes themselves (so that a change to both sides cannot pass).
expect_grep "8bit text became quoted-printable" '^Caf=E9 cr=E8me br=FBl=E9e$' "$O/received"
expect_grep "the new Content-Transfer-Encoding header" '^Content-Transfer-Encoding: quoted-printable$' "$O/received"
expect_grep "the multipart container became 7bit" '^Content-Transfer-Encoding: 7bit$' "$O/received"
expect_grep "soft line breaks" "^x{73}=\$" "$O/received"
expect_grep "trailing blanks encoded" '^equals =3D sign and 100%=20$' "$O/received"
expect_grep "dot stuffing after conversion" '^\.\.leading dot =E9t=E9$' "$O/received"
expect_grep "8-bit header of the inner message left alone" $'^Subject: inner \351t\351$' "$O/received"
expect_grep "no Content-Transfer-Encoding header: sent as is" $'^no header caf\351 = x$' "$O/received"
expect_grep "disable_mime_output_conversion = yes: sent as is" $'^Caf\351 cr\350me' "$O/received"
expect_grep "no SIZE while converting" '^MAIL FROM:<sender@example.org>$' "$O/received"
expect_grep "SIZE for 7-bit mail" '^MAIL FROM:<sender@example.org> SIZE=[0-9]+$' "$O/received"
expect_grep "mime_nesting_limit is not smtp's: the third level is converted" '^deep =E9$' "$O/received"
expect_grep "all delivered" 'to=<plain8@conv.test>, .*status=sent' "$O/log"
finish
