#!/usr/bin/env bash
# Connection reuse (issue 7): a real Postfix 3.7 instance A (its qmgr,
# trivial-rewrite, bounce) relays N messages, injected at once so that the
# destination has a backlog, to one destination [127.0.0.1]:PORT where a
# fake SMTP server (smtp_fake_server.py --events) counts connections and
# MAIL transactions.  The "smtp" and "scache" services of A are pointed at
# the real programs and at ours:
#   real smtp + real scache   the reference: fewer connections than
#                             messages, "conn_use=N" in the log lines;
#   ours + ours               the same; our log lines have the real shape
#                             (to=, relay=, conn_use=, delay=, delays=,
#                             dsn=, status=); scache's statistics lines;
#   real smtp + our scache    our scache speaks Postfix's protocol
#                             (descriptor passing included);
#   ours + real scache        our client speaks it too;
#   ours, on demand off       every message on its own connection;
#   ours, cache destinations  smtp_connection_cache_destinations caches
#                             without qmgr's hint, and
#                             smtp_connection_reuse_count_limit caps reuse.
# Needs root and the oracle (77 otherwise).  Every wait is bounded.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
[ -x "$MTA_BIN/scache" ] || { echo "# skip: scache is not built"; exit 77; }
OURS_SCACHE_REL=$(realpath --relative-to="$DAEMONS" "$MTA_BIN/scache")
make_instance_a smtp_conn_reuse

P=$(free_port)
mkdir -p "$T/fake"
python3 "$(dirname "$0")/smtp_fake_server.py" --events "$T/fake/events" "$T/fake/ready" "$P:plain" 2>"$T/fake/err" &
BG_PIDS+=($!)
wait_for 10 test -f "$T/fake/ready" || { bad "the fake server starts" "$(cat "$T/fake/err")"; exit 1; }

N=20
inject_all() {
  local i
  for i in $(seq $N); do inject "r$i@example.com" "reuse-$1-$i"; done
}
# AGENT CMD; SCACHE_CMD, ON_DEMAND, CACHE_DEST, REUSE_COUNT as the run wants.
configure_agent() {
  pf postconf -c "$INST" -e "relayhost = [127.0.0.1]:$P" 'default_transport = smtp' 'relay_transport = smtp' \
    'smtp_tls_security_level = none' 'connection_cache_status_update_time = 2s' \
    "smtp_connection_cache_on_demand = ${ON_DEMAND:-yes}" "smtp_connection_cache_destinations = ${CACHE_DEST:-}" \
    "smtp_connection_reuse_count_limit = ${REUSE_COUNT:-0}" >/dev/null
  pf postconf -c "$INST" -M "smtp/unix=smtp unix - - n - - $2" >/dev/null
  pf postconf -c "$INST" -M "scache/unix=scache unix - - n - 1 ${SCACHE_CMD:-scache}" >/dev/null
  : >"$T/fake/events"
}
count() { grep -c "^$1 " "$T/fake/events" 2>/dev/null || true; }
# Statistics come every 2s and at exit; give the interval time to end.
stats_logged() { grep -q 'postfix/scache\[[0-9]*\]: statistics: max simultaneous domains=' "$LOG"; }
run() {  # NAME AGENT: run, then keep the counts
  local name=$1 agent=$2
  run_agent "$agent"
  CONNS=$(count connect) MAILS=$(count mail)
  mkdir -p "$T/runs"
  cp "$T/fake/events" "$T/runs/events.$name"
  cp "$T/out/$agent/maillog" "$T/runs/maillog.$name"
  cp "$T/out/$agent/log" "$T/runs/log.$name"
  echo "# $name: $MAILS transactions over $CONNS connections"
}
# settled (smtp_lib.sh.inc's), and with WANT_STATS also scache's
# statistics, before run_agent stops the instance.
settled() {
  local id
  while read -r id; do grep -q "$id: to=<" "$LOG" || return 1; done <"$T/ids"
  [ -z "$(find "$Q/incoming" "$Q/active" -type f 2>/dev/null)" ] || return 1
  [ "${WANT_STATS:-0}" = 0 ] || stats_logged
}
shape='^QID: to=<r[0-9]+@example.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+, (conn_use=[0-9]+, )?delay=D, delays=D, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as fake1\)$'
check_run() {  # NAME AGENT
  local name=$1 agent=$2 f=$T/runs/log.$1
  [ "$MAILS" = $N ] && ok "$name: $N transactions reach the server" || bad "$name: transactions" "$MAILS of $N"
  [ "$(grep -c 'status=sent' "$f")" = $N ] && ok "$name: $N messages sent" || bad "$name: sent" "$(head -3 "$f")"
  if grep -vqE "$shape" "$f"; then bad "$name: log lines have Postfix's shape" "$(grep -vE "$shape" "$f" | head -3)"
  else ok "$name: log lines have Postfix's shape"; fi
}

# 1. The reference: the real smtp and the real scache.
WANT_STATS=1 SCACHE_CMD=scache run real-real real
check_run real-real real
REAL_CONNS=$CONNS
[ "$CONNS" -lt "$N" ] && ok "real smtp: fewer connections than messages ($CONNS)" || bad "real smtp reuses connections" "$CONNS connections"
grep -qE 'conn_use=[2-9]' "$T/runs/log.real-real" && ok "real smtp: conn_use=N logged" || bad "real conn_use" "$(head -3 "$T/runs/log.real-real")"

# 2. Ours, with our scache.
WANT_STATS=1 SCACHE_CMD=$OURS_SCACHE_REL run ours-ours ours
check_run ours-ours ours
[ "$CONNS" -lt "$N" ] && ok "ours: fewer connections than messages ($CONNS; the real smtp: $REAL_CONNS)" ||
  bad "ours reuses connections" "$CONNS connections" "$(grep -m3 warning "$T/runs/maillog.ours-ours")"
grep -qE 'conn_use=[2-9]' "$T/runs/log.ours-ours" && ok "ours: conn_use=N logged" || bad "our conn_use" "$(head -3 "$T/runs/log.ours-ours")"
# A reused connection sets up in no time: delays=a/b/c/d with c = 0.
ml=$T/runs/maillog.ours-ours
grep -E 'postfix/smtp\[.*conn_use=[2-9]' "$ml" | grep -qE 'delays=[0-9.]+/[0-9.]+/0(\.0[0-9]*)?/[0-9.]+,' &&
  ok "ours: a reused connection has a zero connection set-up delay" || bad "set-up delay of reused connections" "$(grep -m2 conn_use "$ml")"
# conn_use counts up on one connection: 2, 3, ...
grep -qE 'conn_use=3' "$ml" && ok "ours: conn_use counts up" || bad "conn_use counts up" "$(grep -o 'conn_use=[0-9]*' "$ml" | sort | uniq -c)"
for re in 'statistics: start interval [A-Z][a-z]{2} [ 0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' \
  'statistics: domain lookup hits=[0-9]+ miss=[0-9]+ success=[0-9]+%$' \
  'statistics: max simultaneous domains=[0-9]+ addresses=[0-9]+ connection=[0-9]+$'; do
  expect_grep "our scache logs \"${re%%[[(]*}...\"" "postfix/scache\[[0-9]+\]: $re" "$ml"
  grep -qE "postfix/scache\[[0-9]+\]: $re" "$T/runs/maillog.real-real" && ok "the real scache logs the same line" ||
    bad "real scache line ${re%%[[(]*}" "$(grep scache "$T/runs/maillog.real-real" | head -3)"
done
grep -qE 'postfix/scache\[[0-9]+\]: statistics: domain lookup hits=[1-9]' "$ml" && ok "our scache: domain lookups hit" ||
  bad "our scache hits" "$(grep scache "$ml" | head -5)"
! grep -qE 'postfix/(smtp|scache)\[[0-9]+\]: (warning|fatal|panic)' "$ml" && ok "ours: no warnings" ||
  bad "ours: warnings" "$(grep -E 'postfix/(smtp|scache)\[[0-9]+\]: (warning|fatal|panic)' "$ml" | head -3)"

# 3. The real smtp with our scache, and ours with the real one.
SCACHE_CMD=$OURS_SCACHE_REL run real-ourscache real
[ "$MAILS" = $N ] && [ "$CONNS" -lt "$N" ] && ok "the real smtp reuses connections through our scache ($CONNS)" ||
  bad "real smtp + our scache" "$MAILS transactions, $CONNS connections" "$(grep -m3 -E 'warning|fatal' "$T/runs/maillog.real-ourscache")"
SCACHE_CMD=scache run ours-realscache ours
[ "$MAILS" = $N ] && [ "$CONNS" -lt "$N" ] && ok "ours reuses connections through the real scache ($CONNS)" ||
  bad "ours + real scache" "$MAILS transactions, $CONNS connections" "$(grep -m3 -E 'warning|fatal' "$T/runs/maillog.ours-realscache")"

# 4. On demand off, no cache destinations: one connection per message.
ON_DEMAND=no SCACHE_CMD=$OURS_SCACHE_REL run ours-nocache ours
[ "$MAILS" = $N ] && [ "$CONNS" = $N ] && ok "on demand off: every message on its own connection" ||
  bad "no caching" "$MAILS transactions, $CONNS connections"
! grep -q conn_use "$T/runs/log.ours-nocache" && ok "on demand off: no conn_use" || bad "conn_use without caching"
[ "$(count quit)" = $N ] && ok "on demand off: every connection ends with QUIT" || bad "QUIT count" "$(count quit)"

# 5. smtp_connection_cache_destinations without qmgr's hint, and a reuse
# count limit of 3: a connection is reused at most 3 times (postconf(5)),
# so it carries at most 4 transactions (conn_use=4 at most).
ON_DEMAND=no CACHE_DEST=127.0.0.1 REUSE_COUNT=3 SCACHE_CMD=$OURS_SCACHE_REL run ours-dest ours
[ "$MAILS" = $N ] && [ "$CONNS" -lt "$N" ] && ok "smtp_connection_cache_destinations: connections are reused ($CONNS)" ||
  bad "cache destinations" "$MAILS transactions, $CONNS connections"
if grep -qE 'conn_use=([5-9]|[1-9][0-9])' "$T/runs/log.ours-dest"; then
  bad "smtp_connection_reuse_count_limit = 3" "$(grep -o 'conn_use=[0-9]*' "$T/runs/log.ours-dest" | sort | uniq -c)"
else
  ok "smtp_connection_reuse_count_limit = 3: conn_use never above 4"
fi
[ "$CONNS" -ge $(((N + 3) / 4)) ] && ok "the reuse limit makes new connections ($CONNS >= $(((N + 3) / 4)))" ||
  bad "reuse limit" "$CONNS connections"
finish
