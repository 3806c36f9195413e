#!/usr/bin/env bash
# flush: our fast flush service (flush(8)), lib/ipc's flush client and the
# commands that use it.
# Part 1, our instance (root): mail for destinations of fast_flush_domains
# that qmgr defers (defer_transports = local) is registered in
# flush/<site>; "postqueue -s site" delivers that site's mail and only it,
# truncating the log; "sendmail -qRsite" does the same; an unknown site is
# refused with Postfix's message and exit status; a purge re-sends logs and
# removes old empty ones; the request/answer table of the real flush(8)
# (status 0 OK, 3 BAD, 4 DENY, no reply to an unknown request) and
# master's wakeup.
# Part 2, when postfix-oracle is there: a real Postfix 3.7 instance runs
# the real flush and ours side by side; the same requests give the same
# answers, logs and warnings; then the real qmgr and postqueue use ours and
# "postqueue -s" delivers the deferred mail of a site.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix postconf postalias sendmail postdrop pickup cleanup qmgr trivial-rewrite local bounce error \
  showq postqueue flush ipc_client; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/interop.sh.inc"
INST=$T/real
eventually() { local i; for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
finish() { echo "# $CHECKS checks, $FAILS failed"; [ $FAILS = 0 ]; exit $?; }
# The queue ID of the deferred mail to RCPT in LOG (the latest).
deferred_id() { sed -n "s/^.*: \([0-9A-Za-z]*\): to=<$2>, .*status=deferred.*/\1/p" "$1" | tail -1; }
# requests QUEUE SERVICE: the request table, one answer per request.
REQUESTS=(
  "request=send_site site=site.test"
  "request=send_site site=elsewhere.test"
  "request=send_site site=a.sub.example.org"
  "request=send_site site=sub.example.org"
  "request=rfrsh"
  "request=purge"
  "request=add site=site.test queue_id=ABCDEF123"
  "request=add site=elsewhere.test queue_id=ABCDEF123"
  "request=add site=site.test queue_id=bad.id"
  "request=add site=Other.TEST queue_id=ABCDEF124"
  "request=add site=other.test queue_id=ABCDEF125"
  "request=send_file queue_id=ABCDEF123"
  "request=send_file queue_id=bad/id"
  "request=bogus"
  "request=send_site site=[192.0.2.1]"
  "request=add site=site.test"
  "request=send_site site=site.test extra=1"
  "site=site.test"
)
requests() {
  local r
  for r in "${REQUESTS[@]}"; do
    # shellcheck disable=SC2086
    echo "$r -> $(timeout 30 "$B/ipc_client" -q "$1" -t 10 raw public "$2" queue_flush_protocol zero $r 2>/dev/null ||
      echo "no reply")"
  done
}
# What the real flush(8) answers (fast_flush_domains = site.test, other.test, .sub.example.org).
REQUESTS_WANT='request=send_site site=site.test -> status=0
request=send_site site=elsewhere.test -> status=4
request=send_site site=a.sub.example.org -> status=4
request=send_site site=sub.example.org -> status=4
request=rfrsh -> status=0
request=purge -> status=0
request=add site=site.test queue_id=ABCDEF123 -> status=0
request=add site=elsewhere.test queue_id=ABCDEF123 -> status=4
request=add site=site.test queue_id=bad.id -> status=3
request=add site=Other.TEST queue_id=ABCDEF124 -> status=0
request=add site=other.test queue_id=ABCDEF125 -> status=0
request=send_file queue_id=ABCDEF123 -> status=0
request=send_file queue_id=bad/id -> status=3
request=bogus -> no reply
request=send_site site=[192.0.2.1] -> status=4
request=add site=site.test -> status=3
request=send_site site=site.test extra=1 -> status=0
site=site.test -> status=3'
# The logs that sequence leaves: site.test sent (empty), other.test not.
LOGS_WANT='other_test 600 ABCDEF124,ABCDEF125
site_test 600 '
logs() {  # QUEUE: each log, its mode and its queue IDs
  local f
  for f in "$1"/flush/*; do
    [ -f "$f" ] && echo "$(basename "$f") $(stat -c %a "$f") $(paste -sd, "$f")"
  done
}
# A master-style wakeup: "W" and a NUL, then the reply.
wakeup() {
  timeout 30 python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
data = b""
while not data.endswith(b"\0\0"):
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
s.sendall(b"W\0")
reply = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    reply += chunk
print(data.replace(b"\0", b"|").decode(), reply.replace(b"\0", b"|").decode())
EOF
}

# ======== Part 1: our instance
mkdir -p "$Q"
cp "$MTA_SOURCE_DIR/conf/master.cf" "$T/master.cf"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$T/main.cf"
printf '%s\n' "postmaster: root" "siteuser: $T/site-file" "otheruser: $T/other-file" >"$T/aliases"
touch "$T/site-file" "$T/other-file"
chmod 666 "$T/site-file" "$T/other-file"
"$B/postconf" -c "$T" -e "queue_directory = $Q" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
  "myhostname = mail.test.example" "mydestination = \$myhostname, localhost, site.test, other.test" \
  "alias_maps = hash:$T/aliases" "alias_database = hash:$T/aliases" "allow_mail_to_files = alias" \
  "default_transport = error" "relay_transport = error" "defer_transports = local" \
  "fast_flush_domains = site.test, other.test, .sub.example.org" \
  "queue_run_delay = 3600s" "minimal_backoff_time = 3600s" "maximal_backoff_time = 4000s"
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postalias" -c "$T" "$T/aliases"
if ! timeout 30 "$B/postfix" -c "$T" start >"$T/start.log" 2>&1; then
  bad "our instance starts" "$(cat "$T/start.log")" "$(tail -5 "$T/maillog" 2>/dev/null)"
  finish
fi
OURS_UP=1
export MAIL_CONFIG=$T
eventually test -S "$Q/public/flush" && ok "the flush service listens on public/flush" || bad "public/flush"

printf 'Subject: site\n\nto the site\n' | "$B/sendmail" -f root siteuser@site.test
printf 'Subject: other\n\nto the other site\n' | "$B/sendmail" -f root otheruser@other.test
eventually grep -q 'to=<otheruser@other.test>, .*status=deferred (deferred transport)' "$T/maillog"
eventually grep -q 'to=<siteuser@site.test>, .*status=deferred (deferred transport)' "$T/maillog"
SITE_ID=$(deferred_id "$T/maillog" siteuser@site.test)
OTHER_ID=$(deferred_id "$T/maillog" otheruser@other.test)
if [ -n "$SITE_ID" ] && [ -n "$OTHER_ID" ]; then ok "qmgr defers the mail (defer_transports)"; else
  bad "qmgr defers the mail (defer_transports)" "$(tail -5 "$T/maillog")"; finish
fi
# The "deferred" log lines may come before the flush logs are written.
both_logged() { [ "$(logs "$Q")" = "other_test 600 $OTHER_ID
site_test 600 $SITE_ID" ]; }
eventually both_logged
same "deferred mail is registered per destination" "other_test 600 $OTHER_ID
site_test 600 $SITE_ID" "$(logs "$Q")"

out=$(timeout 30 "$B/postqueue" -s site.test 2>&1)
same "postqueue -s site.test succeeds quietly" "0 " "$? $out"
eventually grep -q 'to the site' "$T/site-file" && ok "postqueue -s delivers the site's deferred mail" ||
  bad "postqueue -s delivers the site's deferred mail" "$(tail -5 "$T/maillog")"
eventually grep -q "$SITE_ID: to=<siteuser@site.test>, .*status=sent" "$T/maillog" && ok "... logged as sent" ||
  bad "... logged as sent" "$(grep "$SITE_ID" "$T/maillog" | tail -3)"
sleep 2
[ ! -s "$T/other-file" ] && ok "other destinations' mail stays deferred" || bad "other destinations' mail stays deferred"
timeout 30 "$B/postqueue" -p 2>&1 | grep -q "^$OTHER_ID" && ok "... and stays in the queue" ||
  bad "... and stays in the queue" "$(timeout 30 "$B/postqueue" -p 2>&1)"
same "the site's log is truncated, the others kept" "other_test 600 $OTHER_ID
site_test 600 " "$(logs "$Q")"

out=$(timeout 30 "$B/postqueue" -s nosuch.test 2>&1)
same "an unknown site is refused as Postfix refuses it" \
  '69 postqueue: fatal: Flush service is not configured for destination "nosuch.test"' "$? $out"
grep -q 'postfix/postqueue\[[0-9]*\]: fatal: Flush service is not configured for destination "nosuch.test"' \
  "$T/maillog" && ok "... and logs it" || bad "... and logs it" "$(tail -3 "$T/maillog")"
out=$(timeout 30 "$B/postqueue" -s 'bad site' 2>&1)
same "a malformed site is refused" '69 postqueue: fatal: Cannot flush mail queue - invalid destination: "bad site"' \
  "$? $out"

out=$(timeout 30 "$B/sendmail" -qRother.test 2>&1)
same "sendmail -qRother.test succeeds quietly" "0 " "$? $out"
eventually grep -q 'to the other site' "$T/other-file" && ok "sendmail -qR delivers that site's mail" ||
  bad "sendmail -qR delivers that site's mail" "$(tail -5 "$T/maillog")"

# A purge re-sends every non-empty log and removes empty ones older than
# fast_flush_purge_time; the refresh runs after the answer.
printf 'Subject: again\n\nagain\n' | "$B/sendmail" -f root siteuser@site.test
eventually sh -c "[ \$(grep -c 'to=<siteuser@site.test>, .*status=deferred' '$T/maillog') -ge 2 ]"
AGAIN_ID=$(deferred_id "$T/maillog" siteuser@site.test)
eventually grep -q "$AGAIN_ID" "$Q/flush/site_test"
touch -a -d '1 minute ago' "$Q/flush/site_test"
: >"$Q/flush/stale_test"
touch -d '8 days ago' "$Q/flush/stale_test"
: >"$Q/flush/fresh_test"
same "purge is answered" "status=0" "$(timeout 30 "$B/ipc_client" -q "$Q" -t 10 raw public flush queue_flush_protocol zero request=purge 2>&1)"
eventually test ! -e "$Q/flush/stale_test" && ok "purge removes an old empty log" || bad "purge removes an old empty log"
[ -e "$Q/flush/fresh_test" ] && ok "purge keeps a recent empty log" || bad "purge keeps a recent empty log"
eventually sh -c "[ \$(grep -c '$AGAIN_ID: to=<siteuser@site.test>' '$T/maillog') -ge 2 ]" &&
  ok "purge sends the logs to qmgr again" || bad "purge sends the logs to qmgr again" "$(grep "$AGAIN_ID" "$T/maillog")"
rm -f "$Q/flush/"*

same "master's wakeup is a refresh" "protocol|queue_flush_protocol|| status|0||" "$(wakeup "$Q/public/flush")"
same "the requests get the real flush's answers" "$REQUESTS_WANT" "$(requests "$Q" flush)"
same "... and leave the real flush's logs" "$LOGS_WANT" "$(logs "$Q")"
for w in 'missing attribute queue_id in input from flush socket' \
  'unexpected attribute extra from flush socket (expecting: (list terminator))' \
  'unexpected attribute site from flush socket (expecting: request)'; do
  grep -E 'postfix/flush\[[0-9]+\]: warning: ' "$T/maillog" | grep -qF "$w" && ok "warning: $w" ||
    bad "warning: $w" "$(grep 'flush\[' "$T/maillog" | tail -3)"
done
if grep -qE "postfix/(flush|qmgr|master)\[[0-9]+\]: (fatal|panic)" "$T/maillog"; then
  bad "no fatal errors" "$(grep -E "(fatal|panic)" "$T/maillog" | grep -v postqueue | head -3)"
else ok "no fatal errors"; fi
timeout 30 "$B/postfix" -c "$T" stop >/dev/null 2>&1
OURS_UP=0
unset MAIL_CONFIG

# ======== Part 2: the real flush and ours in a real Postfix instance
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# no postfix-oracle: part 2 skipped"; finish; fi
if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# postfix-oracle install failed: part 2 skipped"; finish; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
PORT=
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { bad "a free port for the real instance"; finish; }
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { bad "the real instance is made" "$(tail -3 "$T/instance.log")"; finish; }
real() { timeout 60 "$ORACLE" run "$1" -c "$INST" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }
RQ=$INST/queue
DAEMON_DIR=$(real postconf -xh daemon_directory)
REL=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$B/flush" "$DAEMON_DIR")
printf '%s\n' "siteuser: $T/real-site-file" >>"$INST/aliases"
touch "$T/real-site-file"; chmod 666 "$T/real-site-file"
real postalias "$INST/aliases"
real postconf -e "mydestination = localhost, site.test, other.test" "defer_transports = local" \
  "fast_flush_domains = site.test, other.test, .sub.example.org" "allow_mail_to_files = alias" \
  "queue_run_delay = 3600s" "minimal_backoff_time = 3600s" "maximal_backoff_time = 4000s" >/dev/null
echo "ourflush unix n - n 1000? 0 $REL" >>"$INST/master.cf"
if ! real postfix start >"$T/rstart.log" 2>&1; then bad "the real instance starts" "$(cat "$T/rstart.log")"; finish; fi
REAL_UP=1
eventually test -S "$RQ/public/ourflush" || { bad "the real instance's sockets appear"; finish; }

rm -f "$RQ/flush/"*
real_answers=$(requests "$RQ" flush)
real_logs=$(logs "$RQ")
rm -f "$RQ/flush/"*
same "ours answers as the real flush" "$real_answers" "$(requests "$RQ" ourflush)"
same "... and leaves the same logs" "$real_logs" "$(logs "$RQ")"
same "the real flush still answers as part 1 expects" "$REQUESTS_WANT" "$real_answers"
warnings_of() {  # SERVICE: the flush warnings about that service's socket
  sed -n "s/^.* postfix\/flush\[[0-9]*\]: warning: \(.*\) from $1 socket\(.*\)/\1 from SERVICE socket\2/p" "$INST/maillog"
}
same "the same warnings" "$(warnings_of flush)" "$(warnings_of ourflush)"
same "master's wakeup: the same answer" "$(wakeup "$RQ/public/flush")" "$(wakeup "$RQ/public/ourflush")"
rm -f "$RQ/flush/"*

# The real qmgr and postqueue use ours.
sed -i "s|^flush \(.*\)flush *\$|flush \1$REL|" "$INST/master.cf"
grep -q "^flush .*$REL" "$INST/master.cf" && ok "master.cf: the flush service runs ours" ||
  bad "master.cf: the flush service runs ours" "$(grep '^flush' "$INST/master.cf")"
real postfix reload >/dev/null 2>&1
sleep 1
timeout 60 python3 - "$PORT" <<'SMTP' || bad "the real smtpd takes a message"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("root@localhost", ["siteuser@site.test"], "Subject: real\r\n\r\nvia the real qmgr\r\n")
SMTP
eventually grep -q 'to=<siteuser@site.test>, .*status=deferred' "$INST/maillog"
RID=$(deferred_id "$INST/maillog" siteuser@site.test)
site_logged() { [ "$(logs "$RQ")" = "site_test 600 $RID" ]; }
eventually site_logged
same "the real qmgr registers deferred mail with ours" "site_test 600 $RID" "$(logs "$RQ")"
out=$(real postqueue -s site.test 2>&1)
same "the real postqueue -s asks ours" "0 " "$? $out"
eventually grep -q 'via the real qmgr' "$T/real-site-file" && ok "... and the real qmgr delivers the site's mail" ||
  bad "... and the real qmgr delivers the site's mail" "$(tail -5 "$INST/maillog")"
same "... and the log is truncated" "site_test 600 " "$(logs "$RQ")"
if grep -qE "postfix/(flush|qmgr|master)\[[0-9]+\]: (fatal|panic)" "$INST/maillog"; then
  bad "no fatal errors in the real instance" "$(grep -E "(fatal|panic)" "$INST/maillog" | head -3)"
else ok "no fatal errors in the real instance"; fi
finish
