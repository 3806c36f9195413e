#!/usr/bin/env bash
# Content inspection in cleanup (header_checks, mime_header_checks,
# nested_header_checks, body_checks; regexp: and pcre: tables) and the
# routing it asks of qmgr (FILTER, REDIRECT, content_filter), side by side
# with the real Postfix 3.7: the same tables and messages go over SMTP
# (Python's smtplib) to OUR instance and to a real one (postfix-oracle
# instance), and the SMTP replies, cleanup's action log lines and the
# delivery results (to=<...>, relay, dsn, status; delays dropped) must be
# the same.  Also checked on our side alone: HOLD leaves the message in
# hold/ ('!' in postqueue -p), DISCARD leaves nothing, PREPEND/REPLACE/
# IGNORE show in the delivered file, body_checks_size_limit counts per MIME
# part, receive_override_options=no_header_body_checks turns the checks
# off, and a sendmail submission that header_checks rejects is bounced.
# Needs root and the oracle; exit 77 (skip) otherwise.
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
B=$MTA_BIN
[ "$(id -u)" = 0 ] || { echo "# skip: needs root (the instances drop privileges)"; exit 77; }
for p in master postfix smtpd cleanup trivial-rewrite qmgr local bounce error discard pickup postdrop sendmail \
  postconf postalias postqueue showq proxymap; do
  [ -x "$B/$p" ] || { echo "# skip: $p is not built"; exit 77; }
done
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ] || ! timeout 200 "$ORACLE" install >/dev/null 2>&1; then
  echo "# skip: no postfix-oracle"; exit 77
fi
T=$(mktemp -d /tmp/content_checks.XXXXXX) || exit 1
chmod 755 "$T"
OURS=$T/ours REAL=$T/real U=mtcc$$
OURS_UP=0 REAL_UP=0
pf() { timeout 60 "$ORACLE" run "$@" 2> >(grep -v '^postfix-oracle:' >&2); }
cleanup() {
  [ $OURS_UP = 1 ] && "$B/postfix" -c "$OURS" stop >/dev/null 2>&1
  [ $REAL_UP = 1 ] && pf postfix -c "$REAL" stop >/dev/null 2>&1
  userdel "$U" >/dev/null 2>&1
  [ -n "${KEEP_TMP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
same_files() {  # NAME EXPECTED(real) ACTUAL(ours)
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$(diff -a -u --label real --label ours "$2" "$3" | head -n 40)"; fi
}
check() {  # NAME COMMAND...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
wait_for() {  # SECONDS COMMAND...
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- setup
useradd -M -d "$T/home/$U" -s /bin/sh "$U" || { echo "# skip: useradd failed"; exit 77; }
mkdir -p "$T/home/$U" "$OURS/queue" && chown "$U:" "$T/home/$U"
OP=$(free_port) OCF=$(free_port) ONO=$(free_port) RP=$(free_port) RCF=$(free_port) RNO=$(free_port)

cat >"$T/header_checks" <<'EOF'
/^Subject: reject-with-text/  REJECT Go away spammer
/^Subject: reject-plain/      REJECT
/^Subject: reject-later/      REJECT 4.7.1 try again later
/^Subject: warn-me/           WARN watched subject
/^Subject: info-me/           INFO routine
/^Subject: hold-me/           HOLD held by header
/^Subject: discard-me/        DISCARD dropped by header
/^Subject: prepend-me/        PREPEND X-Prepended: yes
/^Subject: replace-me/        REPLACE Subject: replaced subject
/^X-Drop-Me:/                 IGNORE
/^Subject: filter-me/         FILTER error:filtered by header
/^Subject: bcc-me/            BCC bcc@mail.test.example
/^Subject: dunno-me/          DUNNO
EOF
# REDIRECT to an address of its own (an extension), to see where it went.
echo "/^Subject: redirect-me/       REDIRECT $U+red@mail.test.example" >>"$T/header_checks"
cat >"$T/mime_header_checks" <<'EOF'
/^Content-(Type|Disposition):.*name\s*=\s*"?[^"]*\.exe"?/  REJECT attachment of type .exe not allowed
EOF
cat >"$T/nested_header_checks" <<'EOF'
/^Subject: nested-secret/     REJECT nested message refused
EOF
cat >"$T/body_checks" <<'EOF'
/^bodyword-reject/            REJECT body text refused
/^inside-part-marker/         WARN body part hit
EOF
chmod 644 "$T"/*_checks

COMMON=("myhostname = mail.test.example" 'myorigin = $myhostname' 'mydestination = $myhostname, localhost' "inet_interfaces = 127.0.0.1"
  "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" "home_mailbox = Maildir/" "recipient_delimiter = +"
  "header_checks = regexp:$T/header_checks" "mime_header_checks = pcre:$T/mime_header_checks"
  "nested_header_checks = regexp:$T/nested_header_checks" "body_checks = pcre:$T/body_checks"
  'local_recipient_maps = unix:passwd.byname $alias_maps' "biff = no")
ALIASES=("bcc: $U" "sender: $U" "other: $U")

# Ours.
cp "$MTA_SOURCE_DIR/conf/main.cf" "$MTA_SOURCE_DIR/conf/master.cf" "$OURS/"
printf '%s\n' "${ALIASES[@]}" >"$OURS/aliases"
"$B/postconf" -c "$OURS" -e "queue_directory = $OURS/queue" "data_directory = $OURS/data" \
  "daemon_directory = $B" "command_directory = $B" "maillog_file = $OURS/maillog" "maillog_file_prefixes = $T" \
  "alias_maps = hash:$OURS/aliases" "alias_database = hash:$OURS/aliases" "${COMMON[@]}"
"$B/postconf" -c "$OURS" -MX smtp/inet
"$B/postconf" -c "$OURS" -Me "127.0.0.1:$OP/inet=127.0.0.1:$OP inet n - n - - smtpd"
"$B/postconf" -c "$OURS" -Me "127.0.0.1:$OCF/inet=127.0.0.1:$OCF inet n - n - - smtpd -o content_filter=discard:cf-discarded"
"$B/postconf" -c "$OURS" -Me "127.0.0.1:$ONO/inet=127.0.0.1:$ONO inet n - n - - smtpd -o receive_override_options=no_header_body_checks"
"$B/postalias" -c "$OURS" "$OURS/aliases"

# The real Postfix.
timeout 120 "$ORACLE" instance "$REAL" "$RP" >"$T/instance.log" 2>&1 || { bad "oracle instance setup" "$(tail -5 "$T/instance.log")"; exit 1; }
printf '%s\n' "${ALIASES[@]}" >>"$REAL/aliases"
OD=$("$ORACLE" path)
# The real sendmail runs the real postdrop, which needs the oracle's libraries.
pf postconf -c "$REAL" -e "${COMMON[@]}" \
  "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=$OD/usr/lib/postfix" \
  "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH=$OD/usr/lib/postfix" >/dev/null
pf postconf -c "$REAL" -Me "127.0.0.1:$RCF/inet=127.0.0.1:$RCF inet n - n - - smtpd -o content_filter=discard:cf-discarded" >/dev/null
pf postconf -c "$REAL" -Me "127.0.0.1:$RNO/inet=127.0.0.1:$RNO inet n - n - - smtpd -o receive_override_options=no_header_body_checks" >/dev/null
pf postalias -c "$REAL" "$REAL/aliases"

"$B/postfix" -c "$OURS" start >/dev/null 2>&1 && OURS_UP=1 || { bad "our postfix start" "$(tail -5 "$OURS/maillog")"; exit 1; }
pf postfix -c "$REAL" start >/dev/null 2>&1 && REAL_UP=1 || { bad "real postfix start" "$(tail -5 "$REAL/maillog")"; exit 1; }
listening() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()' "$1" 2>/dev/null; }
for p in $OP $OCF $ONO $RP $RCF $RNO; do
  wait_for 20 listening "$p" || { bad "smtpd listens on $p"; exit 1; }
done

# ---------------------------------------------------------------- messages
cat >"$T/send.py" <<'EOF'
import smtplib, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("client.test.example")
s.mail("sender@mail.test.example")
s.rcpt(sys.argv[3])
try:
    code, msg = s.data(data)
except smtplib.SMTPDataError as e:
    code, msg = e.smtp_code, e.smtp_error
print(code, msg.decode())
s.quit()
EOF
M=$T/msg
mkdir -p "$M"
simple() {  # NAME SUBJECT [BODY LINE]
  printf 'From: sender@mail.test.example\nTo: %s@mail.test.example\nSubject: %s\nX-Drop-Me: 1\n\nhello\n%s\n' \
    "$U" "$2" "${3:-bye}" >"$M/$1"
}
simple reject-text reject-with-text
simple reject-plain reject-plain
simple reject-later reject-later
simple warn warn-me
simple info info-me
simple hold hold-me
simple discard discard-me
simple prepend prepend-me
simple replace replace-me
simple redirect redirect-me
simple filter filter-me
simple bcc bcc-me
simple dunno dunno-me
simple body-reject plain-subject bodyword-reject
multipart() {  # NAME PART2-HEADERS PART2-BODY [PART1-BODY]
  printf 'From: sender@mail.test.example\nTo: %s@mail.test.example\nSubject: %s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="=-b0und"\n\nThis is a MIME message.\n--=-b0und\nContent-Type: text/plain\n\n%s\n--=-b0und\n%s\n\n%s\n--=-b0und--\n' \
    "$U" "$1" "${4:-first part}" "$2" "$3" >"$M/$1"
}
multipart mime-exe 'Content-Type: application/octet-stream; name="evil.exe"
Content-Disposition: attachment; filename="evil.exe"' 'TVqQAAMAAAAEAAAA'
multipart mime-body 'Content-Type: text/plain' 'inside-part-marker here'
multipart nested 'Content-Type: message/rfc822' 'From: x@example.org
Subject: nested-secret

inner body'
FILLER=$(for i in $(seq 800); do printf 'filler line %04d of the first part, to pass the body_checks_size_limit\n' "$i"; done)
simple size-limit plain-subject "$FILLER"
printf 'bodyword-reject after the limit\n' >>"$M/size-limit"
multipart per-part 'Content-Type: text/plain' 'bodyword-reject in the second part' "$FILLER"
simple cf plain-subject
simple no-checks reject-plain

CASES="reject-text reject-plain reject-later warn info hold discard prepend replace redirect filter bcc dunno body-reject mime-exe mime-body nested size-limit per-part"
for c in $CASES cf no-checks; do
  for who in real ours; do
    if [ $who = ours ]; then port=$OP; [ $c = cf ] && port=$OCF; [ $c = no-checks ] && port=$ONO
    else port=$RP; [ $c = cf ] && port=$RCF; [ $c = no-checks ] && port=$RNO; fi
    timeout 60 python3 "$T/send.py" "$port" "$M/$c" "$U@mail.test.example" 2>&1 |
      sed -E 's/queued as [0-9A-Za-z]+/queued as QID/' >"$T/$who.$c.reply"
  done
  same_files "$c: SMTP reply as Postfix's ($(head -c 60 "$T/ours.$c.reply"))" "$T/real.$c.reply" "$T/ours.$c.reply"
done
check "REJECT text reaches the client as 550 5.7.1 text" grep -qx '550 5.7.1 Go away spammer' "$T/ours.reject-text.reply"
check "REJECT without text: 550 5.7.1 message content rejected" \
  grep -qx '550 5.7.1 message content rejected' "$T/ours.reject-plain.reply"
check "REJECT 4.7.1: 451 4.7.1" grep -qx '451 4.7.1 try again later' "$T/ours.reject-later.reply"
check "no_header_body_checks: the same message is accepted" grep -q '^250 ' "$T/ours.no-checks.reply"

# A sendmail submission that header_checks rejects is bounced to the sender.
simple sendmail reject-with-text
MAIL_CONFIG=$OURS timeout 30 "$B/sendmail" -f sender@mail.test.example "$U@mail.test.example" <"$M/sendmail"
MAIL_CONFIG=$REAL timeout 60 "$ORACLE" run sendmail -f sender@mail.test.example "$U@mail.test.example" <"$M/sendmail" \
  2> >(grep -v '^postfix-oracle:' >&2)

# ---------------------------------------------------------------- results
# Settled: nothing but held mail in the queue, and the sendmail bounce seen.
unheld_left() {  # DIR POSTQUEUE...
  local dir=$1; shift
  ! "$@" -c "$dir" -p 2>/dev/null | grep -Eq '^[0-9A-Za-z]{6,}[ *]'
}
bounced() { grep -q 'status=bounced (Go away spammer)' "$1/maillog"; }
wait_for 60 bounced "$OURS" && wait_for 60 bounced "$REAL"
wait_for 60 unheld_left "$OURS" "$B/postqueue" || bad "our queue settles" "$("$B/postqueue" -c "$OURS" -p | head)"
wait_for 60 unheld_left "$REAL" pf postqueue || bad "the real queue settles"
sleep 1

# cleanup's action lines, in order, queue IDs normalized.
actions() {
  sed -nE 's/^.*postfix\/cleanup\[[0-9]+\]: (.*)$/\1/p' "$1" |
    grep -E '^[0-9A-Za-z]+: (reject|warning|info|hold|discard|prepend|replace|redirect|filter|bcc|strip|pass): (header|body) ' |
    sed -E 's/^[0-9A-Za-z]+:/QID:/'
}
actions "$REAL/maillog" >"$T/real.actions"
actions "$OURS/maillog" >"$T/ours.actions"
check "the real Postfix logged the actions (the test can see them)" test "$(wc -l <"$T/real.actions")" -ge 15
same_files "cleanup's action log lines as Postfix's" "$T/real.actions" "$T/ours.actions"
check "a reject line names the client, the envelope, proto and helo" grep -qF \
  "QID: reject: header Subject: reject-with-text from localhost[127.0.0.1]; from=<sender@mail.test.example> to=<$U@mail.test.example> proto=ESMTP helo=<client.test.example>: 5.7.1 Go away spammer" \
  "$T/ours.actions"

# Delivery results: to=, orig_to=, relay=, dsn=, status= (sorted: the
# order of parallel deliveries varies).
results() {
  sed -nE 's/^.*postfix\/[a-z]+\[[0-9]+\]: [0-9A-Za-z]+: (to=<.*)$/\1/p' "$1" |
    sed -E -e 's/, delay=[0-9.]+, delays=[0-9.\/]+//' -e 's/, conn_use=[0-9]+//' \
      -e 's/(status=sent \(delivered to maildir)\)/\1)/' | sort
}
results "$REAL/maillog" >"$T/real.results"
results "$OURS/maillog" >"$T/ours.results"
same_files "delivery results as Postfix's (FILTER, REDIRECT, BCC, content_filter, bounces)" "$T/real.results" "$T/ours.results"
check "content_filter sends the message to discard:cf-discarded" grep -q 'relay=none.*status=sent (cf-discarded)' "$T/ours.results"
check "FILTER error:... bounces through the error transport" grep -q 'status=bounced (filtered by header)' "$T/ours.results"
check "REDIRECT delivers to the redirect address" grep -q "^to=<$U+red@mail.test.example>, orig_to=<$U@mail.test.example>, relay=local, .*status=sent" "$T/ours.results"

# Our queue and mailbox.
held=$(find "$OURS/queue/hold" -type f | wc -l)
check "HOLD: one message in hold/ ($held)" test "$held" = 1
check "HOLD: postqueue -p marks it with !" sh -c "'$B/postqueue' -c '$OURS' -p | grep -Eq '^[0-9A-Za-z]+!'"
MD=$T/home/$U/Maildir
n_discard=$(grep -rl 'discard-me' "$MD/new" 2>/dev/null | wc -l)
check "DISCARD: never delivered ($n_discard)" test "$n_discard" = 0
n_prep=$(grep -rl '^X-Prepended: yes' "$MD/new" 2>/dev/null | wc -l)
check "PREPEND: both instances delivered the prepended header ($n_prep)" test "$n_prep" = 2
n_repl=$(grep -rl '^Subject: replaced subject' "$MD/new" 2>/dev/null | wc -l)
check "REPLACE: the replaced header in both deliveries ($n_repl)" test "$n_repl" = 2
warn_files=$(grep -rl '^Subject: warn-me' "$MD/new" 2>/dev/null)
n_warn=$(echo "$warn_files" | grep -c .)
n_drop=$(echo "$warn_files" | xargs -r grep -l '^X-Drop-Me:' | wc -l)
check "IGNORE: X-Drop-Me removed from both warn-me deliveries ($n_warn delivered, $n_drop with it)" \
  test "$n_warn" = 2 -a "$n_drop" = 0
nc_files=$(grep -rl '^Subject: reject-plain' "$MD/new" 2>/dev/null | xargs -r grep -l '^X-Drop-Me:' | wc -l)
check "no_header_body_checks: delivered untouched by both ($nc_files)" test "$nc_files" = 2

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
