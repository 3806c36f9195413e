#!/usr/bin/env bash
# The queue tools (showq, postqueue, postsuper) against the real Postfix 3.7
# on the same queues.
#
# A real Postfix instance (postfix-oracle) builds a queue: deferred mail with
# per-recipient reasons (defer_transports and retry: transports), held mail
# (a HOLD header check and postsuper -h), several recipients, a duplicate, a
# null sender, quoted local parts, very long addresses, a 30 KB message, a
# maildrop file; then it is stopped, and one message is moved to active and
# one to incoming.  The same is done with long queue IDs.  On copies of
# those queues:
#   - listings: postqueue -p and -j by the real postqueue and ours, through
#     the real showq and ours (stand-alone, as when the mail system is down;
#     under our master, chrooted, for root and for a postdrop user; under
#     the real master), all byte for byte the same;
#   - postqueue's errors and flush requests (-f triggers under our master,
#     -i and -s without a flush service and with the real one), compared
#     with the real postqueue on the same configuration;
#   - postsuper -d/-h/-H/-r/-e/-f (by ID, ALL, from stdin, with queue names,
#     mixed), -p, -s after hash and ID-format changes, refusals: run by the
#     real postsuper on one copy and by ours on another, same files
#     (places, names, modes), same output, same log lines, same exit code.
# Without the oracle (or as non-root) a smaller self-check on a queue
# written by lib/queue runs instead.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
for p in showq postqueue postsuper; do
  [ -x "$B/$p" ] || { echo "# skip: $B/$p is not built"; exit 77; }
done
T=$(mktemp -d) || exit 1
chmod 755 "$T"  # daemons and the postdrop test user run as others
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
RUNNING=()  # config dirs of running instances: "real:DIR" or "ours:DIR"
cleanup() {
  local r
  for r in "${RUNNING[@]}"; do
    case $r in
      real:*) timeout 60 "$ORACLE" run postfix -c "${r#real:}" stop >/dev/null 2>&1 ;;
      ours:*) timeout 60 "$B/postfix" -c "${r#ours:}" stop >/dev/null 2>&1 ;;
    esac
  done
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
# same NAME FILE1 FILE2
same() {
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -u "$2" "$3" | head -n 40 | sed 's/^/    /')"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
# Our commands, each bounded in time.
pq() { timeout 60 "$B/postqueue" "$@"; }
psuper() { timeout 60 "$B/postsuper" "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
finish() { echo "# $CHECKS checks, $FAILS failed"; [ "$FAILS" = 0 ]; exit; }

HAVE_ORACLE=0
if [ "$(id -u)" = 0 ] && [ "$ORACLE" != none ] && [ -x "$ORACLE" ] &&
   timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then
  HAVE_ORACLE=1
  echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
fi

# ---------------------------------------------------------------- without the oracle
if [ $HAVE_ORACLE = 0 ]; then
  echo "# no postfix-oracle or not root: self-check on a queue written by lib/queue"
  TOOL=$B/queue_tool
  [ -x "$TOOL" ] || { echo "# skip: $TOOL is not built"; exit 77; }
  C=$T/self Q=$T/self/queue
  mkdir -p "$Q"/{maildrop,incoming,active,deferred,hold,defer,bounce,trace,flush,public,private}
  printf '%s\n' "queue_directory = $Q" "daemon_directory = $B" "maillog_file = $C/maillog" \
    "maillog_file_prefixes = $C" >"$C/main.cf"
  printf 'Subject: x\n\nbody\n' | "$TOOL" write "$Q" -q deferred -t 1700000000.5 -s a@example.org \
    -r b@example.net -r 'c d@example.net' >"$T/w1"
  printf 'Subject: y\n\nbody\n' | "$TOOL" write "$Q" -q hold -t 1700000001.5 -s '' -r e@example.net >"$T/w2"
  read -r ID1 _ <"$T/w1"; read -r ID2 _ <"$T/w2"
  if [ "$(id -u)" = 0 ]; then
    chown -R postfix "$Q"  # showq and postsuper work as mail_owner
  elif [ -x "$B/master" ] && [ -x "$B/postfix" ]; then
    # Not root: no direct access to the queue; an unprivileged instance of
    # ours serves the listing.
    echo "showq unix n - n - - showq" >"$C/master.cf"
    printf '%s\n' "data_directory = $C/data" "command_directory = $B" "inet_protocols = ipv4" >>"$C/main.cf"
    timeout 60 "$B/postfix" -c "$C" start >"$T/start.log" 2>&1 && RUNNING+=("ours:$C")
    wait_for 10 test -S "$Q/public/showq" || bad "an unprivileged instance starts" "$(cat "$T/start.log")"
  fi
  out=$(TZ=UTC pq -c "$C" -p 2>/dev/null)
  case $out in
    "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"*"$ID1 "*"Tue Nov 14 22:13:20  a@example.org"*'"c d"@example.net'*"$ID2! "*"MAILER-DAEMON"*"in 2 Requests.") ok "postqueue -p lists our queue" ;;
    *) bad "postqueue -p lists our queue" "$out" ;;
  esac
  [ "$(TZ=UTC pq -c "$C" -j 2>/dev/null | wc -l)" = 2 ] && ok "postqueue -j: one line per message" ||
    bad "postqueue -j: one line per message"
  if [ "$(id -u)" = 0 ]; then
    psuper -c "$C" -H ALL 2>"$T/err"
    same "postsuper -H ALL" <(echo "postsuper: Released from hold: 1 message") "$T/err"
    psuper -c "$C" -d "$ID1" -d "$ID2" 2>"$T/err"
    same "postsuper -d" <(printf 'postsuper: %s: removed\npostsuper: %s: removed\npostsuper: Deleted: 2 messages\n' "$ID1" "$ID2") "$T/err"
    [ "$(pq -c "$C" -p 2>/dev/null)" = "Mail queue is empty" ] && ok "the queue is empty" || bad "the queue is empty"
  fi
  finish
fi

# ---------------------------------------------------------------- building queues with the real Postfix
LIB=$("$ORACLE" path)/usr/lib/postfix
# real PROG ARGS...: the real program, without postfix-oracle's own remarks on stderr.
real() {
  local rc
  timeout 60 "$ORACLE" run "$@" 2>"$T/real.stderr"
  rc=$?
  grep -v '^postfix-oracle:' "$T/real.stderr" >&2
  return $rc
}

# build_queue DIR [main.cf setting]: a real instance in DIR whose stopped queue holds every kind of message.
build_queue() {
  local D=$1 P i n d hid
  P=$(free_port)
  timeout 120 "$ORACLE" instance "$D" "$P" >"$T/instance.log" 2>&1 || { bad "instance $D" "$(tail -3 "$T/instance.log")"; return 1; }
  printf 'slow.example retry:4.4.1 slow site, try later\nbusy.example retry:4.2.0 mailbox "busy" \\ really\n' >"$D/transport"
  printf '/^Subject: hold me/ HOLD\n' >"$D/header_checks"
  for kv in ${2:+"$2"} "defer_transports = local smtp" "transport_maps = texthash:$D/transport" \
    "header_checks = regexp:$D/header_checks" "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$LIB"; do
    real postconf -c "$D" -e "$kv" >/dev/null
  done
  timeout 60 "$ORACLE" run postfix -c "$D" start >/dev/null 2>&1 && RUNNING+=("real:$D")
  wait_for 30 python3 -c "import socket; socket.create_connection(('127.0.0.1', $P), 1)" ||
    { bad "the real instance $D starts"; return 1; }
  timeout 60 python3 - "$P" <<'PY' || { bad "the real smtpd takes the messages"; return 1; }
import smtplib, sys
p = int(sys.argv[1])
def send(frm, rcpts, body="Subject: t\r\n\r\nhello\r\n"):
    s = smtplib.SMTP('127.0.0.1', p, timeout=20); s.ehlo('c.example'); s.sendmail(frm, rcpts, body); s.quit()
send('alice@example.org', ['bob@example.net', 'carol@example.net'])
send('', ['postmaster@example.net'])
l = 'a' * 64
send(l + '@' + 'very-long-subdomain-name-for-testing.' * 3 + 'example.com', [l + '@' + 'd' * 50 + '.example.net', 'short@example.net'])
send('"john doe"@example.org', ['"mary smith"@example.net', 'plain@example.net', '"x..y"@example.net'])
send('big@example.org', ['big@example.net'], "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 30)
send('tohold@example.org', ['held@example.net'])
send('hold@example.org', ['h1@example.net', 'h2@example.net'], "Subject: hold me\r\n\r\nx\r\n")
send('local@example.org', ['root@localhost', 'nobody@localhost'])
send('dup@example.org', ['same@example.net', 'same@example.net', 'other@example.net'])
PY
  printf 'Subject: reasons\n\nbody\n' | timeout 60 "$ORACLE" run sendmail -C "$D" -f sender@example.org \
    u1@slow.example u2@slow.example u3@busy.example u4@example.net u5@slow.example >/dev/null 2>&1
  for i in $(seq 150); do
    n=$(find "$D/queue/incoming" "$D/queue/active" -type f | wc -l)
    d=$(find "$D/queue/deferred" -type f | wc -l)
    [ "$n" = 0 ] && [ "$d" -ge 9 ] && break
    sleep 0.2
  done
  sleep 1
  hid=$(sed -n 's/.*: \([0-9A-Za-z]*\): from=<tohold@example.org>.*/\1/p' "$D/maillog" | head -n 1)
  real postsuper -c "$D" -h "$hid" >/dev/null 2>&1
  real postconf -c "$D" -e "master_service_disable = pickup/unix" >/dev/null
  timeout 60 "$ORACLE" run postfix -c "$D" reload >/dev/null 2>&1
  sleep 1
  printf 'Subject: dropped\n\nline\n' | timeout 60 "$ORACLE" run sendmail -C "$D" -f drop@example.org \
    r1@example.net r2@example.net >/dev/null 2>&1
  timeout 60 "$ORACLE" run postfix -c "$D" stop >/dev/null 2>&1
  RUNNING=("${RUNNING[@]/real:$D}")
  # As a stopped Postfix may leave them: one message in active, one in incoming.
  local first second
  first=$(find "$D/queue/deferred" -type f | sort | sed -n 1p)
  second=$(find "$D/queue/deferred" -type f | sort | sed -n 2p)
  mv "$first" "$D/queue/active/" && mv "$second" "$D/queue/incoming/"
  local total
  total=$(find "$D/queue"/{maildrop,incoming,active,deferred,hold} -type f | wc -l)
  [ "$total" = 11 ] && ok "the real Postfix built a queue of 11 messages in $D" ||
    { bad "the real Postfix built a queue of 12 messages in $D" "$(find "$D/queue" -type f)"; return 1; }
}

SHORT=$T/short LONG=$T/long
build_queue "$SHORT" || finish
build_queue "$LONG" "enable_long_queue_ids = yes" || finish

# copyq SRC DST: a copy of an instance whose paths point at the copy; the log writable by mail_owner.
copyq() {
  rm -rf "$2"
  cp -a "$1" "$2"
  sed -i "s|$1|$2|g" "$2/main.cf"
  : >"$2/maillog"
  chown postfix "$2/maillog"
  # Without a postlogd behind it, the socket only slows the real commands
  # down; and they wait for a main.cf changed in the last seconds to settle.
  rm -f "$2/queue/public/postlog"
  touch -d '-1 minute' "$2/main.cf"
}
# state DIR: every queue file and directory with its mode and owner.
state() {
  (cd "$1/queue" && find . -path ./pid -prune -o -path ./public -prune -o -path ./private -prune -o -print | sort |
    while read -r f; do printf '%s %s\n' "$(stat -c '%A %U' "$f")" "$f"; done)
}
loglines() { sed 's/^.*postsuper\[[0-9]*\]: //' "$1/maillog"; }

# ---------------------------------------------------------------- listings
list_checks() {  # QUEUE_INSTANCE LABEL
  local src=$1 label=$2 L=$T/list
  copyq "$src" "$L"
  export TZ=UTC
  real postqueue -c "$L" -p >"$T/ref.p" 2>"$T/ref.err"
  real postqueue -c "$L" -j >"$T/ref.j" 2>/dev/null
  grep -q "Mail system is down -- accessing queue directly" "$T/ref.err" &&
    ok "$label: the real postqueue reads the stopped queue with the real showq" ||
    bad "$label: the real postqueue reads the stopped queue" "$(cat "$T/ref.err")"
  # Our postqueue with the real showq (stand-alone).
  LD_LIBRARY_PATH=$LIB pq -c "$L" -p >"$T/o.p" 2>"$T/o.err"
  same "$label: our postqueue -p through the real showq" "$T/ref.p" "$T/o.p"
  same "$label: the same warning" "$T/ref.err" "$T/o.err"
  LD_LIBRARY_PATH=$LIB pq -c "$L" -j >"$T/o.j" 2>/dev/null
  same "$label: our postqueue -j through the real showq" "$T/ref.j" "$T/o.j"
  # Our showq, stand-alone, for the real postqueue and ours.
  sed -i "s|^daemon_directory = .*|daemon_directory = $B|" "$L/main.cf"
  real postqueue -c "$L" -p >"$T/o.p" 2>/dev/null
  same "$label: the real postqueue -p through our showq" "$T/ref.p" "$T/o.p"
  real postqueue -c "$L" -j >"$T/o.j" 2>/dev/null
  same "$label: the real postqueue -j through our showq" "$T/ref.j" "$T/o.j"
  pq -c "$L" -p >"$T/o.p" 2>/dev/null
  same "$label: our postqueue -p through our showq" "$T/ref.p" "$T/o.p"
  pq -c "$L" -j >"$T/o.j" 2>/dev/null
  same "$label: our postqueue -j through our showq" "$T/ref.j" "$T/o.j"
  unset TZ
}
list_checks "$SHORT" "short IDs"
cp "$T/ref.p" "$T/short.p"; cp "$T/ref.j" "$T/short.j"
grep -q '^[0-9A-F]*\* ' "$T/short.p" && grep -q '^[0-9A-F]*! ' "$T/short.p" && grep -q '"MAILER-DAEMON"' "$T/short.j" &&
  grep -q '(mailbox "busy" \\ really)' "$T/short.p" && grep -q '"x..y"@example.net' "$T/short.p" &&
  grep -q -- "Kbytes in 11 Requests." "$T/short.p" &&
  ok "the listing has active, held, null-sender, quoted and reason lines" || bad "listing content" "$(cat "$T/short.p")"
list_checks "$LONG" "long IDs"
grep -q '^----Queue ID----- --Size--' "$T/ref.p" && ok "long IDs: Postfix's long heading" || bad "long heading"

# An empty queue.
copyq "$SHORT" "$T/empty"
find "$T/empty/queue"/{maildrop,incoming,active,deferred,hold} -type f -delete
real postqueue -c "$T/empty" -p >"$T/ref.p" 2>/dev/null
LD_LIBRARY_PATH=$LIB pq -c "$T/empty" -p >"$T/o.p" 2>/dev/null
same "an empty queue through the real showq: Mail queue is empty" "$T/ref.p" "$T/o.p"
sed -i "s|^daemon_directory = .*|daemon_directory = $B|" "$T/empty/main.cf"
pq -c "$T/empty" -p >"$T/o.p" 2>/dev/null
same "an empty queue through our showq: Mail queue is empty" "$T/ref.p" "$T/o.p"
pq -c "$T/empty" -j >"$T/o.j" 2>/dev/null
[ ! -s "$T/o.j" ] && ok "an empty queue: no JSON" || bad "an empty queue: no JSON"

# ---------------------------------------------------------------- under our master
O=$T/ours
copyq "$SHORT" "$O"
# The reference: the real postqueue and showq on this very directory.
TZ=UTC real postqueue -c "$O" -p >"$T/here.p" 2>/dev/null
TZ=UTC real postqueue -c "$O" -j >"$T/here.j" 2>/dev/null
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $O/queue" "data_directory = $O/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $O/maillog" \
  "maillog_file_prefixes = $O" "inet_protocols = ipv4" >"$O/main.cf"
printf '%s\n' "showq     unix  n       -       y       -       -       showq" \
  "qmgr      unix  n       -       n       -       1       test_trigger" \
  "pickup    unix  n       -       n       -       1       test_trigger" >"$O/master.cf"
touch "$O/queue/trigger.log"
chmod 666 "$O/queue/trigger.log"
if [ -x "$B/master" ] && [ -x "$B/postfix" ] && [ -x "$B/test_trigger" ] &&
   timeout 60 "$B/postfix" -c "$O" start >"$T/start.log" 2>&1; then
  RUNNING+=("ours:$O")
  wait_for 10 test -S "$O/queue/public/showq"
  export TZ=UTC
  real postqueue -c "$O" -p >"$T/o.p" 2>"$T/o.err"
  same "our showq under our master (chrooted) for the real postqueue -p" "$T/here.p" "$T/o.p"
  [ ! -s "$T/o.err" ] && ok "no fallback: the showq service answered" || bad "the showq service answered" "$(cat "$T/o.err")"
  real postqueue -c "$O" -j >"$T/o.j" 2>/dev/null
  same "our showq under our master for the real postqueue -j" "$T/here.j" "$T/o.j"
  pq -c "$O" -p >"$T/o.p" 2>/dev/null
  same "our showq under our master for our postqueue -p" "$T/here.p" "$T/o.p"
  # A user who is not root, in the postdrop group (as a set-gid postqueue would be).
  if getent group postdrop >/dev/null; then
    timeout 60 setpriv --reuid=nobody --regid=postdrop --clear-groups "$B/postqueue" -c "$O" -p >"$T/o.p" 2>"$T/o.err"
    same "an unprivileged user lists the queue through showq" "$T/here.p" "$T/o.p"
    timeout 60 setpriv --reuid=nobody --regid=nogroup --clear-groups "$B/postqueue" -c "$O" -p >"$T/o.p" 2>"$T/o.err"
    echo "rc=$?" >>"$T/o.err"
    timeout 60 setpriv --reuid=nobody --regid=nogroup --clear-groups "$ORACLE" run postqueue -c "$O" -p >"$T/r.p" 2>"$T/r.err"
    echo "rc=$?" >>"$T/r.err"
    sed -i '/^postfix-oracle:/d' "$T/r.err"
    same "a user without access to public/ is refused as by Postfix" "$T/r.err" "$T/o.err"
    # Installed set-gid postdrop, postqueue trusts a user's -c only for a
    # directory that /etc/postfix/main.cf lists (mail_conf_checkdir).
    mkdir -p "$T/sgid" && chmod 755 "$T/sgid" && cp "$B/postqueue" "$T/sgid/postqueue" &&
      chgrp postdrop "$T/sgid/postqueue" && chmod 2755 "$T/sgid/postqueue"
    timeout 60 setpriv --reuid=nobody --regid=nogroup --clear-groups "$T/sgid/postqueue" -c "$O" -p >"$T/o.p" 2>"$T/o.err"
    rc=$?
    if [ -r /etc/postfix/main.cf ] && ! grep -q "^alternate_config_directories.*$O" /etc/postfix/main.cf; then
      want="postqueue: fatal: specify \"alternate_config_directories = $O\" in /etc/postfix/main.cf"
      grep -qxF "postqueue: error: untrusted configuration directory name: $O" "$T/o.err" || rc=0
    else
      want="postqueue: fatal: open file /etc/postfix/main.cf: No such file or directory"
    fi
    [ $rc = 1 ] && [ ! -s "$T/o.p" ] && grep -qxF "$want" "$T/o.err" &&
      ok "a set-gid postqueue refuses a user's untrusted -c directory" ||
      bad "a set-gid postqueue refuses a user's untrusted -c directory" "rc=$rc" "$(cat "$T/o.err")"
    timeout 60 setpriv --reuid=nobody --regid=nogroup --clear-groups "$B/sendmail" -C "$O" -bp >"$T/o.p" 2>"$T/o.err"
    rc=$?
    [ $rc = 1 ] && grep -q "^sendmail: fatal: .*/etc/postfix/main.cf" "$T/o.err" &&
      ok "sendmail -C by a user: only a directory blessed by /etc/postfix/main.cf" ||
      bad "sendmail -C by a user: only a directory blessed by /etc/postfix/main.cf" "rc=$rc" "$(cat "$T/o.err")"
  fi
  unset TZ
  # postqueue -f: the triggers Postfix sends.
  : >"$O/queue/trigger.log"
  pq -c "$O" -f 2>"$T/o.err"
  wait_for 10 grep -q W "$O/queue/trigger.log"
  ours_triggers=$(tr '\0' 0 <"$O/queue/trigger.log")
  : >"$O/queue/trigger.log"
  real postqueue -c "$O" -f 2>/dev/null
  wait_for 10 grep -q W "$O/queue/trigger.log"
  real_triggers=$(tr '\0' 0 <"$O/queue/trigger.log")
  # (NULs shown as 0; qmgr and pickup are separate processes: either may write first)
  case "$ours_triggers/$real_triggers" in FADI0W0/FADI0W0 | FADI0W0/W0FADI0 | W0FADI0/FADI0W0 | W0FADI0/W0FADI0) true ;; *) false ;; esac &&
    ok "postqueue -f asks qmgr for FADI and pickup for W, byte for byte as the real postqueue" ||
    bad "postqueue -f triggers" "ours: $ours_triggers" "real: $real_triggers"
  # No flush service here: -i and -s fail as Postfix's do.
  for args in "-i $(ls "$O/queue/hold" | head -n 1)" "-s example.com" "-s [1.2.3.4]"; do
    # shellcheck disable=SC2086
    pq -c "$O" $args >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
    # shellcheck disable=SC2086
    real postqueue -c "$O" $args >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
    same "postqueue $args without a flush service" "$T/r.out" "$T/o.out"
  done
  timeout 60 "$B/postfix" -c "$O" stop >/dev/null 2>&1
  RUNNING=("${RUNNING[@]/ours:$O}")
  # The mail system is down: -f fails as Postfix's does.
  pq -c "$O" -f >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
  real postqueue -c "$O" -f >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
  same "postqueue -f with the mail system down" "$T/r.out" "$T/o.out"
  rm -f "$O/queue/public/qmgr"
  pq -c "$O" -f >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
  real postqueue -c "$O" -f >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
  same "postqueue -f without a qmgr socket" "$T/r.out" "$T/o.out"
  timeout 60 setpriv --reuid=nobody --regid=postdrop --clear-groups "$B/postqueue" -c "$O" -p >"$T/o.out" 2>&1
  echo "rc=$?" >>"$T/o.out"
  timeout 60 setpriv --reuid=nobody --regid=postdrop --clear-groups "$ORACLE" run postqueue -c "$O" -p >"$T/r.out" 2>&1
  echo "rc=$?" >>"$T/r.out"
  sed -i '/^postfix-oracle:/d' "$T/r.out"
  grep -q "Queue report unavailable - mail system is down" "$T/o.out" &&
    same "postqueue -p by a user while the mail system is down" "$T/r.out" "$T/o.out" ||
    bad "postqueue -p by a user while the mail system is down" "$(cat "$T/o.out")"
else
  bad "our instance starts" "$(cat "$T/start.log" 2>/dev/null)"
fi

# ---------------------------------------------------------------- under the real master
R=$T/realmaster
copyq "$SHORT" "$R"
# postfix start runs postsuper, which renames files to match the copy's
# inodes: do it first, then take the reference in this very directory.
real postsuper -c "$R" -s 2>/dev/null
TZ=UTC real postqueue -c "$R" -p >"$T/here.p" 2>/dev/null
TZ=UTC real postqueue -c "$R" -j >"$T/here.j" 2>/dev/null
printf '%s\n' "showq     unix  n       -       n       -       -       showq" \
  "flush     unix  n       -       n       1000?   0       flush" \
  "postlog   unix-dgram n  -       n       -       1       postlogd" >"$R/master.cf"
real postconf -c "$R" -e "fast_flush_domains = example.com" >/dev/null
if timeout 60 "$ORACLE" run postfix -c "$R" start >"$T/start.log" 2>&1; then
  RUNNING+=("real:$R")
  wait_for 10 test -S "$R/queue/public/showq"
  export TZ=UTC
  pq -c "$R" -p >"$T/o.p" 2>"$T/o.err"
  same "our postqueue -p through the real showq daemon" "$T/here.p" "$T/o.p"
  [ ! -s "$T/o.err" ] && ok "no fallback: the real showq service answered" || bad "the real showq answered" "$(cat "$T/o.err")"
  pq -c "$R" -j >"$T/o.j" 2>/dev/null
  same "our postqueue -j through the real showq daemon" "$T/here.j" "$T/o.j"
  unset TZ
  for args in "-i $(ls "$R/queue/hold" | head -n 1)" "-i NOSUCHID" "-s example.com" "-s other.example"; do
    # shellcheck disable=SC2086
    pq -c "$R" $args >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
    # shellcheck disable=SC2086
    real postqueue -c "$R" $args >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
    same "postqueue $args with the real flush service" "$T/r.out" "$T/o.out"
  done
  timeout 60 "$ORACLE" run postfix -c "$R" stop >/dev/null 2>&1
  RUNNING=("${RUNNING[@]/real:$R}")
else
  bad "the real master starts" "$(cat "$T/start.log")"
fi

# ---------------------------------------------------------------- postqueue's errors
E=$T/errors
copyq "$SHORT" "$E"
for args in "" "-p -f" "-p extra" "-x" "-s bad!site" "-s [1.2.3.400]" "-s $(printf 'a%.0s' $(seq 120))!" \
  "-i bad/id" "-s example.com" "-c $T/nonexistent -p"; do
  # (The log is not compared: with the mail system down the real postqueue
  # has no postlogd to log through; ours logs as it does when it runs.)
  # shellcheck disable=SC2086
  pq -c "$E" $args >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
  # shellcheck disable=SC2086
  real postqueue -c "$E" $args >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
  same "postqueue $args: the same error and exit code" "$T/r.out" "$T/o.out"
done

# ---------------------------------------------------------------- postsuper
# super_case SOURCE ARGS...: the real postsuper on one copy, ours on another (stdin from $STDIN).
super_case() {
  local src=$1; shift
  copyq "$src" "$T/ra"; copyq "$src" "$T/rb"
  if [ -n "${SETUP:-}" ]; then eval "$SETUP"; touch -d '-1 minute' "$T/ra/main.cf" "$T/rb/main.cf"; fi
  real postsuper -c "$T/ra" "$@" <"${STDIN:-/dev/null}" >"$T/ra.out" 2>&1; echo "rc=$?" >>"$T/ra.out"
  psuper -c "$T/rb" "$@" <"${STDIN:-/dev/null}" >"$T/rb.out" 2>&1; echo "rc=$?" >>"$T/rb.out"
  for x in ra rb; do loglines "$T/$x" >"$T/$x.log"; ${NORM:-state} "$T/$x" >"$T/$x.state"; done
  local name="postsuper $*${STDIN:+ <ids}${SETUP:+ (after: ${SETUP_NAME:-setup})}"
  if cmp -s "$T/ra.out" "$T/rb.out" && cmp -s "$T/ra.log" "$T/rb.log" && cmp -s "$T/ra.state" "$T/rb.state"; then
    ok "$name: same files, output and log"
  else
    bad "$name" "$(diff -u "$T/ra.out" "$T/rb.out" | sed 's/^/out  /')" "$(diff -u "$T/ra.log" "$T/rb.log" | sed 's/^/log  /')" \
      "$(diff -u "$T/ra.state" "$T/rb.state" | head -n 30 | sed 's/^/file /')"
  fi
}
# IDs by place (in the pristine short queue).
qid() { find "$SHORT/queue/$1" -type f | sort | sed -n "${2:-1}p" | xargs -r basename; }
ACTIVE=$(qid active) INCOMING=$(qid incoming) MAILDROP=$(qid maildrop)
HOLD1=$(qid hold 1) HOLD2=$(qid hold 2) DEF1=$(qid deferred 1) DEF2=$(qid deferred 2) DEF3=$(qid deferred 3)
echo "# active $ACTIVE incoming $INCOMING maildrop $MAILDROP hold $HOLD1 $HOLD2 deferred $DEF1 $DEF2 $DEF3"

super_case "$SHORT" -d "$ACTIVE"
super_case "$SHORT" -d "$DEF1" -d "$HOLD1" -d "$MAILDROP" -d NOSUCHID -d 'bad/id'
super_case "$SHORT" -d ALL
super_case "$SHORT" -d ALL deferred
super_case "$SHORT" -d ALL maildrop hold
super_case "$SHORT" -h "$ACTIVE" -h "$INCOMING" -h "$HOLD1" -h "$MAILDROP" -h "$DEF2"
super_case "$SHORT" -h ALL
super_case "$SHORT" -h ALL deferred
super_case "$SHORT" -H ALL
super_case "$SHORT" -H "$HOLD2" -H "$DEF1"
super_case "$SHORT" -r "$ACTIVE" -r "$HOLD1" -r "$MAILDROP"
super_case "$SHORT" -r ALL
super_case "$SHORT" -e "$ACTIVE" -e "$HOLD1" -e "$DEF1" -e "$MAILDROP"
super_case "$SHORT" -f "$HOLD1" -f "$DEF2" -f "$INCOMING"
super_case "$SHORT" -e ALL
super_case "$SHORT" -f ALL
super_case "$SHORT" -d "$INCOMING" -f "$HOLD1" -h "$DEF1" -r "$DEF2" -H "$HOLD2" -e "$DEF3"
super_case "$SHORT" -H "$HOLD1" -h ALL
super_case "$SHORT" -r "$DEF1" -d ALL
super_case "$SHORT" -d ALL -r "$DEF1"
super_case "$SHORT" -e ALL hold -h "$DEF1" deferred
printf '%s\n\n%s \nbad/x\n%s' "$DEF1" "$DEF2" "$ACTIVE" >"$T/ids"
STDIN=$T/ids super_case "$SHORT" -d -
STDIN=$T/ids super_case "$SHORT" -h - -H -
super_case "$SHORT" -d ALL nosuchqueue
super_case "$SHORT" -x
super_case "$SHORT" -p
super_case "$LONG" -d "$(find "$LONG/queue/deferred" -type f | sort | head -n 1 | xargs basename)" -h ALL
super_case "$LONG" -r ALL
# Expired files stay expired; files being written are not expired; old ones are purged.
SETUP='chmod 0710 "$T"/r[ab]/queue/hold/'"$HOLD1"'; for x in ra rb; do for f in incoming/ABC123 hold/ABC124; do
  echo y >"$T/$x/queue/$f"; chmod 600 "$T/$x/queue/$f"; done; done' SETUP_NAME="files expired and unfinished" \
  super_case "$SHORT" -f ALL
SETUP='for x in ra rb; do echo t >"$T/$x/queue/incoming/12345.678"; touch -d "8 days ago" "$T/$x/queue/incoming/12345.678";
  echo t >"$T/$x/queue/incoming/12346.678"; touch -d "3 days ago" "$T/$x/queue/incoming/12346.678";
  mkfifo "$T/$x/queue/active/fifo"; mkdir "$T/$x/queue/hold/junk"; chown -R postfix "$T/$x/queue"; done' \
  SETUP_NAME="temporary files, a fifo, a directory" super_case "$SHORT" -p

# Structure repair.  Copies get new inodes, so every short name is renamed;
# compare with names cut to their time part, and check that each copy's
# names now match the inodes.
norm_state() {
  state "$1" | sed -E -e 's#/([0-9A-Za-z]{10,}z)[0-9A-Za-z]+(\#FIX)?$#/\1*\2#' -e 's#/([0-9A-F]{5})[0-9A-F]+(\#FIX)?$#/\1*\2#'
  (cd "$1/queue" && for q in incoming active deferred hold maildrop; do find "$q" -type f; done | while read -r f; do
    b=$(basename "$f")
    case $b in *z*) ;; *) [ "${b:5}" = "$(printf '%X' "$(stat -c %i "$f")")" ] || echo "inode mismatch $f" ;; esac
  done)
}
NORM=norm_state super_case "$SHORT" -s
NORM=norm_state super_case "$SHORT"
NORM=norm_state super_case "$SHORT" -s -d "$ACTIVE"
NORM=norm_state super_case "$SHORT" -s -h ALL
NORM=norm_state SETUP='for x in ra rb; do sed -i "s/^enable_long_queue_ids = yes/enable_long_queue_ids = no/" "$T/$x/main.cf"; done' \
  SETUP_NAME="long queue IDs turned off" super_case "$LONG" -s
NORM=norm_state super_case "$LONG" -S
# Hash changes on copies whose names already match their inodes.
fixed() { for x in ra rb; do psuper -c "$T/$x" -s 2>/dev/null; : >"$T/$x/maillog"; done; }
NORM=norm_state SETUP='fixed; for x in ra rb; do printf "hash_queue_depth = 2\nhash_queue_names = deferred, defer, hold\n" >>"$T/$x/main.cf"; done' \
  SETUP_NAME="hash depth 2, hold hashed" super_case "$SHORT" -s
NORM=norm_state SETUP='fixed; for x in ra rb; do printf "hash_queue_depth = 2\nhash_queue_names = deferred, defer, incoming\n" >>"$T/$x/main.cf";
  psuper -c "$T/$x" -s; sed -i "/^hash_queue/d" "$T/$x/main.cf"; : >"$T/$x/maillog"; done' \
  SETUP_NAME="hash depth 2 and back" super_case "$SHORT" -s
NORM=norm_state SETUP='fixed; for x in ra rb; do echo "hash_queue_names = maildrop" >>"$T/$x/main.cf"; done' \
  SETUP_NAME="maildrop hashed" super_case "$SHORT" -s

# Refusals.
timeout 60 su -s /bin/sh nobody -c "'$B/postsuper' -c '$SHORT' -d ALL" >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
timeout 60 su -s /bin/sh nobody -c "'$ORACLE' run postsuper -c '$SHORT' -d ALL" >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
sed -i '/^postfix-oracle:/d' "$T/r.out"
same "postsuper refuses a user who is not root, as Postfix" "$T/r.out" "$T/o.out"
psuper -c relative -d ALL >"$T/o.out" 2>&1; echo "rc=$?" >>"$T/o.out"
real postsuper -c relative -d ALL >"$T/r.out" 2>&1; echo "rc=$?" >>"$T/r.out"
same "postsuper -c needs an absolute path" "$T/r.out" "$T/o.out"

finish
