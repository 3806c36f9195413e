#!/usr/bin/env bash
# smtp(8)'s TLS policy and certificate checks: our smtp beside the real
# Postfix 3.7 smtp on the same queue files (smtp_lib.sh.inc), against
# STARTTLS servers played by smtp_fake_server.py with certificates that the
# test makes with openssl: a CA, a good server certificate for
# mail.test.example, an expired one (openssl ca -startdate/-enddate in the
# past), one for the wrong name (wrong.example), a self-signed one.
# smtp_tls_CAfile names the CA; smtp_tls_policy_maps (texthash, keys
# "[127.0.0.1]:PORT") sets the level per destination:
#   verify.test    verify match=mail.test.example      sent, "Verified TLS ..."
#   secure.test    secure match=.test.example protocols=!TLSv1.3 ciphers=high
#                                                      sent over TLSv1.2, "Verified"
#   trusted.test   may                                 sent, "Trusted TLS ..."
#   expired.test   verify match=mail.test.example      deferred 4.7.5 "Server
#                  certificate not verified" (3.7 says so for every failure), "... has expired"
#   wrong.test     secure match=mail.test.example      deferred, hostname mismatch
#   self.test      verify (smtp_tls_verify_cert_match) deferred, self-signed
#   encrypt.test   encrypt, expired certificate        sent, "Untrusted TLS ..."
#   default.test   no policy entry; the "vfy" service has -o
#                  smtp_tls_security_level=verify -o smtp_tls_verify_cert_match=
#                  mail.test.example                   sent, "Verified"
#   capath.test    verify, with smtp_tls_CApath (openssl rehash) instead of
#                  the CAfile ("capath" service)       sent, "Verified"
#   badpolicy.test a policy with an unknown attribute  deferred
# Compared: log lines, bounce/defer records, the recipients left queued.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
command -v openssl >/dev/null || { echo "# skip: no openssl command"; exit 77; }
make_instance_a smtp_tls_verify

# ---- certificates
C=$T/certs
mkdir -p "$C/capath" "$C/db"
: >"$C/db/index.txt"
echo 01 >"$C/db/serial"
cat >"$C/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $C/db
database = $C/db/index.txt
serial = $C/db/serial
new_certs_dir = $C/db
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
EOF
cert_log=$T/certs.log
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=Test CA" -days 2 -keyout "$C/ca.key" -out "$C/ca.pem" >>"$cert_log" 2>&1
make_cert() {  # NAME CN SAN START END
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -addext "subjectAltName=$3" \
    -keyout "$C/$1.key" -out "$C/$1.csr" >>"$cert_log" 2>&1 &&
  openssl ca -batch -config "$C/ca.cnf" -cert "$C/ca.pem" -keyfile "$C/ca.key" -startdate "$4" -enddate "$5" \
    -in "$C/$1.csr" -out "$C/$1.pem" >>"$cert_log" 2>&1
}
NOW=$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ) LATER=$(date -u -d '+2 days' +%Y%m%d%H%M%SZ)
make_cert good mail.test.example DNS:mail.test.example "$NOW" "$LATER" &&
make_cert expired mail.test.example DNS:mail.test.example 20200101000000Z 20200201000000Z &&
make_cert wrong wrong.example DNS:wrong.example "$NOW" "$LATER" &&
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mail.test.example -days 2 \
  -keyout "$C/self.key" -out "$C/self.pem" >>"$cert_log" 2>&1 ||
  { bad "the test certificates" "$(tail -5 "$cert_log")"; exit 1; }
cp "$C/ca.pem" "$C/capath/" && openssl rehash "$C/capath" >>"$cert_log" 2>&1
chmod -R a+rX "$C"

# ---- the servers
declare -A PORT
SPECS=()
for s in verify secure trusted expired wrong self encrypt default capath badpolicy; do
  PORT[$s]=$(free_port)
  case $s in
    expired|encrypt) cert=expired ;;
    wrong) cert=wrong ;;
    self) cert=self ;;
    *) cert=good ;;
  esac
  SPECS+=("${PORT[$s]}:tls:$C/$cert.pem:$C/$cert.key")
done
mkdir -p "$T/fake"
python3 "$(dirname "$0")/smtp_fake_server.py" "$T/fake/ready" "${SPECS[@]}" 2>"$T/fake/err" &
BG_PIDS+=($!)
wait_for 10 test -f "$T/fake/ready" || { bad "the fake servers start" "$(cat "$T/fake/err")"; exit 1; }

nh() { echo "[127.0.0.1]:${PORT[$1]}"; }
cat >"$INST/tls_policy" <<EOT
$(nh verify) verify match=mail.test.example
$(nh secure) secure match=.test.example protocols=!TLSv1.3 ciphers=high
$(nh trusted) may
$(nh expired) verify match=mail.test.example
$(nh wrong) secure match=mail.test.example
$(nh self) verify
$(nh encrypt) encrypt
$(nh capath) verify match=mail.test.example
$(nh badpolicy) verify frobnicate=yes
EOT
{
  for s in verify secure trusted expired wrong self encrypt badpolicy; do echo "$s.test smtp:$(nh $s)"; done
  echo "default.test vfy:$(nh default)"
  echo "capath.test capath:$(nh capath)"
  echo "example.org discard:"
} >"$INST/transport"
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" "smtp_tls_policy_maps = texthash:$INST/tls_policy" \
  'smtp_tls_security_level = may' "smtp_tls_CAfile = $C/ca.pem" 'smtp_tls_loglevel = 1' \
  'smtp_connect_timeout = 5s' 'smtp_helo_timeout = 10s' >/dev/null

configure_agent() {  # AGENT CMD
  pf postconf -c "$INST" -M "smtp/unix=smtp unix - - n - - $2" \
    "vfy/unix=vfy unix - - n - - $2 -o smtp_tls_security_level=verify -o smtp_tls_verify_cert_match=mail.test.example" \
    "capath/unix=capath unix - - n - - $2 -o smtp_tls_CAfile= -o smtp_tls_CApath=$C/capath" >/dev/null
}
inject_all() {
  local s
  for s in verify secure trusted expired wrong self encrypt default capath badpolicy; do inject "u@$s.test" "$s-$1"; done
}

run_agent real
run_agent ours
R=$T/out/real O=$T/out/ours
same_files "the same smtp log lines as the real smtp" "$R/log" "$O/log"
same_files "the same bounce/defer records" "$R/bounce" "$O/bounce"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the same recipients left in the queue" "$R/queued" "$O/queued"
p() { echo "127.0.0.1\[127.0.0.1\]:${PORT[$1]}"; }
expect_grep "verify: Verified TLS connection" "^Verified TLS connection established to $(p verify): TLSv1.3 with cipher" "$O/log"
expect_grep "verify: sent" "to=<u@verify.test>, relay=$(p verify), .*status=sent \(250 2.0.0 Ok: queued as fake1\)" "$O/log"
expect_grep "secure with protocols=!TLSv1.3: Verified over TLSv1.2" "^Verified TLS connection established to $(p secure): TLSv1.2 with cipher" "$O/log"
expect_grep "secure: sent" "to=<u@secure.test>, .*status=sent" "$O/log"
expect_grep "may with a CA-signed certificate: Trusted" "^Trusted TLS connection established to $(p trusted): TLSv1.3" "$O/log"
expect_grep "expired under verify: the reason is logged" "^server certificate verification failed for $(p expired): certificate has expired" "$O/log"
expect_grep "expired under verify: deferred, not verified" "to=<u@expired.test>, relay=$(p expired), .*dsn=4.7.5, status=deferred \(Server certificate not verified\)" "$O/log"
expect_grep "wrong name under secure: the reason is logged" "^server certificate verification failed for $(p wrong): num=62:hostname mismatch" "$O/log"
expect_grep "wrong name under secure: deferred" "to=<u@wrong.test>, .*dsn=4.7.5, status=deferred \(Server certificate not verified\)" "$O/log"
expect_grep "self-signed under verify: the reason is logged" "^certificate verification failed for $(p self): self-signed certificate" "$O/log"
expect_grep "self-signed under verify: deferred" "to=<u@self.test>, .*dsn=4.7.5, status=deferred" "$O/log"
expect_grep "encrypt with an expired certificate: Untrusted, sent" "^Untrusted TLS connection established to $(p encrypt)" "$O/log"
expect_grep "encrypt: sent" "to=<u@encrypt.test>, .*status=sent" "$O/log"
expect_grep "main.cf level verify with smtp_tls_verify_cert_match: sent" "to=<u@default.test>, .*status=sent" "$O/log"
expect_grep "smtp_tls_CApath: Verified" "^Verified TLS connection established to $(p capath)" "$O/log"
expect_grep "a bad policy entry: deferred" "to=<u@badpolicy.test>, .*status=deferred" "$O/log"
n=$(cat "$T"/fake/*.mbox 2>/dev/null | grep -c '^Subject: .*-ours$')
if [ "$n" = 6 ]; then ok "six messages arrived at the servers"; else bad "six messages arrived at the servers" "got $n"; fi
finish
