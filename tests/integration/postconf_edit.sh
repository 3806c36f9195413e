#!/usr/bin/env bash
# postconf editing (-e, -X, -#; -M, -F, -P with e, X, #) on copies of Debian's main.cf and
# master.cf. Each step runs on two identical copies, one edited by our postconf and one by the
# real Postfix (postfix-oracle): the resulting files must be byte-identical and the step's
# record (stdout, stderr, exit status, changes to main.cf and master.cf) the same. Without the
# oracle, each record must match the real Postfix's, stored in tests/data/postconf/edit.txt.
. "$(dirname "$0")/lib.sh.inc"
TRANSCRIPT=$GOLDEN/edit.txt
NEW=$T/edit.txt.new

# compare NAME: ours' record ($T/ours.rec) against the real one's or the golden one.
compare() {
  local name=$1 who
  if [ "$MODE" = oracle ]; then
    [ -n "$UPDATE" ] && cat "$T/real.rec" >>"$NEW"
    check "$name" "$T/real.rec" "$T/ours.rec"
    for who in real ours; do
      { echo "=== main.cf"; cat "$T/$who/main.cf"; echo "=== master.cf"; cat "$T/$who/master.cf"; } >"$T/$who.files"
    done
    check "$name: main.cf and master.cf byte-identical to the real ones" "$T/real.files" "$T/ours.files"
  else
    section "$TRANSCRIPT" "$name" >"$T/golden.rec"
    check "$name" "$T/golden.rec" "$T/ours.rec"
  fi
}

# step NAME ARGS...: run postconf -c DIR ARGS on each copy, record and compare what it did.
step() {
  local name=$1 who f; shift
  for who in $WHOS; do
    for f in main.cf master.cf; do cp "$T/$who/$f" "$T/$who.before.$f"; done
    pc "$who" "$T/$who" "$@"
    {
      echo "@@@@ $name"; echo "\$ postconf $*"; echo "exit: $(cat "$T/$who.rc")"
      # (Postfix reports unused parameters in hash table order: sorted here)
      echo "--- stdout"; cat "$T/$who.out"; echo "--- stderr"; grep -v 'unused parameter' "$T/$who.err"
      grep 'unused parameter' "$T/$who.err" | sort
      for f in main.cf master.cf; do echo "--- $f changes"; diff "$T/$who.before.$f" "$T/$who/$f"; done
    } >"$T/$who.rec"
  done
  compare "$name"
}

# snapshot NAME FILE: the whole FILE as it is now.
snapshot() {
  local who
  for who in $WHOS; do { echo "@@@@ $1"; cat "$T/$who/$2"; } >"$T/$who.rec"; done
  compare "$1"
}

setup() {  # [MAIN [MASTER]]: fresh identical copies for each side
  local who; for who in $WHOS; do fresh "$T/$who" "$@"; done
}
O=$T/ours

# --- main.cf: Debian's default
setup
step "-e replaces existing" -e 'myhostname = x.example' 'relayhost = [r]:25'
assert "-e replaced myhostname in place" grep -qx 'myhostname = x.example' "$O/main.cf"
step "-n after -e replace" -n
step "-e appends a new parameter" -e 'message_size_limit = 1000'
assert "-e appended message_size_limit" test "$(tail -n 1 "$O/main.cf")" = "message_size_limit = 1000"
step "-n after -e append" -n
step "-X removes, ignores nonexistent names" -X biff nonexistent_name message_size_limit
assert "-X removed biff" eval '! grep -q "^biff" "$O/main.cf"'
step "-n after -X" -n
step "-# comments out" -# append_dot_mydomain nonexistent_name
assert "-# commented out append_dot_mydomain" grep -qx '#append_dot_mydomain = no' "$O/main.cf"
step "-n after -#" -n

# --- main.cf with continuation lines and two active assignments of one name
cat >"$T/cont.cf" <<'EOF'
# constructed: continuation lines, duplicates
smtpd_recipient_restrictions =
    permit_mynetworks,
    # indented comment inside

    reject_unauth_destination
mydestination = a
biff = no
mydestination = b,
    c
#mydestination = commented
relayhost = [old]
    continued
myorigin = $mydomain
EOF
setup "$T/cont.cf"
step "-e replaces a parameter with continuation lines" -e 'smtpd_recipient_restrictions = reject'
assert "continuation lines gone, indented comment kept" eval \
  'grep -qx "    # indented comment inside" "$O/main.cf" && ! grep -q "permit_mynetworks\|reject_unauth" "$O/main.cf"'
step "-n after continuation replace" -n
step "-e replaces both active assignments" -e 'mydestination = z'
assert "both mydestination lines replaced, commented one kept" eval \
  'test "$(grep -c "^mydestination = z\$" "$O/main.cf")" = 2 && grep -qx "#mydestination = commented" "$O/main.cf"'
step "-n after duplicate replace" -n
step "-# comments out continuation lines" -# relayhost nonexistent_name
assert "-# commented out the continuation line" grep -qx '#    continued' "$O/main.cf"
step "-X after -#" -X myorigin
step "-n after -X on constructed main.cf" -n
snapshot "resulting constructed main.cf" main.cf

# --- master.cf: Debian's default
setup
step "-Pe smtp/inet" -Pe 'smtp/inet/smtpd_tls_security_level=may'
step "-PX smtp/inet" -PX smtp/inet/smtpd_tls_security_level
step "-MX smtp/inet" -MX smtp/inet
step "-M# pickup/unix" -M# pickup/unix
step "-Me submission/inet" -Me 'submission/inet = submission inet n - y - - smtpd -o syslog_name=postfix/submission'
step "-Fe smtp/unix/chroot=n" -Fe 'smtp/unix/chroot=n'
step "-Pe on a removed service" -Pe 'smtp/inet/smtpd_tls_security_level=may'
step "-M after master.cf edits" -M
step "-P after master.cf edits" -P
snapshot "resulting master.cf" master.cf

# --- name=value edits without -e (Postfix 2.8 and later)
setup
step "name=value without -e" 'myhostname = y.example'
step "-P service/type/name=value without -e" -P 'cleanup/unix/max_use=1'
step "-F service/type/field=value without -e" -F 'smtp/unix/chroot=n'
step "-M service/type=entry without -e" -M 'foo/unix = foo unix - n n - - discard'
step "-n after edits without -e" -n
snapshot "main.cf after edits without -e" main.cf
snapshot "master.cf after edits without -e" master.cf

# --- service patterns: "*" for a name or type, missing trailing parts are "*"
# ("postconf -F '*/*/chroot = n'" is how Debian's admins turn chroot off).
# master.cf also has a submission entry uncommented in part: a "#" line
# and a blank line between its continuation lines stay where they are.
{ cat "$DATA/debian-master.cf"; cat <<'EOF'
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
#  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes

  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
# a comment after the entry
sub2 unix n - n - - smtpd -o a=$myhostname -o b=${service_name}x -o c=$nosuch -v $myhostname
EOF
} >"$T/master-sub.cf"
setup "$DATA/debian-main.cf" "$T/master-sub.cf"
step "-M submission with comments inside" -M submission
step "-F '*/*/chroot = n'" -F '*/*/chroot = n'
assert "every entry has chroot n" eval '! "$MTA_BIN/postconf" -c "$O" -F "*/*/chroot" | grep -v "= n\$"'
step "-Fe '*/unix/wakeup=9'" -Fe '*/unix/wakeup=9'
step "-Pe '*/inet/...'" -Pe '*/inet/smtpd_tls_security_level=may'
step "-PX '*/*/syslog_name'" -PX '*/*/syslog_name'
step "-Fe on submission: written after the comments below it" -Fe 'submission/inet/chroot=y'
step "-M# 'relay/*'" -M# 'relay/*'
step "-MX '*/inet'" -MX '*/inet'
step "-Me 'pickup/*' replaces in place" -Me 'pickup/*=pickup fifo n - n 60 1 pickup'
step "-Fe of no service warns" -Fe 'nosuch/*/chroot=y'
snapshot "master.cf after pattern edits" master.cf
setup "$DATA/debian-main.cf" "$T/master-sub.cf"
step "-M with patterns, one matching nothing" -M 'smtp/*' smtp/inet nosuch
step "-F '*/*/chroot'" -F '*/*/chroot'
step "-F smtp//chroot (empty parts do not count)" -F smtp//chroot
step "-P '*/*/syslog_name'" -P '*/*/syslog_name'
step "-Mx: -o values expanded for their service" -Mx relay sub2
step "-Px" -Px
step "-Fhx" -Fhx sub2/unix/command

# --- errors in patterns and in option combinations: nothing changes
step "'*' inside a name" -F 'smtp*/unix/chroot=y'
step "-Fe of field '*'" -Fe 'smtp/inet/*=y'
step "-Pe of parameter '*'" -Pe '*/*/*=y'
step "-F of an unknown field" -F smtp/inet/nosuch
step "-M of a pattern starting with /" -M /smtp
step "-Fe of an invalid value" -F 'smtp/inet/chroot=maybe'
step "-Pe of a value with blanks" -Pe 'smtp/inet/x=a b'
step "-MX of a comment" -MX '#smtp/inet'
step "-e with -X" -e -X biff
step "-M with -F" -M -F
step "-M with -n" -M -n
step "-X of name=value" -X 'biff=no'
step "-b with -t" -b -t
step "-M with -h" -M -h

# --- errors: nothing changes, exit status 1
setup
step "-e 'bad name=1'" -e 'bad name=1'
expect_err "-e 'bad name=1' is fatal" 1 "fatal: missing '=' after attribute name: \"bad name=1\""
step "-e without argument" -e
expect_err "-e without argument is fatal" 1 "fatal: -e requires name=value argument"
for who in $WHOS; do mkdir "$T/$who/main.cf.tmp" "$T/$who/master.cf.tmp"; done
step "-e with unwritable main.cf.tmp" -e 'biff = yes'
expect_err "-e with unwritable main.cf.tmp is fatal" 1 "fatal: open @DIR@/main.cf.tmp: Is a directory"
assert "main.cf unchanged after failed -e" cmp -s "$DATA/debian-main.cf" "$O/main.cf"
step "-M# with unwritable master.cf.tmp" -M# pickup/unix
expect_err "-M# with unwritable master.cf.tmp is fatal" 1 "fatal: open @DIR@/master.cf.tmp: Is a directory"
assert "master.cf unchanged after failed -M#" cmp -s "$DATA/debian-master.cf" "$O/master.cf"

if [ -n "$UPDATE" ]; then mkdir -p "$GOLDEN" && cp "$NEW" "$TRANSCRIPT" && echo "# wrote $TRANSCRIPT"; fi
finish
