#!/usr/bin/env bash
# master, the server skeletons and the postfix command, on a real instance:
# start/status/stop, a second start refused, workers started on demand up to
# maxproc, privilege drop and chroot (as root), wakeup triggers, a killed
# worker replaced, a worker that dies at startup throttled, reload adding
# and removing services, and bad configuration refused with a clear error.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
T=$(mktemp -d) || exit 1
B=$MTA_BIN
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(port) P2=$(port)
cleanup() { "$B/postfix" -c "$T" stop >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
expect() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2" "got:      $3"; fi; }
# Waits up to 10 s for a command to succeed.
eventually() { local i; for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
greet() {  # greet inet PORT | greet unix PATH: the worker's first line
  python3 -c '
import socket, sys
kind, where = sys.argv[1], sys.argv[2]
if kind == "inet":
    s = socket.create_connection(("127.0.0.1", int(where)), timeout=5)
else:
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(where)
print(s.makefile().readline().strip())
' "$@"
}

mkdir -p "$T/queue"
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $T/queue" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_protocols = ipv4" "service_throttle_time = 60s" > "$T/main.cf"
printf '%s\n' "127.0.0.1:$P1 inet n - n - 2 test_echo" \
  "echo      unix  -       n       n       -       -       test_echo" \
  "jail      unix  -       -       y       -       -       test_echo" \
  "tick      unix  n       -       n       1       1       test_trigger" \
  "broken    unix  -       -       n       -       -       test_echo -o max_use=notanumber" \
  "tlsmgr    unix  -       -       n       1000?   1       tlsmgr" \
  "postlog   unix-dgram n  -       n       -       1       postlogd" > "$T/master.cf"

"$B/postfix" -c "$T" status >/dev/null 2>&1; expect "status before start exits 1" 1 $?
"$B/postfix" -c "$T" start; expect "start exits 0" 0 $?
"$B/postfix" -c "$T" status; expect "status exits 0 when running" 0 $?
"$B/postfix" -c "$T" start 2>/dev/null; expect "a second start is refused" 1 $?
"$B/master" -c "$T" -t; expect "master -t says one runs" 1 $?
grep -q "fatal: the Postfix mail system is already running" "$T/maillog" && ok "the refusal is logged" ||
  bad "the refusal is logged"
pid=$(awk '{print $1; exit}' "$T/queue/pid/master.pid")
expect "master.pid holds master's pid, right-aligned in 32 columns" "$(printf '%32s' "$pid")" "$(head -1 "$T/queue/pid/master.pid")"
grep -q "postfix/master\[$pid\]: daemon started -- version 3.7.11, configuration $T" "$T/maillog" &&
  ok "master logs its start as Postfix does" || bad "master logs its start as Postfix does"
grep -q "service tlsmgr/unix: $B/tlsmgr: No such file or directory; service disabled" "$T/maillog" &&
  ok "a service whose program is missing is disabled with a warning" || bad "missing program warning"
grep -q "service postlog/unix-dgram: type unix-dgram is not supported" "$T/maillog" &&
  ok "an unsupported service type is disabled with a warning" || bad "unsupported type warning"

line=$(greet inet "$P1")
case "$line" in "service=127.0.0.1:$P1 pid="*) ok "an inet service answers";; *) bad "an inet service answers" "$line";; esac
if [ "$(id -u)" = 0 ]; then
  expect "unpriv=y runs as mail_owner" "uid=$(id -u postfix)" "$(echo "$line" | grep -o 'uid=[0-9]*')"
  expect "unpriv=n stays root" "uid=0 chroot=no" "$(greet unix "$T/queue/private/echo" | grep -o 'uid=.*')"
  expect "chroot=y runs inside the queue directory" "chroot=yes" "$(greet unix "$T/queue/private/jail" | grep -o 'chroot=.*')"
  expect "unix sockets are mode 0666 owned by mail_owner" "666 postfix" "$(stat -c '%a %U' "$T/queue/private/echo")"
fi

# maxproc 2: two held connections use both workers; a third waits for one.
python3 -c '
import socket, sys
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=5); a.makefile().readline()
b = socket.create_connection(("127.0.0.1", port), timeout=5); b.makefile().readline()
c = socket.create_connection(("127.0.0.1", port), timeout=5); c.settimeout(1.0)
try:
    c.recv(100); sys.exit("third client served while two workers were busy")
except socket.timeout:
    pass
a.close()
c.settimeout(5)
if not c.recv(100).startswith(b"service="): sys.exit("third client not served")
' "$P1" && ok "maxproc limits the workers and a waiting client is served later" || bad "maxproc"
expect "no more than maxproc workers ran" 2 "$(pgrep -f "test_echo -n 127.0.0.1:$P1" | wc -l)"

# Wakeup triggers: tick gets "W" every second.
touch "$T/queue/trigger.log"; chmod 666 "$T/queue/trigger.log"
eventually grep -q WW "$T/queue/trigger.log" && ok "wakeup triggers arrive" || bad "wakeup triggers arrive"

# A worker that dies before serving is throttled; one killed later is replaced.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1]); s.recv(10)' \
  "$T/queue/private/broken" 2>/dev/null
eventually grep -q "test_echo: bad command startup -- throttling" "$T/maillog" &&
  ok "a worker that fails at startup is throttled" || bad "throttling"
victim=$(pgrep -f "test_echo -n echo" | head -1)
kill -9 "$victim"
eventually grep -q "pid $victim killed by signal 9" "$T/maillog" && ok "a killed worker is logged" || bad "killed worker logged"
case "$(greet unix "$T/queue/private/echo")" in service=echo*) ok "a killed worker is replaced";; *) bad "a killed worker is replaced";; esac

# Reload: a new service appears, a removed one goes.
sed -i "/^127.0.0.1:$P1/d" "$T/master.cf"
echo "127.0.0.1:$P2 inet n - n - - test_echo" >> "$T/master.cf"
"$B/postfix" -c "$T" reload; expect "reload exits 0" 0 $?
eventually greet inet "$P2" && ok "reload adds a service" || bad "reload adds a service"
python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)" "$P1" 2>/dev/null
expect "reload removes a service" 1 $?
grep -q "reload -- version 3.7.11, configuration $T" "$T/maillog" && ok "reload is logged" || bad "reload is logged"

# Reload with another column changed while a worker still holds a client
# (and so the listening socket): the socket is kept, not bound anew.
python3 -c '
import socket, subprocess, sys, time
port, b, t = int(sys.argv[1]), sys.argv[2], sys.argv[3]
held = socket.create_connection(("127.0.0.1", port), timeout=5); held.makefile().readline()
subprocess.run(["sed", "-i", "s/^127.0.0.1:%d inet n - n - - test_echo/127.0.0.1:%d inet n - n - 3 test_echo/" % (port, port),
                t + "/master.cf"], check=True)
subprocess.run([b + "/postfix", "-c", t, "reload"], check=True)
time.sleep(1.5)
c = socket.create_connection(("127.0.0.1", port), timeout=5)
if not c.recv(100).startswith(b"service="): sys.exit("not served after the reload")
' "$P2" "$B" "$T" && ! grep -q "reload failed" "$T/maillog" &&
  ok "reload keeps a changed service's socket while a worker holds a client" ||
  bad "reload of a changed service with a busy worker" "$(grep 'reload' "$T/maillog" | tail -2)"

# A broken master.cf on reload keeps the running configuration.
cp "$T/master.cf" "$T/master.cf.good"; echo "bad line" >> "$T/master.cf"
"$B/postfix" -c "$T" reload
eventually grep -q "reload failed, keeping the running configuration" "$T/maillog" &&
  ok "a broken reload keeps the old services" || bad "broken reload"
greet inet "$P2" >/dev/null && ok "services still answer after a failed reload" || bad "answer after failed reload"
cp "$T/master.cf.good" "$T/master.cf"

"$B/postfix" -c "$T" stop; expect "stop exits 0" 0 $?
"$B/postfix" -c "$T" status 2>/dev/null; expect "status exits 1 after stop" 1 $?
eventually sh -c "! pgrep -f 'test_(echo|trigger) -n' >/dev/null" && ok "no worker outlives master" || bad "workers left"
"$B/postfix" -c "$T" stop 2>/dev/null; expect "stop when stopped exits 1" 1 $?

# Bad configuration: a clear error, and nothing starts.
echo "bad line" >> "$T/master.cf"
"$B/postfix" -c "$T" start 2>"$T/err"; expect "start with a broken master.cf exits 1" 1 $?
grep -q "fatal: file $T/master.cf: line 8: bad field count" "$T/maillog" && ok "the error names file and line" ||
  bad "the error names file and line" "$(tail -3 "$T/maillog")"

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
