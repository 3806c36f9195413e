#!/usr/bin/env bash
# error, retry and discard against the real ones.  Two real Postfix 3.7
# instances (postfix-oracle): R runs the real delivery agents, M runs ours
# as its error, retry and discard services (and everything else real: the
# bounce and defer daemons our agents report to, qmgr, smtpd).
#  1. tr_probe plays qmgr: the same delivery requests, for identical queue
#     files written with lib/queue, go to R's and M's agents; the replies,
#     the recipient marks in the queue files, the bounce/defer logs that
#     the bounce daemon wrote for them, and the agents' log lines must be
#     the same (queue IDs, process IDs and delays normalized).
#  2. The real qmgr drives ours: one message over SMTP to recipients that
#     transport_maps sends to error, retry and discard; the outcome (log
#     lines, the deferred message and its reason) must be R's.
# Skipped without the oracle, or when the instances cannot be started.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
PROBE=$MTA_BIN/tr_probe
QTOOL=$MTA_BIN/queue_tool
for f in "$PROBE" "$QTOOL" "$MTA_BIN/error" "$MTA_BIN/discard"; do
  [ -x "$f" ] || { echo "# skip: $f is not built"; exit 77; }
done
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# skip: no postfix-oracle"; exit 77; fi
if [ "$(id -u)" != 0 ]; then echo "# skip: a real Postfix instance needs root"; exit 77; fi
T=$(mktemp -d) || exit 1
chmod 755 "$T"
STARTED=()
stop_instances() {
  local i
  for i in "${STARTED[@]}"; do timeout 60 "$ORACLE" run postfix -c "$T/$i" stop >/dev/null 2>&1; done
  STARTED=()
}
trap 'stop_instances; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else
    bad "$1" "$(diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -n 40 | sed 's/^/    /')"
  fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
run() { local inst=$1; shift; timeout 60 "$ORACLE" run "$1" -c "$T/$inst" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }

if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# skip: postfix-oracle install failed"; exit 77; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
free_port() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
PORT_R=$(free_port) && PORT_M=$(free_port) && [ "$PORT_R" != "$PORT_M" ] || { echo "# skip: no free ports"; exit 77; }
printf '%s\n' 'error.test  error:5.7.1 no such place' 'retry.test  retry:4.7.1 not now' \
  'discard.test  discard:dropped here' 'plain.test  error:Go away' >"$T/transport"
for i in R M; do
  port=PORT_$i
  timeout 120 "$ORACLE" instance "$T/$i" "${!port}" >"$T/instance.$i.log" 2>&1 || { cat "$T/instance.$i.log"; exit 1; }
  # smtpd_reject_unlisted_recipient = no: smtpd would refuse the error and
  # retry recipients itself.
  run "$i" postconf -e "transport_maps = texthash:$T/transport" 'delay_warning_time = 0' \
    'smtpd_reject_unlisted_recipient = no' >/dev/null
done
DAEMON_DIR=$(run R postconf -xh daemon_directory)
rel() { python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "$DAEMON_DIR"; }
# M: our error (as error and retry) and discard.
sed -i -e "s|^\(error .*\) error\$|\1 $(rel "$MTA_BIN/error")|" -e "s|^\(retry .*\) error\$|\1 $(rel "$MTA_BIN/error")|" \
  -e "s|^\(discard .*\) discard\$|\1 $(rel "$MTA_BIN/discard")|" "$T/M/master.cf"
same "M's master.cf runs our error, retry and discard" 3 "$(grep -c "$(rel "$MTA_BIN")" "$T/M/master.cf")"
for i in R M; do
  if ! run "$i" postfix start >"$T/start.$i.log" 2>&1; then
    cat "$T/start.$i.log"; echo "# skip: a real Postfix instance did not start"; exit 77
  fi
  STARTED+=("$i")
  wait_for 30 test -S "$T/$i/queue/private/discard" || { bad "instance $i's sockets appear"; exit 1; }
  install -d -o postfix -m 700 "$T/$i/queue/probe"
done

# --- 1. delivery requests as qmgr sends them
# A queue file with three recipients (one wants DSN SUCCESS notices), the
# same bytes in both instances; prints its queue ID.
new_message() {  # INSTANCE
  local out
  out=$(printf '%s\n' 'Subject: probe' 'From: sender@example.org' '' 'hello' |
    "$QTOOL" write "$T/$1/queue" -q probe -t 1700000000.123456 -s sender@example.org \
      -r 'a@x.test,A@x.test' -r 'b@y.test,b@y.test,2,rfc822;b@y.test' -r 'c@z.test') || return 1
  chown postfix "${out#* }"
  echo "${out%% *}"
}
# Normalizes a transcript: queue IDs, pids, dates, delays.
norm() {
  sed -E -e "s/$1/QID/g" -e 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [^ ]+ //' -e 's/\[[0-9]+\]:/[PID]:/' \
    -e 's/delay=[0-9.]+/delay=N/' -e 's/delays=[0-9.]+\/[0-9.]+\/[0-9.]+\/[0-9.]+/delays=N/' \
    -e 's/(log_time|arrival_time|time)=[0-9]+/\1=N/'
}
CASES=(
  "error|5.1.1 User unknown in here|3"
  "error|Go away|3"
  "error|4.1.1 wrong class|3"
  "error|  5.2.2   mailbox full  |3"
  "retry|4.4.1 later, please|3"
  "retry|Try again|3"
  "retry|5.1.1 wrong class|3"
  "discard|spam, no thanks|3"
  "discard|2.7.0 filtered|3"
  "discard|not marked done|0"
  "discard|recorded|1027"
  "error|verify probe|259"
)
n=0
for c in "${CASES[@]}"; do
  IFS='|' read -r service nexthop flags <<<"$c"
  n=$((n + 1))
  for i in R M; do
    id=$(new_message "$i") || { bad "queue file for case $n"; continue 2; }
    : >"$T/$i/maillog.mark"
    before=$(wc -l <"$T/$i/maillog")
    reply=$(timeout 60 "$PROBE" -q "$T/$i/queue" -t 30 deliver "$service" probe "$id" "$nexthop" "$flags" 2>&1)
    sleep 0.3
    {
      echo "reply: $reply"
      "$QTOOL" show "$T/$i/queue/probe/$id" | sed -n '/^--recipients/,/^--content/p'
      for log in bounce defer trace; do
        f=$(find "$T/$i/queue/$log" -name "$id" 2>/dev/null | head -1)
        [ -n "$f" ] && { echo "-- $log log"; cat "$f"; }
      done
      echo "-- maillog"
      tail -n +$((before + 1)) "$T/$i/maillog" | grep -E "postfix/(error|discard|bounce|defer|trace)\[" |
        grep -v -E 'connect to|(warning|fatal): .*(lookup table|dict)' | sort
    } | norm "$id" >"$T/case$n.$i"
  done
  if cmp -s "$T/case$n.R" "$T/case$n.M"; then
    ok "$service \"$nexthop\" flags=$flags: reply, marks, logs as the real $service"
  else
    bad "$service \"$nexthop\" flags=$flags: differs from the real $service" \
      "$(diff -u --label real --label ours "$T/case$n.R" "$T/case$n.M" | head -n 40)"
  fi
  [ -n "${SHOW_CASES:-}" ] && sed "s/^/# case $n: /" "$T/case$n.M"
done
# A request for a file that is not there: deferred, in both.
for i in R M; do
  timeout 60 "$PROBE" -q "$T/$i/queue" -t 30 deliver error probe 1234567890A "x" >"$T/missing.$i" 2>/dev/null
done
same "a request for a missing queue file is deferred" "$(cat "$T/missing.R")" "$(cat "$T/missing.M")"
same "... with status -1" "status=-1" "$(head -1 "$T/missing.M")"

# --- 2. the real qmgr and smtpd with our agents
send() {  # PORT: one message, null sender, to the four domains; prints its queue ID
  python3 - "$1" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test")
s.mail("<>")
for r in ("u1@error.test", "u2@retry.test", "u3@discard.test", "u4@plain.test"):
    s.rcpt(r)
code, msg = s.data(b"Subject: agents\r\n\r\nhello\r\n")
print(msg.decode().rsplit(" ", 1)[-1])
s.quit()
EOF
}
for i in R M; do
  port=PORT_$i
  id=$(send "${!port}")
  if [ -z "$id" ]; then bad "$i: the message is queued" "$(tail -5 "$T/$i/maillog")"; continue; fi
  done_logging() { grep -q "$2: to=<u2@retry.test>.*status=deferred" "$T/$1/maillog" &&
    [ "$(grep -c "$2: to=<" "$T/$1/maillog")" -ge 4 ]; }
  wait_for 60 done_logging "$i" "$id" || bad "$i: every recipient was handled" "$(grep "$id" "$T/$i/maillog")"
  grep "$id: to=<" "$T/$i/maillog" | norm "$id" | sort >"$T/e2e.$i"
  run "$i" postqueue -j | sed -E "s/$id/QID/; s/\"arrival_time\": [0-9]+/\"arrival_time\": N/" >"$T/queue.$i"
done
same "the real qmgr with our agents: four recipients handled" 4 "$(wc -l <"$T/e2e.M")"
same "the real qmgr with our agents: the same deliveries as with the real ones" "$(cat "$T/e2e.R")" "$(cat "$T/e2e.M")"
same "the message deferred by our retry, as by the real one" "$(cat "$T/queue.R")" "$(cat "$T/queue.M")"
if grep -q '"delay_reason": "not now"' "$T/queue.M"; then ok "the defer reason is retry's next hop"; else bad "the defer reason" "$(cat "$T/queue.M")"; fi
if grep -E "postfix/(error|discard)\[[0-9]+\]: (fatal|panic)" "$T/M/maillog"; then bad "no fatal errors in our agents"; else ok "no fatal errors in our agents"; fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
