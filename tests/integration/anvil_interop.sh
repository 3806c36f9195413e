#!/usr/bin/env bash
# anvil: our anvil(8) and lib/ipc's AnvilClient (driven by tests/tools/anvil_probe).
# Part 1, always (our master, no real Postfix; as root or unprivileged):
#  - connection counts and rates, one remote connection per local server,
#    disconnect only by the local server that connected, message/recipient/
#    newtls/auth rates, newtls_status and lookup, status=-1 for an unknown
#    request (with Postfix's warning), a closed client connection forgetting
#    its connection -- the answers the real Postfix 3.7 anvil gives;
#  - the fixed rate window (anvil_rate_time_unit=4s), stale rates reading as
#    zero, idents at count zero forgotten a time unit later;
#  - "statistics: max ..." lines every anvil_status_update_time and at an
#    idle exit, which waits at least one time unit;
#  - the client fails (with a warning) when the service is not there.
# Part 2, when postfix-oracle is there and we are root: a real Postfix 3.7
# instance runs the real anvil and ours side by side; the same request
# sequences give the same answers, warnings and statistics; then the real
# smtpd uses ours and enforces smtpd_client_connection_rate_limit and
# smtpd_client_message_rate_limit with it.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
for f in postfix master anvil anvil_probe; do
  [ -x "$B/$f" ] || { echo "# skip: $B/$f is not built"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/interop.sh.inc"
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
probe() {  # QUEUE SERVICE < script
  timeout 60 "$B/anvil_probe" -q "$1" -s "$2" -t 20 2>&1
}
finish() { echo "# $CHECKS checks, $FAILS failed"; [ $FAILS = 0 ]; exit $?; }

# --- the request sequences and what the real anvil answers to them
cat >"$T/counts.in" <<'EOF'
a lookup smtp 1.2.3.4
a connect smtp 1.2.3.4
a connect smtp 1.2.3.4
b connect smtp 1.2.3.4
a lookup smtp 1.2.3.4
a connect smtp 5.6.7.8
a lookup smtp 1.2.3.4
b disconnect smtp 5.6.7.8
a lookup smtp 5.6.7.8
a message smtp 1.2.3.4
a recipient smtp 1.2.3.4
a recipient smtp 1.2.3.4
a newtls smtp 1.2.3.4
a newtls_status smtp 1.2.3.4
a newtls_status smtp 9.9.9.9
a auth smtp 1.2.3.4
a lookup smtp 1.2.3.4
a raw request=bogus ident=smtp:1.2.3.4
a raw request=newtls_report ident=smtp:1.2.3.4
b close
sleep 0.3
c lookup smtp 1.2.3.4
c message submission 2001:db8::1
c lookup submission 2001:db8::1
d raw request=lookup ident=x extra=1
d lookup smtp 1.2.3.4
c close
sleep 0.3
d lookup submission 2001:db8::1
EOF
COUNTS_WANT='a lookup smtp:1.2.3.4 -> count=0 rate=0 mail=0 rcpt=0 newtls=0 auth=0
a connect smtp:1.2.3.4 -> count=1 rate=1
a connect smtp:1.2.3.4 -> count=1 rate=2
b connect smtp:1.2.3.4 -> count=2 rate=3
a lookup smtp:1.2.3.4 -> count=2 rate=3 mail=0 rcpt=0 newtls=0 auth=0
a connect smtp:5.6.7.8 -> count=1 rate=1
a lookup smtp:1.2.3.4 -> count=1 rate=3 mail=0 rcpt=0 newtls=0 auth=0
b disconnect smtp:5.6.7.8 -> ok
a lookup smtp:5.6.7.8 -> count=1 rate=1 mail=0 rcpt=0 newtls=0 auth=0
a message smtp:1.2.3.4 -> rate=1
a recipient smtp:1.2.3.4 -> rate=1
a recipient smtp:1.2.3.4 -> rate=2
a newtls smtp:1.2.3.4 -> rate=1
a newtls_status smtp:1.2.3.4 -> rate=1
a newtls_status smtp:9.9.9.9 -> rate=0
a auth smtp:1.2.3.4 -> rate=1
a lookup smtp:1.2.3.4 -> count=1 rate=3 mail=1 rcpt=2 newtls=1 auth=1
a raw request=bogus ident=smtp:1.2.3.4 -> status=4294967295
a raw request=newtls_report ident=smtp:1.2.3.4 -> status=4294967295
c lookup smtp:1.2.3.4 -> count=0 rate=3 mail=1 rcpt=2 newtls=1 auth=1
c message submission:2001:db8::1 -> rate=1
c lookup submission:2001:db8::1 -> count=1 rate=1 mail=1 rcpt=0 newtls=0 auth=0
d raw request=lookup ident=x extra=1 -> status=0 count=0 rate=0 mail=0 rcpt=0 newtls=0 auth=0
d lookup smtp:1.2.3.4 -> count=0 rate=3 mail=1 rcpt=2 newtls=1 auth=1
d lookup submission:2001:db8::1 -> count=0 rate=1 mail=1 rcpt=0 newtls=0 auth=0'

# With anvil_rate_time_unit=4s; the sleeps keep half a second from every
# boundary of the one-second clock.
cat >"$T/window.in" <<'EOF'
a connect smtp 1.1.1.1
a message smtp 1.1.1.1
b connect smtp 1.1.1.1
b auth smtp 1.1.1.1
b auth smtp 1.1.1.1
c recipient smtp 2.2.2.2
c disconnect smtp 2.2.2.2
c newtls smtp 3.3.3.3
a lookup smtp 1.1.1.1
sleep 5.5
a lookup smtp 1.1.1.1
a lookup smtp 2.2.2.2
a message smtp 1.1.1.1
a lookup smtp 1.1.1.1
b connect smtp 1.1.1.1
b disconnect smtp 1.1.1.1
a disconnect smtp 1.1.1.1
a lookup smtp 1.1.1.1
sleep 2
a lookup smtp 1.1.1.1
sleep 3.5
a lookup smtp 1.1.1.1
EOF
WINDOW_WANT='a connect smtp:1.1.1.1 -> count=1 rate=1
a message smtp:1.1.1.1 -> rate=1
b connect smtp:1.1.1.1 -> count=2 rate=2
b auth smtp:1.1.1.1 -> rate=1
b auth smtp:1.1.1.1 -> rate=2
c recipient smtp:2.2.2.2 -> rate=1
c disconnect smtp:2.2.2.2 -> ok
c newtls smtp:3.3.3.3 -> rate=1
a lookup smtp:1.1.1.1 -> count=2 rate=2 mail=1 rcpt=0 newtls=0 auth=2
a lookup smtp:1.1.1.1 -> count=2 rate=0 mail=0 rcpt=0 newtls=0 auth=0
a lookup smtp:2.2.2.2 -> count=0 rate=0 mail=0 rcpt=0 newtls=0 auth=0
a message smtp:1.1.1.1 -> rate=1
a lookup smtp:1.1.1.1 -> count=2 rate=0 mail=1 rcpt=0 newtls=0 auth=0
b connect smtp:1.1.1.1 -> count=2 rate=1
b disconnect smtp:1.1.1.1 -> ok
a disconnect smtp:1.1.1.1 -> ok
a lookup smtp:1.1.1.1 -> count=0 rate=1 mail=1 rcpt=0 newtls=0 auth=0
a lookup smtp:1.1.1.1 -> count=0 rate=1 mail=1 rcpt=0 newtls=0 auth=0
a lookup smtp:1.1.1.1 -> count=0 rate=0 mail=0 rcpt=0 newtls=0 auth=0'
# The peaks of window.in (each in some statistics report).
STATS_WANT='statistics: max auth rate 2/4s for (smtp:1.1.1.1)
statistics: max cache size 3
statistics: max connection count 2 for (smtp:1.1.1.1)
statistics: max connection rate 2/4s for (smtp:1.1.1.1)
statistics: max message rate 1/4s for (smtp:1.1.1.1)
statistics: max newtls rate 1/4s for (smtp:3.3.3.3)
statistics: max recipient rate 1/4s for (smtp:2.2.2.2)'
# stats LOG PID: that process's statistics lines, without the times of day.
stats() {
  sed -n "s/^.* postfix\/anvil\[$2\]: \(statistics: .*\) at [A-Z][a-z][a-z] [ 1-3][0-9] [0-9:]\{8\}\$/\1/p" "$1" | sort -u
}
# stats_pids LOG: the pids of anvil processes that logged statistics.
stats_pids() { sed -n 's/^.* postfix\/anvil\[\([0-9]*\)\]: statistics: .*/\1/p' "$1" | sort -u; }

# ======== Part 1: our anvil under our master
mkdir -p "$Q"
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $Q" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_protocols = ipv4" "inet_interfaces = loopback-only" \
  "myhostname = mx.example.org" >"$T/main.cf"
printf '%s\n' "anvil     unix  -       -       n       -       1       anvil" \
  "anvil4    unix  -       -       n       -       1       anvil -o anvil_rate_time_unit=4s -o anvil_status_update_time=7s" \
  "anvilidle unix  -       -       n       -       1       anvil -o anvil_rate_time_unit=2s -o max_idle=1s" \
  >"$T/master.cf"
if ! timeout 30 "$B/postfix" -c "$T" start >"$T/start.log" 2>&1; then
  bad "our instance starts" "$(cat "$T/start.log")" "$(tail -5 "$T/maillog" 2>/dev/null)"
  finish
fi
OURS_UP=1
wait_for 20 test -S "$Q/private/anvilidle" || bad "the anvil sockets appear"

probe "$Q" anvil4 <"$T/window.in" >"$T/window.ours" &
WINDOW_JOB=$!
same "counts, rates and links are the real anvil's" "$COUNTS_WANT" "$(probe "$Q" anvil <"$T/counts.in")"
grep -q 'postfix/anvil\[[0-9]*\]: warning: unrecognized request: "bogus", ignored' "$T/maillog" &&
  ok "an unknown request: Postfix's warning" || bad "an unknown request: Postfix's warning" "$(tail -3 "$T/maillog")"
grep -q 'postfix/anvil\[[0-9]*\]: warning: unexpected attribute extra from anvil socket (expecting: (list terminator))' \
  "$T/maillog" && ok "an extra request attribute: Postfix's warning" ||
  bad "an extra request attribute: Postfix's warning" "$(tail -3 "$T/maillog")"

# A malformed request drops the client, and with it its connection.
got=$(printf '%s\n' 'a connect smtp 7.7.7.7' 'a raw ident=x request=lookup' 'b lookup smtp 7.7.7.7' | probe "$Q" anvil)
same "a malformed request drops the client and its connection" "a connect smtp:7.7.7.7 -> count=1 rate=1
a raw ident=x request=lookup -> FAIL
b lookup smtp:7.7.7.7 -> count=0 rate=1 mail=0 rcpt=0 newtls=0 auth=0" "$(grep -v warning <<<"$got")"
grep -q 'postfix/anvil\[[0-9]*\]: warning: unexpected attribute ident from anvil socket (expecting: request)' "$T/maillog" &&
  ok "... with Postfix's warning" || bad "... with Postfix's warning" "$(tail -3 "$T/maillog")"

# A client that is gone no longer counts; one that stays does.
got=$(printf '%s\n' 'x connect smtp 6.6.6.6' 'y connect smtp 6.6.6.6' 'z lookup smtp 6.6.6.6' 'x close' 'sleep 0.3' \
  'z lookup smtp 6.6.6.6' | probe "$Q" anvil)
same "a closed client connection forgets its connection" "x connect smtp:6.6.6.6 -> count=1 rate=1
y connect smtp:6.6.6.6 -> count=2 rate=2
z lookup smtp:6.6.6.6 -> count=2 rate=2 mail=0 rcpt=0 newtls=0 auth=0
z lookup smtp:6.6.6.6 -> count=1 rate=2 mail=0 rcpt=0 newtls=0 auth=0" "$got"

# No service: the client fails after a warning, and smtpd goes on.
got=$(printf '%s\n' 'a connect smtp 1.2.3.4' 'a lookup smtp 1.2.3.4' | probe "$Q" missing)
if [[ $got == *"warning: connect to $Q/private/missing: No such file or directory"*"a connect smtp:1.2.3.4 -> FAIL"*"a lookup smtp:1.2.3.4 -> FAIL"* ]]; then
  ok "without the service the client fails after a warning"
else bad "without the service the client fails after a warning" "$got"; fi

# The idle exit logs the peaks (anvilidle: max_idle=1s, raised to the 2s time unit).
printf '%s\n' 'a connect smtp 4.4.4.4' 'a connect smtp 4.4.4.4' | probe "$Q" anvilidle >/dev/null
sleep 1
if grep -q 'postfix/anvil\[[0-9]*\]: statistics: max connection rate 2/2s for (smtp:4.4.4.4)' "$T/maillog"; then
  bad "anvil stays at least one time unit after its last client" "$(grep statistics "$T/maillog")"
else ok "anvil stays at least one time unit after its last client"; fi
if wait_for 10 grep -q 'postfix/anvil\[[0-9]*\]: statistics: max connection rate 2/2s for (smtp:4.4.4.4) at ' "$T/maillog" &&
  grep -q 'postfix/anvil\[[0-9]*\]: statistics: max connection count 1 for (smtp:4.4.4.4) at ' "$T/maillog"; then
  ok "an idle exit logs the statistics"
else bad "an idle exit logs the statistics" "$(tail -5 "$T/maillog")"; fi

wait "$WINDOW_JOB"
same "the rate window and expiry (anvil_rate_time_unit=4s)" "$WINDOW_WANT" "$(cat "$T/window.ours")"
sleep 1  # anvil4 reported (every 7s) after the last event of the sequence
pid=$(sed -n 's/^.* postfix\/anvil\[\([0-9]*\)\]: statistics: max cache size 3 at .*/\1/p' "$T/maillog" | head -1)
same "the statistics reports (anvil_status_update_time=7s)" "$STATS_WANT" "$(stats "$T/maillog" "${pid:-none}")"
if grep -qE "postfix/(anvil|master)\[[0-9]+\]: (fatal|panic)" "$T/maillog"; then
  bad "no fatal errors" "$(grep -E "(fatal|panic)" "$T/maillog" | head -3)"
else ok "no fatal errors"; fi
timeout 30 "$B/postfix" -c "$T" stop >/dev/null 2>&1
OURS_UP=0

# ======== Part 2: the real anvil and ours in a real Postfix instance
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# no postfix-oracle: part 2 skipped"; finish; fi
if [ "$(id -u)" != 0 ]; then echo "# not root: part 2 (a real Postfix instance) skipped"; finish; fi
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
REL=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$B/anvil" "$DAEMON_DIR")
printf '%s\n' "real_anvil unix - - n - 1 anvil" "ours_anvil unix - - n - 1 $REL" \
  "real_anvil4 unix - - n - 1 anvil -o anvil_rate_time_unit=4s -o anvil_status_update_time=7s" \
  "ours_anvil4 unix - - n - 1 $REL -o anvil_rate_time_unit=4s -o anvil_status_update_time=7s" >>"$INST/master.cf"
if ! real postfix start >"$T/rstart.log" 2>&1; then
  bad "the real instance starts" "$(cat "$T/rstart.log")"; finish
fi
REAL_UP=1
wait_for 30 test -S "$RQ/private/ours_anvil4" || { bad "the real instance's sockets appear"; finish; }

probe "$RQ" real_anvil4 <"$T/window.in" >"$T/window.real" &
J1=$!
probe "$RQ" ours_anvil4 <"$T/window.in" >"$T/window.ours2" &
J2=$!
for in in counts; do
  probe "$RQ" real_anvil <"$T/$in.in" >"$T/$in.real"
  probe "$RQ" ours_anvil <"$T/$in.in" >"$T/$in.ours2"
  same "$in: ours answers as the real anvil" "$(cat "$T/$in.real")" "$(sed 's/ours_anvil/real_anvil/g' "$T/$in.ours2")"
done
same "the real anvil still answers as part 1 expects" "$COUNTS_WANT" "$(cat "$T/counts.real")"
warnings_of() {  # SERVICE: the warnings of the anvil process serving it
  local pid
  pid=$(pgrep -f -- "-n $1 -t unix" | head -1)
  [ -n "$pid" ] && sed -n "s/^.* postfix\/anvil\[$pid\]: warning: //p" "$INST/maillog" | sed "s/ $1 socket / SERVICE socket /"
}
same "the same warnings" "$(warnings_of real_anvil)" "$(warnings_of ours_anvil)"
wait "$J1" "$J2"
same "window: ours answers as the real anvil" "$(cat "$T/window.real")" "$(cat "$T/window.ours2")"
sleep 1
pr=$(pgrep -f -- "-n real_anvil4 -t unix" | head -1) po=$(pgrep -f -- "-n ours_anvil4 -t unix" | head -1)
same "the same statistics as the real anvil" "$(stats "$INST/maillog" "${pr:-none}")" "$(stats "$INST/maillog" "${po:-none}")"

# The real smtpd enforces its client limits with our anvil.
sed -i "s|^anvil \(.*\)anvil *\$|anvil \1$REL|" "$INST/master.cf"
grep -q "^anvil .*$REL" "$INST/master.cf" && ok "master.cf: the anvil service runs ours" ||
  bad "master.cf: the anvil service runs ours" "$(grep '^anvil' "$INST/master.cf")"
real postconf -e 'smtpd_client_connection_rate_limit = 2' 'smtpd_client_message_rate_limit = 1' \
  'smtpd_client_event_limit_exceptions =' >/dev/null
real postfix reload >/dev/null 2>&1
sleep 2
got=$(timeout 60 python3 - "$PORT" <<'EOF'
import smtplib, sys
port = int(sys.argv[1])
out = []
for i in range(3):
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=20)
        s.ehlo("client.test")
        code, _ = s.mail("a@example.org"); out.append("mail %d" % code)
        s.rset()
        code, _ = s.mail("a@example.org"); out.append("mail %d" % code)
        s.quit()
    except smtplib.SMTPConnectError as e:
        out.append("connect %d %s" % (e.smtp_code, e.smtp_error.decode()))
    except smtplib.SMTPServerDisconnected as e:
        out.append("disconnected")
print("\n".join(out))
EOF
)
if [[ $got == "mail 250"$'\n'"mail 450"$'\n'"mail 450"$'\n'"mail 450"$'\n'"connect 421 "*"Error: too many connections from 127.0.0.1" ]]; then
  ok "the real smtpd limits the message and connection rates with our anvil"
else bad "the real smtpd limits the message and connection rates with our anvil" "$got" "$(grep -E 'smtpd|anvil' "$INST/maillog" | tail -5)"; fi
grep -q "postfix/smtpd\[[0-9]*\]: warning: Connection rate limit exceeded: 3 from localhost\[127.0.0.1\] for service [^ ]*$" \
  "$INST/maillog" && ok "... and logs Postfix's warning" || bad "... and logs Postfix's warning" "$(grep -E 'smtpd' "$INST/maillog" | tail -5)"
# The real master shows the command's name only: tell ours by its executable.
ours_running() {
  local p exe
  exe=$(readlink -f "$B/anvil")
  for p in $(pgrep -x anvil); do [ "$(readlink -f "/proc/$p/exe")" = "$exe" ] && grep -q "$INST" "/proc/$p/environ" 2>/dev/null && return 0; done
  return 1
}
if ours_running; then ok "our anvil served the anvil service"; else bad "our anvil served the anvil service" "$(pgrep -a anvil)"; fi
if grep -qE "postfix/(anvil|smtpd|master)\[[0-9]+\]: (fatal|panic)" "$INST/maillog"; then
  bad "no fatal errors in the real instance" "$(grep -E "(fatal|panic)" "$INST/maillog" | head -3)"
else ok "no fatal errors in the real instance"; fi
finish
