#!/usr/bin/env python3
"""The relay goes away (issue 5, Faults): both terminators keep running
without a busy loop (their CPU time over ~10 s of relay downtime, from
/proc/PID/stat), ptth_server backs off with jitter (the logged delays grow
between half and all of 0.5 s, 1 s, 2 s, ...), honours Retry-After (a fake
relay answers 503 and 429 with Retry-After: the next listen comes no
sooner), and once the relay is back both reconnect by themselves: new
tunnels work within 40 s. The figures are printed as TAP comments."""

import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt  # noqa: E402

t = pt.Tap()

DOWNTIME = 10.0


def cpu_limit():
    # a terminator that waits does nothing but a few timers; under a
    # sanitizer or valgrind every wake-up costs more
    return 0.3 if not fk.slow() else 1.5


def retry_delays(log):
    return [int(x) for x in re.findall(r"event=relay_unreachable [^\n]*retry_in_ms=(\d+)", log)]


@t.test
def relay_down_no_busy_loop_backoff_and_restart(ctx):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_port=pt.free_port())
    px = w.proxy("echo")
    assert kit.echo_once(px.port, b"before") == b"before"
    w.relay.kill9()
    # a client tries while the relay is away: refused, the proxy stays calm
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    w.server.wait_for(r"event=relay_unreachable", timeout=10)
    cpu0 = {p.name: fk.cpu_seconds(p.popen.pid) for p in (w.server, px)}
    time.sleep(DOWNTIME)
    for i in range(3):  # a few more local connections during the downtime
        s = pt.connect(px.port)
        pt.wait_closed(s, timeout=10)
        s.close()
    used = {p.name: fk.cpu_seconds(p.popen.pid) - cpu0[p.name] for p in (w.server, px)}
    delays = retry_delays(w.server.log())
    print("# relay down %.0fs: CPU used by ptth_server %.3fs, ptth_proxy %.3fs; server retry delays (ms): %s" %
          (DOWNTIME, used["ptth_server"], used["ptth_proxy"], delays))
    for name, sec in used.items():
        assert sec < cpu_limit(), "%s used %.3fs of CPU in %.0fs while the relay was down" % (name, sec, DOWNTIME)

    # the first retry after a working listen is at once; then round i waits a
    # random delay in [base/2, base], base = 0.5 s * 2^(i-1)
    assert len(delays) >= 5, delays
    assert delays[0] == 0, delays
    for i, d in enumerate(delays[1:], start=1):
        base = min(500 * 2 ** (i - 1), 30000)
        assert base // 2 <= d <= base, (i, d, delays)
    assert delays[-1] > delays[1] and sorted(delays[:5]) == delays[:5], delays
    assert any(d != min(500 * 2 ** (i - 1), 30000) for i, d in enumerate(delays[1:], start=1)), "no jitter: %s" % delays
    # a wait that spans a whole round: 0.5 + 1 + 2 + 4 s at most before the 5th try
    assert len(delays) <= 7, delays

    restarted = time.monotonic()
    w.relay = w.start_relay()
    w.relay.wait_for(r"event=server_online server=foo", timeout=40)
    while True:
        try:
            if kit.echo_once(px.port, b"after", timeout=5) == b"after":
                break
        except (OSError, AssertionError):
            pass
        assert time.monotonic() - restarted < 40, "no tunnel within 40 s of the relay's restart"
        time.sleep(0.2)
    took = time.monotonic() - restarted
    w.server.wait_for(r"event=relay_connected")
    print("# relay restarted: a new tunnel worked after %.1fs" % took)
    assert w.server.alive() and px.alive()


# ---- a fake relay that answers every request with a fixed status ------------------

def hpack_literal(index, value):
    """A header field without indexing, name from the static table."""
    out = bytearray()
    if index < 15:
        out.append(index)
    else:
        out += bytes([0x0F, index - 15])
    v = value.encode()
    out.append(len(v))
    return bytes(out) + v


class FakeRelay:
    """Answers every request with status and Retry-After, over HTTP/1.1 (as
    libcurl 7.88 sends listens: HTTP/1.1 with an h2c upgrade it ignores) or
    over HTTP/2 with prior knowledge (newer libcurl). Records when each
    request came."""

    def __init__(self, status, retry_after):
        self.status, self.retry_after = status, retry_after
        self.times = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        try:
            buf = b""
            while len(buf) < 24:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            if buf.startswith(b"PRI * HTTP/2.0"):
                self._h2(c, buf[24:])
            else:
                self._h1(c, buf)
        except OSError:
            pass
        finally:
            c.close()

    def _h1(self, c, buf):
        while True:
            while b"\r\n\r\n" not in buf:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            head, buf = buf.split(b"\r\n\r\n", 1)
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            while len(buf) < n:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            buf = buf[n:]
            self.times.append(time.monotonic())
            c.sendall(b"HTTP/1.1 %d Busy\r\nRetry-After: %d\r\nContent-Length: 5\r\n\r\nbusy\n" %
                      (self.status, self.retry_after))

    def _h2(self, c, buf):
        c.sendall(struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0))  # SETTINGS
        while True:
            while len(buf) < 9:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            length = struct.unpack(">I", b"\0" + buf[:3])[0]
            ftype, flags, sid = buf[3], buf[4], struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
            while len(buf) < 9 + length:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
            buf = buf[9 + length:]
            if ftype == 4 and not flags & 1:  # SETTINGS: ack
                c.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            elif ftype == 1:  # HEADERS: answer the stream
                self.times.append(time.monotonic())
                block = hpack_literal(8, str(self.status)) + hpack_literal(53, str(self.retry_after)) + \
                    hpack_literal(28, "0")
                c.sendall(struct.pack(">I", len(block))[1:] + b"\x01\x05" + struct.pack(">I", sid) + block)

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def retry_after_test(ctx, status):
    fake = FakeRelay(status, 3)
    ctx.cleanups.append(fake.close)
    key = ctx.key("server")
    srv = ctx.server("http://127.0.0.1:%d" % fake.port, "foo", key, ["echo=9"], args=["--listens", "1"])
    fk.wait_until("three listens", lambda: len(fake.times) >= 3, timeout=20)
    gaps = [b - a for a, b in zip(fake.times, fake.times[1:3])]
    delays = retry_delays(srv.log())
    print("# %d with Retry-After: 3: listens %.2fs and %.2fs apart; logged delays %s" % (status, gaps[0], gaps[1],
                                                                                          delays[:3]))
    assert all(g >= 2.9 for g in gaps), gaps
    assert delays[:2] == [3000, 3000], delays
    line = re.search(r"event=relay_unreachable [^\n]*", srv.log()).group(0)
    assert "HTTP %d" % status in line, line


@t.test
def server_honours_retry_after_of_503(ctx):
    retry_after_test(ctx, 503)


@t.test
def server_honours_retry_after_of_429(ctx):
    retry_after_test(ctx, 429)


t.run()
