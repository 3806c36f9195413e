#!/usr/bin/env bash
# qmgr keeps a delivery agent's connection for the transport's next
# delivery (Postfix's qmgr connects anew each time), on a real instance of
# ours, as root.  The agent takes requests one after another; when it
# leaves (max_use, a reload, an agent of Postfix's kind that serves one
# request per connection), qmgr sends the request again on a new connection
# and nothing is deferred or lost:
#   - deliveries to our discard reuse a connection (qmgr -v says so);
#   - our discard with max_use = 1, and Postfix's own discard (from the
#     oracle, when present), deliver every message with none deferred;
#   - postfix reload in the middle of a stream of mail defers nothing.
# Skipped (77) unless root and every program is built.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix sendmail postdrop pickup cleanup qmgr trivial-rewrite local bounce error discard \
  postqueue postconf postalias postmap; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built yet"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"
ORACLE_DIR=${ORACLE_DIR:-/opt/postfix-oracle}
instance_dir "$B"
printf '%s\n' "keep.example discard:" "once.example oncediscard:" "pf.example pfdiscard:" \
  "reload.example discard:" > "$T/transport"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
# qmgr -v: its "reusing connection" lines.
sed -i 's|^\(qmgr .*\)qmgr$|\1qmgr -v|' "$T/master.cf"
printf '%s\n' "oncediscard unix -      -       n       -       -       discard" "  -o max_use=1" >> "$T/master.cf"
HAVE_ORACLE=0
oracle_agent "$ORACLE_DIR" discard pfdiscard "$T/master.cf" && HAVE_ORACLE=1
instance_config "$T" "$B" \
  "default_transport = error" "relay_transport = error" "transport_maps = hash:$T/transport" \
  "minimal_backoff_time = 300s" "maximal_backoff_time = 600s" "queue_run_delay = 300s"
"$B/postconf" -c "$T" -MX smtp/inet
grep -q '^qmgr .*qmgr -v$' "$T/master.cf" || { bad "qmgr -v in master.cf" "$(grep '^qmgr' "$T/master.cf")"; exit 1; }
instance_start "$B"
send() { "$B/sendmail" -C "$T/main.cf" "$@"; }
sent_to() { grep -cE "to=<[^>]*@$1>, relay=none, .*status=sent" "$T/maillog"; }
burst() {  # DOMAIN COUNT
  local i
  for i in $(seq "$2"); do printf 'Subject: %s %s\n\nbody\n' "$1" "$i" | send -f root "u$i@$1"; done
}
all_sent() { [ "$(sent_to "$1")" -ge "$2" ]; }
queue_empty() { "$B/postqueue" -p | grep -q "Mail queue is empty"; }
delivered() {  # NAME DOMAIN COUNT
  if wait_for 60 all_sent "$2" "$3"; then ok "$1"; else
    bad "$1" "sent: $(sent_to "$2") of $3" "$(tail -5 "$T/maillog")"; fi
}

# 1. Our discard: later deliveries go over a connection kept from an earlier one.
burst keep.example 20
delivered "20 messages to our discard are delivered" keep.example 20
n=$(grep -c "qmgr\[[0-9]*\]: [0-9A-F]*: reusing connection to private/discard" "$T/maillog")
[ "$n" -ge 1 ] && ok "qmgr reuses the discard agent's connection ($n of 20)" ||
  bad "qmgr reuses the discard agent's connection" "no 'reusing connection' line"

# 2. An agent that leaves after each request (max_use = 1): a request that
# finds the kept connection gone is sent again on a new one.
burst once.example 20
delivered "an agent with max_use = 1: all 20 delivered" once.example 20

# 3. Postfix's discard serves one request per connection.
# Its log lines go to syslog, not to our maillog: qmgr's "removed" counts.
removed() { grep -c "qmgr\[[0-9]*\]: [0-9A-F]*: removed" "$T/maillog"; }
removed_at_least() { [ "$(removed)" -ge "$1" ]; }
if [ $HAVE_ORACLE = 1 ]; then
  wait_for 30 queue_empty || bad "the queue empties before Postfix's discard" "$("$B/postqueue" -p | tail -3)"
  before=$(removed)
  burst pf.example 20
  if wait_for 60 removed_at_least $((before + 20)); then ok "Postfix's discard under our qmgr: all 20 delivered"; else
    bad "Postfix's discard under our qmgr: all 20 delivered" "removed: $(($(removed) - before)) of 20" "$(tail -5 "$T/maillog")"; fi
  # After the pause is logged (qmgr -v), no connection of it is reused.
  after=$(sed -n '/transport pfdiscard: agents take one request per connection/,$p' "$T/maillog" |
    grep -c "reusing connection to private/pfdiscard")
  if grep -q "transport pfdiscard: agents take one request per connection" "$T/maillog" && [ "$after" = 0 ]; then
    ok "qmgr stops keeping its connections ($(grep -c "reusing connection to private/pfdiscard" "$T/maillog") reuse attempts)"
  else
    bad "qmgr stops keeping its connections" "reuse attempts after the pause: $after"
  fi
else
  echo "# skip Postfix's discard: no oracle at $ORACLE_DIR"
fi

# 4. Reloads in the middle: the agents of the kept connections (the old
# generation) leave; the mail goes on to new ones.
(burst reload.example 40) &
sender=$!
sleep 0.5
"$B/postfix" -c "$T" reload >/dev/null
sleep 0.5
"$B/postfix" -c "$T" reload >/dev/null
wait $sender
delivered "reloads in the middle of a stream: all 40 delivered" reload.example 40

# Nothing was deferred, and no agent connection failed visibly.
d=$(grep -E "status=deferred|malformed response|transport unavailable|transport [a-z]+ failure" "$T/maillog")
[ -z "$d" ] && ok "nothing deferred, no failed agent connection" || bad "nothing deferred, no failed agent connection" "$d"
wait_for 30 queue_empty && ok "the queue is empty" || bad "the queue is empty" "$("$B/postqueue" -p | tail -3)"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
