#!/usr/bin/env bash
# bench/postmap.sh: our postmap against the real Postfix 3.7 postmap, in one run.
# Builds a hash table of N entries (default 1,000,000) with each, then runs Q
# (default 100,000) random lookups through `postmap -q -` on each, and prints
# the times and the ratios ours/Postfix (target: <= 1.0 for both).  ROUNDS
# (default 5) rounds alternate ours/Postfix; each time is the median.
# usage: bench/postmap.sh [N [Q]]     (needs ../shared/tools/postfix-oracle; our
#        postmap from $MTA_BIN, default build/bin)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000} q=${2:-100000} ROUNDS=${ROUNDS:-5}
oracle=${POSTFIX_ORACLE:-$top/../shared/tools/postfix-oracle}
[ -x "$oracle" ] || { echo "bench: needs postfix-oracle at $oracle" >&2; exit 1; }
"$oracle" install >/dev/null
B=${MTA_BIN:-$top/build/bin}      # our programs
[ -x "$B/postmap" ] || [ -n "${MTA_BIN:-}" ] || "$top/scripts/setup"
[ -x "$B/postmap" ] || { echo "bench: $B/postmap is not built" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
mkdir -p "$w/ours" "$w/real"
printf 'compatibility_level = 3.6\n' > "$w/ours/main.cf"; : > "$w/ours/master.cf"
"$oracle" config "$w/real" >/dev/null 2>&1
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "user%d@example%d.com\tsmtp:[relay%d.example.net]:25\n", i, i % 997, i % 13 }' > "$w/src"
awk -v n="$n" -v q="$q" 'BEGIN { srand(42); for (i = 0; i < q; i++) { k = int(rand() * n * 1.1); printf "user%d@example%d.com\n", k, k % 997 } }' > "$w/keys"
cp "$w/src" "$w/ours/table"; cp "$w/src" "$w/real/table"

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for _ in $(seq "$ROUNDS"); do
  seconds "$B/postmap" -c "$w/ours" "hash:$w/ours/table" >>"$w/build.ours"
  seconds "$oracle" run postmap -c "$w/real" "hash:$w/real/table" >>"$w/build.real"
done
for _ in $(seq "$ROUNDS"); do
  seconds sh -c "'$B/postmap' -c '$w/ours' -q - 'hash:$w/ours/table' < '$w/keys'" >>"$w/query.ours"
  seconds sh -c "'$oracle' run postmap -c '$w/real' -q - 'hash:$w/real/table' < '$w/keys'" >>"$w/query.real"
done
build_ours=$(median <"$w/build.ours") build_real=$(median <"$w/build.real")
query_ours=$(median <"$w/query.ours") query_real=$(median <"$w/query.real")
# Same answers from both tables, or the times mean nothing.
"$B/postmap" -c "$w/ours" -q - "hash:$w/ours/table" < "$w/keys" > "$w/a.ours" || true
"$oracle" run postmap -c "$w/real" -q - "hash:$w/real/table" < "$w/keys" > "$w/a.real" 2>/dev/null || true
cmp -s "$w/a.ours" "$w/a.real" || { echo "bench: the two tables answer differently" >&2; exit 1; }

printf '%-28s %10s %10s %8s\n' "postmap, $n entries ($ROUNDS rounds)" ours postfix ratio
printf '%-28s %9.2fs %9.2fs %8.2f\n' "build (hash)" "$build_ours" "$build_real" "$(echo "$build_ours / $build_real" | bc -l)"
printf '%-28s %9.2fs %9.2fs %8.2f\n' "$q lookups (-q -)" "$query_ours" "$query_real" "$(echo "$query_ours / $query_real" | bc -l)"
