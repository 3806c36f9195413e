#!/usr/bin/env bash
# bench/smtpd.sh: our smtpd against the real Postfix 3.7 smtpd (M4), in one run,
# on one machine, with the same settings where they matter.  Two parts:
#   idle    SESSIONS (default 2,000) concurrent idle SMTP sessions (greeting,
#           EHLO, then silence) held by bench/smtp_hold.py against each
#           instance; once all are up, the total VmRSS and PSS
#           (/proc/PID/smaps_rollup) of the instance's smtpd processes.
#           Target: ours < 1/5 of Postfix's.
#   accept  the real smtp-source, CLIENTS (20) concurrent clients, one
#           connection per message, MESSAGES (2,000) messages of SIZE (4096)
#           bytes, into each instance's queue with qmgr removed from
#           master.cf (cleanup still fsyncs before smtpd says 250; nothing is
#           delivered).  ROUNDS (3) rounds alternating ours/Postfix, median
#           messages/s.  Target: ours >= 1.5x Postfix.  The queue files are
#           counted after every round.
# usage: bench/smtpd.sh [idle|accept|all]       (default all; needs root and
#        ../shared/tools/postfix-oracle; our binaries from $MTA_BIN, default
#        build-smtpd/bin; KEEP_TMP=1 keeps the instances' directories and logs)
# Prints a table; exits 0 when it could measure, non-zero with a reason if not.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
part=${1:-all}
case $part in idle|accept|all) ;; *) echo "usage: $0 [idle|accept|all]" >&2; exit 2 ;; esac
SESSIONS=${SESSIONS:-2000} MESSAGES=${MESSAGES:-2000} ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-20} SIZE=${SIZE:-4096}
B=${MTA_BIN:-$top/build-smtpd/bin}
oracle=${POSTFIX_ORACLE:-$top/../shared/tools/postfix-oracle}
die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (both instances drop privileges to postfix)"
[ -x "$oracle" ] || die "needs postfix-oracle at $oracle"
for p in master postfix smtpd cleanup trivial-rewrite postconf; do
  [ -x "$B/$p" ] || die "$B/$p is not built"
done
command -v python3 >/dev/null || die "needs python3"
timeout 200 "$oracle" install >/dev/null 2>&1 || die "postfix-oracle install failed"
# Every held session is a descriptor in the client, and the masters and
# smtpd processes inherit the limit (our smtpd sizes its sessions by it).
want=$((SESSIONS + 1000))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$want" ] || die "ulimit -Hn is below $want"
ulimit -n "$( [ "$(ulimit -Hn)" = unlimited ] && echo $((want > 65536 ? want : 65536)) || ulimit -Hn)"

w=$(mktemp -d); chmod 755 "$w"
HOLD_PID=''
stop_all() {
  [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null && wait "$HOLD_PID" 2>/dev/null
  [ -f "$w/ours/main.cf" ] && timeout 60 "$B/postfix" -c "$w/ours" stop >/dev/null 2>&1
  [ -f "$w/real/main.cf" ] && timeout 60 "$oracle" run postfix -c "$w/real" stop >/dev/null 2>&1
  local who pid i
  for who in ours real; do   # wait for each master (and so its children) to go
    pid=$(master_pid "$w/$who")
    for i in $(seq 100); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
  if [ -n "${KEEP_TMP:-}" ]; then echo "bench: kept $w" >&2; else rm -rf "$w"; fi
}
trap 'stop_all || true' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { local i; for i in $(seq 150); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0; sleep 0.2; done; return 1; }
master_pid() { tr -dc 0-9 < "$1/queue/pid/master.pid" 2>/dev/null || true; }

# The settings both instances share: loopback only, clients in mynetworks
# (so the recipient at example.com is relayed), no per-client limits (no
# anvil), a timeout that outlasts the measurement, a process limit above
# the number of sessions (Postfix needs one smtpd per session), and no
# in_flow_delay: without qmgr nobody refills master's flow-control tokens,
# and Postfix's cleanup would wait 1s per message for one.
COMMON=("myhostname = mail.bench.example" 'mydestination = $myhostname, localhost'
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8"
  "compatibility_level = 3.6" "smtpd_timeout = 900s" "smtpd_client_connection_count_limit = 0"
  "smtpd_client_connection_rate_limit = 0" "default_process_limit = $((SESSIONS + 500))"
  "in_flow_delay = 0s")
PORT_OURS=$(free_port) PORT_REAL=$(free_port)

mkdir -p "$w/ours/queue"
cp "$top/conf/main.cf" "$top/conf/master.cf" "$w/ours/"
"$B/postconf" -c "$w/ours" -e "queue_directory = $w/ours/queue" "data_directory = $w/ours/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $w/ours/maillog" \
  "maillog_file_prefixes = $w" "alias_maps =" "alias_database =" "${COMMON[@]}" >/dev/null 2>&1 ||
  die "cannot configure our instance"
"$B/postconf" -c "$w/ours" -MX smtp/inet
"$B/postconf" -c "$w/ours" -Me "127.0.0.1:$PORT_OURS/inet=127.0.0.1:$PORT_OURS inet n - n - - smtpd"
timeout 120 "$oracle" instance "$w/real" "$PORT_REAL" >"$w/instance.log" 2>&1 ||
  die "postfix-oracle instance failed: $(tail -3 "$w/instance.log")"
timeout 120 "$oracle" run postconf -c "$w/real" -e "${COMMON[@]}" >/dev/null 2>&1 ||
  die "cannot configure the real instance"
# No chroot in either (the oracle's instance has none); no qmgr in either:
# mail stays in incoming/ and only acceptance is measured.
"$B/postconf" -c "$w/ours" -F '*/*/chroot = n' >/dev/null
"$B/postconf" -c "$w/ours" -MX qmgr/unix
timeout 60 "$oracle" run postconf -c "$w/real" -MX qmgr/unix

start() {  # ours|real
  local rc=0
  if [ "$1" = ours ]; then "$B/postfix" -c "$w/ours" start >/dev/null 2>&1 || rc=$?
  else timeout 120 "$oracle" run postfix -c "$w/real" start >/dev/null 2>&1 || rc=$?; fi
  [ $rc = 0 ] || die "$1 instance does not start: $(tail -3 "$w/$1/maillog" 2>/dev/null)"
  wait_port "$(port "$1")" || die "$1 instance does not listen: $(tail -3 "$w/$1/maillog")"
}
stop() {  # ours|real: stop and wait until master has gone
  local pid i; pid=$(master_pid "$w/$1")
  if [ "$1" = ours ]; then timeout 60 "$B/postfix" -c "$w/ours" stop >/dev/null 2>&1 || true
  else timeout 60 "$oracle" run postfix -c "$w/real" stop >/dev/null 2>&1 || true; fi
  for i in $(seq 150); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "$1 master $pid does not stop"
}
port() { [ "$1" = ours ] && echo "$PORT_OURS" || echo "$PORT_REAL"; }
name() { [ "$1" = ours ] && echo ours || echo Postfix; }

# mem WHO: "SMTPD_PROCS SMTPD_RSS_KB SMTPD_PSS_KB ALL_PROCS ALL_PSS_KB" for the
# smtpd children of WHO's master, and for master with all its children.
mem() {
  local m; m=$(master_pid "$w/$1")
  { echo "master $m"; pgrep -P "$m" | while read -r c; do echo "$(cat "/proc/$c/comm" 2>/dev/null) $c"; done; } |
  while read -r comm pid; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
    echo "$comm ${rss:-0} ${pss:-0}"
  done | awk '{ all++; allpss += $3 } $1 == "smtpd" { n++; rss += $2; pss += $3 }
              END { printf "%d %d %d %d %d\n", n, rss, pss, all, allpss }'
}
# cpu WHO: clock ticks used so far by WHO's master and every child it has
# reaped or still has (a child's ticks move into master's cutime at reaping).
cpu() {
  local m; m=$(master_pid "$w/$1")
  { cat "/proc/$m/stat"; pgrep -P "$m" | while read -r c; do cat "/proc/$c/stat" 2>/dev/null; done; } |
    sed 's/^.*) //' | awk '{ t += $12 + $13 + $14 + $15 } END { print t }'
}
queue_files() { find "$w/$1/queue/incoming" "$w/$1/queue/active" "$w/$1/queue/deferred" \
  "$w/$1/queue/hold" "$w/$1/queue/maildrop" -type f 2>/dev/null | wc -l; }
clear_queue() { find "$w/$1/queue/incoming" "$w/$1/queue/active" "$w/$1/queue/deferred" \
  "$w/$1/queue/hold" -type f -delete 2>/dev/null || true; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
verdict() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { if (r == "-") print "n/a";
  else if ((op == "<" && r + 0 < t + 0) || (op == ">=" && r + 0 >= t + 0)) print "met"; else print "NOT met" }'; }
row() { printf '%-36s %20s %20s %7s %8s %8s\n' "$@"; }
# WHO: warnings, errors, fatals and panics of WHO's log, without the expected
# ones (no qmgr to trigger, daemons not built, the oracle's unpacked tree).
log_problems() {
  grep -E 'warning:|error:|fatal:|panic:' "$w/$1/maillog" 2>/dev/null | grep -v -e 'not owned by' -e 'unable to look up public/qmgr' \
    -e 'service disabled$' -e 'postfix-script.*writable' -e 'postfix-script.*not set-gid' |
    sed 's/^[A-Z][a-z][a-z] [ 0-9]*[0-9] [0-9:]* [^ ]* //; s/\[[0-9]*\]//' | sort | uniq -c | sort -rn | head -8
}

idle() {
  local who res
  for who in ours real; do
    start "$who"
    rm -f "$w/ready"
    python3 "$top/bench/smtp_hold.py" --port "$(port "$who")" --sessions "$SESSIONS" \
      --ready-file "$w/ready" --setup-limit 240 --max-hold 300 >"$w/hold.$who" 2>"$w/hold.$who.err" &
    HOLD_PID=$!
    for _ in $(seq 1300); do [ -f "$w/ready" ] || ! kill -0 "$HOLD_PID" 2>/dev/null && break; sleep 0.2; done
    [ -f "$w/ready" ] || die "the idle client did not finish connecting to $(name "$who"): $(cat "$w/hold.$who.err")"
    sleep 3   # let every process settle (Postfix: the last forks; ours: nothing)
    res=$(mem "$who"); read -r "n_$who" "rss_$who" "pss_$who" "alln_$who" "allpss_$who" <<<"$res"
    kill -USR1 "$HOLD_PID"
    wait "$HOLD_PID" || true
    HOLD_PID=''
    read -r _ "est_$who" "fail_$who" "secs_$who" < <(grep '^established' "$w/hold.$who")
    eval "alive_$who=\$(awk '/^alive/ { print \$2 }' \"\$w/hold.\$who\")"
    stop "$who"
  done
  echo
  row "smtpd, $SESSIONS idle sessions (EHLO)" ours Postfix ratio target result
  row "sessions established / alive at end" "$est_ours/${alive_ours:-?}" "$est_real/${alive_real:-?}" "" "" ""
  row "time to establish all" "${secs_ours}s" "${secs_real}s" "" "" ""
  row "smtpd processes" "$n_ours" "$n_real" "" "" ""
  local r; r=$(ratio "$rss_ours" "$rss_real")
  row "smtpd total VmRSS" "$(mb "$rss_ours")" "$(mb "$rss_real")" "$r" "< 0.20" "$(verdict "$r" "<" 0.2)"
  r=$(ratio "$pss_ours" "$pss_real")
  row "smtpd total PSS" "$(mb "$pss_ours")" "$(mb "$pss_real")" "$r" "< 0.20" "$(verdict "$r" "<" 0.2)"
  row "per session PSS" "$(awk -v k="$pss_ours" -v n="$est_ours" 'BEGIN { printf "%.1f kB", k / n }')" \
    "$(awk -v k="$pss_real" -v n="$est_real" 'BEGIN { printf "%.1f kB", k / n }')" "" "" ""
  row "whole instance PSS (all processes)" "$(mb "$allpss_ours") /$alln_ours" "$(mb "$allpss_real") /$alln_real" \
    "$(ratio "$allpss_ours" "$allpss_real")" "" ""
  for who in ours real; do
    if [ "$(eval echo "\$fail_$who")" != 0 ] || [ "$(eval echo "\${alive_$who:-0}")" != "$SESSIONS" ]; then
      echo "warning: $(name "$who"): not every session was established and kept; client said:"
      sed 's/^/  /' "$w/hold.$who.err"
    fi
  done
}

accept() {
  local who r i s e t0 t1 n total_ours=0 total_real=0 tck; tck=$(getconf CLK_TCK)
  local src=("$oracle" run smtp-source -l "$SIZE" -s "$CLIENTS" -f sender@bench.example -t rcpt@example.com -M client.bench.example)
  start ours; start real
  for who in ours real; do   # warm up: processes started, tables and libraries read
    timeout 120 "${src[@]}" -m 100 "127.0.0.1:$(port "$who")" >/dev/null 2>"$w/src.$who.err" ||
      die "smtp-source against $(name "$who") failed: $(tail -3 "$w/src.$who.err")"
    sleep 1; clear_queue "$who"
  done
  : > "$w/rates.ours"; : > "$w/rates.real"; : > "$w/cpu.ours"; : > "$w/cpu.real"
  for i in $(seq "$ROUNDS"); do
    for who in ours real; do
      t0=$(cpu "$who"); s=$(date +%s.%N)
      timeout 300 "${src[@]}" -m "$MESSAGES" "127.0.0.1:$(port "$who")" >/dev/null 2>"$w/src.$who.err" ||
        die "smtp-source against $(name "$who") failed in round $i: $(tail -3 "$w/src.$who.err")"
      e=$(date +%s.%N); t1=$(cpu "$who")
      awk -v n="$MESSAGES" -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", n / (e - s) }' >>"$w/rates.$who"
      awk -v t="$((t1 - t0))" -v k="$tck" -v n="$MESSAGES" 'BEGIN { printf "%.3f\n", t * 1000 / k / n }' >>"$w/cpu.$who"
      sleep 0.5
      n=$(queue_files "$who")
      eval "total_$who=\$((total_$who + n))"
      [ "$n" = "$MESSAGES" ] || echo "warning: $(name "$who") round $i: $n queue files for $MESSAGES messages"
      clear_queue "$who"
    done
  done
  stop ours; stop real
  median() { sort -g "$1" | awk -v d="${2:-1}" '{ v[NR] = $1 } END { printf "%." d "f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  local ro rr co cr; ro=$(median "$w/rates.ours"); rr=$(median "$w/rates.real")
  co=$(median "$w/cpu.ours" 2); cr=$(median "$w/cpu.real" 2)
  echo
  row "smtpd accept, $CLIENTS clients, $(awk -v s="$SIZE" 'BEGIN{printf "%g", s/1024}') KB" ours Postfix ratio target result
  row "messages/s (median of $ROUNDS x $MESSAGES)" "$ro" "$rr" "$(ratio "$ro" "$rr")" ">= 1.50" "$(verdict "$(ratio "$ro" "$rr")" ">=" 1.5)"
  row "  each round" "$(paste -sd' ' "$w/rates.ours")" "$(paste -sd' ' "$w/rates.real")" "" "" ""
  row "instance CPU ms/message (median)" "$co" "$cr" "$(ratio "$co" "$cr")" "" ""
  row "queue files / messages sent" "$total_ours/$((ROUNDS * MESSAGES))" "$total_real/$((ROUNDS * MESSAGES))" "" "" ""
}

[ "$part" = accept ] || idle
[ "$part" = idle ] || accept
for who in ours real; do
  p=$(log_problems "$who")
  [ -z "$p" ] || { echo; echo "$(name "$who")'s log: warnings and errors (count, message)"; echo "$p"; }
done
exit 0
