#!/usr/bin/env bash
# VERP (sendmail -V, SMTP XVERP), ours against the real Postfix 3.7 on the
# same input: smtpd offers and takes XVERP only from
# smtpd_authorized_verp_clients (and refuses bad delimiters and the null
# sender as Postfix does); qmgr delivers each recipient of a VERP message on
# its own, with the sender owner+user=domain@list.test; a recipient that the
# delivery command refuses bounces to its own VERP address.  Deliveries go through a pipe
# transport that writes down ${sender} and ${recipient}; both systems'
# records must be identical.  Without the oracle, the same checks run on
# ours alone against the expected lines.  Needs root.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr pipe error bounce sendmail postdrop pickup; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
HAVE_REAL=0
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >/dev/null 2>&1; then HAVE_REAL=1; fi
T=$(mktemp -d /tmp/verp.XXXXXX) || exit 1
chmod 755 "$T"
OURS=$T/ours REAL=$T/real OURS_UP=0 REAL_UP=0
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
cleanup() {
  [ $OURS_UP = 1 ] && "$B/postfix" -c "$OURS" stop >/dev/null 2>&1
  [ $REAL_UP = 1 ] && pf postfix -c "$REAL" stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
wait_for() { local i; for i in $(seq $(($1 * 10))); do "${@:2}" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_OURS=$(free_port) P_REAL=$(free_port)

mkdir -p "$OURS/queue"
printf '%s\n' '* capture:' > "$T/transport"
SETTINGS=("myhostname = mx.list.test" "mydomain = list.test" "mydestination =" "mynetworks = 127.0.0.0/8"
  "transport_maps = texthash:$T/transport" "smtpd_authorized_verp_clients = 127.0.0.0/8"
  "alias_maps =" "alias_database =" "local_recipient_maps =")
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$OURS/"
"$B/postconf" -c "$OURS" -e "queue_directory = $OURS/queue" "data_directory = $OURS/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $OURS/maillog" "maillog_file_prefixes = $T" \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "${SETTINGS[@]}"
"$B/postconf" -c "$OURS" -MX smtp/inet
# The capture transport: a script that appends "sender recipient".
for who in ours real; do
  # b@bad.test does not exist: the command says so (EX_NOUSER), a bounce.
  printf '#!/bin/sh\ncase "$2" in b@*) echo "no such user"; exit 67;; esac\necho "<$1> <$2>" >> %s/%s.capture\n' \
    "$T" "$who" > "$T/$who.sh"
  chmod 755 "$T/$who.sh"; : > "$T/$who.capture"; chmod 666 "$T/$who.capture"
done
cat >>"$OURS/master.cf" <<EOF
127.0.0.1:$P_OURS inet n - n - - smtpd
capture unix - n n - - pipe flags= user=nobody argv=$T/ours.sh \${sender} \${recipient}
EOF
"$B/postfix" -c "$OURS" start >/dev/null 2>&1 && OURS_UP=1 || { bad "our instance starts"; exit 1; }
if [ $HAVE_REAL = 1 ]; then
  if timeout 120 "$ORACLE" instance "$REAL" "$P_REAL" >/dev/null 2>&1; then
    pf postconf -c "$REAL" -e "${SETTINGS[@]}" >/dev/null
    printf 'capture unix - n n - - pipe flags= user=nobody argv=%s/real.sh ${sender} ${recipient}\n' "$T" >> "$REAL/master.cf"
    pf postfix -c "$REAL" start >/dev/null 2>&1 && REAL_UP=1 || { bad "the real instance starts"; HAVE_REAL=0; }
  else bad "real instance set-up"; HAVE_REAL=0; fi
fi
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $P_OURS), 1)" || bad "our smtpd listens"

# The dialogue: EHLO, bad XVERP values, the null sender, then a VERP
# message to one good and one bad recipient.
cat >"$T/dialogue.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30); f = s.makefile("rb")
def rd():
    out = []
    while True:
        l = f.readline().decode().rstrip(); out.append(l)
        if l[3:4] != "-": return out
rd()
for c in ["EHLO client.test", "MAIL FROM:<owner@list.test> XVERP=+", "MAIL FROM:<owner@list.test> XVERP=ab",
          "MAIL FROM:<> XVERP", "MAIL FROM:<owner@list.test> XVERP", "RCPT TO:<a@good.test>",
          "RCPT TO:<b@bad.test>", "DATA"]:
    s.sendall((c + "\r\n").encode()); print(c, "->", " | ".join(rd()))
s.sendall(b"Subject: verp\r\n\r\nbody\r\n.\r\n"); r = rd(); print(".", "->", r[0][:13])
s.sendall(b"QUIT\r\n"); rd()
PY
timeout 60 python3 "$T/dialogue.py" "$P_OURS" > "$T/ours.dialogue" 2>&1
if [ $HAVE_REAL = 1 ]; then
  timeout 60 python3 "$T/dialogue.py" "$P_REAL" | sed "s/250-[^ |]*localdomain/250-HOST/; s/250-mx.list.test/250-HOST/" > "$T/real.dialogue" 2>&1
  sed -i "s/250-mx.list.test/250-HOST/" "$T/ours.dialogue"
  # Only what XVERP is about: our smtpd has no XFORWARD.
  sed -i 's/ | 250-XFORWARD[^|]*//' "$T/real.dialogue"
else
  cat > "$T/real.dialogue" <<'EOF'
EHLO client.test -> 250-HOST | 250-PIPELINING | 250-SIZE 10240000 | 250-VRFY | 250-ETRN | 250-XVERP | 250-ENHANCEDSTATUSCODES | 250-8BITMIME | 250-DSN | 250-SMTPUTF8 | 250 CHUNKING
MAIL FROM:<owner@list.test> XVERP=+ -> 501 5.5.4 Error: XVERP needs two characters from -=+
MAIL FROM:<owner@list.test> XVERP=ab -> 501 5.5.4 Error: XVERP needs two characters from -=+
MAIL FROM:<> XVERP -> 503 5.5.4 Error: XVERP requires non-null sender
MAIL FROM:<owner@list.test> XVERP -> 250 2.1.0 Ok
RCPT TO:<a@good.test> -> 250 2.1.5 Ok
RCPT TO:<b@bad.test> -> 250 2.1.5 Ok
DATA -> 354 End data with <CR><LF>.<CR><LF>
. -> 250 2.0.0 Ok:
EOF
  sed -i "s/250-mx.list.test/250-HOST/" "$T/ours.dialogue"
fi
if cmp -s "$T/ours.dialogue" "$T/real.dialogue"; then ok "XVERP in EHLO and MAIL FROM as the real smtpd"
else bad "XVERP dialogue differs" "$(diff -u "$T/real.dialogue" "$T/ours.dialogue" | tail -n +3)"; fi

# sendmail -V: the same through pickup (ours only; the real sendmail needs
# a set-gid postdrop of its own).
printf 'Subject: verp by sendmail\n\nbody\n' | MAIL_CONFIG=$OURS "$B/sendmail" -V -f owner@list.test c@good.test ||
  bad "sendmail -V"

# One delivery and one VERP bounce through SMTP for each system, and the
# sendmail -V delivery for ours.
for who in ours real; do
  [ $who = real ] && [ $HAVE_REAL = 0 ] && continue
  n=$([ $who = ours ] && echo 3 || echo 2)
  wait_for 60 sh -c "[ \$(wc -l < '$T/$who.capture') -ge $n ]" || bad "$who: deliveries arrive" "$(cat "$T/$who.capture")"
done
sort "$T/ours.capture" > "$T/ours.sorted"
if [ $HAVE_REAL = 1 ]; then
  sort "$T/real.capture" > "$T/real.sorted"
  grep -v 'c@good.test' "$T/ours.sorted" > "$T/ours.smtp"
  if cmp -s "$T/ours.smtp" "$T/real.sorted"; then ok "VERP senders and the VERP bounce address as the real Postfix"
  else bad "VERP deliveries differ" "$(diff -u "$T/real.sorted" "$T/ours.smtp" | tail -n +3)"; fi
fi
for line in '<owner+a=good.test@list.test> <a@good.test>' '<MAILER-DAEMON> <owner+b=bad.test@list.test>' \
    '<owner+c=good.test@list.test> <c@good.test>'; do
  grep -qxF "$line" "$T/ours.sorted" && ok "ours: $line" || bad "ours: $line" "$(cat "$T/ours.sorted")"
done

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
