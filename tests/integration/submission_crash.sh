#!/usr/bin/env bash
# The submission half of the mail path under stress, on an instance of ours
# (our master, pickup, cleanup; no qmgr): a maildrop file that is not one
# goes to corrupt/ with a log line and the next message still flows; a file
# postdrop is still writing is left alone; and kill -9 of pickup and of
# cleanup, again and again while 30 messages of 3 MB are submitted, loses none of
# them (each arrives in incoming/ complete, at least once).
#
# trivial-rewrite comes from build/bin when it is built, else from the oracle
# (SUBMISSION_HELPERS=oracle forces that).  Needs root (the daemons drop to
# mail_owner); skipped (77) otherwise or without any trivial-rewrite.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
for p in sendmail postdrop pickup cleanup master postfix; do
  [ -x "$B/$p" ] || { echo "# skip: $B/$p is not built"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (daemons run as mail_owner)"; exit 77; }
OD=""
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  OD=$(timeout 60 "$ORACLE" path 2>/dev/null | tail -n 1)
fi
if [ "${SUBMISSION_HELPERS:-}" != oracle ] && [ -x "$B/trivial-rewrite" ]; then
  REWRITE=trivial-rewrite
elif [ -n "$OD" ]; then
  REWRITE=$OD/usr/lib/postfix/sbin/trivial-rewrite
else
  echo "# skip: no trivial-rewrite (neither ours nor the oracle's)"; exit 77
fi
T=$(mktemp -d /tmp/submission-crash.XXXXXX) || exit 1
chmod 755 "$T"
OURS=$T/ours
STARTED=0
trap '[ $STARTED = 1 ] && timeout 30 "$B/postfix" -c "$OURS" stop >/dev/null 2>&1; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 10; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}

mkdir -p "$OURS/queue"
{
  echo "compatibility_level = 3.6"
  echo "queue_directory = $OURS/queue"
  echo "data_directory = $OURS/data"
  echo "daemon_directory = $B"
  echo "command_directory = $B"
  echo "maillog_file = $OURS/maillog"
  echo "maillog_file_prefixes = $OURS"
  echo "inet_protocols = ipv4"
  echo "inet_interfaces = 127.0.0.1"
  echo "myhostname = host.example.com"
  if [ -n "$OD" ]; then  # the oracle's trivial-rewrite needs its libraries
    echo "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=$OD/usr/lib/postfix"
    echo "shlib_directory = $OD/usr/lib/postfix"
    echo "meta_directory = $OD/etc/postfix"
  fi
} >"$OURS/main.cf"
# pickup wakes up every 2 seconds (60 in Debian's master.cf), to keep the test short.
{
  echo "pickup    unix  n       -       n       2       1       pickup"
  echo "cleanup   unix  n       -       n       -       0       cleanup"
  echo "rewrite   unix  -       -       n       -       -       $REWRITE"
  # Stands in for qmgr: records the triggers cleanup sends.
  [ -x "$B/test_trigger" ] && echo "qmgr      unix  n       -       n       300     1       test_trigger"
} >"$OURS/master.cf"
touch "$OURS/maillog"
mkdir -p "$OURS/queue"; touch "$OURS/queue/trigger.log"; chmod 666 "$OURS/queue/trigger.log"
if "$B/postfix" -c "$OURS" start >/dev/null 2>&1; then STARTED=1; else
  bad "our instance starts" "$(tail -5 "$OURS/maillog")"; exit 1
fi
wait_for 10 test -S "$OURS/queue/public/pickup" -a -S "$OURS/queue/public/cleanup" || bad "our services are listening"

# ---------------------------------------------------------------- ours only
# cleanup wakes up qmgr (public/qmgr) after each message.
if [ -x "$B/test_trigger" ]; then
  printf 'Subject: wake qmgr\n\nbody\n' | MAIL_CONFIG=$OURS "$B/sendmail" someone
  wait_for 15 grep -q W "$OURS/queue/trigger.log" && ok "cleanup wakes up qmgr with a W trigger" ||
    bad "cleanup wakes up qmgr with a W trigger" "trigger.log: $(cat "$OURS/queue/trigger.log")"
fi

master_pid=$(awk '{print $1; exit}' "$OURS/queue/pid/master.pid")
# Children of our master running PROGRAM.
children() {
  local pid
  for pid in $(pgrep -P "$master_pid"); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$B/$1" ] && echo "$pid"
  done
}

# A maildrop file that is not one: moved to corrupt/, logged, the next one flows.
from=$(($(wc -l <"$OURS/maillog") + 1))
printf 'garbage that is not a queue file\n' >"$OURS/queue/maildrop/BADFILE01"
chmod 0744 "$OURS/queue/maildrop/BADFILE01"
rm -f "$OURS"/queue/incoming/*
printf 'Subject: after garbage\n\nbody\n' | MAIL_CONFIG=$OURS "$B/sendmail" someone
wait_for 15 test -f "$OURS/queue/corrupt/BADFILE01" && ok "a broken maildrop file goes to corrupt/" ||
  bad "a broken maildrop file goes to corrupt/" "$(ls -R "$OURS/queue/maildrop" "$OURS/queue/corrupt")"
tail -n +"$from" "$OURS/maillog" | grep -q 'BADFILE01: uid=0: malformed maildrop file' &&
  ok "the broken file is logged" || bad "the broken file is logged" "$(tail -n +"$from" "$OURS/maillog")"
wait_for 15 sh -c "ls '$OURS/queue/incoming' | grep -q ." && ok "mail after a broken file still flows" ||
  bad "mail after a broken file still flows"

# A file still being written (mode 0644) is left alone.
cp "$OURS/queue/corrupt/BADFILE01" "$OURS/queue/maildrop/PARTIAL01"; chmod 0644 "$OURS/queue/maildrop/PARTIAL01"
printf 'Subject: wake\n\nbody\n' | MAIL_CONFIG=$OURS "$B/sendmail" someone
sleep 2
[ -f "$OURS/queue/maildrop/PARTIAL01" ] && ok "a file postdrop is still writing is not touched" ||
  bad "a file postdrop is still writing is not touched"
rm -f "$OURS/queue/maildrop/PARTIAL01"

# kill -9 of pickup and of cleanup while messages flow: none is lost.  A
# process is frozen (SIGSTOP) and killed only when cleanup has a queue file
# half-written at that moment (mode 0600 in incoming/): pickup is then still
# sending, cleanup still writing.
rm -f "$OURS"/queue/incoming/*
N=30
big=$(head -c 3000000 /dev/zero | tr '\0' z | fold -w 100)
# Freezes PROGRAM's processes; those caught while cleanup has a queue file
# half-written are killed, the others continue.  Counts the kills.
kill_midway() {
  local pid n=0
  for pid in $(children "$1"); do
    kill -STOP "$pid" 2>/dev/null || continue
    if [ -n "$(find "$OURS/queue/incoming" -type f -perm 600 -print -quit 2>/dev/null)" ]; then
      kill -9 "$pid" && n=$((n + 1))
    else
      kill -CONT "$pid"
    fi
  done
  echo $n
}
killed_pickup=0 killed_cleanup=0
# A burst of submissions with the killing going on; on a busy machine a
# burst may pass without catching both daemons mid-way: then another one.
for burst in 1 2 3; do
  ( for i in $(seq $N); do
      printf 'Subject: crash test %d end\n\n%s\n' "$i" "$big" | MAIL_CONFIG=$OURS "$B/sendmail" someone || echo "send $i failed" >>"$T/send-errors"
    done ) &
  sender=$!
  round=0
  while kill -0 $sender 2>/dev/null && [ $round -lt 3000 ]; do
    round=$((round + 1))
    if [ $killed_cleanup -le $killed_pickup ]; then
      killed_cleanup=$((killed_cleanup + $(kill_midway cleanup)))
    else
      killed_pickup=$((killed_pickup + $(kill_midway pickup)))
    fi
    sleep 0.05
  done
  wait $sender
  [ $killed_cleanup -gt 0 ] && [ $killed_pickup -gt 0 ] && break
done
[ ! -s "$T/send-errors" ] && ok "sendmail succeeds while daemons are killed" || bad "sendmail succeeds while daemons are killed" "$(cat "$T/send-errors")"
# Everything arrives once the daemons are left alone (pickup wakes up every 2s).
all_arrived() {
  [ -z "$(ls "$OURS/queue/maildrop")" ] || return 1
  local i
  for i in $(seq $N); do
    find "$OURS/queue/incoming" -type f -perm -700 -exec grep -alq "Subject: crash test $i end" {} + 2>/dev/null || return 1
  done
}
if wait_for 120 all_arrived; then ok "kill -9 of pickup and cleanup: all $N messages arrive"; else
  missing=""; for i in $(seq $N); do find "$OURS/queue/incoming" -type f -perm -700 -exec grep -alq "Subject: crash test $i end" {} + 2>/dev/null || missing="$missing $i"; done
  bad "kill -9 of pickup and cleanup: all $N messages arrive" "missing:$missing" "maildrop: $(ls "$OURS/queue/maildrop" | wc -l)"
fi
[ $killed_cleanup -gt 0 ] && ok "cleanup was killed mid-way ($killed_cleanup times)" || bad "cleanup was killed mid-way"
[ $killed_pickup -gt 0 ] && ok "pickup was killed mid-way ($killed_pickup times)" || bad "pickup was killed mid-way"
echo "# queue files left half-written by a killed cleanup (never picked up): $(find "$OURS/queue/incoming" -type f ! -perm -700 | wc -l)"

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
