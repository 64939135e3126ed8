#!/usr/bin/env python3
"""The terminators' /metrics (--metrics-listen, SPEC §9.5): a real relay,
ptth_server and ptth_proxy on loopback, both terminators scraped over HTTP
and their text parsed by the same strict parser as the relay's (promtext.py).
Tunnels are opened and ended with FIN, refused by the relay, sent to a
backend that is down, and held open; the counters of both programs must
move exactly as those tunnels say. Also: 404/405 answers, one answer per
connection, and a bad --metrics-listen failing at start."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import promtext  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()


def http_get(port, path="/metrics", method="GET", timeout=10.0):
    """(status, headers dict, body) of one request; the server must close after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path)).encode())
        data = pt.recv_until_eof(s, timeout=timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    assert int(headers["content-length"]) == len(body), (headers, len(body))
    return status, headers, body


def scrape(port):
    status, headers, body = http_get(port)
    assert status == 200, status
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    return promtext.parse(body.decode("utf-8"))


def metrics_port(proc):
    return int(proc.wait_for(r"event=metrics_listen listen=127\.0\.0\.1:(\d+)").group(1))


class World:
    """relay; ptth_server foo with echo (a live backend) and dead (nothing
    listens there); ptth_proxy with forwards to foo/echo, foo/dead, foo/nope
    (not offered) and bar/x (alice may not reach bar)."""

    def __init__(self, ctx):
        skey, akey = ctx.key("foo"), ctx.key("alice")
        self.relay = ctx.relay(servers={"foo": skey, "bar": ctx.key("bar")}, clients={"alice": akey},
                               allow=["alice=foo/*"], args=["--listen-timeout", "1"])
        self.echo = pt.EchoServer()
        ctx.cleanups.append(self.echo.close)
        dead = pt.free_port()
        self.server = ctx.server(self.relay.url, "foo", skey, ["echo=%d" % self.echo.port, "dead=%d" % dead],
                                 args=["--metrics-listen", "127.0.0.1:0"])
        self.sport = metrics_port(self.server)
        self.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
        argv = [pt.program("ptth_proxy"), "--relay", self.relay.url, "--key-file", akey.path,
                "--metrics-listen", "127.0.0.1:0"]
        self.targets = ["foo/echo", "foo/dead", "foo/nope", "bar/x"]
        for target in self.targets:
            argv += ["--forward", "127.0.0.1:0=%s" % target]
        argv += ctx.data_path_args([])
        self.proxy = ctx.start(argv, name="ptth_proxy")
        self.pport = metrics_port(self.proxy)
        pt.wait_until("four forwards listening", lambda: self.proxy.count(r"listening on ") == 4)
        ports = [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+)", self.proxy.log())]
        self.fwd = dict(zip(self.targets, ports))

    def wait_value(self, mport, name, want, **labels):
        """Polls the scrape until name{labels} == want (a tunnel's end is counted a moment after the client sees it)."""
        last = []

        def check():
            fams = scrape(mport)
            last[:] = [promtext.value(fams, name, **labels)]
            return last[0] == want
        try:
            pt.wait_until("%s%s == %s" % (name, labels, want), check, timeout=10)
        except AssertionError:
            raise AssertionError("%s%s is %s, expected %s" % (name, labels, last, want))


def port_total(fams, server, port, result):
    return promtext.value(fams, "ptth_terminator_port_tunnels_total", server=server, port=port, result=result)


@t.test
def counters_follow_the_tunnels(ctx):
    w = World(ctx)
    # listens come back every second (--listen-timeout 1): the server has had an answer
    w.wait_value(w.sport, "ptth_terminator_relay_up", 1)
    s0, p0 = scrape(w.sport), scrape(w.pport)
    for fams, program in ((s0, "ptth_server"), (p0, "ptth_proxy")):
        assert promtext.series(fams, "ptth_terminator_info")[0][0]["program"] == program
        assert promtext.value(fams, "ptth_terminator_tunnels_open") == 0
        for r in ("fin", "rst", "shutdown", "refused", "backend", "failed"):
            assert promtext.value(fams, "ptth_terminator_tunnels_total", result=r) == 0, r
    assert promtext.value(s0, "ptth_terminator_relay_connects_total") == 1
    assert promtext.value(p0, "ptth_terminator_relay_up") == 0  # no request yet
    assert sorted((l["server"], l["port"]) for l, _ in promtext.series(s0, "ptth_terminator_port_tunnels_open")) \
        == [("foo", "dead"), ("foo", "echo")]
    assert sorted("%s/%s" % (l["server"], l["port"]) for l, _ in promtext.series(p0, "ptth_terminator_port_tunnels_open")) \
        == sorted(w.targets)

    # 1. an echo tunnel ended by FIN both ways: 3000 bytes up, 3000 down
    payload = os.urandom(3000)
    with pt.connect(w.fwd["foo/echo"]) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        assert pt.recv_until_eof(c) == payload
    w.wait_value(w.pport, "ptth_terminator_tunnels_total", 1, result="fin")
    w.wait_value(w.sport, "ptth_terminator_tunnels_total", 1, result="fin")
    for port in (w.sport, w.pport):
        fams = scrape(port)
        assert promtext.value(fams, "ptth_terminator_bytes_total", direction="up") == 3000
        assert promtext.value(fams, "ptth_terminator_bytes_total", direction="down") == 3000
        assert port_total(fams, "foo", "echo", "fin") == 1
        assert promtext.value(fams, "ptth_terminator_port_bytes_total", server="foo", port="echo", direction="up") == 3000
        assert promtext.value(fams, "ptth_terminator_tunnels_open") == 0
        assert promtext.value(fams, "ptth_terminator_tunnels_opened_total") == 1

    # 2. the backend is down: the server counts "backend", the proxy a refusal (502)
    with pt.connect(w.fwd["foo/dead"]) as c:
        pt.wait_closed(c)
    w.wait_value(w.sport, "ptth_terminator_tunnels_total", 1, result="backend")
    w.wait_value(w.pport, "ptth_terminator_tunnels_total", 1, result="refused")
    fams = scrape(w.sport)
    assert promtext.value(fams, "ptth_terminator_failures_total", reason="backend") == 1
    assert port_total(fams, "foo", "dead", "backend") == 1
    fams = scrape(w.pport)
    assert promtext.value(fams, "ptth_terminator_failures_total", reason="relay_error") == 1  # 502
    assert port_total(fams, "foo", "dead", "refused") == 1

    # 3. refused by the relay: a port foo does not offer (404), a server alice may not reach (403)
    for target in ("foo/nope", "bar/x"):
        with pt.connect(w.fwd[target]) as c:
            pt.wait_closed(c)
    w.wait_value(w.pport, "ptth_terminator_tunnels_total", 3, result="refused")
    fams = scrape(w.pport)
    assert promtext.value(fams, "ptth_terminator_failures_total", reason="relay_refused") == 1
    assert promtext.value(fams, "ptth_terminator_failures_total", reason="relay_auth") == 1
    assert port_total(fams, "foo", "nope", "refused") == 1
    assert port_total(fams, "bar", "x", "refused") == 1
    assert promtext.value(fams, "ptth_terminator_relay_up") == 1
    assert promtext.value(fams, "ptth_terminator_relay_connects_total") == 1
    fams = scrape(w.sport)
    assert promtext.value(fams, "ptth_terminator_tunnels_opened_total") == 2  # the refused ones never reached it

    # 4. a tunnel held open: counted as open on both, its bytes shown before it ends
    c = pt.connect(w.fwd["foo/echo"])
    try:
        c.sendall(b"x" * 500)
        assert pt.recv_exactly(c, 500) == b"x" * 500
        w.wait_value(w.sport, "ptth_terminator_tunnels_open", 1)
        w.wait_value(w.pport, "ptth_terminator_port_tunnels_open", 1, server="foo", port="echo")
        w.wait_value(w.pport, "ptth_terminator_bytes_total", 3500, direction="up")
        w.wait_value(w.sport, "ptth_terminator_port_bytes_total", 3500, server="foo", port="echo", direction="down")
    finally:
        c.close()
    w.wait_value(w.pport, "ptth_terminator_tunnels_open", 0)
    w.wait_value(w.sport, "ptth_terminator_tunnels_open", 0)
    fams = scrape(w.pport)
    assert promtext.value(fams, "ptth_terminator_tunnels_opened_total") == 5
    ended = sum(v for _, v in promtext.series(fams, "ptth_terminator_tunnels_total"))
    assert ended == 5, ended


@t.test
def other_paths_and_methods(ctx):
    w = World(ctx)
    for port in (w.sport, w.pport):
        assert http_get(port, "/")[0] == 404
        assert http_get(port, "/metrics/x")[0] == 404
        status, headers, _ = http_get(port, method="POST")
        assert status == 405 and headers.get("allow") == "GET", (status, headers)
        assert http_get(port, "/metrics?format=x")[0] == 200
        # garbage is a 400, and the connection is closed after it
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            assert pt.recv_until_eof(s).startswith(b"HTTP/1.1 400 "), port
        # a client that sends nothing is closed (within the 5 s bound), and scrapes go on meanwhile
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            started = time.monotonic()
            scrape(port)
            idle.settimeout(10)
            assert idle.recv(1) == b""
            took = time.monotonic() - started
            assert 3 < took < 9, took


@t.test
def bad_metrics_listen_fails_at_start(ctx):
    key = ctx.key("k")
    base = {"ptth_server": ["--relay", "http://127.0.0.1:1", "--name", "foo", "--key-file", key.path, "--port-map", "a=1"],
            "ptth_proxy": ["--relay", "http://127.0.0.1:1", "--key-file", key.path, "--forward", "127.0.0.1:0=foo/a"]}
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        for prog, args in base.items():
            for bad in ("localhost:9100", "127.0.0.1", "127.0.0.1:70000"):
                r = pt.run([pt.program(prog)] + args + ["--metrics-listen", bad])
                assert r.returncode == 2, (prog, bad, r.returncode, r.stderr)
                assert "--metrics-listen" in r.stderr and bad in r.stderr, r.stderr
            addr = "127.0.0.1:%d" % taken.getsockname()[1]
            r = pt.run([pt.program(prog)] + args + ["--metrics-listen", addr], timeout=10)
            assert r.returncode == 1, (prog, r.returncode, r.stderr)
            assert re.search(r"%s: --metrics-listen: cannot listen on %s: Address already in use" % (prog, re.escape(addr)),
                             r.stderr), r.stderr
    finally:
        taken.close()


t.run()
