#!/usr/bin/env python3
"""smtp_fake_server.py: SMTP servers on loopback that the smtp client tests
(smtp_tls_verify.sh, smtp_bad_input.sh) deliver to.

usage: smtp_fake_server.py [--events FILE] READY_FILE PORT:MODE[:CERT:KEY] ...

Each PORT listens on 127.0.0.1 and plays MODE with every client:
  tls          a plain ESMTP server with PIPELINING and STARTTLS (CERT, KEY)
  plain        the same without STARTTLS
  longgreet    a greeting line of 100 MB, then a plain ESMTP server
  longreply    answers RCPT TO with "550 5.1.1 " and 100 MB of text
  silent       accepts and never says anything
  garbage      sends non-SMTP text (an SSH banner, binary noise), then hangs up
  garbagereply PIPELINING; the reply to MAIL FROM comes after a garbage line
  dropdata     hangs up after reading part of the message body
  no8bit       like plain, but without 8BITMIME (and with SIZE); each
               message in PORT.mbox starts with the MAIL FROM command
The file READY_FILE is written once every port listens.  Received messages
are appended to PORT.mbox next to READY_FILE.  Runs until killed.
With --events FILE, one line per event is appended to FILE: "connect
PORT", "mail PORT", "rset PORT", "quit PORT" (how connections are reused).
"""
import os
import socket
import ssl
import sys
import threading

HUGE = 100 * 1024 * 1024


def send_huge(conn, prefix):
    conn.sendall(prefix)
    chunk = b"x" * (1024 * 1024)
    sent = 0
    try:
        while sent < HUGE:
            conn.sendall(chunk)
            sent += len(chunk)
        conn.sendall(b"\r\n")
    except OSError:
        return False
    return True


EVENTS = None
EVENTS_LOCK = threading.Lock()


def event(what, port):
    if EVENTS:
        with EVENTS_LOCK, open(EVENTS, "a") as f:
            f.write("%s %d\n" % (what, port))


class Session:
    def __init__(self, conn, mode, port, cert, key, outdir):
        self.conn, self.mode, self.port, self.cert, self.key = conn, mode, port, cert, key
        self.outdir = outdir
        self.buf = b""

    def readline(self):
        while b"\n" not in self.buf:
            data = self.conn.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def send(self, text):
        self.conn.sendall(text.encode() if isinstance(text, str) else text)

    def run(self):
        mode = self.mode
        event("connect", self.port)
        if mode == "silent":
            while self.conn.recv(65536):
                pass
            return
        if mode == "garbage":
            self.send(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\x01\x02\xff\xfe binary noise\r\nmore noise\r\n")
            return
        if mode == "longgreet":
            if not send_huge(self.conn, b"220 "):
                return
        else:
            self.send("220 fake.test ESMTP\r\n")
        tls_on = False
        mail_cmd = b""
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                ext = ["PIPELINING", "SIZE 10240000"] if mode == "no8bit" else ["PIPELINING", "8BITMIME"]
                if mode == "tls" and not tls_on:
                    ext.append("STARTTLS")
                self.send("250-fake.test\r\n" + "".join("250-%s\r\n" % e for e in ext[:-1]) + "250 %s\r\n" % ext[-1])
            elif verb == b"HELO":
                self.send("250 fake.test\r\n")
            elif verb == b"STARTTLS" and mode == "tls" and not tls_on:
                self.send("220 2.0.0 Ready to start TLS\r\n")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.cert, self.key)
                self.conn = ctx.wrap_socket(self.conn, server_side=True)
                self.buf = b""
                tls_on = True
            elif verb == b"MAIL":
                event("mail", self.port)
                mail_cmd = line
                if mode == "garbagereply":
                    self.send("this is not an SMTP reply\r\n")
                self.send("250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                if mode == "longreply":
                    if not send_huge(self.conn, b"550 5.1.1 "):
                        return
                else:
                    self.send("250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                self.send("354 End data with <CR><LF>.<CR><LF>\r\n")
                body = []
                while True:
                    l = self.readline()
                    if l is None:
                        return
                    if mode == "dropdata" and len(body) >= 3:
                        return  # hang up mid-message
                    if l == b".":
                        break
                    body.append(l)
                with open(os.path.join(self.outdir, "%d.mbox" % self.port), "ab") as f:
                    if mode == "no8bit":
                        body.insert(0, mail_cmd)
                    f.write(b"\n".join(body) + b"\n==\n")
                self.send("250 2.0.0 Ok: queued as fake1\r\n")
            elif verb == b"RSET":
                event("rset", self.port)
                self.send("250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                event("quit", self.port)
                self.send("221 2.0.0 Bye\r\n")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized\r\n")


def serve(listener, mode, port, cert, key, outdir):
    while True:
        conn, _ = listener.accept()

        def one(c=conn):
            try:
                Session(c, mode, port, cert, key, outdir).run()
            except (OSError, ssl.SSLError):
                pass
            finally:
                try:
                    c.close()
                except OSError:
                    pass

        threading.Thread(target=one, daemon=True).start()


def main():
    global EVENTS
    args = sys.argv[1:]
    if args[:1] == ["--events"]:
        EVENTS = os.path.abspath(args[1])
        args = args[2:]
    ready = args[0]
    outdir = os.path.dirname(os.path.abspath(ready))
    threads = []
    for spec in args[1:]:
        parts = spec.split(":")
        port, mode = int(parts[0]), parts[1]
        cert = parts[2] if len(parts) > 2 else None
        key = parts[3] if len(parts) > 3 else None
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(16)
        t = threading.Thread(target=serve, args=(s, mode, port, cert, key, outdir), daemon=True)
        t.start()
        threads.append(t)
    with open(ready, "w") as f:
        f.write("ready\n")
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
