#!/usr/bin/env python3
"""Resumable tunnels (SPEC §9.3, docs/protocol.md "Resumable tunnels"), the
terminator's side alone: the real ptth_proxy (--data-path upgrade) against a
fake relay written here from the contract (raw sockets, its own 101s), which
plays the other terminator too. It checks what ptth_proxy sends byte by
byte: PTTH-Resumable on the connect, ACK frames, the resume request and its
headers, the backoff, the replay after a cut, the clean end that waits for
the ACK of its FIN, backpressure of a full --resume-buffer, resume_timeout,
refusals, and that a tunnel the relay did not make resumable behaves as
before (an ACK there is a protocol error)."""

import os
import queue
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))

import ptthtest as pt  # noqa: E402

t = pt.Tap()

TOKEN = "rEsUmEtOkEn_0123456789-abcdefghijklmnopqrs"  # 43 base64url characters
CONN = "c0nnResume1"
DATA, FIN, RST, PING, ACK = 0, 1, 2, 3, 4


def frame(ftype, payload=b""):
    return struct.pack(">I", (ftype << 24) | len(payload)) + payload


def ack(pos, window=4194304):
    """An ACK frame: the position received, then the receive window."""
    return frame(ACK, struct.pack(">QI", pos, window))


def expect_reset(sock, timeout):
    """The local end must be reset (not closed, not left open)."""
    sock.settimeout(timeout)
    try:
        b = sock.recv(100)
        raise AssertionError("the local end was closed, not reset: %r" % b)
    except ConnectionResetError:
        pass


def pattern(start, n):
    """n bytes of a stream whose byte i depends on i: a replay from the wrong
    position shows."""
    return bytes(((i * 131) + (i >> 11)) & 0xFF for i in range(start, start + n))


class Leg:
    """One connection of the proxy to the fake relay: the request head, then
    frames both ways."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.head = ""
        self.headers = {}

    def read_head(self, timeout=10.0):
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            b = self.sock.recv(65536)
            if not b:
                raise AssertionError("connection closed before a request head: %r" % self.buf[:200])
            self.buf += b
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        lines = self.head.split("\r\n")
        self.request_line = lines[0]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.request_line

    def answer_101(self, extra, heartbeat=20):
        head = ("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ptth-tunnel/1\r\n"
                "PTTH-Conn: %s\r\nPTTH-Heartbeat: %d\r\n" % (CONN, heartbeat))
        for k, v in extra.items():
            head += "%s: %s\r\n" % (k, v)
        self.sock.sendall((head + "\r\n").encode())

    def answer(self, status, text):
        body = text + "\n"
        self.sock.sendall(("HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" %
                           (status, len(body), body)).encode())
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def next_frame(self, timeout=10.0):
        """(type, payload), or None at the end of the connection."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 4:
                (word,) = struct.unpack(">I", self.buf[:4])
                ftype, n = word >> 24, word & 0xFFFFFF
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return ftype, payload
            b = self.sock.recv(1 << 20)
            if not b:
                if self.buf:
                    raise AssertionError("connection ended inside a frame")
                return None
            self.buf += b

    def collect(self, want_data, timeout=10.0):
        """Reads frames until want_data DATA bytes came; returns (data, acks, others)."""
        data, acks, others = b"", [], []
        deadline = time.monotonic() + timeout
        while len(data) < want_data:
            f = self.next_frame(max(0.1, deadline - time.monotonic()))
            assert f is not None, "the leg ended after %d of %d DATA bytes" % (len(data), want_data)
            if f[0] == DATA:
                data += f[1]
            elif f[0] == ACK:
                assert len(f[1]) == 12, f
                acks.append(struct.unpack(">QI", f[1])[0])
            else:
                others.append(f)
        return data, acks, others

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class FakeRelay:
    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port

    def accept(self, timeout=10.0):
        self.lsock.settimeout(timeout)
        c, _ = self.lsock.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Leg(c)

    def close(self):
        self.lsock.close()


def start(ctx, args=()):
    relay = FakeRelay()
    ctx.cleanups.append(relay.close)
    key = ctx.key("client")
    proxy = ctx.proxy(relay.url, key, server="foo", port="ssh", args=["--data-path", "upgrade", "--log-level", "debug"] +
                      ([] if "--resume-buffer" in args else ["--resume-buffer", "4194304"]) + list(args))
    return relay, key, proxy


def open_resumable(relay, proxy, grace=10):
    client = pt.connect(proxy.port)
    leg = relay.accept()
    line = leg.read_head()
    assert line == "POST /v1/servers/foo/ports/ssh/connect HTTP/1.1", line
    assert leg.headers.get("ptth-resumable") == "1", leg.head
    leg.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": str(grace)})
    return client, leg


@t.test
def cut_resume_replay_and_clean_end(ctx):
    relay, key, proxy = start(ctx)
    client, leg = open_resumable(relay, proxy)
    up1 = pattern(0, 300 * 1024)
    client.sendall(up1)
    got, acks, others = leg.collect(len(up1))
    assert got == up1, "the first leg's DATA differs"
    assert not acks, acks  # we sent nothing yet: nothing to acknowledge
    # 200 KiB down: the proxy must ACK once 128 KiB or more came
    down1 = pattern(1000, 200 * 1024)
    leg.send(frame(DATA, down1[:100 * 1024]) + frame(DATA, down1[100 * 1024:]))
    assert pt.recv_exactly(client, len(down1)) == down1
    acks = []
    while not acks:
        f = leg.next_frame(5)
        assert f is not None
        if f[0] == ACK:
            acks.append(struct.unpack(">QI", f[1])[0])
    assert 128 * 1024 <= acks[0] <= len(down1), acks
    # acknowledge 100 KiB of what it sent, then 50 KiB more up, then the cut
    leg.send(ack(100 * 1024))
    up2 = pattern(len(up1), 50 * 1024)
    client.sendall(up2)
    more, _, _ = leg.collect(len(up2))
    assert more == up2
    # the fake's heartbeat-free view: whatever else waits is dropped with the leg
    time.sleep(0.2)
    leg.reset()
    sent_total = len(up1) + len(up2)

    # first resume request: answered 503 (a relay restarting): the proxy must try again
    r1 = relay.accept()
    t1 = time.monotonic()
    line = r1.read_head()
    assert line == "POST /v1/servers/foo/conns/%s/resume HTTP/1.1" % CONN, line
    h = r1.headers
    assert h.get("connection", "").lower() == "upgrade" and h.get("upgrade") == "ptth-tunnel/1", r1.head
    assert h.get("authorization") == "Bearer " + key.text, "no or a wrong key"
    assert h.get("ptth-resume") == TOKEN, r1.head.replace(TOKEN, "TOKEN")
    assert h.get("ptth-port") == "ssh" and h.get("ptth-proto") == "tcp", r1.head
    assert "ptth-client" not in h, "the client side sends no PTTH-Client"
    assert h.get("ptth-received") == str(len(down1)), (h.get("ptth-received"), len(down1))
    assert h.get("ptth-sent") == str(sent_total), (h.get("ptth-sent"), sent_total)
    r1.answer(503, "restarting")
    r2 = relay.accept()
    r2.read_head()
    gap = time.monotonic() - t1
    assert 0.07 <= gap <= 1.5, "the second attempt came after %.3fs, not after about 0.1 s" % gap
    assert r2.headers.get("ptth-sent") == str(sent_total)
    # 101: the peer received 150 KiB, and sent 10 bytes more than the proxy got
    peer_received = 150 * 1024
    down2 = pattern(1000 + len(down1), 10)
    r2.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10", "PTTH-Peer-Received": str(peer_received),
                   "PTTH-Peer-Sent": str(len(down1) + len(down2))})
    replay, _, others = r2.collect(sent_total - peer_received)
    assert replay == (up1 + up2)[peer_received:], "the replay is not exactly the bytes the peer did not get"
    assert not [f for f in others if f[0] != PING], others
    r2.send(frame(DATA, down2))
    assert pt.recv_exactly(client, len(down2)) == down2
    m = proxy.wait_for(r"event=tunnel_resumed conn=%s gap_ms=(\d+) replayed_up=(\d+) replayed_down=(\d+)" % CONN)
    assert int(m.group(2)) == sent_total - peer_received and int(m.group(3)) == len(down2), m.group(0)
    assert TOKEN not in proxy.log(), "the resume token was logged"
    # new bytes go on after the replay
    up3 = pattern(sent_total, 1000)
    client.sendall(up3)
    got, _, _ = r2.collect(len(up3))
    assert got == up3
    sent_total += len(up3)
    # the end: the client half-closes -> FIN; our FIN -> the proxy ACKs it at once
    client.shutdown(socket.SHUT_WR)
    f = r2.next_frame()
    while f[0] == ACK:
        f = r2.next_frame()
    assert f == (FIN, b""), f
    r2.send(frame(FIN))
    received_total = len(down1) + len(down2) + 1
    f = r2.next_frame()
    assert f == (ACK, struct.pack(">QI", received_total, 4194304)), (f, received_total)
    # the proxy's FIN is not acknowledged yet: it must keep the connection
    r2.sock.settimeout(0.5)
    try:
        early = r2.sock.recv(100)
        raise AssertionError("the proxy ended the leg before its FIN was acknowledged: %r" % early)
    except socket.timeout:
        pass
    r2.send(ack(sent_total + 1))
    r2.sock.settimeout(5)
    assert r2.sock.recv(100) == b"", "a clean end (EOF) was expected"
    assert pt.recv_until_eof(client) == b""
    proxy.wait_for(r"event=tunnel_end conn=%s .*reason=\"fin\"" % CONN)


@t.test
def full_buffer_stops_reading(ctx):
    relay, key, proxy = start(ctx, ["--resume-buffer", "524288"])
    client, leg = open_resumable(relay, proxy)
    total = 2 * 1024 * 1024
    data = pattern(0, total)

    def feed():
        try:
            client.sendall(data)
        except OSError:
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    got, _, _ = leg.collect(524288)
    assert got == data[:524288]
    # nothing acknowledged: not one byte more may come
    leg.sock.settimeout(0.7)
    try:
        extra = leg.sock.recv(65536)
        raise AssertionError("%d bytes past a full resume buffer" % len(extra))
    except socket.timeout:
        pass
    # room for 100000 bytes: exactly that much more
    leg.send(ack(100000))
    got, _, _ = leg.collect(100000)
    assert got == data[524288:524288 + 100000], len(got)
    leg.sock.settimeout(0.5)
    try:
        extra = leg.sock.recv(65536)
        raise AssertionError("%d bytes past the room an ACK made" % len(extra))
    except socket.timeout:
        pass
    leg.send(ack(total))  # above what was sent: a protocol error
    r = leg.next_frame(5)
    while r is not None and r[0] != RST:
        r = leg.next_frame(5)
    proxy.wait_for(r"event=tunnel_end conn=%s .*ACK of position %d above what was sent" % (CONN, total))
    client.close()


@t.test
def resume_timeout_resets_the_local_end(ctx):
    relay, key, proxy = start(ctx)
    client, leg = open_resumable(relay, proxy, grace=2)
    client.sendall(b"x" * 1000)
    leg.collect(1000)
    leg.reset()
    t0 = time.monotonic()
    attempts = []
    while True:
        try:
            r = relay.accept(timeout=4)
        except socket.timeout:
            break
        r.read_head()
        attempts.append(time.monotonic() - t0)
        r.answer(409, "the other side is not there yet")
    elapsed = time.monotonic() - t0
    assert 4 <= len(attempts) <= 8, attempts
    assert attempts[0] < 0.5 and attempts[1] - attempts[0] >= 0.07, attempts
    assert attempts[-1] < 2.5, attempts
    proxy.wait_for(r"event=tunnel_end conn=%s .*reason=\"resume_timeout\"" % CONN, timeout=5)
    expect_reset(client, 5)
    assert elapsed < 6, elapsed


@t.test
def refused_resume_ends_the_tunnel(ctx):
    relay, key, proxy = start(ctx)
    client, leg = open_resumable(relay, proxy)
    client.sendall(b"abc")
    leg.collect(3)
    leg.reset()
    r = relay.accept()
    r.read_head()
    r.answer(403, "bad resume proof")
    proxy.wait_for(r"event=tunnel_end conn=%s .*reason=\"resume refused: HTTP 403 bad resume proof\"" % CONN)
    expect_reset(client, 5)


@t.test
def not_resumable_as_before(ctx):
    """A 101 without PTTH-Resume: no ACKs, a cut ends the tunnel, an ACK
    frame is a protocol error; --resume-buffer 0 does not ask."""
    relay, key, proxy = start(ctx)
    client = pt.connect(proxy.port)
    leg = relay.accept()
    leg.read_head()
    assert leg.headers.get("ptth-resumable") == "1"
    leg.answer_101({})
    leg.send(frame(DATA, pattern(0, 200 * 1024)))
    pt.recv_exactly(client, 200 * 1024)
    client.sendall(b"hello")
    got, acks, _ = leg.collect(5)
    assert got == b"hello" and not acks, acks
    leg.send(ack(5))
    f = leg.next_frame(5)
    while f is not None and f[0] != RST:
        f = leg.next_frame(5)
    assert f is not None and b"ACK frame on a tunnel that is not resumable" in f[1], f
    proxy.wait_for(r"event=tunnel_end conn=%s .*not resumable" % CONN)
    client.close()

    proxy.stop()
    proxy2 = ctx.proxy(relay.url, key, server="foo", port="ssh", args=["--data-path", "upgrade", "--resume-buffer", "0"])
    c2 = pt.connect(proxy2.port)
    leg2 = relay.accept()
    leg2.read_head()
    assert "ptth-resumable" not in leg2.headers, leg2.head
    leg2.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10"})  # granted anyway: still not resumable
    c2.sendall(b"x" * 10)
    leg2.collect(10)
    leg2.reset()
    proxy2.wait_for(r"event=tunnel_end conn=%s .*reason=\"tunnel reset" % CONN)
    try:
        relay.accept(timeout=1.0)
        raise AssertionError("a resume request without resumption")
    except socket.timeout:
        pass
    c2.close()


@t.test
def silent_leg_is_a_lost_leg(ctx):
    """A path that drops everything without a reset (a NAT mapping that
    expired): with PTTH-Heartbeat 1, a leg that brings nothing for 3
    heartbeats while the proxy reads it is taken as lost; a resumable
    tunnel resumes on a new connection, another one ends. PINGs go on
    after the proxy's FIN (the other side's check needs them)."""
    relay, key, proxy = start(ctx)
    client = pt.connect(proxy.port)
    leg = relay.accept()
    leg.read_head()
    leg.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10"}, heartbeat=1)
    client.sendall(b"x" * 1000)
    got, _, _ = leg.collect(1000)
    assert got == b"x" * 1000
    client.shutdown(socket.SHUT_WR)
    f = leg.next_frame(5)
    assert f == (FIN, b""), f
    # one PING, then the fake sends nothing; the proxy must keep sending PINGs
    leg.send(frame(PING))
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 2.0:
        f = leg.next_frame(5)
        assert f is not None, "the leg ended %.2fs after the FIN" % (time.monotonic() - t0)
        assert f[0] == PING, f
        pings += 1
    assert pings >= 1, "no PING after the FIN"
    r = relay.accept(timeout=8)
    gap = time.monotonic() - t0
    line = r.read_head()
    assert line == "POST /v1/servers/foo/conns/%s/resume HTTP/1.1" % CONN, line
    assert 2.5 <= gap <= 6.0, "the silent leg was given up after %.2fs, not after about 3 heartbeats" % gap
    assert r.headers.get("ptth-sent") == "1001", r.headers.get("ptth-sent")  # 1000 bytes and the FIN
    proxy.wait_for(r"event=tunnel_suspended conn=%s .*reason=\"nothing came from the relay for 3 s" % CONN)
    # the old leg was reset (a TCP reset, no RST frame): the relay learns it
    leg.sock.settimeout(5)
    try:
        rest = leg.sock.recv(100)
        assert rest == b"" or all(rest[i] == PING for i in range(0, len(rest), 4)), rest
    except ConnectionResetError:
        pass
    r.answer(404, "tunnel ended")
    proxy.wait_for(r"event=tunnel_end conn=%s .*reason=\"resume refused: HTTP 404 tunnel ended\"" % CONN)
    client.close()

    # not resumable: the tunnel ends, the client's connection is reset
    client = pt.connect(proxy.port)
    leg = relay.accept()
    leg.read_head()
    leg.answer_101({}, heartbeat=1)
    t0 = time.monotonic()
    expect_reset(client, 10)
    gap = time.monotonic() - t0
    assert 2.5 <= gap <= 6.0, "the silent leg was given up after %.2fs" % gap
    proxy.wait_for(r"event=tunnel_end conn=%s .*reason=\"nothing came from the relay for 3 s" % CONN)


@t.test
def lost_fin_is_written_again(ctx):
    """The client half-closed, the FIN was framed; the peer did not get it
    (PTTH-Peer-Received = sent - 1): the replay ends with the FIN. An ACK
    going back then resets the tunnel."""
    relay, key, proxy = start(ctx)
    client, leg = open_resumable(relay, proxy)
    client.sendall(b"0123456789")
    got, _, _ = leg.collect(10)
    client.shutdown(socket.SHUT_WR)
    assert leg.next_frame() == (FIN, b"")
    leg.send(ack(4))
    time.sleep(0.1)
    leg.reset()
    r = relay.accept()
    r.read_head()
    assert r.headers.get("ptth-sent") == "11" and r.headers.get("ptth-received") == "0", r.head
    r.answer_101({"PTTH-Peer-Received": "6", "PTTH-Peer-Sent": "0"})
    replay, _, _ = r.collect(4)
    assert replay == b"6789", replay
    f = r.next_frame()
    assert f == (FIN, b""), f
    proxy.wait_for(r"event=tunnel_resumed conn=%s gap_ms=\d+ replayed_up=5 replayed_down=0" % CONN)
    r.send(ack(8))
    r.send(ack(7))  # going back: a protocol error
    f = r.next_frame()
    while f is not None and f[0] != RST:
        f = r.next_frame()
    proxy.wait_for(r"event=tunnel_end conn=%s .*ACK of position 7 below the last ACK 8" % CONN)
    expect_reset(client, 5)


@t.test
def bad_resume_counts_reset(ctx):
    """A 101 whose PTTH-Peer-Received is above what was sent (or below what
    was acknowledged) resets the tunnel instead of replaying anything."""
    relay, key, proxy = start(ctx)
    client, leg = open_resumable(relay, proxy)
    client.sendall(b"abcdef")
    leg.collect(6)
    leg.send(ack(2))
    time.sleep(0.1)
    leg.reset()
    r = relay.accept()
    r.read_head()
    r.answer_101({"PTTH-Peer-Received": "7", "PTTH-Peer-Sent": "0"})
    proxy.wait_for(r"event=tunnel_end conn=%s .*the peer received position 7, outside what we sent \(acknowledged 2, sent 6\)"
                   % CONN)
    try:
        f = r.next_frame(5)
        while f is not None:
            assert f[0] not in (DATA, FIN), "replayed after bad counts: %r" % (f,)
            f = r.next_frame(5)
    except ConnectionResetError:
        pass  # the reset that ends the tunnel
    client.close()


@t.test
def udp_session_resumes_as_udp(ctx):
    """A UDP session's resume request says PTTH-Proto: udp; its datagrams
    (length-prefixed in the stream) come again after the cut."""
    relay = FakeRelay()
    ctx.cleanups.append(relay.close)
    key = ctx.key("client")
    proxy = ctx.proxy(relay.url, key, server="foo", port="dns", args=["--udp", "--data-path", "upgrade", "--resume-buffer", "4194304"])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctx.cleanups.append(u.close)
    u.sendto(b"query-1", ("127.0.0.1", proxy.port))
    leg = relay.accept()
    leg.read_head()
    assert leg.headers.get("ptth-proto") == "udp" and leg.headers.get("ptth-resumable") == "1", leg.head
    leg.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10"})
    got, _, _ = leg.collect(9)
    assert got == b"\x00\x07query-1", got
    leg.reset()
    r = relay.accept()
    r.read_head()
    assert r.headers.get("ptth-proto") == "udp" and r.headers.get("ptth-port") == "dns", r.head
    r.answer_101({"PTTH-Peer-Received": "0", "PTTH-Peer-Sent": "9"})
    again, _, _ = r.collect(9)
    assert again == got, again
    r.send(frame(DATA, b"\x00\x07answer1"))
    u.settimeout(5)
    data, _ = u.recvfrom(100)
    assert data == b"answer1", data


class FakeRelayForServer:
    """For ptth_server: its HTTP/2 preface is answered in HTTP/1.1 (so it
    falls back to HTTP/1.1 through libcurl), the first listen gets a tunnel
    (PTTH-Client alice), later listens are held; upgrade requests (accept,
    resume) are queued for the test as Legs."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.legs = queue.Queue()
        self.listens = 0
        self.closing = False
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        leg = Leg(c)
        try:
            while True:
                c.settimeout(30)
                while len(leg.buf) < 4:
                    b = c.recv(65536)
                    if not b:
                        return
                    leg.buf += b
                if leg.buf.startswith(b"PRI "):
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    c.close()
                    return
                leg.headers = {}
                line = leg.read_head()
                if leg.headers.get("upgrade") == "ptth-tunnel/1":
                    self.legs.put(leg)
                    return
                n = int(leg.headers.get("content-length", "0"))
                while len(leg.buf) < n:
                    leg.buf += c.recv(65536)
                leg.buf = leg.buf[n:]
                if "/listen " in line:
                    self.listens += 1
                    if self.listens > 1:
                        self.held.append(c)  # held, as a relay holds a listen
                        return
                    c.sendall(("HTTP/1.1 200 OK\r\nPTTH-Conn: %s\r\nPTTH-Port: ssh\r\nPTTH-Client-Addr: 127.0.0.1:5555\r\n"
                               "PTTH-Client: alice\r\nPTTH-Proto: tcp\r\nPTTH-Max-Chunk: 262144\r\nContent-Length: 0\r\n\r\n"
                               % CONN).encode())
                else:
                    c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass

    def leg(self, timeout=10.0):
        return self.legs.get(timeout=timeout)

    def close(self):
        self.closing = True
        self.lsock.close()
        for c in self.held:
            c.close()


@t.test
def server_side_resume(ctx):
    """ptth_server: PTTH-Client of the listen answer on the resume request,
    replayed_down for what it sends again."""
    relay = FakeRelayForServer()
    ctx.cleanups.append(relay.close)
    echo = pt.EchoServer()
    ctx.cleanups.append(echo.close)
    key = ctx.key("server")
    server = ctx.server(relay.url, "foo", key, ["ssh=127.0.0.1:%d" % echo.port],
                        args=["--data-path", "upgrade", "--log-level", "debug", "--resume-buffer", "4194304"])
    leg = relay.leg()
    assert leg.request_line == "POST /v1/servers/foo/conns/%s/accept HTTP/1.1" % CONN, leg.request_line
    assert leg.headers.get("ptth-resumable") == "1", leg.head
    leg.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10"})
    down = pattern(0, 200 * 1024)  # the client's bytes, to the echo backend
    leg.send(frame(DATA, down))
    echoed, acks, _ = leg.collect(len(down))
    assert echoed == down
    while not acks:
        f = leg.next_frame(5)
        if f[0] == ACK:
            acks.append(struct.unpack(">QI", f[1])[0])
    assert acks[-1] >= 128 * 1024, acks
    leg.reset()
    r = relay.leg()
    assert r.request_line == "POST /v1/servers/foo/conns/%s/resume HTTP/1.1" % CONN, r.request_line
    h = r.headers
    assert h.get("authorization") == "Bearer " + key.text
    assert h.get("ptth-client") == "alice" and h.get("ptth-port") == "ssh" and h.get("ptth-proto") == "tcp", r.head
    assert h.get("ptth-received") == str(len(down)) and h.get("ptth-sent") == str(len(down)), r.head
    r.answer_101({"PTTH-Resume": TOKEN, "PTTH-Resume-Grace": "10", "PTTH-Peer-Received": str(100 * 1024),
                  "PTTH-Peer-Sent": str(len(down) + 5)})
    replay, _, _ = r.collect(100 * 1024)
    assert replay == down[100 * 1024:], "the server's replay differs"
    more = pattern(len(down), 5)
    r.send(frame(DATA, more))
    got, _, _ = r.collect(5)
    assert got == more
    m = server.wait_for(r"event=tunnel_resumed conn=%s gap_ms=\d+ replayed_up=(\d+) replayed_down=(\d+)" % CONN)
    assert (int(m.group(1)), int(m.group(2))) == (5, 100 * 1024), m.group(0)
    assert TOKEN not in server.log()
    r.send(frame(FIN))
    f = r.next_frame()
    while f[0] == ACK:
        f = r.next_frame()
    assert f == (FIN, b""), f  # the echo backend answered the half-close
    r.send(ack(len(down) + 5 + 1))
    f = r.next_frame()
    while f is not None and f[0] == ACK:
        f = r.next_frame()
    assert f is None, f
    server.wait_for(r"event=tunnel_end conn=%s .*reason=\"fin\"" % CONN)


t.run()
