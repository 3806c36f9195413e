#!/usr/bin/env bash
# The mail path end to end on a real instance of ours (M3): sendmail ->
# postdrop -> pickup -> cleanup -> qmgr -> trivial-rewrite -> local, with
# bounce/defer, as root with privilege drop.  A message reaches a Maildir
# and an mbox, an alias fans out, an unknown user bounces a DSN to the
# sender, kill -9 of qmgr mid-run loses nothing, and the log has Postfix's
# lines.  Skipped (77) unless root and every program is built.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix sendmail postdrop pickup cleanup qmgr trivial-rewrite local bounce error discard showq postqueue postsuper; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built yet"; exit 77; }
done
T=$(mktemp -d) || exit 1
chmod 755 "$T"
U1=mtat$$a U2=mtat$$b U3=mtat$$c
cleanup() {
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  userdel "$U1" >/dev/null 2>&1; userdel "$U2" >/dev/null 2>&1; userdel "$U3" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
eventually() { local i; for i in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
check() {
  local name=$1; shift
  if eventually "$@"; then ok "$name"; else bad "$name" "$(tail -5 "$T/maillog")" "$(grep throttling "$T/maillog" | tail -2)"; fi
}
# kill -9 of this instance's daemons named NAME (not those of other tests
# running at the same time): master gives its workers MAIL_CONFIG=$T.  Only
# a process that has logged work is killed: master throttles a service
# whose process dies before it has served ("bad command startup --
# throttling", as Postfix's master), which a kill of a process just started
# would provoke.  service_throttle_time is short here all the same.
kill_daemon() {
  local p i
  for i in $(seq 50); do
    for p in $(pgrep -f "$1 -n $1"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "MAIL_CONFIG=$T" || continue
      grep -q "postfix/$1\[$p\]: [0-9A-F]" "$T/maillog" && kill -9 "$p" && return 0
    done
    sleep 0.2
  done
  return 1
}

mkdir -p "$T/queue" "$T/home" "$T/spool"
chmod 1777 "$T/spool"
for u in "$U1" "$U2" "$U3"; do
  useradd -M -d "$T/home/$u" -s /bin/sh "$u"; mkdir -p "$T/home/$u"; chown "$u:" "$T/home/$u"
done
printf '%s\n' "postmaster: root" "team: $U1, $U2" "archive: $T/archive-file" \
  "runner: \"|/bin/sh -c 'cat > $T/command-out'\"" "spooled: $U3" > "$T/aliases"
touch "$T/archive-file" "$T/command-out"; chmod 666 "$T/archive-file" "$T/command-out"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
  "myhostname = mail.test.example" "mydestination = \$myhostname, localhost" \
  "myorigin = \$myhostname" "alias_maps = hash:$T/aliases" "alias_database = hash:$T/aliases" \
  "home_mailbox = Maildir/" "mail_spool_directory = $T/spool" "default_transport = error" \
  "relay_transport = error" "allow_mail_to_files = alias, forward" \
  "minimal_backoff_time = 1s" "maximal_backoff_time = 2s" "queue_run_delay = 1s" \
  "service_throttle_time = 5s"
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postalias" -c "$T" "$T/aliases"
"$B/postfix" -c "$T" start || { bad "postfix start"; exit 1; }
ok "postfix start"

send() { "$B/sendmail" -C "$T/main.cf" "$@"; }
export MAIL_CONFIG=$T

# 1. Maildir delivery.
printf 'Subject: one\n\nhello maildir\n' | send -f root "$U1@mail.test.example"
check "a message reaches a Maildir" sh -c "grep -rl 'hello maildir' '$T/home/$U1/Maildir/new'"
f=$(grep -rl 'hello maildir' "$T/home/$U1/Maildir/new" 2>/dev/null | head -1)
if [ -n "$f" ]; then
  grep -q "^Delivered-To: $U1@mail.test.example" "$f" && ok "Delivered-To is added" || bad "Delivered-To"
  grep -q '^Message-Id: <' "$f" && ok "cleanup added a Message-Id" || bad "Message-Id"
  grep -q '^Received: by mail.test.example (Postfix, from userid 0)' "$f" && ok "cleanup added Received" ||
    bad "Received" "$(grep -m1 Received "$f")"
  [ "$(stat -c %U "$f")" = "$U1" ] && ok "the Maildir file belongs to the recipient" || bad "owner"
fi
check "the delivery is logged as Postfix logs it" grep -qE \
  "postfix/local\[[0-9]+\]: [0-9A-F]+: to=<$U1@mail.test.example>, relay=local, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2.0.0, status=sent \(delivered to maildir\)" "$T/maillog"
check "the queue file is removed" grep -qE "postfix/qmgr\[[0-9]+\]: [0-9A-F]+: removed" "$T/maillog"

# 2. An alias to two users and sendmail -t.
printf 'To: team@mail.test.example\nSubject: two\n\nhello team\n' | send -t -f root
check "an alias reaches its first member" sh -c "grep -rl 'hello team' '$T/home/$U1/Maildir/new'"
check "an alias reaches its second member" sh -c "grep -rl 'hello team' '$T/home/$U2/Maildir/new'"

# 2b. An alias to a file and to a command; .forward; mbox for a user whose
# home_mailbox is overridden by .forward to the spool (mail_spool_directory).
printf 'Subject: file\n\nto the archive\n' | send -f root "archive@mail.test.example"
check "an alias delivers to a file" grep -q 'to the archive' "$T/archive-file"
printf 'Subject: cmd\n\nto the command\n' | send -f root "runner@mail.test.example"
check "an alias delivers to a command" grep -q 'to the command' "$T/command-out"
printf '%s\n' "$U1@mail.test.example" > "$T/home/$U3/.forward"; chown "$U3:" "$T/home/$U3/.forward"
printf 'Subject: fwd\n\nforwarded by dot-forward\n' | send -f root "spooled@mail.test.example"
check ".forward sends the mail on" sh -c "grep -rl 'forwarded by dot-forward' '$T/home/$U1/Maildir/new'"
rm -f "$T/home/$U3/.forward"
"$B/postconf" -c "$T" -e "home_mailbox =" "biff = yes"
# biff = yes: local sends comsat "user@offset" (with a NUL) to 127.0.0.1:biff.
timeout 30 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", socket.getservbyname("biff", "udp")))
except OSError as e:
    open(sys.argv[1], "w").write("cannot bind: %s" % e); sys.exit(0)
# Other tests on this machine (the real local of local_delivery) may send
# comsat datagrams too: wait for the one about this test user.
import time
end = time.time() + 25
data = b""
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        data, _ = s.recvfrom(1000)
    except socket.timeout:
        break
    if data.startswith(sys.argv[2].encode() + b"@"):
        break
open(sys.argv[1], "wb").write(data)
' "$T/biff.got" "$U3" &
BIFF_PID=$!
sleep 0.5
"$B/postfix" -c "$T" reload >/dev/null
sleep 1
printf 'Subject: mbox\n\nFrom the start of a line\n' | send -f root "$U3@mail.test.example"
check "mail reaches an mbox in mail_spool_directory" grep -q '^>From the start of a line' "$T/spool/$U3"
check "the mbox starts with a From_ line" sh -c "head -1 '$T/spool/$U3' | grep -q '^From root@mail.test.example '"
wait "$BIFF_PID" 2>/dev/null
if grep -q "^cannot bind" "$T/biff.got" 2>/dev/null; then echo "# skip biff: $(cat "$T/biff.got")"
elif [ "$(tr '\0' '|' < "$T/biff.got" 2>/dev/null)" = "$U3@0|" ]; then ok "biff: comsat is told user@offset"
else bad "biff: comsat is told user@offset" "got: $(tr '\0' '|' < "$T/biff.got" 2>/dev/null)"; fi
"$B/postconf" -c "$T" -e "home_mailbox = Maildir/" "biff = no"
"$B/postfix" -c "$T" reload >/dev/null
sleep 1

# 3. An unknown user bounces a DSN back to the sender.
printf 'Subject: three\n\nto nobody\n' | send -f "$U2@mail.test.example" "nosuchuser@mail.test.example"
check "an unknown user is bounced (5.1.1)" grep -q "to=<nosuchuser@mail.test.example>.*dsn=5.1.1, status=bounced" "$T/maillog"
check "the sender gets a delivery status notification" sh -c \
  "grep -rl 'Undelivered Mail Returned to Sender' '$T/home/$U2/Maildir/new'"

# 4. kill -9 of qmgr in the middle of a run loses nothing.
for i in $(seq 20); do printf 'Subject: burst %s\n\nburst %s\n' "$i" "$i" | send -f root "$U1@mail.test.example"; done
kill_daemon qmgr && ok "qmgr is killed with -9 in the middle of the burst" || bad "no qmgr to kill"
check "every message of a burst arrives after qmgr is killed" sh -c \
  "[ \$(grep -rl '^burst' '$T/home/$U1/Maildir/new' | wc -l) -ge 20 ]"
check "postqueue -p shows an empty queue at the end" sh -c "'$B/postqueue' -p | grep -q 'Mail queue is empty'"

# 5. kill -9 of a delivery agent in the middle of a run loses nothing.
for i in $(seq 20); do printf 'Subject: agent %s\n\nagentburst %s\n' "$i" "$i" | send -f root "$U2@mail.test.example"; done
kill_daemon local && ok "local is killed with -9 in the middle of the burst" || bad "no local to kill"
check "every message arrives after a delivery agent is killed" sh -c \
  "[ \$(grep -rl '^agentburst' '$T/home/$U2/Maildir/new' | wc -l) -ge 20 ]"

# A killed agent may leave a message for the next attempt (at least once:
# it may also be delivered twice); wait until the queue has drained.
check "the queue drains after the agent is killed" sh -c "'$B/postqueue' -p | grep -q 'Mail queue is empty'"

# 6. Held mail: listed with "!", released, delivered; defer_transports honoured.
"$B/postconf" -c "$T" -e "defer_transports = local"
"$B/postfix" -c "$T" reload >/dev/null
sleep 1
printf 'Subject: held\n\nheld message\n' | send -f root "$U1@mail.test.example"
check "a deferred transport keeps the message in the queue" sh -c \
  "'$B/postqueue' -p | grep -q '(deferred transport)'"
"$B/postsuper" -h ALL 2>"$T/err"
grep -q "postsuper: Placed on hold: 1 message" "$T/err" && ok "postsuper -h reports as Postfix" || bad "postsuper -h" "$(cat "$T/err")"
check "postqueue -p marks a held message with !" sh -c "'$B/postqueue' -p | grep -qE '^[0-9A-F]+!'"
"$B/postconf" -c "$T" -e "defer_transports ="
"$B/postfix" -c "$T" reload >/dev/null
sleep 1
"$B/postsuper" -H ALL 2>"$T/err"
grep -q "postsuper: Released from hold: 1 message" "$T/err" && ok "postsuper -H reports as Postfix" || bad "postsuper -H" "$(cat "$T/err")"
"$B/postqueue" -f
check "a released message is delivered" sh -c "grep -rl 'held message' '$T/home/$U1/Maildir/new'"

# 7. A queue file damaged on disk goes to corrupt/ with a log line; the rest flows.
"$B/postconf" -c "$T" -e "defer_transports = local"
"$B/postfix" -c "$T" reload >/dev/null
sleep 1
printf 'Subject: damaged\n\ndamaged message\n' | send -f root "$U1@mail.test.example"
check "the message waits in deferred/" sh -c "find '$T/queue/deferred' -type f | grep -q ."
f=$(find "$T/queue/deferred" -type f | head -1)
truncate -s 40 "$f"
"$B/postconf" -c "$T" -e "defer_transports ="
"$B/postfix" -c "$T" reload >/dev/null
sleep 1
"$B/postqueue" -f
check "a truncated queue file is moved to corrupt/" sh -c "find '$T/queue/corrupt' -type f | grep -q ."
check "and that is logged" grep -q 'saving corrupt file' "$T/maillog"
printf 'Subject: after\n\nafter the damage\n' | send -f root "$U1@mail.test.example"
check "mail keeps flowing after a corrupt file" sh -c "grep -rl 'after the damage' '$T/home/$U1/Maildir/new'"

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
