#!/usr/bin/env bash
# An after-queue content filter wired as Debian's amavisd-new documents it
# (M5): content_filter = amavisfeed:[127.0.0.1]:PORT, an "amavisfeed" smtp
# transport in master.cf, and a reinjection smtpd on another port with
# "-o content_filter=" and receive_override_options.  The filter here is a
# small SMTP server of the test's own that adds a header and sends the
# message back to the reinjection port.  The message must reach the virtual
# mailbox once, with the filter's header, after two trips through the queue;
# a filter that refuses (550) bounces the message to its sender.  Needs
# root; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr smtp virtual bounce; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
T=$(mktemp -d) || exit 1
chmod 755 "$T"
FILTER_PID=''
cleanup() {
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  [ -n "$FILTER_PID" ] && kill "$FILTER_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
wait_for() { local i; for i in $(seq $(($1 * 10))); do "${@:2}" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) REINJECT=$(free_port) FPORT=$(free_port)

mkdir -p "$T/queue" "$T/vmail"
chown nobody:nogroup "$T/vmail"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" "maillog_file_prefixes = $T" \
  "myhostname = mail.test.example" "mydestination = \$myhostname, localhost" "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" "alias_maps =" "alias_database =" \
  "virtual_mailbox_domains = v.test" "virtual_mailbox_base = $T/vmail" "virtual_mailbox_maps = static:box/" \
  "virtual_uid_maps = static:$(id -u nobody)" "virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)" \
  "virtual_minimum_uid = 100" "content_filter = amavisfeed:[127.0.0.1]:$FPORT" \
  "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" "queue_run_delay = 2s"
"$B/postconf" -c "$T" -MX smtp/inet
cat >>"$T/master.cf" <<EOF
127.0.0.1:$PORT inet n - n - - smtpd
amavisfeed unix - - n - 2 smtp
  -o smtp_data_done_timeout=1200
127.0.0.1:$REINJECT inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_helo_restrictions=
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
EOF

# The filter: takes one message per connection, adds X-Filtered, and
# sends it back to the reinjection port with the same envelope; a
# recipient "refuse@v.test" gets 550 at end of data.
cat >"$T/filter.py" <<'PY'
import smtplib, socket, sys
port, back = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(5)
while True:
    c, _ = srv.accept(); c.settimeout(30); f = c.makefile("rb")
    def say(t): c.sendall((t + "\r\n").encode())
    say("220 filter.test ESMTP")
    sender, rcpts, refuse = "", [], False
    try:
        while True:
            line = f.readline()
            if not line: break
            cmd = line.decode("latin-1").strip(); up = cmd.upper()
            if up.startswith(("EHLO", "HELO")): say("250-filter.test"); say("250 8BITMIME")
            elif up.startswith("MAIL FROM:"): sender = cmd[10:].split()[0].strip("<>"); say("250 2.1.0 Ok")
            elif up.startswith("RCPT TO:"):
                r = cmd[8:].split()[0].strip("<>"); rcpts.append(r); refuse |= r.startswith("refuse@"); say("250 2.1.5 Ok")
            elif up == "DATA":
                say("354 go"); body = []
                while True:
                    l = f.readline()
                    if l in (b".\r\n", b".\n", b""): break
                    body.append(l[1:] if l.startswith(b"..") else l)
                if refuse: say("550 5.7.1 filter says no"); continue
                msg = b"X-Filtered: by the test filter\r\n" + b"".join(body)
                with smtplib.SMTP("127.0.0.1", back, timeout=30) as s:
                    s.sendmail(sender, rcpts, msg)
                say("250 2.0.0 Ok: filtered")
            elif up == "QUIT": say("221 bye"); break
            else: say("250 Ok")
    except Exception as e:
        sys.stderr.write("filter: %s\n" % e)
    c.close()
PY
python3 "$T/filter.py" "$FPORT" "$REINJECT" 2>"$T/filter.err" &
FILTER_PID=$!
"$B/postfix" -c "$T" start >/dev/null 2>&1 || { bad "our instance starts"; exit 1; }
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" || { bad "smtpd listens"; exit 1; }

timeout 60 swaks --server 127.0.0.1 --port "$PORT" --from sender@mail.test.example --to user@v.test \
  --header "Subject: through the filter" --body "filtered body" >"$T/swaks.out" 2>&1 ||
  bad "the message is accepted" "$(tail -3 "$T/swaks.out")"
if wait_for 30 sh -c "grep -rl 'filtered body' '$T/vmail/box/new' | grep -q ."; then
  f=$(grep -rl 'filtered body' "$T/vmail/box/new" | head -1)
  ok "the message reaches the mailbox after the filter"
  [ "$(grep -c '^X-Filtered: by the test filter' "$f")" = 1 ] && ok "it went through the filter once" ||
    bad "it went through the filter once" "$(grep -c X-Filtered "$f") X-Filtered headers"
  [ "$(grep -rl 'filtered body' "$T/vmail/box/new" | wc -l)" = 1 ] && ok "one copy, no filter loop" ||
    bad "one copy, no filter loop"
else
  bad "the message reaches the mailbox after the filter" "$(grep -E 'status=|warning' "$T/maillog" | tail -5)"
fi
grep -qE "postfix/smtp\[[0-9]+\]: [0-9A-F]+: to=<user@v.test>, relay=127.0.0.1\[127.0.0.1\]:$FPORT, .*status=sent \(250 2.0.0 Ok: filtered\)" "$T/maillog" &&
  ok "the first trip is logged by the amavisfeed transport" ||
  bad "the first trip is logged by the amavisfeed transport" "$(grep 'to=<user@v.test>' "$T/maillog" | head -3)"
grep -qE "postfix/virtual\[[0-9]+\]: [0-9A-F]+: to=<user@v.test>, relay=virtual, .*status=sent \(delivered to maildir\)" "$T/maillog" &&
  ok "the second trip is delivered by virtual" || bad "the second trip is delivered by virtual"

# A filter that refuses: the message bounces to its sender, whose mailbox
# is the same virtual one.
timeout 60 swaks --server 127.0.0.1 --port "$PORT" --from sender@v.test --to refuse@v.test \
  --header "Subject: refused" --body "refused body" >"$T/swaks2.out" 2>&1 ||
  bad "the second message is accepted" "$(tail -3 "$T/swaks2.out")"
wait_for 30 grep -qE "to=<refuse@v.test>, relay=127.0.0.1\[127.0.0.1\]:$FPORT, .*dsn=5.7.1, status=bounced \(host 127.0.0.1\[127.0.0.1\] said: 550 5.7.1 filter says no \(in reply to end of DATA command\)\)" "$T/maillog" &&
  ok "a refusal by the filter bounces with its text" ||
  bad "a refusal by the filter bounces with its text" "$(grep 'refuse@v.test' "$T/maillog" | tail -3)"
wait_for 30 sh -c "grep -rl 'Undelivered Mail Returned to Sender' '$T/vmail/box/new' | grep -q ." &&
  ok "the sender gets the bounce" || bad "the sender gets the bounce" "$(grep 'sender@v.test' "$T/maillog" | tail -3)"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
