#!/usr/bin/env bash
# lmtp(8): our LMTP client against a real Dovecot LMTP server, beside the
# real Postfix 3.7 lmtp on the same queue files (smtp_lib.sh.inc).
#
# Dovecot (dovecot -F with a config in the temp dir) listens for LMTP on a
# unix socket and on 127.0.0.1:PORT; its users come from a passwd-file
# (alice, carol) and mail goes to maildirs under the temp dir, owned by
# nobody.  Instance A's transport_maps send
#   unix.test   lmtp:unix:$D/lmtp      three recipients: alice, bob (unknown,
#                                      refused at RCPT), dave (over quota,
#                                      refused after the final dot)
#   inet.test   lmtp:inet:127.0.0.1:P  the same over TCP
#   down.test   lmtp:unix:$D/nothing   no socket: deferred
# The unknown user is bounced with Dovecot's text after the final dot
# (per-recipient replies), the others are sent, and the messages arrive in
# the maildirs.  Compared with the real lmtp: log lines (Dovecot's session
# IDs normalized) and bounce/defer records.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
command -v dovecot >/dev/null || { echo "# skip: dovecot is not installed"; exit 77; }
[ -x /usr/lib/dovecot/lmtp ] || { echo "# skip: dovecot-lmtpd is not installed"; exit 77; }
make_instance_a smtp_lmtp

D=$T/dovecot
mkdir -p "$D/run" "$D/state" "$D/mail"
chmod 755 "$D"
chown nobody:nogroup "$D/mail"
NOBODY_UID=$(id -u nobody) NOGROUP_GID=$(getent group nogroup | cut -d: -f3)
# dave's quota is one byte: Dovecot takes him at RCPT and refuses him after
# the final dot (a per-recipient reply to the end of DATA).
for u in alice carol dave; do
  extra=; [ $u = dave ] && extra=userdb_quota_rule=*:storage=1B
  echo "$u:{PLAIN}secret:$NOBODY_UID:$NOGROUP_GID::$D/mail/$u::$extra"
done >"$D/users"
chmod 644 "$D/users"
LMTP_PORT=$(free_port)
cat >"$D/dovecot.conf" <<EOF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols = lmtp
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
auth_username_format = %n
mail_plugins = quota
plugin {
  quota = maildir:User quota
}
passdb {
  driver = passwd-file
  args = username_format=%n $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $D/users
}
service lmtp {
  unix_listener $D/lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
EOF
setsid dovecot -c "$D/dovecot.conf" -F >"$D/stderr" 2>&1 &
BG_PIDS+=($!)
wait_for 15 test -S "$D/lmtp" || { bad "dovecot starts" "$(cat "$D/stderr" "$D/dovecot.log" 2>/dev/null)"; exit 1; }

cat >"$INST/transport" <<EOT
unix.test lmtp:unix:$D/lmtp
inet.test lmtp:inet:127.0.0.1:$LMTP_PORT
down.test lmtp:unix:$D/nothing
example.org discard:
EOT
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'lmtp_connect_timeout = 5s' \
  'lmtp_lhlo_timeout = 10s' 'lmtp_data_done_timeout = 10s' >/dev/null

REAL_CMD=lmtp
configure_agent() {  # AGENT CMD
  local cmd=$2
  [ "$1" = ours ] && cmd=${cmd%smtp}lmtp  # the program name picks LMTP
  pf postconf -c "$INST" -M "lmtp/unix=lmtp unix - - n - - $cmd" >/dev/null
}
inject_all() {
  inject alice@unix.test,bob@unix.test,dave@unix.test unix-$1
  inject carol@inet.test,bob@inet.test inet-$1
  inject alice@down.test down-$1
}
count_mail() { find "$D/mail/$1/Maildir/new" -type f 2>/dev/null | wc -l; }
# Dovecot's replies carry a session ID: "250 2.0.0 <alice@unix.test> ID Saved".
normalize() { sed -E 's/(<[a-z]+@[a-z]+\.test>) [A-Za-z0-9+\/:]+ Saved/\1 ID Saved/' "$1"; }

run_agent real
REAL_ALICE=$(count_mail alice) REAL_CAROL=$(count_mail carol)
run_agent ours
OURS_ALICE=$(($(count_mail alice) - REAL_ALICE)) OURS_CAROL=$(($(count_mail carol) - REAL_CAROL))

R=$T/out/real O=$T/out/ours
for f in log bounce; do normalize "$R/$f" >"$R/$f.n"; normalize "$O/$f" >"$O/$f.n"; done
same_files "the same lmtp log lines as the real lmtp" "$R/log.n" "$O/log.n"
same_files "the same bounce/defer records" "$R/bounce.n" "$O/bounce.n"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the same recipients left in the queue" "$R/queued" "$O/queued"
expect_grep "unix: next hop: alice sent" "to=<alice@unix.test>, relay=[^[]+\[$D/lmtp\], delay=D, delays=D, dsn=2.0.0, status=sent \(250 2.0.0 <alice@unix.test> ID Saved\)" "$O/log.n"
expect_grep "unix: next hop: bob bounced with Dovecot's text (refused at RCPT)" "to=<bob@unix.test>, relay=[^[]+\[$D/lmtp\].*dsn=5.1.1, status=bounced \(host [^ ]+\[$D/lmtp\] said: 550 5.1.1 <bob@unix.test> User doesn't exist: bob@unix.test \(in reply to RCPT TO command\)\)" "$O/log.n"
expect_grep "unix: next hop: dave bounced after the final dot (per-recipient reply)" "to=<dave@unix.test>, relay=[^[]+\[$D/lmtp\].*dsn=5.2.2, status=bounced \(host [^ ]+\[$D/lmtp\] said: 552 5.2.2 <dave@unix.test> Quota exceeded \(mailbox for user is full\) \(in reply to end of DATA command\)\)" "$O/log.n"
expect_grep "inet: next hop: carol sent" "to=<carol@inet.test>, relay=127.0.0.1\[127.0.0.1\]:$LMTP_PORT, .*status=sent \(250 2.0.0 <carol@inet.test> ID Saved\)" "$O/log.n"
expect_grep "inet: next hop: bob bounced" "to=<bob@inet.test>, relay=127.0.0.1\[127.0.0.1\]:$LMTP_PORT, .*dsn=5.1.1, status=bounced" "$O/log.n"
expect_grep "no socket: deferred" "to=<alice@down.test>, relay=none, .*status=deferred \(connect to [^ ]+\[$D/nothing\]: No such file or directory\)" "$O/log.n"
if [ "$OURS_ALICE" = 1 ] && [ "$OURS_CAROL" = 1 ]; then ok "the messages arrived in the maildirs"
else bad "the messages arrived in the maildirs" "alice: $OURS_ALICE carol: $OURS_CAROL (real: $REAL_ALICE $REAL_CAROL)"; fi
m=$(grep -l "Subject: unix-ours" "$D"/mail/alice/Maildir/new/* 2>/dev/null | head -1)
if [ -n "$m" ] && grep -q '^\.leading dot' "$m" && grep -q 'envelope-from <sender@example.org>' "$m"; then
  ok "the message body arrived intact (dot stuffing undone)"
else
  bad "the message body arrived intact (dot stuffing undone)" "$(cat "$m" 2>/dev/null | head -20)"
fi
finish
