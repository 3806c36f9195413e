#!/usr/bin/env bash
# lib/sasl against real peers, driven by tests/tools/sasl_probe as smtpd
# would drive it:
#  - cyrus with auxprop sasldb (a sasldb2 file made by saslpasswd2, found
#    through $config_directory/sasl/smtpd.conf): mechanisms, PLAIN (with and
#    without initial response) and LOGIN with good and bad passwords,
#    noplaintext, the TLS security options, bad base64, smtpd_sasl_path as
#    the application name, cyrus_sasl_config_path;
#  - cyrus with pwcheck_method saslauthd: our own saslauthd -a sasldb (in a
#    private mount namespace where our sasldb2 covers /etc/sasldb2, the path
#    Debian's saslauthd has built in; skipped when that is not possible);
#  - dovecot: our own dovecot -F with only an auth listener at
#    $queue_directory/private/auth (passwd-file passdb): the same exchanges,
#    the MECH flags against noplaintext, the request's service, lip and rip
#    in Dovecot's log, the auth-master socket refused, a missing socket and
#    a silent one giving Result::error with a clear reason, in bounded time.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
PROBE=$MTA_BIN/sasl_probe
[ -x "$PROBE" ] || { echo "# skip: $PROBE is not built"; exit 77; }
command -v saslpasswd2 >/dev/null || { echo "# skip: saslpasswd2 (sasl2-bin) is not installed"; exit 77; }
T=$(mktemp -d) || exit 1
chmod 755 "$T"  # dovecot's auth process reads the users file as user dovecot
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null; done
  [ -n "${KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# probe NAME RC LINE... -- ARGS...: run sasl_probe ARGS; ok when it exits RC
# and prints every LINE (exactly, as a whole line).
probe() {
  local name=$1 want=$2 rc=0 l missing=(); shift 2
  local lines=()
  while [ "$1" != -- ]; do lines+=("$1"); shift; done
  shift
  timeout 30 "$PROBE" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
  for l in "${lines[@]}"; do grep -qxF -- "$l" "$T/out" || missing+=("$l"); done
  if [ "$rc" = "$want" ] && [ ${#missing[@]} = 0 ]; then ok "$name"; else
    bad "$name" "want exit $want, got $rc; missing: ${missing[*]}" "$(cat "$T/out" "$T/err")"
  fi
}

PLAIN_LIST="mechanisms: PLAIN LOGIN CRAM-MD5"

# ---- cyrus, auxprop sasldb ------------------------------------------------
C=$T/cyrus
mkdir -p "$C/sasl" "$C/alt"
echo -n secret | saslpasswd2 -p -c -f "$T/sasldb2" -u example.com alice
cat >"$C/main.cf" <<EOF
smtpd_sasl_type = cyrus
smtpd_sasl_local_domain = example.com
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
EOF
: >"$C/master.cf"
for f in smtpd other; do
  cat >"$C/sasl/$f.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $T/sasldb2
mech_list: $([ $f = smtpd ] && echo PLAIN LOGIN CRAM-MD5 || echo PLAIN)
EOF
done
sed -e 's/^mech_list: .*/mech_list: LOGIN/' "$C/sasl/smtpd.conf" >"$C/alt/smtpd.conf"

probe "cyrus: mechanisms from \$config_directory/sasl/smtpd.conf" 0 "$PLAIN_LIST" -- -c "$C"
probe "cyrus: PLAIN, good password" 0 "result: done user=alice@example.com method=PLAIN" \
  -- -c "$C" -m PLAIN -u alice -w secret
probe "cyrus: PLAIN, bad password" 1 "result: failed reason=authentication failure" "tried: alice@example.com" \
  -- -c "$C" -m PLAIN -u alice -w wrong
probe "cyrus: PLAIN without initial response" 0 "334 " "result: done user=alice@example.com method=PLAIN" \
  -- -c "$C" -m PLAIN -i -u alice -w secret
probe "cyrus: LOGIN, good password" 0 "334 VXNlcm5hbWU6" "334 UGFzc3dvcmQ6" \
  "result: done user=alice@example.com method=LOGIN" -- -c "$C" -m LOGIN -u alice -w secret
probe "cyrus: LOGIN, bad password" 1 "result: failed reason=authentication failure" \
  -- -c "$C" -m LOGIN -u alice -w wrong
probe "cyrus: noplaintext leaves CRAM-MD5" 0 "mechanisms: CRAM-MD5" -- -c "$C" -s noplaintext,noanonymous
probe "cyrus: noplaintext refuses PLAIN" 1 "result: failed reason=encryption needed to use mechanism" \
  -- -c "$C" -s noplaintext -m PLAIN -u alice -w secret
probe "cyrus: TLS security options apply under TLS" 0 "$PLAIN_LIST" -- -c "$C" -s noplaintext -S noanonymous -T
probe "cyrus: bad base64 is malformed" 2 "result: malformed reason=bad base64 encoding" \
  -- -c "$C" -m PLAIN -R '!!!!'
probe "cyrus: unknown security option" 4 \
  'create: unknown smtpd_sasl_security_options value "bogus" in "bogus"' -- -c "$C" -s bogus
probe "cyrus: smtpd_sasl_path names the application (other.conf)" 0 "mechanisms: PLAIN" -- -c "$C" -p other
echo "cyrus_sasl_config_path = $C/alt" >>"$C/main.cf"
probe "cyrus: cyrus_sasl_config_path" 0 "mechanisms: LOGIN" -- -c "$C"

# ---- cyrus, saslauthd -a sasldb ---------------------------------------------
S=$T/saslauthd
mkdir -p "$S/run" "$S/conf/sasl"
cat >"$S/conf/main.cf" <<EOF
smtpd_sasl_local_domain = example.com
EOF
: >"$S/conf/master.cf"
cat >"$S/conf/sasl/smtpd.conf" <<EOF
pwcheck_method: saslauthd
saslauthd_path: $S/run/mux
mech_list: PLAIN LOGIN
EOF
if [ "$(id -u)" = 0 ] && [ -f /etc/sasldb2 ] && command -v saslauthd >/dev/null &&
   unshare -m true 2>/dev/null; then
  # Own session: saslauthd signals its whole process group when it stops.
  setsid unshare -m sh -c 'mount --bind "$1" /etc/sasldb2 && exec saslauthd -d -a sasldb -n 1 -m "$2"' \
    sh "$T/sasldb2" "$S/run" >"$S/log" 2>&1 &
  SASLAUTHD=$!
  PIDS+=("$SASLAUTHD")
  if wait_for 10 test -S "$S/run/mux"; then
    probe "saslauthd: PLAIN, good password" 0 "result: done user=alice@example.com method=PLAIN" \
      -- -c "$S/conf" -m PLAIN -u alice -w secret
    probe "saslauthd: LOGIN, good password" 0 "result: done user=alice@example.com method=LOGIN" \
      -- -c "$S/conf" -m LOGIN -u alice -w secret
    probe "saslauthd: PLAIN, bad password" 1 "result: failed reason=authentication failure" \
      -- -c "$S/conf" -m PLAIN -u alice -w wrong
    if grep -q 'service=smtp' "$S/log"; then ok "saslauthd: asked for service smtp"; else
      bad "saslauthd: asked for service smtp" "$(tail -n 5 "$S/log")"; fi
    kill "$SASLAUTHD"; timeout 10 tail --pid="$SASLAUTHD" -f /dev/null
    probe "saslauthd down: a failure, not a success" 1 "result: failed reason=generic failure" \
      -- -c "$S/conf" -m PLAIN -u alice -w secret
  else
    bad "saslauthd starts" "$(cat "$S/log")"
  fi
else
  echo "# skip: saslauthd part (needs root, /etc/sasldb2 and unshare -m)"
fi

# ---- dovecot -----------------------------------------------------------------
if ! command -v dovecot >/dev/null; then
  echo "# skip: dovecot part (dovecot-core is not installed)"
elif [ "$(id -u)" != 0 ]; then
  echo "# skip: dovecot part (dovecot drops to its own users: needs root)"
else
  D=$T/dovecot
  Q=$T/queue
  mkdir -p "$D/run" "$D/state" "$Q/private" "$D/conf"
  chmod 755 "$D" "$Q" "$Q/private"
  printf 'alice:{PLAIN}secret\n' >"$D/users"
  chmod 644 "$D/users"
  cat >"$D/dovecot.conf" <<EOF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
auth_verbose = yes
auth_debug = yes
auth_failure_delay = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D
}
service auth {
  unix_listener $Q/private/auth {
    mode = 0666
  }
}
EOF
  cat >"$D/conf/main.cf" <<EOF
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
queue_directory = $Q
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
EOF
  : >"$D/conf/master.cf"
  setsid dovecot -c "$D/dovecot.conf" -F >"$D/stderr" 2>&1 &
  PIDS+=($!)
  if wait_for 15 test -S "$Q/private/auth"; then
    probe "dovecot: mechanisms over private/auth" 0 "$PLAIN_LIST" -- -c "$D/conf"
    probe "dovecot: PLAIN, good password" 0 "result: done user=alice method=PLAIN" \
      -- -c "$D/conf" -m PLAIN -u alice -w secret
    probe "dovecot: PLAIN, bad password" 1 "result: failed reason=" "tried: alice" \
      -- -c "$D/conf" -a 127.0.0.2 -m PLAIN -u alice -w wrong
    probe "dovecot: PLAIN without initial response" 0 "334 " "result: done user=alice method=PLAIN" \
      -- -c "$D/conf" -m PLAIN -i -u alice -w secret
    probe "dovecot: LOGIN, good password" 0 "334 VXNlcm5hbWU6" "334 UGFzc3dvcmQ6" \
      "result: done user=alice method=LOGIN" -- -c "$D/conf" -m LOGIN -u alice -w secret
    # Failures come from other addresses: Dovecot's auth penalty would
    # delay later requests from the same one.  Without a reason Postfix logs
    # the last challenge; log tools expect that.
    probe "dovecot: LOGIN, bad password (Postfix's reason)" 1 "result: failed reason=UGFzc3dvcmQ6" \
      -- -c "$D/conf" -a 127.0.0.3 -m LOGIN -u alice -w wrong
    probe "dovecot: noplaintext leaves CRAM-MD5" 0 "mechanisms: CRAM-MD5" -- -c "$D/conf" -s noplaintext
    probe "dovecot: noplaintext refuses PLAIN" 1 "result: failed reason=Invalid authentication mechanism" \
      -- -c "$D/conf" -s noplaintext -m PLAIN -u alice -w secret
    probe "dovecot: TLS security options apply under TLS" 0 "$PLAIN_LIST" \
      -- -c "$D/conf" -s noplaintext -S noanonymous -T
    probe "dovecot: bad base64 is malformed" 2 "result: malformed reason=Invalid base64 data in initial response" \
      -- -c "$D/conf" -m PLAIN -R '!!!!'
    probe "dovecot: PLAIN under TLS" 0 "result: done user=alice method=PLAIN" \
      -- -c "$D/conf" -T -m PLAIN -u alice -w secret
    probe "dovecot: absolute socket path" 0 "$PLAIN_LIST" -- -t dovecot -p "$Q/private/auth"
    if grep -q 'service=smtp' "$D/dovecot.log" && grep -q 'lip=127.0.0.1' "$D/dovecot.log" &&
       grep -q 'rip=127.0.0.1' "$D/dovecot.log" && grep -q 'secured' "$D/dovecot.log"; then
      ok "dovecot: requests carry service, lip, rip, secured"
    else
      bad "dovecot: requests carry service, lip, rip, secured" "$(grep -i 'auth' "$D/dovecot.log" | tail -n 5)"
    fi
    probe "dovecot: auth-master socket is refused" 0 \
      "mechanisms: none: SASL: Connected to wrong auth socket (auth-master instead of auth-client)" \
      -- -t dovecot -p "$D/run/auth-master"
  else
    bad "dovecot starts" "$(cat "$D/stderr" "$D/dovecot.log" 2>/dev/null)"
  fi
fi

# ---- dovecot back end unreachable or silent --------------------------------
probe "dovecot: missing socket is a temporary error" 3 \
  "mechanisms: none: SASL: Connect to Dovecot auth socket 'private/nope' failed: No such file or directory" \
  "result: error reason=SASL: Connect to Dovecot auth socket 'private/nope' failed: No such file or directory" \
  -- -t dovecot -p private/nope -q "$T" -m PLAIN -u alice -w secret
if command -v python3 >/dev/null; then
  python3 - "$T/silent" >/dev/null 2>&1 <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(5)
conns = []
end = time.time() + 60
s.settimeout(1)
while time.time() < end:
    try:
        conns.append(s.accept()[0])  # accept and never answer
    except socket.timeout:
        pass
EOF
  PIDS+=($!)
  if wait_for 10 test -S "$T/silent"; then
    start=$(date +%s)
    probe "dovecot: a silent server is a bounded error" 3 "result: error reason=SASL: Dovecot auth socket '$T/silent' handshake failed: timeout after 5s" \
      -- -t dovecot -p "$T/silent" -m PLAIN -u alice -w secret
    took=$(($(date +%s) - start))
    if [ "$took" -le 15 ]; then ok "dovecot: the silent server took ${took}s (bounded)"; else
      bad "dovecot: the silent server took ${took}s"; fi
  else
    bad "silent server starts"
  fi
fi

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
