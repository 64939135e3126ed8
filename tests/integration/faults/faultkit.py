"""faultkit: what the fault and abuse tests share on top of ptthtest,
tunnelkit (a relay with server 'foo' and client 'alice') and relayclient (raw
HTTP/1.1 to the relay): memory and CPU figures of a process from /proc, the
relay's /v1/status, and a TCP proxy that can be cut in the middle of a
tunnel. Everything binds to loopback and is bounded in time."""

import json
import os
import socket
import struct
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_INTEGRATION = os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(_HERE, "..", "..", "..")), "tests", "integration")
sys.path.insert(0, _INTEGRATION)
sys.path.insert(0, os.path.join(_INTEGRATION, "tunnel"))
sys.path.insert(0, os.path.join(_INTEGRATION, "relay"))

import ptthtest as pt  # noqa: E402
from ptthtest import wait_until  # noqa: E402,F401  (the faults tests call fk.wait_until)
import relayclient as rc  # noqa: E402
import tunnelkit as kit  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def slow():
    """True under a sanitizer or valgrind: timings are looser there."""
    return kit.sanitized() or bool(os.environ.get("PTTH_VALGRIND"))


def rss_kib(pid):
    """VmRSS of a process in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    """User + system CPU time a process used so far (utime + stime)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # the command name may hold spaces: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def status(port, admin_key):
    """The relay's /v1/status (JSON) with the admin key."""
    r = rc.Api(port).get("/v1/status", rc.bearer(admin_key))
    assert r.status == 200, r
    return json.loads(r.body)


def healthz(port):
    c = rc.H1(port, timeout=5)
    try:
        return c.request("GET", "/healthz").status
    finally:
        c.close()


def closed_within(socks, within, reset=False):
    """Waits for every socket to be closed by the peer; returns the seconds
    the last one took. reset: each must end with a reset (ECONNRESET), not a
    clean end of stream, since its tunnel broke."""
    started = time.monotonic()
    for s in socks:
        s.settimeout(max(0.1, within - (time.monotonic() - started)))
        how = None
        try:
            while how is None:
                if not s.recv(65536):
                    how = "eof"
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            raise AssertionError("connection still open after %.0fs" % within)
        s.close()
        assert how == "reset" or not reset, "the local connection of a broken tunnel ended with a clean EOF"
    return time.monotonic() - started


class TcpProxy:
    """A loopback TCP proxy to 127.0.0.1:target: each accepted connection is
    copied both ways by two threads. cut() resets every connection it carries
    (SO_LINGER 0, then close: RST to both sides) and stops accepting, as a
    middlebox or a network failure would."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.lock = threading.Lock()
        self.closing = False
        self.accepted = 0
        self.bytes = 0  # carried so far, both ways, every connection
        self.silenced = []  # sockets whose bytes are read and dropped: a path that went silent
        self.resetting = []  # sockets being reset: their copiers send no FIN
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                if self.closing:
                    return
                time.sleep(0.01)  # a connection reset before accept(): keep serving
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.closing:
                    c.close()
                    u.close()
                    return
                self.socks += [c, u]
            self.accepted += 1
            threading.Thread(target=self._copy, args=(c, u), daemon=True).start()
            threading.Thread(target=self._copy, args=(u, c), daemon=True).start()

    def _copy(self, src, dst):
        try:
            while True:
                b = src.recv(1 << 16)
                if not b:
                    break
                if any(x is src for x in self.silenced):
                    continue  # dropped, with no reset: a NAT or proxy that forgot the connection
                dst.sendall(b)
                self.bytes += len(b)  # racy across threads: it may undercount, fine for a progress check
            if any(x is src or x is dst for x in self.resetting):
                return  # woken by _reset's shutdown: no FIN, the reset follows
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            # one side was reset (or cut): reset the other too, as a proxy
            # or NAT does, rather than leave it open and silent
            self._reset([src, dst])

    def carried(self):
        """Bytes carried so far, both ways, over every connection."""
        return self.bytes

    def cut_one(self, index):
        """Resets the index-th connection it accepted (0: the first), both
        ways, and keeps carrying the others."""
        with self.lock:
            pair = self.socks[2 * index:2 * index + 2]
        self._reset(pair)

    def _reset(self, socks):
        self.resetting.extend(socks)  # kept (not their ids: an id is reused once its object is gone)
        for x in socks:
            try:
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                x.shutdown(socket.SHUT_RD)  # wakes the copying thread without a FIN
            except OSError:
                pass
        for x in socks:
            x.close()

    def cut_all(self):
        """Resets every connection it carries now, both ways, and keeps
        accepting new ones (a NAT that forgot its mappings, a proxy that
        restarted); returns how many it reset."""
        with self.lock:
            socks, self.socks = self.socks, []
        self._reset(socks)
        return len(socks) // 2

    def silence_all(self):
        """From now on drops, both ways, every byte of the connections it
        carries now, without closing or resetting them (a NAT mapping that
        expired, a Wi-Fi roam), and keeps carrying new ones; returns how
        many it silenced."""
        with self.lock:
            socks, self.socks = self.socks, []
        self.silenced.extend(socks)
        return len(socks) // 2

    def cut(self):
        """Resets every connection both ways and stops."""
        self.closing = True
        with self.lock:
            socks, self.socks = self.socks, []
        self._reset(socks)
        self.close()

    def close(self):
        self.closing = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            socks, self.socks = self.socks, []
        for x in socks:
            x.close()
