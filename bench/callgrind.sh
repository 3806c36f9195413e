#!/usr/bin/env bash
# bench/callgrind.sh: where our own code spends its instructions (issue 8,
# part 4).  Starts an instance of ours whose smtpd, cleanup, qmgr and
# delivery agent run under valgrind --tool=callgrind (not chrooted: valgrind
# needs its files), sends N messages of SIZE bytes to discard (TO=discard)
# or to a virtual Maildir (TO=maildir) with the real smtp-source, stops the
# instance and prints, per program, the instructions per message (start-up
# included: every process is counted from its exec) and its most expensive
# functions, inclusive and exclusive.
# Needs root, valgrind and ../shared/tools/postfix-oracle.  Not run by
# scripts/bench (it measures instructions, not time, and takes a minute).
# usage: [N=500] [SIZE=4096] [TO=discard|maildir] [MTA_BIN=build/bin] [KEEP=1] bench/callgrind.sh
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-500}
SIZE=${SIZE:-4096}
TO=${TO:-discard}
case $TO in
  discard) AGENT=discard RCPT=x@discard.example ;;
  maildir) AGENT=virtual RCPT=box@vbox.example ;;
  *) echo "bench/callgrind.sh: TO is discard or maildir" >&2; exit 1 ;;
esac
B=${MTA_BIN:-$top/build/bin}
oracle=$top/../shared/tools/postfix-oracle
[ "$(id -u)" = 0 ] || { echo "bench/callgrind.sh: needs root" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
  { echo "bench/callgrind.sh: needs valgrind (apt-get install --no-install-recommends valgrind)" >&2; exit 1; }
O=$("$oracle" path) || exit 1
[ -x "$O/usr/sbin/smtp-source" ] || "$oracle" install >/dev/null || exit 1
. "$top/tests/integration/tap.sh.inc"
T=$(mktemp -d /tmp/callgrind.XXXXXX) || exit 1
chmod 755 "$T"
trap '"$B/postfix" -c "$T" stop >/dev/null 2>&1; [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
mkdir -p "$T/queue" "$T/cg"
printf '%s\n' "postmaster: root" >"$T/aliases"
printf '%s\n' "discard.example discard:" >"$T/transport"
cp "$top/conf/master.cf" "$top/conf/main.cf" "$T/"
install -d -o nobody -g nogroup -m 755 "$T/vmail"
instance_config "$T" "$B" "default_transport = error" "relay_transport = error" \
  "transport_maps = hash:$T/transport" "mynetworks = 127.0.0.0/8" \
  "virtual_mailbox_domains = vbox.example" "virtual_mailbox_maps = static:box/" \
  "virtual_mailbox_base = $T/vmail" "virtual_uid_maps = static:$(id -u nobody)" \
  "virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)" "virtual_minimum_uid = 100"
"$B/postconf" -c "$T" -MX smtp/inet
# Each program through a wrapper: its output file exists before valgrind
# starts, owned by the mail owner, since the program drops privileges
# before callgrind writes it.
owner=$("$B/postconf" -c "$T" -h mail_owner)
for p in smtpd cleanup qmgr $AGENT; do
  printf '#!/bin/sh\nf=%s/cg/%s.$$; : >"$f"; chown %s "$f"\nexec valgrind --tool=callgrind --callgrind-out-file="$f" %s/%s "$@"\n' \
    "$T" "$p" "$owner" "$B" "$p" >"$T/cg-$p"
  chmod 755 "$T/cg-$p"
done
PORT=$(free_port)
printf '127.0.0.1:%s inet n - n - - %s/cg-smtpd\n' "$PORT" "$T" >>"$T/master.cf"
"$B/postconf" -c "$T" -F "cleanup/unix/chroot=n" "cleanup/unix/command=$T/cg-cleanup" \
  "qmgr/unix/command=$T/cg-qmgr" "$AGENT/unix/chroot=n" "$AGENT/unix/command=$T/cg-$AGENT"
"$B/postalias" -c "$T" "$T/aliases"
"$B/postmap" -c "$T" "hash:$T/transport"
"$B/postfix" -c "$T" start >/dev/null || exit 1
sleep 3
env LD_LIBRARY_PATH="$O/usr/lib/postfix" "$O/usr/sbin/smtp-source" -s 10 -m "$N" -l "$SIZE" \
  -f sender@bench.example -t "$RCPT" -M client.bench.example "127.0.0.1:$PORT"
for _ in $(seq 240); do [ -z "$(find "$T/queue/incoming" "$T/queue/active" -type f)" ] && break; sleep 0.5; done
sleep 1
"$B/postfix" -c "$T" stop >/dev/null
sleep 3
sent=$(grep -c "status=sent" "$T/maillog")
echo "callgrind: $sent of $N messages of $SIZE bytes delivered to $TO"
for p in smtpd cleanup qmgr $AGENT; do
  files=$(find "$T/cg" -name "$p.*" -size +0 | sort)
  [ -n "$files" ] || { echo "== $p: no callgrind output"; continue; }
  total=$(for f in $files; do sed -n 's/^summary: //p' "$f"; done | awk '{ s += $1 } END { print s }')
  echo "== $p: $(wc -w <<<"$files") processes, $(( total / (sent > 0 ? sent : 1) )) instructions per message"
  # The busiest process of the program, its functions inclusive and exclusive.
  busiest=$(for f in $files; do echo "$(sed -n 's/^summary: //p' "$f") $f"; done | sort -rn | head -1 | cut -d' ' -f2)
  callgrind_annotate --inclusive=yes --threshold=90 "$busiest" 2>/dev/null | grep -E '^ *[0-9,]+ \(' |
    grep -E 'mta::' | head -12 | cut -c1-150
  echo "  -- exclusive"
  callgrind_annotate --threshold=60 "$busiest" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '2,11p' | cut -c1-150
done
