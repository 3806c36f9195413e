#!/usr/bin/env bash
# pipe(8): our delivery agent against the real Postfix 3.7 pipe, on the
# same queue files, inside a real Postfix instance (postfix-oracle).
#
# The instance's master.cf has a set of pipe transports (below); they run
# first with the real pipe, then with ours, with the same attributes, on
# queue files written with lib/queue (queue_tool) and routed by
# transport_maps (one domain per transport).  Everything else is the real
# Postfix: its qmgr hands our agent the requests, our agent reports to its
# bounce, defer and trace services.  Compared byte for byte (the date of the
# From_ line and queue IDs aside): what each command got (argv, user,
# group, working directory, environment, standard input) and the pipe(8)
# log lines.  Scenarios:
#   capfr    flags=FRDOX, every macro ($name, ${name}, $$, a braced
#            argument), client and SASL attributes from the queue file
#   capdot   flags=B.>hqu with eol=\r\n and a quoted sender
#   capmulti a message to three recipients: ${recipient} and x${user}y
#            repeated per recipient, null_sender= (empty)
#   capnull  the null sender as MAILER-DAEMON, directory=, user=NAME:GROUP
#   output   exit 0 with output: "delivered via output service (text)"
#   ex75 ex67 exdsn exsig   exit 75 defers, 67 bounces with the output,
#            "4.7.1 text" output, death by a signal
#   slow     slow_time_limit = 2s: "Command time limit exceeded"
#   noexec badmac big ddmulti loop   a missing command, an unknown macro,
#            size=, flag D with two recipients, a Delivered-To: loop
#   badroot badattr   user=root and an unknown attribute: fatal
#   mdrop    Debian's maildrop, "-d ${user}", into $HOME/Maildir
#   dlda     dovecot-lda -f ${sender} -a ${recipient} with a config in the
#            temp dir (mail_location under it)
# Needs root and the oracle; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
PIPE=$MTA_BIN/pipe
QT=$MTA_BIN/queue_tool
[ -x "$PIPE" ] && [ -x "$QT" ] || { echo "# skip: $PIPE or $QT is not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (a test user, a real instance)"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi

T=$(mktemp -d /tmp/pipe_delivery.XXXXXX) || exit 1
chmod 755 "$T"
INST=$T/inst Q=$T/inst/queue LOG=$T/inst/maillog CAP=$T/cap
U=pdu$$ G=pdg$$
STARTED=0
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
stop_instance() {
  if [ $STARTED = 1 ]; then pf postfix -c "$INST" stop >/dev/null 2>&1; STARTED=0; fi
}
cleanup() {
  stop_instance
  userdel "$U" >/dev/null 2>&1
  groupdel "$G" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && return; rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same_files() {  # NAME EXPECTED_FILE ACTUAL_FILE
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -a -u "$2" "$3" | head -n 40 | sed 's/^/    /')"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# ---------------------------------------------------------------- setup
groupadd "$G" || { echo "# skip: groupadd failed"; exit 77; }
useradd -M -d "$T/home" -s /bin/sh "$U" || { echo "# skip: useradd failed"; exit 77; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { bad "instance setup" "$(tail -5 "$T/instance.log")"; exit 1; }
cp "$INST/master.cf" "$T/master.cf.base"
DAEMONS=$("$ORACLE" path)/usr/lib/postfix/sbin
OURS_REL=$(realpath --relative-to="$DAEMONS" "$PIPE")
pf postconf -c "$INST" -e "transport_maps = texthash:$T/transport" "recipient_delimiter = +" \
  "capfr_destination_recipient_limit = 1" "capdot_destination_recipient_limit = 1" \
  "loop_destination_recipient_limit = 1" "mdrop_destination_recipient_limit = 1" \
  "dlda_destination_recipient_limit = 1" "slow_time_limit = 2s" "command_time_limit = 20s" >/dev/null

# The capture command: its arguments, identity, directory, environment and input.
cat >"$T/cap.sh" <<EOF
#!/bin/sh
f=$CAP/\$1
shift
{ echo "argc=\$#"; for a in "\$@"; do echo "arg=[\$a]"; done
  echo "user=\$(id -un) group=\$(id -gn) groups=\$(id -Gn) pwd=\$(pwd)"; env | grep -v '^PWD=' | sort; echo ---; cat; } >"\$f"
EOF
chmod 755 "$T/cap.sh"

# Dovecot's LDA: a configuration of its own, mailboxes under the temp dir.
mkdir -p "$T/dovecot"
cat >"$T/dovecot/dovecot.conf" <<EOF
mail_location = maildir:$T/dovecot/%u/Maildir
log_path = $T/dovecot/dovecot.log
ssl = no
protocols =
userdb {
  driver = static
  args = uid=$U gid=$U home=$T/dovecot/%u
}
passdb {
  driver = static
  args = nopassword=y
}
EOF
chmod 644 "$T/dovecot/dovecot.conf"
chown "$U:" "$T/dovecot"

cat >"$T/transport" <<EOF
example.org discard:
capfr.test capfr:Next.Hop.Example
capdot.test capdot:NH.Example.COM
capmulti.test capmulti:
capnull.test capnull:
output.test output:
ex75.test ex75:
ex67.test ex67:
exdsn.test exdsn:
exsig.test exsig:
slow.test slow:
noexec.test noexec:
badmac.test badmac:
big.test big:
ddmulti.test ddmulti:
loop.test loop:
badroot.test badroot:
badattr.test badattr:
mdrop.test mdrop:
dlda.test dlda:
EOF

# The pipe transports, with CMD as the program (the real "pipe" or ours).
pipe_entries() {  # CMD
  local c="unix - n n - - $1"
  cat <<EOF
capfr $c flags=FRDOX user=$U argv=$T/cap.sh capfr \${sender} \${recipient} \$nexthop \${user} \${extension}
  \${mailbox} \${domain} \${size} \${queue_id} \${original_recipient} \$(client_address) \${client_helo}
  \${client_hostname} \${client_port} \${client_protocol} \${sasl_method} \${sasl_sender} \${sasl_username}
  \$\$x { two words } \${recipient}-\${user}
capdot $c flags=B.>hqu user=$U eol=\\r\\n argv=$T/cap.sh capdot \${sender} \${recipient} \${nexthop}
  \${user} \${domain} \${original_recipient} \${extension} \${mailbox}
capmulti $c user=$U null_sender= argv=$T/cap.sh capmulti -f \$sender -- \${recipient} x\${user}y \${size}
capnull $c flags=R user=$U:$G directory=$T argv=$T/cap.sh capnull -f \${sender}
output $c user=$U argv=/bin/sh -c { echo hello output; echo second line; exit 0 }
ex75 $c user=$U argv=/bin/sh -c { echo try later; exit 75 }
ex67 $c user=$U argv=/bin/sh -c { echo no such person; exit 67 }
exdsn $c user=$U argv=/bin/sh -c { echo 4.7.1 come back later; exit 1 }
exsig $c user=$U argv=/bin/sh -c { echo dying; kill -9 \$\$\$\$ }
slow $c user=$U argv=/bin/sleep 30
noexec $c user=$U argv=$T/no/such/command \${recipient}
badmac $c user=$U argv=/bin/echo \${recipient} \${no_such_macro}
big $c user=$U size=100 argv=/bin/true
ddmulti $c flags=D user=$U argv=/bin/true
loop $c flags=D user=$U argv=/bin/true
badroot $c user=root argv=/bin/true
badattr $c user=$U colour=blue argv=/bin/true
mdrop $c flags=DRhu user=$U argv=/usr/bin/maildrop -d \${user}
dlda $c flags=DRXhu user=$U argv=/usr/lib/dovecot/dovecot-lda -c $T/dovecot/dovecot.conf -f \${sender} -a \${recipient}
EOF
}

# A fixed message; "From " and "." lines for the > and . flags.
message() {  # SUBJECT [EXTRA HEADER LINE]
  local extra=${2:-}
  [ -n "$extra" ] && extra="$extra"$'\n'
  printf 'Subject: %s\nFrom: Sender <s@example.org>\nDate: Sat, 1 Nov 2025 10:00:00 +0000\nMessage-ID: <%s@example.org>\n%s\nFrom the start\n.dot line\n..two dots\n>From x\nlast line' \
    "$1" "$1" "$extra"
}
# inject SENDER RCPT... < message: a queue file in incoming/.
inject() {
  local sender=$1 out id file r args=(); shift
  for r in "$@"; do args+=(-r "$r,$r"); done
  out=$("$QT" write "$T/stage" -s "$sender" -a rewrite_context=remote -a log_client_address=192.0.2.7 \
    -a log_client_name=client.example -a log_client_port=4321 -a log_helo_name=helo.example \
    -a log_protocol_name=ESMTPSA -a sasl_method=PLAIN -a sasl_username=alice -a sasl_sender=alice@example.org \
    "${args[@]}") || return 1
  read -r id file <<<"$out"
  chown postfix:postfix "$file" && mv "$file" "$Q/incoming/$id"
  echo "$id" >>"${ID_LIST:-$T/ids}"
}
kick() { pf postkick -c "$INST" public qmgr I >/dev/null 2>&1; }
# Settled: every message has a status line, and the two broken transports
# have said why they died (their messages stay in qmgr's hands).
settled() {
  local id
  while read -r id; do grep -q "$id: to=<" "$LOG" || return 1; done <"$T/ids"
  [ "$(grep -cE 'postfix/pipe\[[0-9]+\]: fatal: (user=|unknown attribute)' "$LOG")" -ge 2 ] &&
    [ -z "$(find "$Q/incoming" -type f 2>/dev/null)" ]
}

inject_all() {
  message capfr | inject s@example.org "Some.User+Box@capfr.test"
  message capdot | inject 'odd.@Example.ORG' "Mixed.Case+EXT@CapDot.test"
  message capmulti | inject "" one+a@capmulti.test Two@capmulti.test +three@capmulti.test
  message capnull | inject "" nobody@capnull.test
  message output | inject s@example.org x@output.test
  message ex75 | inject s@example.org x@ex75.test
  message ex67 | inject s@example.org x@ex67.test
  message exdsn | inject s@example.org x@exdsn.test
  message exsig | inject s@example.org x@exsig.test
  message slow | inject s@example.org x@slow.test
  message noexec | inject s@example.org x@noexec.test
  message badmac | inject s@example.org x@badmac.test
  message big | inject s@example.org x@big.test
  message ddmulti | inject s@example.org a@ddmulti.test b@ddmulti.test
  message loop "Delivered-To: LOOPER@loop.test" | inject s@example.org looper@loop.test
  message badroot | ID_LIST=$T/ids.fatal inject s@example.org x@badroot.test
  message badattr | ID_LIST=$T/ids.fatal inject s@example.org x@badattr.test
  message maildrop | inject s@example.org "$U+box@mdrop.test"
  message lda | inject s@example.org "$U@dlda.test"
}

# The pipe(8) log lines, normalized and sorted.
pipe_log() {
  grep -E 'postfix/pipe\[' "$LOG" | sed -E -e 's/^.*postfix\/pipe\[[0-9]+\]: //' \
    -e 's/^[0-9A-F]+: /QID: /' -e 's/delay=[0-9.]+, delays=[0-9.\/]+/delay=D, delays=D/' | sort
}
normalize() {
  sed -E -e 's/^(From [^ ]+  ).*/\1DATE/' -e 's/[0-9A-F]{10,12}/QID/g'
}

reset_state() {
  pf postsuper -c "$INST" -d ALL >/dev/null 2>&1  # nothing left over from the other agent
  rm -rf "$CAP" "$T/home" "$T/dovecot/$U" "$T/ids" "$T/ids.fatal" "$T/stage"
  mkdir -p "$CAP" "$T/stage/incoming" "$T/home" && chmod 1777 "$CAP"
  chown "$U:" "$T/home"
  # maildrop delivers to $HOME/Maildir/ (a .mailfilter of the user's own).
  printf 'DEFAULT="$HOME/Maildir/"\n' >"$T/home/.mailfilter"
  chown "$U:" "$T/home/.mailfilter" && chmod 600 "$T/home/.mailfilter"
  runuser -u "$U" -- maildirmake "$T/home/Maildir" 2>/dev/null || { mkdir -p "$T/home/Maildir"/{new,cur,tmp}; chown -R "$U:" "$T/home/Maildir"; }
  : >"$T/ids"
}

run_agent() {  # AGENT(real|ours)
  local agent=$1 cmd=pipe out=$T/out/$1 f
  [ "$agent" = ours ] && cmd=$OURS_REL
  { cat "$T/master.cf.base"; pipe_entries "$cmd"; } >"$INST/master.cf"
  reset_state
  : >"$LOG"
  pf postfix -c "$INST" start >"$T/start.log" 2>&1 && STARTED=1
  if [ $STARTED = 0 ]; then bad "$agent: the instance starts" "$(tail -3 "$T/start.log")"; return 1; fi
  inject_all
  kick
  if ! wait_for 90 settled; then
    bad "$agent: every message is handled" "$(tail -n 8 "$LOG")"
  fi
  stop_instance
  rm -rf "$out"; mkdir -p "$out"
  pipe_log >"$out/log"
  for f in "$CAP"/*; do [ -f "$f" ] && normalize <"$f" >"$out/cap.${f##*/}"; done
  for f in "$T/home/Maildir/new"/*; do [ -f "$f" ] && { stat -c '%U %a' "$f"; normalize <"$f"; } >"$out/maildrop"; done
  for f in "$T/dovecot/$U/Maildir/new"/*; do [ -f "$f" ] && { stat -c '%U' "$f"; normalize <"$f"; } >"$out/lda"; done
  return 0
}

compare() {
  local r=$T/out/real o=$T/out/ours f
  same_files "the same pipe(8) log lines" "$r/log" "$o/log"
  for f in $(cd "$r" && ls); do
    [ "$f" = log ] && continue
    same_files "$f as with the real pipe" "$r/$f" "$o/$f"
  done
  for f in $(cd "$o" && ls); do [ -f "$r/$f" ] || bad "$f: only ours made it"; done
}

expect_log() {  # NAME PATTERN: a line of our agent's log matches
  if grep -qE -- "$2" "$T/out/ours/log"; then ok "$1"; else bad "$1" "no log line matches: $2"; fi
}

run_agent real && run_agent ours && compare

# What the comparisons above mean, spelled out for our agent.
expect_log "delivered, relay=<transport>" 'QID: to=<Some.User\+Box@capfr.test>, relay=capfr, delay=D, delays=D, dsn=2.0.0, status=sent \(delivered via capfr service\)'
expect_log "output after success" 'to=<x@output.test>, relay=output, .*status=sent \(delivered via output service \(hello output second line\)\)'
expect_log "exit 75 defers" 'to=<x@ex75.test>, .*dsn=4.3.0, status=deferred \(temporary failure. Command output: try later \)'
expect_log "exit 67 bounces with the output" 'to=<x@ex67.test>, .*dsn=5.1.1, status=bounced \(user unknown. Command output: no such person \)'
expect_log "a DSN code in the output wins" 'to=<x@exdsn.test>, .*dsn=4.7.1, status=deferred \(come back later \)'
expect_log "a signal defers" 'to=<x@exsig.test>, .*dsn=4.3.0, status=deferred \(Command died with signal 9: "/bin/sh". Command output: dying \)'
expect_log "the time limit" 'to=<x@slow.test>, .*dsn=5.3.0, status=bounced \(Command time limit exceeded: "/bin/sleep"\)'
expect_log "a missing command defers" 'to=<x@noexec.test>, .*dsn=4.3.0, status=deferred \(temporary failure. Command output: pipe: fatal: pipe_command: execvp .*: No such file or directory \)'
expect_log "an unknown macro" 'warning: file .*/master.cf: service badmac: unknown macro name: "no_such_macro"'
expect_log "size=" 'to=<x@big.test>, .*dsn=5.2.3, status=bounced \(message too large\)'
expect_log "flag D wants one recipient" "warning: pipe flag \`D' requires ddmulti_destination_recipient_limit = 1"
expect_log "Delivered-To: loop" 'to=<looper@loop.test>, .*dsn=5.4.6, status=bounced \(mail forwarding loop for looper@loop.test\)'
expect_log "user=root is refused" 'fatal: user= command-line attribute specifies root privileges'
expect_log "an unknown attribute is fatal" 'fatal: unknown attribute name: colour=blue'
expect_log "maildrop" "to=<$U\\+box@mdrop.test>, relay=mdrop, .*status=sent \\(delivered via mdrop service"
expect_log "dovecot-lda" "to=<$U@dlda.test>, relay=dlda, .*status=sent \\(delivered via dlda service\\)"
if grep -q "^user=$U group=$U " "$T/out/ours/cap.capfr" 2>/dev/null; then
  ok "the command ran as user="
else
  bad "the command ran as user=" "$(grep '^user=' "$T/out/ours/cap.capfr" 2>&1)"
fi
if grep -q "^user=$U group=$G groups=$G pwd=$T$" "$T/out/ours/cap.capnull" 2>/dev/null; then
  ok "user=NAME:GROUP and directory="
else
  bad "user=NAME:GROUP and directory=" "$(grep '^user=' "$T/out/ours/cap.capnull" 2>&1)"
fi
if grep -q '^Subject: maildrop' "$T/out/ours/maildrop" 2>/dev/null && grep -q '^Subject: lda' "$T/out/ours/lda" 2>/dev/null; then
  ok "maildrop and dovecot-lda stored the messages"
else
  bad "maildrop and dovecot-lda stored the messages" "$(ls "$T/out/ours")"
fi

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
