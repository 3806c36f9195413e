#!/usr/bin/env bash
# bench/system.sh: the whole system, ours against the real Postfix 3.7, in one
# run on one machine, with the same main.cf settings (lib.sh.inc's COMMON and
# those below), qmgr running and both fsyncing as they always do (queue file
# before the 250 after DATA, mailbox file before "delivered").  Every number is
# a median over ROUNDS rounds that alternate ours/Postfix, and every row gives
# the ratio ours/Postfix with M7's target (issue 8) where it sets one.
#
# Scenarios (arguments; default: all but sweep):
#   f  idle footprint: master and every resident daemon after start and one
#      delivered message (then SETTLE seconds), VmRSS and PSS.  Target: ours
#      <= Postfix's total VmRSS (PSS for information).
#   a  SMTP in -> virtual Maildir: the real smtp-source, CLIENTS concurrent
#      clients (one connection per message), MESSAGES messages of each size in
#      SIZES to box@vbox.example; virtual_mailbox_maps = static:box/ (every
#      recipient to one Maildir), uid and gid of nobody/nogroup.  Accept rate
#      (until smtp-source has its last 250) and end-to-end rate (from the first
#      connection until every message is a file in box/new/).  Target: end to
#      end >= 1.5x Postfix.
#   b  SMTP in -> discard (transport_maps: discard.example -> discard:), the
#      same load; end to end = until smtp-source is done and the queue is
#      empty.  Target: >= 2x Postfix.
#   c  relay to the real smtp-sink: RELAY_MESSAGES messages accepted with qmgr
#      off (no timing), then qmgr added (master.cf + SIGHUP to master) and the
#      time until the queue is empty: drain rate.  One destination
#      (sink.example -> smtp:[127.0.0.1]:PORT, one sink, CLIENTS clients to
#      fill), and DESTINATIONS destinations (dN.sink.example ->
#      smtp:[127.0.0.1]:PORT_N, one sink process per port, the messages spread
#      evenly).  The sinks' log lines (status=sent) are counted too.
#   d  SENDMAILS sendmail submissions (our sendmail, and the real sendmail +
#      postdrop with the oracle's libraries), SENDMAIL_PROCS loops in
#      parallel, to box@vbox.example: submission rate and the rate until all
#      are in box/new/.
#   h  postqueue -p with QUEUE_MESSAGES messages in deferred/: one queue file
#      (tests/tools/queue_tool) copied under that many queue IDs; the same
#      deferred/ directory is renamed into each instance in turn, so both
#      read the same files (qmgr is off for this one: nothing may move them).
#      Target: ours <= Postfix's time.
#   sweep  end-to-end Maildir rate (4 KB) at each client count in SWEEP
#      (1 5 20 50 100), SWEEP_MESSAGES messages; SWEEP_OUT=FILE also writes
#      "clients ours postfix" lines for a plot (scripts/bench).
# Environment (defaults are issue 8's; QUICK=1 gives small ones for a check):
#   ROUNDS 5, CLIENTS 20, MESSAGES 2000, SIZES "4096 102400", RELAY_MESSAGES
#   2000, DESTINATIONS 100, SENDMAILS 2000, SENDMAIL_PROCS 4, QUEUE_MESSAGES
#   100000, SWEEP "1 5 20 50 100", SWEEP_MESSAGES 1000, SETTLE 5 (seconds),
#   LIMIT 300 (seconds any one wait may take), MTA_BIN (our programs, default
#   build/bin), KEEP_TMP=1 (keep the instances and their logs).
# usage: bench/system.sh [f] [a] [b] [c] [d] [h] [sweep] [all]   (needs root
#        and ../shared/tools/postfix-oracle).  Exits 0 when it could measure;
#        a round that did not finish within LIMIT is left out and reported.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
parts=" ${*:-all} "
[[ $parts == *" all "* ]] && parts=" f a b c d h "
for p in $parts; do
  case $p in f|a|b|c|d|h|sweep) ;; *) echo "usage: $0 [f] [a] [b] [c] [d] [h] [sweep] [all]" >&2; exit 2 ;; esac
done
has() { [[ $parts == *" $1 "* ]]; }
if [ -n "${QUICK:-}" ]; then
  : "${ROUNDS:=1}" "${MESSAGES:=100}" "${RELAY_MESSAGES:=200}" "${SENDMAILS:=100}"
  : "${QUEUE_MESSAGES:=2000}" "${SWEEP_MESSAGES:=100}" "${SETTLE:=2}" "${LIMIT:=120}"
fi
ROUNDS=${ROUNDS:-5} CLIENTS=${CLIENTS:-20} MESSAGES=${MESSAGES:-2000} SIZES=${SIZES:-4096 102400}
RELAY_MESSAGES=${RELAY_MESSAGES:-2000} DESTINATIONS=${DESTINATIONS:-100}
SENDMAILS=${SENDMAILS:-2000} SENDMAIL_PROCS=${SENDMAIL_PROCS:-4} QUEUE_MESSAGES=${QUEUE_MESSAGES:-100000}
SWEEP=${SWEEP:-1 5 20 50 100} SWEEP_MESSAGES=${SWEEP_MESSAGES:-1000} SETTLE=${SETTLE:-5} LIMIT=${LIMIT:-300}
. "$top/bench/lib.sh.inc"
bench_init master postfix postconf postmap smtpd cleanup trivial-rewrite qmgr virtual discard smtp \
  bounce pickup sendmail postdrop postqueue showq queue_tool
ulimit -n "$( [ "$(ulimit -Hn)" = unlimited ] && echo 65536 || ulimit -Hn)"
SOURCE=(env LD_LIBRARY_PATH="$LIB" "$O/usr/sbin/smtp-source")
SINK=(env LD_LIBRARY_PATH="$LIB" "$O/usr/sbin/smtp-sink")
[ -x "$O/usr/sbin/smtp-source" ] && [ -x "$O/usr/sbin/smtp-sink" ] || die "no smtp-source/smtp-sink in $O"
VUID=$(id -u nobody) VGID=$(getent group nogroup | cut -d: -f3)
[ -n "$VUID" ] && [ -n "$VGID" ] || die "needs user nobody and group nogroup"

# The same settings in both: one virtual Maildir domain, every recipient to
# box/ under the instance's virtual_mailbox_base (set per instance below);
# transport_maps (hash:, built by each side's postmap) for discard and the
# sinks.  The real sendmail runs postdrop with export_environment only: it
# must pass on LD_LIBRARY_PATH (the oracle's libraries; unset for ours).
SETTINGS=("virtual_mailbox_domains = vbox.example" "virtual_mailbox_maps = static:box/"
  "virtual_uid_maps = static:$VUID" "virtual_gid_maps = static:$VGID" "virtual_minimum_uid = 100"
  "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH")
bench_instances
# Every sink on a port of its own (and none on an instance's port).
# (The instances' ports are free until they start: leave them out.)
read -r -a SINK_PORTS <<<"$(free_ports $((DESTINATIONS + 3)))"
SINK_PORTS=($(printf '%s\n' "${SINK_PORTS[@]}" | grep -vxF -e "$PORT_OURS" -e "$PORT_REAL" | head -n $((DESTINATIONS + 1))))
SINK_PORT=${SINK_PORTS[0]} SINK_PORTS=("${SINK_PORTS[@]:1}")
for who in ours real; do
  install -d -o nobody -g nogroup -m 755 "$w/$who/vmail"
  # The Maildir as virtual makes it, so that bench/watch.py can watch new/
  # before the first delivery (a run of a or sweep without f).
  install -d -o nobody -g nogroup -m 700 "$w/$who/vmail/box" "$w/$who/vmail/box/tmp" \
    "$w/$who/vmail/box/new" "$w/$who/vmail/box/cur"
  { printf 'discard.example\tdiscard:\nsink.example\tsmtp:[127.0.0.1]:%s\n' "$SINK_PORT"
    for ((i = 0; i < DESTINATIONS; i++)); do printf 'd%d.sink.example\tsmtp:[127.0.0.1]:%s\n' "$i" "${SINK_PORTS[$i]}"; done
  } >"$w/$who/transport"
  conf "$who" -e "virtual_mailbox_base = $w/$who/vmail" "transport_maps = hash:$w/$who/transport" >/dev/null ||
    die "cannot configure $(name "$who")"
  if [ "$who" = ours ]; then "$B/postmap" -c "$w/ours" "hash:$w/ours/transport"
  else real postmap -c "$w/real" "hash:$w/real/transport"; fi || die "postmap of $(name "$who")'s transport table"
  # master.cf with and without qmgr, for c and h.
  cp "$w/$who/master.cf" "$w/$who/master.cf.full"
  conf "$who" -MX qmgr/unix; cp "$w/$who/master.cf" "$w/$who/master.cf.noqmgr"
  cp "$w/$who/master.cf.full" "$w/$who/master.cf"
done

# ------------------------------------------------------------------ helpers
# until_true SECONDS COMMAND...: poll COMMAND every 50 ms; 1 on timeout.  (The
# polling costs both systems the same: a sleep and the count's ls or find.)
until_true() {
  local end=$(( ${EPOCHREALTIME//[.,]/} + $1 * 1000000 )); shift
  until "$@"; do
    (( ${EPOCHREALTIME//[.,]/} > end )) && return 1
    sleep 0.05
  done
}
# watch_start OUT ARGS...: bench/watch.py ARGS in the background (pid in
# WATCH_PID), writing to OUT; returns once its watches are set.  watch_end
# OUT: waits for it; the time at which it saw the end is then in WATCH_TIME;
# non-zero when it timed out.  (inotify: the end of a run is seen when it happens, at
# no cost while the systems run; polling with find or ls every 50 ms cost
# CPU, and saw the end up to 50 ms late.)  watch_end sets WATCH_TIME (not
# through $(...): a subshell cannot wait for the watcher).
watch_start() {
  local out=$1 i; shift
  python3 "$top/bench/watch.py" "$@" >"$out" &
  WATCH_PID=$!
  for ((i = 0; i < 500; i++)); do grep -q '^ready' "$out" 2>/dev/null && return 0; sleep 0.01; done
  kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null
  return 1
}
watch_end() { local rc=0; wait "$WATCH_PID" || rc=1; WATCH_TIME=$(tail -n 1 "$1"); return $rc; }
queue_dirs() { local d; for d in incoming active deferred hold maildrop; do echo "$w/$1/queue/$d"; done; }
box() { echo "$w/$1/vmail/box/new"; }
in_box() { ls -U "$(box "$1")" 2>/dev/null | wc -l; }
box_has() { [ "$(in_box "$1")" -ge "$2" ]; }
clear_box() { find "$(box "$1")" -type f -delete 2>/dev/null || true; }
queue_empty() { [ "$(queue_files "$1")" = 0 ]; }
settle() {  # WHO: wait (bounded) until WHO's queue is empty, then empty the mailbox
  until_true "$LIMIT" queue_empty "$1" || echo "warning: $(name "$1")'s queue still holds $(queue_files "$1") files" >&2
  clear_box "$1"
}
sent_lines() { grep -c 'status=sent' "$w/$1/maillog" 2>/dev/null || true; }
kb() { awk -v s="$1" 'BEGIN { printf "%g KB", s / 1024 }'; }
# send WHO COUNT CLIENTS SIZE RCPT: smtp-source into WHO, waits, non-zero on failure.
send() {
  timeout "$LIMIT" "${SOURCE[@]}" -s "$3" -m "$2" -l "$4" -f sender@bench.example -t "$5" \
    -M client.bench.example "127.0.0.1:$(port "$1")" >/dev/null 2>"$w/src.$1.err"
}
# e2e WHO COUNT CLIENTS SIZE RCPT maildir|queue: smtp-source in the background
# from time s; the end is when box/new/ has COUNT more files (maildir) or the
# queue is empty after the last 250 (queue).  Prints "ACCEPT_RATE E2E_RATE
# CPU_MS_PER_MESSAGE", or fails with a warning when a wait runs out.
e2e() {
  local who=$1 n=$2 c=$3 size=$4 rcpt=$5 mode=$6 s e pid t0 t1 rc=0 tck
  tck=$(getconf CLK_TCK)
  rm -f "$w/src.end" "$w/src.rc"
  if [ "$mode" = maildir ]; then watch_start "$w/watch.out" count "$(box "$who")" "$(( $(in_box "$who") + n ))" "$LIMIT"
  else watch_start "$w/watch.out" empty "$LIMIT" --after "$w/src.end" $(queue_dirs "$who"); fi ||
    { echo "warning: bench/watch.py did not start: $(cat "$w/watch.out")" >&2; return 1; }
  t0=$(cpu "$who"); s=$(now)
  { send "$who" "$n" "$c" "$size" "$rcpt" || echo $? >"$w/src.rc"; now >"$w/src.time"; mv "$w/src.time" "$w/src.end"; } &
  pid=$!
  watch_end "$w/watch.out" || rc=1
  e=$WATCH_TIME; t1=$(cpu "$who")
  wait "$pid" || true
  if [ -f "$w/src.rc" ]; then
    echo "warning: smtp-source into $(name "$who") failed: $(tail -2 "$w/src.$who.err")" >&2; return 1
  fi
  if [ $rc != 0 ]; then
    echo "warning: $(name "$who"): not done within ${LIMIT}s ($(in_box "$who") in the mailbox, $(queue_files "$who") queue files)" >&2
    return 1
  fi
  echo "$(rate "$n" "$s" "$(cat "$w/src.end")") $(rate "$n" "$s" "$e") $(awk -v t="$((t1 - t0))" -v k="$tck" -v n="$n" 'BEGIN { printf "%.3f", t * 1000 / k / n }')"
}
# rounds TAG COUNT CLIENTS SIZE RCPT MODE: ROUNDS alternating rounds of e2e into
# $w/TAG.{accept,e2e,cpu}.{ours,real}, after one warm-up round each.
rounds() {
  local tag=$1 i who out ra re rc; shift
  for who in ours real; do
    : >"$w/$tag.accept.$who"; : >"$w/$tag.e2e.$who"; : >"$w/$tag.cpu.$who"
    e2e "$who" 20 "$2" "$3" "$4" "$5" >/dev/null || true; settle "$who"
  done
  for ((i = 1; i <= ROUNDS; i++)); do
    for who in ours real; do
      if out=$(e2e "$who" "$@"); then
        read -r ra re rc <<<"$out"
        echo "$ra" >>"$w/$tag.accept.$who"; echo "$re" >>"$w/$tag.e2e.$who"; echo "$rc" >>"$w/$tag.cpu.$who"
      fi
      settle "$who"
    done
  done
}
# result_row LABEL TAG KIND [OP TARGET]: a table row of the medians.
result_row() {
  local mo mr r
  mo=$(median "$w/$2.$3.ours" "$([ "$3" = cpu ] && echo 2 || echo 1)")
  mr=$(median "$w/$2.$3.real" "$([ "$3" = cpu ] && echo 2 || echo 1)")
  r=$(ratio "$mo" "$mr")
  if [ $# -ge 5 ]; then row "$1" "$mo" "$mr" "$r" "$4 $5" "$(verdict "$r" "$4" "$5")"
  else row "$1" "$mo" "$mr" "$r" "" ""; fi
}
each_row() { row "  each round" "$(paste -sd' ' "$w/$1.ours")" "$(paste -sd' ' "$w/$1.real")" "" "" ""; }
header() { echo; row "$1" ours Postfix ratio target result; }

# ---------------------------------------------------------------- scenarios
footprint() {
  local who
  for who in ours real; do
    send "$who" 1 1 4096 box@vbox.example || die "smtp-source into $(name "$who"): $(tail -2 "$w/src.$who.err")"
    until_true "$LIMIT" box_has "$who" 1 || die "$(name "$who") did not deliver one message within ${LIMIT}s"
  done
  sleep "$SETTLE"
  for who in ours real; do mem_list "$who" >"$w/mem.$who"; done
  header "idle footprint, after one message"
  local comm; for comm in $(cat "$w/mem.ours" "$w/mem.real" | awk '{ print $1 }' | sort -u); do
    row "  $comm: processes, VmRSS" \
      "$(awk -v c="$comm" '$1 == c { n++; k += $2 } END { printf "%d, %.1f MB", n, k / 1024 }' "$w/mem.ours")" \
      "$(awk -v c="$comm" '$1 == c { n++; k += $2 } END { printf "%d, %.1f MB", n, k / 1024 }' "$w/mem.real")" "" "" ""
  done
  local ro rr po pr
  ro=$(awk '{ k += $2 } END { print k + 0 }' "$w/mem.ours"); rr=$(awk '{ k += $2 } END { print k + 0 }' "$w/mem.real")
  po=$(awk '{ k += $3 } END { print k + 0 }' "$w/mem.ours"); pr=$(awk '{ k += $3 } END { print k + 0 }' "$w/mem.real")
  row "total VmRSS ($(wc -l <"$w/mem.ours") / $(wc -l <"$w/mem.real") processes)" "$(mb "$ro")" "$(mb "$rr")" \
    "$(ratio "$ro" "$rr")" "<= 1.00" "$(verdict "$(ratio "$ro" "$rr")" "<=" 1)"
  row "total PSS (shared pages split)" "$(mb "$po")" "$(mb "$pr")" "$(ratio "$po" "$pr")" "" ""
  for who in ours real; do clear_box "$who"; done
}

maildir() {
  local size tag
  for size in $SIZES; do
    tag=maildir$size
    rounds "$tag" "$MESSAGES" "$CLIENTS" "$size" box@vbox.example maildir
    header "SMTP -> virtual Maildir, $CLIENTS clients, $(kb "$size")"
    result_row "end-to-end messages/s (median of $ROUNDS x $MESSAGES)" "$tag" e2e ">=" 1.50
    each_row "$tag.e2e"
    result_row "accept messages/s" "$tag" accept
    result_row "instance CPU ms/message" "$tag" cpu
  done
}

discard() {
  rounds discard "$MESSAGES" "$CLIENTS" 4096 rcpt@discard.example queue
  header "SMTP -> discard, $CLIENTS clients, 4 KB"
  result_row "end-to-end messages/s (median of $ROUNDS x $MESSAGES)" discard e2e ">=" 2.00
  each_row discard.e2e
  result_row "accept messages/s" discard accept
  result_row "instance CPU ms/message" discard cpu
}

# qmgr_on WHO yes|no: master.cf with or without qmgr, SIGHUP to master, and
# (no) wait until master has let its qmgr go.
qmgr_on() {
  local m; m=$(master_pid "$w/$1")
  cp "$w/$1/master.cf.$([ "$2" = yes ] && echo full || echo noqmgr)" "$w/$1/master.cf"
  kill -HUP "$m"
  [ "$2" = yes ] || until_true "$LIMIT" sh -c "! pgrep -P $m -x qmgr >/dev/null" ||
    die "$(name "$1")'s qmgr did not go after a reload without it"
}
# fill WHO single|many COUNT: COUNT messages into WHO's incoming/ with qmgr off.
fill() {
  local who=$1 n=$3 k per
  if [ "$2" = single ]; then
    send "$who" "$n" "$CLIENTS" 4096 rcpt@sink.example || die "fill $(name "$who"): $(tail -2 "$w/src.$who.err")"
  else
    per=$((n / DESTINATIONS))
    for ((k = 0; k < DESTINATIONS; k++)); do echo "$k"; done |
      xargs -P "$CLIENTS" -I{} "${SOURCE[@]}" -m "$per" -l 4096 -f sender@bench.example -t rcpt@d{}.sink.example \
        -M client.bench.example "127.0.0.1:$(port "$who")" >/dev/null 2>"$w/src.$who.err" ||
      die "fill $(name "$who"): $(tail -2 "$w/src.$who.err")"
  fi
  until_true 30 sh -c "[ \$(find '$w/$who/queue/incoming' -type f | wc -l) -ge $n ]" ||
    echo "warning: $(name "$who"): $(queue_files "$who") queue files after filling with $n" >&2
}
relay() {
  local kind n i who s e l0 got t0 t1 tck
  tck=$(getconf CLK_TCK)
  EXTRA_PIDS+=("$(start_sink "$SINK_PORT")")
  for ((i = 0; i < DESTINATIONS; i++)); do EXTRA_PIDS+=("$(start_sink "${SINK_PORTS[$i]}")"); done
  wait_port "$SINK_PORT" || die "smtp-sink does not listen on $SINK_PORT"
  for i in "${SINK_PORTS[@]}"; do wait_port "$i" || die "smtp-sink does not listen on $i"; done
  for kind in single many; do
    n=$RELAY_MESSAGES; [ $kind = many ] && n=$(( (n / DESTINATIONS) * DESTINATIONS ))
    for who in ours real; do : >"$w/relay$kind.e2e.$who"; : >"$w/relay$kind.cpu.$who"; done
    for ((i = 1; i <= ROUNDS; i++)); do
      for who in ours real; do
        qmgr_on "$who" no
        fill "$who" "$kind" "$n"
        l0=$(sent_lines "$who")
        watch_start "$w/watch.out" empty "$LIMIT" $(queue_dirs "$who") || die "bench/watch.py did not start"
        t0=$(cpu "$who"); s=$(now); qmgr_on "$who" yes
        if watch_end "$w/watch.out"; then
          e=$WATCH_TIME; t1=$(cpu "$who"); rate "$n" "$s" "$e" >>"$w/relay$kind.e2e.$who"
          awk -v t="$((t1 - t0))" -v k="$tck" -v n="$n" 'BEGIN { printf "%.3f\n", t * 1000 / k / n }' >>"$w/relay$kind.cpu.$who"
        else
          echo "warning: $(name "$who"): $kind relay not drained within ${LIMIT}s ($(queue_files "$who") left)" >&2
          until_true "$LIMIT" queue_empty "$who" || true
        fi
        until_true 10 sh -c "[ \$(grep -c 'status=sent' '$w/$who/maillog') -ge $((l0 + n)) ]" || true
        got=$(( $(sent_lines "$who") - l0 ))
        [ "$got" = "$n" ] || echo "warning: $(name "$who"): $got status=sent log lines for $n messages relayed" >&2
      done
    done
  done
  header "relay to smtp-sink (drain of a full queue)"
  result_row "one destination: messages/s ($ROUNDS x $RELAY_MESSAGES)" relaysingle e2e ">=" 1.50
  each_row relaysingle.e2e
  result_row "instance CPU ms/message" relaysingle cpu
  result_row "$DESTINATIONS destinations: messages/s" relaymany e2e ">=" 1.50
  each_row relaymany.e2e
  result_row "instance CPU ms/message" relaymany cpu
}
start_sink() {  # PORT: a real smtp-sink on 127.0.0.1:PORT in the background; prints its pid
  "${SINK[@]}" -u nobody "127.0.0.1:$1" 256 >/dev/null 2>>"$w/sink.err" &
  echo $!
}

submissions() {
  local who i j s e1 e pids
  { printf 'From: sender@bench.example\nTo: box@vbox.example\nSubject: bench\n\n'
    head -c 3072 /dev/zero | tr '\0' x | fold -w 72; echo; } >"$w/message"
  for who in ours real; do : >"$w/sendmail.submit.$who"; : >"$w/sendmail.e2e.$who"; done
  for ((i = 1; i <= ROUNDS; i++)); do
    for who in ours real; do
      rm -f "$w/sendmail.failed"
      pids=()
      s=$(now)
      for ((j = 0; j < SENDMAIL_PROCS; j++)); do
        ( k=$(( SENDMAILS / SENDMAIL_PROCS + (j < SENDMAILS % SENDMAIL_PROCS ? 1 : 0) ))
          for ((m = 0; m < k; m++)); do
            if [ "$who" = ours ]; then MAIL_CONFIG=$w/ours "$B/sendmail" -f sender@bench.example box@vbox.example <"$w/message"
            else MAIL_CONFIG=$w/real LD_LIBRARY_PATH=$LIB "$O/usr/sbin/sendmail" -f sender@bench.example box@vbox.example <"$w/message"
            fi || echo x >>"$w/sendmail.failed"
          done ) 2>>"$w/sendmail.$who.err" &
        pids+=($!)
      done
      wait "${pids[@]}"
      e1=$(now)
      if [ -f "$w/sendmail.failed" ]; then
        echo "warning: $(name "$who"): $(wc -l <"$w/sendmail.failed") sendmail submissions failed: $(tail -2 "$w/sendmail.$who.err")" >&2
      elif until_true "$LIMIT" box_has "$who" "$SENDMAILS"; then
        e=$(now); rate "$SENDMAILS" "$s" "$e1" >>"$w/sendmail.submit.$who"; rate "$SENDMAILS" "$s" "$e" >>"$w/sendmail.e2e.$who"
      else
        echo "warning: $(name "$who"): $(in_box "$who") of $SENDMAILS submissions in the mailbox after ${LIMIT}s" >&2
      fi
      settle "$who"
    done
  done
  header "sendmail, $SENDMAILS submissions, $SENDMAIL_PROCS in parallel"
  result_row "into the mailbox: messages/s" sendmail e2e
  each_row sendmail.e2e
  result_row "submitted (sendmail exited): messages/s" sendmail submit
}

postqueue_p() {
  local who i id file s e
  for who in ours real; do stop "$who"; cp "$w/$who/master.cf.noqmgr" "$w/$who/master.cf"; done
  mkdir -p "$w/stage/incoming"
  read -r id file < <(printf 'Subject: bench\nFrom: sender@bench.example\n\nqueued for postqueue -p\n' |
    "$B/queue_tool" write "$w/stage" -s sender@bench.example -a rewrite_context=remote \
      -r rcpt@deferred.example,rcpt@deferred.example) || die "queue_tool write failed"
  # Short queue IDs: hex, hashed on their first character (hash_queue_depth 1).
  python3 - "$file" "$w/ours/queue/deferred" "$QUEUE_MESSAGES" "$(id -u postfix)" "$(id -g postfix)" <<'EOF' ||
import os, sys
src, top, n, uid, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(src, 'rb').read()
for h in '0123456789ABCDEF':
    os.makedirs(os.path.join(top, h), exist_ok=True)
    os.chown(os.path.join(top, h), uid, gid); os.chmod(os.path.join(top, h), 0o700)
for i in range(n):
    qid = '%X%09X' % (i % 16, 0x100000000 + i * 7919)
    p = os.path.join(top, qid[0], qid)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    os.write(fd, data); os.fchown(fd, uid, gid); os.fchmod(fd, 0o700); os.close(fd)
EOF
    die "cannot make $QUEUE_MESSAGES queue files"
  for who in ours real; do start "$who"; : >"$w/postqueue.$who"; done
  # swap: move the one deferred/ from WHO's sibling into WHO (rename, instant)
  where=ours
  into() {
    [ "$where" = "$1" ] && return 0
    mv "$w/$1/queue/deferred" "$w/$1/queue/deferred.empty"
    mv "$w/$where/queue/deferred" "$w/$1/queue/deferred"
    mv "$w/$1/queue/deferred.empty" "$w/$where/queue/deferred"
    where=$1
  }
  pq() {  # WHO: its postqueue -p, bounded
    if [ "$1" = ours ]; then timeout "$LIMIT" "$B/postqueue" -c "$w/ours" -p
    else timeout "$LIMIT" env MAIL_CONFIG="$w/real" LD_LIBRARY_PATH="$LIB" "$O/usr/sbin/postqueue" -c "$w/real" -p; fi
  }
  for who in ours real; do   # one untimed run each: showq started, directories cached
    into "$who"; pq "$who" >"$w/pq.$who" 2>"$w/pq.$who.err" || true
  done
  for ((i = 1; i <= ROUNDS; i++)); do
    for who in ours real; do
      into "$who"
      s=$(now)
      if pq "$who" >"$w/pq.$who" 2>"$w/pq.$who.err"; then
        e=$(now); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }' >>"$w/postqueue.$who"
      else
        echo "warning: $(name "$who")'s postqueue -p failed or took over ${LIMIT}s: $(tail -2 "$w/pq.$who.err")" >&2
      fi
    done
  done
  into ours
  header "postqueue -p, $QUEUE_MESSAGES messages in deferred/"
  local mo mr r; mo=$(median "$w/postqueue.ours" 3); mr=$(median "$w/postqueue.real" 3); r=$(ratio "$mo" "$mr")
  row "seconds (median of $ROUNDS)" "$mo" "$mr" "$r" "<= 1.00" "$(verdict "$r" "<=" 1)"
  each_row postqueue
  row "last line" "$(tail -1 "$w/pq.ours" | sed 's/^-- //')" "$(tail -1 "$w/pq.real" | sed 's/^-- //')" "" "" ""
  for who in ours real; do
    grep -q " in $QUEUE_MESSAGES Requests\.\$" "$w/pq.$who" ||
      echo "warning: $(name "$who")'s postqueue -p does not list $QUEUE_MESSAGES requests: $(tail -1 "$w/pq.$who")"
  done
}

sweep() {
  local c
  : >"$w/sweep.dat"
  for c in $SWEEP; do
    rounds "sweep$c" "$SWEEP_MESSAGES" "$c" 4096 box@vbox.example maildir
    echo "$c $(median "$w/sweep$c.e2e.ours") $(median "$w/sweep$c.e2e.real")" >>"$w/sweep.dat"
  done
  header "end-to-end Maildir messages/s by clients, 4 KB, median of $ROUNDS x $SWEEP_MESSAGES"
  while read -r c o r; do row "  $c clients" "$o" "$r" "$(ratio "$o" "$r")" "" ""; done <"$w/sweep.dat"
  [ -z "${SWEEP_OUT:-}" ] || cp "$w/sweep.dat" "$SWEEP_OUT"
}

echo "bench/system.sh: ROUNDS=$ROUNDS CLIENTS=$CLIENTS MESSAGES=$MESSAGES SIZES=\"$SIZES\"" \
  "RELAY_MESSAGES=$RELAY_MESSAGES DESTINATIONS=$DESTINATIONS SENDMAILS=$SENDMAILS" \
  "SENDMAIL_PROCS=$SENDMAIL_PROCS QUEUE_MESSAGES=$QUEUE_MESSAGES SWEEP=\"$SWEEP\"" \
  "SWEEP_MESSAGES=$SWEEP_MESSAGES${QUICK:+ (QUICK: a check, not a measurement)}"
echo "bench/system.sh: queues and mailboxes on $BENCH_FS_INFO"
start ours; start real
has f && footprint
has a && maildir
has b && discard
has sweep && sweep
has d && submissions
has c && relay
has h && postqueue_p
print_log_problems
exit 0
