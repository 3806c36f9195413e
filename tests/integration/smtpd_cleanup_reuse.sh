#!/usr/bin/env bash
# smtpd keeps its connection to cleanup after a message and asks cleanup on
# it for the next one (ours only: {request=next_message}); Postfix's smtpd
# connects anew for every message.  On a real instance of ours, as root,
# with Python's smtplib as the client:
#   - messages in one session and in sessions one after another reuse a
#     connection (smtpd -v says so), and each gets its own queue ID;
#   - cleanup with max_use = 1 closes after every message: smtpd finds the
#     kept connection gone and connects anew, and nothing is lost;
#   - a message that cleanup rejects (header_checks REJECT) leaves the
#     connection fit for the next message;
#   - a client that goes away in the middle of DATA leaves no queue file
#     and the next message goes through;
#   - postfix reload while connections are kept loses nothing;
#   - every accepted message is delivered, nothing deferred, no warning.
# Skipped (77) unless root and every program is built.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix smtpd cleanup qmgr trivial-rewrite discard postqueue postconf postalias postmap; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built yet"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"
instance_dir "$B"
printf '%s\n' "reuse.example discard:" > "$T/transport"
printf '%s\n' "/^Subject: reject me/ REJECT no thanks" > "$T/header_checks"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
instance_config "$T" "$B" \
  "default_transport = error" "relay_transport = error" "transport_maps = hash:$T/transport" \
  "header_checks = regexp:$T/header_checks" "mynetworks = 127.0.0.0/8" \
  "minimal_backoff_time = 300s" "maximal_backoff_time = 600s" "queue_run_delay = 300s"
"$B/postconf" -c "$T" -MX smtp/inet
PORT=$(free_port)
printf '127.0.0.1:%s inet n - n - - smtpd -v\n' "$PORT" >> "$T/master.cf"
instance_start "$B"

# session FIRST LAST [SUBJECT]: one SMTP session, messages FIRST..LAST to
# uN@reuse.example; prints one line per message: the reply to DATA's end.
session() {
  python3 - "$PORT" "$1" "$2" "${3:-hello}" <<'PYEOF'
import smtplib, sys
port, first, last, subject = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    for i in range(first, last + 1):
        s.mail("sender@test.example")
        s.rcpt("u%d@reuse.example" % i)
        code, msg = s.data(("Subject: %s %d\r\n\r\nbody %d\r\n" % (subject, i, i)).encode())
        print(code, msg.decode())
PYEOF
}
# Distinct recipients delivered (a duplicate must not make up for a loss).
sent() { grep -oE "to=<u[0-9]+@reuse.example>, relay=none, .*status=sent" "$T/maillog" | cut -d, -f1 | sort -u | wc -l; }
dups() { grep -oE "to=<u[0-9]+@reuse.example>, relay=none, .*status=sent" "$T/maillog" | cut -d, -f1 | sort | uniq -d; }
sent_at_least() { [ "$(sent)" -ge "$1" ]; }
reuses() { grep -c "smtpd\[[0-9]*\]: reusing connection to public/cleanup" "$T/maillog"; }
queued() { grep -c "^250 .*queued as" "$T/replies"; }

# 1. Three messages in one session, then five sessions of one message.
: >"$T/replies"
session 1 3 >>"$T/replies"
for i in 4 5 6 7 8; do session "$i" "$i" >>"$T/replies"; done
[ "$(queued)" = 8 ] && ok "8 messages accepted" || bad "8 messages accepted" "$(cat "$T/replies")"
n=$(reuses)
[ "$n" -ge 5 ] && ok "smtpd reuses its cleanup connection ($n of 7 possible)" ||
  bad "smtpd reuses its cleanup connection" "reuse lines: $n" "$(grep -E 'smtpd|cleanup' "$T/maillog" | tail -5)"
ids=$(grep -oE "queued as [0-9A-F]+" "$T/replies" | sort -u | wc -l)
[ "$ids" = 8 ] && ok "each message has its own queue ID" || bad "each message has its own queue ID" "$ids distinct"

# 2. A rejected message, then one more on the same connection.
: >"$T/replies2"
session 9 9 "reject me" >>"$T/replies2" 2>&1
session 10 10 >>"$T/replies2"
grep -q "no thanks" "$T/replies2" && ok "header_checks REJECT reaches the client" ||
  bad "header_checks REJECT reaches the client" "$(cat "$T/replies2")"
grep -q "^250 .*queued as" "$T/replies2" && ok "the next message after a rejected one is accepted" ||
  bad "the next message after a rejected one is accepted" "$(cat "$T/replies2")"

# 3. A client that leaves in the middle of DATA, then a new message.
python3 - "$PORT" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
def cmd(line):
    s.sendall(line)
    while True:
        reply = f.readline()
        if reply[3:4] != b"-":
            return reply
f.readline()
cmd(b"EHLO client.test.example\r\n"); cmd(b"MAIL FROM:<sender@test.example>\r\n")
cmd(b"RCPT TO:<gone@reuse.example>\r\n"); cmd(b"DATA\r\n")
s.sendall(b"Subject: half\r\n\r\nhalf a message\r\n")
time.sleep(0.3)
s.close()
PYEOF
session 11 11 >>"$T/replies2"
[ "$(grep -c '^250 .*queued as' "$T/replies2")" = 2 ] && ok "a message after an aborted DATA is accepted" ||
  bad "a message after an aborted DATA is accepted" "$(cat "$T/replies2")"

# 4. cleanup leaves after every message (max_use = 1): a new connection
# each time, nothing lost.
"$B/postconf" -c "$T" -P "cleanup/unix/max_use=1"
"$B/postfix" -c "$T" reload >/dev/null 2>&1
sleep 1
grep -q "max_use=1" "$T/master.cf" || bad "postconf -P set max_use" "$(grep -A2 '^cleanup' "$T/master.cf")"
mark=$(wc -l <"$T/maillog")
: >"$T/replies3"
for i in 12 13 14 15 16; do session "$i" "$i" >>"$T/replies3"; done
session 17 19 >>"$T/replies3"
[ "$(grep -c '^250 .*queued as' "$T/replies3")" = 8 ] && ok "cleanup with max_use = 1: 8 messages accepted" ||
  bad "cleanup with max_use = 1: 8 messages accepted" "$(cat "$T/replies3")"
pids=$(tail -n +"$((mark + 1))" "$T/maillog" | grep -oE "cleanup\[[0-9]+\]: [0-9A-F]+: message-id=" | cut -d'[' -f2 |
  cut -d']' -f1 | sort -u | wc -l)
[ "$pids" = 8 ] && ok "cleanup with max_use = 1: a process per message" ||
  bad "cleanup with max_use = 1: a process per message" "$pids cleanup processes for 8 messages"

# A client that sends its message slowly (a line every 0.3 s): smtpd hands
# what it holds to cleanup after a second, and the message arrives whole.
python3 - "$PORT" >"$T/slow.reply" <<'PYEOF'
import smtplib, sys, time
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.mail("sender@test.example"); s.rcpt("u40@reuse.example")
    code, _ = s.docmd("DATA")
    assert code == 354, code
    s.send(b"Subject: slow 40\r\n\r\n")
    for i in range(10):
        s.send(b"slow line %d\r\n" % i)
        time.sleep(0.3)
    s.send(b".\r\n")
    print(*s.getreply())
PYEOF
grep -q "^250 .*queued as" "$T/slow.reply" && ok "a message sent slowly is accepted" ||
  bad "a message sent slowly is accepted" "$(cat "$T/slow.reply")"

# 5. Reloads while connections are kept.
"$B/postconf" -c "$T" -PX "cleanup/unix/max_use"
"$B/postfix" -c "$T" reload >/dev/null 2>&1
: >"$T/replies4"
( for i in $(seq 20 39); do session "$i" "$i" >>"$T/replies4"; done ) &
sender=$!
sleep 0.3; "$B/postfix" -c "$T" reload >/dev/null 2>&1
sleep 0.3; "$B/postfix" -c "$T" reload >/dev/null 2>&1
wait $sender
[ "$(grep -c '^250 .*queued as' "$T/replies4")" = 20 ] && ok "reloads in the middle: 20 messages accepted" ||
  bad "reloads in the middle: 20 messages accepted" "$(grep -vc '^250' "$T/replies4") other replies" "$(grep -v '^250' "$T/replies4" | head -3)"

# 1 to 8, 10, 11, 12 to 19, 20 to 39, 40: 38 messages.
if wait_for 60 sent_at_least 38; then ok "all 38 accepted messages are delivered"; else
  bad "all 38 accepted messages are delivered" "sent: $(sent)" "$(tail -5 "$T/maillog")"; fi
d=$(dups)
[ -z "$d" ] && ok "no message is delivered twice" || bad "no message is delivered twice" "$d"

grep -q "to=<gone@reuse.example>.*status=" "$T/maillog" &&
  bad "the aborted message is not delivered" "$(grep "to=<gone@" "$T/maillog")" ||
  ok "the aborted message is not delivered"
w=$(grep -E "status=deferred|warning:|fatal:|panic:" "$T/maillog" | grep -v "warning: master.cf: service")
[ -z "$w" ] && ok "nothing deferred, no warning" || bad "nothing deferred, no warning" "$w"
queue_empty() { "$B/postqueue" -p | grep -q "Mail queue is empty"; }
wait_for 30 queue_empty && ok "the queue is empty" || bad "the queue is empty" "$("$B/postqueue" -p | tail -3)"
left=$(find "$T/queue/incoming" "$T/queue/active" -type f)
[ -z "$left" ] && ok "no queue file is left in incoming/ or active/" || bad "no queue file is left in incoming/ or active/" "$left"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
