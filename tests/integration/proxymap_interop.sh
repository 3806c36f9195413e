#!/usr/bin/env bash
# proxymap: our proxymap(8) and the proxy: table type (lib/ipc/dict_proxy).
# Part 1, always (our master; as root or unprivileged): our postmap -q
# through our proxymap answers proxy:hash:, proxy:unix:passwd.byname and
# proxy:regexp: as the tables themselves; a table not in proxy_read_maps is
# refused with Postfix's warnings; a table that cannot be opened and a
# proxymap that cannot be reached are errors, never "not found"; update
# and delete only through proxywrite; a changed table restarts proxymap.
# Part 2, when postfix-oracle is there and we are root: the same queries
# answered by a real Postfix 3.7 proxymap through our client, and by ours
# through the real postmap, give the same output and exit status.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
for f in postfix master proxymap postmap; do
  [ -x "$B/$f" ] || { echo "# skip: $B/$f is not built"; exit 77; }
done
. "$MTA_SOURCE_DIR/tests/integration/interop.sh.inc"
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
finish() { echo "# $CHECKS checks, $FAILS failed"; [ $FAILS = 0 ]; exit $?; }
# q CONFIG_DIR KEY TABLE: our postmap -q; stdout, then "rc=N".
q() { timeout 30 "$B/postmap" -c "$1" -q "$2" "$3" 2>/dev/null; echo "rc=$?"; }
qerr() { timeout 30 "$B/postmap" -c "$1" -q "$2" "$3" 2>&1 >/dev/null; }

ROOT_LINE=$(getent passwd root)
# Tables (readable by mail_owner when the instance runs as root).
mkdir -p "$T/tables"
printf '%s\n' 'Foo bar' 'baz qux' >"$T/tables/tbl"
printf '%s\n' '/^a(.*)/ got$1' >"$T/tables/re"

# The queries, and what each must give (checked on the real proxymap too).
QUERIES=("foo proxy:hash:$T/tables/tbl" "FOO proxy:hash:$T/tables/tbl" "nothere proxy:hash:$T/tables/tbl"
  "root proxy:unix:passwd.byname" "no-such-user-xyz proxy:unix:passwd.byname"
  "abc proxy:regexp:$T/tables/re" "xyz proxy:regexp:$T/tables/re"
  "x proxy:hash:$T/tables/missing" "x proxy:hash:$T/tables/notlisted" "x proxy:proxy:hash:$T/tables/tbl")
WANT="foo: bar rc=0
FOO: bar rc=0
nothere: rc=1
root: $ROOT_LINE rc=0
no-such-user-xyz: rc=1
abc: gotbc rc=0
xyz: rc=1
x: rc=1
x: rc=1
x: rc=1"
run_queries() {  # CONFIG_DIR POSTMAP...
  local dir=$1 k t out rc; shift
  for qq in "${QUERIES[@]}"; do
    read -r k t <<<"$qq"
    out=$(timeout 30 "$@" -c "$dir" -q "$k" "$t" 2>/dev/null)
    rc=$?
    echo "$k: ${out:+$out }rc=$rc"
  done
}
READ_MAPS="\$local_recipient_maps proxy:hash:$T/tables/tbl proxy:hash:$T/tables/missing proxy:regexp:$T/tables/re"

# ======== Part 1: our proxymap under our master
mkdir -p "$Q"
printf '%s\n' "compatibility_level = 3.6" "queue_directory = $Q" "data_directory = $T/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $T/maillog" \
  "maillog_file_prefixes = $T" "inet_protocols = ipv4" "inet_interfaces = loopback-only" \
  "myhostname = mx.example.org" "alias_maps =" "proxy_read_maps = $READ_MAPS" \
  "proxy_write_maps = proxy:hash:$T/tables/tbl" >"$T/main.cf"
printf '%s\n' "proxymap   unix  -       -       n       -       -       proxymap" \
  "proxywrite unix  -       -       n       -       1       proxymap" >"$T/master.cf"
"$B/postmap" -c "$T" "hash:$T/tables/tbl" || bad "postmap builds the table"
chmod -R a+rX "$T/tables"
[ "$(id -u)" = 0 ] && chown -R postfix "$T/tables" 2>/dev/null
if ! timeout 30 "$B/postfix" -c "$T" start >"$T/start.log" 2>&1; then
  bad "our instance starts" "$(cat "$T/start.log")" "$(tail -5 "$T/maillog" 2>/dev/null)"
  finish
fi
OURS_UP=1
wait_for 20 test -S "$Q/private/proxywrite" || bad "the proxymap sockets appear"

same "our postmap -q proxy:... through our proxymap" "$WANT" "$(run_queries "$T" "$B/postmap")"
got=$(qerr "$T" x "proxy:hash:$T/tables/notlisted")
same "a table not in proxy_read_maps: refused" \
  "postmap: fatal: proxymap service is not configured for table \"hash:$T/tables/notlisted\"" "$got"
grep -q "postfix/proxymap\[[0-9]*\]: warning: request for unapproved table: \"hash:$T/tables/notlisted\"\$" "$T/maillog" &&
  grep -q "postfix/proxymap\[[0-9]*\]: warning: to approve this table for read-only access, list proxy:hash:$T/tables/notlisted in main.cf:proxy_read_maps\$" "$T/maillog" &&
  ok "... with Postfix's warnings" || bad "... with Postfix's warnings" "$(grep proxymap "$T/maillog" | tail -4)"
got=$(qerr "$T" x "proxy:hash:$T/tables/missing")
[[ $got == "postmap: fatal: table proxy:hash:$T/tables/missing: query error: "* ]] &&
  ok "a table that cannot be opened: a query error" || bad "a table that cannot be opened: a query error" "$got"
grep -q "postfix/proxymap\[[0-9]*\]: error: open database $T/tables/missing.db: No such file or directory\$" "$T/maillog" &&
  grep -q "postfix/proxymap\[[0-9]*\]: warning: hash:$T/tables/missing is unavailable. open database $T/tables/missing.db: No such file or directory\$" "$T/maillog" &&
  ok "... with Postfix's error and warning" || bad "... with Postfix's error and warning" "$(grep proxymap "$T/maillog" | tail -4)"
got=$(qerr "$T" x proxy:nocolon)
same "a table name without a type: an invalid request" 'postmap: fatal: proxymap open failed for table "nocolon": invalid request' "$got"

# Several keys over one connection (postmap -q -).
got=$(printf '%s\n' foo nothere baz | timeout 30 "$B/postmap" -c "$T" -q - "proxy:hash:$T/tables/tbl" 2>&1)
same "postmap -q - through proxymap" "foo	bar
baz	qux" "$got"
# Sequence through proxymap.
got=$(timeout 30 "$B/postmap" -c "$T" -s "proxy:hash:$T/tables/tbl" 2>&1 | sort)
same "postmap -s through proxymap" "baz	qux
foo	bar" "$got"

# No proxymap: an error, never "not found".
mkdir -p "$T/down/queue"
sed "s|^queue_directory = .*|queue_directory = $T/down/queue|" "$T/main.cf" >"$T/down/main.cf"
got=$(q "$T/down" root proxy:unix:passwd.byname)
same "an unreachable proxymap: no answer, exit 1" "rc=1" "$got"
got=$(qerr "$T/down" root proxy:unix:passwd.byname)
[[ $got == *"warning: connect to $T/down/queue/private/proxymap: No such file or directory"*"postmap: fatal: table proxy:unix:passwd.byname: query error: "* ]] &&
  ok "... a query error, after a warning" || bad "... a query error, after a warning" "$got"

# Updates and deletes: proxywrite only.
got=$(timeout 30 "$B/postmap" -c "$T" -d foo "proxy:hash:$T/tables/notlisted" 2>&1; echo "rc=$?")
[[ $got == *"rc=1" ]] && ok "proxywrite refuses a table not in proxy_write_maps" ||
  bad "proxywrite refuses a table not in proxy_write_maps" "$got"
got=$(timeout 30 "$B/postmap" -c "$T" -d baz "proxy:hash:$T/tables/tbl" 2>&1; echo "rc=$?")
same "postmap -d through proxywrite" "rc=0" "$got"
same "... the key is gone" "rc=1" "$(q "$T" baz "hash:$T/tables/tbl")"

# A changed table restarts proxymap, and the new content is served.
printf '%s\n' 'Foo changed' >"$T/tables/tbl"
"$B/postmap" -c "$T" "hash:$T/tables/tbl"
chmod -R a+rX "$T/tables"
q "$T" foo "proxy:hash:$T/tables/tbl" >/dev/null  # this client's end triggers the check
if wait_for 10 grep -q "postfix/proxymap\[[0-9]*\]: table hash:$T/tables/tbl has changed -- restarting" "$T/maillog"; then
  ok "a changed table restarts proxymap"
else bad "a changed table restarts proxymap" "$(grep proxymap "$T/maillog" | tail -3)"; fi
same "... and the new content is served" "changed
rc=0" "$(q "$T" foo "proxy:hash:$T/tables/tbl")"

# Debian's default local_recipient_maps (proxy:unix:passwd.byname
# $alias_maps) in a chrooted smtpd (when root): known and unknown users.
if [ -x "$B/smtpd" ] && [ -x "$B/trivial-rewrite" ] && [ -x "$B/cleanup" ]; then
  SPORT=
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then SPORT=$p; break; fi
  done
  printf '%s\n' "127.0.0.1:$SPORT inet n - y - - smtpd" "rewrite unix - - y - - trivial-rewrite" \
    "cleanup unix n - y - 0 cleanup" >>"$T/master.cf"
  [ -x "$B/anvil" ] && echo "anvil unix - - y - 1 anvil" >>"$T/master.cf"
  "$B/postconf" -c "$T" -e "local_recipient_maps = proxy:unix:passwd.byname \$alias_maps" \
    "proxy_read_maps = $READ_MAPS" >/dev/null 2>&1 ||
    printf '%s\n' "local_recipient_maps = proxy:unix:passwd.byname \$alias_maps" >>"$T/main.cf"
  timeout 30 "$B/postfix" -c "$T" reload >/dev/null 2>&1
  if wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"; then
    got=$(timeout 60 python3 - "$SPORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.ehlo("client.test")
s.mail("sender@example.org")
for rcpt in ("root@mx.example.org", "no-such-user-xyz@mx.example.org"):
    code, msg = s.rcpt(rcpt)
    print(code, msg.decode())
s.quit()
PY
)
    [[ $got == "250 2.1.5 Ok"$'\n'"550 5.1.1 <no-such-user-xyz@mx.example.org>: Recipient address rejected: User unknown in local recipient table" ]] &&
      ok "smtpd (chroot) checks local_recipient_maps through proxymap" ||
      bad "smtpd (chroot) checks local_recipient_maps through proxymap" "$got" "$(grep -E 'smtpd|proxymap' "$T/maillog" | tail -4)"
  else bad "our smtpd listens" "$(tail -5 "$T/maillog")"; fi
else echo "# smtpd, trivial-rewrite or cleanup not built: the smtpd check is skipped"; fi
if grep -qE "postfix/(proxymap|master)\[[0-9]+\]: (fatal|panic)" "$T/maillog"; then
  bad "no fatal errors" "$(grep -E "(fatal|panic)" "$T/maillog" | head -3)"
else ok "no fatal errors"; fi
timeout 30 "$B/postfix" -c "$T" stop >/dev/null 2>&1
OURS_UP=0

# ======== Part 2: the real proxymap and ours
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# no postfix-oracle: part 2 skipped"; finish; fi
if [ "$(id -u)" != 0 ]; then echo "# not root: part 2 (a real Postfix instance) skipped"; finish; fi
if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# postfix-oracle install failed: part 2 skipped"; finish; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
printf '%s\n' 'Foo bar' 'baz qux' >"$T/tables/tbl"
"$B/postmap" -c "$T" "hash:$T/tables/tbl"
chmod -R a+rX "$T/tables"
PORT=
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { bad "a free port for the real instance"; finish; }
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { bad "the real instance is made" "$(tail -3 "$T/instance.log")"; finish; }
real() { timeout 60 "$ORACLE" run "$1" -c "$INST" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }
real postconf -e "proxy_read_maps = $READ_MAPS" >/dev/null
if ! real postfix start >"$T/rstart.log" 2>&1; then bad "the real instance starts" "$(cat "$T/rstart.log")"; finish; fi
REAL_UP=1
wait_for 30 test -S "$INST/queue/private/proxymap" || { bad "the real instance's sockets appear"; finish; }
same "our postmap -q proxy:... through the real proxymap" "$WANT" "$(run_queries "$INST" "$B/postmap")"
same "the real postmap -q proxy:... through the real proxymap" "$WANT" \
  "$(run_queries "$INST" "$ORACLE" run postmap)"
grep -q "postfix/proxymap\[[0-9]*\]: warning: to approve this table for read-only access, list proxy:hash:$T/tables/notlisted in main.cf:proxy_read_maps\$" "$INST/maillog" &&
  ok "the real proxymap's warning is the one we log" || bad "the real proxymap's warning is the one we log" "$(grep proxymap "$INST/maillog" | tail -3)"
real postfix stop >/dev/null 2>&1
REAL_UP=0

# The real postmap through our proxymap (our instance again).
if ! timeout 30 "$B/postfix" -c "$T" start >"$T/start2.log" 2>&1; then bad "our instance starts again" "$(cat "$T/start2.log")"; finish; fi
OURS_UP=1
wait_for 20 test -S "$Q/private/proxymap" || bad "our proxymap socket appears"
same "the real postmap -q proxy:... through our proxymap" "$WANT" "$(run_queries "$T" "$ORACLE" run postmap)"
finish
