#!/usr/bin/env bash
# smtpd AUTH through saslauthd (M4): our instance's smtpd with Cyrus SASL
# and "pwcheck_method: saslauthd", against a real saslauthd (Debian's, run
# by the test with -a sasldb in a private mount namespace where a sasldb2 of
# the test covers /etc/sasldb2, the path Debian's saslauthd has built in).
# swaks is the client: AUTH PLAIN and LOGIN with the right password (235,
# then relaying is allowed), with a wrong one (535, Postfix's warning
# line), and a stranger without AUTH is refused relaying (454).  Needs root,
# swaks, saslauthd and /etc/sasldb2; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr discard; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
for c in swaks saslauthd saslpasswd2 unshare; do
  command -v "$c" >/dev/null || { echo "# skip: $c is not installed"; exit 77; }
done
[ -f /etc/sasldb2 ] || { echo "# skip: no /etc/sasldb2 to cover"; exit 77; }
T=$(mktemp -d) || exit 1
chmod 755 "$T"
SASLAUTHD=''
cleanup() {
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  if [ -n "$SASLAUTHD" ]; then kill "$SASLAUTHD" 2>/dev/null; timeout 10 tail --pid="$SASLAUTHD" -f /dev/null; fi
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
wait_for() { local i; for i in $(seq $(($1 * 10))); do "${@:2}" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

mkdir -p "$T/queue" "$T/sasl" "$T/run"
chmod 755 "$T/run"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" "maillog_file_prefixes = $T" \
  "myhostname = mail.test.example" "mydestination = \$myhostname, localhost" "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" "mynetworks = 192.0.2.0/24" "alias_maps =" "alias_database =" \
  "default_transport = discard" "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = cyrus" \
  "smtpd_sasl_path = smtpd_saslauthd" "smtpd_sasl_local_domain = mail.test.example"
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postconf" -c "$T" -Me "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - - smtpd"
printf '%s\n' "pwcheck_method: saslauthd" "saslauthd_path: $T/run/mux" "mech_list: PLAIN LOGIN" \
  >"$T/sasl/smtpd_saslauthd.conf"
echo -n s3cret | saslpasswd2 -p -c -f "$T/sasldb2" -u mail.test.example alice
# Own session: saslauthd signals its whole process group when it stops.
setsid unshare -m sh -c 'mount --bind "$1" /etc/sasldb2 && exec saslauthd -d -a sasldb -n 1 -m "$2"' \
  sh "$T/sasldb2" "$T/run" >"$T/saslauthd.log" 2>&1 &
SASLAUTHD=$!
wait_for 10 test -S "$T/run/mux" || { bad "saslauthd starts" "$(cat "$T/saslauthd.log")"; exit 1; }
"$B/postfix" -c "$T" start >/dev/null 2>&1 || { bad "our instance starts"; exit 1; }
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" ||
  { bad "smtpd listens"; exit 1; }

# swaks AUTH USER PASSWORD [EXTRA...]: the transcript.
sw() {
  timeout 60 swaks --server 127.0.0.1 --port "$PORT" --from sender@mail.test.example \
    --to friend@example.net --helo client.test "$@" 2>&1
}
out=$(sw --auth PLAIN --auth-user alice --auth-password s3cret)
if grep -q '^<- *235 2.7.0 Authentication successful' <<<"$out" && grep -q '^<- *250 2.0.0 Ok: queued as' <<<"$out"; then
  ok "AUTH PLAIN through saslauthd, then relaying is allowed"
else bad "AUTH PLAIN through saslauthd" "$(grep '^<' <<<"$out" | tail -5)"; fi
out=$(sw --auth LOGIN --auth-user alice --auth-password s3cret)
if grep -q '^<- *235 2.7.0 Authentication successful' <<<"$out" && grep -q '^<- *250 2.0.0 Ok: queued as' <<<"$out"; then
  ok "AUTH LOGIN through saslauthd, then relaying is allowed"
else bad "AUTH LOGIN through saslauthd" "$(grep '^<' <<<"$out" | tail -5)"; fi
out=$(sw --auth PLAIN --auth-user alice --auth-password wrong)
if grep -q '^<\*\* *535 5.7.8 Error: authentication failed: authentication failure' <<<"$out"; then
  ok "a wrong password gets 535 5.7.8"
else bad "a wrong password gets 535 5.7.8" "$(grep '^<' <<<"$out" | tail -5)"; fi
out=$(sw)
if grep -q '^<\*\* *454 4.7.1 <friend@example.net>: Relay access denied' <<<"$out"; then
  ok "without AUTH a stranger may not relay"
else bad "without AUTH a stranger may not relay" "$(grep '^<' <<<"$out" | tail -5)"; fi
wait_for 10 grep -q "sasl_method=LOGIN, sasl_username=alice@mail.test.example" "$T/maillog" &&
  ok "the log names the SASL method and user" ||
  bad "the log names the SASL method and user" "$(grep client= "$T/maillog" | tail -3)"
grep -qE 'warning: localhost\[127.0.0.1\]: SASL PLAIN authentication failed: authentication failure' "$T/maillog" &&
  ok "the failure is logged as Postfix logs it" ||
  bad "the failure is logged as Postfix logs it" "$(grep -i sasl "$T/maillog" | tail -3)"
grep -q 'service=smtp' "$T/saslauthd.log" && ok "saslauthd was asked for service smtp" ||
  bad "saslauthd was asked for service smtp" "$(tail -3 "$T/saslauthd.log")"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
