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
#        build/bin; KEEP_TMP=1 keeps the instances' directories and logs)
# Prints a table; exits 0 when it could measure, non-zero with a reason if not.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
part=${1:-all}
case $part in idle|accept|all) ;; *) echo "usage: $0 [idle|accept|all]" >&2; exit 2 ;; esac
SESSIONS=${SESSIONS:-2000} MESSAGES=${MESSAGES:-2000} ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-20} SIZE=${SIZE:-4096}
. "$top/bench/lib.sh.inc"
bench_init master postfix smtpd cleanup trivial-rewrite postconf
# Every held session is a descriptor in the client, and the masters and
# smtpd processes inherit the limit (our smtpd sizes its sessions by it).
want=$((SESSIONS + 1000))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$want" ] || die "ulimit -Hn is below $want"
ulimit -n "$( [ "$(ulimit -Hn)" = unlimited ] && echo $((want > 65536 ? want : 65536)) || ulimit -Hn)"

# Besides lib.sh.inc's COMMON: a timeout that outlasts the measurement and a
# process limit above the number of sessions (Postfix needs one smtpd per
# session).
SETTINGS=("smtpd_timeout = 900s" "default_process_limit = $((SESSIONS + 500))")
bench_instances
echo "bench/smtpd.sh: queues on $BENCH_FS_INFO"
# No qmgr in either: mail stays in incoming/ and only acceptance is measured.
"$B/postconf" -c "$w/ours" -MX qmgr/unix
timeout 60 "$oracle" run postconf -c "$w/real" -MX qmgr/unix

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
print_log_problems
exit 0
