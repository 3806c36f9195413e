#!/usr/bin/env bash
# smtp(8): our SMTP delivery agent against the real Postfix 3.7 smtp, on
# the same queue files, inside a real Postfix instance (postfix-oracle).
#
# Instance A's master.cf "smtp" and "relay" services run first the real
# smtp, then ours; qmgr, trivial-rewrite, bounce and the rest are the real
# Postfix, so the real qmgr hands our agent its delivery requests and our
# agent reports to the real bounce/defer services.  transport_maps sends
# each test domain to a loopback next hop:
#   ok.test      [127.0.0.1]:SINK       smtp-sink, PIPELINING, DSN: sent (250)
#   hard.test    [127.0.0.1]:HARD       smtp-sink -f RCPT (550; no PIPELINING): bounced,
#                                        the DSN mentions the remote text
#   soft.test    [127.0.0.1]:SOFT       smtp-sink -r RCPT (451): deferred
#   dead.test    [127.0.0.1]:DEAD       nobody listens: connection refused, deferred
#   greet.test   [127.0.0.1]:GREET      smtp-sink -Q CONNECT: 421 greeting, deferred
#   lost.test    [127.0.0.1]:LOST       smtp-sink -q DATA: lost connection, deferred
#   nopipe.test  [127.0.0.1]:NOPIPE     smtp-sink -p: no PIPELINING, sent
#   tls.test     [127.0.0.1]:B          a second real Postfix with STARTTLS:
#                                        smtp_tls_security_level=may, sent over TLS
#   enc.test     relay:[127.0.0.1]:B    the same with encrypt (relay service)
#   encfail.test relay:[127.0.0.1]:SINK encrypt against a server without
#                                        STARTTLS: deferred (4.7.4)
# Compared: the smtp log lines (queue IDs, delays and the TLS session
# details normalized), the DSN that the bounce reaches the sender with,
# and the messages as smtp-sink received them (dot stuffing, long lines).
# Needs root and the oracle; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
SMTP=$MTA_BIN/smtp
QT=$MTA_BIN/queue_tool
[ -x "$SMTP" ] && [ -x "$QT" ] || { echo "# skip: $SMTP or $QT is not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (a real instance)"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi
command -v openssl >/dev/null || { echo "# skip: no openssl command"; exit 77; }

T=$(mktemp -d /tmp/smtp_delivery.XXXXXX) || exit 1
chmod 755 "$T"
INST=$T/a Q=$T/a/queue LOG=$T/a/maillog RECV=$T/b
STARTED=0 STARTED_B=0
SINK_PIDS=()
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
stop_instance() {
  if [ $STARTED = 1 ]; then pf postfix -c "$INST" stop >/dev/null 2>&1; STARTED=0; fi
}
stop_sinks() {
  local p
  for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${SINK_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  SINK_PIDS=()
}
cleanup() {
  stop_instance
  [ $STARTED_B = 1 ] && pf postfix -c "$RECV" stop >/dev/null 2>&1
  stop_sinks
  [ -n "${KEEP:-}" ] && return; rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same_files() {  # NAME EXPECTED_FILE ACTUAL_FILE
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -a -u "$2" "$3" | head -n 40 | sed 's/^/    /')"; fi
}
expect_grep() {  # NAME PATTERN FILE
  if grep -qE -- "$2" "$3"; then ok "$1"; else bad "$1" "no line matches: $2" "$(head -n 20 "$3" | sed 's/^/    /')"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- setup
PORT_A=$(free_port) PORT_B=$(free_port)
SINK=$(free_port) HARD=$(free_port) SOFT=$(free_port) DEAD=$(free_port)
GREET=$(free_port) LOST=$(free_port) NOPIPE=$(free_port) NOTICE=$(free_port)
timeout 120 "$ORACLE" instance "$INST" "$PORT_A" >"$T/instance.log" 2>&1 || { bad "instance A setup" "$(tail -5 "$T/instance.log")"; exit 1; }
timeout 120 "$ORACLE" instance "$RECV" "$PORT_B" >"$T/instance_b.log" 2>&1 || { bad "instance B setup" "$(tail -5 "$T/instance_b.log")"; exit 1; }
DAEMONS=$("$ORACLE" path)/usr/lib/postfix/sbin
OURS_REL=$(realpath --relative-to="$DAEMONS" "$SMTP")

# B: the receiving MTA, with STARTTLS, that throws mail for the test domains away.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
  -keyout "$RECV/key.pem" -out "$RECV/cert.pem" >/dev/null 2>&1
chmod 600 "$RECV/key.pem"
pf postconf -c "$RECV" -e "smtpd_tls_cert_file = $RECV/cert.pem" "smtpd_tls_key_file = $RECV/key.pem" \
  'smtpd_tls_security_level = may' 'mynetworks = 127.0.0.0/8' 'relay_domains = tls.test enc.test' \
  "transport_maps = inline:{tls.test=discard:, enc.test=discard:}" >/dev/null
pf postfix -c "$RECV" start >"$T/start_b.log" 2>&1 && STARTED_B=1
[ $STARTED_B = 1 ] || { bad "instance B starts" "$(tail -3 "$T/start_b.log")"; exit 1; }

# A: the sending instance.
cat >"$INST/transport" <<EOT
ok.test smtp:[127.0.0.1]:$SINK
hard.test smtp:[127.0.0.1]:$HARD
soft.test smtp:[127.0.0.1]:$SOFT
dead.test smtp:[127.0.0.1]:$DEAD
greet.test smtp:[127.0.0.1]:$GREET
lost.test smtp:[127.0.0.1]:$LOST
nopipe.test smtp:[127.0.0.1]:$NOPIPE
tls.test smtp:[127.0.0.1]:$PORT_B
enc.test relay:[127.0.0.1]:$PORT_B
encfail.test relay:[127.0.0.1]:$SINK
example.org smtp:[127.0.0.1]:$NOTICE
EOT
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'smtp_tls_security_level = may' \
  'smtp_tls_loglevel = 1' 'smtp_connect_timeout = 5s' 'smtp_helo_timeout = 10s' 'smtp_data_done_timeout = 10s' \
  'smtp_mail_timeout = 10s' 'smtp_rcpt_timeout = 10s' 'smtp_data_init_timeout = 10s' 'smtp_quit_timeout = 10s' \
  'delay_warning_time = 0' 'bounce_size_limit = 2000' >/dev/null

start_sink() {  # PORT DUMPDIR OPTIONS...
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir" && chown postfix "$dir"
  "$ORACLE" run smtp-sink -u postfix -d "$dir/%H%M%S." "$@" "127.0.0.1:$port" 50 \
    2> >(grep -v '^postfix-oracle:' >>"$T/sink.err") &
  SINK_PIDS+=($!)
}

# A fixed message: a line that starts with ".", a line longer than
# smtp_line_length_limit, one longer than a queue record, 8-bit text.
LONG=$(head -c 3000 /dev/zero | tr '\0' L)
message() {  # SUBJECT
  printf 'Subject: %s\nFrom: Sender <s@example.org>\nTo: someone\nDate: Sat, 1 Nov 2025 10:00:00 +0000\nMessage-ID: <%s@example.org>\n\n.leading dot\n..two dots\n.\nnormal line\n%s\nlast line' \
    "$1" "$1" "$LONG"
}
inject() {  # RECIPIENT SUBJECT [QUEUE_TOOL ARGS]
  local rcpt=$1 subject=$2 out id file; shift 2
  case $rcpt in *,*) ;; *) rcpt="$rcpt,$rcpt" ;; esac
  out=$(message "$subject" | "$QT" write "$T/stage" -s sender@example.org -a rewrite_context=local -r "$rcpt" "$@") || return 1
  read -r id file <<<"$out"
  chown postfix:postfix "$file" && mv "$file" "$Q/incoming/$id"
  echo "$id" >>"$T/ids"
}
kick() { pf postkick -c "$INST" public qmgr I >/dev/null 2>&1; }
# Settled: every injected message has an smtp result, and nothing waits in incoming/ or active/.
settled() {
  local id
  while read -r id; do grep -q "$id: to=<" "$LOG" || return 1; done <"$T/ids"
  [ -z "$(find "$Q/incoming" "$Q/active" -type f 2>/dev/null)" ]
}
# The smtp and relay log lines, normalized and sorted (the process name and
# pid, queue IDs, delays, TLS key exchange details vary).
smtp_log() {
  grep -E 'postfix/(smtp|relay|relay/smtp)\[' "$LOG" | sed -E -e 's/^.*postfix\/[a-z/]+\[[0-9]+\]: //' \
    -e 's/^[0-9A-F]+: /QID: /' -e 's/delay=[0-9.]+, delays=[0-9.\/]+/delay=D, delays=D/' \
    -e 's/queued as [0-9A-F]+/queued as QID/' -e 's/[0-9A-F]{8,}/QID/g' | sort
}
# The bounce log records (the notice itself goes to sender@example.org,
# which transport_maps sends to the "notice" sink).
bounce_text() { for f in "$Q"/bounce/*/* "$Q"/bounce/*; do [ -f "$f" ] && cat "$f"; done 2>/dev/null | tr -d '\0' | strings | grep -E 'reason=|status=|diag|mta' | sed -E 's/[0-9A-F]{8,}/QID/g' | sort; }
sink_dumps() {  # DIR: the received messages, their names and Received: IDs aside
  local f
  for f in "$1"/*; do [ -f "$f" ] && { sed -E -e 's/(with E?SMTP id )[0-9A-Za-z]+;/\1ID;/' -e 's/^	[A-Z][a-z][a-z], [0-9]+ [A-Z][a-z][a-z] [0-9]{4} .*/	DATE/' "$f" | base64 -w0; echo; }; done | sort | while read -r m; do base64 -d <<<"$m"; echo "=="; done
}

run_agent() {  # AGENT(real|ours)
  local agent=$1 cmd=smtp out=$T/out/$1
  [ "$agent" = ours ] && cmd=$OURS_REL
  pf postconf -c "$INST" -M "smtp/unix=smtp unix - - n - - $cmd" >/dev/null
  pf postconf -c "$INST" -M "relay/unix=relay unix - - n - - $cmd -o smtp_tls_security_level=encrypt" >/dev/null
  rm -rf "$T/sink" "$T/ids" "$T/stage"; mkdir -p "$T/stage/incoming"; : >"$T/ids"
  start_sink "$SINK" "$T/sink/ok"
  start_sink "$HARD" "$T/sink/hard" -f RCPT -B "550 5.1.1 <u@hard.test>: Recipient address rejected: User unknown in virtual mailbox table"
  start_sink "$SOFT" "$T/sink/soft" -r RCPT -b "451 4.3.0 <u@soft.test>: Temporary lookup failure"
  start_sink "$GREET" "$T/sink/greet" -Q CONNECT
  start_sink "$LOST" "$T/sink/lost" -q DATA
  start_sink "$NOPIPE" "$T/sink/nopipe" -p
  start_sink "$NOTICE" "$T/sink/notice"
  sleep 0.5
  : >"$LOG"
  pf postfix -c "$INST" start >"$T/start.log" 2>&1 && STARTED=1
  if [ $STARTED = 0 ]; then bad "$agent: the instance starts" "$(tail -3 "$T/start.log")"; return 1; fi
  inject u@ok.test delivered
  inject "u2@ok.test,u2@ok.test,6,rfc822;u2@ok.test" dsn-params -a envelope_id=env-1 -a ret_flags=2
  inject u@hard.test bounced
  inject u@soft.test deferred
  inject u@dead.test refused
  inject u@greet.test greeting
  inject u@lost.test lost
  inject u@nopipe.test nopipe
  inject u@tls.test tls-may
  inject u@enc.test tls-encrypt
  inject u@encfail.test tls-encrypt-fail
  [ "$(wc -l <"$T/ids")" = 11 ] || bad "$agent: 11 test messages are queued" "$(cat "$T/ids")"
  kick
  if ! wait_for 90 settled; then
    bad "$agent: every message is handled" "$(tail -n 8 "$LOG")"
  fi
  sleep 1
  stop_instance
  stop_sinks
  rm -rf "$out"; mkdir -p "$out"
  smtp_log >"$out/log"
  grep -E 'postfix/(smtp|relay)[a-z/]*\[.*(fatal|panic)' "$LOG" >"$out/fatal"
  bounce_text >"$out/bounce"
  cat "$T"/sink/notice/* >"$out/notices" 2>/dev/null
  for d in ok nopipe; do sink_dumps "$T/sink/$d" >"$out/sink.$d"; done
  cp "$LOG" "$out/maillog"
  pf postsuper -c "$INST" -d ALL >/dev/null 2>&1
  return 0
}

run_agent real
run_agent ours

R=$T/out/real O=$T/out/ours
same_files "the same smtp log lines as the real smtp" "$R/log" "$O/log"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the same bounce log (DSN) records" "$R/bounce" "$O/bounce"
same_files "ok.test received the same message (PIPELINING)" "$R/sink.ok" "$O/sink.ok"
same_files "nopipe.test received the same message (no PIPELINING)" "$R/sink.nopipe" "$O/sink.nopipe"
# The scenarios themselves, in our log (so that a test of two broken agents fails).
expect_grep "delivered: status=sent (250 ...)" 'to=<u@ok.test>, relay=127.0.0.1\[127.0.0.1\]:[0-9]+, delay=D, delays=D, dsn=2.0.0, status=sent \(250 2.0.0 Ok\)' "$O/log"
expect_grep "550: bounced with the remote text" 'to=<u@hard.test>.*dsn=5.1.1, status=bounced \(host 127.0.0.1\[127.0.0.1\] said: 550 5.1.1 <u@hard.test>: Recipient address rejected: User unknown in virtual mailbox table \(in reply to RCPT TO command\)\)' "$O/log"
expect_grep "451: deferred" 'to=<u@soft.test>.*dsn=4.3.0, status=deferred \(host 127.0.0.1\[127.0.0.1\] said: 451 4.3.0' "$O/log"
expect_grep "remote down: connection refused" 'to=<u@dead.test>, relay=none, .*status=deferred \(connect to 127.0.0.1\[127.0.0.1\]:[0-9]+: Connection refused\)' "$O/log"
expect_grep "421 greeting: deferred" 'to=<u@greet.test>.*status=deferred \(host 127.0.0.1\[127.0.0.1\] refused to talk to me: 421' "$O/log"
expect_grep "lost connection: deferred" 'to=<u@lost.test>.*status=deferred \(lost connection with 127.0.0.1\[127.0.0.1\] while sending' "$O/log"
expect_grep "STARTTLS (may): TLS log line" '^Untrusted TLS connection established to 127.0.0.1\[127.0.0.1\]:[0-9]+: TLSv1.3 with cipher' "$O/log"
expect_grep "STARTTLS (may): sent" 'to=<u@tls.test>.*status=sent \(250 2.0.0 Ok' "$O/log"
expect_grep "STARTTLS (encrypt): sent" 'to=<u@enc.test>.*status=sent \(250 2.0.0 Ok' "$O/log"
expect_grep "encrypt without STARTTLS: deferred" 'to=<u@encfail.test>.*dsn=4.7.4, status=deferred \(TLS is required, but was not offered by host 127.0.0.1\[127.0.0.1\]\)' "$O/log"
expect_grep "the bounce notice reached the sender with the remote text" '^<u@hard.test>: host 127.0.0.1\[127.0.0.1\] said: 550 5.1.1' "$O/notices"
expect_grep "the bounce notice has the remote MTA's Diagnostic-Code" '^Diagnostic-Code: smtp; 550 5.1.1 <u@hard.test>' "$O/notices"
expect_grep "the bounce notice names the remote MTA" '^Remote-MTA: dns; 127.0.0.1' "$O/notices"
if grep -q '^\.\.leading dot' "$O/sink.ok" && grep -q '^\.\.\.two dots' "$O/sink.ok"; then
  bad "dot stuffing is undone by the server" "$(grep -n 'dot' "$O/sink.ok" | head -3)"
else
  expect_grep "message body arrived intact" '^\.leading dot' "$O/sink.ok"
fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
