#!/usr/bin/env bash
# Interoperability of lookup tables with the real Postfix 3.7 (postfix-oracle):
# tables built by our postmap/postalias are queried by the real postmap and
# the reverse, for hash and btree, with and without case folding; -s listings
# and -q answers must be identical.  Also: bad input as Postfix handles it.
# Without the oracle the cross checks are skipped and only ours is checked.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $(printf %q "$2")" "got:      $(printf %q "$3")"; fi
}

ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
HAVE_ORACLE=0
if [ "$ORACLE" != none ] && [ -x "$ORACLE" ] && timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then
  HAVE_ORACLE=1
  echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"
else
  echo "# no postfix-oracle: cross checks skipped"
fi

# Each side gets a config directory of its own (the oracle's needs its paths).
mkdir -p "$T/ours" "$T/real"
printf 'compatibility_level = 3.6\nmyhostname = host.example\n' > "$T/ours/main.cf"
: > "$T/ours/master.cf"
if [ $HAVE_ORACLE = 1 ]; then
  "$ORACLE" config "$T/real" >/dev/null 2>&1
  "$ORACLE" run postconf -c "$T/real" -e myhostname=host.example >/dev/null 2>&1
fi
ours() { timeout 60 "$MTA_BIN/$1" -c "$T/ours" "${@:2}"; }
real() { timeout 60 "$ORACLE" run "$1" -c "$T/real" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }

cat > "$T/source" <<'SRC'
# a comment
User@Example.COM    local one
example.com         relay:[mx.example.com]:25
Mixed.Case.Key      value with   inner  blanks
continued           first part
   and the second
.sub.example.org    smtp:
SRC

for type in hash btree; do
  for fold in "" "-f"; do
    tag="$type${fold:+ $fold}"
    cp "$T/source" "$T/by-ours-$type$fold"
    ours postmap $fold "$type:$T/by-ours-$type$fold" 2>"$T/err" || bad "$tag: our postmap builds" "$(cat "$T/err")"
    for key in user@example.com USER@EXAMPLE.COM Mixed.Case.Key mixed.case.key continued .sub.example.org nope; do
      o=$(ours postmap $fold -q "$key" "$type:$T/by-ours-$type$fold" 2>&1); orc=$?
      if [ $HAVE_ORACLE = 1 ]; then
        r=$(real postmap $fold -q "$key" "$type:$T/by-ours-$type$fold" 2>&1); rrc=$?
        same "$tag: real postmap reads our table, key $key" "$r/$rrc" "$o/$orc"
      fi
    done
    o=$(ours postmap -s "$type:$T/by-ours-$type$fold")
    if [ -z "$fold" ]; then
      want=$(printf '%s\t%s\n' .sub.example.org smtp: continued 'first part   and the second' \
        example.com 'relay:[mx.example.com]:25' mixed.case.key 'value with   inner  blanks' \
        user@example.com 'local one')
    else
      want=$(printf '%s\t%s\n' .sub.example.org smtp: Mixed.Case.Key 'value with   inner  blanks' \
        User@Example.COM 'local one' continued 'first part   and the second' example.com 'relay:[mx.example.com]:25')
    fi
    same "$tag: ours lists what it built" "$want" "$(printf '%s\n' "$o" | LC_ALL=C sort)"
    if [ $HAVE_ORACLE = 1 ]; then
      cp "$T/source" "$T/by-real-$type$fold"
      real postmap $fold "$type:$T/by-real-$type$fold" 2>/dev/null
      same "$tag: -s of the real table, byte for byte" "$(real postmap -s "$type:$T/by-real-$type$fold")" \
        "$(ours postmap -s "$type:$T/by-real-$type$fold")"
      same "$tag: our build lists as the real build" "$(real postmap -s "$type:$T/by-real-$type$fold")" "$o"
      for key in user@example.com USER@EXAMPLE.COM Mixed.Case.Key mixed.case.key continued nope; do
        r=$(real postmap $fold -q "$key" "$type:$T/by-real-$type$fold" 2>&1); rrc=$?
        o=$(ours postmap $fold -q "$key" "$type:$T/by-real-$type$fold" 2>&1); orc=$?
        same "$tag: our postmap reads the real table, key $key" "$r/$rrc" "$o/$orc"
      done
    fi
  done
done

# postalias both ways (the YP_LAST_MODIFIED entry holds a time: left out).
cat > "$T/aliases" <<'SRC'
postmaster: root
Root: admin, backup@example.com
"quoted name": someone
list: :include:/etc/mail/list
pipe: "|/usr/bin/procmail -a foo"
spaced: a ,b,   c
file: /var/mail/archive
SRC
cp "$T/aliases" "$T/aliases-real"
ours postalias "$T/aliases"
if [ $HAVE_ORACLE = 1 ]; then
  real postalias "$T/aliases-real"
  same "postalias: same listing" "$(real postalias -s "$T/aliases-real" | grep -v YP_LAST_MODIFIED)" \
    "$(ours postalias -s "$T/aliases" | grep -v YP_LAST_MODIFIED)"
  for key in root ROOT "quoted name" spaced @ nope; do
    same "postalias: real reads ours, key $key" "$(real postalias -q "$key" "$T/aliases" 2>&1; echo "/$?")" \
      "$(ours postalias -q "$key" "$T/aliases" 2>&1; echo "/$?")"
    same "postalias: ours reads real, key $key" "$(real postalias -q "$key" "$T/aliases-real" 2>&1; echo "/$?")" \
      "$(ours postalias -q "$key" "$T/aliases-real" 2>&1; echo "/$?")"
  done
fi
same "postalias: root's value" "admin, backup@example.com" "$(ours postalias -q root "$T/aliases")"
same "postalias: the @ entry" "@" "$(ours postalias -q @ "$T/aliases")"

# -q - reads keys on stdin; -d deletes; -i adds.
cp "$T/source" "$T/upd"
ours postmap "$T/upd"
same "-q - prints key TAB value" "$(printf 'USER@example.com\tlocal one\nexample.com\trelay:[mx.example.com]:25')" \
  "$(printf 'USER@example.com\nnope\nexample.com\n' | ours postmap -q - "$T/upd")"
# Answers are written in blocks, but each before postmap waits for more
# keys: a program that feeds one key at a time gets every answer.
command -v python3 >/dev/null && same "-q - answers a key before its input ends" "USER@example.com	local one" "$(python3 - "$MTA_BIN/postmap" "$T" <<'PY'
import subprocess, sys, select
p = subprocess.Popen([sys.argv[1], '-c', sys.argv[2] + '/ours', '-q', '-', sys.argv[2] + '/upd'],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.write(b'USER@example.com\n'); p.stdin.flush()
ready, _, _ = select.select([p.stdout], [], [], 10)
print(p.stdout.readline().decode().rstrip('\n') if ready else 'no answer within 10 s')
p.stdin.close(); p.wait(10)
PY
)"
ours postmap -d example.com "$T/upd"; same "-d of a present key exits 0" 0 $?
ours postmap -d example.com "$T/upd"; same "-d of an absent key exits 1" 1 $?
printf 'new.key new value\n' | ours postmap -i "$T/upd"
same "-i adds" "new value" "$(ours postmap -q new.key "$T/upd")"

# Bad input, as Postfix: clear fatal errors, non-zero exit, old table intact.
ours postmap "$T/missing-source" 2>"$T/err"; rc=$?
same "missing source: exit 1" 1 $rc
same "missing source: message" "postmap: fatal: open $T/missing-source: No such file or directory" "$(cat "$T/err")"
echo "garbage" > "$T/foreign.db"
ours postmap -q x "$T/foreign" 2>"$T/err"; rc=$?
same "foreign .db: exit 1" 1 $rc
same "foreign .db: message" "postmap: fatal: open database $T/foreign.db: Invalid argument" "$(cat "$T/err")"
mkdir "$T/upd.db.tmp.d"; cp "$T/upd.db" "$T/upd.db.before"
chmod 000 "$T/source"; ln -sf "$T/nonexistent-dir/x" "$T/upd.db.tmp"
ours postmap "$T/upd" 2>"$T/err"; rc=$?
chmod 644 "$T/source"
same "a build that cannot write fails" 1 $rc
if cmp -s "$T/upd.db" "$T/upd.db.before"; then ok "the old table is untouched"; else bad "the old table is untouched"; fi
same "the old table still answers" "new value" "$(ours postmap -q new.key "$T/upd")"
rm -f "$T/upd.db.tmp"
printf 'key\nk v\n' > "$T/keyonly"
ours postmap "$T/keyonly" 2>"$T/err"
same "a key without value warns with file and line" \
  "postmap: warning: $T/keyonly, line 1: expected format: key whitespace value" "$(cat "$T/err")"
same "the rest of the table is built" "v" "$(ours postmap -q k "$T/keyonly")"
ours postmap -q x bogus:"$T/x" 2>"$T/err"
same "unknown type" "postmap: fatal: unsupported dictionary type: bogus" "$(cat "$T/err")"
ours postmap texthash:"$T/keyonly" 2>"$T/err"
same "texthash cannot be built" \
  "postmap: fatal: unsupported dictionary type: texthash does not support bulk-mode creation." "$(cat "$T/err")"

# A truncated .db: an error, never a silent "not found".
cp "$T/upd.db" "$T/trunc.db"; truncate -s 100 "$T/trunc.db"
ours postmap -q new.key "$T/trunc" >/dev/null 2>"$T/err"; rc=$?
same "a truncated .db is an error" 1 $rc
if grep -q '^postmap: fatal: ' "$T/err"; then ok "a truncated .db gives a fatal message"; else bad "a truncated .db gives a fatal message" "$(cat "$T/err")"; fi

# Two builds at once never mix: the table afterwards is one of the two.
awk 'BEGIN { for (i = 0; i < 20000; i++) print "a" i, "one" }' > "$T/race1"
awk 'BEGIN { for (i = 0; i < 20000; i++) print "a" i, "two" }' > "$T/race2"
cp "$T/race1" "$T/race"
for i in 1 2 3; do
  cp "$T/race1" "$T/race"; ours postmap "$T/race" & p1=$!
  cp "$T/race2" "$T/race"; ours postmap "$T/race" & p2=$!
  wait $p1 $p2
done
n1=$(ours postmap -s "$T/race" | grep -c 'one$'); n2=$(ours postmap -s "$T/race" | grep -c 'two$')
if { [ "$n1" = 20000 ] && [ "$n2" = 0 ]; } || { [ "$n1" = 0 ] && [ "$n2" = 20000 ]; }; then
  ok "concurrent builds leave one whole table ($n1/$n2)"
else
  bad "concurrent builds leave one whole table" "one=$n1 two=$n2"
fi
[ ! -e "$T/race.db.tmp" ] && ok "no temporary file is left behind" || bad "no temporary file is left behind"

# Long lines and values are accepted.
long=$(head -c 200000 /dev/zero | tr '\0' x)
printf 'longkey %s\n' "$long" > "$T/long"
ours postmap "$T/long"
same "a 200 KB value round-trips" 200000 "$(ours postmap -q longkey "$T/long" | tr -d '\n' | wc -c)"

# newaliases builds every alias_database.
cp "$T/aliases" "$T/na1"; printf 'other: root\n' > "$T/na2"
printf 'compatibility_level = 3.6\nmyhostname = host.example\nalias_database = hash:%s, btree:%s\n' "$T/na1" "$T/na2" > "$T/ours/main.cf"
MAIL_CONFIG=$T/ours "$MTA_BIN/newaliases"; same "newaliases exits 0" 0 $?
same "newaliases built the hash table" "admin, backup@example.com" "$(ours postalias -q root "hash:$T/na1")"
same "newaliases built the btree table" "root" "$(ours postalias -q other "btree:$T/na2")"

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
