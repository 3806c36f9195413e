#!/usr/bin/env bash
# smtp_fallback_relay: our smtp beside the real Postfix 3.7 smtp on the
# same queue files (smtp_lib.sh.inc).  One master.cf service per scenario:
#   up.test     the next hop is down (connection refused); the fallback
#               relay (smtp_fake_server.py) takes the mail: sent, relay= the
#               fallback
#   both.test   the next hop and the fallback relay are both down: deferred
#               with the fallback's reason
#   soft.test   the next hop answers 421 to the greeting (smtp-sink): the
#               fallback takes the mail
#   hard.test   the next hop rejects the recipient with 550 (smtp-sink):
#               bounced at once, the fallback is not tried
#   lmtp.test   lmtp ignores smtp_fallback_relay (set as lmtp_fallback_relay
#               does not exist): deferred
# Compared: log lines, bounce/defer records, the recipients left queued.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
make_instance_a smtp_fallback

GOOD=$(free_port) DEAD=$(free_port) DEAD2=$(free_port) GREET=$(free_port) HARD=$(free_port)
mkdir -p "$T/fake"
python3 "$(dirname "$0")/smtp_fake_server.py" "$T/fake/ready" "$GOOD:plain" 2>"$T/fake/err" &
BG_PIDS+=($!)
wait_for 10 test -f "$T/fake/ready" || { bad "the fake server starts" "$(cat "$T/fake/err")"; exit 1; }
start_sink() {  # PORT OPTIONS...
  local port=$1; shift
  "$ORACLE" run smtp-sink -u postfix "$@" "127.0.0.1:$port" 20 2> >(grep -v '^postfix-oracle:' >>"$T/sink.err") &
  BG_PIDS+=($!)
}
start_sink "$GREET" -Q CONNECT
start_sink "$HARD" -f RCPT -B "550 5.1.1 <u@hard.test>: Recipient address rejected: User unknown"
sleep 0.5

cat >"$INST/transport" <<EOT
up.test fb:[127.0.0.1]:$DEAD
both.test fbdead:[127.0.0.1]:$DEAD
soft.test fb:[127.0.0.1]:$GREET
hard.test fb:[127.0.0.1]:$HARD
lmtp.test lmtp:inet:127.0.0.1:$DEAD
example.org discard:
EOT
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'smtp_connect_timeout = 5s' \
  'lmtp_connect_timeout = 5s' 'smtp_helo_timeout = 10s' "smtp_fallback_relay = [127.0.0.1]:$GOOD" >/dev/null

configure_agent() {  # AGENT CMD
  local l=$2
  [ "$1" = ours ] && l=${2%smtp}lmtp
  [ "$1" = real ] && l=lmtp
  pf postconf -c "$INST" -M "fb/unix=fb unix - - n - - $2" \
    "fbdead/unix=fbdead unix - - n - - $2 -o smtp_fallback_relay=[127.0.0.1]:$DEAD2" \
    "lmtp/unix=lmtp unix - - n - - $l" >/dev/null
}
inject_all() {
  local d
  for d in up both soft hard lmtp; do inject "u@$d.test" "$d-$1"; done
}

run_agent real
run_agent ours
R=$T/out/real O=$T/out/ours
same_files "the same log lines as the real smtp and lmtp" "$R/log" "$O/log"
same_files "the same bounce/defer records" "$R/bounce" "$O/bounce"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the same recipients left in the queue" "$R/queued" "$O/queued"
expect_grep "next hop down: sent through the fallback relay" "to=<u@up.test>, relay=127.0.0.1\[127.0.0.1\]:$GOOD, .*status=sent \(250 2.0.0 Ok: queued as fake1\)" "$O/log"
expect_grep "next hop down: its failure is logged" "^connect to 127.0.0.1\[127.0.0.1\]:$DEAD: Connection refused" "$O/log"
expect_grep "both down: deferred with the fallback's reason" "to=<u@both.test>, relay=none, .*status=deferred \(connect to 127.0.0.1\[127.0.0.1\]:$DEAD2: Connection refused\)" "$O/log"
expect_grep "421 greeting: sent through the fallback relay" "to=<u@soft.test>, relay=127.0.0.1\[127.0.0.1\]:$GOOD, .*status=sent" "$O/log"
expect_grep "550: bounced, no fallback" "to=<u@hard.test>, relay=127.0.0.1\[127.0.0.1\]:$HARD, .*status=bounced" "$O/log"
expect_grep "lmtp: no fallback relay" "to=<u@lmtp.test>, relay=none, .*status=deferred \(connect to 127.0.0.1\[127.0.0.1\]:$DEAD: Connection refused\)" "$O/log"
finish
