#!/usr/bin/env bash
# postconf -b and -t: the bounce templates, expanded and as written, through
# our bounce daemon, compared with the real postconf and bounce (oracle).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
mkdir -p "$T/ours"
printf '%s\n' "myhostname = mail.example.net" "daemon_directory = $MTA_BIN" "queue_directory = $T" > "$T/ours/main.cf"
: > "$T/ours/master.cf"
"$MTA_BIN/postconf" -c "$T/ours" -b > "$T/b.ours" 2>&1; rc=$?
[ $rc = 0 ] && ok "postconf -b exits 0" || bad "postconf -b exits 0" "$(head -3 "$T/b.ours")"
head -1 "$T/b.ours" | grep -qx 'expanded_failure_text = <<EOF' && ok "-b starts with the failure template" ||
  bad "-b starts with the failure template" "$(head -1 "$T/b.ours")"
grep -q '^This is the mail system at host mail.example.net.$' "$T/b.ours" && ok "-b expands \$myhostname" ||
  bad "-b expands \$myhostname"
"$MTA_BIN/postconf" -c "$T/ours" -t > "$T/t.ours" 2>&1
grep -q 'This is the mail system at host $myhostname.' "$T/t.ours" && ok "-t shows the templates as written" ||
  bad "-t shows the templates as written"
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  "$ORACLE" config "$T/real" >/dev/null 2>&1
  "$ORACLE" run postconf -c "$T/real" -e myhostname=mail.example.net >/dev/null 2>&1
  for f in b t; do
    "$ORACLE" run postconf -c "$T/real" -$f 2>/dev/null > "$T/$f.real"
    "$MTA_BIN/postconf" -c "$T/ours" -$f > "$T/$f.ours" 2>&1
    if cmp -s "$T/$f.real" "$T/$f.ours"; then ok "postconf -$f as the real Postfix's"; else
      bad "postconf -$f as the real Postfix's" "$(diff "$T/$f.real" "$T/$f.ours" | head -5)"; fi
  done
fi
echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
