#!/usr/bin/env bash
# smtp(8) and DNS: MX order and fallback through a test DNS server, our
# instance beside the real Postfix 3.7 on the same DNS data.
#
# Postfix has no parameter that names a DNS server: it asks the resolver
# library, which reads /etc/resolv.conf.  So each instance runs in a
# private mount namespace (unshare --mount --propagation private) where a
# temporary resolv.conf is bind-mounted over /etc/resolv.conf; the
# machine's file is never changed.  "postfix start" copies that file into
# the queue directory for the chrooted smtp (master.cf chroot column y, as
# Debian ships it), so the chrooted agent resolves through it too.  The
# name server is dnsmasq (--no-resolv --local=/test/: authoritative for the
# test names, NXDOMAIN for other names under test.) on a loopback address
# that no one else listens on.  The remote servers are smtp-sinks on other
# loopback addresses, all on one port that transport_maps names with each
# next hop ("domain:port", MX lookup kept), plus one service that gets the
# port from smtp_tcp_port instead.
#
#   mx.test        MX 10 a.mx.test, MX 20 b.mx.test      -> a (lowest preference)
#   fallback.test  MX 10 down (nobody listens), MX 20 b  -> "connect to ...:
#                  Connection refused", then sent through b
#   alldown.test   MX 10 down                            -> deferred, connection refused
#   nomx.test      A only                                -> sent to its A record
#   nullmx.test    MX 0 . (RFC 7505)                      -> bounced, Postfix's text
#   nosuch.test    no such name (NXDOMAIN)               -> bounced, "Host or domain
#                  name not found. Name service error for name=... type=A: Host not found"
#                  (the A lookup after no MX decides the text)
#   equal.test     MX 10 e1, MX 10 e2                    -> over 16 messages both used
#   tcpport.test   MX 10 a.mx.test, service with -o smtp_tcp_port=PORT -> a
#   later.test     dnsmasq stopped (port unreachable)    -> deferred, "... try again"
#   silent.test    a server that never answers (timeout) -> deferred, "... try again"
#
# The real run is the oracle's instance (postfix-oracle instance, every
# daemon the real one, smtp not chrooted); ours is an instance of our own
# programs with a chrooted smtp.  Compared: the smtp log lines (queue IDs,
# delays and which of the two equal MX hosts normalized).  Needs root,
# dnsmasq (Debian's dnsmasq-base), unshare and the oracle: exit 77 otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (mount namespace, instances)"; exit 77; }
for p in master postfix postconf sendmail postdrop pickup cleanup qmgr trivial-rewrite smtp bounce discard showq postsuper; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || { echo "# skip: no dnsmasq (scripts/setup installs dnsmasq-base)"; exit 77; }
command -v unshare >/dev/null && command -v python3 >/dev/null || { echo "# skip: no unshare or python3"; exit 77; }
[ -e /etc/resolv.conf ] || { echo "# skip: no /etc/resolv.conf to bind-mount over"; exit 77; }
unshare --mount --propagation private true 2>/dev/null || { echo "# skip: cannot create a mount namespace"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi

T=$(mktemp -d /tmp/smtp_dns.XXXXXX) || exit 1
chmod 755 "$T"
RESOLV_SUM=$(sha256sum </etc/resolv.conf)
DNS_PID='' SILENT_PID='' SINK_PIDS=() RUNNING=''
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
stop_dns() {
  [ -n "$DNS_PID" ] && { kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null; }
  [ -n "$SILENT_PID" ] && { kill "$SILENT_PID" 2>/dev/null; wait "$SILENT_PID" 2>/dev/null; }
  DNS_PID='' SILENT_PID=''
}
stop_sinks() {
  local p
  for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${SINK_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  SINK_PIDS=()
}
stop_instance() {
  case $RUNNING in
    real) pf postfix -c "$T/real" stop >/dev/null 2>&1 ;;
    ours) MAIL_CONFIG=$T/ours timeout 60 "$B/postfix" -c "$T/ours" stop >/dev/null 2>&1 ;;
  esac
  RUNNING=''
}
cleanup() {
  stop_instance
  stop_dns
  stop_sinks
  [ -n "${KEEP:-}" ] && return; rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same_files() {  # NAME EXPECTED_FILE ACTUAL_FILE
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -a -u "$2" "$3" | head -n 40 | sed 's/^/    /')"; fi
}
expect_grep() {  # NAME PATTERN FILE
  if grep -qE -- "$2" "$3"; then ok "$1"; else bad "$1" "no line matches: $2" "$(head -n 30 "$3" | sed 's/^/    /')"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# ---------------------------------------------------------------- addresses
# A loopback network of our own for the remotes (127.N.0.x), and a loopback
# address for the name server where nothing listens on port 53 (not
# systemd-resolved's 127.0.0.53 or 127.0.0.54, nor a wildcard listener).
bound53() { ss -Hlnu 'sport = :53' 2>/dev/null | awk '{print $4}'; ss -Hlnt 'sport = :53' 2>/dev/null | awk '{print $4}'; }
if bound53 | grep -qE '^(0\.0\.0\.0|\*|\[::\]):53$'; then
  echo "# skip: something listens on port 53 of every address"; exit 77
fi
DNS_ADDR=''
for i in $(seq 20); do
  a=127.53.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  bound53 | grep -qE "^${a//./\\.}(%[^:]*)?:53\$" || { DNS_ADDR=$a; break; }
done
[ -n "$DNS_ADDR" ] || { echo "# skip: no free loopback address for the name server"; exit 77; }
NET=127.$((RANDOM % 150 + 100)).0
A1=$NET.1 A2=$NET.2 A3=$NET.3 E1=$NET.4 E2=$NET.5 DOWN=$NET.9
# One port that is free on every remote address.
PORT=$(python3 - "$A1" "$A2" "$A3" "$E1" "$E2" "$DOWN" <<'EOF'
import socket, sys
for _ in range(50):
    s = socket.socket(); s.bind((sys.argv[1], 0)); port = s.getsockname()[1]; s.close()
    try:
        for a in sys.argv[1:]:
            t = socket.socket(); t.bind((a, port)); t.close()
        print(port); break
    except OSError:
        pass
EOF
)
[ -n "$PORT" ] || { echo "# skip: no free port on $NET.x"; exit 77; }
PORT_R=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The resolv.conf of the namespaces: our name server only, and short
# timeouts (one try of one second) so that "silent" is quick for both.
printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$DNS_ADDR" >"$T/resolv.conf"
chmod 644 "$T/resolv.conf"
# in_ns COMMAND...: run COMMAND (and whatever it leaves running, the
# master and its children) with the test resolv.conf as /etc/resolv.conf.
in_ns() {
  unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$T/resolv.conf" "$@"
}
if in_ns cat /etc/resolv.conf | cmp -s - "$T/resolv.conf" && cmp -s <(sha256sum </etc/resolv.conf) <(echo "$RESOLV_SUM"); then
  ok "the namespace sees the test resolv.conf, the machine keeps its own"
else
  bad "the namespace sees the test resolv.conf, the machine keeps its own" "$(in_ns cat /etc/resolv.conf 2>&1 | head -3)"
  exit 1
fi

# probe.py ADDRESS: true when the name server answers mx.test's two MX records.
cat >"$T/probe.py" <<'EOF'
import socket, struct, sys
q = struct.pack('>HHHHHH', 7, 0x0100, 1, 0, 0, 0) + b'\x02mx\x04test\x00' + struct.pack('>HH', 15, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
try:
    s.sendto(q, (sys.argv[1], 53)); d = s.recv(512)
    sys.exit(0 if struct.unpack('>H', d[6:8])[0] == 2 else 1)
except OSError:
    sys.exit(1)
EOF
start_dns() {
  "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll --user=root \
    --port 53 --listen-address="$DNS_ADDR" --bind-interfaces --log-facility="$T/dnsmasq.log" --local=/test/ \
    --mx-host=mx.test,a.mx.test,10 --mx-host=mx.test,b.mx.test,20 \
    --host-record=a.mx.test,"$A1" --host-record=b.mx.test,"$A2" \
    --mx-host=fallback.test,down.fallback.test,10 --mx-host=fallback.test,b.mx.test,20 \
    --host-record=down.fallback.test,"$DOWN" \
    --mx-host=alldown.test,down.fallback.test,10 \
    --host-record=nomx.test,"$A3" \
    --dns-rr=nullmx.test,15,000000 \
    --mx-host=equal.test,e1.equal.test,10 --mx-host=equal.test,e2.equal.test,10 \
    --host-record=e1.equal.test,"$E1" --host-record=e2.equal.test,"$E2" \
    --mx-host=tcpport.test,a.mx.test,10 \
    --mx-host=later.test,a.mx.test,10 --mx-host=silent.test,a.mx.test,10 &
  DNS_PID=$!
  wait_for 10 python3 "$T/probe.py" "$DNS_ADDR"
}
# A name server that reads every question and never answers.
start_silent() {
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
while True: s.recv(4096)' "$DNS_ADDR" &
  SILENT_PID=$!
  wait_for 10 sh -c "ss -Hlnu 'sport = :53' | grep -qF '$DNS_ADDR:53'"
}
start_sink() {  # ADDRESS DUMPDIR
  mkdir -p "$2" && chown postfix "$2"
  "$ORACLE" run smtp-sink -u postfix -d "$2/%H%M%S." "$1:$PORT" 50 2> >(grep -v '^postfix-oracle:' >>"$T/sink.err") &
  SINK_PIDS+=($!)
}

# ---------------------------------------------------------------- instances
TRANSPORT="mx.test smtp:mx.test:$PORT
fallback.test smtp:fallback.test:$PORT
alldown.test smtp:alldown.test:$PORT
nomx.test smtp:nomx.test:$PORT
nullmx.test smtp:nullmx.test:$PORT
nosuch.test smtp:nosuch.test:$PORT
equal.test smtp:equal.test:$PORT
tcpport.test viaport:
later.test smtp:later.test:$PORT
silent.test smtp:silent.test:$PORT
sender.test discard:"
COMMON=("transport_maps = texthash:@DIR@/transport" "smtp_connect_timeout = 5s"
  "smtp_connection_cache_on_demand = no" "delay_warning_time = 0" "inet_protocols = ipv4"
  "minimal_backoff_time = 1h" "maximal_backoff_time = 2h" "queue_run_delay = 1h")

setup_real() {
  local d=$T/real
  timeout 120 "$ORACLE" instance "$d" "$PORT_R" >"$T/instance.log" 2>&1 || return 1
  printf '%s\n' "$TRANSPORT" >"$d/transport"
  pf postconf -c "$d" -e "${COMMON[@]//@DIR@/$d}" >/dev/null || return 1
  pf postconf -c "$d" -M "viaport/unix=viaport unix - - n - - smtp -o smtp_tcp_port=$PORT" >/dev/null
}
setup_ours() {
  local d=$T/ours
  mkdir -p "$d/queue"
  cp "$MTA_SOURCE_DIR/conf/master.cf" "$MTA_SOURCE_DIR/conf/main.cf" "$d/"
  printf '%s\n' "$TRANSPORT" >"$d/transport"
  "$B/postconf" -c "$d" -e "queue_directory = $d/queue" "data_directory = $d/data" \
    "daemon_directory = $B" "command_directory = $B" "maillog_file = $d/maillog" \
    "maillog_file_prefixes = $d" "inet_interfaces = loopback-only" "myhostname = mail.dns.example" \
    "myorigin = \$myhostname" "mydestination = \$myhostname, localhost" "alias_maps =" "alias_database =" \
    "default_transport = smtp" "relay_transport = relay" "${COMMON[@]//@DIR@/$d}" >/dev/null || return 1
  "$B/postconf" -c "$d" -MX smtp/inet
  # Debian's master.cf: smtp runs chrooted in the queue directory.
  # (appended: our postconf -M does not add a service that is not there yet)
  printf 'viaport unix - - y - - smtp\n  -o smtp_tcp_port=%s\n' "$PORT" >>"$d/master.cf"
  grep -qE '^smtp +unix +- +- +y ' "$d/master.cf"
}

# send KIND RECIPIENT: ours through our sendmail; the real one through its
# smtpd (the oracle's postdrop cannot run under the real sendmail).
cat >"$T/submit.py" <<'EOF'
import smtplib, sys
rcpt = sys.argv[2]
msg = 'Subject: to %s\r\nFrom: s@sender.test\r\nTo: %s\r\n\r\nbody for %s\r\n' % (rcpt, rcpt, rcpt)
with smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20) as s:
    s.sendmail('s@sender.test', [rcpt], msg)
EOF
send() {
  local kind=$1 rcpt=$2
  if [ "$kind" = real ]; then
    timeout 30 python3 "$T/submit.py" "$PORT_R" "$rcpt"
  else
    printf 'Subject: to %s\nFrom: s@sender.test\nTo: %s\n\nbody for %s\n' "$rcpt" "$rcpt" "$rcpt" |
      MAIL_CONFIG=$T/ours timeout 60 "$B/sendmail" -C "$T/ours/main.cf" -f s@sender.test "$rcpt"
  fi
}
has_result() {  # LOG RECIPIENT...
  local log=$1 r; shift
  for r in "$@"; do grep -qE "\]: [0-9A-F]+: to=<$r>, .*status=" "$log" || return 1; done
}
# The smtp log lines, normalized (process names and pids, queue IDs,
# delays; which of the two equal-preference hosts took a message) and sorted.
smtp_log() {
  grep -E 'postfix/(viaport/)?(smtp|viaport)\[' "$1" | sed -E -e 's/^.*postfix\/[a-z/]+\[[0-9]+\]: //' \
    -e 's/^[0-9A-F]+: /QID: /' -e 's/delay=[0-9.]+, delays=[0-9.\/]+/delay=D, delays=D/' \
    -e 's/queued as [0-9A-F]+/queued as QID/' -e 's/[0-9A-F]{8,}/QID/g' \
    -e "s/e[12]\.equal\.test\[$NET\.[45]\]/eN.equal.test[EQ]/" | sort
}

EQUAL=(); for i in $(seq 16); do EQUAL+=("eq$i@equal.test"); done
PHASE1=(u@mx.test u@fallback.test u@alldown.test u@nomx.test u@nullmx.test u@nosuch.test u@tcpport.test "${EQUAL[@]}")

run() {  # KIND (real|ours)
  local kind=$1 d=$T/$1 log out=$T/out/$1 r
  log=$d/maillog
  mkdir -p "$out"
  if ! "setup_$kind" >"$T/setup.$kind.log" 2>&1; then bad "$kind: the instance is set up" "$(tail -5 "$T/setup.$kind.log")"; return 1; fi
  rm -rf "$T/sink"
  start_sink "$A1" "$T/sink/a"; start_sink "$A2" "$T/sink/b"; start_sink "$A3" "$T/sink/nomx"
  start_sink "$E1" "$T/sink/e1"; start_sink "$E2" "$T/sink/e2"
  if ! start_dns; then bad "$kind: dnsmasq answers on $DNS_ADDR" "$(tail -5 "$T/dnsmasq.log" 2>/dev/null)"; stop_dns; stop_sinks; return 1; fi
  : >"$log"
  if [ "$kind" = real ]; then in_ns timeout 60 "$ORACLE" run postfix -c "$d" start >"$T/start.log" 2>&1
  else MAIL_CONFIG=$d in_ns timeout 60 "$B/postfix" -c "$d" start >"$T/start.log" 2>&1; fi
  if [ $? != 0 ]; then bad "$kind: the instance starts in the namespace" "$(tail -3 "$T/start.log")"; stop_dns; stop_sinks; return 1; fi
  RUNNING=$kind
  if [ "$kind" = ours ]; then
    if cmp -s "$d/queue/etc/resolv.conf" "$T/resolv.conf"; then ok "ours: postfix start copied the test resolv.conf into the chroot"
    else bad "ours: postfix start copied the test resolv.conf into the chroot" "$(cat "$d/queue/etc/resolv.conf" 2>&1 | head -3)"; fi
  fi

  # Phase 1: the name server answers.
  for r in "${PHASE1[@]}"; do send "$kind" "$r" || bad "$kind: sendmail $r"; done
  wait_for 90 has_result "$log" "${PHASE1[@]}" || bad "$kind: every message of phase 1 has a result" "$(tail -n 8 "$log")"
  # Phase 2: the name server is down (ICMP port unreachable).
  stop_dns
  send "$kind" u@later.test
  wait_for 60 has_result "$log" u@later.test || bad "$kind: later.test has a result" "$(tail -n 5 "$log")"
  # Phase 3: a name server that never answers (resolv.conf: one try, 1 s).
  if start_silent; then
    send "$kind" u@silent.test
    wait_for 60 has_result "$log" u@silent.test || bad "$kind: silent.test has a result" "$(tail -n 5 "$log")"
  else
    bad "$kind: a silent name server on $DNS_ADDR"
  fi
  sleep 1
  if [ "$kind" = ours ]; then  # the smtp processes that did this are still idle, chrooted
    local p roots=''
    for p in $(pgrep -x smtp); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "MAIL_CONFIG=$d" && roots+="$(readlink "/proc/$p/root") "
    done
    if [ -n "$roots" ] && [ -z "$(tr ' ' '\n' <<<"$roots" | grep -vx -e "$d/queue" -e '')" ]; then
      ok "ours: the smtp processes ran chrooted in the queue directory"
    else
      bad "ours: the smtp processes ran chrooted in the queue directory" "roots: ${roots:-no smtp process}"
    fi
  fi
  stop_instance
  stop_dns
  stop_sinks
  smtp_log "$log" >"$out/log"
  grep -E 'postfix/(viaport/)?(smtp|viaport)\[[0-9]+\]: (fatal|panic|warning)' "$log" >"$out/problems"
  for r in a b nomx e1 e2; do find "$T/sink/$r" -type f | wc -l >"$out/sink.$r"; done
  cp "$log" "$out/maillog"
}

run real
run ours

R=$T/out/real O=$T/out/ours
same_files "the same smtp log lines as the real smtp on the same DNS data" "$R/log" "$O/log"
same_files "no fatal errors, panics or warnings beyond the real Postfix's" "$R/problems" "$O/problems"
# The scenarios themselves, in our log (so that two broken agents cannot agree).
ADDR="\[127\.[0-9]+\.0"
expect_grep "the lowest MX preference gets the mail" "^QID: to=<u@mx.test>, relay=a.mx.test$ADDR.1\]:$PORT, delay=D, delays=D, dsn=2.0.0, status=sent \(250 2.0.0 Ok" "$O/log"
expect_grep "the lowest MX down: connection refused is logged" "^connect to down.fallback.test$ADDR.9\]:$PORT: Connection refused$" "$O/log"
expect_grep "the lowest MX down: the next MX gets the mail" "^QID: to=<u@fallback.test>, relay=b.mx.test$ADDR.2\]:$PORT, .*status=sent \(250 " "$O/log"
expect_grep "every MX down: deferred" "^QID: to=<u@alldown.test>, relay=none, .*dsn=4.4.1, status=deferred \(connect to down.fallback.test$ADDR.9\]:$PORT: Connection refused\)" "$O/log"
expect_grep "no MX: the A record gets the mail" "^QID: to=<u@nomx.test>, relay=nomx.test$ADDR.3\]:$PORT, .*status=sent \(250 " "$O/log"
expect_grep "null MX: bounced with Postfix's text" "^QID: to=<u@nullmx.test>, relay=none, .*dsn=5.1.0, status=bounced \(Domain nullmx.test does not accept mail \(nullMX\)\)" "$O/log"
expect_grep "no such domain: bounced with Postfix's text" "^QID: to=<u@nosuch.test>, relay=none, .*dsn=5.4.4, status=bounced \(Host or domain name not found. Name service error for name=nosuch.test type=A: Host not found\)" "$O/log"
expect_grep "smtp_tcp_port: the MX host on that port gets the mail" "^QID: to=<u@tcpport.test>, relay=a.mx.test$ADDR.1\]:$PORT, .*status=sent \(250 " "$O/log"
expect_grep "name server down: deferred with Postfix's text" "^QID: to=<u@later.test>, relay=none, .*dsn=4.4.3, status=deferred \(Host or domain name not found. Name service error for name=later.test type=MX: Host not found, try again\)" "$O/log"
expect_grep "name server silent: deferred with Postfix's text" "^QID: to=<u@silent.test>, relay=none, .*dsn=4.4.3, status=deferred \(Host or domain name not found. Name service error for name=silent.test type=MX: Host not found, try again\)" "$O/log"
# The third delays= figure (connection setup, the lookups included) follows
# resolv.conf's "timeout:1 attempts:1": about one second, as for the real one.
c=$(grep -E 'postfix/smtp\[[0-9]+\]: [0-9A-F]+: to=<u@silent.test>' "$O/maillog" | sed -nE 's/.*delays=[0-9.]+\/[0-9.]+\/([0-9.]+)\/.*/\1/p' | head -1)
if [ -n "$c" ] && awk -v c="$c" 'BEGIN { exit !(c >= 0.8 && c < 2.5) }'; then
  ok "name server silent: the wait is resolv.conf's (${c}s)"
else
  bad "name server silent: the wait is resolv.conf's" "connection setup delay: ${c:-none} (want about 1 s)"
fi
n=$(grep -cE '^QID: to=<eq[0-9]+@equal.test>, relay=eN.equal.test\[EQ\].*status=sent' "$O/log")
e1=$(cat "$O/sink.e1") e2=$(cat "$O/sink.e2")
if [ "$n" = 16 ] && [ "$((e1 + e2))" = 16 ] && [ "$e1" -gt 0 ] && [ "$e2" -gt 0 ]; then
  ok "equal MX preferences: both hosts are used ($e1 and $e2 of 16)"
else
  bad "equal MX preferences: both hosts are used" "sent: $n of 16; e1 received $e1, e2 received $e2"
fi
if [ "$(cat "$O/sink.b")" = 1 ] && [ "$(cat "$O/sink.nomx")" = 1 ] && [ "$(cat "$O/sink.a")" = 2 ]; then
  ok "the sinks received what the log says"
else
  bad "the sinks received what the log says" "a: $(cat "$O/sink.a") (want 2), b: $(cat "$O/sink.b") (want 1), nomx: $(cat "$O/sink.nomx") (want 1)"
fi
if cmp -s <(sha256sum </etc/resolv.conf) <(echo "$RESOLV_SUM"); then ok "the machine's /etc/resolv.conf is unchanged"
else bad "the machine's /etc/resolv.conf is unchanged"; fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
