#!/usr/bin/env python3
"""bench/smtp_hold.py: open many idle SMTP sessions and hold them (bench/smtpd.sh).

Opens SESSIONS connections to 127.0.0.1:PORT, at most --parallel of them in the
greeting/EHLO phase at once; each reads the 220 greeting and (unless --no-ehlo)
sends EHLO and reads the 250 reply, then stays open and silent.  When all are
established (or failed), it prints one line "established OK FAILED SECONDS" on
stdout and creates --ready-file.  It then holds until SIGUSR1, SIGTERM or
--max-hold seconds, checks every session is still alive with NOOP (prints
"alive N"), sends QUIT and exits: 0 when every session was established and
stayed alive, 1 otherwise.  Every wait has a timeout.
"""
import argparse
import asyncio
import signal
import sys
import time


async def read_reply(reader, timeout):
    """Reads one (possibly multi-line) SMTP reply; returns its code or None."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        line = await asyncio.wait_for(reader.readline(), left)
        if not line:
            return None
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3].decode("ascii", "replace")


async def open_session(port, ehlo, timeout, gate):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            return None, f"connect: {e!r}"
        try:
            code = await read_reply(reader, timeout)
            if code != "220":
                raise RuntimeError(f"greeting {code}")
            if ehlo:
                writer.write(b"EHLO bench.example\r\n")
                await writer.drain()
                code = await read_reply(reader, timeout)
                if code != "250":
                    raise RuntimeError(f"EHLO {code}")
        except (OSError, RuntimeError, asyncio.TimeoutError) as e:
            writer.close()
            return None, f"{type(e).__name__}: {e}"
        return (reader, writer), None


async def probe(session, timeout, quit_too):
    reader, writer = session
    alive = False
    try:
        writer.write(b"NOOP\r\n")
        await writer.drain()
        alive = await read_reply(reader, timeout) == "250"
        if quit_too and alive:
            writer.write(b"QUIT\r\n")
            await writer.drain()
            await read_reply(reader, timeout)
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
    return alive


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=50, help="handshakes in flight at once")
    ap.add_argument("--timeout", type=float, default=30.0, help="per step")
    ap.add_argument("--setup-limit", type=float, default=240.0, help="for all sessions")
    ap.add_argument("--max-hold", type=float, default=300.0)
    ap.add_argument("--no-ehlo", action="store_true")
    ap.add_argument("--ready-file")
    a = ap.parse_args()

    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, release.set)

    gate = asyncio.Semaphore(a.parallel)
    start = time.monotonic()
    tasks = [asyncio.ensure_future(open_session(a.port, not a.no_ehlo, a.timeout, gate))
             for _ in range(a.sessions)]
    done, pending = await asyncio.wait(tasks, timeout=a.setup_limit)
    for t in pending:
        t.cancel()
    sessions, errors = [], {}
    for t in done:
        s, err = t.result()
        if s:
            sessions.append(s)
        else:
            errors[err] = errors.get(err, 0) + 1
    if pending:
        errors["setup time limit"] = len(pending)
    failed = a.sessions - len(sessions)
    print(f"established {len(sessions)} {failed} {time.monotonic() - start:.1f}", flush=True)
    for err, n in sorted(errors.items(), key=lambda kv: -kv[1])[:5]:
        print(f"# {n} x {err}", file=sys.stderr, flush=True)
    if a.ready_file:
        open(a.ready_file, "w").close()

    try:
        await asyncio.wait_for(release.wait(), a.max_hold)
    except asyncio.TimeoutError:
        print("# hold time limit reached", file=sys.stderr, flush=True)
    gate = asyncio.Semaphore(200)

    async def gated(s):
        async with gate:
            return await probe(s, a.timeout, True)
    results = await asyncio.wait_for(
        asyncio.gather(*(gated(s) for s in sessions)), a.setup_limit)
    alive = sum(results)
    print(f"alive {alive}", flush=True)
    return 0 if failed == 0 and alive == a.sessions else 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except asyncio.TimeoutError:
        print("smtp_hold: time limit reached", file=sys.stderr)
        sys.exit(1)
