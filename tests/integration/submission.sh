#!/usr/bin/env bash
# The submission half of the mail path: sendmail -> postdrop -> maildrop/ ->
# pickup -> cleanup -> incoming/, on a running instance of ours (our master,
# pickup and cleanup; no qmgr, so the queue file stays in incoming/), compared
# with a real Postfix 3.7 instance (postfix-oracle, qmgr off) given the same
# input: sendmail's exit status and messages, the log lines of sendmail,
# postdrop, pickup and cleanup, and the queue file as the real postcat shows
# it (queue IDs, dates and times normalized).  Then, ours only: a broken
# maildrop file goes to corrupt/, and kill -9 of pickup and of cleanup in the
# middle of a stream of messages loses none of them.
#
# trivial-rewrite (and bounce) come from build/bin when they are built, else
# from the oracle (SUBMISSION_HELPERS=oracle forces that).  Needs root (the
# daemons drop to mail_owner) and the oracle; else it is skipped (77).
set -u
shopt -s lastpipe  # "... | compare" runs in this shell, so that its checks count
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
for p in sendmail postdrop pickup cleanup master postfix; do
  [ -x "$B/$p" ] || { echo "# skip: $B/$p is not built"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (daemons run as mail_owner)"; exit 77; }
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi
OD=$(timeout 60 "$ORACLE" path 2>/dev/null | tail -n 1)
T=$(mktemp -d /tmp/submission.XXXXXX) || exit 1
chmod 755 "$T"
OURS=$T/ours REAL=$T/real
STARTED_OURS=0 STARTED_REAL=0
stop_all() {
  [ $STARTED_OURS = 1 ] && timeout 30 "$B/postfix" -c "$OURS" stop >/dev/null 2>&1
  [ $STARTED_REAL = 1 ] && timeout 60 "$ORACLE" run postfix -c "$REAL" stop >/dev/null 2>&1
  STARTED_OURS=0 STARTED_REAL=0
}
trap 'stop_all; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 10; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- instances
helper() {  # the program for a helper daemon: ours when built, else the oracle's
  if [ "${SUBMISSION_HELPERS:-}" != oracle ] && [ -x "$B/$1" ]; then echo "$1"; else echo "$OD/usr/lib/postfix/sbin/$1"; fi
}
mkdir -p "$OURS/queue"
cat >"$OURS/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $OURS/queue
data_directory = $OURS/data
daemon_directory = $B
command_directory = $B
maillog_file = $OURS/maillog
maillog_file_prefixes = $OURS
inet_protocols = ipv4
inet_interfaces = 127.0.0.1
myhostname = host.example.com
mydomain = example.com
# The oracle's helpers need their shared libraries.
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=$OD/usr/lib/postfix
shlib_directory = $OD/usr/lib/postfix
meta_directory = $OD/etc/postfix
EOF
cat >"$OURS/master.cf" <<EOF
pickup    unix  n       -       n       2       1       pickup
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       $(helper trivial-rewrite)
bounce    unix  -       -       n       -       0       $(helper bounce)
defer     unix  -       -       n       -       0       $(helper bounce)
trace     unix  -       -       n       -       0       $(helper bounce)
EOF
timeout 200 "$ORACLE" instance "$REAL" "$(port)" >/dev/null 2>&1 || { echo "# skip: cannot make an oracle instance"; exit 77; }
sed -i 's/^qmgr /#qmgr /' "$REAL/master.cf"
{ echo "myhostname = host.example.com"; echo "mydomain = example.com"; echo "in_flow_delay = 0"
  echo "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$OD/usr/lib/postfix"; } >>"$REAL/main.cf"
touch "$OURS/maillog" "$REAL/maillog"
"$B/postfix" -c "$OURS" start >/dev/null 2>&1 && STARTED_OURS=1 || { bad "our instance starts" "$(tail -5 "$OURS/maillog")"; exit 1; }
timeout 60 "$ORACLE" run postfix -c "$REAL" start >/dev/null 2>&1 && STARTED_REAL=1 || { echo "# skip: the real instance does not start"; exit 77; }
wait_for 10 test -S "$OURS/queue/public/pickup" -a -S "$OURS/queue/public/cleanup" || bad "our services are listening"

# ---------------------------------------------------------------- one submission
# normalize QID: queue IDs, dates, times and paths out of postcat and log text.
normalize() {
  sed -E -e "s/$1/QID/g" \
    -e 's/[A-Z][a-z]{2}, [ 0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4} \([A-Za-z0-9+-]+\)/DATE/g' \
    -e 's/<[0-9]{14}\.QID@/<STAMP.QID@/g' \
    -e 's/^(message_arrival_time|create_time|warning_message_time): .*/\1: TIME/' \
    -e 's/^(\*\*\* [A-Z ]+) [^ ]+ \*\*\*$/\1 ***/' \
    -e 's/delays?=[0-9.\/]+/delay=N/g' \
    -e 's/^(message_size: +[0-9]+) +[0-9]+ /\1 DATA_OFFSET /'
}
# Log lines of the submission programs since line FROM, "program: text".
log_lines() {
  tail -n +"$2" "$1" | grep -E 'postfix/(sendmail|postdrop|pickup|cleanup)\[' |
    sed -E 's/^.* postfix\/([a-z]+)\[[0-9]+\]: /\1: /' | grep -v 'unable to look up public/qmgr'
}
# run WHO NAME ARGS... < input: submits, waits for the queue file (unless
# NOFILE is set: modes that queue nothing), and leaves
# WHO.rc, WHO.err, WHO.log and WHO.qf (normalized) in $T/NAME/.
run() {
  local who=$1 name=$2 dir inst from qf id i; shift 2
  dir=$T/cases/$name; mkdir -p "$dir"
  if [ "$who" = ours ]; then inst=$OURS; else inst=$REAL; fi
  rm -f "$inst"/queue/incoming/* 2>/dev/null
  from=$(($(wc -l <"$inst/maillog") + 1))
  if [ "$who" = ours ]; then
    MAIL_CONFIG=$inst timeout 60 "$B/sendmail" "$@" >"$dir/$who.out" 2>"$dir/$who.rawerr"
  else
    MAIL_CONFIG=$inst timeout 60 "$ORACLE" run sendmail "$@" >"$dir/$who.out" 2>"$dir/$who.rawerr"
  fi
  echo $? >"$dir/$who.rc"
  grep -av '^postfix-oracle:' "$dir/$who.rawerr" >"$dir/$who.err"
  # Wait for pickup to take every complete maildrop file (the real postdrop
  # leaves refused files behind, never marked complete), then for a complete
  # queue file (mode 0700).
  wait_for 15 sh -c "[ -z \"\$(find '$inst/queue/maildrop' -type f -perm -700 2>/dev/null)\" ]"
  qf=""
  if [ "$(cat "$dir/$who.rc")" = 0 ] && [ -z "${NOFILE:-}" ]; then
    for ((i = 0; i < 150; i++)); do
      qf=$(find "$inst/queue/incoming" -type f -perm -700 2>/dev/null | head -n 1)
      [ -n "$qf" ] && break
      sleep 0.1
    done
  fi
  sleep 0.3  # the last log lines
  if [ -n "$qf" ]; then
    id=$(basename "$qf")
    timeout 60 "$ORACLE" run postcat -v "$qf" 2>/dev/null | normalize "$id" >"$dir/$who.qf"
  else
    id=NOFILE; echo "(no queue file)" >"$dir/$who.qf"
  fi
  # (SORTLOG: daemons that log through different channels may interleave.)
  log_lines "$inst/maillog" "$from" | normalize "$id" | if [ -n "${SORTLOG:-}" ]; then sort; else cat; fi >"$dir/$who.log"
}
same_file() {  # NAME WHAT FILE
  if cmp -s "$T/cases/$1/real.$3" "$T/cases/$1/ours.$3"; then ok "$1: $2 as Postfix"; else
    bad "$1: $2 as Postfix" "$(diff -u --label real --label ours "$T/cases/$1/real.$3" "$T/cases/$1/ours.$3" | head -n 40 | sed 's/^/    /')"
  fi
}
# compare NAME ARGS... < input: both instances, every aspect.
compare() {
  local name=$1; shift
  local input=$T/input.$name
  cat >"$input"
  run real "$name" "$@" <"$input" &
  run ours "$name" "$@" <"$input"
  wait
  same_file "$name" "exit status" rc
  same_file "$name" "messages" err
  same_file "$name" "log lines" log
  same_file "$name" "queue file" qf
}

# ---------------------------------------------------------------- cases
printf 'Subject: plain\nTo: Bob Smith <bob>, carol@example.org\nCc: "Dave X." <dave@example.net>\n\nhello\n' |
  compare plain bob carol@example.org
printf 'Subject: extract\nTo: Bob Smith <bob>, carol@example.org\nCc: dave,\n  eve@example.net\nBcc: frank\nReturn-Path: <x@y>\n\nbody\n' |
  compare extract -t
printf 'Subject: resent\nTo: old@example.org\nResent-To: new\nResent-Cc: other@example.net\nResent-From: r\n\nbody\n' |
  compare resent -t
printf 'Subject: both\nTo: x@example.org\n\nbody\n' | compare args-and-t -t extra@example.org
printf 'Subject: names\n\nbody\n' | compare full-name -F 'Joe "Q" User (x)' -f joe@example.org someone
printf 'Subject: names\n\nbody\n' | compare full-name-plain -F '  Joe   User  ' -f joe someone
printf 'Subject: null sender\n\nbody\n' | compare null-sender -f '' someone
printf 'Subject: mailer-daemon\n\nbody\n' | compare mailer-daemon -f MAILER-DAEMON someone
printf 'Subject: dsn\n\nbody\n' | compare dsn -N success,delay -V envid-123 -B 8BITMIME someone '"john doe"@example.com'
printf 'Subject: odd addresses\n\nbody\n' | compare odd-addresses 'a@b@c' '<<x@y' 'Name <n@example.org>, plain' ''
printf 'Subject: dups\n\nbody\n' | compare duplicates bob bob 'Bob <bob>' bob@host.example.com
printf 'Subject: bad -f\n\nbody\n' | compare two-senders -f 'a@x, b@y' someone
printf 'From someone Mon Jan 1 00:00:00 2024\n>From another\nSubject: from lines\n\n.\nafter the dot\n' |
  compare from-lines someone
printf 'Subject: dot\n\n.\nafter the dot\n' | compare dash-i -i someone
printf 'Subject: crlf\r\nTo: a\r\n\r\nline one\r\nline two\r\n' | compare crlf -t
{ printf 'Subject: long\n\n'; head -c 5000 /dev/zero | tr '\0' y; printf '\nend\n'; } | compare long-body-line someone
{ printf 'Subject: long header\nX-Long: '; head -c 5000 /dev/zero | tr '\0' h; printf '\n folded\n\nbody\n'; } |
  compare long-header-line someone
printf 'Subject: continued\nTo: a,\n\tb,\n c\nX-Custom: one\n two\n\nbody\n' | compare continuations -t
printf 'Subject: no date\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <given@example.org>\nFrom: Real Sender <real@example.org>\n\nbody\n' |
  compare has-headers someone
printf 'Subject: nothing else\n' | compare header-only someone
printf '\nbody only, no header\n' | compare no-header someone
printf ' leading blank\nSubject: x\n\nbody\n' | compare leading-blank someone

printf 'Subject: folding\nTo: first-recipient, second-recipient, third-recipient, fourth-recipient, fifth, sixth-recipient@example.org\n\nbody\n' |
  compare fold -t
printf 'Subject: case\nTO: upper\nCc : spaced\nfrom: lower <me>\nSender: s\nReply-To: r, "R 2" <r2>\n\nbody\n' |
  compare header-case -t
printf 'Subject: groups\nTo: friends: a, b@example.org;, undisclosed-recipients:;\nCc: bob (Bob Smith) , (c) carol, <@relay.example,@r2:dest@example.org>\n\nbody\n' |
  compare groups-comments -t
printf 'Subject: 8bit\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nh\xc3\xa9llo\n' |
  compare eight-bit someone
printf 'Subject: remote\nTo: bob\n\nbody\n' | compare remote-context -G someone
printf 'Subject: verp\n\nbody\n' | compare verp -XV -f list@example.org someone
printf 'Subject: verp2\n\nbody\n' | compare verp-delims -XV-= -f list@example.org someone
printf 'Subject: report\n\nbody\n' | compare delivery-report -v someone
compare probe -bv someone </dev/null
printf 'Subject: empty name\n\nbody\n' | compare empty-full-name -F '' someone
printf 'Subject: name env\n\nbody\n' | NAME='Env Name' compare name-env someone
printf 'Subject: sender form\n\nbody\n' | compare sender-form -f 'Joe User <joe@example.org>' someone
{ printf 'Subject: exact lines\n\n'; head -c 2048 /dev/zero | tr '\0' a; echo; head -c 2049 /dev/zero | tr '\0' b; echo;
  head -c 4096 /dev/zero | tr '\0' c; echo; } | compare line-limits someone

# Bad input (M3): NUL bytes, a 1 MB header line, no empty line before the
# body, no final newline, no recipients, malformed addresses.
printf 'Subject: nul\0after\nTo: a\n\nab\0cd\n\0\n' | compare nul-bytes -t
{ printf 'To: a\nX-Long: '; head -c 1000000 /dev/zero | tr '\0' x; printf '\nSubject: after\n\nbody\n'; } |
  compare megabyte-header someone
{ printf 'To: a\nX-Long: '; head -c 1000000 /dev/zero | tr '\0' x; printf '\nSubject: after\n\nbody\n'; } |
  compare megabyte-header-t -t
printf 'To: a\nSubject: no blank line\nthis is the body\nmore\n' | compare no-blank-line -t
printf 'To: a\nSubject: no newline\n\nlast line' | compare no-final-newline -t
printf 'To: a\nX-Last: no newline' | compare no-final-newline-header someone
printf 'Subject: none\n\nbody\n' | compare no-recipients-t -t
printf 'Subject: none\n\nbody\n' | compare no-recipients
printf 'Subject: bad\nTo: <<<, "unterminated\n\nbody\n' | compare malformed-header-address -t
printf 'Subject: bad\n\nbody\n' | compare malformed-argument '@' '<>' '"x' 'a b c'
# Options and modes.
compare bad-option -Z </dev/null
compare missing-argument -X </dev/null
compare bad-B -B foo </dev/null
compare bad-b -bz </dev/null
compare t-not-delivery -t -bp </dev/null
compare n-option -n x </dev/null
compare qR-empty -qR </dev/null
NOFILE=1 compare q-interval -q5m </dev/null
NOFILE=1 compare bh -bh </dev/null
NOFILE=1 compare bad-N -N bogus -bh </dev/null
NOFILE=1 compare bad-V -V "$(printf 'a\tb')" -bh </dev/null

# Received: headers beyond hopcount_limit: cleanup bounces the message.
{ printf 'Subject: hops\n'; for i in $(seq 60); do printf 'Received: from x%d by y\n' "$i"; done; printf '\nbody\n'; } >"$T/hops"
for who in real ours; do
  inst=$REAL; [ $who = ours ] && inst=$OURS
  from=$(($(wc -l <"$inst/maillog") + 1))
  if [ $who = ours ]; then MAIL_CONFIG=$inst "$B/sendmail" someone <"$T/hops"
  else MAIL_CONFIG=$inst "$ORACLE" run sendmail someone <"$T/hops" 2>/dev/null; fi
  wait_for 20 grep -q 'non-delivery notification\|bounce message failure' "$inst/maillog"
  sleep 0.5
  log_lines "$inst/maillog" "$from" | grep -v 'message-id=' | normalize 'NONE' |
    sed -E 's/[0-9A-F]{10,12}/QID/g' >"$T/hops.$who"
done
if cmp -s "$T/hops.real" "$T/hops.ours"; then ok "hopcount: bounced as Postfix"; else
  bad "hopcount: bounced as Postfix" "$(diff -u --label real --label ours "$T/hops.real" "$T/hops.ours" | head -30)"
fi

# A small header_size_limit: long and continued headers are cut.
"$B/postconf" -c "$OURS" -e header_size_limit=200 && "$ORACLE" run postconf -c "$REAL" -e header_size_limit=200 >/dev/null 2>&1
{ printf 'Subject: small header limit\nX-Long: '; head -c 300 /dev/zero | tr '\0' l; printf '\nX-Cont: one\n'
  for i in $(seq 30); do printf ' continuation line %d\n' "$i"; done; printf 'To: a\n\nbody\n'; } | compare header-limit someone
"$B/postconf" -c "$OURS" -e header_size_limit=102400 && "$ORACLE" run postconf -c "$REAL" -e header_size_limit=102400 >/dev/null 2>&1

# message_size_limit: postdrop refuses the file.
"$B/postconf" -c "$OURS" -e message_size_limit=3000 && "$ORACLE" run postconf -c "$REAL" -e message_size_limit=3000 >/dev/null 2>&1
{ printf 'Subject: big\n\n'; for i in $(seq 100); do echo "line $i of some text to make the message long enough"; done; } |
  compare too-big someone
"$B/postconf" -c "$OURS" -e message_size_limit=10240000 && "$ORACLE" run postconf -c "$REAL" -e message_size_limit=10240000 >/dev/null 2>&1

# postdrop by itself, on record streams: its answers, messages and status.
records() {  # TYPE DATA ...: the records, encoded
  python3 -c '
import sys
out = bytearray()
args = sys.argv[1:]
for t, d in zip(args[0::2], args[1::2]):
    d = d.encode("latin-1")
    n = len(d)
    out += t.encode()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); break
    out += d
sys.stdout.buffer.write(bytes(out))' "$@"
}
postdrop_case() {  # NAME: records on stdin
  local name=$1 who dir=$T/postdrop/$1
  mkdir -p "$dir"; cat >"$dir/input"
  for who in real ours; do
    if [ $who = ours ]; then MAIL_CONFIG=$OURS timeout 30 "$B/postdrop" -r <"$dir/input" >"$dir/$who.raw" 2>"$dir/$who.rawerr"
    else MAIL_CONFIG=$REAL timeout 30 "$ORACLE" run postdrop -r <"$dir/input" >"$dir/$who.raw" 2>"$dir/$who.rawerr"; fi
    echo "rc=$?" >"$dir/$who.out"
    tr '\0' '|' <"$dir/$who.raw" | sed -E 's/queue_id\|[0-9A-Za-z]+\|/queue_id|QID|/' >>"$dir/$who.out"
    echo >>"$dir/$who.out"
    grep -av '^postfix-oracle:' "$dir/$who.rawerr" >>"$dir/$who.out"
  done
  if cmp -s "$dir/real.out" "$dir/ours.out"; then ok "postdrop $name: as Postfix"; else
    bad "postdrop $name: as Postfix" "$(diff -u --label real --label ours "$dir/real.out" "$dir/ours.out" | head -20)"
  fi
}
records S joe R bob M "" N hello X "" E "" | postdrop_case valid
records T "1 2" S joe A foo=bar A noequals A encoding=8bit A rewrite_context=remote A envelope_id=x R bob M "" N hi X "" R more E "" |
  postdrop_case attributes
records S joe R bob M "" N hello | postdrop_case cancelled
records S joe R bob C "12" M "" N hello X "" E "" | postdrop_case unexpected-type
records R bob M "" N hello X "" E "" | postdrop_case no-sender
records S joe M "" N hello X "" E "" | postdrop_case no-recipient
records S joe R bob M "" N "$(head -c 3000 /dev/zero | tr '\0' x)" X "" E "" | postdrop_case too-long
printf 'S\x85' | postdrop_case truncated-length
printf '' | postdrop_case empty

# Our daemons in the real instance, under the real master, next to the real
# pickup, cleanup and trivial-rewrite: the result must not change.
real_swap() {  # PROGRAM [ours]: run our PROGRAM (or the real one again) in the real instance
  local cmd=$1
  [ "${2:-}" = ours ] && cmd=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$B/$1" "$OD/usr/lib/postfix/sbin")
  sed -i -E "s|^($1 +unix +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +).*|\\1$cmd|" "$REAL/master.cf"
  # A restart: after a reload the old pickup lingers for a while.
  timeout 60 "$ORACLE" run postfix -c "$REAL" stop >/dev/null 2>&1
  timeout 60 "$ORACLE" run postfix -c "$REAL" start >/dev/null 2>&1
  wait_for 10 test -S "$REAL/queue/public/pickup"
  sleep 0.5
}
real_swap cleanup ours
printf 'Subject: interop\nTo: Bob Smith <bob>, carol@example.org\nCc: dave\n\nbody\n' | SORTLOG=1 compare interop-our-cleanup -t -F 'Joe User'
real_swap cleanup
real_swap pickup ours
printf 'Subject: interop\nTo: Bob Smith <bob>, carol@example.org\nCc: dave\n\nbody\n' | SORTLOG=1 compare interop-our-pickup -t -F 'Joe User'
real_swap pickup

# sendmail's other modes on our instance.
printf 'root: someone\n' >"$OURS/aliases"
"$B/postconf" -c "$OURS" -e "alias_database = hash:$OURS/aliases"
MAIL_CONFIG=$OURS "$B/sendmail" -bi && [ -f "$OURS/aliases.db" ] && ok "sendmail -bi runs postalias on alias_database" ||
  bad "sendmail -bi runs postalias on alias_database"
rm -f "$OURS/aliases.db"
MAIL_CONFIG=$OURS "$B/newaliases" && [ -f "$OURS/aliases.db" ] && ok "newaliases builds alias_database" ||
  bad "newaliases builds alias_database"
if [ -x "$B/smtpd" ]; then
  # SMTP on standard input: smtpd -S submits through postdrop.
  out=$(printf 'EHLO me.example\r\nMAIL FROM:<me@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: bs\r\n\r\nsent with sendmail -bs\r\n.\r\nQUIT\r\n' |
    MAIL_CONFIG=$OURS timeout 60 "$B/sendmail" -bs 2>&1); rc=$?
  case "$out" in
    220\ *"250 2.0.0 Ok: queued as "*"221 2.0.0 Bye"*) [ $rc = 0 ] && ok "sendmail -bs takes a message over SMTP on stdin" ||
      bad "sendmail -bs takes a message over SMTP on stdin" "rc=$rc" "$out" ;;
    *) bad "sendmail -bs takes a message over SMTP on stdin" "rc=$rc" "$out" ;;
  esac
  # postdrop's queue ID names the maildrop file; cleanup gives the queued
  # message a new one (as in Postfix), so look for the content.
  for _ in $(seq 100); do
    grep -rlq 'sent with sendmail -bs' "$OURS/queue/incoming" "$OURS/queue/active" "$OURS/queue/deferred" 2>/dev/null && break
    sleep 0.1
  done
  grep -rlq 'sent with sendmail -bs' "$OURS/queue/incoming" "$OURS/queue/active" "$OURS/queue/deferred" 2>/dev/null &&
    ok "the -bs message reaches the queue" || bad "the -bs message reaches the queue" "$(ls -R "$OURS/queue" | head -20)"
fi
if [ -x "$B/postqueue" ]; then
  MAIL_CONFIG=$OURS timeout 30 "$B/mailq" >/dev/null 2>&1 && ok "mailq runs postqueue -p" || bad "mailq runs postqueue -p"
else
  out=$(MAIL_CONFIG=$OURS "$B/mailq" 2>&1); rc=$?
  [ $rc = 75 ] && [ "$out" = "mailq: fatal: execvp $B/postqueue: No such file or directory" ] &&
    ok "mailq runs postqueue -p (not built yet: Postfix's error)" || bad "mailq runs postqueue -p" "rc=$rc" "$out"
fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
