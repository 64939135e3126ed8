#!/usr/bin/env python3
"""Slow or stuck ends (issue 5, Faults): a backend that accepts and never
reads, and a client that never reads. Backpressure holds: the writer's sends
stop being accepted after a bounded number of bytes, the relay's and the
terminators' memory (VmRSS) stays bounded, and once the reader reads again
everything flows, in order. Also a backend that restarts: its tunnels end,
connections meanwhile are refused (502), and it is used again once back."""

import hashlib
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt  # noqa: E402

t = pt.Tap()

MIB = 1 << 20
BLOCK = os.urandom(64 * 1024)


def mem_bound_kib():
    return (48 if not fk.slow() else 400) * 1024


def rss_all(w, px):
    return {p.name: fk.rss_kib(p.popen.pid) for p in (w.relay, w.server, px)}


def sysctl_max(name):
    with open("/proc/sys/net/ipv4/" + name) as f:
        return int(f.read().split()[2])


def push_until_stalled(sock, h, stall=2.0, limit=512 * MIB, timeout=60):
    """Sends BLOCKs without blocking until nothing was taken for `stall`
    seconds; returns the bytes the socket took (hashed into h)."""
    sock.setblocking(False)
    sent = 0
    last_progress = time.monotonic()
    deadline = last_progress + timeout
    while time.monotonic() - last_progress < stall:
        assert time.monotonic() < deadline, "still taking bytes after %ds (%d bytes)" % (timeout, sent)
        assert sent < limit, "took %d bytes without stalling" % sent
        try:
            n = sock.send(BLOCK)
            h.update(BLOCK[:n])
            sent += n
            last_progress = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    sock.setblocking(True)
    return sent


class HoldingBackend:
    """Accepts connections and does nothing with them until release(): then
    reads everything, hashing it, until the client half-closes."""

    def __init__(self):
        self.release_ev = threading.Event()
        self.digests = []
        self.b = kit.Backend(self._handle)

    def _handle(self, c):
        self.release_ev.wait(120)
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
        self.digests.append((n, h.hexdigest()))
        return n


@t.test
def backend_that_never_reads(ctx):
    hb = HoldingBackend()
    ctx.cleanups.append(hb.b.close)
    ctx.cleanups.append(hb.release_ev.set)
    w = kit.World(ctx, {"hold": str(hb.b.port)})
    px = w.proxy("hold")
    before = rss_all(w, px)
    s = pt.connect(px.port)
    h = hashlib.sha256()
    sent = push_until_stalled(s, h)
    during = rss_all(w, px)
    # it stays stalled
    s.setblocking(False)
    try:
        more = s.send(BLOCK)
    except BlockingIOError:
        more = 0
    s.setblocking(True)
    print("# backend never reads: the client's socket took %.1f MiB, then nothing for 2 s; VmRSS KiB before %s, "
          "stalled %s" % (sent / MIB, before, during))
    # on the upgraded path what waits is in the kernel's socket buffers: four
    # TCP connections (client, proxy-relay, relay-server, backend), each up to
    # its autotuned receive buffer plus send buffer, and the relay's pipe
    assert sent < 4 * (sysctl_max("tcp_rmem") + sysctl_max("tcp_wmem")) + 16 * MIB, sent
    for name in before:
        assert during[name] - before[name] < mem_bound_kib(), (name, before[name], during[name])
    # the backend reads at last: every byte arrives, in order
    h.update(BLOCK[:more])
    hb.release_ev.set()
    s.shutdown(socket.SHUT_WR)
    fk.wait_until("backend got everything", lambda: hb.digests, timeout=60)
    n, digest = hb.digests[0]
    assert n == sent + more and digest == h.hexdigest(), (n, sent + more)
    assert pt.wait_closed(s, timeout=30) == b""
    s.close()


class FloodBackend:
    """Sends BLOCKs as fast as the tunnel takes them, counting, until the
    client goes away."""

    def __init__(self):
        self.sent = 0
        self.b = kit.Backend(self._handle)

    def _handle(self, c):
        try:
            while True:
                c.sendall(BLOCK)
                self.sent += len(BLOCK)
        except OSError:
            pass
        return self.sent


@t.test
def client_that_never_reads(ctx):
    fb = FloodBackend()
    ctx.cleanups.append(fb.b.close)
    w = kit.World(ctx, {"flood": str(fb.b.port)})
    px = w.proxy("flood")
    before = rss_all(w, px)
    s = pt.connect(px.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.sendall(b"go")
    # the backend's sends stop being taken
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - since < 2:
        assert time.monotonic() < deadline, "backend still sending after 60 s: %d bytes" % fb.sent
        if fb.sent != last:
            last, since = fb.sent, time.monotonic()
        time.sleep(0.05)
    stalled_at = fb.sent
    during = rss_all(w, px)
    print("# client never reads: the backend got %.1f MiB out, then nothing for 2 s; VmRSS KiB before %s, stalled %s" %
          (stalled_at / MIB, before, during))
    assert stalled_at < 64 * MIB, stalled_at
    for name in before:
        assert during[name] - before[name] < mem_bound_kib(), (name, before[name], during[name])
    # the client reads at last: the bytes flow again, in order
    got = 0
    s.settimeout(30)
    while got < stalled_at + 8 * MIB:
        d = s.recv(1 << 20)
        assert d, "tunnel ended after %d bytes" % got
        off = got % len(BLOCK)
        assert d == (BLOCK[off:] + BLOCK * (len(d) // len(BLOCK) + 2))[:len(d)], "bytes out of order at %d" % got
        got += len(d)
    assert fb.sent > stalled_at
    s.close()


@t.test
def a_stalled_tunnel_holds_back_only_itself(ctx):
    """On the chunked path each terminator carries all its tunnels on one
    HTTP/2 connection to the relay. One tunnel whose backend never reads (the
    server's accept stream stops taking bytes) and one whose client never
    reads (the proxy's connect stream stops) must not slow a third tunnel on
    the same two connections: it moves 16 MiB each way while they are
    stalled, and the stalled ones still carry every byte once their readers
    read."""
    stalled_tunnels(ctx, "chunks")


@t.test
def a_stalled_tunnel_holds_back_only_itself_upgraded(ctx):
    """The same on the upgraded path, where each tunnel has a connection of
    its own and the relay splices them: TCP's backpressure stops only the
    stalled ones."""
    stalled_tunnels(ctx, "upgrade")


def stalled_tunnels(ctx, data_path):
    hb = HoldingBackend()
    ctx.cleanups.append(hb.b.close)
    ctx.cleanups.append(hb.release_ev.set)
    fb = FloodBackend()
    ctx.cleanups.append(fb.b.close)
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, {"hold": str(hb.b.port), "flood": str(fb.b.port), "echo": str(echo.port)},
                  server_args=["--data-path", data_path])
    px = ctx.proxy(w.relay.url, w.ckey, args=["--forward", "0=foo/hold", "--forward", "0=foo/flood",
                                              "--forward", "0=foo/echo", "--data-path", data_path], wait=False)
    fk.wait_until("three forwards", lambda: len(re.findall(r"listening on 127\.0\.0\.1:\d+", px.log())) == 3,
                  timeout=20)
    hold_port, flood_port, echo_port = [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+)", px.log())]
    held = pt.connect(hold_port)
    h = hashlib.sha256()
    sent = push_until_stalled(held, h)
    flooded = pt.connect(flood_port)
    flooded.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    flooded.sendall(b"go")
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 1:
        if fb.sent != last:
            last, since = fb.sent, time.monotonic()
        time.sleep(0.05)
    assert len(hb.digests) == 0
    up, down, n, took = kit.bulk_both_ways(echo_port, 16 * MIB, timeout=60)
    assert up == down and n == 16 * MIB, (up, down, n)
    conns = {p.name: pt.tcp_conns_to(p.popen.pid, w.relay.port) for p in (w.server, px)}
    print("# with a backend and a client stalled, a third tunnel moved 16 MiB each way in %.2fs; "
          "connections to the relay: %s" % (took, conns))
    if data_path == "chunks":
        assert conns == {"ptth_server": 1, "ptth_proxy": 1}, conns
    else:  # the HTTP/2 connection (listens) and one leg per open tunnel
        assert conns["ptth_proxy"] == 2 and conns["ptth_server"] == 3, conns
    # the stalled ones carry on
    hb.release_ev.set()
    held.shutdown(socket.SHUT_WR)
    fk.wait_until("backend got everything", lambda: hb.digests, timeout=60)
    assert hb.digests[0] == (sent, h.hexdigest()), (hb.digests[0], sent)
    flooded.settimeout(30)
    got = 0
    while got < last + MIB:
        d = flooded.recv(1 << 20)
        assert d, "flood tunnel ended after %d bytes" % got
        got += len(d)
    held.close()
    flooded.close()


@t.test
def backend_restart(ctx):
    port = pt.free_port()

    def listen():
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(16)
        return ls

    conns = []
    killed = threading.Event()

    def echo(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            if not killed.is_set():
                c.shutdown(socket.SHUT_WR)
                c.close()
        except OSError:
            pass

    def serve(ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            conns.append(c)
            threading.Thread(target=echo, args=(c,), daemon=True).start()

    ls = listen()
    threading.Thread(target=serve, args=(ls,), daemon=True).start()
    w = kit.World(ctx, {"echo": str(port)})
    px = w.proxy("echo")
    s = pt.connect(px.port)
    s.sendall(b"one")
    assert pt.recv_exactly(s, 3) == b"one"
    # the backend dies: its listener and connections go (RST)
    killed.set()
    ls.shutdown(socket.SHUT_RDWR)
    ls.close()
    for c in conns:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.shutdown(socket.SHUT_RD)  # wakes the echo thread without a FIN
        c.close()
    pt.wait_closed(s, timeout=10)
    s.close()
    # while it is down, connections are refused with the reason
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    line = px.wait_for(r"event=connect_refused [^\n]*status=502[^\n]*").group(0)
    assert "refused" in line.lower(), line
    # back on the same port: used again, the server never stopped
    killed.clear()
    ls = listen()
    ctx.cleanups.append(lambda: (ls.shutdown(socket.SHUT_RDWR), ls.close()))
    threading.Thread(target=serve, args=(ls,), daemon=True).start()
    assert kit.echo_once(px.port, b"two") == b"two"
    assert w.server.alive()
    assert w.server.count(r"event=backend_failed ") >= 1


t.run()
