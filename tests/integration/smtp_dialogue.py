#!/usr/bin/env python3
"""smtp_dialogue.py PORT FILE: play one SMTP dialogue script against
127.0.0.1:PORT and print what the server answered, for comparing smtpd
with the real Postfix on the same input (tests/integration/smtpd_dialogues.sh).

A script is lines of Python bytes literals, each sent as one write; after
each write the replies are read until the server is quiet for a moment or
closes.  "# ..." lines are comments; a line "pause" waits without sending.
The output has one "S: reply" line per reply line, "-- closed" when the
server closed, and queue IDs replaced by QUEUEID.  Every wait is bounded.
"""
import re
import socket
import sys
import time

QUIET = 0.4  # seconds of silence that end a reply burst
FIRST = 3.0  # seconds to wait for the first reply line (error sleeps are 1s)
LIMIT = 15.0  # seconds at most per burst


def read_burst(sock, out):
    """Reads at least one reply line, then until QUIET seconds of silence,
    the peer closing, or LIMIT (a server may sleep before an error reply)."""
    data = b""
    deadline = time.time() + LIMIT
    closed = False
    first_deadline = time.time() + FIRST
    sock.settimeout(QUIET)
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if data.endswith(b"\n") or (not data and time.time() > first_deadline):
                break
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    for line in data.decode("latin-1").split("\r\n"):
        if line:
            out.append("S: " + re.sub(r"queued as [0-9A-Za-z]+", "queued as QUEUEID", line))
    return closed


def main():
    port = int(sys.argv[1])
    lines = [l.rstrip("\n") for l in open(sys.argv[2], encoding="utf-8")]
    out = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    closed = read_burst(sock, out)
    for line in lines:
        if closed:
            break
        if not line.strip() or line.startswith("#"):
            continue
        if line.strip() == "pause":
            time.sleep(1.5)
            closed = read_burst(sock, out)
            continue
        payload = eval(line, {"__builtins__": {}})  # bytes literals and + / *
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        out.append("C: " + repr(payload)[2:-1][:120])
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        closed = read_burst(sock, out)
    if closed:
        out.append("-- closed")
    sock.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
