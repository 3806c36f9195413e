#!/usr/bin/env bash
# smtpd's AUTH exchanges do not stall the other sessions of its process (one
# smtpd process serves many sessions): each SASL step runs in smtpd's worker
# pool while its session waits with input paused.
#
# Our instance runs a single smtpd process (master.cf maxproc 1) with
# smtpd_sasl_type = dovecot and smtpd_sasl_path naming the socket of a tiny
# fake Dovecot auth server (Python's standard library) that speaks the
# handshake (VERSION, MECH, SPID, CUID, COOKIE, DONE) and answers AUTH with
# OK or FAIL: for user "slow" after 5 s, for anyone else at once.
#
# Checks:
#   - client 1 sends AUTH PLAIN as slow; client 2, started just after,
#     does EHLO, AUTH PLAIN as fast, MAIL, RCPT, DATA, QUIT and is done
#     well before client 1 hears its 235;
#   - both get Postfix's replies (235 2.7.0, 250 for the message) and the
#     logs name sasl_method and sasl_username;
#   - a wrong password still gets "535 5.7.8 Error: authentication failed:"
#     with Postfix's warning line;
#   - a client that leaves while its AUTH step runs does no harm, and one
#     smtpd process lived through it all;
#   - a step that has not returned (user "never": the server does not
#     answer) does not keep smtpd from leaving at "postfix stop".
# Needs root and python3: exit 77 otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (instance)"; exit 77; }
for p in master postfix postconf smtpd cleanup trivial-rewrite qmgr discard; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
command -v python3 >/dev/null || { echo "# skip: no python3"; exit 77; }

T=$(mktemp -d /tmp/smtpd_async_sasl.XXXXXX) || exit 1
chmod 755 "$T"
AUTH_PID='' STARTED=''
cleanup() {
  [ -n "$STARTED" ] && MAIL_CONFIG=$T timeout 60 "$B/postfix" -c "$T" stop >/dev/null 2>&1
  [ -n "$AUTH_PID" ] && { kill "$AUTH_PID" 2>/dev/null; wait "$AUTH_PID" 2>/dev/null; }
  [ -n "${KEEP:-}" ] && { echo "# kept $T"; return; }
  rm -rf "$T"
}
trap cleanup EXIT
. "$MTA_SOURCE_DIR/tests/integration/tap.sh.inc"
PORT=$(free_port)

# ---------------------------------------------------------------- auth server
cat >"$T/auth.py" <<'EOF'
import base64, os, socket, sys, threading, time
path, logfile = sys.argv[1], sys.argv[2]
def log(text):
    with open(logfile, 'a') as f:
        f.write('%.3f %s\n' % (time.time(), text))
def fields(args):
    out = {}
    for a in args:
        k, _, v = a.partition('=')
        out[k] = v
    return out
def serve(conn):
    f = conn.makefile('rb')
    conn.sendall(b'VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n'
                 b'SPID\t4242\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n')
    for raw in f:
        line = raw.decode().rstrip('\n')
        log('< ' + line.replace('\t', ' '))
        parts = line.split('\t')
        if parts[0] != 'AUTH' or len(parts) < 3:
            continue
        rid, mech, args = parts[1], parts[2], fields(parts[3:])
        if mech != 'PLAIN' or 'resp' not in args:
            conn.sendall(('FAIL\t%s\treason=unsupported in this test\n' % rid).encode()); continue
        _, user, password = base64.b64decode(args['resp']).decode().split('\0')
        if user == 'slow':
            time.sleep(5)
        if user == 'never':
            time.sleep(3600)
        if password == 'secret':
            answer = 'OK\t%s\tuser=%s\n' % (rid, user)
        else:
            answer = 'FAIL\t%s\tuser=%s\n' % (rid, user)
        log('> ' + answer.strip().replace('\t', ' '))
        try:
            conn.sendall(answer.encode())
        except OSError:
            return
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
python3 "$T/auth.py" "$T/auth.sock" "$T/auth.log" &
AUTH_PID=$!
wait_for 10 test -S "$T/auth.sock" || { echo "not ok - the fake Dovecot auth server starts"; exit 1; }

# ---------------------------------------------------------------- instance
mkdir -p "$T/queue"
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$T/"
"$B/postconf" -c "$T" -e "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" "maillog_file_prefixes = $T" \
  "myhostname = mail.async.example" 'myorigin = $myhostname' 'mydestination = $myhostname, localhost' \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.1/32" "alias_maps =" \
  "alias_database =" "default_transport = discard" "relay_transport = discard" \
  "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = dovecot" "smtpd_sasl_path = $T/auth.sock" \
  "smtpd_recipient_restrictions = permit_sasl_authenticated, reject" "smtpd_timeout = 30s" >/dev/null
"$B/postconf" -c "$T" -MX smtp/inet
"$B/postconf" -c "$T" -Me "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - 1 smtpd"
MAIL_CONFIG=$T timeout 60 "$B/postfix" -c "$T" start >/dev/null 2>&1 || { echo "not ok - postfix start"; tail -5 "$T/maillog"; exit 1; }
STARTED=1
wait_for 20 sh -c "ss -Hlnt 'sport = :$PORT' | grep -q LISTEN" || { echo "not ok - smtpd listens"; exit 1; }

# ---------------------------------------------------------------- clients
cat >"$T/clients.py" <<'EOF'
import base64, socket, sys, threading, time
port = int(sys.argv[1])
t0 = time.time()
events = {}
def mark(key, value=None):
    events[key] = (time.time() - t0, value)
def plain(user, password):
    return base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()
class Client:
    def __init__(self):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=40)
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
sent = threading.Event()
def one():
    c = Client(); c.read(); c.cmd('EHLO one.example')
    c.s.sendall(('AUTH PLAIN %s\r\n' % plain('slow', 'secret')).encode()); sent.set()
    mark('c1_auth', c.read())
    c.cmd('QUIT')
def gone():
    c = Client(); c.read(); c.cmd('EHLO gone.example')
    c.s.sendall(('AUTH PLAIN %s\r\n' % plain('slow', 'secret')).encode())
    time.sleep(0.3); c.s.close()
def two():
    sent.wait(10); time.sleep(0.3)
    mark('c2_start')
    c = Client(); c.read()
    for line, want in (('EHLO two.example', '250'), ('AUTH PLAIN ' + plain('fast', 'secret'), '235'),
                       ('MAIL FROM:<fast@fast.test>', '250'), ('RCPT TO:<y@remote.test>', '250'),
                       ('DATA', '354')):
        r = c.cmd(line)
        if line.startswith('AUTH'):
            mark('c2_auth', r)
        if not r.startswith(want):
            mark('c2_error', line + ' -> ' + r); return
    mark('c2_done', c.cmd('Subject: hi\r\n\r\nbody\r\n.'))
    c.cmd('QUIT')
def wrong():
    sent.wait(10); time.sleep(0.3)
    c = Client(); c.read(); c.cmd('EHLO wrong.example')
    mark('c3_auth', c.cmd('AUTH PLAIN ' + plain('fast', 'nope')))
    c.cmd('QUIT')
threads = [threading.Thread(target=f) for f in (one, gone, two, wrong)]
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

timeout 90 python3 "$T/clients.py" "$PORT" >"$T/clients.out" 2>&1
sed 's/^/# /' "$T/clients.out"
c1=$(at c1_auth "$T/clients.out") c2=$(at c2_done "$T/clients.out") s2=$(at c2_start "$T/clients.out")
if before "$c2" "$c1" && before "$c2" "$(awk -v s="$s2" 'BEGIN {print s + 3}')"; then
  ok "a session waiting on a slow AUTH answer does not stall another (done at ${c2}s, the slow AUTH answered at ${c1}s)"
else
  bad "a session waiting on a slow AUTH answer does not stall another" "fast transaction done at '${c2}', slow AUTH answered at '${c1}'"
fi
[ "$(text c1_auth "$T/clients.out")" = "235 2.7.0 Authentication successful" ] &&
  ok "the slow AUTH succeeds: 235 2.7.0 Authentication successful" || bad "the slow AUTH succeeds" "got: $(text c1_auth "$T/clients.out")"
[ "$(text c2_auth "$T/clients.out")" = "235 2.7.0 Authentication successful" ] && text c2_done "$T/clients.out" | grep -q '^250 ' &&
  ok "the fast client authenticates and relays" || bad "the fast client authenticates and relays" "$(grep c2_ "$T/clients.out")"
[ "$(text c3_auth "$T/clients.out")" = "535 5.7.8 Error: authentication failed: " ] ||
  [ "$(text c3_auth "$T/clients.out")" = "535 5.7.8 Error: authentication failed:" ] &&
  ok "a wrong password: 535 5.7.8 Error: authentication failed:" || bad "a wrong password gets 535" "got: $(text c3_auth "$T/clients.out")"
wait_for 10 grep -q 'sasl_method=PLAIN, sasl_username=fast' "$T/maillog"
expect_grep "the fast client's message is logged with its SASL login" \
  'client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=fast$' "$T/maillog"
expect_grep "the failure is logged as Postfix logs it" \
  'warning: localhost\[127\.0\.0\.1\]: SASL PLAIN authentication failed: , sasl_username=fast$' "$T/maillog"
wait_for 10 grep -q 'disconnect from localhost\[127\.0\.0\.1\] ehlo=1 auth=1 quit=1 commands=3' "$T/maillog"
expect_grep "the slow session's statistics count its AUTH" \
  'disconnect from localhost\[127\.0\.0\.1\] ehlo=1 auth=1 quit=1 commands=3' "$T/maillog"

# The client that left while its AUTH step ran: logged, no crash.
wait_for 15 grep -qE 'lost connection after AUTH from localhost\[127\.0\.0\.1\]' "$T/maillog"
expect_grep "a client that left during its AUTH step is logged" \
  'lost connection after AUTH from localhost\[127\.0\.0\.1\]' "$T/maillog"
if grep -E 'smtpd\[[0-9]+\]: (fatal|panic)|process .*smtpd.* (killed by signal|exit status)' "$T/maillog" >/dev/null; then
  bad "smtpd did not crash" "$(grep -E 'fatal|panic|killed by signal|exit status' "$T/maillog" | head -5)"
else
  ok "smtpd did not crash"
fi
n=$(grep -oE 'postfix/smtpd\[[0-9]+\]' "$T/maillog" | sort -u | wc -l)
[ "$n" = 1 ] && ok "one smtpd process served every session" || bad "one smtpd process served every session" "$n smtpd processes logged"

# A step that never returns (the Dovecot client gives up after 10 s):
# "postfix stop" one second into it still ends smtpd at once, as it ends
# the sessions (421) and then leaves without waiting for the step.
cat >"$T/never.py" <<'EOF'
import base64, socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
f = s.makefile('rb')
f.readline(); s.sendall(b'EHLO never.example\r\n')
while f.readline()[3:4] == b'-': pass
s.sendall(('AUTH PLAIN %s\r\n' % base64.b64encode(b'\0never\0secret').decode()).encode())
print('sent', flush=True)
print(f.readline().decode().strip(), flush=True)
EOF
timeout 40 python3 "$T/never.py" "$PORT" >"$T/never.out" 2>&1 &
NEVER_PID=$!
wait_for 10 grep -q '^sent' "$T/never.out"
wait_for 10 grep -q "resp=$(printf '\0never\0secret' | base64)" "$T/auth.log"
sleep 1
pids=$(grep -oE 'postfix/smtpd\[[0-9]+\]' "$T/maillog" | grep -oE '[0-9]+' | sort -u)
t0=$(date +%s.%N)
MAIL_CONFIG=$T timeout 60 "$B/postfix" -c "$T" stop >/dev/null 2>&1
STARTED=''
gone() { local p; for p in $pids; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
wait_for 20 gone
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
if gone && awk -v s="$secs" 'BEGIN {exit !(s < 5)}'; then
  ok "postfix stop ends smtpd while an AUTH step hangs (${secs}s)"
else
  bad "postfix stop ends smtpd while an AUTH step hangs" "smtpd ($pids) still there after ${secs}s"
fi
wait "$NEVER_PID" 2>/dev/null
grep -q '^421 ' "$T/never.out" && ok "the waiting client gets 421 at the stop" ||
  bad "the waiting client gets 421 at the stop" "$(cat "$T/never.out")"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
