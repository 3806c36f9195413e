#!/usr/bin/env bash
# smtp(8) with "smtp_tls_security_level = dane": DNSSEC-validated TLSA
# records from a name server that sets the AD bit for a "signed" zone only
# (tests/integration/fake_dns.py on a loopback address), the real smtp of
# Postfix 3.7 and ours on the same queue files (smtp_lib.sh.inc), each in a
# private mount namespace whose /etc/resolv.conf names that server (as
# smtp_dns.sh does), delivering to STARTTLS servers with certificates made
# here (smtp_fake_server.py):
#
#   ee.signed.test        TLSA 3 1 1 of the server's key      -> Verified, sent
#   bad.signed.test       TLSA 3 1 1 of another key           -> deferred 4.7.5
#   ta.signed.test        TLSA 2 0 1 of the issuing test CA   -> Verified, sent
#   unusable.signed.test  TLSA 1 1 1 only (PKIX-EE: unusable) -> encrypt: Untrusted, sent
#   servfail.signed.test  the TLSA lookup fails (SERVFAIL)    -> deferred, "TLSA lookup error"
#   plain.unsigned.test   no AD bit (TLSA ignored)            -> may: Untrusted, sent
# and MX hosts that are CNAMEs (RFC 7672 section 2.2.2: TLSA records at the
# CNAME-expanded name first, then at the original one):
#   cname.signed.test     TLSA 3 1 1 at the expanded name     -> Verified, sent
#   cnamefb.signed.test   TLSA 3 1 1 at the original name     -> Verified, sent
#   tacname.signed.test   CNAME to mx.ta.signed.test, TLSA 2 0 1 there: the
#                         certificate names the expanded name -> Verified, sent
#   cnameins.signed.test  a signed CNAME into an unsigned zone, TLSA 3 1 1 at
#                         the alias (Postfix's qname_secure()) -> Verified, sent
# and then, with a root zone the resolver does not validate, one message to
# plain.unsigned.test: the dnssec_probe warnings, as the real smtp's.
set -u
. "$(dirname "$0")/smtp_lib.sh.inc"
need_oracle
command -v openssl >/dev/null && command -v unshare >/dev/null || { echo "# skip: no openssl or unshare"; exit 77; }
[ -e /etc/resolv.conf ] || { echo "# skip: no /etc/resolv.conf to bind-mount over"; exit 77; }
unshare --mount --propagation private true 2>/dev/null || { echo "# skip: cannot create a mount namespace"; exit 77; }
RESOLV_SUM=$(sha256sum </etc/resolv.conf)
make_instance_a smtp_dane

# ---- certificates: a self-signed one, and a leaf issued by a test CA
C=$T/certs
mkdir -p "$C"
cert_log=$T/certs.log
{
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.test -days 2 -keyout "$C/self.key" -out "$C/self.pem" &&
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=Dane-Test-CA -days 2 -keyout "$C/ca.key" -out "$C/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE &&
  openssl req -newkey rsa:2048 -nodes -subj /CN=mx.ta.signed.test -keyout "$C/leaf.key" -out "$C/leaf.csr" &&
  printf 'subjectAltName=DNS:mx.ta.signed.test\nbasicConstraints=CA:FALSE\n' >"$C/ext" &&
  openssl x509 -req -in "$C/leaf.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 2 \
    -extfile "$C/ext" -out "$C/leaf.pem" &&
  cat "$C/leaf.pem" "$C/ca.pem" >"$C/leafchain.pem" &&
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other -days 2 -keyout "$C/other.key" -out "$C/other.pem"
} >"$cert_log" 2>&1 || { bad "the test certificates" "$(tail -5 "$cert_log")"; exit 1; }
chmod -R a+rX "$C"
spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
certsum() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
SELF=$(spki "$C/self.pem") OTHER=$(spki "$C/other.pem") CA=$(certsum "$C/ca.pem")

# ---- the SMTP servers, one port per case
CASES=(ee bad ta unusable servfail plain cname cnamefb tacname cnameins)
declare -A PORT
SPECS=()
for s in "${CASES[@]}"; do
  PORT[$s]=$(free_port)
  if [ "$s" = ta ] || [ "$s" = tacname ]; then SPECS+=("${PORT[$s]}:tls:$C/leafchain.pem:$C/leaf.key")
  else SPECS+=("${PORT[$s]}:tls:$C/self.pem:$C/self.key"); fi
done
mkdir -p "$T/fake"
python3 "$(dirname "$0")/smtp_fake_server.py" "$T/fake/ready" "${SPECS[@]}" 2>"$T/fake/err" &
BG_PIDS+=($!)
wait_for 10 test -f "$T/fake/ready" || { bad "the fake servers start" "$(cat "$T/fake/err")"; exit 1; }

# ---- the name server, on a loopback address where nothing listens on 53
bound53() { ss -Hlnu 'sport = :53' 2>/dev/null | awk '{print $4}'; }
DNS_ADDR=''
for i in $(seq 20); do
  a=127.53.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  bound53 | grep -qE "^(${a//./\\.}|0\.0\.0\.0|\*)(%[^:]*)?:53\$" || { DNS_ADDR=$a; break; }
done
[ -n "$DNS_ADDR" ] || { echo "# skip: no free loopback address for the name server"; exit 77; }
domain_of() { case $1 in plain) echo plain.unsigned.test ;; *) echo "$1.signed.test" ;; esac; }
python3 - "$T/zones.json" <<EOF
import json, sys
cases = {"ee": [[3, 1, 1, "$SELF"]], "bad": [[3, 1, 1, "$OTHER"]], "ta": [[2, 0, 1, "$CA"]],
         "unusable": [[1, 1, 1, "$SELF"]], "servfail": [], "plain": [[3, 1, 1, "$OTHER"]]}
ports = {"ee": ${PORT[ee]}, "bad": ${PORT[bad]}, "ta": ${PORT[ta]}, "unusable": ${PORT[unusable]},
         "servfail": ${PORT[servfail]}, "plain": ${PORT[plain]}, "cname": ${PORT[cname]},
         "cnamefb": ${PORT[cnamefb]}, "tacname": ${PORT[tacname]}, "cnameins": ${PORT[cnameins]}}
records = {}
for name, tlsa in cases.items():
    domain = "plain.unsigned.test" if name == "plain" else name + ".signed.test"
    records[domain] = {"MX": [[10, "mx." + domain]]}
    records["mx." + domain] = {"A": ["127.0.0.1"]}
    if tlsa:
        records["_%d._tcp.mx.%s" % (ports[name], domain)] = {"TLSA": tlsa}
# MX hosts that are CNAMEs: alias.D -> TARGET.
for name, target, tlsa_at, tlsa in (("cname", "mx.cname.signed.test", "mx.cname.signed.test", [3, 1, 1, "$SELF"]),
                                   ("cnamefb", "mx.cnamefb.signed.test", "alias.cnamefb.signed.test", [3, 1, 1, "$SELF"]),
                                   ("tacname", "mx.ta.signed.test", "mx.ta.signed.test", [2, 0, 1, "$CA"]),
                                   ("cnameins", "mx.cnameins.unsigned.test", "alias.cnameins.signed.test",
                                    [3, 1, 1, "$SELF"])):
    domain = name + ".signed.test"
    records[domain] = {"MX": [[10, "alias." + domain]]}
    records["alias." + domain] = {"CNAME": target}
    records.setdefault(target, {"A": ["127.0.0.1"]})
    records["_%d._tcp.%s" % (ports[name], tlsa_at)] = {"TLSA": [tlsa]}
json.dump({"records": records, "signed": ["signed.test"]}, open(sys.argv[1], "w"), indent=1)
EOF
python3 -c 'import json, sys; z = json.load(open(sys.argv[1])); z["unsigned_root"] = True; json.dump(z, open(sys.argv[2], "w"))' \
  "$T/zones.json" "$T/zones-unsigned-root.json"
start_dns() {  # ZONES: the name server for ZONES on DNS_ADDR
  rm -f "$T/dns.ready"
  python3 "$(dirname "$0")/fake_dns.py" "$1" "$DNS_ADDR" "$T/dns.ready" 2>"$T/dns.err" &
  DNS_PID=$!
  BG_PIDS+=($DNS_PID)
  wait_for 10 test -f "$T/dns.ready" || { bad "the name server starts" "$(cat "$T/dns.err")"; exit 1; }
}
start_dns "$T/zones.json"
printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$DNS_ADDR" >"$T/resolv.conf"
chmod 644 "$T/resolv.conf"
in_ns() {
  unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$T/resolv.conf" "$@"
}
# The instance (master and every agent) starts inside the namespace.
pf() {
  if [ "${1:-}" = postfix ] && [ "${4:-}" = start ]; then
    in_ns timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2)
  else
    timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2)
  fi
}

{
  for s in "${CASES[@]}"; do d=$(domain_of "$s"); echo "$d smtp:$d:${PORT[$s]}"; done
  echo "example.org discard:"
} >"$INST/transport"
pf postconf -c "$INST" -e "transport_maps = texthash:$INST/transport" 'smtp_tls_security_level = dane' \
  'smtp_dns_support_level = dnssec' 'smtp_tls_loglevel = 1' 'inet_protocols = ipv4' \
  'smtp_connect_timeout = 5s' 'smtp_helo_timeout = 10s' 'smtp_tls_CAfile =' >/dev/null

configure_agent() {  # AGENT CMD
  pf postconf -c "$INST" -M "smtp/unix=smtp unix - - n - - $2" >/dev/null
}
inject_all() {
  local s
  for s in "${CASES[@]}"; do inject "u@$(domain_of "$s")" "$s-$1"; done
}

run_agent real
run_agent ours
R=$T/out/real O=$T/out/ours
same_files "the same smtp log lines as the real smtp" "$R/log" "$O/log"
same_files "the same bounce/defer records" "$R/bounce" "$O/bounce"
same_files "no fatal errors" "$R/fatal" "$O/fatal"
same_files "the same recipients left in the queue" "$R/queued" "$O/queued"
p() { echo "mx\.$(domain_of "$1" | sed 's/\./\\./g')\[127\.0\.0\.1\]:${PORT[$1]}"; }
expect_grep "TLSA 3 1 1 matching: Verified" "^Verified TLS connection established to $(p ee): TLSv1\.3 with cipher" "$O/log"
expect_grep "TLSA 3 1 1 matching: sent" "to=<u@ee\.signed\.test>, relay=$(p ee), .*status=sent" "$O/log"
expect_grep "TLSA 3 1 1 not matching: deferred, not verified" "to=<u@bad\.signed\.test>, relay=$(p bad), .*dsn=4\.7\.5, status=deferred \(Server certificate not verified\)" "$O/log"
expect_grep "TLSA 2 0 1 of the test CA: Verified" "^Verified TLS connection established to $(p ta): TLSv1\.3" "$O/log"
expect_grep "TLSA 2 0 1: sent" "to=<u@ta\.signed\.test>, .*status=sent" "$O/log"
expect_grep "unusable TLSA: mandatory TLS, Untrusted" "^Untrusted TLS connection established to $(p unusable)" "$O/log"
expect_grep "unusable TLSA: the usage is warned about" "warning: _${PORT[unusable]}\._tcp\.mx\.unusable\.signed\.test unsupported TLSA certificate usage: 1 1 1 " "$O/log"
expect_grep "TLSA SERVFAIL: deferred with Postfix's text" "to=<u@servfail\.signed\.test>, relay=none, .*status=deferred \(TLSA lookup error for mx\.servfail\.signed\.test:${PORT[servfail]}\)" "$O/log"
expect_grep "unsigned zone: opportunistic TLS" "^Untrusted TLS connection established to $(p plain)" "$O/log"
expect_grep "unsigned zone: sent" "to=<u@plain\.unsigned\.test>, .*status=sent" "$O/log"
pa() { echo "alias\.$1\.signed\.test\[127\.0\.0\.1\]:${PORT[$1]}"; }
expect_grep "a CNAME'd MX host, TLSA at the expanded name: Verified" "^Verified TLS connection established to $(pa cname): TLSv1\.3" "$O/log"
expect_grep "a CNAME'd MX host, TLSA at the original name: Verified" "^Verified TLS connection established to $(pa cnamefb): TLSv1\.3" "$O/log"
expect_grep "a CNAME'd MX host, TLSA 2 0 1 and the expanded name in the certificate: Verified" "^Verified TLS connection established to $(pa tacname): TLSv1\.3" "$O/log"
expect_grep "a signed CNAME into an unsigned zone, TLSA at the alias: Verified" "^Verified TLS connection established to $(pa cnameins): TLSv1\.3" "$O/log"
for s in cname cnamefb tacname cnameins; do
  expect_grep "a CNAME'd MX host ($s): sent" "to=<u@$s\.signed\.test>, relay=$(pa $s), .*status=sent" "$O/log"
done
# dnssec_probe: with a resolver that does not validate the root, a process
# whose first DNSSEC answer is not validated (one message to the unsigned
# zone, each agent in a fresh instance) asks "ns:." once and warns, as the
# real smtp does.
kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null
keep=(); for p in "${BG_PIDS[@]}"; do [ "$p" = "$DNS_PID" ] || keep+=("$p"); done; BG_PIDS=("${keep[@]}")
start_dns "$T/zones-unsigned-root.json"
inject_all() { inject "u@plain.unsigned.test" "$1-probe"; }
run_agent real && mv "$T/out/real" "$T/out/probe-real"
run_agent ours && mv "$T/out/ours" "$T/out/probe-ours"
same_files "dnssec_probe: the same smtp log lines as the real smtp" "$T/out/probe-real/log" "$T/out/probe-ours/log"
expect_grep "dnssec_probe: the probe's answer is not validated: warned" "^warning: DNSSEC validation may be unavailable$" "$T/out/probe-ours/log"
expect_grep "dnssec_probe: and why" "^warning: reason: dnssec_probe 'ns:\.' received a response that is not DNSSEC validated$" "$T/out/probe-ours/log"
n=$(cat "$T"/fake/*.mbox 2>/dev/null | grep -c '^Subject: .*-ours$')
if [ "$n" = 8 ]; then ok "eight messages arrived at the servers"; else bad "eight messages arrived at the servers" "got $n"; fi
if cmp -s <(sha256sum </etc/resolv.conf) <(echo "$RESOLV_SUM"); then ok "the machine's /etc/resolv.conf is unchanged"
else bad "the machine's /etc/resolv.conf is unchanged"; fi
finish
