#!/usr/bin/env python3
"""Bulk data through one tunnel: 200 MB each direction at the same time
(client -> echo backend -> client), compared by SHA-256, and a slow reader
that makes the tunnel apply backpressure both ways (with resumption on, as
by default, the ACK frames travel behind DATA that cannot be delivered:
docs/protocol.md "Resumable tunnels", flow control); both again with the
relay on HTTPS (64 MB), where the terminators gather TLS records into one
batch per local write.

The full 200 MB also run in the sanitizer build (about 10 s there on two
cores); PTTH_BULK_MB overrides the size for experiments."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()

MB = int(os.environ.get("PTTH_BULK_MB") or 200)


def setup(ctx, tls=False):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    if tls:
        w, cert = kit.tls_world(ctx, {"echo": str(echo.port)})
        return w, w.proxy("echo", args=["--ca-file", cert])
    w = kit.World(ctx, {"echo": str(echo.port)})
    return w, w.proxy("echo")


def assert_resumable(pline, path):
    """Resumption is on by default, on both data paths: the tunnel carried
    ACK frames and a resume buffer both ways."""
    assert pline.endswith(" resumes=0"), "the tunnel was not resumable: " + pline


def bulk_both_ways(ctx, mb, tls):
    w, px = setup(ctx, tls)
    size = mb * 1024 * 1024
    sent, received, n, secs = kit.bulk_both_ways(px.port, size, timeout=150)
    assert n == size, "received %d of %d bytes" % (n, size)
    assert sent == received, "SHA-256 differs"
    line = w.relay.wait_for(r"event=tunnel_end [^\n]*").group(0)
    end = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    path = os.environ.get("PTTH_TEST_DATA_PATH") or "upgrade"
    assert end["reason"] == "fin" and end["path"] == path, line
    # the relay counts what it moved, frame headers included, on both paths
    # of a resumable tunnel (docs/protocol.md): 4 bytes per DATA frame of at
    # most 256 KiB, a FIN, ACKs, a few PINGs
    for d in ("bytes_up", "bytes_down"):
        assert size <= int(end[d]) <= size * 1.001, line
    # the terminators count the payload
    pline = px.wait_for(r"event=tunnel_end [^\n]*").group(0)
    assert "bytes_up=%d" % size in pline and "bytes_down=%d" % size in pline, pline
    assert_resumable(pline, path)
    print("# %d MB each way%s in %.2fs: %.0f MB/s each way%s" % (mb, " over TLS" if tls else "", secs,
                                                                    mb * 1.048576 / secs,
                                                                    " (sanitizer build)" if kit.sanitized() else ""))


def slow_reader(ctx, tls):
    """The client sends 16 MB at once but reads the echo at about 20 MB/s:
    the echo backend and the tunnel fill up and must hold back (pause the
    framed stream, stop reading the backend) without losing or reordering."""
    w, px = setup(ctx, tls)
    size = 16 * 1024 * 1024
    s = pt.connect(px.port, timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    data = os.urandom(1 << 20) * 16
    got = []
    total = 0
    sent = 0
    s.setblocking(False)
    deadline = time.monotonic() + 90
    next_read = time.monotonic()
    while total < size:
        assert time.monotonic() < deadline, "stalled at %d sent, %d received" % (sent, total)
        if sent < size:
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
        now = time.monotonic()
        if now < next_read:
            time.sleep(min(0.002, next_read - now))
            continue
        try:
            b = s.recv(32768)
            got.append(b)
            total += len(b)
            next_read = now + len(b) / 20e6
        except BlockingIOError:
            time.sleep(0.001)
    s.close()
    assert b"".join(got) == data
    assert_resumable(px.wait_for(r"event=tunnel_end [^\n]*").group(0), os.environ.get("PTTH_TEST_DATA_PATH") or "upgrade")


@t.test
def bulk_both_directions_at_once(ctx):
    bulk_both_ways(ctx, MB, tls=False)


@t.test
def slow_reader_gets_everything(ctx):
    slow_reader(ctx, tls=False)


@t.test
def bulk_both_directions_over_tls(ctx):
    bulk_both_ways(ctx, min(MB, 64), tls=True)


@t.test
def slow_reader_over_tls(ctx):
    slow_reader(ctx, tls=True)


t.run()
