#!/usr/bin/env bash
# Queue files shared with the real Postfix 3.7 (postfix-oracle), both ways:
#  - files written by lib/queue (through tests/tools/queue_tool) are shown by
#    the real postcat exactly as expected, and as our own record reader shows them;
#  - as root, a real Postfix instance (smtpd on a loopback port, pickup off,
#    smtp deferred, discard.example discarded) writes queue and maildrop files
#    that our reader reads as postcat shows them, at the hashed path we
#    compute; its qmgr delivers a file we wrote, and removes one whose last
#    recipient we marked done; its pickup takes a maildrop file we wrote.
# Without the oracle only our own round trip is checked; as a non-root user
# the instance part is skipped.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
TOOL=$MTA_BIN/queue_tool
[ -x "$TOOL" ] || { echo "# skip: $TOOL is not built"; exit 77; }
T=$(mktemp -d) || exit 1
INST=$T/instance
STARTED=0
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
stop_instance() {
  if [ $STARTED = 1 ]; then
    timeout 60 "$ORACLE" run postfix -c "$INST" stop >/dev/null 2>&1
    STARTED=0
  fi
}
trap 'stop_instance; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else
    bad "$1" "$(diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -n 40 | sed 's/^/    /')"
  fi
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

HAVE_ORACLE=0
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then
  HAVE_ORACLE=1
  echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
else
  echo "# no postfix-oracle: cross checks skipped"
fi
postcat() { timeout 60 "$ORACLE" run postcat "$@" 2> >(grep -v '^postfix-oracle:' >&2); }

# postcat's output rearranged as "queue_tool show" prints what our reader
# understood: fixed envelope fields, other attributes, recipients, content.
postcat_as_show() {
  awk '
    /^\*\*\* MESSAGE CONTENTS / { part = "content"; next }
    /^\*\*\* HEADER EXTRACTED / { part = "env"; next }
    /^\*\*\* / { next }
    part == "content" { content[++nc] = $0; next }
    /^(message_size|message_arrival_time|create_time|warning_message_time|sender):/ {
      split($0, kv, ":"); if (!(kv[1] in head)) head[kv[1]] = $0; next }
    /^named_attribute: (notify_flags|dsn_orig_rcpt)=/ || /^(original_|done_)?recipient:/ { rcpt[++nr] = $0; next }
    /^named_attribute:/ { attr[++na] = $0; next }
    END {
      n = split("message_size message_arrival_time create_time warning_message_time sender", order, " ")
      for (i = 1; i <= n; i++) if (order[i] in head) print head[order[i]]
      for (i = 1; i <= na; i++) print attr[i]
      print "--recipients"; for (i = 1; i <= nr; i++) print rcpt[i]
      print "--content"; for (i = 1; i <= nc; i++) print content[i]
    }'
}
show() { "$TOOL" show "$1" | sed '/^--summary$/,$d'; }

# ---------------------------------------------------------------- our files
mkdir -p "$T/q/incoming" "$T/q/maildrop"
long=$(head -c 4500 /dev/zero | tr '\0' L)
exact=$(head -c 4096 /dev/zero | tr '\0' E)
printf 'Subject: written by lib/queue\nFrom: Ours <ours@example.org>\n\nfirst\n%s\n%s\n. dot\n\nlast\n' "$long" "$exact" |
  "$TOOL" write "$T/q" -t 1700000000.250000 -s ours@example.org -F 'Our Name' -a rewrite_context=local \
    -a log_ident=test -w 1700003600 -r a@example.net -r 'b@example.net,B@Example.NET,6,rfc822;B@Example.NET' \
    -x c@example.com >"$T/written" 2>"$T/err"
same "the writer succeeds" "0/" "$?/$(cat "$T/err")"
read -r ID FILE <"$T/written"
case $ID in [0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]*) ok "short queue ID $ID" ;; *) bad "short queue ID" "$ID" ;; esac
same "the file is complete (mode 700)" "700" "$(stat -c %a "$FILE")"
same "our reader reads what we wrote" "sender: ours@example.org|3|header_lines=2 pending=3" \
  "$(show "$FILE" | grep '^sender:')|$(show "$FILE" | grep -c '^recipient: ')|$("$TOOL" show "$FILE" | sed -n 's/ data_offset.*//p' | tail -1)"

if [ $HAVE_ORACLE = 1 ]; then
  # What the real postcat must print for that file (times in the local zone, as postcat).
  t0=$(LC_ALL=C date -d @1700000000 '+%a %b %e %H:%M:%S %Y')
  t1=$(LC_ALL=C date -d @1700003600 '+%a %b %e %H:%M:%S %Y')
  size=$(postcat "$FILE" | sed -n 's/^message_size: *\([0-9]*\) .*/\1/p')
  want="*** ENVELOPE RECORDS $FILE ***
message_size: $(printf '%15d %15d %15d %15d %15d %15d' "$size" 338 3 12 "$size" 0)
message_arrival_time: $t0
create_time: $t0
named_attribute: rewrite_context=local
named_attribute: log_ident=test
sender_fullname: Our Name
sender: ours@example.org
warning_message_time: $t1
original_recipient: a@example.net
recipient: a@example.net
named_attribute: notify_flags=6
named_attribute: dsn_orig_rcpt=rfc822;B@Example.NET
original_recipient: B@Example.NET
recipient: b@example.net
*** MESSAGE CONTENTS $FILE ***
Subject: written by lib/queue
From: Ours <ours@example.org>

first
$long
$exact
. dot

last
*** HEADER EXTRACTED $FILE ***
original_recipient: c@example.com
recipient: c@example.com
*** MESSAGE FILE END $FILE ***"
  same "the real postcat shows our file as written" "$want" "$(postcat "$FILE")"
  same "message segment size = bytes from data offset to X" "$((338 + size))" \
    "$("$TOOL" show "$FILE" | sed -n 's/.* xtra_offset=//p')"
  same "our record reader prints our file as postcat does" "$(postcat "$FILE")" "$("$TOOL" records "$FILE")"
  printf 'Subject: long ID\n\nbody\n' | "$TOOL" write "$T/q" -l -s '' -r x@example.net >"$T/written" 2>"$T/err"
  read -r LID LFILE <"$T/written"
  case $LID in ??????????z*) ok "long queue ID $LID" ;; *) bad "long queue ID" "$LID" ;; esac
  same "postcat reads our long-ID file" "$(postcat "$LFILE")" "$("$TOOL" records "$LFILE")"
  same "null sender" "sender: " "$(postcat "$LFILE" | grep '^sender:')"

  printf 'Subject: dropped\n\nline\n' | "$TOOL" write "$T/q" -m -s drop@example.org -F 'Drop Name' \
    -a rewrite_context=local -r 'r1@example.net,,10' -r r2@example.net >"$T/written" 2>"$T/err"
  read -r MID MFILE <"$T/written"
  same "a maildrop file is mode 744" "744" "$(stat -c %a "$MFILE")"
  same "postcat reads our maildrop file" "$(postcat "$MFILE")" "$("$TOOL" records "$MFILE")"
  same "our maildrop file has postdrop's records" \
    "TAFSARR" "$("$TOOL" maildrop "$MFILE" | awk '$1 == "envelope" { printf "%s", $2 }')"
fi

# ---------------------------------------------------------------- a real instance
if [ $HAVE_ORACLE = 0 ]; then
  echo "# $CHECKS checks, $FAILS failed"; [ $FAILS = 0 ]; exit
fi
if [ "$(id -u)" != 0 ]; then
  echo "# skip: the real instance needs root"
  echo "# $CHECKS checks, $FAILS failed"; [ $FAILS = 0 ]; exit
fi
chmod 755 "$T"  # the instance's daemons run as mail_owner
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { bad "instance setup" "$(tail -5 "$T/instance.log")"; exit 1; }
LIB=$("$ORACLE" path)/usr/lib/postfix
for kv in "defer_transports = smtp" "transport_maps = inline:{discard.example=discard:}" \
  "delay_warning_time = 1h" "hash_queue_depth = 2" "enable_long_queue_ids = yes" \
  "master_service_disable = pickup/unix" "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$LIB"; do
  timeout 60 "$ORACLE" run postconf -c "$INST" -e "$kv" >/dev/null 2>&1
done
timeout 120 "$ORACLE" run postfix -c "$INST" start >"$T/start.log" 2>&1 && STARTED=1
if [ $STARTED = 0 ] || ! wait_for 30 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)"; then
  bad "the real instance starts" "$(tail -5 "$T/start.log")"; exit 1
fi
Q=$INST/queue
LOG=$INST/maillog

# 1. The real smtpd + cleanup write a file; qmgr delivers to discard and defers the rest.
timeout 60 python3 - "$PORT" <<'PY' >"$T/smtp.log" 2>&1
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('client.example')
body = "Subject: from the real smtpd\r\nTo: y@example.net\r\n\r\nline one\r\n..leading dot\r\nlong: " + "Z" * 3000 + "\r\nend\r\n"
s.sendmail('s@example.org', ['x@discard.example', 'y@example.net', 'z@discard.example'], body,
           mail_options=['RET=HDRS', 'ENVID=env-1'], rcpt_options=['NOTIFY=SUCCESS,DELAY', 'ORCPT=rfc822;orig@example.net'])
s.quit()
PY
same "the real smtpd accepts the message" 0 "$?"
# The ID smtpd logged (the deferred queue also gets the DSN success notice).
deferred_file() {
  RID=$(sed -n 's/.*smtpd\[[0-9]*\]: \([0-9A-Za-z]*\): client=.*/\1/p' "$LOG" | head -n 1)
  RFILE=$(find "$Q/deferred" -type f -name "${RID:-none}" 2>/dev/null)
  [ -n "$RFILE" ]
}
if wait_for 30 deferred_file; then
  ok "the real Postfix left $RID in the deferred queue"
  same "our layout puts $RID where Postfix did" "$RFILE" "$("$TOOL" path "$Q" deferred "$RID" 2)"
  same "our record reader prints the real file as postcat does" "$(postcat -c "$INST" "$RFILE")" \
    "$("$TOOL" records "$RFILE")"
  same "our queue file reader understands the real file as postcat shows it" \
    "$(postcat -c "$INST" "$RFILE" | postcat_as_show)" "$(show "$RFILE")"
  same "two recipients done, one pending" "done_recipient: x@discard.example|recipient: y@example.net|done_recipient: z@discard.example" \
    "$(show "$RFILE" | grep -E '^(done_)?recipient:' | paste -sd'|')"
  same "the DSN attributes" "named_attribute: dsn_orig_rcpt=rfc822;orig@example.net|named_attribute: envelope_id=env-1|named_attribute: notify_flags=10|named_attribute: ret_flags=2" \
    "$(show "$RFILE" | grep -E 'envelope_id|ret_flags|notify_flags|dsn_orig' | sort -u -t= -k1,1 | paste -sd'|')"
  # 2. Our mark-done on the real file; the real qmgr then finds nothing to do and removes it.
  "$TOOL" mark-done "$RFILE" y@example.net 2>"$T/err"
  same "we mark the last recipient done" "0" "$?$(cat "$T/err")"
  touch -d '-1 hour' "$RFILE"
  timeout 30 "$ORACLE" run postkick -c "$INST" public qmgr D >/dev/null 2>&1
  if wait_for 30 grep -q "$RID: removed" "$LOG"; then ok "the real qmgr removes the file we marked done"
  else bad "the real qmgr removes the file we marked done" "$(grep "$RID" "$LOG" | tail -3)"; fi
else
  bad "the real Postfix left a file in the deferred queue" "$(tail -5 "$LOG")"
fi

# 3. A file we write enters the real incoming queue; the real qmgr delivers what it can.
mkdir -p "$T/stage/incoming"
printf 'Subject: from lib/queue\n\nhello\n' | "$TOOL" write "$T/stage" -l -s ours@example.org \
  -r x@discard.example -r 'y@example.net,Y@example.net,2,rfc822;Y@example.net' -w "$(($(date +%s) + 3600))" \
  >"$T/written" 2>"$T/err"
read -r OID OFILE <"$T/written"
osize=$("$TOOL" show "$OFILE" | sed -n 's/^message_size: *\([0-9]*\) .*/\1/p')
chown postfix:postfix "$OFILE"
mv "$OFILE" "$Q/incoming/$OID"  # same file system: the inode, and so the ID, stay
timeout 30 "$ORACLE" run postkick -c "$INST" public qmgr I >/dev/null 2>&1
if wait_for 30 grep -q "$OID: to=<y@example.net>.*status=deferred" "$LOG"; then
  same "the real qmgr takes our file: sender, size, recipients" \
    "$OID: from=<ours@example.org>, size=$osize, nrcpt=2 (queue active)" \
    "$(grep -o "$OID: from=.*" "$LOG" | head -n 1)"
  if wait_for 30 grep -q "$OID: to=<x@discard.example>.*status=sent" "$LOG"; then
    ok "the real discard delivers our first recipient"
  else bad "the real discard delivers our first recipient" "$(grep "$OID" "$LOG" | tail -3)"; fi
  OPATH=$("$TOOL" path "$Q" deferred "$OID" 2)
  if wait_for 10 test -f "$OPATH"; then ok "our file is in the deferred queue at our hashed path"
  else bad "our file is in the deferred queue at our hashed path" "$(find "$Q/deferred" -type f)"; fi
  same "the real qmgr marked our recipient done in our file" "done_recipient: x@discard.example|recipient: y@example.net" \
    "$(show "$OPATH" | grep -E '^(done_)?recipient:' | paste -sd'|')"
  same "postcat agrees" "$(postcat -c "$INST" "$OPATH" | postcat_as_show)" "$(show "$OPATH")"
else
  bad "the real qmgr takes our file" "$(grep "$OID" "$LOG" | tail -3)"
fi

# 4. Maildrop: the real postdrop's file, read by us; our maildrop file, taken by the real pickup.
printf 'Subject: via sendmail\n\nline1\n' | timeout 60 "$ORACLE" run sendmail -C "$INST" -f snd@example.org \
  -F 'Full Name' -N success,delay -- to1@example.net to2@discard.example 2>"$T/err"
# (postdrop warns that it cannot wake up the disabled pickup service)
same "the real sendmail/postdrop queue a maildrop file" "0" "$?$(grep -v -e '^postfix-oracle:' -e 'public/pickup' "$T/err")"
MDROP=$(find "$Q/maildrop" -type f | head -n 1)
if [ -n "$MDROP" ]; then
  same "our record reader prints the real maildrop file as postcat does" "$(postcat -c "$INST" "$MDROP")" \
    "$("$TOOL" records "$MDROP")"
  same "our maildrop reader: sender and recipients" "sender=snd@example.org recipients=2" \
    "$("$TOOL" maildrop "$MDROP" | tail -n 1)"
  same "our maildrop reader: postdrop's records" "TAFSARAR" \
    "$("$TOOL" maildrop "$MDROP" | awk '$1 == "envelope" { printf "%s", $2 }')"
else
  bad "a maildrop file to read"
fi
printf 'Subject: our maildrop file\n\nhi\n' | "$TOOL" write "$Q" -m -s mine@example.org -F 'Mine' \
  -a rewrite_context=local -r 'w@discard.example,,2' >"$T/written" 2>"$T/err"
read -r MID _ <"$T/written"
timeout 60 "$ORACLE" run postconf -c "$INST" -X master_service_disable >/dev/null 2>&1
timeout 60 "$ORACLE" run postfix -c "$INST" reload >/dev/null 2>&1
if wait_for 40 grep -q "uid=0 from=<mine@example.org>" "$LOG"; then
  ok "the real pickup takes our maildrop file"
  NEWID=$(grep "uid=0 from=<mine@example.org>" "$LOG" | sed 's/.*: \([0-9A-Za-z]*\): uid=0.*/\1/' | head -n 1)
  if wait_for 30 grep -q "$NEWID: to=<w@discard.example>.*status=sent" "$LOG"; then ok "and delivers it"
  else bad "and delivers it" "$(grep "$NEWID" "$LOG" | tail -3)"; fi
  if [ ! -e "$Q/maildrop/$MID" ]; then ok "pickup removed our maildrop file"; else bad "pickup removed our maildrop file"; fi
else
  bad "the real pickup takes our maildrop file" "$(grep -E 'pickup|warning' "$LOG" | tail -5)"
fi
if wait_for 30 grep -q "uid=0 from=<snd@example.org>" "$LOG"; then ok "and the real postdrop's file"
else bad "and the real postdrop's file"; fi

stop_instance
echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
