#!/usr/bin/env python3
"""bench/watch.py: the moment a benchmark run ends, seen through inotify.

    watch.py count DIR N TIMEOUT
        when DIR holds at least N entries (a Maildir's new/)
    watch.py empty TIMEOUT [--after FILE] DIR...
        when no DIR holds a file (subdirectories such as deferred/F/ are
        watched too) and, with --after, FILE exists (smtp-source is done)

Prints "ready" once the watches are set (the caller starts the load after
it), then the time (seconds since the epoch, as bash's $EPOCHREALTIME) at
which the condition became true; exit status 1 if TIMEOUT seconds pass
first.  Polling instead (a find or an ls every 50 ms) cost CPU while the
systems ran, and found the end up to 50 ms late: for the faster system, a
larger part of its run.  Both systems are watched the same way.
"""
import ctypes
import os
import select
import struct
import sys
import time

IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO = 0x100, 0x200, 0x40, 0x80
IN_Q_OVERFLOW, IN_ISDIR, IN_NONBLOCK = 0x4000, 0x40000000, 0o4000
MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO

libc = ctypes.CDLL(None, use_errno=True)


class Watcher:
    def __init__(self):
        self.fd = libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            sys.exit("watch.py: inotify_init1: " + os.strerror(ctypes.get_errno()))
        self.dirs = {}  # watch descriptor -> directory
        self.names = {}  # directory -> names of the files in it
        self.subdirs = {}  # directory -> names of its subdirectories

    def add(self, path, recurse):
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), MASK)
        if wd < 0:
            sys.exit("watch.py: watch %s: %s" % (path, os.strerror(ctypes.get_errno())))
        self.dirs[wd] = path
        self.rescan(path, recurse)

    def rescan(self, path, recurse):
        # After the watch is set, so that nothing is missed: an event for
        # a name seen here too changes nothing (the names are sets).
        files, subdirs = set(), set()
        try:
            for e in os.scandir(path):
                (subdirs if e.is_dir(follow_symlinks=False) else files).add(e.name)
        except FileNotFoundError:
            pass
        self.names[path], self.subdirs[path] = files, subdirs
        if recurse:
            for d in subdirs:
                self.add(os.path.join(path, d), False)

    def wait(self, seconds):
        """Applies the events that come within SECONDS; False if none came."""
        ready, _, _ = select.select([self.fd], [], [], max(seconds, 0))
        if not ready:
            return False
        data = os.read(self.fd, 1 << 16)
        pos = 0
        while pos < len(data):
            wd, mask, _, size = struct.unpack_from("iIII", data, pos)
            name = data[pos + 16:pos + 16 + size].rstrip(b"\0").decode(errors="replace")
            pos += 16 + size
            if mask & IN_Q_OVERFLOW:  # events were lost: look again (new subdirectories too)
                for path in list(self.names):
                    self.rescan(path, True)
                continue
            path = self.dirs.get(wd)
            if path is None:
                continue
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self.subdirs[path].add(name)
                    self.add(os.path.join(path, name), False)
                continue
            if mask & (IN_CREATE | IN_MOVED_TO):
                self.names[path].add(name)
            elif mask & (IN_DELETE | IN_MOVED_FROM):
                self.names[path].discard(name)
        return True

    def files(self):
        return sum(len(n) for n in self.names.values())


def main(argv):
    if len(argv) >= 5 and argv[1] == "count":
        directory, want, limit = argv[2], int(argv[3]), float(argv[4])
        w = Watcher()
        w.add(directory, False)
        done = lambda: len(w.names[directory]) >= want
    elif len(argv) >= 4 and argv[1] == "empty":
        limit = float(argv[2])
        args = argv[3:]
        after = None
        if args[0] == "--after":
            after, args = args[1], args[2:]
        w = Watcher()
        for d in args:
            w.add(d, True)
        if after:
            w.add(os.path.dirname(after) or ".", False)
        marker = os.path.basename(after) if after else None
        watched = args

        def done():
            if after and marker not in w.names[os.path.dirname(after) or "."]:
                return False
            return all(not w.names[d] for d in w.names if any(d == a or d.startswith(a + "/") for a in watched))
    else:
        sys.exit(__doc__)
    print("ready", flush=True)
    end = time.time() + limit
    while not done():
        if time.time() > end:
            print("timeout: %d files" % w.files(), flush=True)
            return 1
        w.wait(end - time.time())
    print("%.6f" % time.time(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
