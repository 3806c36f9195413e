#!/usr/bin/env bash
# trivial-rewrite against the real one: one real Postfix 3.7 instance
# (postfix-oracle) whose master runs, for each of several configurations
# (master.cf -o settings), the real trivial-rewrite and ours side by side
# under two service names.  tr_probe asks both the same rewrite, resolve
# and verify questions over one connection each, and the answers must be
# byte for byte the same: local and remote rules, bang paths, percent
# hacks, source routes, quoted local parts, the empty address, [ip]
# literals of inet_interfaces and proxy_interfaces, numeric domains, bad
# syntax, relay, virtual alias and mailbox domains, relayhost,
# sender-dependent relayhost and transport maps, transport_maps,
# relocated_maps, failing tables.  Then the real cleanup, qmgr and smtpd
# use ours: the instance's rewrite service is switched to our daemon and a
# message sent over SMTP is delivered to the local Maildir.
# Skipped without the oracle, or when the instance cannot be started (not
# root).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
PROBE=$MTA_BIN/tr_probe
OURS=$MTA_BIN/trivial-rewrite
for f in "$PROBE" "$OURS"; do [ -x "$f" ] || { echo "# skip: $f is not built"; exit 77; }; done
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# skip: no postfix-oracle"; exit 77; fi
if [ "$(id -u)" != 0 ]; then echo "# skip: a real Postfix instance needs root"; exit 77; fi
T=$(mktemp -d) || exit 1
chmod 755 "$T"
INST=$T/instance
Q=$INST/queue
STARTED=0
stop_instance() {
  if [ $STARTED = 1 ]; then
    timeout 60 "$ORACLE" run postfix -c "$INST" stop >/dev/null 2>&1
    STARTED=0
  fi
}
trap 'stop_instance; rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
real() { timeout 60 "$ORACLE" run "$1" -c "$INST" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }

if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# skip: postfix-oracle install failed"; exit 77; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
PORT=
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "# skip: no free port"; exit 77; }
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { cat "$T/instance.log"; exit 1; }

# The real master runs daemon_directory/COMMAND: reach ours with a relative path.
DAEMON_DIR=$(real postconf -xh daemon_directory)
REL=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$OURS" "$DAEMON_DIR")

# Tables for the configurations (texthash: read when the daemon starts).
printf '%s\n' 'virt.test    whatever' >"$T/valias"
printf '%s\n' 'special@example.com  error:5.7.1 go away' 'user+x@ext.test  smtp:[ext.example]' \
  'ext.test  relay:' '.sub.test  :[subhop.example]' 'nohop.test  error:' 'noop.test  :' \
  'lmtp.test  lmtp:unix:/run/lmtp' '*  smtp:[wild.example]:587' >"$T/transport"
printf '%s\n' 'moved@example.com  moved@new.example' '@gone.test  someone@else.example' >"$T/relocated"
printf '%s\n' 'alice@sender.test  [alice-relay.example]' '@sender.test  [domain-relay.example]' \
  'dunno@sender.test  DUNNO' '<>  [bounce-relay.example]' >"$T/sdrelay"
printf '%s\n' 'alice@sender.test  smtp:[alice-transport.example]' 'dunno@sender.test  DUNNO' \
  '<>  error:no bounces' >"$T/sdtransport"
printf '%s\n' 'example.com  smtp:[verify.example]' >"$T/vtransport"
printf '%s\n' '/^relay[0-9]+\.test$/  ok' >"$T/relay.regexp"

# name|master.cf -o settings (no blanks inside a setting)
CONFIGS=(
  "plain|"
  "relay|-o relayhost=[relay.example]:2525 -o relay_domains=relay.test,.relay2.test,regexp:$T/relay.regexp -o relay_transport=relay:[r.example]"
  "deftransport|-o default_transport=smtp:[d.example] -o relayhost=[ignored.example] -o local_transport=local"
  "virtual|-o virtual_alias_domains=valias.test,texthash:$T/valias -o virtual_mailbox_domains=vmbox.test,valias.test -o virtual_transport=lmtp:unix:/run/dovecot -o relay_domains=relay.test,vmbox.test -o mydestination=localhost,\$myhostname,valias.test"
  "knobs|-o swap_bangpath=no -o allow_percent_hack=no -o resolve_dequoted_address=no -o resolve_null_domain=yes -o resolve_numeric_domain=yes -o allow_min_user=yes -o append_at_myorigin=no -o empty_address_recipient=nobody"
  "domains|-o append_dot_mydomain=yes -o mydomain=example.net -o myorigin=example.org -o remote_header_rewrite_domain=remote.test -o show_user_unknown_table_name=no -o virtual_alias_domains=valias.test -o mydestination=localhost,.sub.example.net -o proxy_interfaces=10.9.8.7 -o inet_interfaces=loopback-only"
  "tables|-o transport_maps=texthash:$T/transport -o relocated_maps=texthash:$T/relocated -o sender_dependent_relayhost_maps=texthash:$T/sdrelay -o sender_dependent_default_transport_maps=texthash:$T/sdtransport -o recipient_delimiter=+ -o address_verify_transport_maps=texthash:$T/vtransport -o address_verify_relayhost=[vrelay.example] -o relay_domains=relay.test"
  "broken|-o relay_domains=hash:$T/missing -o relocated_maps=hash:$T/missing2 -o local_transport=:nohost"
  "brokendest|-o mydestination=localhost,hash:$T/missing3 -o virtual_alias_domains=hash:$T/missing4"
  "ascii|-o smtputf8_enable=no -o resolve_dequoted_address=no -o relay_domains=!x.relay.test,relay.test"
)
for c in "${CONFIGS[@]}"; do
  name=${c%%|*} opts=${c#*|}
  printf 'real_%s unix - - n - - trivial-rewrite %s\nours_%s unix - - n - - %s %s\n' \
    "$name" "$opts" "$name" "$REL" "$opts" >>"$INST/master.cf"
done
if ! real postfix start >"$T/start.log" 2>&1; then
  cat "$T/start.log"; echo "# skip: the real Postfix instance did not start"; exit 77
fi
STARTED=1
wait_for 30 test -S "$Q/private/ours_plain" || { bad "the instance's sockets appear"; exit 1; }
MYHOSTNAME=$(real postconf -xh myhostname)

# --- the questions
{
  for rule in local remote; do
    for a in user user@host user@host. user@host.. user@localhost 'site!user' 'a!b!user' '!user' 'site!' \
      'user%domain' 'user%a%b' '@a,@b:user@c' '@a:user' '@a:' '"a b"@c' 'a b@c' '"quoted"' '""' '@' 'user@' \
      'user@[1.2.3.4]' 'user@[IPv6:::1]' '"a@b"@c' 'a\@b@c' '<user@x>' 'user (comment)@x' 'first.last@x' \
      '.user@x' 'user.@x' '-user' 'user+ext' ' user ' MAILER-DAEMON '"user@x"' 'jörg@x' 'user@Host.Example.COM' \
      'user@sub' 'user@localhost.' 'a.b' '"a"b@c' 'a"b"@c' 'user@[x' 'user@(c)host' 'a,b@c' 'user@h;x' \
      'x@y@z' 'a%b@c' '"a%b"' '"a!b"' '@x' 'user@host:25'; do
      printf '%s\t%s\n' "$rule" "$a"
    done
  done
  printf '%s\t%s\n' strange user
} >"$T/rewrite.in"
{
  for req in resolve verify; do
    for s in '' alice@sender.test bob@sender.test dunno@sender.test; do
      for a in user user@localhost "user@$MYHOSTNAME" user@example.com user@example.com. user@EXAMPLE.COM \
        'user@[127.0.0.1]' 'user@[10.9.8.7]' 'user@[10.1.1.1]' 'user@[IPv6:::1]' 'user@[300.1.1.1]' 'user@[1.2.3]' \
        'user@127.0.0.1' 'user@1.2.3.4' 'user@[127.0.0.1]x' user@ '' '@localhost' 'a b@localhost' 'a@b@localhost' \
        'user%remote.example@localhost' 'remote.example!user@localhost' 'user@remote.example@localhost' \
        'user%remote.example' 'remote.example!user' 'a%b%c@localhost' 'x!y!user' '-user@localhost' \
        '-user@example.com' 'user@bad_host.example' 'user@-bad.com' 'user@a..b' 'user@a.b.' 'user@.a' \
        MAILER-DAEMON postmaster 'user@sub.localhost' 'user@LOCALHOST' 'user@local host' 'user@123' \
        'user@xn--bcher-kva.example' 'user@bücher.example' 'user@relay.test' 'user@x.relay.test' \
        'user@relay2.test' 'user@a.relay2.test' 'user@relay7.test' 'user@valias.test' 'user@virt.test' \
        'user@vmbox.test' 'special@example.com' 'user+x@ext.test' 'user+y@ext.test' 'user@ext.test' \
        'user@a.sub.test' 'user@sub.test' 'user@nohop.test' 'user@noop.test' 'user@lmtp.test' \
        'moved@example.com' 'moved+x@example.com' 'anyone@gone.test' 'user@a.sub.example.net' \
        'user@sub.example.net' 'user@x.example.net' '"quoted@inner"@localhost' 'q"uo@localhost' \
        "$(printf 'a%.0s' {1..70})@example.com" "user@$(printf 'b%.0s' {1..64}).com" '@a,@b:user@c' \
        'user@[IPv6:2001:db8::1]' 'user@[ipv6:::1]' 'user@host:25' 'MAILER-DAEMON@localhost' '""@localhost' \
        'a!b!c!d!e!f!user@localhost' 'u%v%w%x@localhost' 'a b%c@localhost' '"@"@localhost' 'user@[127.0.0.1].' \
        'user@a-.example' 'user@_a.example' "user@localhost@$MYHOSTNAME" 'post master@x.relay.test'; do
        printf '%s\t%s\t%s\n' "$req" "$s" "$a"
      done
    done
  done
  printf '%s\t%s\t%s\n' strange '' user
} >"$T/resolve.in"

for c in "${CONFIGS[@]}"; do
  name=${c%%|*}
  for kind in rewrite resolve; do
    timeout 120 "$PROBE" -q "$Q" -t 30 "$kind" "real_$name" <"$T/$kind.in" >"$T/real.$name.$kind" 2>&1
    timeout 120 "$PROBE" -q "$Q" -t 30 "$kind" "ours_$name" <"$T/$kind.in" >"$T/ours.$name.$kind" 2>&1
    sed -i "s/real_$name/SERVICE/g" "$T/real.$name.$kind"
    sed -i "s/ours_$name/SERVICE/g" "$T/ours.$name.$kind"
    n=$(wc -l <"$T/$kind.in")
    if [ "$(wc -l <"$T/real.$name.$kind")" != "$n" ]; then
      bad "$name: the real daemon answered every $kind query" "$(tail -3 "$T/real.$name.$kind")"
    elif cmp -s "$T/real.$name.$kind" "$T/ours.$name.$kind"; then
      ok "$name: $n $kind answers are the real ones"
    else
      bad "$name: $kind answers differ" "$(awk 'FILENAME == ARGV[1] { q[FNR] = $0; next }
          FILENAME == ARGV[2] { r[FNR] = $0; next }
          r[FNR] != $0 { gsub(/\t/, " | ", q[FNR]); print "[" q[FNR] "] real: " r[FNR] "  ours: " $0 }' \
          "$T/$kind.in" "$T/real.$name.$kind" "$T/ours.$name.$kind" | head -n 40)"
    fi
  done
done

# The same warnings (bad address literals, domains in two classes, null
# lookup results), process by process; not for the broken tables, whose
# error texts come from different table libraries.
warnings_of() {  # SERVICE: the warning texts of the process serving it, in order
  local pid
  pid=$(pgrep -f -- " -n $1 -t unix" | head -1)
  [ -n "$pid" ] || { echo "(no process for $1)"; return; }
  sed -n "s/^.* postfix\/trivial-rewrite\[$pid\]: warning: //p" "$INST/maillog"
}
for c in "${CONFIGS[@]}"; do
  name=${c%%|*}
  case $name in broken*) continue;; esac
  r=$(warnings_of "real_$name") o=$(warnings_of "ours_$name")
  if [ "$r" == "$o" ]; then ok "$name: the same $(printf '%s' "$r" | grep -c .) warnings as the real daemon"
  else bad "$name: warnings differ" "$(diff <(printf '%s\n' "$r") <(printf '%s\n' "$o") | head -n 20)"; fi
done

# The warnings that Postfix gives for a domain in two classes, ours too.
if grep -q "postfix/trivial-rewrite\[[0-9]*\]: warning: do not list domain valias.test in BOTH mydestination and virtual_alias_domains" "$INST/maillog" &&
   [ "$(grep -c "warning: do not list domain" "$INST/maillog")" -ge 2 ]; then
  ok "the \"do not list domain\" warnings"
else
  bad "the \"do not list domain\" warnings" "$(grep "do not list" "$INST/maillog" | head -5)"
fi

# --- the real smtpd, cleanup and qmgr use ours as the rewrite service.
sed -i "s|^rewrite \(.*\)trivial-rewrite *\$|rewrite \1$REL|" "$INST/master.cf"
if grep -q "^rewrite .*$REL" "$INST/master.cf"; then ok "master.cf: rewrite runs ours"; else bad "master.cf: rewrite runs ours"; fi
real postfix reload >/dev/null 2>&1
sleep 2
id=$(python3 - "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test")
code, msg = s.mail("sender@example.org")
code, msg = s.rcpt("root")
code, msg = s.data(b"Subject: via our trivial-rewrite\r\n\r\nhello\r\n")
print(msg.decode().rsplit(" ", 1)[-1])
s.quit()
EOF
)
if [ -n "$id" ] && wait_for 30 grep -q "$id: to=<root@$MYHOSTNAME>.*status=sent" "$INST/maillog"; then
  ok "a message through the real smtpd, cleanup and qmgr, resolved by ours, is delivered ($id)"
else
  bad "a message resolved by ours is delivered" "$(grep "${id:-nothing}" "$INST/maillog" | tail -5)" "$(tail -5 "$INST/maillog")"
fi
if pgrep -f "$REL -n rewrite" >/dev/null || grep -q "postfix/trivial-rewrite" "$INST/maillog"; then
  ok "our trivial-rewrite served the rewrite service"
else
  bad "our trivial-rewrite served the rewrite service"
fi
if grep -E "postfix/(trivial-rewrite|master)\[[0-9]+\]: (fatal|panic)" "$INST/maillog"; then bad "no fatal errors"; else ok "no fatal errors"; fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
