#!/usr/bin/env bash
# smtpd against the real Postfix 3.7 on the same SMTP dialogues (M4): each
# tests/data/smtpd/NAME.dlg is played against our smtpd and, when
# postfix-oracle is there, against a real Postfix instance configured the
# same way; the replies and smtpd's log lines must be identical.  Without
# the oracle, the transcripts are compared with NAME.out and NAME.log,
# which the real Postfix produced (UPDATE_GOLDEN=1 rewrites them from it).
# The dialogues cover a clean session, every syntax and sequence error,
# pipelining (allowed and violated), SMTP smuggling (bare LF, bare CR,
# LF.LF), overlong lines, NUL and 8-bit bytes, BDAT, and SIZE.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
DATA=$MTA_SOURCE_DIR/tests/data/smtpd
DIALOGUE="python3 $MTA_SOURCE_DIR/tests/integration/smtp_dialogue.py"
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (the instance drops privileges)"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr anvil postconf; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
T=$(mktemp -d) || exit 1
chmod 755 "$T"
REAL_UP=0
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
cleanup() {
  "$B/postfix" -c "$T/ours" stop >/dev/null 2>&1
  [ $REAL_UP = 1 ] && timeout 60 "$ORACLE" run postfix -c "$T/real" stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { local i; for i in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# The settings both instances share.
COMMON=("myhostname = mail.test.example" 'smtpd_banner = $myhostname ESMTP $mail_name'
  'mydestination = $myhostname, localhost' "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4"
  "mynetworks = 127.0.0.0/8" "smtpd_forbid_unauth_pipelining = yes" "smtpd_forbid_bare_newline = normalize"
  "smtpd_forbid_bare_newline_exclusions =" "defer_transports = local smtp relay error virtual"
  "compatibility_level = 3.6")

PORT=$(free_port)
mkdir -p "$T/ours/queue"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/ours/"
"$B/postconf" -c "$T/ours" -e "queue_directory = $T/ours/queue" "data_directory = $T/ours/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/ours/maillog" \
  "maillog_file_prefixes = $T" "alias_maps =" "alias_database =" "${COMMON[@]}" \
  "local_recipient_maps = unix:passwd.byname"
# smtpd without chroot: the real instance has none either, and in a chroot
# the client's name would need /etc/hosts there.
"$B/postconf" -c "$T/ours" -MX smtp/inet
"$B/postconf" -c "$T/ours" -Me "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - - smtpd"
"$B/postfix" -c "$T/ours" start >/dev/null 2>&1 || { bad "our instance starts" "$(tail -3 "$T/ours/maillog")"; exit 1; }
wait_port "$PORT" && ok "our smtpd listens on $PORT" || { bad "our smtpd listens" "$(tail -5 "$T/ours/maillog")"; exit 1; }
# The probe's own session is logged before the first dialogue starts.
for _ in $(seq 50); do grep -q 'smtpd\[[0-9]*\]: disconnect from' "$T/ours/maillog" 2>/dev/null && break; sleep 0.1; done

MODE=golden
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then
  RPORT=$(free_port)
  if timeout 120 "$ORACLE" instance "$T/real" "$RPORT" >"$T/instance.log" 2>&1 &&
     timeout 60 "$ORACLE" run postconf -c "$T/real" -e "${COMMON[@]}" >/dev/null 2>&1 &&
     timeout 60 "$ORACLE" run postfix -c "$T/real" start >/dev/null 2>&1; then
    REAL_UP=1
    wait_port "$RPORT" && MODE=oracle
  fi
fi
echo "# comparing with: $MODE"
[ -n "${UPDATE_GOLDEN:-}" ] && [ "$MODE" != oracle ] && { echo "UPDATE_GOLDEN needs the oracle" >&2; exit 1; }

# smtpd's log lines of one dialogue, without time stamps, pids and queue IDs.
log_since() { tail -n +"$(($2 + 1))" "$1" | grep 'smtpd\[' | sed 's/^.*smtpd\[[0-9]*\]: //; s/[0-9A-F]\{10,12\}:/QID:/'; }
lines() { wc -l <"$1" 2>/dev/null || echo 0; }

for dlg in "$DATA"/*.dlg; do
  n=$(basename "$dlg" .dlg)
  b=$(lines "$T/ours/maillog")
  $DIALOGUE "$PORT" "$dlg" >"$T/$n.ours" 2>&1
  sleep 0.3
  log_since "$T/ours/maillog" "$b" >"$T/$n.ourlog"
  if [ "$MODE" = oracle ]; then
    a=$(lines "$T/real/maillog")
    $DIALOGUE "$RPORT" "$dlg" >"$T/$n.real" 2>&1
    sleep 0.3
    log_since "$T/real/maillog" "$a" >"$T/$n.reallog"
    if [ -n "${UPDATE_GOLDEN:-}" ]; then cp "$T/$n.real" "$DATA/$n.out"; cp "$T/$n.reallog" "$DATA/$n.log"; fi
  else
    cp "$DATA/$n.out" "$T/$n.real"; cp "$DATA/$n.log" "$T/$n.reallog"
  fi
  if cmp -s "$T/$n.real" "$T/$n.ours"; then ok "$n: the same replies"
  else bad "$n: the same replies" "$(diff "$T/$n.real" "$T/$n.ours" | head -20)"; fi
  if cmp -s "$T/$n.reallog" "$T/$n.ourlog"; then ok "$n: the same log lines"
  else bad "$n: the same log lines" "$(diff "$T/$n.reallog" "$T/$n.ourlog" | head -20)"; fi
done

# Nothing of a smuggled second message reached the queue: the one message
# of smuggle.dlg holds every line, the "MAIL FROM:<evil@...>" one as content.
if [ -x "$B/postqueue" ]; then
  n=$("$B/postqueue" -c "$T/ours" -j 2>/dev/null | grep -c 'evil@example.com')
  [ "$n" = 0 ] && ok "no smuggled sender in the queue" || bad "no smuggled sender in the queue" "$n found"
fi

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
