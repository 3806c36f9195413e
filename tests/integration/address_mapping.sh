#!/usr/bin/env bash
# Address mapping in cleanup (M5), ours against the real Postfix 3.7 on the
# same input: canonical_maps (the issue's "alice alice.johnson"), sender
# and recipient canonical maps, masquerade_domains with an exception,
# virtual_alias_maps (the issue's "info@example.com alice", a list, a
# catch-all, recursion, an address extension), sender_bcc_maps, header
# addresses, and the "expanded" DSN trace record of a NOTIFY=SUCCESS alias.
#
# Two instances, ours and (when postfix-oracle is there) a real Postfix,
# get the same main.cf settings and tables, without qmgr, so that every
# message stays in incoming/ as cleanup wrote it.  The same SMTP
# submissions go to both; the real postcat then prints each queue file's
# envelope and headers, and the address lines must be identical.  Without
# the oracle, the expected lines below (made with the real Postfix) are
# checked on our own output.  Needs root (the instance drops privileges).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite bounce queue_tool; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
HAVE_REAL=0
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >/dev/null 2>&1; then HAVE_REAL=1; fi

T=$(mktemp -d /tmp/address_mapping.XXXXXX) || exit 1
chmod 755 "$T"
OURS=$T/ours REAL=$T/real TAB=$T/tables
OURS_UP=0 REAL_UP=0
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
cleanup() {
  [ $OURS_UP = 1 ] && "$B/postfix" -c "$OURS" stop >/dev/null 2>&1
  [ $REAL_UP = 1 ] && pf postfix -c "$REAL" stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

mkdir -p "$TAB" "$OURS"
printf '%s\n' 'alice alice.johnson' '@old.example @new.example' > "$TAB/canonical"
printf '%s\n' 'carol@example.org caroline@example.org' > "$TAB/sender_canonical"
printf '%s\n' 'dave@example.org david@example.org' > "$TAB/recipient_canonical"
printf '%s\n' 'info@example.com alice' 'team@example.com info@example.com, bob@example.net' \
  '@catch.example postmaster' 'self@example.com self@example.com, copy@example.net' \
  'loop1@example.com loop2@example.com' 'loop2@example.com loop1@example.com' > "$TAB/virtual"
printf '%s\n' 'boss@example.org archive@example.org' > "$TAB/sender_bcc"
# An expansion bomb: one alias for 100,000 addresses.
python3 -c 'print("bomb@example.com " + ", ".join("r%d@example.net" % i for i in range(100000)))' >> "$TAB/virtual"
SETTINGS=(
  "myhostname = mx.example.org" "mydomain = example.org" "myorigin = \$mydomain"
  "mydestination = \$myhostname, \$mydomain, localhost" "recipient_delimiter = +"
  "canonical_maps = texthash:$TAB/canonical" "sender_canonical_maps = texthash:$TAB/sender_canonical"
  "recipient_canonical_maps = texthash:$TAB/recipient_canonical"
  "virtual_alias_maps = texthash:$TAB/virtual" "virtual_alias_domains = example.com, catch.example"
  "virtual_alias_recursion_limit = 5" "local_recipient_maps =" "default_transport = smtp" "relay_transport = relay"
  "sender_bcc_maps = texthash:$TAB/sender_bcc"
  "masquerade_domains = !keep.gogu.ro, gogu.ro" "masquerade_exceptions = root"
)

# Our instance: Debian's files, paths inside $OURS, no qmgr and no smtpd.
cp "$MTA_SOURCE_DIR/conf/master.cf" "$MTA_SOURCE_DIR/conf/main.cf" "$OURS/"
"$B/postconf" -c "$OURS" -e "queue_directory = $OURS/queue" "data_directory = $OURS/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $OURS/maillog" "maillog_file_prefixes = $T" \
  "inet_interfaces = loopback-only" "inet_protocols = ipv4" "alias_maps =" "alias_database =" "${SETTINGS[@]}"
"$B/postconf" -c "$OURS" -MX smtp/inet
"$B/postconf" -c "$OURS" -MX qmgr/unix
# Ports nobody listens on now (a port picked from the PID could be in the
# ephemeral range, taken by some client's connection).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_OURS=$(free_port) P_REAL=$(free_port)
while [ "$P_REAL" = "$P_OURS" ]; do P_REAL=$(free_port); done
printf '127.0.0.1:%s inet n - n - - smtpd\n' "$P_OURS" >> "$OURS/master.cf"
mkdir -p "$OURS/queue"
"$B/postfix" -c "$OURS" start >"$T/start.out" 2>&1 && OURS_UP=1 || { bad "our instance starts" "$(cat "$T/start.out")"; exit 1; }

if [ $HAVE_REAL = 1 ]; then
  timeout 120 "$ORACLE" instance "$REAL" "$P_REAL" >/dev/null 2>&1 || { bad "real instance set-up"; HAVE_REAL=0; }
fi
if [ $HAVE_REAL = 1 ]; then
  pf postconf -c "$REAL" -e "alias_maps =" "alias_database =" "${SETTINGS[@]}" >/dev/null
  pf postconf -c "$REAL" -MX qmgr/unix >/dev/null
  pf postfix -c "$REAL" start >/dev/null 2>&1 && REAL_UP=1 || { bad "the real instance starts"; HAVE_REAL=0; }
fi

# smtp PORT [-N NOTIFY] SENDER RCPT...: the message on stdin over SMTP (smtplib).
cat > "$T/smtp.py" <<'PY'
import smtplib, sys
args = sys.argv[1:]
port = int(args.pop(0))
notify = None
if args[0] == "-N":
    notify = args[1]; args = args[2:]
sender, rcpts = args[0], args[1:]
msg = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.ehlo("client.example")
    s.mail(sender)
    for r in rcpts:
        code, text = s.rcpt(r, ["NOTIFY=" + notify] if notify else [])
        if code != 250: sys.exit("RCPT %s: %d %s" % (r, code, text))
    code, text = s.data(msg)
    if code != 250: sys.exit("DATA: %d %s" % (code, text))
PY
smtp() { timeout 60 python3 "$T/smtp.py" "$@"; }
# submit NAME ARGS...: the same message (stdin of the case) through each
# instance's smtpd; waits until its queue file is in incoming/.
CASES=()
submit() {
  local name=$1; shift
  local msg; msg=$(cat)
  CASES+=("$name")
  printf '%s\n' "$msg" | smtp "$P_OURS" "$@" || bad "$name: submitted to ours"
  wait_incoming "$OURS" ${#CASES[@]}
  mv_new "$OURS" "$name"
  if [ $HAVE_REAL = 1 ]; then
    printf '%s\n' "$msg" | smtp "$P_REAL" "$@" || bad "$name: submitted to the real Postfix"
    wait_incoming "$REAL" ${#CASES[@]}
    mv_new "$REAL" "$name"
  fi
}
# wait_incoming DIR N: N queue files in DIR's incoming/ (bounded wait).
wait_incoming() {
  local i n
  for i in $(seq 100); do
    n=$(find "$1/queue/incoming" -type f 2>/dev/null | wc -l)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
# mv_new DIR NAME: remember which queue file the case made.
mv_new() {
  local f
  for f in $(find "$1/queue/incoming" -type f | sort); do
    grep -qxF "$f" "$1/seen" 2>/dev/null && continue
    echo "$f" >> "$1/seen"; echo "$f" > "$1/case.$2"
  done
}

submit canonical alice alice@example.org <<'EOF'
From: Alice <alice>
To: alice+news@example.org, someone@old.example
Subject: canonical

body
EOF
submit sender_recipient_canonical carol@example.org dave@example.org carol@example.org <<'EOF'
From: carol@example.org
To: dave@example.org
Subject: own maps

body
EOF
submit masquerade user@dorel.gogu.ro root@dorel.gogu.ro user@keep.gogu.ro <<'EOF'
From: user@dorel.gogu.ro
Cc: root@dorel.gogu.ro, other@sub.keep.gogu.ro, x@deep.dorel.gogu.ro
Subject: masquerade

body
EOF
submit virtual alice info@example.com team@example.com anyone@catch.example self@example.com \
  info+tag@example.com <<'EOF'
Subject: virtual

body
EOF
submit bcc boss@example.org someone@example.net <<'EOF'
Subject: bcc

body
EOF
submit notify_success -N SUCCESS,DELAY alice info@example.com <<'EOF'
Subject: notify

body
EOF
# The bomb stops at virtual_alias_expansion_limit: refused for now, and
# quickly (the real Postfix makes each of the 100,000 addresses canonical
# first, which takes minutes, so only ours is asked).
start_s=$(date +%s)
printf 'Subject: bomb\n\nbody\n' | smtp "$P_OURS" alice bomb@example.com > "$T/bomb.reply.ours" 2>&1
took=$(( $(date +%s) - start_s ))
if [ "$(cat "$T/bomb.reply.ours")" = "DATA: 451 b'4.6.0 Alias expansion error'" ] && [ "$took" -lt 20 ]; then
  ok "an alias for 100,000 addresses is refused for now, in ${took}s"
else bad "an expansion bomb" "ours (${took}s): $(cat "$T/bomb.reply.ours")"; fi
grep -q 'warning: [0-9A-F]*: unreasonable virtual_alias_maps map expansion size for bomb@example.com -- message not accepted, try again later' "$OURS/maillog" &&
  ok "the expansion bomb is logged as Postfix logs it" ||
  bad "the expansion bomb is logged" "$(grep -i bomb "$OURS/maillog" | tail -2)"

# An alias loop: both refuse the message for now, with the same reply.
printf 'Subject: loop\n\nbody\n' | smtp "$P_OURS" alice loop1@example.com > "$T/loop.reply.ours" 2>&1
if [ $HAVE_REAL = 1 ]; then
  printf 'Subject: loop\n\nbody\n' | smtp "$P_REAL" alice loop1@example.com > "$T/loop.reply.real" 2>&1
else
  echo "DATA: 451 b'4.6.0 Alias expansion error'" > "$T/loop.reply.real"
fi
if grep -q . "$T/loop.reply.real" && cmp -s "$T/loop.reply.ours" "$T/loop.reply.real"; then
  ok "an alias loop is refused for now: $(cat "$T/loop.reply.ours")"
else bad "an alias loop: replies differ" "real: $(cat "$T/loop.reply.real")" "ours: $(cat "$T/loop.reply.ours")"; fi

# The address lines of a queue file, as the real postcat prints them.
show() {
  local f
  f=$(cat "$1/case.$2" 2>/dev/null) || { echo "(no queue file)"; return; }
  if [ $HAVE_REAL = 1 ]; then
    timeout 30 "$ORACLE" run postcat -e -h "$f" 2>/dev/null
  else
    timeout 30 "$B/queue_tool" records "$f" 2>/dev/null
  fi | awk '/^[ \t]/ && n { line[n] = line[n] " " substr($0, 2); next } { line[++n] = $0 }
            END { for (i = 1; i <= n; i++) print line[i] }' |
    grep -E '^(sender|original_recipient|recipient|done_recipient|dsn_orig_rcpt|dsn_notify_flags): |^(From|To|Cc|Sender|Reply-To): '
}
if [ $HAVE_REAL = 1 ]; then
  for c in "${CASES[@]}"; do
    show "$OURS" "$c" > "$T/ours.$c"; show "$REAL" "$c" > "$T/real.$c"
    if [ -s "$T/real.$c" ] && cmp -s "$T/ours.$c" "$T/real.$c"; then ok "$c: the same addresses as the real Postfix"
    else bad "$c: addresses differ from the real Postfix" "$(diff -u "$T/real.$c" "$T/ours.$c" | tail -n +3 | head -30)"; fi
  done
  # The "expanded" trace record of the NOTIFY=SUCCESS alias.
  for who in OURS REAL; do
    dir=${!who}; f=$(cat "$dir/case.notify_success"); id=$(basename "$f")
    sed -n 's/^\(action\|status\|reason\|recipient\|orig_rcpt\)=/&/p' "$dir/queue/trace/"*"/$id" "$dir/queue/trace/$id" 2>/dev/null |
      sort > "$T/trace.$who"
  done
  if [ -s "$T/trace.REAL" ] && cmp -s "$T/trace.OURS" "$T/trace.REAL"; then ok "NOTIFY=SUCCESS alias: the same trace record"
  else bad "NOTIFY=SUCCESS alias: trace records differ" "$(diff -u "$T/trace.REAL" "$T/trace.OURS" | tail -n +3)"; fi
  # The warnings of the alias loop.
  grep -o 'warning: [0-9A-F]*: unreasonable virtual_alias_maps map nesting for loop1@example.com.*' "$OURS/maillog" |
    sed 's/: [0-9A-F]*: /: QID: /' | head -1 > "$T/loop.ours"
  grep -o 'warning: [0-9A-F]*: unreasonable virtual_alias_maps map nesting for loop1@example.com.*' "$REAL/maillog" |
    sed 's/: [0-9A-F]*: /: QID: /' | head -1 > "$T/loop.real"
  if [ -s "$T/loop.real" ] && cmp -s "$T/loop.ours" "$T/loop.real"; then ok "an alias loop: the same warning"
  else bad "an alias loop: warnings differ" "real: $(cat "$T/loop.real")" "ours: $(cat "$T/loop.ours")"; fi
else
  echo "# no postfix-oracle: checking the expected addresses"
  show "$OURS" virtual > "$T/ours.virtual"
  for want in 'recipient: alice@example.org' 'recipient: bob@example.net' 'recipient: postmaster@example.org' \
      'recipient: self@example.com' 'recipient: copy@example.net' 'recipient: alice+tag@example.org'; do
    grep -qxF "$want" "$T/ours.virtual" && ok "virtual: $want" || bad "virtual: $want" "$(cat "$T/ours.virtual")"
  done
  show "$OURS" canonical > "$T/ours.canonical"
  for want in 'sender: alice.johnson@example.org' 'recipient: alice.johnson@example.org' \
      'From: Alice <alice.johnson@example.org>' 'To: alice.johnson+news@example.org, someone@new.example'; do
    grep -qxF "$want" "$T/ours.canonical" && ok "canonical: $want" || bad "canonical: $want" "$(cat "$T/ours.canonical")"
  done
  show "$OURS" masquerade > "$T/ours.masquerade"
  for want in 'sender: user@gogu.ro' 'recipient: root@dorel.gogu.ro' \
      'Cc: root@dorel.gogu.ro, other@sub.keep.gogu.ro, x@gogu.ro'; do
    grep -qxF "$want" "$T/ours.masquerade" && ok "masquerade: $want" || bad "masquerade: $want" "$(cat "$T/ours.masquerade")"
  done
fi

# Header rewriting by client: a client outside local_header_rewrite_clients
# gets its header addresses completed with remote_header_rewrite_domain
# (and mapped), or left alone when that is empty.
reconfigure() {
  "$B/postconf" -c "$OURS" -e "$@" && "$B/postfix" -c "$OURS" reload >/dev/null 2>&1
  if [ $HAVE_REAL = 1 ]; then pf postconf -c "$REAL" -e "$@" && pf postfix -c "$REAL" reload >/dev/null 2>&1; fi
  sleep 2
}
reconfigure "local_header_rewrite_clients =" "remote_header_rewrite_domain = domain.invalid"
submit remote_context carol@example.org dave@example.org <<'EOF'
From: carol
To: alice, someone@old.example
Cc: x@dorel.gogu.ro
Subject: remote client

body
EOF
reconfigure "remote_header_rewrite_domain ="
submit remote_untouched carol@example.org dave@example.org <<'EOF'
From: carol
To: alice, someone@old.example
Cc: x@dorel.gogu.ro
Subject: remote client, no rewriting

body
EOF
for c in remote_context remote_untouched; do
  show "$OURS" "$c" > "$T/ours.$c"
  if [ $HAVE_REAL = 1 ]; then show "$REAL" "$c" > "$T/real.$c"
  elif [ $c = remote_context ]; then
    printf '%s\n' 'sender: caroline@example.org' 'original_recipient: dave@example.org' 'recipient: david@example.org' \
      'From: carol@domain.invalid' 'To: alice@domain.invalid, someone@new.example' 'Cc: x@gogu.ro' > "$T/real.$c"
  else
    printf '%s\n' 'sender: caroline@example.org' 'original_recipient: dave@example.org' 'recipient: david@example.org' \
      'From: carol' 'To: alice, someone@old.example' 'Cc: x@dorel.gogu.ro' > "$T/real.$c"
  fi
  if [ -s "$T/real.$c" ] && cmp -s "$T/ours.$c" "$T/real.$c"; then ok "$c: the same addresses as the real Postfix"
  else bad "$c: addresses differ" "$(diff -u "$T/real.$c" "$T/ours.$c" | tail -n +3 | head -30)"; fi
done

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
