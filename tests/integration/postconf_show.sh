#!/usr/bin/env bash
# postconf's reports (-n -x -d -f -M -F -P -h -H ...) on Debian's main.cf and master.cf, and
# its errors on broken ones, compared with the real Postfix 3.7 (postfix-oracle) or, without
# it, with the real Postfix's outputs stored under tests/data/postconf/:
#   show/NAME.out  the normalized stdout of a case, or
#   show/NAME.diff "# base: OTHER" and then `diff OTHER NAME` of the stdouts (big dumps);
#                  the base of "d" is tests/data/postfix-3.7-postconf-d.txt, "names" its names
#   show.txt       records of exit status and stderr (and stdout of the error cases)
# -d and -dx show host-dependent defaults: golden files hold @MYHOSTNAME@, @MYDOMAIN@ and
# @MYNETWORKS@ there instead. Our two intended differences from Postfix 3.7 are expected:
# smtpd_forbid_bare_newline = normalize and smtpd_forbid_unauth_pipelining = yes (Postfix: no).
. "$(dirname "$0")/lib.sh.inc"
SHOW=$GOLDEN/show
RECORDS=$GOLDEN/show.txt
NEW=$T/show.txt.new
CFG=$T/cfg
fresh "$CFG"

# intended: what Postfix's stdout becomes with our intended defaults.
intended() {
  sed -e 's/^smtpd_forbid_bare_newline = no$/smtpd_forbid_bare_newline = normalize/' \
    -e 's/^smtpd_forbid_unauth_pipelining = no$/smtpd_forbid_unauth_pipelining = yes/'
}

# golden_out NAME: the real Postfix's normalized stdout of case NAME, from the golden files.
golden_out() {
  local f base
  case $1 in
    d) f=$DATA/postfix-3.7-postconf-d.txt
      sed '/^process_id = /d' "$f" | hostnorm "$(sed -n 's/^myhostname = //p' "$f")" \
        "$(sed -n 's/^mydomain = //p' "$f")" "$(sed -n 's/^mynetworks = //p' "$f")" ;;
    names) golden_out d | sed 's/ = .*//; s/ =$//' ;;
    *) if [ -f "$SHOW/$1.out" ]; then cat "$SHOW/$1.out"
       elif [ -f "$SHOW/$1.diff" ]; then
         base=$(sed -n '1s/^# base: //p' "$SHOW/$1.diff")
         golden_out "$base" >"$T/base.$1"; tail -n +2 "$SHOW/$1.diff" >"$T/diff.$1"
         apply_diff "$T/base.$1" "$T/diff.$1"
       else echo "(no golden file for $1)"; fi ;;
  esac
}

# hostvals WHO: the host-dependent defaults myhostname, mydomain, mynetworks of WHO.
hostvals() {
  pc "$1" "$CFG" -dh myhostname mydomain mynetworks
  mapfile -t HV <"$T/$1.out"
}
HOSTDEP=" d dx "            # cases whose golden stdout has host placeholders
declare -A BASE=([all]=d [x]=dx [f]=all [H]=names)   # cases stored as a diff

# show NAME ARGS...: compare stdout, stderr and exit status of postconf -c CFG ARGS.
show() {
  local name=$1 who; shift
  for who in $WHOS; do
    pc "$who" "$CFG" "$@"
    { echo "@@@@ $name: postconf${*:+ }$*"; echo "exit: $(cat "$T/$who.rc")"; echo "--- stderr"
      cat "$T/$who.err"; } >"$T/$who.rec"
    cp "$T/$who.out" "$T/$who.stdout"
  done
  if [ "$MODE" = oracle ]; then
    intended <"$T/real.stdout" >"$T/expected"
    check "postconf${*:+ }$*: stdout" "$T/expected" "$T/ours.stdout"
    check "postconf${*:+ }$*: exit status, stderr" "$T/real.rec" "$T/ours.rec"
    [ -n "$UPDATE" ] || return 0
    cat "$T/real.rec" >>"$NEW"
    [ "$name" = d ] && return 0    # the golden -d is tests/data/postfix-3.7-postconf-d.txt
    if [[ $HOSTDEP == *" $name "* ]]; then hostvals real; hostnorm "${HV[@]}" <"$T/real.stdout" >"$T/n"
    else cp "$T/real.stdout" "$T/n"; fi
    mkdir -p "$SHOW"; rm -f "$SHOW/$name.out" "$SHOW/$name.diff"
    if [ -n "${BASE[$name]:-}" ]; then
      golden_out "${BASE[$name]}" >"$T/b"
      { echo "# base: ${BASE[$name]}"; diff "$T/b" "$T/n"; } >"$SHOW/$name.diff"
    else cp "$T/n" "$SHOW/$name.out"; fi
  else
    golden_out "$name" | intended >"$T/expected"
    if [[ $HOSTDEP == *" $name "* ]]; then
      hostvals ours; hostnorm "${HV[@]}" <"$T/ours.stdout" >"$T/n"; mv "$T/n" "$T/ours.stdout"
    fi
    check "postconf${*:+ }$*: stdout" "$T/expected" "$T/ours.stdout"
    section "$RECORDS" "$name: postconf${*:+ }$*" >"$T/golden.rec"
    check "postconf${*:+ }$*: exit status, stderr" "$T/golden.rec" "$T/ours.rec"
  fi
}

show d -d         # bases first: the golden files of all, x, f, H are diffs against them
show all
show n -n
show dx -dx
show x -x
show f -f
show M -M
show Mf -Mf
show F -F
show P -P
show h -h myhostname mydomain
show H -H
show d_mail_name -d mail_name
show x_smtpd_banner -x smtpd_banner
show unknown myhostname nonexistent_param
expect_err "unknown parameter warning" 0 "warning: nonexistent_param: unknown parameter"

# Our intended differences: exactly these two defaults (the stdout checks above expect them).
pc ours "$CFG" -dh smtpd_forbid_bare_newline smtpd_forbid_unauth_pipelining
printf 'normalize\nyes\n' >"$T/want"
check "our intended defaults smtpd_forbid_bare_newline, smtpd_forbid_unauth_pipelining" "$T/want" "$T/ours.out"
if [ "$MODE" = oracle ]; then
  pc real "$CFG" -dh smtpd_forbid_bare_newline smtpd_forbid_unauth_pipelining
  printf 'no\nno\n' >"$T/want"
  check "Postfix 3.7 defaults of those two are no, no" "$T/want" "$T/real.out"
fi

# broken NAME MAIN_TEXT MASTER_TEXT ARGS...: postconf ARGS on a config dir with these files
# (empty text: Debian's file); record stdout too.
broken() {
  local name=$1 main=$2 master=$3 who; shift 3
  for who in $WHOS; do
    rm -rf "$T/e"; mkdir "$T/e"
    if [ -n "$main" ]; then printf '%s\n' "$main" >"$T/e/main.cf"; else cat "$DATA/debian-main.cf" >"$T/e/main.cf"; fi
    if [ -n "$master" ]; then printf '%s\n' "$master" >"$T/e/master.cf"; else cat "$DATA/debian-master.cf" >"$T/e/master.cf"; fi
    pc "$who" "$T/e" "$@"
    { echo "@@@@ $name: postconf${*:+ }$*"; echo "exit: $(cat "$T/$who.rc")"; echo "--- stdout"
      cat "$T/$who.out"; echo "--- stderr"; cat "$T/$who.err"; } >"$T/$who.rec"
  done
  if [ "$MODE" = oracle ]; then
    check "$name" "$T/real.rec" "$T/ours.rec"; [ -z "$UPDATE" ] || cat "$T/real.rec" >>"$NEW"
  else
    section "$RECORDS" "$name: postconf${*:+ }$*" >"$T/golden.rec"; check "$name" "$T/golden.rec" "$T/ours.rec"
  fi
}

broken "junk line in main.cf" "$(cat "$DATA/debian-main.cf"; echo 'junk line here')" "" -n
expect_err "junk line: fatal, exit 1" 1 "fatal: @DIR@/main.cf, line 39: missing '=' after attribute name: \"junk line here\""
broken "truncated macro" 'myorigin = ${mydomain' "" -x myorigin
expect_err "truncated macro: warning" 1 'warning: truncated macro reference: "${mydomain"'
expect_err "truncated macro: fatal, exit 1" 1 "fatal: macro processing error"
broken "macro loop" "$(printf 'a = $b\nb = $a\nmyorigin = $a')" "" -x myorigin
expect_err "macro loop: warning" 1 'warning: unreasonable macro call nesting: "b"'
expect_err "macro loop: fatal, exit 1" 1 "fatal: macro processing error"
broken "master.cf with 6 fields" "" "smtp inet n - y - smtpd" -M
expect_err "6 fields: fatal, exit 1" 1 "fatal: file @DIR@/master.cf: line 1: bad field count"
broken "master.cf with bad type" "" "smtp bogus n - y - - smtpd" -M
expect_err "bad type: fatal, exit 1" 1 'fatal: invalid type field "bogus" in "smtp bogus n - y - - smtpd"'
broken "unused parameter" "$(printf 'foo = bar\nmine = 1\nmydestination = $mine')" "" -n
expect_err "unused parameter: warning" 0 "warning: @DIR@/main.cf: unused parameter: foo=bar"
assert "no warning for a user-defined parameter used as \$mine" eval '! grep -q "mine=" "$T/ours.err"'
broken "duplicate parameter" "$(printf 'myorigin = a\nmyorigin = b')" "" -n
expect_err "duplicate parameter: warning" 0 "warning: @DIR@/main.cf, line 2: overriding earlier entry: myorigin=a"

if [ -n "$UPDATE" ]; then cp "$NEW" "$RECORDS" && echo "# wrote $RECORDS and $SHOW/"; fi
finish
