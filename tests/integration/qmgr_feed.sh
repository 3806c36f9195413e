#!/usr/bin/env bash
# qmgr feeds a full incoming/ into active/ a few files at a time and starts
# deliveries in between, as Postfix's qmgr does (one file per pass of its
# event loop): the first delivery does not wait until every file is in
# memory.  On a real instance of ours, as root, with mail piled up in
# incoming/ while master.cf has no qmgr, then qmgr added and master reloaded:
#   - with 600 messages waiting, a delivery is logged before the last
#     message is activated ("(queue active)"); the old qmgr activated all of
#     them first;
#   - with qmgr_message_active_limit = 7, a scan stops when active/ is full
#     and goes on when deliveries free room: all 60 are delivered;
#   - mail that comes while a scan is in progress is delivered too (the scan
#     asked for then runs when the first ends);
#   - nothing is deferred, the queue ends empty.
# Skipped (77) unless root and every program is built.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix sendmail postdrop pickup cleanup qmgr trivial-rewrite discard postqueue postconf \
  postalias postmap; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built yet"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"
instance_dir "$B"
printf '%s\n' "feed.example discard:" > "$T/transport"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
instance_config "$T" "$B" \
  "default_transport = error" "relay_transport = error" "transport_maps = hash:$T/transport" \
  "minimal_backoff_time = 300s" "maximal_backoff_time = 600s" "queue_run_delay = 300s"
"$B/postconf" -c "$T" -MX smtp/inet
cp "$T/master.cf" "$T/master.cf.full"
"$B/postconf" -c "$T" -MX qmgr/unix
cp "$T/master.cf" "$T/master.cf.noqmgr"
instance_start "$B" "postfix start (no qmgr)"

# submit FIRST LAST: messages FIRST..LAST to uN@feed.example, four sendmails at a time.
submit() {
  seq "$1" "$2" | xargs -P 4 -I{} sh -c \
    "printf 'Subject: feed {}\n\nbody\n' | '$B/sendmail' -C '$T/main.cf' -f root 'u{}@feed.example'"
}
ready() { find "$T/queue/incoming" -type f -perm -u+x | wc -l; }
ready_at_least() { [ "$(ready)" -ge "$1" ]; }
# Distinct recipients delivered (a duplicate must not make up for a loss).
sent() { grep -oE "to=<u[0-9]+@feed.example>, relay=none, .*status=sent" "$T/maillog" | cut -d, -f1 | sort -u | wc -l; }
dups() { grep -oE "to=<u[0-9]+@feed.example>, relay=none, .*status=sent" "$T/maillog" | cut -d, -f1 | sort | uniq -d; }
sent_at_least() { [ "$(sent)" -ge "$1" ]; }
qmgr_on() {  # yes|no: master.cf with or without qmgr, and reload
  cp "$T/master.cf.$([ "$1" = yes ] && echo full || echo noqmgr)" "$T/master.cf"
  "$B/postfix" -c "$T" reload >/dev/null 2>&1
}
qmgr_gone() { ! pgrep -f "qmgr -n qmgr .*" -P "$(head -1 "$T/queue/pid/master.pid" | tr -d ' ')" >/dev/null; }
fill() {  # NAME FIRST LAST
  submit "$2" "$3"
  local n=$(($3 - $2 + 1))
  if wait_for 120 ready_at_least "$n"; then ok "$1: $n messages wait in incoming/"; else
    bad "$1: $n messages wait in incoming/" "ready: $(ready)" "$(tail -5 "$T/maillog")"; fi
}

# 1. 600 messages: deliveries start while the rest is still being fed.
fill "full incoming/" 1 600
mark=$(wc -l <"$T/maillog")
qmgr_on yes
if wait_for 120 sent_at_least 600; then ok "all 600 are delivered"; else
  bad "all 600 are delivered" "sent: $(sent)" "$(tail -5 "$T/maillog")"; fi
log=$(tail -n +"$((mark + 1))" "$T/maillog")
first_sent=$(grep -nE "status=sent" <<<"$log" | head -1 | cut -d: -f1)
last_active=$(grep -nE "qmgr\[[0-9]+\]: [0-9A-F]+: from=<.*\(queue active\)" <<<"$log" | tail -1 | cut -d: -f1)
later=$(tail -n +"${first_sent:-1}" <<<"$log" | grep -cE "\(queue active\)")
if [ -n "$first_sent" ] && [ -n "$last_active" ] && [ "$first_sent" -lt "$last_active" ]; then
  ok "a delivery is logged before the last activation ($later activations after it)"
else
  bad "a delivery is logged before the last activation" "first status=sent at line ${first_sent:-none}," \
    "last (queue active) at line ${last_active:-none}"
fi

# 2. A small active queue: scans stop when it is full and go on as
# deliveries free room; mail that comes meanwhile is delivered as well.
"$B/postconf" -c "$T" -e "qmgr_message_active_limit = 7"
qmgr_on no
wait_for 30 qmgr_gone || bad "qmgr leaves after a reload without it"
fill "active limit 7" 601 660
qmgr_on yes
submit 661 680
if wait_for 120 sent_at_least 680; then ok "active limit 7: all 80 are delivered"; else
  bad "active limit 7: all 80 are delivered" "sent: $(sent) of 680" "$(tail -5 "$T/maillog")"; fi
d=$(dups)
[ -z "$d" ] && ok "no message is delivered twice" || bad "no message is delivered twice" "$d"

d=$(grep -E "status=deferred|warning: [0-9A-F]+: " "$T/maillog")
[ -z "$d" ] && ok "nothing deferred, no warning about a queue file" ||
  bad "nothing deferred, no warning about a queue file" "$d"
queue_empty() { "$B/postqueue" -p | grep -q "Mail queue is empty"; }
wait_for 30 queue_empty && ok "the queue is empty" || bad "the queue is empty" "$("$B/postqueue" -p | tail -3)"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
