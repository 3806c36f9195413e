#!/usr/bin/env bash
# smtpd's DNS lookups do not stall the other sessions of its process (one
# smtpd process serves many sessions): a session that waits on a slow DNS
# answer is paused while the others go on.
#
# Our instance runs with a single smtpd process (master.cf maxproc 1) in a
# private mount namespace where /etc/resolv.conf names a tiny DNS server of
# the test (Python's standard library, on a loopback address of its own)
# and /etc/hosts knows only 127.0.0.1 (so reverse lookups of 127.0.0.2 and
# 127.0.0.3 go to that server too).  The server answers at once, except:
#
#   slow.test                  every question answered after 5 s (the
#                              resolver gives up first: "options timeout:2
#                              attempts:1")
#   2.0.0.127.in-addr.arpa     PTR slowptr.test, after 1.5 s
#   nullmx.test                MX 0 . (RFC 7505)
#
# Checks:
#   - restrictions: client 1 sends MAIL FROM:<a@slow.test> under
#     reject_unknown_sender_domain; client 2, started just after, does a
#     whole transaction as b@fast.test and is done before client 1 hears
#     its MAIL reply; client 1 then gets Postfix's temporary failure at
#     RCPT ("450 4.1.8 <a@slow.test>: Sender address rejected: Domain not
#     found", smtpd_delay_reject = no); a third client that leaves while
#     its lookup runs does no harm;
#   - connect: client 1 connects from 127.0.0.2 (slow PTR), client 2 from
#     127.0.0.3; client 2's transaction ends before client 1's greeting;
#     both names are found and logged;
#   - null MX: 550 5.7.27 for a sender, 556 5.1.10 for a recipient, with
#     Postfix 3.7's text;
#   - the one smtpd process lived through it all.
# Needs root, unshare and python3: exit 77 otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (mount namespace, instance)"; exit 77; }
for p in master postfix postconf smtpd cleanup trivial-rewrite qmgr discard; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
command -v unshare >/dev/null && command -v python3 >/dev/null || { echo "# skip: no unshare or python3"; exit 77; }
[ -e /etc/resolv.conf ] && [ -e /etc/hosts ] || { echo "# skip: no /etc/resolv.conf or /etc/hosts to bind-mount over"; exit 77; }
unshare --mount --propagation private true 2>/dev/null || { echo "# skip: cannot create a mount namespace"; exit 77; }

T=$(mktemp -d /tmp/smtpd_async_dns.XXXXXX) || exit 1
chmod 755 "$T"
DNS_PID='' STARTED=''
cleanup() {
  [ -n "$STARTED" ] && MAIL_CONFIG=$T timeout 60 "$B/postfix" -c "$T" stop >/dev/null 2>&1
  [ -n "$DNS_PID" ] && { kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null; }
  [ -n "${KEEP:-}" ] && { echo "# kept $T"; return; }
  rm -rf "$T"
}
trap cleanup EXIT
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"

# A loopback address where nothing listens on port 53.
bound53() { ss -Hlnu 'sport = :53' 2>/dev/null | awk '{print $4}'; }
if bound53 | grep -qE '^(0\.0\.0\.0|\*|\[::\]):53$'; then echo "# skip: something listens on port 53 of every address"; exit 77; fi
DNS_ADDR=''
for i in $(seq 20); do
  a=127.54.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  bound53 | grep -qE "^${a//./\\.}(%[^:]*)?:53\$" || { DNS_ADDR=$a; break; }
done
[ -n "$DNS_ADDR" ] || { echo "# skip: no free loopback address for the name server"; exit 77; }
PORT=$(free_port)

# ---------------------------------------------------------------- DNS server
cat >"$T/dns.py" <<'EOF'
import socket, struct, sys, threading, time
addr, logfile = sys.argv[1], sys.argv[2]
A, PTR, MX, AAAA = 1, 12, 15, 28
SLOW = {'slow.test': 5.0, '2.0.0.127.in-addr.arpa': 1.5}
def name_bytes(n):
    return b''.join(bytes([len(p)]) + p.encode() for p in n.split('.') if p) + b'\0'
def answer(name, qtype):
    """(rcode, [(type, rdata)])"""
    if name in ('fast.test', 'slow.test'):
        if qtype == A: return 0, [(A, socket.inet_aton('127.0.0.1'))]
        if qtype == MX: return 0, [(MX, struct.pack('>H', 10) + name_bytes('fast.test'))]
        return 0, []
    if name == 'nullmx.test':
        return 0, ([(MX, struct.pack('>H', 0) + b'\0')] if qtype == MX else [])
    hosts = {'slowptr.test': '127.0.0.2', 'fastptr.test': '127.0.0.3'}
    if name in hosts:
        return 0, ([(A, socket.inet_aton(hosts[name]))] if qtype == A else [])
    ptrs = {'2.0.0.127.in-addr.arpa': 'slowptr.test', '3.0.0.127.in-addr.arpa': 'fastptr.test'}
    if name in ptrs:
        return 0, ([(PTR, name_bytes(ptrs[name]))] if qtype == PTR else [])
    return 3, []
def reply(sock, data, peer):
    qid, flags, qd = struct.unpack('>HHH', data[:6])
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode().lower()); i += 1 + data[i]
    qtype = struct.unpack('>H', data[i + 1:i + 3])[0]
    question = data[12:i + 5]
    name = '.'.join(labels)
    with open(logfile, 'a') as f:
        f.write('%.3f %s %d\n' % (time.time(), name, qtype))
    if name in SLOW:
        time.sleep(SLOW[name])
    rcode, rrs = answer(name, qtype)
    out = struct.pack('>HHHHHH', qid, 0x8400 | rcode | (flags & 0x0100), 1, len(rrs), 0, 0) + question
    for t, rdata in rrs:
        out += b'\xc0\x0c' + struct.pack('>HHIH', t, 1, 60, len(rdata)) + rdata
    sock.sendto(out, peer)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
while True:
    data, peer = s.recvfrom(4096)
    threading.Thread(target=reply, args=(s, data, peer), daemon=True).start()
EOF
python3 "$T/dns.py" "$DNS_ADDR" "$T/dns.log" &
DNS_PID=$!
wait_for 10 sh -c "ss -Hlnu 'sport = :53' | grep -qF '$DNS_ADDR:53'" || { echo "not ok - the test DNS server starts"; exit 1; }
printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$DNS_ADDR" >"$T/resolv.conf"
printf '127.0.0.1 localhost\n' >"$T/hosts"
chmod 644 "$T/resolv.conf" "$T/hosts"
in_ns() {
  unshare --mount --propagation private sh -c \
    'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && shift && exec "$@"' \
    "$T/resolv.conf" "$T/hosts" "$@"
}

# ---------------------------------------------------------------- instance
mkdir -p "$T/queue"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" "maillog_file_prefixes = $T" \
  "myhostname = mail.async.example" 'myorigin = $myhostname' 'mydestination = $myhostname, localhost' \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" "alias_maps =" \
  "alias_database =" "default_transport = discard" "relay_transport = discard" "smtpd_delay_reject = no" \
  "smtpd_sender_restrictions = reject_unknown_sender_domain" \
  "smtpd_recipient_restrictions = reject_unknown_recipient_domain" "smtpd_timeout = 30s" >/dev/null
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postconf" -c "$T" -Me "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - 1 smtpd"
MAIL_CONFIG=$T in_ns timeout 60 "$B/postfix" -c "$T" start >/dev/null 2>&1 || { echo "not ok - postfix start"; tail -5 "$T/maillog"; exit 1; }
STARTED=1
wait_for 20 sh -c "ss -Hlnt 'sport = :$PORT' | grep -q LISTEN" || { echo "not ok - smtpd listens"; exit 1; }

# ---------------------------------------------------------------- clients
cat >"$T/clients.py" <<'EOF'
import socket, sys, threading, time
port, phase = int(sys.argv[1]), sys.argv[2]
t0 = time.time()
events = {}
def mark(key, value=None):
    events[key] = (time.time() - t0, value)
class Client:
    def __init__(self, source):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=40, source_address=(source, 0))
        self.f = self.s.makefile('rb')
    def read(self):
        lines = []
        while True:
            l = self.f.readline().decode().rstrip('\r\n')
            lines.append(l)
            if len(l) < 4 or l[3] != '-':
                return lines[-1]
    def cmd(self, line):
        self.s.sendall((line + '\r\n').encode())
        return self.read()
def transaction(c, sender, key):
    for line, want in (('EHLO client.example', '250'), ('MAIL FROM:<%s>' % sender, '250'),
                       ('RCPT TO:<y@fast.test>', '250'), ('DATA', '354')):
        r = c.cmd(line)
        if not r.startswith(want):
            mark(key + '_error', line + ' -> ' + r); return
    r = c.cmd('Subject: hi\r\n\r\nbody\r\n.')
    mark(key + '_done', r)
    c.cmd('QUIT')
if phase == 'restrictions':
    sent = threading.Event()
    def one():
        c = Client('127.0.0.1'); c.read(); c.cmd('EHLO one.example')
        c.s.sendall(b'MAIL FROM:<a@slow.test>\r\n'); sent.set()
        mark('c1_mail', c.read())
        mark('c1_rcpt', c.cmd('RCPT TO:<x@fast.test>'))
        c.cmd('QUIT')
    def gone():
        c = Client('127.0.0.1'); c.read(); c.cmd('EHLO gone.example')
        c.s.sendall(b'MAIL FROM:<g@slow.test>\r\n'); time.sleep(0.2); c.s.close()
    def two():
        sent.wait(10); time.sleep(0.3)
        mark('c2_start')
        c = Client('127.0.0.1'); c.read()
        transaction(c, 'b@fast.test', 'c2')
    threads = [threading.Thread(target=f) for f in (one, gone, two)]
elif phase == 'connect':
    started = threading.Event()
    def one():
        c = Client('127.0.0.2'); started.set()
        mark('c1_greeting', c.read()); c.cmd('QUIT')
    def two():
        started.wait(10); time.sleep(0.3)
        mark('c2_start')
        c = Client('127.0.0.3'); c.read()
        transaction(c, 'b@fast.test', 'c2')
    threads = [threading.Thread(target=f) for f in (one, two)]
else:  # nullmx
    def one():
        c = Client('127.0.0.1'); c.read(); c.cmd('EHLO one.example')
        mark('null_sender', c.cmd('MAIL FROM:<c@nullmx.test>'))
        c.cmd('MAIL FROM:<c@fast.test>')
        mark('null_rcpt', c.cmd('RCPT TO:<d@nullmx.test>'))
        c.cmd('QUIT')
    threads = [threading.Thread(target=one)]
for t in threads: t.start()
for t in threads: t.join(60)
for k in sorted(events):
    at, value = events[k]
    print('%s %.3f %s' % (k, at, value if value is not None else ''))
EOF
# at KEY FILE: the time of an event; text KEY FILE: its text.
at() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
text() { awk -v k="$1" '$1 == k {$1 = ""; $2 = ""; sub(/^  /, ""); print}' "$2"; }
before() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a != "" && b != "" && a + 0 < b + 0)}'; }


timeout 90 python3 "$T/clients.py" "$PORT" restrictions >"$T/restrictions.out" 2>&1
sed 's/^/# /' "$T/restrictions.out"
c1=$(at c1_mail "$T/restrictions.out") c2=$(at c2_done "$T/restrictions.out") s2=$(at c2_start "$T/restrictions.out")
if before "$c2" "$c1" && before "$c2" "$(awk -v s="$s2" 'BEGIN {print s + 3}')"; then
  ok "a session waiting on a slow DNS answer does not stall another (done at ${c2}s, the slow one answered at ${c1}s)"
else
  bad "a session waiting on a slow DNS answer does not stall another" "fast transaction done at '${c2}', slow MAIL answered at '${c1}'"
fi
if [ "$(text c2_done "$T/restrictions.out")" != "" ] && text c2_done "$T/restrictions.out" | grep -q '^250 '; then
  ok "the fast transaction is accepted"
else
  bad "the fast transaction is accepted" "$(grep c2_ "$T/restrictions.out")"
fi
if [ "$(text c1_rcpt "$T/restrictions.out")" = "450 4.1.8 <a@slow.test>: Sender address rejected: Domain not found" ] &&
  text c1_mail "$T/restrictions.out" | grep -q '^250 '; then
  ok "a DNS timeout is a temporary failure, deferred to RCPT as Postfix does"
else
  bad "a DNS timeout is a temporary failure, deferred to RCPT as Postfix does" "$(grep c1_ "$T/restrictions.out")"
fi
expect_grep "the slow name was asked" ' slow\.test 15$' "$T/dns.log"
expect_grep "the reject is logged as Postfix logs it" \
  'NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 450 4\.1\.8 <a@slow\.test>: Sender address rejected: Domain not found; from=<a@slow\.test> to=<x@fast\.test> proto=ESMTP helo=<one\.example>' "$T/maillog"

timeout 90 python3 "$T/clients.py" "$PORT" connect >"$T/connect.out" 2>&1
sed 's/^/# /' "$T/connect.out"
c1=$(at c1_greeting "$T/connect.out") c2=$(at c2_done "$T/connect.out")
if before "$c2" "$c1"; then
  ok "a client whose name lookup is slow does not stall another (done at ${c2}s, the slow greeting at ${c1}s)"
else
  bad "a client whose name lookup is slow does not stall another" "fast transaction done at '${c2}', slow greeting at '${c1}'"
fi
expect_grep "the slow client's name is found" 'connect from slowptr\.test\[127\.0\.0\.2\]' "$T/maillog"
expect_grep "the fast client's name is found" 'connect from fastptr\.test\[127\.0\.0\.3\]' "$T/maillog"

timeout 60 python3 "$T/clients.py" "$PORT" nullmx >"$T/nullmx.out" 2>&1
sed 's/^/# /' "$T/nullmx.out"
want="550 5.7.27 <c@nullmx.test>: Sender address rejected: Domain nullmx.test does not accept mail (nullMX)"
[ "$(text null_sender "$T/nullmx.out")" = "$want" ] && ok "a null MX sender domain: $want" ||
  bad "a null MX sender domain" "got: $(text null_sender "$T/nullmx.out")"
want="556 5.1.10 <d@nullmx.test>: Recipient address rejected: Domain nullmx.test does not accept mail (nullMX)"
[ "$(text null_rcpt "$T/nullmx.out")" = "$want" ] && ok "a null MX recipient domain: $want" ||
  bad "a null MX recipient domain" "got: $(text null_rcpt "$T/nullmx.out")"

# The client that left while its lookup ran: logged, no crash.
wait_for 15 grep -qE 'disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=0/1' "$T/maillog" ||
  wait_for 5 grep -qE 'lost connection after MAIL from localhost\[127\.0\.0\.1\]' "$T/maillog"
expect_grep "a client that left during its lookup is logged" \
  'lost connection after MAIL from localhost\[127\.0\.0\.1\]|disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=0?/?1 commands' "$T/maillog"
if grep -E 'smtpd\[[0-9]+\]: (fatal|panic)|process .*smtpd.* (killed by signal|exit status)' "$T/maillog" >/dev/null; then
  bad "smtpd did not crash" "$(grep -E 'fatal|panic|killed by signal|exit status' "$T/maillog" | head -5)"
else
  ok "smtpd did not crash"
fi
n=$(grep -oE 'postfix/smtpd\[[0-9]+\]' "$T/maillog" | sort -u | wc -l)
[ "$n" = 1 ] && ok "one smtpd process served every session" || bad "one smtpd process served every session" "$n smtpd processes logged"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
