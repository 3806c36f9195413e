#!/usr/bin/env bash
# virtual(8): our delivery agent against the real Postfix 3.7 virtual, on
# the same queue files, inside a real Postfix instance (postfix-oracle),
# then the maildir it wrote read back over IMAP through a real Dovecot.
#
# The instance's master.cf "virtual" entry runs first the real virtual,
# then ours; qmgr, trivial-rewrite, bounce and defer are the real Postfix,
# so this is also the protocol test (the real qmgr hands our agent its
# requests, our agent reports to the real bounce and defer services).  Each
# scenario is a queue file written with lib/queue (queue_tool) and dropped
# into incoming/, identical for both agents, so the mailboxes are compared
# byte for byte (maildir file names and the date of the mbox "From " line
# aside), with owners and modes, and the virtual(8) log lines of both
# agents too (queue IDs, pids, delays and tmp/ file names aside).
#
# Scenarios (virtual_mailbox_base = $T/vmail, a test user owns it; uid and
# gid from static: tables, except for the one low-uid address):
#   florin@gamers.com     gamers.com/florin/ (the issue's example): a maildir
#                         whose directories, parents too, do not exist yet
#   florin+ext@gamers.com the same maildir, found without the extension
#   Florin@Gamers.COM     the same, found after case folding
#   mbox@example.net      example.net/mbox: an mbox file (From_ line,
#                         >From, Return-Path, X-Original-To, Delivered-To)
#   anyone@catchall.test  found by "@catchall.test"
#   nobody@gamers.com     unknown: 5.1.1 bounce
#   lowuid@example.net    uid 50 < virtual_minimum_uid: deferred (4.3.5)
#   big@example.net       an mbox that the message would take beyond
#                         virtual_mailbox_limit: 5.2.2 bounce, file cut back
#   notmine@example.net   an mbox owned by root: strict_mailbox_ownership
#   ro@readonly.test      a maildir under a part of the base the user cannot
#                         write: deferred (4.2.0) with Postfix's warnings
# and, in a second run, a failing table behind virtual_mailbox_maps: an
# address that meets it is deferred (4.3.5), never bounced.
# Needs root and the oracle; exit 77 (skip) otherwise.  The IMAP part needs
# dovecot-imapd (skipped without it).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
VIRTUAL=$MTA_BIN/virtual
QT=$MTA_BIN/queue_tool
[ -x "$VIRTUAL" ] && [ -x "$QT" ] || { echo "# skip: $VIRTUAL or $QT is not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (a test user, a real instance)"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi

T=$(mktemp -d /tmp/virtual_delivery.XXXXXX) || exit 1
chmod 755 "$T"
INST=$T/inst Q=$T/inst/queue LOG=$T/inst/maillog VMAIL=$T/vmail
VU=vm$$
STARTED=0 DOVECOT_PID=
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
stop_instance() {
  if [ $STARTED = 1 ]; then pf postfix -c "$INST" stop >/dev/null 2>&1; STARTED=0; fi
}
cleanup() {
  stop_instance
  if [ -n "$DOVECOT_PID" ]; then
    kill "$DOVECOT_PID" 2>/dev/null
    timeout 10 tail --pid="$DOVECOT_PID" -f /dev/null 2>/dev/null
  fi
  userdel "$VU" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && { echo "# kept $T"; return; }
  rm -rf "$T"
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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- setup
useradd -M -d "$T/nohome" -s /usr/sbin/nologin "$VU" || { echo "# skip: useradd failed"; exit 77; }
VUID=$(id -u "$VU") VGID=$(id -g "$VU")
timeout 120 "$ORACLE" instance "$INST" "$(free_port)" >"$T/instance.log" 2>&1 ||
  { bad "instance setup" "$(tail -5 "$T/instance.log")"; exit 1; }
DAEMONS=$("$ORACLE" path)/usr/lib/postfix/sbin
OURS_REL=$(realpath --relative-to="$DAEMONS" "$VIRTUAL")

pf postconf -c "$INST" -e "default_transport = discard" "recipient_delimiter = +" \
  "virtual_mailbox_domains = gamers.com example.net catchall.test readonly.test" \
  "virtual_mailbox_base = $VMAIL" "virtual_mailbox_maps = hash:$T/vmailbox" \
  "virtual_uid_maps = hash:$T/vuid, static:$VUID" "virtual_gid_maps = static:$VGID" \
  "virtual_minimum_uid = 100" "message_size_limit = 100000" "virtual_mailbox_limit = 200000" \
  "deliver_lock_attempts = 2" >/dev/null
cat >"$T/vmailbox" <<EOF
florin@gamers.com     gamers.com/florin/
mbox@example.net      example.net/mbox
lowuid@example.net    example.net/lowuid/
big@example.net       example.net/big
notmine@example.net   example.net/notmine
@catchall.test        catchall.test/all/
ro@readonly.test      ro/readonly.test/ro/
EOF
printf 'lowuid@example.net 50\n' >"$T/vuid"
pf postmap -c "$INST" "hash:$T/vmailbox" "hash:$T/vuid" || { bad "postmap the tables"; exit 1; }
mkdir -p "$T/stage/incoming"

# A fixed message (Date and Message-ID included, so nothing varies), with
# a line longer than a queue file record (2048 bytes) that starts with "From ".
LONG="From $(head -c 3000 /dev/zero | tr '\0' L)"
message() {  # SUBJECT
  printf 'Subject: %s\nFrom: Sender <s@example.org>\nDate: Sat, 1 Nov 2025 10:00:00 +0000\nMessage-ID: <%s@example.org>\n\nFrom the start\nline two\n>From x\n%s\n.\nlast line of %s' \
    "$1" "$1" "$LONG" "$1"
}
# inject RECIPIENT [QUEUE_TOOL ARGS] < message: a queue file in incoming/.
inject() {
  local rcpt=$1 out id file; shift
  out=$("$QT" write "$T/stage" -s s@example.org -a rewrite_context=local -r "$rcpt,$rcpt" "$@") || return 1
  read -r id file <<<"$out"
  chown postfix:postfix "$file" && mv "$file" "$Q/incoming/$id"
  echo "$id" >>"$T/ids"
}
kick() { pf postkick -c "$INST" public qmgr I >/dev/null 2>&1; }
# Settled: every injected message has a result, and nothing waits in incoming/ or active/.
settled() {
  local id
  while read -r id; do grep -q "$id: to=<" "$LOG" || return 1; done <"$T/ids"
  [ -z "$(find "$Q/incoming" "$Q/active" -type f 2>/dev/null)" ]
}

# The virtual(8) log lines, normalized and sorted.
virtual_log() {
  grep -E 'postfix/virtual\[' "$LOG" | sed -E -e 's/^.*postfix\/virtual\[[0-9]+\]: //' \
    -e 's/(tmp\/)[0-9]+\.P[0-9]+\./\1TIME.PID./g' \
    -e 's/^[0-9A-F]+: /QID: /' -e 's/delay=[0-9.]+, delays=[0-9.\/]+/delay=D, delays=D/' | sort
}
normalize() { sed -E -e 's/^(From [^ ]+  ).*/\1DATE/'; }
# An mbox file as text: its messages normalized, in the order of their contents.
mbox_text() {
  echo "== $(stat -c '%U %G %a %s' "$1")"
  normalize <"$1" | python3 -c '
import sys
msgs, cur, prev = [], [], ""
text = sys.stdin.read()
if text.endswith("\n"):
    text = text[:-1]
for line in text.split("\n"):
    if line.startswith("From ") and prev == "" and cur:
        msgs.append("\n".join(cur)); cur = []
    cur.append(line); prev = line
if cur: msgs.append("\n".join(cur))
print("\n==\n".join(sorted(msgs)))'
}
# A maildir as text: each message with its owner and mode, in the order of
# their contents (file names differ from run to run), and the file counts.
maildir_text() {
  local f
  for f in "$1"/new/*; do
    [ -f "$f" ] && { { echo "== message $(stat -c '%U %G %a' "$f")"; normalize <"$f"; } | base64 -w0; echo; }
  done | sort | while read -r m; do base64 -d <<<"$m"; done
  echo "== cur: $(ls "$1/cur" 2>/dev/null | wc -l), tmp: $(ls "$1/tmp" 2>/dev/null | wc -l)"
}

reset_state() {
  rm -rf "$VMAIL" "$T/ids"
  mkdir -p "$VMAIL/example.net" "$VMAIL/ro"
  chown "$VU:$VU" "$VMAIL" "$VMAIL/example.net"
  chmod 755 "$VMAIL/ro"  # root's: the user cannot make readonly.test/ in it
  # 50 bytes below virtual_mailbox_limit: no message fits
  head -c 199950 /dev/zero | tr '\0' x >"$VMAIL/example.net/big"
  chown "$VU:$VU" "$VMAIL/example.net/big"; chmod 600 "$VMAIL/example.net/big"
  : >"$VMAIL/example.net/notmine"; chmod 666 "$VMAIL/example.net/notmine"
  : >"$T/ids"
}

inject_main() {
  message maildir | inject florin@gamers.com
  message extension | inject florin+ext@gamers.com
  message casefold | inject Florin@Gamers.COM
  message mbox | inject mbox@example.net
  message catchall | inject anyone@catchall.test
  message unknown | inject nobody@gamers.com
  message lowuid | inject lowuid@example.net
  message big | inject big@example.net
  message notmine | inject notmine@example.net
  message readonly | inject ro@readonly.test
}
# A failing table behind the mailbox table: known users are found first,
# any other address meets the failure (deferred, never bounced).
inject_lookup_error() {
  message known | inject mbox@example.net
  message tablefail | inject nobody@gamers.com
}

run_agent() {  # AGENT(real|ours) [PHASE]: run the scenarios with one agent, keep the results
  local agent=$1 phase=${2:-main} cmd=virtual out=$T/out/$1${2:+.$2}
  [ "$agent" = ours ] && cmd=$OURS_REL
  pf postconf -c "$INST" -M "virtual/unix=virtual unix - n n - - $cmd" >/dev/null
  reset_state
  : >"$LOG"
  pf postfix -c "$INST" start >"$T/start.log" 2>&1 && STARTED=1
  if [ $STARTED = 0 ]; then bad "$agent: the instance starts" "$(tail -3 "$T/start.log")"; return 1; fi
  "inject_$phase"
  kick
  wait_for 90 settled || bad "$agent: every message is handled" "$(tail -n 8 "$LOG")"
  stop_instance
  rm -rf "$out"; mkdir -p "$out"
  virtual_log >"$out/log"
  grep -E 'postfix/virtual\[.*(fatal|panic)' "$LOG" >"$out/fatal"
  maildir_text "$VMAIL/gamers.com/florin" >"$out/maildir.florin"
  maildir_text "$VMAIL/catchall.test/all" >"$out/maildir.catchall"
  for f in mbox big notmine; do mbox_text "$VMAIL/example.net/$f" >"$out/mbox.$f"; done
  # Every directory and mbox file, with owner, group and mode.
  (cd "$VMAIL" && find . -path '*/new/*' -prune -o -printf '%p %u %g %m\n' | sort) >"$out/tree"
  find "$VMAIL" -path "$VMAIL/*/tmp/*" -type f >"$out/maildir.tmp"
  return 0
}

run_agent real && run_agent ours && {
  r=$T/out/real o=$T/out/ours
  same_files "the same virtual(8) log lines as the real virtual" "$r/log" "$o/log"
  for f in maildir.florin maildir.catchall mbox.mbox mbox.big mbox.notmine tree; do
    same_files "$f as the real virtual leaves it" "$r/$f" "$o/$f"
  done
  [ -s "$o/fatal" ] && bad "no fatal errors from our virtual" "$(cat "$o/fatal")"
  [ -s "$o/maildir.tmp" ] && bad "nothing left in maildir tmp/" "$(cat "$o/maildir.tmp")"
}

# What the comparisons mean, spelled out for our agent.
expect_log() {  # NAME PATTERN: a line of our agent's log matches
  if grep -qE -- "$2" "$T/out/ours/log"; then ok "$1"; else bad "$1" "no log line matches: $2"; fi
}
expect_log "delivered to maildir (the issue's example)" \
  '^QID: to=<florin@gamers.com>, relay=virtual, delay=D, delays=D, dsn=2.0.0, status=sent \(delivered to maildir\)$'
expect_log "an address extension finds the unextended entry" 'to=<florin\+ext@gamers.com>, .*status=sent \(delivered to maildir\)'
expect_log "delivered to mailbox" 'to=<mbox@example.net>, relay=virtual, .*dsn=2.0.0, status=sent \(delivered to mailbox\)'
expect_log "@domain catch-all" 'to=<anyone@catchall.test>, .*status=sent \(delivered to maildir\)'
expect_log "unknown user bounces 5.1.1" 'to=<nobody@gamers.com>, .*dsn=5.1.1, status=bounced \(unknown user: "nobody@gamers.com"\)'
expect_log "a uid below virtual_minimum_uid defers" \
  'to=<lowuid@example.net>, .*dsn=4.3.5, status=deferred \(mail system configuration error\)'
expect_log "a uid below virtual_minimum_uid is named in a warning" \
  '^warning: recipient lowuid@example.net: bad uid 50 in virtual_uid_maps$'
expect_log "virtual_mailbox_limit bounces 5.2.2" \
  'to=<big@example.net>, .*dsn=5.2.2, status=bounced \(delivery failed to mailbox .*/big: error writing message: File too large\)'
expect_log "a mailbox not owned by the recipient defers" \
  'to=<notmine@example.net>, .*dsn=4.2.0, status=deferred \(delivery failed to mailbox .*/notmine: destination .*/notmine is not owned by recipient\)'
expect_log "an unwritable base defers" \
  'to=<ro@readonly.test>, .*dsn=4.2.0, status=deferred \(maildir delivery failed: create maildir file .*: Permission denied\)'
expect_log "an unwritable base: Postfix's hint" '^warning: perhaps you need to create the maildirs in advance$'
if [ "$(stat -c '%U %G' "$VMAIL/gamers.com" "$VMAIL/gamers.com/florin/new" 2>&1 | sort -u)" = "$VU $VU" ]; then
  ok "missing maildir directories are made with the recipient's uid and gid"
else
  bad "missing maildir directories are made with the recipient's uid and gid" "$(ls -ld "$VMAIL/gamers.com" "$VMAIL/gamers.com/florin/new" 2>&1)"
fi
if [ "$(stat -c %s "$VMAIL/example.net/big")" = 199950 ]; then ok "the over-limit mailbox is cut back"; else
  bad "the over-limit mailbox is cut back" "size $(stat -c %s "$VMAIL/example.net/big")"; fi

# ---------------------------------------------------------------- IMAP
# Our maildir (left by the last run) read by a real Dovecot, as the mailbox owner.
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
  echo "# skip: IMAP part (dovecot-imapd is not installed)"
else
  D=$T/dovecot IPORT=$(free_port)
  mkdir -p "$D/run" "$D/state"
  chmod 755 "$D"
  cat >"$D/dovecot.conf" <<EOF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = $VUID
last_valid_uid = $VUID
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=$VUID gid=$VGID home=$VMAIL/gamers.com/florin
}
mail_location = maildir:$VMAIL/%d/%n:INDEX=$D/index/%u
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IPORT
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
EOF
  mkdir -p "$D/index" && chown "$VU:$VU" "$D/index"
  setsid dovecot -F -c "$D/dovecot.conf" >"$D/stderr" 2>&1 &
  DOVECOT_PID=$!
  up() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $IPORT), 1).close()" 2>/dev/null; }
  if ! wait_for 20 up; then
    bad "dovecot starts" "$(cat "$D/stderr" "$D/dovecot.log" 2>/dev/null | tail -n 10)"
  else
    out=$(timeout 60 python3 - "$IPORT" <<'EOF' 2>&1
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
imap.login("florin@gamers.com", "secret")
typ, data = imap.select("INBOX", readonly=True)
print("count", data[0].decode())
typ, data = imap.search(None, "SUBJECT", "maildir")
ids = data[0].split()
print("found", len(ids))
typ, data = imap.fetch(ids[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT DELIVERED-TO X-ORIGINAL-TO RETURN-PATH)] BODY.PEEK[TEXT])")
header = data[0][1].decode().replace("\r\n", "\n").strip()
body = data[1][1].decode().replace("\r\n", "\n")
for line in sorted(header.split("\n")):
    print("header", line)
print("body-first", body.split("\n")[0])
print("body-last", body.rstrip("\n").split("\n")[-1])
imap.logout()
EOF
)
    expect="count 3
found 1
header Delivered-To: florin@gamers.com
header Return-Path: <s@example.org>
header Subject: maildir
header X-Original-To: florin@gamers.com
body-first From the start
body-last last line of maildir"
    if [ "$out" = "$expect" ]; then ok "IMAP: Dovecot reads our maildir: 3 messages, the Subject, headers and body"; else
      bad "IMAP: Dovecot reads our maildir" "$(diff <(echo "$expect") <(echo "$out") | head -n 20)" \
        "$(tail -n 5 "$D/dovecot.log" 2>/dev/null)"
    fi
  fi
fi

# ---------------------------------------------------------------- lookup error
# The lookup-error phase: the log lines compared, warnings included (for
# fail: tables Postfix's "%m" reads "Application error", as our text).
MAPS_MAIN=$(pf postconf -c "$INST" -h virtual_mailbox_maps)
pf postconf -c "$INST" -e "virtual_mailbox_maps = $MAPS_MAIN, fail:broken" >/dev/null
run_agent real lookup_error && run_agent ours lookup_error && {
  grep -v '^warning: ' "$T/out/ours.lookup_error/log" >"$T/out/ours.lookup_error/status"
  same_files "a table lookup error: the same log lines as the real virtual" \
    "$T/out/real.lookup_error/log" "$T/out/ours.lookup_error/log"
  if grep -q '^warning: table virtual_mailbox_maps: lookup nobody@gamers.com: ' "$T/out/ours.lookup_error/log"; then
    ok "a table lookup error is logged as Postfix's warning"
  else
    bad "a table lookup error is logged as Postfix's warning" "$(cat "$T/out/ours.lookup_error/log")"
  fi
  if grep -qE 'to=<nobody@gamers.com>, .*dsn=4.3.5, status=deferred \(mail system configuration error\)' \
    "$T/out/ours.lookup_error/status"; then
    ok "a table lookup error defers 4.3.5"
  else
    bad "a table lookup error defers 4.3.5" "$(cat "$T/out/ours.lookup_error/status")"
  fi
}

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
