#!/usr/bin/env bash
# trivial-rewrite, error, retry and discard under our own master (no real
# Postfix needed; runs as root with privilege drop, or unprivileged):
#  - the rewrite service answers rewrite, resolve and verify requests;
#  - a changed transport_maps file makes trivial-rewrite restart ("table
#    ... has changed -- restarting") and the new process uses it;
#  - discard marks recipients done and logs status=sent; a request for a
#    bad queue name or a missing file is deferred (-1);
#  - with our bounce daemon built: error bounces into the bounce log and
#    marks the recipients done, retry defers into the defer log and leaves
#    them.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
for f in postfix master trivial-rewrite error discard tr_probe queue_tool; do
  [ -x "$B/$f" ] || { echo "# skip: $B/$f is not built"; exit 77; }
done
T=$(mktemp -d) || exit 1
chmod 755 "$T"
Q=$T/queue
cleanup() { timeout 30 "$B/postfix" -c "$T" stop >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2" "got:      $3"; fi; }
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

mkdir -p "$Q"
printf '%s\n' 'special.example  smtp:[first.example]' >"$T/transport"
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $Q" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_protocols = ipv4" "inet_interfaces = loopback-only" \
  "myhostname = mx.example.org" "mydomain = example.org" 'myorigin = $mydomain' \
  'mydestination = $myhostname, localhost' "relay_domains = relay.example" \
  "virtual_alias_domains = valias.example" "transport_maps = texthash:$T/transport" >"$T/main.cf"
# As root, trivial-rewrite runs chrooted, as in Debian's master.cf.
CHROOT=n
[ "$(id -u)" = 0 ] && CHROOT=y
printf '%s\n' "rewrite   unix  -       -       $CHROOT       -       -       trivial-rewrite" \
  "error     unix  -       -       n       -       -       error" \
  "retry     unix  -       -       n       -       -       error" \
  "discard   unix  -       -       n       -       -       discard" >"$T/master.cf"
BOUNCE=0
if [ -x "$B/bounce" ]; then
  BOUNCE=1
  printf '%s\n' "bounce    unix  -       -       n       -       0       bounce" \
    "defer     unix  -       -       n       -       0       bounce" \
    "trace     unix  -       -       n       -       0       bounce" >>"$T/master.cf"
fi
if ! timeout 30 "$B/postfix" -c "$T" start >"$T/start.log" 2>&1; then
  bad "our instance starts" "$(cat "$T/start.log")" "$(tail -5 "$T/maillog" 2>/dev/null)"
  echo "# $CHECKS checks, $FAILS failed"; exit 1
fi
wait_for 20 test -S "$Q/private/rewrite" || bad "the rewrite socket appears"
probe() { timeout 60 "$B/tr_probe" -q "$Q" -t 20 "$@"; }

# --- rewrite and resolve
same "rewrite" "$(printf '%s\n' user@example.org user@site user@c '""')" \
  "$(printf 'local\t%s\n' user 'site!user' '@a,@b:user@c' '@' | probe rewrite rewrite)"
expected=$(printf '%s\t%s\t%s\t%s\n' local mx.example.org user@mx.example.org 256 \
  smtp example.com user@example.com 4096 relay relay.example user@relay.example 2048 \
  error '5.1.1 User unknown in virtual alias table' user@valias.example 512 \
  smtp '[first.example]' u@special.example 4096 local mx.example.org 'user@[127.0.0.1]' 256 \
  'CHANNEL NOT UPDATED' 'NEXTHOP NOT UPDATED' user@1.2.3.4 4100)
same "resolve" "$expected" "$(printf 'resolve\t\t%s\n' user user@example.com user@relay.example \
  user@valias.example u@special.example 'user@[127.0.0.1]' user@1.2.3.4 | probe resolve rewrite)"
same "verify" "smtp	example.com	user@example.com	4096" \
  "$(printf 'verify\tsender@example.org\tuser@example.com\n' | probe resolve rewrite)"
got=$(printf 'bogus\tuser\n' | probe rewrite rewrite 2>/dev/null)
case $got in ERROR:*) ok "an unknown rule drops the client";; *) bad "an unknown rule drops the client" "$got";; esac
grep -q "postfix/trivial-rewrite\[[0-9]*\]: warning: unknown context: bogus" "$T/maillog" &&
  ok "... with Postfix's warning" || bad "... with Postfix's warning" "$(tail -3 "$T/maillog")"

# --- a changed table restarts trivial-rewrite (and an unchanged one does
# not, also in a chroot jail where the table's path does not resolve)
sleep 11
if grep -q "has changed -- restarting" "$T/maillog"; then
  bad "an unchanged table does not restart trivial-rewrite (chroot=$CHROOT)" "$(grep "has changed" "$T/maillog")"
else
  ok "an unchanged table does not restart trivial-rewrite (chroot=$CHROOT)"
fi
printf '%s\n' 'special.example  smtp:[second.example]' >"$T/transport"
if wait_for 25 grep -q "table texthash:$T/transport has changed -- restarting" "$T/maillog"; then
  ok "a changed transport_maps file restarts trivial-rewrite"
else
  bad "a changed transport_maps file restarts trivial-rewrite" "$(tail -3 "$T/maillog")"
fi
resolved() { [ "$(printf 'resolve\t\tu@special.example\n' | probe resolve rewrite)" = "$1" ]; }
wait_for 10 resolved "smtp	[second.example]	u@special.example	4096" &&
  ok "the new process uses the new table" || bad "the new process uses the new table" \
  "$(printf 'resolve\t\tu@special.example\n' | probe resolve rewrite)"

# --- delivery agents
install -d -m 700 "$Q/probe"
[ "$(id -u)" = 0 ] && chown postfix "$Q/probe"
new_message() {
  local out
  out=$(printf 'Subject: probe\n\nhello\n' | "$B/queue_tool" write "$Q" -q probe -s sender@example.org \
    -r 'a@x.test' -r 'b@y.test') || return 1
  [ "$(id -u)" = 0 ] && chown postfix "${out#* }"
  echo "${out%% *}"
}
marks() { "$B/queue_tool" show "$Q/probe/$1" | grep -E '^(done_)?recipient: ' | tr '\n' ' '; }

id=$(new_message)
same "discard: the reply" "status=0" "$(probe deliver discard probe "$id" "2.7.0 dropped" | head -1)"
same "discard: recipients marked done" "done_recipient: a@x.test done_recipient: b@y.test " "$(marks "$id")"
grep -qE "postfix/discard\[[0-9]+\]: $id: to=<b@y.test>, relay=none, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2.7.0, status=sent \(dropped\)" "$T/maillog" &&
  ok "discard: Postfix's log line" || bad "discard: Postfix's log line" "$(grep "$id" "$T/maillog")"
same "a bad queue name is deferred" "status=-1" "$(probe deliver discard 'bad-name' "$id" x 2>/dev/null | head -1)"
grep -q "postfix/discard\[[0-9]*\]: warning: bad mail queue name: bad-name" "$T/maillog" &&
  ok "... with Postfix's warning" || bad "... with Postfix's warning"
same "a missing queue file is deferred" "status=-1" "$(probe deliver discard probe 0123456789A x 2>/dev/null | head -1)"

if [ $BOUNCE = 1 ]; then
  id=$(new_message)
  same "error: the reply" "status=0" "$(probe deliver error probe "$id" "5.1.1 no such user" | head -1)"
  same "error: recipients marked done" "done_recipient: a@x.test done_recipient: b@y.test " "$(marks "$id")"
  grep -q "postfix/error\[[0-9]*\]: $id: to=<a@x.test>, relay=none, .*dsn=5.1.1, status=bounced (no such user)" "$T/maillog" &&
    ok "error: Postfix's log line" || bad "error: Postfix's log line" "$(grep "$id" "$T/maillog")"
  grep -q "^reason=no such user" "$Q/bounce/$id" 2>/dev/null && ok "error: the bounce log" ||
    bad "error: the bounce log" "$(ls -R "$Q/bounce")"
  id=$(new_message)
  same "retry: the reply" "status=-1" "$(probe deliver retry probe "$id" "try later" | head -1)"
  same "retry: recipients left to do" "recipient: a@x.test recipient: b@y.test " "$(marks "$id")"
  grep -q "postfix/error\[[0-9]*\]: $id: to=<b@y.test>, relay=none, .*dsn=4.0.0, status=deferred (try later)" "$T/maillog" &&
    ok "retry: Postfix's log line" || bad "retry: Postfix's log line" "$(grep "$id" "$T/maillog")"
  f=$(find "$Q/defer" -name "$id" | head -1)
  [ -n "$f" ] && grep -q "^reason=try later" "$f" && ok "retry: the defer log" || bad "retry: the defer log"
else
  echo "# our bounce daemon is not built: error and retry are not driven here"
fi
if grep -E "postfix/(trivial-rewrite|error|discard)\[[0-9]+\]: (fatal|panic)" "$T/maillog"; then
  bad "no fatal errors"
else
  ok "no fatal errors"
fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
