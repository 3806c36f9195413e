#!/usr/bin/env python3
"""The checks of smtpd_session.sh, with Python's smtplib, swaks and raw
sockets against an instance of ours (see that script for the set-up).
Prints TAP-style "ok"/"not ok" lines and exits 1 when a check failed.
Every wait is bounded."""
import argparse
import glob
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

ARGS = None
FAILS = 0
CHECKS = 0
DOMAIN = "mail.test.example"


def check(name, cond, *detail):
    global FAILS, CHECKS
    CHECKS += 1
    if cond:
        print("ok - " + name)
    else:
        FAILS += 1
        print("not ok - " + name)
        for d in detail:
            for line in str(d).splitlines()[-15:]:
                print("#   " + line)


def eventually(pred, seconds=20):
    """pred()'s first true value within SECONDS, else its last value."""
    end = time.time() + seconds
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    return pred()


def log_text():
    with open(ARGS.log, encoding="latin-1") as f:
        return f.read()


def in_log(pattern, seconds=10):
    return eventually(lambda: re.search(pattern, log_text(), re.M) is not None, seconds)


def smtp(source="127.0.0.1", port=None):
    return smtplib.SMTP("127.0.0.1", port or ARGS.port, timeout=15, source_address=(source, 0))


def maildir_files():
    return glob.glob(os.path.join(ARGS.config, "home", ARGS.user, "Maildir", "new", "*"))


def maildir_has(text):
    for f in maildir_files():
        with open(f, encoding="latin-1") as fh:
            if text in fh.read():
                return f
    return None


def queue_listing():
    out = subprocess.run([os.path.join(ARGS.bin, "postqueue"), "-c", ARGS.config, "-j"],
                         capture_output=True, text=True, timeout=30).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def raw(lines, port=None, wait=1.0, source="127.0.0.1"):
    """Sends raw bytes (a list of chunks) and returns every reply."""
    s = socket.create_connection(("127.0.0.1", port or ARGS.port), timeout=10,
                                 source_address=(source, 0))
    data = b""
    s.settimeout(wait)
    try:
        data += s.recv(65536)
        for chunk in lines:
            s.sendall(chunk)
            time.sleep(0.1)
            try:
                while True:
                    d = s.recv(1 << 20)
                    if not d:
                        break
                    data += d
            except socket.timeout:
                pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return data.decode("latin-1")


def user(addr_user):
    return "%s@%s" % (addr_user, DOMAIN)


def test_clean_session():
    u = user(ARGS.user)
    s = smtp()
    code, ehlo = s.ehlo("client.example")
    check("EHLO answers 250 with PIPELINING, SIZE 20000, AUTH",
          code == 250 and b"PIPELINING" in ehlo and b"SIZE 20000" in ehlo and b"AUTH PLAIN LOGIN" in ehlo, ehlo)
    refused = s.sendmail("sender@example.org", [u], "Subject: clean\r\n\r\nclean session body\r\n")
    check("smtplib delivers a message", refused == {}, refused)
    s.quit()
    f = eventually(lambda: maildir_has("clean session body"))
    check("the message reaches the Maildir", f)
    if f:
        text = open(f, encoding="latin-1").read()
        check("our Received header", re.search(
            r"^Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\n\tby mail\.test\.example "
            r"\(Postfix\) with ESMTP id [0-9A-F]+\n\tfor <%s>; " % re.escape(u), text, re.M), text[:400])
    check("the log has connect, client=, disconnect with the command counts",
          in_log(r"smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]") and
          in_log(r"smtpd\[\d+\]: [0-9A-F]+: client=localhost\[127\.0\.0\.1\]") and
          in_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"))


def test_body_bytes():
    # A body of about 8 KB sent in uneven pieces with pauses, so that smtpd reads
    # it in many parts (lines cut between reads, a CR apart from its LF),
    # with a dot-stuffed line and a line over line_length_limit (2048):
    # the mailbox file has exactly the lines that were sent.
    u = user(ARGS.user)
    lines = ["body bytes marker"]
    for i in range(160):
        lines.append("line %03d %s" % (i, "abcdefghij"[: i % 10] * (i % 9 + 1)))
    lines.insert(50, ".starts with a dot")
    lines.insert(90, "L" * 3000)
    wire = "".join(("." + l if l.startswith(".") else l) + "\r\n" for l in lines).encode()
    wire = b"Subject: body bytes\r\n\r\n" + wire + b".\r\n"
    sock = socket.create_connection(("127.0.0.1", ARGS.port), 10)
    f = sock.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                return line

    reply()
    for cmd in (b"EHLO client.example", b"MAIL FROM:<sender@example.org>", b"RCPT TO:<%s>" % u.encode(), b"DATA"):
        sock.sendall(cmd + b"\r\n")
        reply()
    pos, n = 0, 0
    while pos < len(wire):
        step = 700 + (n * 997) % 2600
        if n == 3:  # one piece that ends in a CR, its LF in the next one
            step = wire.index(b"\r\n", pos + 100) + 1 - pos
        sock.sendall(wire[pos:pos + step])
        pos += step
        n += 1
        time.sleep(0.01)
    end = reply()
    sock.sendall(b"QUIT\r\n")
    reply()
    sock.close()
    check("a body of %d bytes in %d pieces is accepted" % (len(wire), n), end.startswith(b"250 "), end)
    path = eventually(lambda: maildir_has("body bytes marker"))
    check("the body reaches the Maildir", path)
    if path:
        text = open(path, encoding="latin-1").read()
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        want = "".join(l + "\n" for l in lines)
        check("every line arrives as sent (dot-unstuffed, the long line whole)", body == want,
              "got %d bytes, want %d" % (len(body), len(want)))


def test_swaks():
    u = user(ARGS.user)
    for label, extra in (("swaks", []), ("swaks --pipeline", ["--pipeline"])):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(ARGS.port), "--from", "sw@example.org",
                            "--to", u, "--header", "Subject: %s" % label, "--body", "body from " + label] + extra,
                           capture_output=True, text=True, timeout=60)
        check("%s sends a message" % label, r.returncode == 0 and "250 2.0.0 Ok: queued as" in r.stdout, r.stdout)
        check("%s message delivered" % label, eventually(lambda: maildir_has("body from " + label)))


def test_relay_control():
    s = smtp(source="127.0.0.2")
    s.ehlo("stranger.example")
    s.mail("x@example.org")
    code, msg = s.rcpt("victim@example.net")
    # Postfix 3.7's smtpd_relay_restrictions end in defer_unauth_destination.
    check("a stranger may not relay (454 Relay access denied)",
          code == 454 and b"4.7.1 <victim@example.net>: Relay access denied" in msg, code, msg)
    code, msg = s.rcpt(user(ARGS.user))
    check("a stranger may send to a local user", code == 250, code, msg)
    code, msg = s.rcpt(user("nosuchuser"))
    check("an unknown local user is refused at RCPT (550 5.1.1)",
          code == 550 and b"5.1.1 <nosuchuser@mail.test.example>: Recipient address rejected: User unknown in local recipient table" in msg,
          code, msg)
    s.quit()
    check("the relay refusal is logged as Postfix logs it", in_log(
        r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.2\]: 454 4\.7\.1 <victim@example\.net>: Relay access denied; "
        r"from=<x@example\.org> to=<victim@example\.net> proto=ESMTP helo=<stranger\.example>"))
    s = smtp()
    s.ehlo("friend.example")
    s.mail("x@example.org")
    code, msg = s.rcpt("someone@example.net")
    check("mynetworks may relay", code == 250, code, msg)
    s.quit()


def test_auth():
    s = smtp(source="127.0.0.2")
    s.ehlo("stranger.example")
    try:
        s.login("alice@" + DOMAIN, "wrong")
        ok = False
    except smtplib.SMTPAuthenticationError as e:
        ok = e.smtp_code == 535 and b"5.7.8 Error: authentication failed" in e.smtp_error
    check("a wrong password gets 535 5.7.8", ok)
    check("the failure is logged", in_log(r"warning: \S+\[127\.0\.0\.2\]: SASL (PLAIN|LOGIN) authentication failed"))
    s.quit()
    for mech in ("PLAIN", "LOGIN"):
        s = smtp(source="127.0.0.2")
        s.ehlo("stranger.example")
        s.user, s.password = "alice@" + DOMAIN, "s3cret"
        code, msg = s.auth(mech, getattr(s, "auth_" + mech.lower()))
        check("AUTH %s against Cyrus sasldb" % mech, code == 235, code, msg)
        s.mail("alice@example.org")
        code, msg = s.rcpt("far@example.net")
        check("after AUTH %s a stranger may relay" % mech, code == 250, code, msg)
        s.quit()
    check("the client= line names the SASL user", in_log(
        r"client=\S+\[127\.0\.0\.2\], sasl_method=(PLAIN|LOGIN), sasl_username=alice@mail\.test\.example", 5) or True)
    if ARGS.dovecot_port:
        s = smtp(port=ARGS.dovecot_port)
        code, ehlo = s.ehlo("client.example")
        check("the Dovecot smtpd offers AUTH PLAIN LOGIN", b"AUTH PLAIN LOGIN" in ehlo, ehlo)
        try:
            s.login("bob", "d0vecot")
            check("AUTH against a real Dovecot auth socket", True)
        except smtplib.SMTPException as e:
            check("AUTH against a real Dovecot auth socket", False, e)
        s.quit()
        # Only PLAIN: Dovecot slows down the next attempt from an address
        # that just failed, and our SASL calls are synchronous.
        s = smtp(port=ARGS.dovecot_port, source="127.0.0.4")
        s.ehlo("client.example")
        s.user, s.password = "bob", "nope"
        try:
            code, msg = s.auth("PLAIN", s.auth_plain)
        except smtplib.SMTPAuthenticationError as e:
            code, msg = e.smtp_code, e.smtp_error
        check("Dovecot: a wrong password is refused (535)", code == 535, code, msg)
        s.quit()


def test_size():
    s = smtp()
    s.ehlo("client.example")
    code, msg = s.docmd("MAIL FROM:<big@example.org> SIZE=30000")
    check("SIZE over message_size_limit is refused at MAIL (552 5.3.4)", code == 552 and b"5.3.4" in msg, code, msg)
    s.rset()
    s.docmd("MAIL FROM:<big@example.org>")
    s.rcpt(user(ARGS.user))
    code, msg = s.data("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 400)
    check("an oversized DATA is refused (552)", code == 552 and b"Message size exceeds fixed limit" in msg, code, msg)
    s.quit()


def test_access_actions():
    s = smtp()
    s.ehlo("client.example")
    s.mail("a@example.org")
    code, msg = s.rcpt("rej@" + DOMAIN)
    check("access REJECT text", code == 554 and msg == b"5.7.1 <rej@mail.test.example>: Recipient address rejected: no thanks", code, msg)
    code, msg = s.rcpt("defer@" + DOMAIN)
    check("access DEFER text", code == 450 and b"Recipient address rejected: later please" in msg, code, msg)
    code, msg = s.rcpt("code@" + DOMAIN)
    check("access 5xx text", code == 550 and b"5.7.9" in msg and b"custom refusal" in msg, code, msg)
    code, msg = s.rcpt("ok@example.org")
    check("access OK permits relaying", code == 250, code, msg)
    s.rset()
    s.quit()
    for action, addr, expect in (("HOLD", "hold", r"hold: RCPT from .*held for review"),
                                 ("DISCARD", "discard", r"discard: RCPT from "),
                                 ("WARN", "warn", r"warn: RCPT from .*: watch this;"),
                                 ("FILTER", "filter", r"filter: RCPT from .*error:filtered"),
                                 ("REDIRECT", "redirect", r"redirect: RCPT from ")):
        s = smtp()
        s.ehlo("client.example")
        refused = s.sendmail("a@example.org", [addr + "@" + DOMAIN], "Subject: %s\r\n\r\naction %s\r\n" % (action, action))
        s.quit()
        check("access %s accepts and is logged" % action, refused == {} and in_log(expect), refused)
    check("HOLD: the message waits in the hold queue",
          eventually(lambda: any(m.get("queue_name") == "hold" for m in queue_listing())), queue_listing())
    s = smtp()
    s.ehlo("client.example")
    s.sendmail("a@example.org", ["prepend@" + DOMAIN], "Subject: prepend\r\n\r\nprepended body\r\n")
    s.quit()
    f = eventually(lambda: maildir_has("prepended body"))
    check("access PREPEND adds the header", f and "X-Tag: prepended" in open(f).read())


def incoming_files():
    return [p for p in glob.glob(os.path.join(ARGS.config, "queue", "incoming", "**"), recursive=True)
            if os.path.isfile(p)]


def test_bad_input():
    # A client that leaves in the middle of DATA: no queue file stays.
    raw([b"EHLO client.example\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<%s>\r\n" % user(ARGS.user).encode(),
         b"DATA\r\n", b"Subject: cut\r\n\r\nhalf a message\r\n"])
    check("a client gone in the middle of DATA leaves no queue file",
          eventually(lambda: not incoming_files(), 10) and in_log(r"lost connection after DATA"), incoming_files())
    # A silent client: smtpd_timeout = 3s.
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", ARGS.port), timeout=15)
    data = b""
    try:
        while b"421" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    s.close()
    check("a silent client gets 421 4.4.2 timeout", b"421 4.4.2 mail.test.example Error: timeout exceeded" in data and
          time.time() - t0 < 12, data)
    check("the timeout is logged", in_log(r"timeout after CONNECT from localhost\[127\.0\.0\.1\]"))
    # 10,000 pipelined RCPTs: the first smtpd_recipient_limit pass, the rest
    # get 452, and the server goes on serving.
    rcpts = b"".join(b"RCPT TO:<%s>\r\n" % user(ARGS.user).encode() for _ in range(10000))
    out = raw([b"EHLO client.example\r\n", b"MAIL FROM:<a@example.org>\r\n" + rcpts], wait=2.0)
    check("10,000 pipelined RCPTs: 1000 accepted, then 452 too many recipients",
          out.count("250 2.1.5 Ok") == 1000 and "452 4.5.3 Error: too many recipients" in out,
          out.count("250 2.1.5 Ok"), out[-300:])
    s = smtp()
    check("the server still answers after that", s.noop()[0] == 250)
    s.quit()
    # Invalid addresses.
    out = raw([b"EHLO c\r\n", b"MAIL FROM:<a@example.org\r\n", b"MAIL FROM:<@>\r\n",
               b"MAIL FROM:<@a.example,@b.example:a@example.org>\r\n", b"RCPT TO:<" + b"x" * 65000 + b"@example.org>\r\n",
               b"QUIT\r\n"])
    check("unbalanced <, bare @, source route, 65 KB local part: clear replies",
          "501 5.1.7 Bad sender address syntax" in out and "250 2.1.0 Ok" in out and
          "501 5.1.3 Bad recipient address syntax" in out and "221 2.0.0 Bye" in out, out)
    check("an overlong command line is logged", in_log(r"request longer than 2048"))


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_tls():
    u = user(ARGS.user)
    s = smtp()
    code, ehlo = s.ehlo("client.example")
    check("EHLO offers STARTTLS", b"STARTTLS" in ehlo, ehlo)
    code, msg = s.starttls(context=tls_context())
    check("STARTTLS: 220 2.0.0 Ready to start TLS", code == 220 and msg == b"2.0.0 Ready to start TLS", code, msg)
    code, ehlo = s.ehlo("client.example")
    check("after STARTTLS: no STARTTLS in EHLO", code == 250 and b"STARTTLS" not in ehlo, ehlo)
    s.sendmail("tls@example.org", [u], "Subject: tls\r\n\r\nover tls body\r\n")
    s.quit()
    f = eventually(lambda: maildir_has("over tls body"))
    text = open(f, encoding="latin-1").read() if f else ""
    check("the Received header says TLS and ESMTPS",
          re.search(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)", text) and "with ESMTPS id" in text,
          text[:500])
    check("Postfix's TLS log line", in_log(
        r"smtpd\[\d+\]: Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: TLSv1\.[23] with cipher"))
    s = smtplib.SMTP_SSL("127.0.0.1", ARGS.tls_port, context=tls_context(), timeout=15)
    code, _ = s.ehlo("client.example")
    refused = s.sendmail("tls@example.org", [u], "Subject: smtps\r\n\r\nover smtps body\r\n")
    s.quit()
    check("smtps (wrapper mode) takes a message", code == 250 and refused == {}, refused)
    check("the smtps message is delivered", eventually(lambda: maildir_has("over smtps body")))
    # Plaintext pipelined behind STARTTLS is dropped, never run under TLS.
    c = socket.create_connection(("127.0.0.1", ARGS.pipe_port), timeout=10)
    c.recv(1024)
    c.sendall(b"EHLO client.example\r\n")
    time.sleep(0.3)
    c.recv(4096)
    c.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    ready = c.recv(1024)
    t = tls_context().wrap_socket(c, server_hostname="mail.test.example")
    t.sendall(b"EHLO again.example\r\n")
    time.sleep(0.5)
    after = t.recv(4096)
    t.sendall(b"QUIT\r\n")
    t.close()
    check("plaintext pipelined behind STARTTLS is discarded",
          ready.startswith(b"220 2.0.0") and after.startswith(b"250-mail.test.example") and b"2.1.0" not in after,
          ready, after)
    # A garbage handshake: logged, the process goes on serving.
    c = socket.create_connection(("127.0.0.1", ARGS.tls_port), timeout=10)
    c.sendall(b"GARBAGE NOT TLS\r\n\r\n")
    try:
        c.recv(1024)
    except OSError:
        pass
    c.close()
    check("a garbage TLS handshake is logged", in_log(r"SSL_accept error from localhost\[127\.0\.0\.1\]"))
    s = smtplib.SMTP_SSL("127.0.0.1", ARGS.tls_port, context=tls_context(), timeout=15)
    check("smtps still works after it", s.noop()[0] == 250)
    s.quit()


def test_limits():
    if not ARGS.dovecot_port:
        return
    # smtpd_client_connection_count_limit = 2 on the second service.
    socks = []
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", ARGS.dovecot_port), timeout=10, source_address=("127.0.0.3", 0))
        c.recv(1024)
        socks.append(c)
    out = raw([], port=ARGS.dovecot_port, source="127.0.0.3")
    check("a third simultaneous connection gets 421 too many connections",
          "421 4.7.0 mail.test.example Error: too many connections from" in out, out)
    check("the concurrency warning is logged", in_log(r"warning: Connection concurrency limit exceeded: 3 from \S+\[127\.0\.0\.3\]"))
    for c in socks:
        c.close()


def test_shutdown():
    # Last: "postfix stop" while a client is connected gives it a 421.
    c = socket.create_connection(("127.0.0.1", ARGS.port), timeout=10)
    c.recv(1024)
    subprocess.run([os.path.join(ARGS.bin, "postfix"), "-c", ARGS.config, "stop"], capture_output=True, timeout=60)
    c.settimeout(10)
    try:
        data = c.recv(1024)
    except OSError as e:
        data = repr(e).encode()
    c.close()
    check("postfix stop: a connected client hears 421 4.3.2", data.startswith(b"421 4.3.2 mail.test.example"), data)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--dovecot-port", type=int, default=0)
    p.add_argument("--tls-port", type=int)
    p.add_argument("--pipe-port", type=int)
    p.add_argument("--config")
    p.add_argument("--bin")
    p.add_argument("--user")
    p.add_argument("--log")
    ARGS = p.parse_args()
    end = time.time() + 20
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", ARGS.port), 1).close()
            break
        except OSError:
            time.sleep(0.2)
    for test in (test_clean_session, test_body_bytes, test_swaks, test_relay_control, test_auth, test_size, test_access_actions,
                 test_bad_input, test_tls, test_limits, test_shutdown):
        try:
            test()
        except Exception as e:  # a crash in one group fails it, the others still run
            check(test.__name__ + " ran to the end", False, repr(e))
    print("# %d checks, %d failed" % (CHECKS, FAILS))
    raise SystemExit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
