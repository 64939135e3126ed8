#!/usr/bin/env python3
"""--data-path (SPEC §9.1) with real relay, server and proxy: the upgraded
path is the default; `chunks` never asks; a relay with --upgrade off, a
front that drops Upgrade, answers 400 or closes, and a server on the chunked
path all leave `auto` tunnels working on the chunked path (remembered, and
said once); `upgrade` refuses instead; heartbeats and the relay's idle
timeout on the upgraded path."""

import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import tunnelkit as kit  # noqa: E402

t = pt.Tap()


class Front(threading.Thread):
    """A TCP front on loopback standing for a proxy in front of the relay.
    It looks at the first request head of each connection; one that asks to
    upgrade gets `mode`: "strip" (Upgrade and Connection removed, then
    passed on), "400" (answered 400), "close" (closed). Everything else
    (HTTP/2 prior knowledge, plain requests) is passed on as it is."""

    def __init__(self, relay_port, mode):
        super().__init__(daemon=True)
        self.relay_port, self.mode = relay_port, mode
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.upgrades_seen = 0
        self.stopped = False
        self.start()

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                b.sendall(d)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(self, c):
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(1 << 16)
                if not d:
                    c.close()
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            if re.search(rb"(?im)^upgrade: *ptth-tunnel", head):
                self.upgrades_seen += 1
                if self.mode == "400":
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request")
                    c.close()
                    return
                if self.mode == "close":
                    c.close()
                    return
                head = b"\r\n".join(line for line in head.split(b"\r\n")
                                    if not re.match(rb"(?i)(upgrade|connection):", line))
            r = socket.create_connection(("127.0.0.1", self.relay_port))
            r.sendall(head + b"\r\n\r\n" + rest)
            threading.Thread(target=self.pipe, args=(r, c), daemon=True).start()
            self.pipe(c, r)
        except OSError:
            c.close()

    def close(self):
        self.stopped = True
        self.lsock.close()


def ends(relay):
    return [dict(kv.split("=", 1) for kv in m.split() if "=" in kv)
            for m in re.findall(r"event=tunnel_end [^\n]*", relay.log())]


def wait_ends(relay, n, timeout=15):
    deadline = time.monotonic() + timeout
    while len(ends(relay)) < n:
        assert time.monotonic() < deadline, relay.log()[-3000:]
        time.sleep(0.05)
    return ends(relay)


def world(ctx, relay_args=(), server_args=(), proxy_args=(), front=None):
    echo = kit.echo_backend(ctx)
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=list(relay_args))
    url = relay.url
    if front is not None:
        f = Front(relay.port, front)
        ctx.cleanups.append(f.close)
        url = f.url
    else:
        f = None
    srv = ctx.server(url, "foo", sk, ["echo=%d" % echo.port], args=list(server_args))
    relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = ctx.proxy(url, ck, "foo", "echo", args=list(proxy_args))
    return relay, srv, px, f


def echo_ok(port, size=200000):
    payload = os.urandom(size)
    s = pt.connect(port)
    s.sendall(payload)
    got = pt.recv_exactly(s, size)
    s.shutdown(socket.SHUT_WR)
    assert pt.recv_until_eof(s) == b""
    s.close()
    assert got == payload


@t.test
def the_upgraded_path_is_the_default(ctx):
    relay, srv, px, _ = world(ctx)
    echo_ok(px.port)
    e = wait_ends(relay, 1)[0]
    assert e["path"] == "upgrade" and e["reason"] == "fin", e
    for p in (srv, px):
        p.wait_for(r'event=tunnel_end [^\n]*reason="fin"')
        assert "upgrade_unavailable" not in p.log(), p.log()


@t.test
def data_path_chunks_never_asks(ctx):
    relay, srv, px, f = world(ctx, server_args=["--data-path", "chunks"], proxy_args=["--data-path", "chunks"], front="400")
    for _ in range(2):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 2)), ends(relay)
    assert f.upgrades_seen == 0


@t.test
def relay_with_upgrade_off_falls_back_and_remembers(ctx):
    relay, srv, px, _ = world(ctx, relay_args=["--upgrade", "off"])
    for _ in range(3):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 3)), ends(relay)
    for p in (srv, px):
        assert p.count(r"event=upgrade_unavailable [^\n]*--upgrade off") == 1, p.log()[-3000:]


@t.test
def a_front_that_drops_upgrade(ctx):
    relay, srv, px, f = world(ctx, front="strip")
    for _ in range(3):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 3)), ends(relay)
    # the first tunnel of each side asked, then it was remembered
    assert f.upgrades_seen == 2, f.upgrades_seen
    for p in (srv, px):
        assert p.count(r"event=upgrade_unavailable") == 1, p.log()[-3000:]


@t.test
def a_front_that_answers_400(ctx):
    relay, srv, px, f = world(ctx, front="400")
    for _ in range(3):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 3)), ends(relay)
    assert f.upgrades_seen == 2, f.upgrades_seen
    for p in (srv, px):
        assert p.count(r"event=upgrade_unavailable [^\n]*HTTP 400") == 1, p.log()[-3000:]


@t.test
def a_front_that_closes_upgrade_requests(ctx):
    relay, srv, px, f = world(ctx, front="close")
    for _ in range(2):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 2)), ends(relay)
    # no answer at all is not remembered (it may be a relay restart): each
    # tunnel asks once and goes on on the chunked path
    assert f.upgrades_seen >= 2, f.upgrades_seen


@t.test
def a_server_on_the_chunked_path_is_not_a_path_problem(ctx):
    relay, srv, px, _ = world(ctx, server_args=["--data-path", "chunks"])
    for _ in range(2):
        echo_ok(px.port)
    assert all(e["path"] == "chunks" and e["reason"] == "fin" for e in wait_ends(relay, 2)), ends(relay)
    assert "upgrade_unavailable" not in px.log(), px.log()[-3000:]
    # both tunnels ended cleanly for the proxy too (its lines may come a
    # moment after the relay's)
    deadline = time.monotonic() + 10
    while px.count(r"event=tunnel_end [^\n]*reason=\"fin\"") < 2:
        assert time.monotonic() < deadline, px.log()[-3000:]
        time.sleep(0.05)


@t.test
def data_path_upgrade_refuses_what_cannot_be_upgraded(ctx):
    relay, srv, px, _ = world(ctx, relay_args=["--upgrade", "off"], proxy_args=["--data-path", "upgrade"])
    s = pt.connect(px.port)
    s.sendall(b"x")
    pt.wait_closed(s)
    s.close()
    px.wait_for(r"event=connect_failed [^\n]*--data-path upgrade: the relay did not upgrade")


@t.test
def idle_tunnel_gets_heartbeats_and_the_relay_idle_timeout(ctx):
    relay, srv, px, _ = world(ctx, relay_args=["--heartbeat", "1", "--idle-timeout", "3"])
    s = pt.connect(px.port)
    s.sendall(b"ping")
    assert pt.recv_exactly(s, 4) == b"ping"
    time.sleep(1.8)
    s.sendall(b"still")  # data resets the idle clock
    assert pt.recv_exactly(s, 5) == b"still"
    started = time.monotonic()
    pt.wait_closed(s, timeout=10)
    idle = time.monotonic() - started
    s.close()
    assert 2.0 <= idle <= 6.0, idle
    e = wait_ends(relay, 1)[0]
    # the relay ended it, although PINGs went through every second
    assert e["path"] == "upgrade" and e["reason"] == "idle" and int(e["bytes_up"]) > 9 + 4, e


t.run()
