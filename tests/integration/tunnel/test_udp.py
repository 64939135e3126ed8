#!/usr/bin/env python3
"""UDP forwarding (SPEC 9.4) with real processes: dig through the tunnel to a
real dnsmasq behind ptth_server (TARGET udp:127.0.0.1:PORT); 10,000 datagrams
of random sizes against a UDP echo backend, none changed, merged, reordered
or delivered to the wrong peer; empty and 65,507-byte datagrams; two peers
isolated; the idle timeout ends a session (relay logs proto=udp); a backend
port with nothing listening (ICMP unreachable) does not end the session; many
sessions at once; --forward udp: from a config file."""

import json
import os
import random
import select
import signal
import shutil
import socket
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()

DNSMASQ = "/usr/sbin/dnsmasq"


class UdpEcho:
    """A loopback UDP echo server in a thread; counts what it saw."""

    def __init__(self, ctx, port=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.peers = set()
        self.closing = False
        threading.Thread(target=self._serve, daemon=True).start()
        ctx.cleanups.append(self.close)

    def _serve(self):
        while not self.closing:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.received += 1
            self.peers.add(peer)
            try:
                self.sock.sendto(data, peer)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.sock.close()


def client(timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


def udp_world(ctx, backend_port, relay_args=()):
    return kit.World(ctx, {"echo": "udp:127.0.0.1:%d" % backend_port}, relay_args=list(relay_args))


def udp_proxy(w, port="echo", args=()):
    p = w.proxy(port, args=["--udp"] + list(args))
    assert "(udp)" in p.log(), p.log()
    return p


def round_trip(s, port, payload, timeout=5.0):
    s.sendto(payload, ("127.0.0.1", port))
    s.settimeout(timeout)
    data, _ = s.recvfrom(65535)
    return data


def first_reply(s, port, payload, timeout=15.0):
    """The first datagram of a session may wait for the tunnel; resend until
    one comes back."""
    deadline = time.monotonic() + timeout
    while True:
        s.sendto(payload, ("127.0.0.1", port))
        s.settimeout(0.5)
        try:
            data, _ = s.recvfrom(65535)
            return data
        except socket.timeout:
            assert time.monotonic() < deadline, "no reply within %.0fs" % timeout


@t.test
def dig_through_dnsmasq(ctx):
    if not os.path.exists(DNSMASQ) or shutil.which("dig") is None:
        raise AssertionError("dnsmasq or dig missing: install dnsmasq bind9-dnsutils (./ptth-dev deps)")
    port = pt.free_port()
    dns = ctx.start([DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--port=%d" % port, "--listen-address=127.0.0.1",
                     "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", "--log-queries",
                     "--log-facility=-", "--address=/example.test/10.1.2.3", "--address=/v6.example.test/fd00::7"],
                    name="dnsmasq")
    dns.wait_for(r"started, version")
    w = kit.World(ctx, {"dns": "udp:127.0.0.1:%d" % port})
    px = w.proxy("dns", args=["--udp"])
    for name, rtype, want in (("example.test", "A", "10.1.2.3"), ("www.example.test", "A", "10.1.2.3"),
                              ("v6.example.test", "AAAA", "fd00::7")):
        r = pt.run(["dig", "@127.0.0.1", "-p", str(px.port), "+short", "+tries=3", "+time=5", name, rtype], timeout=40)
        assert r.returncode == 0 and r.stdout.strip() == want, (name, r.returncode, r.stdout, r.stderr)
    dns.wait_for(r"query\[A\] www\.example\.test from 127\.0\.0\.1")
    # dig uses a new source port per run: one session (tunnel) each
    assert px.count(r"event=tunnel_end") == 0
    w.relay.wait_for(r"event=server_online")


@t.test
def ten_thousand_datagrams_unchanged_and_in_order(ctx):
    """Two peers, 5,000 datagrams each of random sizes 1..1400, interleaved:
    every echo is the datagram sent (none changed, cut or merged), in order,
    and only ever reaches the peer that sent it."""
    echo = UdpEcho(ctx)
    w = udp_world(ctx, echo.port)
    px = udp_proxy(w)
    peers = [client(), client()]
    for i, s in enumerate(peers):
        assert first_reply(s, px.port, b"hello %d" % i) == b"hello %d" % i
        s.setblocking(False)
    rng = random.Random(15)
    n, window = 5000, 32
    sent = [[], []]
    got = [0, 0]
    deadline = time.monotonic() + 120
    while got[0] < n or got[1] < n:
        assert time.monotonic() < deadline, "%s of %d echoes after 120 s" % (got, n)
        for i, s in enumerate(peers):
            while len(sent[i]) < n and len(sent[i]) - got[i] < window:
                size = rng.randint(1, 1400)
                # peer, sequence number, then random bytes: a misdelivered or reordered one cannot pass for the right one
                body = (struct.pack(">BI", i, len(sent[i])) + rng.randbytes(size))[:size]
                sent[i].append(body)
                s.sendto(body, ("127.0.0.1", px.port))
        r, _, _ = select.select(peers, [], [], 5.0)
        assert r, "no echo within 5 s after %s of %d" % (got, n)
        for s in r:
            i = peers.index(s)
            while True:
                try:
                    data, _ = s.recvfrom(65535)
                except BlockingIOError:
                    break
                assert got[i] < n, "peer %d: more echoes than datagrams sent" % i
                want = sent[i][got[i]]
                assert data == want, "peer %d datagram %d: %d bytes back (%r...), %d sent" % (
                    i, got[i], len(data), data[:5], len(want))
                got[i] += 1
    assert echo.received == 2 * n + 2, echo.received
    assert len(echo.peers) == 2  # one session per peer: one connected socket each at the server
    sizes = [len(b) for b in sent[0] + sent[1]]
    assert min(sizes) == 1 and max(sizes) == 1400, (min(sizes), max(sizes))


@t.test
def empty_and_largest_datagrams(ctx):
    echo = UdpEcho(ctx)
    w = udp_world(ctx, echo.port)
    px = udp_proxy(w)
    s = client()
    assert first_reply(s, px.port, b"x") == b"x"
    for payload in (b"", os.urandom(65507), b"", b"after", os.urandom(30000)):
        assert round_trip(s, px.port, payload) == payload, len(payload)


@t.test
def two_peers_are_isolated(ctx):
    """Two peers: two sessions, two tunnels (the relay's /v1/status lists
    them as proto udp), and each only ever gets its own answers."""
    echo = UdpEcho(ctx)
    admin = ctx.key("admin")
    w = udp_world(ctx, echo.port, relay_args=["--admin-key-hash", admin.hash])
    px = udp_proxy(w)
    a, b = client(), client()
    assert first_reply(a, px.port, b"A") == b"A"
    assert first_reply(b, px.port, b"B") == b"B"
    for i in range(300):
        a.sendto(b"A%d" % i, ("127.0.0.1", px.port))
        b.sendto(b"B%d" % i, ("127.0.0.1", px.port))
        assert a.recvfrom(100)[0] == b"A%d" % i
        assert b.recvfrom(100)[0] == b"B%d" % i
    assert len(echo.peers) == 2, echo.peers
    req = urllib.request.Request("http://127.0.0.1:%d/v1/status" % w.relay.port,
                                 headers={"Authorization": "Bearer " + admin.text})
    with urllib.request.urlopen(req, timeout=10) as r:
        tunnels = json.load(r)["tunnels"]
    assert sorted((x["port"], x["proto"], x["state"]) for x in tunnels) == [("echo", "udp", "open")] * 2, tunnels
    for s in (a, b):
        s.setblocking(False)
        try:
            extra = s.recvfrom(100)
            raise AssertionError("stray datagram %r" % (extra,))
        except BlockingIOError:
            pass


@t.test
def idle_timeout_ends_the_session(ctx):
    echo = UdpEcho(ctx)
    w = udp_world(ctx, echo.port)
    px = udp_proxy(w, args=["--udp-idle-timeout", "1"])
    s = client()
    assert first_reply(s, px.port, b"one") == b"one"
    started = time.monotonic()
    m = w.relay.wait_for(r"event=tunnel_end [^\n]*port=echo[^\n]*reason=fin[^\n]*proto=udp", timeout=10)
    took = time.monotonic() - started
    assert 0.5 < took < 5, took
    px.wait_for(r"event=udp_session_end [^\n]*reason=idle")
    assert "proto=udp" in m.group(0)
    # a new datagram from the same peer opens a new session
    assert first_reply(s, px.port, b"two") == b"two"
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*proto=udp", 2, timeout=10)


@t.test
def nothing_listening_does_not_end_the_session(ctx):
    port = pt.free_port()  # a UDP port with nothing bound: the server's socket gets ICMP unreachable
    w = udp_world(ctx, port)
    px = udp_proxy(w, args=["--udp-idle-timeout", "3"])
    s = client(timeout=0.3)
    for i in range(20):
        s.sendto(b"anyone? %d" % i, ("127.0.0.1", px.port))
        time.sleep(0.05)
    try:
        s.recvfrom(100)
        raise AssertionError("a reply from nowhere")
    except socket.timeout:
        pass
    time.sleep(1.0)
    assert w.relay.count(r"event=tunnel_end") == 0, w.relay.log()
    echo = UdpEcho(ctx, port=port)  # the backend comes up: the same session reaches it
    assert first_reply(s, px.port, b"now?", timeout=10) == b"now?"
    assert w.relay.count(r"event=tunnel_end") == 0, w.relay.log()
    assert len(echo.peers) == 1
    # the one session ends by the idle timeout, cleanly; ptth_server counted the unreachables
    w.relay.wait_for(r"event=tunnel_end [^\n]*reason=fin[^\n]*proto=udp", timeout=15)
    m = w.server.wait_for(r"event=udp_session_end [^\n]*datagrams_to_backend=(\d+) [^\n]*unreachable=(\d+)")
    assert int(m.group(1)) >= 2 and int(m.group(2)) >= 1, m.group(0)
    assert w.relay.count(r"event=tunnel_end") == 1, w.relay.log()


@t.test
def a_full_queue_drops_the_newest(ctx):
    """While a session's tunnel cannot move datagrams (ptth_server stopped
    before it accepts), its queue fills; then the newest datagrams are
    dropped and counted, never held without bound: what the backend gets is
    the oldest ones, in order, and got + dropped is what was sent."""
    echo = UdpEcho(ctx)
    w = udp_world(ctx, echo.port)
    px = udp_proxy(w, args=["--udp-idle-timeout", "2"])
    s = client()
    n = 600
    w.server.signal(signal.SIGSTOP)
    try:
        for i in range(n):
            s.sendto(struct.pack(">I", i) + b"q" * 996, ("127.0.0.1", px.port))
        time.sleep(0.5)
    finally:
        w.server.signal(signal.SIGCONT)
    got = []
    s.settimeout(3.0)
    try:
        while len(got) < n:
            got.append(struct.unpack(">I", s.recvfrom(2000)[0][:4])[0])
    except socket.timeout:
        pass
    m = px.wait_for(r"event=udp_session_end [^\n]*datagrams_up=(\d+) [^\n]*dropped_up=(\d+) ", timeout=15)
    up, dropped = int(m.group(1)), int(m.group(2))
    assert 0 < up < n and dropped > 0, (up, dropped, m.group(0))
    assert up + dropped == n, (up, dropped, n)  # every datagram carried or counted
    assert echo.received == up, (echo.received, up)
    m = w.server.wait_for(r"event=udp_session_end [^\n]*datagrams_to_backend=(\d+) ")
    assert int(m.group(1)) == up, m.group(0)
    # the oldest ones, in order: the newest were dropped (the answers are UDP
    # too: a burst of them may overflow a socket on the way back)
    assert 0 < len(got) <= up and got == list(range(len(got))), (len(got), got[:20])
    print("# %d datagrams into a stalled session: %d carried, %d dropped" % (n, up, dropped))


@t.test
def udp_and_tcp_ports_do_not_mix(ctx):
    """A UDP session to a TCP port, or a TCP connection to a udp: port, is
    refused by ptth_server (the relay tells it what the client's tunnel
    carries): framed datagrams never reach a byte-stream backend, nor a byte
    stream a UDP backend."""
    echo = UdpEcho(ctx)
    tcp = kit.echo_backend(ctx)
    w = kit.World(ctx, {"dns": "udp:127.0.0.1:%d" % echo.port, "ssh": "127.0.0.1:%d" % tcp.port})
    upx = w.proxy("ssh", args=["--udp"])
    s = client(timeout=0.5)
    s.sendto(b"to a tcp port", ("127.0.0.1", upx.port))
    m = upx.wait_for(r"event=connect_refused [^\n]*status=502[^\n]*", timeout=10)
    assert "not a UDP target" in m.group(0), m.group(0)
    upx.wait_for(r"event=udp_sessions_paused [^\n]*status=502")
    w.server.wait_for(r"event=backend_failed [^\n]*port=ssh")
    assert tcp.accepted == 0, tcp.accepted  # the server checked before opening the backend
    tpx = w.proxy("dns")
    c = pt.connect(tpx.port)
    c.sendall(b"\x00\x05hello")
    pt.wait_closed(c)
    m = tpx.wait_for(r"event=connect_refused [^\n]*status=502[^\n]*", timeout=10)
    assert "is a UDP target" in m.group(0), m.group(0)
    assert echo.received == 0, echo.received
    assert w.relay.count(r"event=tunnel_end [^\n]*port=ssh[^\n]*reason=backend[^\n]*proto=udp") == 1, w.relay.log()
    assert w.relay.count(r"event=tunnel_end [^\n]*port=dns[^\n]*reason=backend[^\n]*proto=tcp") == 1, w.relay.log()


@t.test
def a_refused_session_pauses_new_ones(ctx):
    """The relay refusing a session (here: a port the client may not reach,
    403) keeps the front from asking again for every datagram of every new
    peer: one refusal, then a pause during which datagrams are dropped."""
    echo = UdpEcho(ctx)
    w = kit.World(ctx, {"echo": "udp:127.0.0.1:%d" % echo.port, "other": "udp:127.0.0.1:%d" % echo.port},
                  allow=("alice=foo/other",))
    px = udp_proxy(w)
    peers = [client(timeout=0.2) for _ in range(20)]
    peers[0].sendto(b"first", ("127.0.0.1", px.port))
    px.wait_for(r"event=udp_sessions_paused [^\n]*status=403[^\n]*pause_ms=1000")
    for s in peers[1:]:
        s.sendto(b"while paused", ("127.0.0.1", px.port))
    time.sleep(0.3)
    assert px.count(r"event=connect_refused") == 1, px.log()
    time.sleep(1.0)  # the pause is over: the next new peer is asked for again
    peers[1].sendto(b"after the pause", ("127.0.0.1", px.port))
    kit.wait_count(px, r"event=connect_refused [^\n]*status=403", 2, timeout=10)
    assert echo.received == 0


def relay_connections(relay_port):
    """Established TCP connections to the relay's port (from both terminators)."""
    r = pt.run(["ss", "-Htn", "state", "established", "( dport = :%d )" % relay_port], timeout=10)
    return len([line for line in r.stdout.splitlines() if line.strip()])


@t.test
def many_sessions_at_once(ctx):
    n = 1000
    echo = UdpEcho(ctx)
    # on the upgraded path every tunnel has a relay connection of its own (a
    # TCP tunnel too): 2 per session from one address, past the relay's
    # default --max-connections-per-address
    w = udp_world(ctx, echo.port, relay_args=["--max-connections-per-address", "0"])
    px = udp_proxy(w)
    socks = [client() for _ in range(n)]
    pending = {s: b"peer %d" % i for i, s in enumerate(socks)}
    started = time.monotonic()
    deadline = started + 60
    last_send = 0
    while pending:
        assert time.monotonic() < deadline, "%d of %d sessions answered" % (n - len(pending), n)
        if time.monotonic() - last_send > 2:  # the first datagrams wait while the tunnels open; resend
            for s, body in pending.items():
                s.sendto(body, ("127.0.0.1", px.port))
            last_send = time.monotonic()
        r, _, _ = select.select(list(pending), [], [], 0.5)
        for s in r:
            data, _ = s.recvfrom(100)
            assert data == pending[s], (data, pending[s])
            del pending[s]
    took = time.monotonic() - started
    assert len(echo.peers) == n, len(echo.peers)
    # every session is still open, and each one answers its own peer only
    for i, s in enumerate(socks):
        s.sendto(b"again %d" % i, ("127.0.0.1", px.port))
    for i, s in enumerate(socks):
        data = s.recvfrom(100)[0]
        while data == b"peer %d" % i:  # the echo of a resent first datagram
            data = s.recvfrom(100)[0]
        assert data == b"again %d" % i, (i, data)
    conns = relay_connections(w.relay.port)
    assert w.relay.count(r"event=tunnel_end") == 0, w.relay.log()[-2000:]
    if os.environ.get("PTTH_TEST_DATA_PATH") == "chunks":
        # the chunked path multiplexes the sessions over a few relay connections
        assert conns < 64, conns
    else:
        assert conns >= 2 * n, conns
    print("# %d UDP sessions at once in %.1f s over %d relay connections" % (n, took, conns))
    for s in socks:
        s.close()


@t.test
def forward_udp_from_a_config_file(ctx):
    echo = UdpEcho(ctx)
    w = udp_world(ctx, echo.port)
    conf = ctx.path("proxy.conf")
    with open(conf, "w") as f:
        f.write("forward = udp:127.0.0.1:0=foo/echo\nudp-idle-timeout = 30\n")
    px = w.ctx.proxy(w.relay.url, w.ckey, args=["--config", conf], wait=False)
    port = int(px.wait_for(r"listening on 127\.0\.0\.1:(\d+) \(udp\)").group(1))
    s = client()
    assert first_reply(s, port, b"via config") == b"via config"
    r = pt.run([pt.program("ptth_proxy"), "--relay", w.relay.url, "--key-file", w.ckey.path, "--udp", "--forward",
                "udp:1=foo/echo", "--check-config"], timeout=10)
    assert r.returncode == 2 and "--udp needs --server and --port" in r.stderr, r.stderr
    r = pt.run([pt.program("ptth_server"), "--relay", w.relay.url, "--name", "foo", "--key-file", w.skey.path,
                "--port-map", "x=udp:nohostport", "--check-config"], timeout=10)
    assert r.returncode == 2 and "udp target" in r.stderr, r.stderr


t.run()
