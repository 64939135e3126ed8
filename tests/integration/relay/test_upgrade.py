#!/usr/bin/env python3
"""ptth_relay's upgraded data path (SPEC §9.1, docs/protocol.md): connect and
accept over HTTP/1.1 with `Upgrade: ptth-tunnel/1` get 101 once matched and
the relay joins the two connections; half-close, reset, early bytes, TLS
(copy through h2o) and cleartext (splice), --upgrade off, one side only
asking, errors before the match, garbage and a stalled leg not holding back
other tunnels, and path= in the tunnel_end line. Raw sockets play the
terminators, so the relay is checked byte by byte."""

import hashlib
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
import relayclient as rc  # noqa: E402

t = pt.Tap()
TOKEN = "ptth-tunnel/1"
UPGRADE = {"Connection": "Upgrade", "Upgrade": TOKEN}


def setup(ctx, args=()):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=list(args))
    return relay, rc.Api(relay.port), sk, ck


def tunnel_end_line(relay, cid, timeout=10):
    m = relay.wait_for(r"event=tunnel_end id=%s [^\n]*" % re.escape(cid), timeout=timeout)
    return dict(kv.split("=", 1) for kv in m.group(0).split() if "=" in kv)


def open_upgraded(api, sk, ck, client_upgrade=True, server_upgrade=True, early=b""):
    """listen -> connect (Upgrade) -> accept (Upgrade). Returns (cid, client
    H1, client response, server H1, server response)."""
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    time.sleep(0.05)
    cc = rc.H1(api.port)
    h = dict(rc.bearer(ck))
    if client_upgrade:
        h.update(UPGRADE)
    cc.send("POST", api.connect_path("foo", "ssh"), h, b"")
    if early:
        cc.sock.sendall(early)
    lr = lc.read_head()
    lc.read_body(lr)
    lc.close()
    assert lr.status == 200, lr
    cid = lr.headers["ptth-conn"]
    ac = rc.H1(api.port)
    h = dict(rc.bearer(sk))
    if server_upgrade:
        h.update(UPGRADE)
    ac.send("POST", api.conn_path("foo", cid, "accept"), h, b"")
    ar = ac.read_head()
    cr = cc.read_head()
    return cid, cc, cr, ac, ar


def recv_n(conn, n, timeout=10.0):
    """n raw bytes from an upgraded H1 connection (its buffer first)."""
    data, conn.buf = conn.buf[:n], conn.buf[n:]
    deadline = time.monotonic() + timeout
    while len(data) < n:
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        b = conn.sock.recv(min(1 << 20, n - len(data)))
        if not b:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += b
    return data


def expect_eof(conn, timeout=10.0):
    assert conn.buf == b"", conn.buf[:100]
    conn.sock.settimeout(timeout)
    b = conn.sock.recv(100)
    assert b == b"", b


def expect_reset(conn, timeout=10.0):
    conn.sock.settimeout(timeout)
    try:
        while True:
            b = conn.sock.recv(1 << 16)
            if not b:
                raise AssertionError("clean end of stream where a reset was expected")
    except ConnectionResetError:
        return


@t.test
def both_sides_upgrade_and_bytes_flow_both_ways(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    for r in (cr, ar):
        assert r.status == 101, r
        assert r.headers.get("upgrade", "").lower() == TOKEN, r
        assert "upgrade" in r.headers.get("connection", "").lower(), r
        assert r.headers.get("ptth-conn") == cid, r
        assert r.headers.get("ptth-heartbeat") == "20", r
    cc.sock.sendall(b"hello server")
    assert recv_n(ac, 12) == b"hello server"
    ac.sock.sendall(b"hi client")
    assert recv_n(cc, 9) == b"hi client"
    # half-close: the client's end reaches the server, the server keeps sending
    cc.sock.shutdown(socket.SHUT_WR)
    expect_eof(ac)
    ac.sock.sendall(b"more")
    assert recv_n(cc, 4) == b"more"
    ac.sock.shutdown(socket.SHUT_WR)
    expect_eof(cc)
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "fin" and end["path"] == "upgrade", end
    assert end["bytes_up"] == "12" and end["bytes_down"] == "13", end
    cc.close()
    ac.close()


def send_both_ways(cc, ac, size, timeout):
    """size bytes (1 MiB blocks) from each leg to the other at once, each
    side then shut for writing; returns {"up": (n, sha256), "down": ...}
    as received (or the error a receiver saw) and the digest sent."""
    block = os.urandom(1 << 20)
    want = hashlib.sha256(block * (size // len(block))).hexdigest()
    got = {}

    def sender(conn):
        for _ in range(size // len(block)):
            conn.sock.sendall(block)
        conn.sock.shutdown(socket.SHUT_WR)

    def receiver(conn, name):
        h = hashlib.sha256(conn.buf)
        n = len(conn.buf)
        conn.buf = b""
        conn.sock.settimeout(timeout / 2)
        try:
            while True:
                b = conn.sock.recv(1 << 20)
                if not b:
                    break
                h.update(b)
                n += len(b)
        except OSError as e:
            got[name] = repr(e)
            return
        got[name] = (n, h.hexdigest())

    threads = [threading.Thread(target=sender, args=(cc,)), threading.Thread(target=sender, args=(ac,)),
               threading.Thread(target=receiver, args=(cc, "down")), threading.Thread(target=receiver, args=(ac, "up"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    return got, want


@t.test
def bulk_both_ways_at_once_keeps_every_byte(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    size = 64 << 20
    got, want = send_both_ways(cc, ac, size, 120)
    assert got.get("up") == (size, want), got
    assert got.get("down") == (size, want), got
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "fin" and end["path"] == "upgrade", end
    assert end["bytes_up"] == str(size) and end["bytes_down"] == str(size), end


def lowest_free_fd(pid):
    used = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
    n = 0
    while n in used:
        n += 1
    return n


@t.test
def out_of_descriptors_for_pipes_the_tunnel_copies_instead(ctx):
    """The relay cannot make a pipe for splice(2) (its descriptor limit
    lowered under its lowest free descriptor once the tunnel is joined, so
    that pipe2() fails with EMFILE): the directions copy through user space
    instead, every byte arrives both ways, one warning says so; with the
    limit back, new tunnels splice again."""
    import resource
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    pid = relay.popen.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
    try:
        size = 8 << 20
        got, want = send_both_ways(cc, ac, size, 60)
        assert got.get("up") == (size, want) and got.get("down") == (size, want), (got, relay.log()[-2000:])
        end = tunnel_end_line(relay, cid)
        assert end["reason"] == "fin" and end["bytes_up"] == str(size), end
        line = relay.wait_for(r"warn [^\n]*event=splice_unavailable [^\n]*", timeout=5).group(0)
        assert "directions=" in line and "Too many open files" in line, line
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    cc.close()
    ac.close()
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    cc.sock.sendall(b"spliced again")
    assert recv_n(ac, 13) == b"spliced again"
    assert relay.count(r"event=splice_unavailable") == 1
    cc.close()
    ac.close()


@t.test
def a_reset_leg_resets_the_other(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    cc.sock.sendall(b"x")
    assert recv_n(ac, 1) == b"x"
    rc_linger = __import__("struct").pack("ii", 1, 0)
    cc.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rc_linger)
    cc.sock.close()
    expect_reset(ac)
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "rst" and end["path"] == "upgrade", end
    assert "client" in end["detail"], end


@t.test
def bytes_sent_right_behind_the_request_go_first(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck, early=b"early bytes")
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    cc.sock.sendall(b" and late")
    assert recv_n(ac, 20) == b"early bytes and late"
    cc.close()
    ac.close()


@t.test
def only_one_side_asking_gets_the_framed_stream_with_the_reason(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck, client_upgrade=True, server_upgrade=False)
    assert cr.status == 200 and ar.status == 200, (cr, ar)
    assert cr.headers.get("ptth-upgrade") == "peer", cr
    assert "ptth-upgrade" not in ar.headers, ar
    down = rc.H1Stream(cc, cr)
    assert down.next_frame() == (rc.PING, b"")
    r = api.chunk("foo", cid, "downstream", sk, 0, b"chunked")
    assert r.status == 204, r
    assert down.read_data(7) == b"chunked"
    api.post(api.conn_path("foo", cid, "close"), sk)
    end = tunnel_end_line(relay, cid)
    assert end["path"] == "chunks", end
    cc.close()
    ac.close()


@t.test
def upgrade_off_answers_the_framed_stream(ctx):
    relay, api, sk, ck = setup(ctx, args=["--upgrade", "off"])
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    assert cr.status == 200 and ar.status == 200, (cr, ar)
    assert cr.headers.get("ptth-upgrade") == "off", cr
    assert ar.headers.get("ptth-upgrade") == "off", ar
    api.post(api.conn_path("foo", cid, "close"), ck)
    end = tunnel_end_line(relay, cid)
    assert end["path"] == "chunks" and end["reason"] == "rst", end
    cc.close()
    ac.close()


@t.test
def refusals_come_before_any_upgrade(ctx):
    relay, api, sk, ck = setup(ctx)
    other = pt.Key()
    for key, want in ((other, 401), (sk, 403)):
        c = rc.H1(api.port)
        h = dict(rc.bearer(key))
        h.update(UPGRADE)
        c.send("POST", api.connect_path("foo", "ssh"), h, b"")
        r = c.read_head()
        assert r.status == want, r
        c.close()
    c = rc.H1(api.port)
    h = dict(rc.bearer(ck))
    h.update(UPGRADE)
    c.send("POST", api.connect_path("foo", "ssh"), h, b"")
    r = c.read_head()
    assert r.status == 503 and "retry-after" in r.headers, r
    c.close()


@t.test
def shutdown_resets_joined_tunnels(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, cc, cr, ac, ar = open_upgraded(api, sk, ck)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    relay.signal(__import__("signal").SIGTERM)
    expect_reset(cc)
    expect_reset(ac)
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "shutdown" and end["path"] == "upgrade", end


@t.test
def garbage_and_a_stalled_leg_hold_back_only_their_tunnel(ctx):
    relay, api, sk, ck = setup(ctx)
    # tunnel A: the server side never reads; the client side floods it
    a = open_upgraded(api, sk, ck)
    assert a[2].status == 101 and a[4].status == 101
    a[1].sock.setblocking(False)
    flooded = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            flooded += a[1].sock.send(b"\xff" * 65536)
        except BlockingIOError:
            time.sleep(0.05)
    assert flooded > 0
    # tunnel B: garbage is carried as it is (the terminators check frames)
    b = open_upgraded(api, sk, ck)
    garbage = b"\x07garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    b[1].sock.sendall(garbage)
    assert recv_n(b[3], len(garbage)) == garbage
    # tunnel C still moves 16 MiB each way quickly
    c = open_upgraded(api, sk, ck)
    payload = os.urandom(16 << 20)
    started = time.monotonic()
    th = threading.Thread(target=lambda: c[1].sock.sendall(payload))
    th.start()
    assert recv_n(c[3], len(payload), timeout=30) == payload
    th.join()
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed
    # the stalled tunnel moved only what the kernel buffers hold
    assert flooded < 64 << 20, flooded
    for x in (a, b, c):
        x[1].close()
        x[3].close()


@t.test
def tls_legs_are_copied_through_h2o(ctx):
    import ssl
    import subprocess
    cert, key = ctx.path("cert.pem"), ctx.path("key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    relay, api, sk, ck = setup(ctx, args=["--tls-cert", cert, "--tls-key", key])
    sctx = ssl.create_default_context(cafile=cert)
    sctx.set_alpn_protocols(["http/1.1"])

    class TlsH1(rc.H1):
        def __init__(self, port):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.sock = sctx.wrap_socket(raw, server_hostname="localhost")
            self.timeout = 10
            self.buf = b""
            self.chunk_left = 0
            self.need_crlf = False
            self.body_done = False

    lc = TlsH1(api.port)
    lc.send("POST", api.listen_path("foo"), dict(rc.bearer(sk), **{"PTTH-Ports": "ssh"}))
    time.sleep(0.05)
    cc = TlsH1(api.port)
    cc.send("POST", api.connect_path("foo", "ssh"), dict(rc.bearer(ck), **UPGRADE))
    lr = lc.read_head()
    assert lr.status == 200, lr
    cid = lr.headers["ptth-conn"]
    ac = TlsH1(api.port)
    ac.send("POST", api.conn_path("foo", cid, "accept"), dict(rc.bearer(sk), **UPGRADE))
    ar, cr = ac.read_head(), cc.read_head()
    assert ar.status == 101 and cr.status == 101, (ar, cr)
    payload = os.urandom(8 << 20)
    th = threading.Thread(target=lambda: cc.sock.sendall(payload))
    th.start()
    assert recv_n(ac, len(payload), timeout=30) == payload
    th.join()
    ac.sock.sendall(b"back")
    assert recv_n(cc, 4) == b"back"
    cc.close()
    ac.close()
    lc.close()
    end = tunnel_end_line(relay, cid)
    assert end["path"] == "upgrade", end


t.run()
