#!/usr/bin/env bash
# lib/ipc on the real wire: a real Postfix 3.7 instance (postfix-oracle, smtpd
# on a free loopback port) and our client (tests/tools/ipc_client) talking to
# its daemons over their sockets:
#  - every service announces the protocol we expect (anvil in the plain form);
#  - the real trivial-rewrite rewrites and resolves addresses as Postfix
#    documents it, for the instance's myorigin, myhostname and transports;
#  - the real showq lists the empty queue, and later a deferred message
#    exactly as the real postqueue -j renders it (reasons included);
#  - the real anvil answers a plain-form request;
#  - the real cleanup takes a message from our client (announcement with a
#    queue id, flags, records, status) and puts it on hold;
#  - the real qmgr hands a message to our delivery agent (spawn(8) runs
#    ipc_client as a delivery agent), whose request we check; our client
#    appends defer records through the real defer daemon, and the message
#    lands in the deferred queue with those reasons.
# Skipped without the oracle, or when the instance cannot be started (not
# root).
set -u
: "${MTA_BIN:?}" "${MTA_SOURCE_DIR:?}"
CLIENT=$MTA_BIN/ipc_client
[ -x "$CLIENT" ] || { echo "# skip: $CLIENT is not built"; exit 77; }
ORACLE=${POSTFIX_ORACLE:-$MTA_SOURCE_DIR/../shared/tools/postfix-oracle}
if [ "$ORACLE" = none ] || [ ! -x "$ORACLE" ]; then echo "# skip: no postfix-oracle"; exit 77; fi
if [ "$(id -u)" != 0 ]; then echo "# skip: a real Postfix instance needs root"; exit 77; fi
T=$(mktemp -d) || exit 1
chmod 755 "$T"  # the spawned delivery agent runs as nobody
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
same() {  # NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else
    bad "$1" "$(diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -n 40 | sed 's/^/    /')"
  fi
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
real() { timeout 60 "$ORACLE" run "$1" -c "$INST" "${@:2}" 2> >(grep -v '^postfix-oracle:' >&2); }
ours() { timeout 60 "$CLIENT" -q "$Q" -t 30 "$@"; }

if ! timeout 200 "$ORACLE" install >"$T/oracle.log" 2>&1; then echo "# skip: postfix-oracle install failed"; exit 77; fi
echo "# real Postfix $(tail -n 1 "$T/oracle.log") from postfix-oracle"

# A free loopback port for smtpd.
PORT=
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "# skip: no free port"; exit 77; }

timeout 120 "$ORACLE" instance "$INST" "$PORT" >"$T/instance.log" 2>&1 || { cat "$T/instance.log"; exit 1; }
# Mail for capture.test goes to our delivery agent, run by spawn(8) as nobody.
AGENT=0
if runuser -u nobody -- test -x "$CLIENT" 2>/dev/null; then
  AGENT=1
  mkdir -p "$T/cap" && chmod 1777 "$T/cap"
  real postconf -e 'transport_maps = inline:{capture.test=ipcagent}' >/dev/null
  printf 'ipcagent unix - n n - - spawn\n  user=nobody argv=%s -t 60 deliver-agent %s\n' "$CLIENT" "$T/cap/request" \
    >>"$INST/master.cf"
else
  echo "# nobody cannot run $CLIENT: the delivery agent part is skipped"
fi
if ! real postfix start >"$T/start.log" 2>&1; then
  cat "$T/start.log"; echo "# skip: the real Postfix instance did not start"; exit 77
fi
STARTED=1
sockets_up() { [ -S "$Q/private/rewrite" ] && [ -S "$Q/public/showq" ] && [ -S "$Q/private/defer" ]; }
wait_for 30 sockets_up || { bad "the instance's sockets appear"; exit 1; }

MYORIGIN=$(real postconf -xh myorigin)
MYHOSTNAME=$(real postconf -xh myhostname)
LOCAL_TRANSPORT=$(real postconf -xh local_transport)
DEFAULT_TRANSPORT=$(real postconf -xh default_transport)
echo "# myorigin=$MYORIGIN myhostname=$MYHOSTNAME local_transport=$LOCAL_TRANSPORT default_transport=$DEFAULT_TRANSPORT"

# --- protocol announcements
for entry in private/rewrite=trivial_rewrite_protocol private/bounce=delivery_status_protocol \
  private/defer=delivery_status_protocol private/trace=delivery_status_protocol \
  private/local=delivery_request_protocol private/smtp=delivery_request_protocol \
  private/error=delivery_request_protocol private/discard=delivery_request_protocol \
  public/showq=mail_queue_list_protocol public/flush=queue_flush_protocol \
  private/verify=address_verification_prrotocol private/proxymap=proxymap_protocol \
  private/scache=connection_cache_protocol private/tlsmgr=tlsmgr_protocol; do
  svc=${entry%%=*}
  same "$svc announces ${entry#*=}" "protocol=${entry#*=}" "$(ours announce "${svc%/*}" "${svc#*/}" 2>&1)"
done
same "private/anvil announces anvil_protocol in the plain form" "protocol=anvil_protocol" \
  "$(ours announce private anvil plain 2>&1)"
got=$(ours announce public cleanup 2>&1)
if [[ $got =~ ^protocol=cleanup_protocol,\ queue_id=[0-9A-Za-z]+$ ]]; then ok "public/cleanup announces cleanup_protocol and a queue_id"
else bad "public/cleanup announces cleanup_protocol and a queue_id" "got: $got"; fi
got=$(ours announce private anvil 2>&1); rc=$?
if [ $rc = 1 ] && [[ $got == *"private/anvil socket"* ]]; then ok "reading anvil's plain form as the zero form fails"
else bad "reading anvil's plain form as the zero form fails" "rc=$rc got: $got"; fi

# --- trivial-rewrite: rewrite (trivial-rewrite(8): append @$myorigin, swap
# bang paths, the percent hack, strip source routes; remote: no domain
# appended while remote_header_rewrite_domain is empty).
same "rewrite local" "$(printf '%s\n' "user@$MYORIGIN" user@site user@domain user@c user@localhost)" \
  "$(ours rewrite local user 'site!user' 'user%domain' '@a,@b:user@c' user@localhost 2>&1)"
same "rewrite remote" "$(printf '%s\n' user user@example.com)" "$(ours rewrite remote user user@example.com 2>&1)"

# --- trivial-rewrite: resolve.  Flags: 256 local class, 4096 default class,
# 4 bad address (a leading "-", allow_min_user = no).
LT=${LOCAL_TRANSPORT%%:*} LN=${LOCAL_TRANSPORT#*:}
[ "$LN" = "$LOCAL_TRANSPORT" ] && LN=$MYHOSTNAME
same "resolve" "$(printf '%s\n' \
  "transport=$LT nexthop=$LN recipient=user@localhost flags=256" \
  "transport=$LT nexthop=$LN recipient=user@$MYHOSTNAME flags=256" \
  "transport=$DEFAULT_TRANSPORT nexthop=example.com recipient=user@example.com flags=4096" \
  "transport=$LT nexthop=$LN recipient=user@[127.0.0.1] flags=256" \
  "transport=$LT nexthop=$LN recipient=-user@localhost flags=260")" \
  "$(ours resolve '' user@localhost "user@$MYHOSTNAME" user@example.com 'user@[127.0.0.1]' -user@localhost 2>&1)"
same "verify resolves like resolve" "transport=$DEFAULT_TRANSPORT nexthop=example.com recipient=user@example.com flags=4096" \
  "$(ours verify sender@example.org user@example.com 2>&1)"
if [ $AGENT = 1 ]; then
  got=$(ours resolve '' x@capture.test 2>&1)
  if [[ $got == "transport=ipcagent nexthop=capture.test recipient=x@capture.test flags="* ]]; then ok "resolve through transport_maps"
  else bad "resolve through transport_maps" "got: $got"; fi
fi

# --- showq, anvil
same "showq: the empty queue" "" "$(ours showq 2>&1)"
same "showq: as postqueue -j" "$(real postqueue -j)" "$(ours showq 2>&1)"
got=$(ours raw private anvil anvil_protocol plain request=lookup ident=smtp:127.0.0.1 2>&1)
if [[ $got == status=0$'\n'count=0$'\n'* ]]; then ok "anvil answers a plain-form lookup"
else bad "anvil answers a plain-form lookup" "got: $got"; fi
got=$(ours raw private rewrite trivial_rewrite_protocol zero request=rewrite rule=local address=a 2>&1)
same "a dynamic request to trivial-rewrite" "$(printf 'flags=0\naddress=a@%s' "$MYORIGIN")" "$got"

# --- the real qmgr and our delivery agent; our client and the real defer daemon
smtp_submit() {  # FROM RCPT...: one message over SMTP; prints the queue id
  local from=$1 line code id=; shift
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  expect() {
    while IFS= read -r -t 20 line <&3; do
      line=${line%$'\r'}
      [[ $line =~ ^[0-9]{3}- ]] && continue
      code=${line:0:3}; [ "$code" = "$1" ] || { echo "SMTP: $line" >&2; return 1; }
      [[ $line == *"queued as "* ]] && id=${line##*queued as }
      return 0
    done
    return 1
  }
  say() { printf '%s\r\n' "$1" >&3; }
  expect 220 && say "EHLO ipc.test" && expect 250 && say "MAIL FROM:<$from>" && expect 250 || return 1
  for r in "$@"; do say "RCPT TO:<$r>" && expect 250 || return 1; done
  say DATA && expect 354 && say "Subject: lib/ipc interop" && say "" && say "hello" && say "." && expect 250 || return 1
  say QUIT; expect 221; exec 3>&-
  echo "$id"
}
if [ $AGENT = 1 ]; then
  ID=$(smtp_submit sender@example.org a@capture.test b@capture.test)
  if [ -n "$ID" ]; then ok "a message for capture.test is queued ($ID)"; else bad "a message for capture.test is queued"; fi
  if wait_for 60 test -s "$T/cap/request"; then
    ok "the real qmgr sent our delivery agent a request"
    req=$(cat "$T/cap/request")
    check_field() { same "delivery request: $1" "$2" "$(sed -n "s/^$1=//p" <<<"$req")"; }
    check_field queue_name active
    check_field queue_id "$ID"
    check_field sender sender@example.org
    check_field nexthop capture.test
    check_field client_address 127.0.0.1
    check_field protocol ESMTP
    check_field rewrite_context local
    check_field log_ident "$ID"
    check_field recipient_count 2
    same "delivery request: recipients (original|address|offset|orcpt|notify)" \
      "$(printf '%s\n' "a@capture.test|a@capture.test|X|rfc822;a@capture.test|0" "b@capture.test|b@capture.test|X|rfc822;b@capture.test|0")" \
      "$(sed -n 's/^recipient=//p' <<<"$req" | awk -F'|' -v OFS='|' '{ if ($3 ~ /^[0-9]+$/ && $3 > 0) $3 = "X"; print }')"
    arrival=$(sed -n 's/^arrival=//p' <<<"$req")
    now=$(date +%s)
    if [ -n "$arrival" ] && [ "$arrival" -le "$now" ] && [ "$arrival" -gt $((now - 600)) ]; then ok "delivery request: MSG_STATS arrival time"
    else bad "delivery request: MSG_STATS arrival time" "got: $arrival (now $now)"; fi
    # Defer both recipients through the real defer daemon, as a delivery agent does.
    while IFS='|' read -r orig addr off orcpt notify; do
      same "defer daemon appends for $addr" "status=0" \
        "$(ours bounce-append defer "$ID" "$orig" "$addr" "$off" "$orcpt" "$notify" 4.3.0 delayed "ipc interop: deferred $addr" 2>&1)"
    done < <(sed -n 's/^recipient=//p' <<<"$req")
    # Having deferred recipients, an agent replies DEL_STAT_DEFER (-1);
    # with 0 the real qmgr takes the message as done and removes it.
    echo -1 >"$T/cap/request.go"
    in_deferred() { real postqueue -j | grep -q "\"queue_name\": \"deferred\", \"queue_id\": \"$ID\""; }
    if wait_for 60 in_deferred; then ok "the message is deferred"; else bad "the message is deferred" "$(real postqueue -j)" "$(grep "$ID" "$INST/maillog")"; fi
    listing=$(real postqueue -j)
    same "showq: a deferred message with reasons, as postqueue -j" "$listing" "$(ours showq 2>&1)"
    if [[ $listing == *'"delay_reason": "ipc interop: deferred a@capture.test"'* ]]; then ok "the defer log holds our reason"
    else bad "the defer log holds our reason" "$listing"; fi
  else
    bad "the real qmgr sent our delivery agent a request" "$(tail -n 20 "$INST/maillog")"
  fi
fi

# --- cleanup: hello with a queue id, our flags (hold), records, the status
got=$(ours cleanup-submit sender@example.org held@example.com 2>&1)
if [[ $got =~ ^queue_id=([0-9A-F]+)\ status=0\ reason=$ ]]; then
  ok "the real cleanup accepts a message from our client"
  HELD=${BASH_REMATCH[1]}
  on_hold() { real postqueue -j | grep -q "\"queue_name\": \"hold\", \"queue_id\": \"$HELD\""; }
  if wait_for 30 on_hold; then ok "the message is on hold"; else bad "the message is on hold" "$(real postqueue -j)"; fi
  same "showq: the whole queue, as postqueue -j" "$(real postqueue -j)" "$(ours showq 2>&1)"
else
  bad "the real cleanup accepts a message from our client" "got: $got"
fi

# Nothing in the real daemons' log complains about what we sent, apart from
# bounce and flush noting the connections that only read their announcement.
complaints=$(grep -E 'warning|error|fatal' "$INST/maillog" |
  grep -vE 'postfix-script|bounce\[[0-9]+\]: warning: malformed request$|flush\[[0-9]+\]: warning: end-of-input while reading request')
same "no complaints from the real daemons" "" "$complaints"

echo "# $CHECKS checks, $FAILS failed"
[ $FAILS = 0 ]
