#!/usr/bin/env bash
# smtp(8)'s SASL client: our smtp beside the real Postfix 3.7 smtp on the
# same queue files (smtp_lib.sh.inc), against a real Postfix relay R that
# wants AUTH (Cyrus SASL with a sasldb, smtpd_tls_auth_only: AUTH over
# STARTTLS only; loopback is not in its mynetworks, so unauthenticated
# relaying is refused).  Instance A has smtp_sasl_auth_enable = yes and one
# master.cf service per scenario (-o overrides), all sending to R:
#   good.test  password by next hop "[127.0.0.1]:R", filter PLAIN: sent
#   cram.test  password by sender (smtp_sender_dependent_authentication),
#              filter CRAM-MD5: sent
#   wrong.test password by host "127.0.0.1", wrong: deferred, "SASL
#              authentication failed; server ... said: 535 5.7.8 ..." (4.7.8)
#   miss.test  no entry for this server: no AUTH, R refuses the relaying (554)
#   nomech.test filter DIGEST-MD5 (not offered): deferred, "offered no
#              compatible authentication mechanisms"
#   lib.test   smtp_sasl_tls_security_options = noplaintext and a PLAIN/LOGIN
#              filter: libsasl2 finds no mechanism: deferred
# Compared with the real smtp: log lines, bounce/defer records, what stays
# in the queue; R's log shows who authenticated with which mechanism.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
command -v saslpasswd2 >/dev/null || { echo "# skip: saslpasswd2 (sasl2-bin) is not installed"; exit 77; }
command -v openssl >/dev/null || { echo "# skip: no openssl command"; exit 77; }
make_instance_a smtp_sasl

# R: the relay that wants AUTH.
R=$T/r PORT_R=$(free_port)
make_instance "$R" "$PORT_R"
mkdir -p "$R/sasl"
echo -n secret | saslpasswd2 -p -c -f "$R/sasldb2" -u relay.test alice
chown postfix "$R/sasldb2"
printf '%s\n' "pwcheck_method: auxprop" "auxprop_plugin: sasldb" "sasldb_path: $R/sasldb2" \
  "mech_list: PLAIN LOGIN CRAM-MD5" >"$R/sasl/smtpd.conf"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 -keyout "$R/key.pem" -out "$R/cert.pem" >/dev/null 2>&1
chmod 600 "$R/key.pem"
DOMAINS="good.test cram.test wrong.test miss.test nomech.test lib.test"
pf postconf -c "$R" -e "smtpd_tls_cert_file = $R/cert.pem" "smtpd_tls_key_file = $R/key.pem" \
  'smtpd_tls_security_level = may' 'smtpd_tls_auth_only = yes' 'smtpd_sasl_auth_enable = yes' \
  'smtpd_sasl_type = cyrus' "cyrus_sasl_config_path = $R/sasl" 'smtpd_sasl_local_domain = relay.test' \
  'mynetworks = 192.0.2.1/32' 'relay_domains =' \
  'smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination' \
  "transport_maps = inline:{$(for d in $DOMAINS; do printf '%s=discard:,' "$d"; done)}" >/dev/null
start_instance "$R"

NH="[127.0.0.1]:$PORT_R"
printf '%s alice:secret\n' "$NH" >"$INST/pw_nexthop"
printf 'sender@example.org alice:secret\n' >"$INST/pw_sender"
printf '127.0.0.1 alice:wrong\n' >"$INST/pw_wrong"
printf 'other.example alice:secret\n' >"$INST/pw_miss"
cat >"$INST/transport" <<EOT
good.test good:$NH
cram.test cram:$NH
wrong.test wrong:$NH
miss.test miss:$NH
nomech.test nomech:$NH
lib.test lib:$NH
example.org discard:
EOT
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'smtp_tls_security_level = may' \
  'smtp_sasl_auth_enable = yes' 'smtp_sasl_security_options = noanonymous' \
  'smtp_sasl_tls_security_options = noanonymous' 'smtp_connect_timeout = 5s' 'smtp_helo_timeout = 10s' >/dev/null

configure_agent() {  # AGENT CMD
  local c=$2
  pf postconf -c "$INST" -M "good/unix=good unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_nexthop -o smtp_sasl_mechanism_filter=plain" \
    "cram/unix=cram unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_sender -o smtp_sender_dependent_authentication=yes -o smtp_sasl_mechanism_filter=cram-md5" \
    "wrong/unix=wrong unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_wrong -o smtp_sasl_mechanism_filter=!cram-md5,plain" \
    "miss/unix=miss unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_miss" \
    "nomech/unix=nomech unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_nexthop -o smtp_sasl_mechanism_filter=digest-md5" \
    "lib/unix=lib unix - - n - - $c -o smtp_sasl_password_maps=texthash:$INST/pw_nexthop -o smtp_sasl_mechanism_filter=plain,login -o smtp_sasl_tls_security_options=noplaintext" \
    >/dev/null
  : >"$R/maillog"
}
inject_all() {
  local d
  for d in $DOMAINS; do inject "u@$d" "$d-$1"; done
}

run_agent real
cp "$R/maillog" "$T/out/real/relay_log"
run_agent ours
cp "$R/maillog" "$T/out/ours/relay_log"

O=$T/out/ours RL=$T/out/real
same_files "the same smtp log lines as the real smtp" "$RL/log" "$O/log"
same_files "the same bounce/defer records" "$RL/bounce" "$O/bounce"
same_files "no fatal errors" "$RL/fatal" "$O/fatal"
same_files "the same recipients left in the queue" "$RL/queued" "$O/queued"
expect_grep "AUTH PLAIN over STARTTLS (password by next hop): sent" 'to=<u@good.test>, relay=127.0.0.1\[127.0.0.1\]:[0-9]+, .*status=sent \(250 2.0.0 Ok' "$O/log"
expect_grep "the relay saw AUTH PLAIN as alice" 'sasl_method=PLAIN, sasl_username=alice' "$O/relay_log"
expect_grep "AUTH CRAM-MD5 (password by sender): sent" 'to=<u@cram.test>, .*status=sent \(250 2.0.0 Ok' "$O/log"
expect_grep "the relay saw AUTH CRAM-MD5 as alice" 'sasl_method=CRAM-MD5, sasl_username=alice' "$O/relay_log"
expect_grep "wrong password: deferred with the server's 535 (soft bounce)" 'to=<u@wrong.test>, .*dsn=4.7.8, status=deferred \(SASL authentication failed; server 127.0.0.1\[127.0.0.1\] said: 535 5.7.8 Error: authentication failed: authentication failure\)' "$O/log"
expect_grep "no password for this server: no AUTH, refused by the relay" 'to=<u@miss.test>, .*status=bounced \(host 127.0.0.1\[127.0.0.1\] said: 554 5.7.1 <u@miss.test>: Relay access denied' "$O/log"
expect_grep "no compatible mechanism: warning" "warning: 127.0.0.1\[127.0.0.1\]:$PORT_R offered no supported AUTH mechanisms: 'PLAIN LOGIN CRAM-MD5'" "$O/log"
expect_grep "no compatible mechanism: deferred" 'to=<u@nomech.test>, .*dsn=4.7.0, status=deferred \(SASL authentication failed: server 127.0.0.1\[127.0.0.1\] offered no compatible authentication mechanisms for this type of connection security\)' "$O/log"
expect_grep "libsasl2 refuses plain text mechanisms: deferred" 'to=<u@lib.test>, .*dsn=4.7.0, status=deferred \(SASL authentication failed; cannot authenticate to server 127.0.0.1\[127.0.0.1\]: no mechanism available\)' "$O/log"
finish
