#!/usr/bin/env bash
# smtpd with independent clients (M4): Python's smtplib, swaks and raw
# sockets against our instance, run as root with privilege drop, mail
# delivered by our local(8) into a Maildir.  Relay control (a stranger is
# refused, mynetworks and AUTH may relay), recipient validation, SIZE and
# message_size_limit, each access(5) action, AUTH PLAIN and LOGIN against
# Cyrus SASL (sasldb) and a real Dovecot auth socket, per-client limits
# through anvil, and bad input: a client that leaves in the middle of DATA
# (no queue file left), a silent client (timeout), 10,000 pipelined RCPTs.
# The checks themselves are in smtpd_session_checks.py.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (the instance drops privileges)"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr local anvil postconf postmap postqueue bounce; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
command -v saslpasswd2 >/dev/null || { echo "# skip: saslpasswd2 (sasl2-bin) is not installed"; exit 77; }
T=$(mktemp -d) || exit 1
chmod 755 "$T"
U=mtas$$
DOVECOT_PID=
cleanup() {
  "$B/postfix" -c "$T" stop >/dev/null 2>&1
  [ -n "$DOVECOT_PID" ] && kill "$DOVECOT_PID" 2>/dev/null
  userdel "$U" >/dev/null 2>&1
  [ -n "${KEEP_TMP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) DPORT=$(free_port) TPORT=$(free_port) PPORT=$(free_port)

mkdir -p "$T/queue" "$T/home/$U" "$T/sasl" "$T/dovecot/run" "$T/dovecot/state"
useradd -M -d "$T/home/$U" -s /bin/sh "$U" && chown "$U:" "$T/home/$U"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/"
printf '%s\n' "rej@mail.test.example REJECT no thanks" "defer@mail.test.example DEFER later please" \
  "hold@mail.test.example HOLD held for review" "discard@mail.test.example DISCARD" \
  "prepend@mail.test.example PREPEND X-Tag: prepended" "warn@mail.test.example WARN watch this" \
  "filter@mail.test.example FILTER error:filtered" "redirect@mail.test.example REDIRECT $U@mail.test.example" \
  "ok@example.org OK" "code@mail.test.example 550 5.7.9 custom refusal" >"$T/access"
printf '%s\n' "hold: $U" "prepend: $U" "warn: $U" "filter: $U" "discard: $U" "redirect: $U" >"$T/aliases"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" "maillog_file_prefixes = $T" \
  "myhostname = mail.test.example" 'myorigin = $myhostname' 'mydestination = $myhostname, localhost' "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" "mynetworks = 127.0.0.1/32" "alias_maps = hash:$T/aliases" \
  "alias_database = hash:$T/aliases" 'local_recipient_maps = unix:passwd.byname $alias_maps' \
  "home_mailbox = Maildir/" "message_size_limit = 20000" "defer_transports = smtp relay" "default_transport = smtp" "relay_transport = relay" \
  "smtpd_recipient_restrictions = check_recipient_access texthash:$T/access, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" \
  "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = cyrus" "smtpd_sasl_local_domain = mail.test.example" \
  "smtpd_timeout = 3s" "smtpd_client_message_rate_limit = 1000" "anvil_rate_time_unit = 60s" \
  "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" "smtpd_tls_security_level = may" \
  "smtpd_tls_loglevel = 1" "smtpd_tls_received_header = yes"
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postconf" -c "$T" -Me "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - - smtpd"
# smtps (wrapper mode), and a STARTTLS service that lets clients pipeline
# without PIPELINING, to show that plaintext sent behind STARTTLS is dropped.
"$B/postconf" -c "$T" -Me "127.0.0.1:$TPORT/inet=127.0.0.1:$TPORT inet n - n - - smtpd -o smtpd_tls_wrappermode=yes"
"$B/postconf" -c "$T" -Me "127.0.0.1:$PPORT/inet=127.0.0.1:$PPORT inet n - n - - smtpd -o smtpd_forbid_unauth_pipelining=no"
# A second smtpd for Dovecot's SASL, with Debian-style -o overrides.
"$B/postconf" -c "$T" -Me "127.0.0.1:$DPORT/inet=127.0.0.1:$DPORT inet n - n - - smtpd -o smtpd_sasl_type=dovecot -o smtpd_sasl_path=private/auth -o smtpd_client_connection_count_limit=2"
"$B/postalias" -c "$T" "$T/aliases"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mail.test.example -days 2 \
  -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "not ok - openssl makes a test certificate"; exit 1; }
echo -n s3cret | saslpasswd2 -p -c -f "$T/sasldb2" -u mail.test.example alice
chown postfix "$T/sasldb2"
printf '%s\n' "pwcheck_method: auxprop" "auxprop_plugin: sasldb" "sasldb_path: $T/sasldb2" \
  "mech_list: PLAIN LOGIN" >"$T/sasl/smtpd.conf"

if command -v dovecot >/dev/null; then
  D=$T/dovecot
  mkdir -p "$T/queue/private"
  printf 'bob:{PLAIN}d0vecot\n' >"$D/users"; chmod 644 "$D/users"
  cat >"$D/dovecot.conf" <<EOF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D
}
service auth {
  unix_listener $T/queue/private/auth {
    mode = 0666
  }
}
EOF
  setsid dovecot -c "$D/dovecot.conf" -F >"$D/stderr" 2>&1 &
  DOVECOT_PID=$!
fi

"$B/postfix" -c "$T" start >/dev/null 2>&1 || { echo "not ok - postfix start"; tail -5 "$T/maillog"; exit 1; }
export MAIL_CONFIG=$T
python3 "$MTA_SOURCE_DIR/tests/integration/smtpd_session_checks.py" \
  --port "$PORT" --tls-port "$TPORT" --pipe-port "$PPORT" --dovecot-port "$([ -n "$DOVECOT_PID" ] && echo "$DPORT" || echo 0)" \
  --config "$T" --bin "$B" --user "$U" --log "$T/maillog"
