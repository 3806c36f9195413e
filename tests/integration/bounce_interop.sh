#!/usr/bin/env bash
# Our bounce daemon (bounce/) in a real Postfix 3.7 instance, against the
# real bounce daemon in an identical one (postfix-oracle): two instances,
# "real" and "ours", the same main.cf; in "ours" master.cf's bounce, defer
# and trace services run build/bin/bounce.  The same mail goes into both
# (the real sendmail and pickup, the real qmgr, local and error agents, the
# real cleanup taking our notices), and what comes out must be the same:
#  - the notices each sender, postmaster copy and double bounce gets,
#    byte for byte after queue IDs, dates and MIME boundaries are
#    normalized: non-delivery (RET=HDRS, ENVID, NOTIFY), delay warning,
#    expiry (defer flush with recipients marked done), double bounce of a
#    null-sender message, nothing for a double-bounce sender, success
#    (NOTIFY=SUCCESS), sendmail -bv reports, VERP notices, the notice to a
#    list owner (owner- alias);
#  - the defer log of a deferred recipient, byte for byte, and the real
#    postqueue -p shows its reason from our log;
#  - the bounce daemon's log lines ("QUEUEID: sender non-delivery
#    notification: NEWID" and the rest);
#  - the real postconf -b and -t, which run the bounce program of the
#    instance, print the same templates with ours.
# Needs root (the instances run as root and drop to postfix) and the oracle;
# skipped otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
BOUNCE=$(realpath -m "$MTA_BIN/bounce")
[ -x "$BOUNCE" ] || { echo "# skip: $BOUNCE is not built"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# skip: no postfix-oracle"; exit 77; fi
if [ "$(id -u)" != 0 ]; then echo "# skip: a real Postfix instance needs root"; exit 77; fi
T=$(mktemp -d) || exit 1
chmod 755 "$T"  # the daemons run as postfix, file deliveries as nobody
STARTED=""
stop_instances() {
  local who
  for who in $STARTED; do timeout 60 "$ORACLE" run postfix -c "$T/$who" stop >/dev/null 2>&1; done
  STARTED=""
}
trap 'stop_instances; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else
    bad "$1" "$(diff -u --label real --label ours <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -n 60 | sed 's/^/    /')"
  fi
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# skip: postfix-oracle install failed"; exit 77; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
LIB=$("$ORACLE" path)/usr/lib/postfix

# The real daemons, but bounce is ours (master.cf commands are relative to daemon_directory).
mkdir -p "$T/libexec"
ln -s "$LIB"/sbin/* "$T/libexec/"
rm -f "$T/libexec/bounce"
ln -s "$BOUNCE" "$T/libexec/bounce"

SENDERS="s1 s2 s4 s5 s6 s7 pm-bounce pm-2bounce pm-delay deliv"
for who in real ours; do
  I=$T/$who
  if ! timeout 120 "$ORACLE" instance "$I" "$(free_port)" >"$T/$who.setup" 2>&1; then
    bad "the $who instance is set up" "$(tail -5 "$T/$who.setup")"; exit 1
  fi
  mkdir -p "$I/mbox" && chmod 1777 "$I/mbox"
  { echo "postmaster: $I/mbox/postmaster"; echo "root: $I/mbox/postmaster"
    for s in $SENDERS; do echo "$s: $I/mbox/$s"; done
    echo "list: nosuchuser"; echo "owner-list: s7"; } >"$I/aliases"
  pf postalias -c "$I" "hash:$I/aliases"
  pf postconf -c "$I" -e "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$LIB" \
    "local_recipient_maps =" "recipient_delimiter = +" \
    "transport_maps = inline:{ {defer.example=retry:4.4.1 try again later}, {fail.example=error:5.7.1 go away} }" \
    "notify_classes = bounce, 2bounce, delay, resource, software" \
    "bounce_notice_recipient = pm-bounce" "2bounce_notice_recipient = pm-2bounce" \
    "delay_notice_recipient = pm-delay" \
    "delay_warning_time = 2s" "maximal_queue_lifetime = 9s" \
    "minimal_backoff_time = 1s" "maximal_backoff_time = 2s" "queue_run_delay = 1s" >/dev/null
done
pf postconf -c "$T/ours" -e "daemon_directory = $T/libexec" >/dev/null
for who in real ours; do
  if timeout 120 "$ORACLE" run postfix -c "$T/$who" start >"$T/$who.start" 2>&1; then
    STARTED="$STARTED $who"
  else
    bad "the $who instance starts" "$(tail -5 "$T/$who.start")"; exit 1
  fi
done
ok "both instances run (ours with $BOUNCE)"

# The templates, through the real postconf (which runs the instance's bounce -SVn ...).
same "postconf -t shows the same templates" "$(pf postconf -c "$T/real" -t)" "$(pf postconf -c "$T/ours" -t)"
same "postconf -b shows the same expanded templates" "$(pf postconf -c "$T/real" -b 2>"$T/real.b.err")" \
  "$(pf postconf -c "$T/ours" -b 2>"$T/ours.b.err")"
same "with the same warnings about time units" "$(cat "$T/real.b.err")" "$(cat "$T/ours.b.err")"

# send WHO SENDMAIL-ARGS...: a message through the real sendmail of instance WHO.
send() {
  local who=$1; shift
  printf 'Subject: bounce test %s\nFrom: Test Sender <%s>\nTo: whoever@localhost\n\nline one\nline two\n' \
    "$CASE" "$CASE@localhost" | pf sendmail -C "$T/$who" "$@" >/dev/null
}
both() { send real "$@"; send ours "$@"; }
queue_empty() { [ -z "$(find "$T/$1/queue/incoming" "$T/$1/queue/active" "$T/$1/queue/deferred" "$T/$1/queue/maildrop" -type f 2>/dev/null)" ]; }
both_empty() { queue_empty real && queue_empty ours; }
count() { [ -f "$T/$1/mbox/$2" ] && grep -c '^From ' "$T/$1/mbox/$2" || echo 0; }
have() { [ "$(count real "$2")" -ge "$1" ] && [ "$(count ours "$2")" -ge "$1" ]; }

# normalize WHO MBOX [sorted]: the messages of an mbox with queue IDs (numbered in order of
# appearance in each message), dates, boundary times and the instance directory replaced;
# "sorted" compares the set of messages (local delivers notices in parallel, in any order).
normalize() {
  local who=$1 file=$T/$1/mbox/$2
  [ -f "$file" ] || { echo "(no $2)"; return; }
  python3 - "$file" "$T/$who/maillog" "$T/$who" "${3:-}" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
ids = set(re.findall(r"postfix/[\w-]+\[\d+\]: ([0-9A-Za-z]{6,}): ", open(sys.argv[2], errors="replace").read()))
def norm(msg):
    msg = msg.replace(sys.argv[3], "@INST@")
    msg = re.sub(r"^From (\S+)  .*$", r"From \1  @DATE@", msg, flags=re.M)
    msg = re.sub(r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4} \([A-Za-z0-9+-]+\)", "@DATE@", msg)
    msg = re.sub(r"<\d{14}\.", "<@STAMP@.", msg)
    msg = re.sub(r"\.\d{9,11}/", ".@TIME@/", msg)
    seen = {}
    def rename(m):
        tok = m.group(0)
        return seen.setdefault(tok, "@Q%d@" % (len(seen) + 1)) if tok in ids else tok
    return re.sub(r"[0-9A-Za-z]{6,}", rename, msg)
msgs = [norm(m) for m in re.split(r"(?m)^(?=From \S+  )", text) if m]
if sys.argv[4] == "sorted":
    msgs.sort()
sys.stdout.write("".join(msgs))
PY
}
compare_mbox() {  # NAME MBOX [sorted]
  same "$1" "$(normalize real "$2" "${3:-}")" "$(normalize ours "$2" "${3:-}")"
}

# 1. Non-delivery, delay warning and expiry of one message: an unknown local user and an
#    error transport bounce at once; a retry transport defers, warns after
#    delay_warning_time and expires after maximal_queue_lifetime.
CASE=s1
# (Two recipients of one error transport request, so that the order in the log is fixed;
# local delivers one recipient per request.)
both -f s1@localhost -N failure,delay -R hdrs -V env-1 x@fail.example z@fail.example y@defer.example
deferlog() { find "$T/$1/queue/defer" -type f 2>/dev/null | head -n 1; }
two_logs() { [ -n "$(deferlog real)" ] && [ -n "$(deferlog ours)" ]; }
if wait_for 20 two_logs; then
  RL=$(deferlog real) OL=$(deferlog ours)
  # (The offsets may differ by a byte or two: queue IDs differ in length.)
  same "the defer log is the real one's (offset aside)" "$(sed 's/^offset=.*/offset=N/' "$RL")" \
    "$(sed 's/^offset=.*/offset=N/' "$OL")"
  OID=${OL##*/}
  queue_file() { QF=$(find "$T/ours/queue/active" "$T/ours/queue/deferred" -name "$OID" -type f | head -n 1); [ -n "$QF" ]; }
  wait_for 5 queue_file
  OFF=$(sed -n 's/^offset=//p' "$OL")
  same "its offset is the recipient's R record in the queue file" "R y@defer.example" \
    "$(python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); t = f.read(2)
print(chr(t[0]), f.read(t[1]).decode())' "$QF" "$OFF" 2>&1)"
  same "at the hashed path" "queue/defer/${OID:0:1}/$OID" "${OL#$T/ours/}"
else
  bad "both instances wrote a defer log" "$(find "$T/real/queue/defer" "$T/ours/queue/defer" -type f)"
fi
shows_reason() { timeout 10 "$ORACLE" run postqueue -c "$T/ours" -p 2>/dev/null | grep -q '(try again later)'; }
if wait_for 15 shows_reason; then
  ok "the real postqueue -p shows the reason from our defer log"
else
  bad "the real postqueue -p shows the reason from our defer log" "$(pf postqueue -c "$T/ours" -p)"
fi
if wait_for 40 both_empty && wait_for 10 have 3 s1; then
  ok "the message expired and left both queues"
else
  bad "the message expired and left both queues" "$(pf postqueue -c "$T/ours" -p)" "$(grep -E 'bounce|warning' "$T/ours/maillog" | tail -5)"
fi
compare_mbox "non-delivery, delay and expiry notices to the sender" s1
grep -q "status=expired, returned to sender" "$T/ours/maillog" && ok "ours expired too" || bad "ours expired too"

# 2. A null-sender message to an unknown local user: a double bounce to 2bounce_notice_recipient.
CASE=s2
both -f '<>' nosuchuser@localhost
wait_for 20 both_empty && wait_for 10 have 1 pm-2bounce || bad "double bounces arrive" "$(tail -3 "$T/ours/maillog")"
compare_mbox "the double bounce" pm-2bounce

# 3. A double-bounce-sender message that bounces: dropped, never a triple bounce.
CASE=s3
both -f "double-bounce@$(pf postconf -c "$T/real" -h myhostname)" nosuchuser@localhost
wait_for 20 both_empty
if wait_for 10 grep -q "undeliverable postmaster notification discarded" "$T/ours/maillog"; then
  ok "a double bounce that bounces is discarded"
else
  bad "a double bounce that bounces is discarded" "$(grep bounce "$T/ours/maillog" | tail -3)"
fi

# 4. NOTIFY=SUCCESS: a delivery report from the trace log.
CASE=s4
both -f s4@localhost -N success deliv@localhost
wait_for 20 both_empty && wait_for 10 have 1 s4 || bad "success reports arrive" "$(tail -3 "$T/ours/maillog")"
compare_mbox "the success report" s4

# 5. sendmail -bv: the verify report.
CASE=s5
both -f s5@localhost -bv x@fail.example z@fail.example
wait_for 20 both_empty && wait_for 10 have 1 s5 || bad "verify reports arrive" "$(tail -3 "$T/ours/maillog")"
compare_mbox "the sendmail -bv report" s5

# 6. VERP: one notice per recipient, to sender+recipient=domain.
CASE=s6
both -f s6@localhost -XV x@fail.example z@fail.example
wait_for 20 both_empty && wait_for 10 have 2 s6 || bad "VERP notices arrive" "$(tail -3 "$T/ours/maillog")"
compare_mbox "the VERP notices" s6 sorted

# 7. A list with an owner- alias: the bounce goes to the list owner.
CASE=s7
both -f s7sender@example.com list@localhost
wait_for 20 both_empty && wait_for 10 have 1 s7 || bad "list owner notices arrive" "$(tail -3 "$T/ours/maillog")"
compare_mbox "the notice to the list owner" s7

wait_for 20 both_empty
sleep 1
compare_mbox "the postmaster copies of bounces" pm-bounce sorted
compare_mbox "the postmaster copies of delay warnings" pm-delay
compare_mbox "the deliveries (untouched by bounce)" deliv

# The bounce daemon's log lines, IDs and pids aside.
bounce_log() {
  grep -E "postfix/bounce\[" "$T/$1/maillog" | sed -E 's/^.*postfix\/bounce\[[0-9]+\]: //' |
    sed -E 's/[0-9A-F]{6,}/@ID@/g' | sort
}
same "the bounce daemon logs the same lines" "$(bounce_log real)" "$(bounce_log ours)"
if grep -E "postfix/bounce\[[0-9]+\]: (fatal|panic|error)" "$T/ours/maillog"; then bad "no errors from our bounce"; else ok "no errors from our bounce"; fi

stop_instances
echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
