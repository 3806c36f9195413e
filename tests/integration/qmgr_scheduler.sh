#!/usr/bin/env bash
# qmgr's scheduler on a real instance of ours, as root: a pipe transport
# ("slowpipe", our pipe agent) runs a script that records when each delivery
# starts and ends per destination, so the test sees what qmgr does:
#   - slow start: a destination starts at initial_destination_concurrency
#     and grows (destination_concurrency_feedback_debug log lines too), never
#     beyond its concurrency limit;
#   - round robin: a destination with one message is served while another
#     has thirty waiting;
#   - a dead destination (the real Postfix smtp agent, from the oracle,
#     refused by a closed port): after the failed cohort limit its other
#     mail is deferred by the retry service with Postfix's "delivery
#     temporarily suspended: connect to ...: Connection refused";
#   - defer_transports holds mail until postqueue -f, for that flush only;
#   - a destination that always defers expires with a short
#     maximal_queue_lifetime: "status=expired, returned to sender" and a
#     bounce reaches the sender;
#   - NOTIFY=SUCCESS: the trace service sends a success DSN ("relayed":
#     pipe without flags=X);
#   - an agent that takes 9 s to start holds up only its own transport's
#     mail: qmgr waits for it in its event loop, gives up after
#     qmgr_daemon_timeout (5 s here) with a warning, and defers the mail
#     ("mail transport unavailable").
# Skipped (77) unless root and every program is built.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix sendmail postdrop pickup cleanup qmgr trivial-rewrite local bounce error discard \
  postqueue postconf postalias postmap pipe; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built yet"; exit 77; }
done
ORACLE_DIR=${ORACLE_DIR:-/opt/postfix-oracle}
T=$(mktemp -d) || exit 1
chmod 755 "$T"
U1=mtaq$$a
cleanup() {
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  if [ -n "${QMGR_TEST_KEEP:-}" ]; then echo "# kept $T"; userdel "$U1" >/dev/null 2>&1; return; fi
  userdel "$U1" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"
eventually() { local i; for i in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
check() { local name=$1; shift; if eventually "$@"; then ok "$name"; else bad "$name" "$(tail -5 "$T/maillog")"; fi; }

mkdir -p "$T/queue" "$T/home" "$T/spool" "$T/rec"
chmod 1777 "$T/spool" "$T/rec"
useradd -M -d "$T/home/$U1" -s /bin/sh "$U1"; mkdir -p "$T/home/$U1"; chown "$U1:" "$T/home/$U1"
printf '%s\n' "postmaster: root" > "$T/aliases"
# The agent: one line when a delivery starts and one when it ends.
cat > "$T/agent.sh" <<EOF
#!/bin/sh
d=\$1
echo "start \$d \$(date +%s.%N)" >> $T/rec/events
cat > /dev/null
case \$d in
  big.example) sleep 0.5 ;;
  fail.example) echo "try again later"; exit 75 ;;
esac
echo "end \$d \$(date +%s.%N)" >> $T/rec/events
exit 0
EOF
chmod 755 "$T/agent.sh"
printf '%s\n' "big.example slowpipe:big.example" "small.example slowpipe:small.example" \
  "fail.example slowpipe:fail.example" "held.example heldpipe:held.example" \
  "dead.example deadsmtp:[127.0.0.1]:1" "ourdead.example oursmtp:[127.0.0.1]:1" \
  "slowstart.example slowstart:" "quick.example discard:" > "$T/transport"
# A delivery agent that takes 9 s to start (then our discard).
cat > "$T/slowagent" <<EOF
#!/bin/sh
date +%s.%N >> $T/rec/slowagent
sleep 9
exec $B/discard "\$@"
EOF
chmod 755 "$T/slowagent"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
cat >> "$T/master.cf" <<EOF
slowpipe  unix  -       n       n       -       10      pipe
  flags= user=nobody argv=/bin/sh $T/agent.sh \${nexthop}
heldpipe  unix  -       n       n       -       10      pipe
  flags= user=nobody argv=/bin/sh $T/agent.sh \${nexthop}
oursmtp   unix  -       -       n       -       -       smtp
slowstart unix  -       -       n       -       -       $T/slowagent
EOF
HAVE_ORACLE=0
oracle_agent "$ORACLE_DIR" smtp deadsmtp "$T/master.cf" && HAVE_ORACLE=1
instance_config "$T" "$B" \
  "home_mailbox = Maildir/" "mail_spool_directory = $T/spool" "default_transport = error" \
  "relay_transport = error" "transport_maps = hash:$T/transport" \
  "minimal_backoff_time = 1s" "maximal_backoff_time = 2s" "queue_run_delay = 1s" \
  "maximal_queue_lifetime = 4s" "bounce_queue_lifetime = 4s" \
  "initial_destination_concurrency = 2" "slowpipe_destination_concurrency_limit = 5" \
  "slowpipe_destination_concurrency_positive_feedback = 1/concurrency" \
  "slowpipe_destination_recipient_limit = 10" "heldpipe_destination_recipient_limit = 10" \
  "deadsmtp_initial_destination_concurrency = 1" "deadsmtp_destination_recipient_limit = 2" \
  "destination_concurrency_feedback_debug = yes" "defer_transports = heldpipe" \
  "slowpipe_delivery_slot_cost = 3" "qmgr_daemon_timeout = 5s" \
  "oursmtp_initial_destination_concurrency = 1" "oursmtp_destination_recipient_limit = 2"
"$B/postconf" -c "$T" -MX smtp/inet
instance_start "$B"
send() { "$B/sendmail" -C "$T/main.cf" "$@"; }
count() { awk -v a="$1" -v d="$2" '$1 == a && $2 == d { n++ } END { print n + 0 }' "$T/rec/events" 2>/dev/null; }

# The preemptive scheduler's parameters are not implemented: named in a warning.
check "an ignored delivery slot parameter is named in a warning" \
  grep -q 'qmgr\[[0-9]*\]: warning: slowpipe_delivery_slot_cost is not implemented' "$T/maillog"

# 1. Slow start and round robin: thirty messages for big.example, then one
# for small.example.
for i in $(seq 30); do printf 'Subject: big %s\n\nbig\n' "$i" | send -f "$U1@mail.test.example" "u$i@big.example"; done
check "the big destination starts" sh -c "[ \$(grep -c '^start big.example' '$T/rec/events') -ge 1 ]"
printf 'Subject: small\n\nsmall\n' | send -f "$U1@mail.test.example" "one@small.example"
check "the small destination is delivered" grep -q '^end small.example' "$T/rec/events"
big_done_before=$(awk '/^end big.example/ {n++} /^end small.example/ {print n+0; exit}' "$T/rec/events")
if [ "${big_done_before:-99}" -le 20 ]; then
  ok "round robin: one message is not stuck behind thirty ($big_done_before of 30 big deliveries first)"
else
  bad "round robin" "big deliveries before small: $big_done_before"
fi
check "all thirty big messages are delivered" sh -c "[ \$(grep -c '^end big.example' '$T/rec/events') -eq 30 ]"
# Concurrency over time for big.example: the first deliveries at the
# initial concurrency, then more, never beyond the limit.
conc=$(sort -k3 -n "$T/rec/events" | awk '$2 == "big.example" { c += ($1 == "start") ? 1 : -1; if (c > max) max = c; if ($1 == "start") { n++; if (n <= 2) first = max } }
  END { print first + 0, max + 0 }')
first=${conc% *} max=${conc#* }
[ "$first" -le 2 ] && ok "slow start: the first deliveries run at initial_destination_concurrency ($first)" ||
  bad "slow start begins at 2" "first=$first"
[ "$max" -gt 2 ] && [ "$max" -le 5 ] && ok "slow start: concurrency grows up to the limit (max $max of 5)" ||
  bad "concurrency grows within the limit" "max=$max"
grep -qE "postfix/qmgr\[[0-9]+\]: qmgr_queue_unthrottle: queue big.example: limit 5 window [345] success [0-9.e-]+ failure 0 fail_cohorts 0" "$T/maillog" &&
  ok "destination_concurrency_feedback_debug logs the window as Postfix" ||
  bad "feedback debug lines" "$(grep -m2 qmgr_queue "$T/maillog")"

# 2. A dead destination: the real smtp agent is refused; after the first
# failed cohort (concurrency 1) the rest goes to the retry service.
if [ $HAVE_ORACLE = 1 ]; then
  printf 'Subject: dead\n\ndead\n' | send -f "$U1@mail.test.example" a@dead.example b@dead.example \
    c@dead.example d@dead.example e@dead.example f@dead.example
  check "the dead destination's other mail is deferred by the retry service" grep -qE \
    "postfix/error\[[0-9]+\]: [0-9A-F]+: to=<[cef]@dead.example>, relay=none, .*dsn=4.4.1, status=deferred \(delivery temporarily suspended: connect to 127.0.0.1\[127.0.0.1\]:1: Connection refused\)" "$T/maillog"
  grep -q "qmgr_queue_throttle: queue \[127.0.0.1\]:1: limit 20 window 0 success 0 failure 0 fail_cohorts 1" "$T/maillog" &&
    ok "the destination is marked dead (window 0, one failed cohort)" ||
    bad "dead destination window" "$(grep qmgr_queue_throttle "$T/maillog" | head -3)"
  printf 'Subject: small2\n\nsmall\n' | send -f "$U1@mail.test.example" "two@small.example"
  check "other destinations still flow" sh -c "[ \$(grep -c '^end small.example' '$T/rec/events') -ge 2 ]"
  # (The real smtp logs to syslog, not to our maillog.)  The message
  # expires: its bounce has the agent's reason for the recipients tried and
  # the suspension for the others, as Postfix's.
  dead_bounce() { grep -l 'Subject: dead' "$T/home/$U1/Maildir/new/"* 2>/dev/null | xargs grep -l 'Undelivered Mail Returned'; }
  check "the dead destination's mail expires and bounces" dead_bounce
  f=$(dead_bounce | head -1)
  [ -n "$f" ] && grep -q '^<a@dead.example>: connect to 127.0.0.1\[127.0.0.1\]:1: Connection refused' "$f" &&
    grep -q '^<f@dead.example>: delivery temporarily suspended: connect to' "$f" &&
    ok "the bounce gives the agent's reason and the suspension as Postfix" ||
    bad "dead destination bounce" "$(grep -A1 'dead.example>:' "$f" 2>/dev/null | head -8)"
else
  echo "# skip: no Postfix oracle for the dead destination test"
fi

# 2b. The same with our smtp: its hop status (the connection failed) tells
# qmgr that the destination is at fault; no oracle needed.
printf 'Subject: ourdead\n\ndead\n' | send -f "$U1@mail.test.example" a@ourdead.example b@ourdead.example \
  c@ourdead.example d@ourdead.example e@ourdead.example f@ourdead.example
check "our smtp: the first delivery fails to connect" grep -qE \
  "postfix/smtp\[[0-9]+\]: [0-9A-F]+: to=<[a-f]@ourdead.example>, relay=none, .*status=deferred \(connect to 127.0.0.1\[127.0.0.1\]:1: Connection refused\)" "$T/maillog"
check "our smtp: the destination's other mail is deferred by the retry service" grep -qE \
  "postfix/error\[[0-9]+\]: [0-9A-F]+: to=<[a-f]@ourdead.example>, relay=none, .*dsn=4.4.1, status=deferred \(delivery temporarily suspended: connect to 127.0.0.1\[127.0.0.1\]:1: Connection refused\)" "$T/maillog"
# Before the first suspension: the one delivery of the first cohort (two recipients).
n=$(awk '/@ourdead.example>.*delivery temporarily suspended/ { exit } /postfix\/smtp\[[0-9]+\]: .*to=<[a-f]@ourdead.example>/ { n++ } END { print n + 0 }' "$T/maillog")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "our smtp: one failed cohort, not one attempt per recipient ($n smtp lines for 6 recipients)" ||
  bad "our smtp tried the dead destination too often" "$n smtp lines"

# 3. defer_transports: held until a flush, and only for that flush.
printf 'Subject: held\n\nheld\n' | send -f "$U1@mail.test.example" "h1@held.example"
check "defer_transports holds the mail" grep -qE "to=<h1@held.example>, relay=none, .*status=deferred \(deferred transport\)" "$T/maillog"
sleep 1.5
[ "$(count start held.example)" = 0 ] && ok "nothing is delivered through a deferred transport" || bad "held transport used"
"$B/postqueue" -c "$T" -f
check "postqueue -f delivers through the deferred transport" grep -q '^end held.example' "$T/rec/events"
printf 'Subject: held2\n\nheld\n' | send -f "$U1@mail.test.example" "h2@held.example"
check "after the flush, defer_transports holds new mail again" grep -qE "to=<h2@held.example>, relay=none, .*status=deferred \(deferred transport\)" "$T/maillog"
sleep 2.5
[ "$(count start held.example)" = 1 ] && ok "the flush lifted defer_transports only once" || bad "held transport used after the flush" "$(count start held.example)"

# 4. Expiry: always deferred, bounced after maximal_queue_lifetime.
printf 'Subject: fail\n\nfail\n' | send -f "$U1@mail.test.example" "x@fail.example"
check "the failing destination is deferred" grep -qE "to=<x@fail.example>, relay=slowpipe, .*status=deferred" "$T/maillog"
check "the message expires as Postfix logs it" grep -qE \
  "postfix/qmgr\[[0-9]+\]: [0-9A-F]+: from=<$U1@mail.test.example>, status=expired, returned to sender" "$T/maillog"
check "the non-delivery notice reaches the sender" sh -c "grep -rl 'x@fail.example' '$T/home/$U1/Maildir/new' | xargs grep -l 'Undelivered Mail Returned to Sender'"

# 5. NOTIFY=SUCCESS: a success DSN from the trace log.
printf 'Subject: dsn\n\ndsn\n' | send -N success -f "$U1@mail.test.example" "s@small.example"
check "the success notice is sent" grep -qE "postfix/bounce\[[0-9]+\]: [0-9A-F]+: sender delivery status notification: [0-9A-F]+" "$T/maillog"
# pipe without flags=X reports "relayed", as Postfix's pipe.
check "the success DSN reaches the sender" sh -c "grep -rl 'Successful Mail Delivery Report' '$T/home/$U1/Maildir/new' | xargs grep -l 'Action: relayed'"
f=$(grep -rl 'Successful Mail Delivery Report' "$T/home/$U1/Maildir/new" 2>/dev/null | head -1)
[ -n "$f" ] && grep -q "Final-Recipient: rfc822; s@small.example" "$f" && ok "the DSN names the recipient" ||
  bad "Final-Recipient" "$(grep -i recipient "$f" 2>/dev/null | head -3)"
[ ! -e "$T/queue/trace" ] || [ -z "$(ls -A "$T/queue/trace")" ] && ok "the trace log is gone" || bad "trace log left"

# 6. sendmail -v: one delivery report, not one more at each later attempt
# of the deferred recipient (Postfix kills the trace_flags record once the
# report is out).
printf 'Subject: verbose\n\nv\n' | send -v -f "$U1@mail.test.example" "v1@small.example" "v2@fail.example"
reports() { grep -l 'Subject: verbose' "$T/home/$U1/Maildir/new/"* 2>/dev/null | xargs -r grep -l '^Subject: Mail Delivery Status Report' | wc -l; }
check "sendmail -v: the delivery report reaches the sender" sh -c "[ \$(grep -l 'Subject: verbose' '$T/home/$U1/Maildir/new/'* 2>/dev/null | xargs -r grep -l '^Subject: Mail Delivery Status Report' | wc -l) -ge 1 ]"
check "the deferred recipient of the -v message expires and bounces" sh -c \
  "grep -l 'Subject: verbose' '$T/home/$U1/Maildir/new/'* 2>/dev/null | xargs -r grep -l 'Undelivered Mail Returned'"
n=$(reports)
[ "$n" = 1 ] && ok "one delivery report for the -v message, whatever the number of attempts" ||
  bad "one delivery report for sendmail -v" "$n reports"

# 7. While qmgr waits for a new slowstart agent to announce itself, other
# mail goes on: the message for quick.example, sent once the slow agent has
# started, is delivered before qmgr gives up on the slow agent (a qmgr that
# waited in a blocking read would deliver it only after the timeout).
printf 'Subject: slow\n\nx\n' | send -f "$U1@mail.test.example" a@slowstart.example
eventually test -s "$T/rec/slowagent"
sleep 0.3
printf 'Subject: quick\n\nx\n' | send -f "$U1@mail.test.example" b@quick.example
for _ in $(seq 30); do grep -q 'to=<b@quick.example>.*status=sent' "$T/maillog" && break; sleep 0.2; done
quick_at=$(grep -n 'to=<b@quick.example>.*status=sent' "$T/maillog" | head -1 | cut -d: -f1)
gaveup_at=$(grep -n 'warning: connect to transport private/slowstart' "$T/maillog" | head -1 | cut -d: -f1)
if [ -n "$quick_at" ] && { [ -z "$gaveup_at" ] || [ "$quick_at" -lt "$gaveup_at" ]; }; then
  ok "an agent slow to start does not hold up another transport's mail"
else
  bad "an agent slow to start does not hold up another transport's mail" "$(grep -E 'quick.example|slowstart.example' "$T/maillog" | tail -4)"
fi
check "qmgr gives up waiting after qmgr_daemon_timeout, with a warning" grep -q \
  'qmgr\[[0-9]*\]: warning: connect to transport private/slowstart: timeout on private/slowstart socket while reading input attribute name' "$T/maillog"
check "and defers that agent's mail: mail transport unavailable" grep -q \
  'to=<a@slowstart.example>, relay=none, .*dsn=4.3.0, status=deferred (mail transport unavailable)' "$T/maillog"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
