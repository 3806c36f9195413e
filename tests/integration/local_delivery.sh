#!/usr/bin/env bash
# local(8): our delivery agent against the real Postfix 3.7 local, on the
# same queue files, inside a real Postfix instance (postfix-oracle).
#
# The instance's master.cf "local" entry runs first the real local, then
# ours; everything else (qmgr, trivial-rewrite, cleanup, bounce) is the
# real Postfix, so this is also the protocol test: the real qmgr hands our
# agent its delivery requests, and our agent reports to the real bounce,
# defer and trace services, resolves through the real trivial-rewrite and
# forwards through the real cleanup.  Each scenario is a queue file written
# with lib/queue (queue_tool) and dropped into incoming/, identical for both
# agents, so the mailboxes can be compared byte for byte (the date of the
# mbox "From " line and the Received: header of forwarded copies aside),
# and the log lines of the two agents too (queue IDs and delays aside).
#
# Scenarios, with test users made here (removed at the end):
#   phase mbox:    mailbox in mail_spool_directory (From_ line, >From
#                  quoting), an alias to several users, an alias to a file
#                  and to a command (with its environment), command exit
#                  codes (sysexits 67, a DSN in the output, plain status,
#                  a signal, the time limit), .forward to another user
#                  (forwarded as a new message), an unknown user (5.1.1),
#                  a Delivered-To loop (5.4.6), an owner- alias list, an
#                  :include: list with forbidden file and command
#                  destinations, an address extension, mailbox_size_limit
#                  (5.2.2, the file cut back), a mailbox the user cannot
#                  open (5.2.0), a held dotlock (4.2.0), mailbox_command_maps,
#                  an alias to a maildir, a full file system (4.3.0), a
#                  command in an alias table that a user owns (run as that
#                  user; root's tables run as default_privs)
#   phase maildir: home_mailbox = Maildir/, the same through maildirs, a
#                  .forward to another user and oneself, an unwritable home
#                  (maildir warnings), luser_relay
#   phase command: mailbox_command for everyone, run as the recipient;
#                  mailbox_transport_maps and fallback_transport (the real
#                  error(8) agent gets the recipient)
# Needs root and the oracle; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
LOCAL=$MTA_BIN/local
QT=$MTA_BIN/queue_tool
[ -x "$LOCAL" ] && [ -x "$QT" ] || { echo "# skip: $LOCAL or $QT is not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (test users, a real instance)"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi

T=$(mktemp -d /tmp/local_delivery.XXXXXX) || exit 1
chmod 755 "$T"
INST=$T/inst Q=$T/inst/queue LOG=$T/inst/maillog
SPOOL=$T/spool FILES=$T/files FULL=$T/full
UA=lda$$ UB=ldb$$ UC=ldc$$ UD=ldd$$
STARTED=0 MOUNTED=0
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
stop_instance() {
  if [ $STARTED = 1 ]; then pf postfix -c "$INST" stop >/dev/null 2>&1; STARTED=0; fi
}
cleanup() {
  stop_instance
  [ $MOUNTED = 1 ] && umount "$FULL" 2>/dev/null
  for u in $UA $UB $UC $UD; do userdel "$u" >/dev/null 2>&1; done
  [ -n "${KEEP:-}" ] && return; rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same_files() {  # NAME EXPECTED_FILE ACTUAL_FILE
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -a -u "$2" "$3" | head -n 40 | sed 's/^/    /')"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# ---------------------------------------------------------------- setup
for u in $UA $UB $UC $UD; do
  useradd -M -d "$T/home/$u" -s /bin/sh "$u" || { echo "# skip: useradd failed"; exit 77; }
done
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { bad "instance setup" "$(tail -5 "$T/instance.log")"; exit 1; }
DAEMONS=$("$ORACLE" path)/usr/lib/postfix/sbin
OURS_REL=$(realpath --relative-to="$DAEMONS" "$LOCAL")
mkdir -p "$T/stage/incoming" "$FULL"
if mount -t tmpfs -o size=256k tmpfs "$FULL" 2>/dev/null; then MOUNTED=1; fi
MYHOST=$(pf postconf -c "$INST" -h myhostname)

# A fixed message (Date and Message-ID included, so nothing varies), with
# a line longer than a queue file record (2048 bytes) that starts with "From ".
LONG="From $(head -c 3000 /dev/zero | tr '\0' L)"
message() {  # SUBJECT [EXTRA HEADER LINE]
  local extra=${2:-}
  [ -n "$extra" ] && extra="$extra"$'\n'
  printf 'Subject: %s\nFrom: Sender <s@example.org>\nDate: Sat, 1 Nov 2025 10:00:00 +0000\nMessage-ID: <%s@example.org>\n%s\nFrom the start\nline two\n>From x\n%s\n.\nlast line' \
    "$1" "$1" "$extra" "$LONG"
}
# inject RECIPIENT [QUEUE_TOOL ARGS] < message: a queue file in incoming/, qmgr kicked.
inject() {
  local rcpt=$1 out id file; shift
  out=$("$QT" write "$T/stage" -s s@example.org -a rewrite_context=local -r "$rcpt,$rcpt" "$@") || return 1
  read -r id file <<<"$out"
  chown postfix:postfix "$file" && mv "$file" "$Q/incoming/$id"
  echo "$id" >>"$T/ids"
}
kick() { pf postkick -c "$INST" public qmgr I >/dev/null 2>&1; }
# Settled: every injected message has a local(8) result, and nothing waits in incoming/ or active/.
settled() {
  local id
  while read -r id; do grep -q "$id: to=<" "$LOG" || return 1; done <"$T/ids"
  [ -z "$(find "$Q/incoming" "$Q/active" -type f 2>/dev/null)" ]
}

# The local(8) log lines, normalized and sorted.
local_log() {
  grep -E 'postfix/local\[' "$LOG" | sed -E -e 's/^.*postfix\/local\[[0-9]+\]: //' \
    -e 's/(tmp\/)[0-9]+\.P[0-9]+\./\1TIME.PID./g' \
    -e 's/^[0-9A-F]+: /QID: /' -e 's/delay=[0-9.]+, delays=[0-9.\/]+/delay=D, delays=D/' \
    -e 's/(forwarded as )[0-9A-F]+/\1QID/' -e 's/[0-9A-F]{8,}/QID/g' | sort
}
# A mailbox or message file, normalized: the From_ date, forwarded copies' Received ids and dates.
normalize() {
  sed -E -e 's/^(From [^ ]+  ).*/\1DATE/' -e 's/^(	id )[0-9A-F]+; .*/\1QID; DATE/'
}
# An mbox file as text: its messages normalized, in the order of their
# contents (parallel deliveries arrive in any order).
mbox_text() {
  normalize <"$1" | python3 -c '
import sys
msgs, cur, prev = [], [], ""
text = sys.stdin.read()
if text.endswith("\n"):
    text = text[:-1]  # drop the final newline: then every message ends alike
for line in text.split("\n"):
    if line.startswith("From ") and prev == "" and cur:
        msgs.append("\n".join(cur)); cur = []
    cur.append(line); prev = line
if cur: msgs.append("\n".join(cur))
print("\n==\n".join(sorted(msgs)))'
}
# A maildir as text: each message normalized with its owner and mode, in the
# order of their contents (file names differ from run to run), and how many
# files cur/ and tmp/ hold.
maildir_text() {
  local f
  for f in "$1"/new/*; do
    [ -f "$f" ] && { { echo "== message $(stat -c '%U %a' "$f")"; normalize <"$f"; } | base64 -w0; echo; }
  done | sort | while read -r m; do base64 -d <<<"$m"; done
  echo "== cur: $(ls "$1/cur" 2>/dev/null | wc -l), tmp: $(ls "$1/tmp" 2>/dev/null | wc -l)"
}

reset_state() {
  rm -rf "$SPOOL" "$FILES" "$T/home" "$FULL"/* "$T/ids"
  mkdir -p "$SPOOL" "$FILES" && chmod 1777 "$SPOOL" "$FILES"
  for u in $UA $UB $UC $UD; do mkdir -p "$T/home/$u" && chown "$u:" "$T/home/$u"; done
  : >"$T/ids"
}

run_agent() {  # PHASE AGENT(real|ours): run one phase's scenarios with one agent, keep the results
  local phase=$1 agent=$2 cmd=local out=$T/out/$1.$2
  [ "$agent" = ours ] && cmd=$OURS_REL
  pf postconf -c "$INST" -M "local/unix=local unix - n n - - $cmd" >/dev/null
  reset_state
  "config_$phase"
  pf postalias -c "$INST" "$INST/aliases" >/dev/null
  : >"$LOG"
  pf postfix -c "$INST" start >"$T/start.log" 2>&1 && STARTED=1
  if [ $STARTED = 0 ]; then bad "$phase/$agent: the instance starts" "$(tail -3 "$T/start.log")"; return 1; fi
  "inject_$phase"
  kick
  if ! wait_for 90 settled; then
    bad "$phase/$agent: every message is handled" "$(tail -n 8 "$LOG")"
  fi
  stop_instance
  rm -rf "$out"; mkdir -p "$out"
  local_log >"$out/log"
  grep -E 'postfix/local\[.*(fatal|panic)' "$LOG" >"$out/fatal"
  for u in $UA $UB $UC $UD; do
    [ -f "$SPOOL/$u" ] && mbox_text "$SPOOL/$u" >"$out/mbox.$u"
    [ -d "$T/home/$u/Maildir" ] && maildir_text "$T/home/$u/Maildir" >"$out/maildir.$u"
    for f in "$T/home/$u"/mbcmd*; do [ -f "$f" ] && normalize <"$f" >"$out/$u.${f##*/}"; done
  done
  (cd "$FILES" && find . -path ./md -prune -o -type f -print | sort | while read -r f; do
    echo "== $f $(stat -c '%U %a %s' "$f")"; normalize <"$f"
  done) >"$out/files"
  [ -d "$FILES/md" ] && maildir_text "$FILES/md" >"$out/filemaildir"
  ls -ln "$SPOOL" 2>/dev/null | awk 'NR > 1 { print $3, $4, $5, $9 }' >"$out/spool.ls"
  [ $MOUNTED = 1 ] && find "$FULL" -type f -printf '%P %s\n' | sort >"$out/full.ls"
  find "$T/home" "$FILES" -path '*/Maildir/tmp/*' -o -path '*/md/tmp/*' -type f >"$out/maildir.tmp"
  return 0
}

compare_phase() {  # PHASE
  local r=$T/out/$1.real o=$T/out/$1.ours f
  same_files "$1: the same local(8) log lines" "$r/log" "$o/log"
  for f in $(cd "$r" && ls); do
    [ "$f" = log ] && continue
    same_files "$1: $f as the real local leaves it" "$r/$f" "$o/$f"
  done
  [ -s "$o/fatal" ] && bad "$1: no fatal errors from our local" "$(cat "$o/fatal")"
  [ -s "$o/maildir.tmp" ] && bad "$1: nothing left in maildir tmp/" "$(cat "$o/maildir.tmp")"
  return 0
}

expect_log() {  # PHASE NAME PATTERN: a line of our agent's log matches
  if grep -qE -- "$3" "$T/out/$1.ours/log"; then ok "$1: $2"; else bad "$1: $2" "no log line matches: $3"; fi
}

# ---------------------------------------------------------------- phase mbox
common_config() {
  pf postconf -c "$INST" -e "default_transport = discard" "mail_spool_directory = $SPOOL" \
    "recipient_delimiter = +" "command_time_limit = 3s" "deliver_lock_attempts = 2" \
    "message_size_limit = 100000" "mailbox_size_limit = 200000" \
    "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$("$ORACLE" path)/usr/lib/postfix" >/dev/null
  cat >"$INST/aliases" <<EOF
postmaster: root
team: $UA, $UB
tofile: $FILES/tofile.mbox
tocmd: "|cat > $FILES/cmd.out; env | sort > $FILES/cmd.env"
cmdfail: "|echo oops; exit 67"
cmddsn: "|echo 4.7.1 come back later; exit 1"
cmdstatus: "|echo plain failure; exit 3"
cmdsignal: "|kill -9 \$\$"
cmdslow: "|sleep 30"
list: $UA, $UB
owner-list: $UC
incl: :include:$T/include.txt
md: $FILES/md/
fullfile: $FULL/fullfile
bigfile: $FILES/big.mbox
lockedfile: $FILES/locked.mbox
EOF
  printf '%s\n# a comment\n%s, nosuchuser2\n%s/restricted\n"|cat"\n' "$UA" "$UB" "$FILES" >"$T/include.txt"
}
config_mbox() {
  common_config
  printf "%s /bin/sh -c 'cat > \$HOME/mbcmd.out'\n" "$UC" >"$T/mbcmd.map"
  # A second alias table that user A owns: its commands run as A.
  printf 'byowner: "|id -un > %s/whoami"\n' "$FILES" >"$T/useraliases"
  pf postalias -c "$INST" "hash:$T/useraliases" && chown "$UA" "$T/useraliases.db"
  pf postconf -c "$INST" -e "home_mailbox =" "mailbox_command =" "mailbox_command_maps = texthash:$T/mbcmd.map" \
    "alias_maps = hash:$INST/aliases, hash:$T/useraliases" >/dev/null
}
inject_mbox() {
  message plain | inject "$UA@localhost"
  message team | inject "team+ext@localhost" -a notify_flags=2
  message tofile | inject "tofile@localhost"
  message tocmd | inject "tocmd@localhost"
  message cmdfail | inject "cmdfail@localhost"
  message cmddsn | inject "cmddsn@localhost"
  message cmdstatus | inject "cmdstatus@localhost"
  message cmdsignal | inject "cmdsignal@localhost"
  message cmdslow | inject "cmdslow@localhost"
  message unknown | inject "nosuchuser@localhost"
  message loop "Delivered-To: $UB@localhost" | inject "$UB@localhost"
  message list | inject "list@localhost"
  message include | inject "incl@localhost"
  message extension | inject "$UA+box@localhost"
  message maildir | inject "md@localhost"
  message mbcommand | inject "$UC@localhost"
  message byowner | inject "byowner@localhost"
  # mailbox_size_limit: a file that cannot grow by a message
  head -c 199950 /dev/zero >"$FILES/big.mbox"; chown nobody "$FILES/big.mbox"; chmod 600 "$FILES/big.mbox"
  message big | inject "bigfile@localhost"
  # a dotlock that someone else holds
  : >"$FILES/locked.mbox.lock"
  message locked | inject "lockedfile@localhost"
  # a mailbox that its user cannot open
  : >"$SPOOL/$UD"; chmod 600 "$SPOOL/$UD"
  message noaccess | inject "$UD@localhost"
  if [ $MOUNTED = 1 ]; then
    head -c 400000 /dev/zero >"$FULL/filler" 2>/dev/null
    message full | inject "fullfile@localhost"
  fi
}

# ---------------------------------------------------------------- phase maildir
config_maildir() {
  common_config
  pf postconf -c "$INST" -e "alias_maps = hash:$INST/aliases" "home_mailbox = Maildir/" "mailbox_command =" "mailbox_command_maps =" \
    "luser_relay = \$user-lost@localhost" >/dev/null
  printf 'nosuchuser-lost: %s\n' "$UA" >>"$INST/aliases"
}
inject_maildir() {
  # B forwards to A and keeps a copy.  Made before any message goes in: the
  # team message below reaches B too, and must meet the same .forward
  # whichever agent delivers it and however fast.
  printf '%s, \\%s\n' "$UA" "$UB" >"$T/home/$UB/.forward"; chown "$UB:" "$T/home/$UB/.forward"
  message plain | inject "$UA@localhost"
  message team | inject "team@localhost"
  message extension | inject "$UA+box@localhost"
  message forward | inject "$UB@localhost"
  # C's home is not writable: the maildir cannot be made
  chown root: "$T/home/$UC"; chmod 755 "$T/home/$UC"
  message nohome | inject "$UC@localhost"
  message lost | inject "nosuchuser@localhost"
}

# ---------------------------------------------------------------- phase command
config_command() {
  common_config
  pf postconf -c "$INST" -e "alias_maps = hash:$INST/aliases" "home_mailbox =" "mailbox_command_maps =" \
    "mailbox_command = /bin/sh -c 'f=\$HOME/mbcmd-\$ORIGINAL_RECIPIENT; cat > \$f; id -un >> \$f; echo \$USER \$EXTENSION \$RECIPIENT \$ORIGINAL_RECIPIENT >> \$f'" \
    "mailbox_transport_maps = texthash:$T/mbtransport" "fallback_transport = error:5.1.1 nobody here by that name" >/dev/null
  printf '%s error:5.2.1 mailbox disabled\n' "$UB" >"$T/mbtransport"
}
inject_command() {
  message command | inject "$UA+ext@localhost"
  message team | inject "team@localhost"
  message unknown | inject "nosuchuser@localhost"
}

for phase in mbox maildir command; do
  run_agent "$phase" real && run_agent "$phase" ours && compare_phase "$phase"
done

# What the comparisons above mean, spelled out for our agent.
expect_log mbox "delivered to mailbox" 'QID: to=<lda[0-9]+@localhost>, relay=local, delay=D, delays=D, dsn=2.0.0, status=sent \(delivered to mailbox\)'
expect_log mbox "an alias to two users" "to=<ldb[0-9]+@$MYHOST>, orig_to=<team\+ext@localhost>, .*status=sent \(delivered to mailbox\)"
expect_log mbox "mailbox_size_limit is 5.2.2" 'dsn=5.2.2, status=bounced \(cannot append message to file .*/big.mbox: error writing message: File too large\)'
expect_log mbox "a held dotlock is 4.2.0" 'dsn=4.2.0, status=deferred \(cannot append message to file .*/locked.mbox: unable to create lock file .*: File exists\)'
if [ "$(sed -n '/whoami/{n;p}' "$T/out/mbox.ours/files")" = "$UA" ]; then
  ok "mbox: a command from an alias table that a user owns runs as that user"
else
  bad "mbox: a command from an alias table that a user owns runs as that user" "$(grep -A1 whoami "$T/out/mbox.ours/files")"
fi
expect_log mbox "delivered to file" 'status=sent \(delivered to file: .*/tofile.mbox\)'
expect_log mbox "delivered to command" 'status=sent \(delivered to command: cat > '
expect_log mbox "exit 67 is 5.1.1" 'dsn=5.1.1, status=bounced \(user unknown. Command output: oops \)'
expect_log mbox "unknown user" 'to=<nosuchuser@localhost>, .*dsn=5.1.1, status=bounced \(unknown user: "nosuchuser"\)'
expect_log mbox "loop detection" 'dsn=5.4.6, status=bounced \(mail forwarding loop for ldb[0-9]+@localhost\)'
expect_log mbox "command time limit" 'dsn=5.3.0, status=bounced \(Command time limit exceeded: "sleep 30"\)'
expect_log mbox "mailbox command" 'status=sent \(delivered to command: /bin/sh -c'
[ $MOUNTED = 1 ] && expect_log mbox "a full file system defers with 4.3.0" \
  'dsn=4.3.0, status=deferred \(cannot append message to file .*fullfile: error writing message: No space left on device\)'
expect_log maildir "delivered to maildir" 'status=sent \(delivered to maildir\)'
expect_log maildir "luser_relay" "to=<lda[0-9]+@$MYHOST>, orig_to=<nosuchuser@localhost>, .*delivered to maildir"
expect_log command "mailbox_transport_maps hands the recipient to another transport" 'passing <ldb[0-9]+@[^>]*> to transport=error'
expect_log command "fallback_transport takes unknown users" 'passing <nosuchuser@localhost> to transport=error'
expect_log command "mailbox_command as the recipient" 'to=<lda[0-9]+\+ext@localhost>.*delivered to command'
MBCMD=$T/out/command.ours/$UA.mbcmd-$UA+ext@localhost
if [ -f "$MBCMD" ] && [ "$(tail -n 2 "$MBCMD")" = "$UA"$'\n'"$UA ext $UA+ext@localhost $UA+ext@localhost" ]; then
  ok "command: the mailbox command ran as the recipient, with USER, EXTENSION, RECIPIENT, ORIGINAL_RECIPIENT"
else
  bad "command: the mailbox command ran as the recipient" "$(tail -n 3 "$MBCMD" 2>&1)"
fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
