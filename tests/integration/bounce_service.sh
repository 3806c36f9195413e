#!/usr/bin/env bash
# Our bounce daemon under our own master, as Debian's master.cf runs it
# (bounce, defer and trace services, unprivileged and, as root, chrooted
# into the queue directory), driven over its sockets the way Postfix's
# clients do, with a stand-in cleanup service (a small Python server on
# public/cleanup that records what it is sent):
#  - append: a defer log entry, byte for byte as Postfix 3.7 writes it,
#    at the hashed path, owned by mail_owner;
#  - flush with BOUNCE_FLAG_DELRCPT: the notice goes to cleanup (the
#    envelope records post_mail sends, the DSN text), the recipient is
#    marked done in the queue file, the log is removed, and the line
#    "ID: sender non-delivery notification: NEWID" is logged;
#  - the null sender with notify_classes without "bounce": no notice,
#    the log is removed;
#  - BOUNCE_FLAG_CLEAN and a cleanup that refuses: status non-zero, the log
#    is removed;
#  - a one-recipient bounce (nrequest=4) with BOUNCE_FLAG_DELRCPT;
#  - bad requests (unknown command, malformed queue ID, one-recipient
#    bounce on the defer service) get status -1 and Postfix's warning.
# Needs neither the oracle nor root (as root it also checks the privilege
# drop and chroot).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$(realpath -m "$MTA_BIN")
for p in bounce master postfix queue_tool; do
  [ -x "$B/$p" ] || { echo "# skip: $B/$p is not built"; exit 77; }
done
T=$(mktemp -d) || exit 1
Q=$T/queue
FAKE_PID=
cleanup() {
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else
    bad "$1" "$(diff -u --label expected --label actual <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -n 40 | sed 's/^/    /')"
  fi
}
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
ROOT=0; [ "$(id -u)" = 0 ] && ROOT=1
CHROOT=n; [ $ROOT = 1 ] && CHROOT=y

mkdir -p "$Q"
chmod 755 "$T"
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $Q" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_protocols = ipv4" "myhostname = mx.example.org" \
  "notify_classes = resource, software" >"$T/main.cf"
printf '%s\n' "bounce    unix  -       -       $CHROOT       -       0       bounce" \
  "defer     unix  -       -       $CHROOT       -       0       bounce" \
  "trace     unix  -       -       $CHROOT       -       0       bounce" >"$T/master.cf"
if ! "$B/postfix" -c "$T" start >"$T/start.log" 2>&1; then
  bad "our master starts" "$(cat "$T/start.log")"; exit 1
fi
wait_for 10 test -S "$Q/private/defer" && ok "master runs the bounce services" || { bad "master runs the bounce services"; exit 1; }
OWNER=$(id -un); [ $ROOT = 1 ] && OWNER=postfix

# The stand-in cleanup: announces NEWIDn, records each submission in $T/posted.N,
# answers with the status in $T/cleanup.status (default 0).
python3 - "$Q/public/cleanup" "$T" <<'PY' &
import os, socket, sys
path, tdir = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
try: os.unlink(path)
except FileNotFoundError: pass
srv = socket.socket(socket.AF_UNIX); srv.bind(path); os.chmod(path, 0o666); srv.listen(5)
n = 0
while True:
    c, _ = srv.accept(); n += 1; c.settimeout(20)
    c.sendall(b"protocol\0cleanup_protocol\0queue_id\0NEWID%d\0\0" % n)
    data = b""
    def need(k):
        global data
        while len(data) < k:
            chunk = c.recv(65536)
            if not chunk: raise EOFError
            data += chunk
    try:
        while data.count(b"\0") < 3: need(len(data) + 1)
        i1 = data.index(b"\0"); i2 = data.index(b"\0", i1 + 1)
        assert data[:i1] == b"flags" and data[i2 + 1] == 0, data[:i2 + 2]
        flags = data[i1 + 1:i2].decode(); pos = i2 + 2
        out = ["flags=" + flags]
        while True:
            need(pos + 2); t = chr(data[pos]); pos += 1
            length, shift = 0, 0
            while True:
                need(pos + 1); b = data[pos]; pos += 1
                length |= (b & 0x7f) << shift; shift += 7
                if not b & 0x80: break
            need(pos + length); out.append(t + " " + data[pos:pos + length].decode(errors="replace")); pos += length
            if t == "E": break
    except (EOFError, socket.timeout):
        c.close(); continue
    open(os.path.join(tdir, "posted.%d" % n), "w").write("\n".join(out) + "\n")
    try: status = open(os.path.join(tdir, "cleanup.status")).read().strip()
    except FileNotFoundError: status = "0"
    c.sendall(b"status\0" + status.encode() + b"\0reason\0\0\0")
    c.close()
PY
FAKE_PID=$!
wait_for 10 test -S "$Q/public/cleanup" || bad "the stand-in cleanup listens"

# request SERVICE NAME=VALUE...: one request to private/SERVICE; prints the status.
request() {
  python3 - "$Q/private/$1" "${@:2}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
buf = b""
def read_list():
    global buf
    while not (buf.endswith(b"\0\0") and buf.count(b"\0") % 2 == 1):
        chunk = s.recv(4096)
        if not chunk: raise SystemExit("premature end of input: " + repr(buf))
        buf += chunk
    items = buf.split(b"\0")[:-2]; buf = b""
    return dict(zip(items[0::2], items[1::2]))
ann = read_list()
assert ann == {b"protocol": b"delivery_status_protocol"}, ann
req = b""
for arg in sys.argv[2:]:
    name, _, value = arg.partition("=")
    req += name.encode() + b"\0" + value.encode() + b"\0"
s.sendall(req + b"\0")
print(int(read_list()[b"status"]))
PY
}

# An original message in the deferred queue (hashed), with two recipients.
mkdir -p "$T/stage/incoming"
printf 'Subject: original\nFrom: Sender <s@example.com>\nMessage-ID: <m1@example.com>\n\nbody text\n' |
  "$B/queue_tool" write "$T/stage" -t 1700000000.5 -s s@example.com -r u1@example.net \
  -r 'u2@example.net,U2@example.net,4,rfc822;U2@example.net' >"$T/written" 2>"$T/err" || bad "queue_tool write" "$(cat "$T/err")"
read -r ID FILE <"$T/written"
DEST=$("$B/queue_tool" path "$Q" deferred "$ID")
mkdir -p "$(dirname "$DEST")" && mv "$FILE" "$DEST"
[ $ROOT = 1 ] && chown -R postfix "$Q/deferred"
OFF2=$(python3 - "$DEST" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
print(d.index(b"R\x0eu2@example.net"))
PY
)

# 1. append to the defer log, as a delivery agent does.
st=$(request defer nrequest=0 flags=0 queue_id="$ID" original_recipient=alias@example.net recipient=u2@example.net \
  offset="$OFF2" dsn_orig_rcpt='rfc822;U2@example.net' notify_flags=4 status=5.1.1 diag_type=smtp \
  diag_text='550 5.1.1 <u2@example.net>: unknown' mta_type=dns mta_mname=mx.example.net action=failed \
  reason='host mx.example.net[192.0.2.1] said: 550 5.1.1 <u2@example.net>: unknown (in reply to RCPT TO command)')
same "append: status 0" 0 "$st"
LOG=$(dirname "${DEST/\/deferred\//\/defer\/}")/$ID
same "append: the log in Postfix's format, at the hashed path" "
<u2@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 <u2@example.net>: unknown (in reply to RCPT TO command)
recipient=u2@example.net
original_recipient=alias@example.net
offset=$OFF2
dsn_orig_rcpt=rfc822;U2@example.net
notify_flags=4
status=5.1.1
action=failed
diag_type=smtp
diag_text=550 5.1.1 <u2@example.net>: unknown
mta_type=dns
mta_mname=mx.example.net
reason=host mx.example.net[192.0.2.1] said: 550 5.1.1 <u2@example.net>: unknown (in reply to RCPT TO command)" \
  "$(cat "$LOG")"
same "append: the entry ends with a blank line" "0a0a" "$(tail -c 2 "$LOG" | od -An -tx1 | tr -d ' ')"
same "append: mode 600, owned by mail_owner" "600 $OWNER" "$(stat -c '%a %U' "$LOG")"

# 2. flush with BOUNCE_FLAG_DELRCPT (an expired message), from the defer log.
st=$(request defer nrequest=1 flags=2 queue_name=deferred queue_id="$ID" encoding=8BITMIME smtputf8=0 \
  sender=s@example.com envelope_id=env-9 ret_flags=2)
same "flush: status 0" 0 "$st"
P=$T/posted.1
if [ -f "$P" ]; then
  same "flush: post_mail's envelope" "flags=32|A log_message_origin=local|A trace_flags=0|S |R s@example.com|M " \
    "$(sed -n '1p;3,7p' "$P" | paste -sd'|')"
  same "flush: post_mail's Received and Date headers" "N Received: by mx.example.org (Postfix)" "$(sed -n 8p "$P")"
  grep -q "^N 	id NEWID1; " "$P" && ok "flush: the Received header names the new queue ID" || bad "the new queue ID"
  same "flush: the notice ends the submission" "X |E " "$(tail -n 2 "$P" | paste -sd'|')"
  for want in "N Subject: Undelivered Mail Returned to Sender" "N To: s@example.com" \
    "N Content-Type: multipart/report; report-type=delivery-status;" \
    "N This is the mail system at host mx.example.org." \
    "N <u2@example.net> (expanded from <alias@example.net>): host" \
    "N Original-Envelope-Id: env-9" "N X-Postfix-Queue-ID: $ID" "N X-Postfix-Sender: rfc822; s@example.com" \
    "N Final-Recipient: rfc822; u2@example.net" "N Original-Recipient: rfc822;U2@example.net" \
    "N Remote-MTA: dns; mx.example.net" "N Diagnostic-Code: smtp; 550 5.1.1 <u2@example.net>: unknown" \
    "N Content-Type: text/rfc822-headers" "N Return-Path: <s@example.com>" "N Message-ID: <m1@example.com>"; do
    grep -qxF -- "$want" "$P" && ok "flush: the notice has \"${want#N }\"" || bad "flush: the notice has \"${want#N }\""
  done
  grep -q "^N body text" "$P" && bad "RET=HDRS: no body" || ok "RET=HDRS: no body"
else
  bad "flush: cleanup got the notice" "$(tail -5 "$T/maillog")"
fi
[ -e "$LOG" ] && bad "flush: the log is removed" || ok "flush: the log is removed"
same "flush: the recipient is marked done" "D" "$(python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); print(chr(f.read(1)[0]))' "$DEST" "$OFF2")"
grep -q "postfix/bounce\[[0-9]*\]: $ID: sender non-delivery notification: NEWID1$" "$T/maillog" &&
  ok "flush: Postfix's log line" || bad "flush: Postfix's log line" "$(grep bounce "$T/maillog" | tail -3)"
if [ $ROOT = 1 ]; then
  same "the bounce service runs as mail_owner, chrooted" "postfix $Q" \
    "$(for p in $(pgrep -f "bounce -n defer"); do  # this instance's, not another test's
         tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "MAIL_CONFIG=$T" && pid=$p; done
       echo "$(ps -o user= -p "$pid") $(readlink "/proc/$pid/root")")"
fi

# 3. The null sender, notify_classes without bounce: nothing to send, the log goes.
request bounce nrequest=0 flags=0 queue_id="$ID" original_recipient= recipient=u1@example.net offset=0 \
  dsn_orig_rcpt= notify_flags=0 status=5.0.0 diag_type= diag_text= mta_type= mta_mname= action=failed reason=x >/dev/null
st=$(request bounce nrequest=1 flags=0 queue_name=deferred queue_id="$ID" encoding= smtputf8=0 sender= \
  envelope_id= ret_flags=0)
same "null sender: status 0" 0 "$st"
[ -e "$Q/bounce/$ID" ] && bad "null sender: the log is removed" || ok "null sender: the log is removed"
[ -e "$T/posted.2" ] && bad "null sender: no notice" || ok "null sender: no notice"

# 4. A cleanup that refuses, with BOUNCE_FLAG_CLEAN: failure, and the log goes.
request bounce nrequest=0 flags=0 queue_id="$ID" original_recipient= recipient=u1@example.net offset=0 \
  dsn_orig_rcpt= notify_flags=0 status=5.0.0 diag_type= diag_text= mta_type= mta_mname= action=failed reason=x >/dev/null
echo 2 >"$T/cleanup.status"
st=$(request bounce nrequest=1 flags=1 queue_name=deferred queue_id="$ID" encoding= smtputf8=0 sender=s@example.com \
  envelope_id= ret_flags=0)
same "refused notice: status is cleanup's" 2 "$st"
[ -e "$Q/bounce/$ID" ] && bad "BOUNCE_FLAG_CLEAN: the log is removed" || ok "BOUNCE_FLAG_CLEAN: the log is removed"
rm -f "$T/cleanup.status"

# 5. One recipient, no log (nrequest=4, local's owner- bounces), with BOUNCE_FLAG_DELRCPT.
OFF1=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().index(b"R\x0eu1@example.net"))' "$DEST")
st=$(request bounce nrequest=4 flags=2 queue_name=deferred queue_id="$ID" encoding= smtputf8=0 sender=s@example.com \
  envelope_id= ret_flags=1 original_recipient= recipient=u1@example.net offset="$OFF1" dsn_orig_rcpt= notify_flags=0 \
  status=5.1.1 diag_type= diag_text= mta_type= mta_mname= action=failed reason='unknown user: "u1"')
same "one recipient: status 0" 0 "$st"
if [ -f "$T/posted.3" ]; then
  for want in "N To: s@example.com" '<u1@example.net>: unknown user: "u1"' "N Content-Type: message/rfc822" "N body text"; do
    grep -qF -- "$want" "$T/posted.3" && ok "one recipient: the notice has \"${want#N }\"" ||
      bad "one recipient: the notice has \"${want#N }\""
  done
else
  bad "one recipient: cleanup got the notice" "$(tail -3 "$T/maillog")"
fi
same "one recipient: marked done" "D" "$(python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); print(chr(f.read(1)[0]))' "$DEST" "$OFF1")"

# 6. Bad requests.
same "unknown command: status -1" 4294967295 "$(request bounce nrequest=9)"
same "malformed queue id: status -1" 4294967295 "$(request defer nrequest=1 flags=0 queue_name=deferred \
  queue_id=../x encoding= smtputf8=0 sender=s@x envelope_id= ret_flags=0)"
same "one-recipient bounce on the defer service: status -1" 4294967295 "$(request defer nrequest=4 flags=0 \
  queue_name=deferred queue_id="$ID" encoding= smtputf8=0 sender=s@x envelope_id= ret_flags=0 original_recipient= \
  recipient=u1@example.net offset=0 dsn_orig_rcpt= notify_flags=0 status=5.0.0 diag_type= diag_text= mta_type= \
  mta_mname= action=failed reason=x)"
for w in "warning: unknown command: 9" "warning: malformed queue id: ../x" \
  "warning: wrong service name \"defer\" for one-recipient bouncing"; do
  grep -qF "$w" "$T/maillog" && ok "logged: $w" || bad "logged: $w"
done

"$B/postfix" -c "$T" stop >/dev/null 2>&1
echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
