#!/usr/bin/env python3
"""SIGTERM of each program with tunnels open (issue 5, Faults): it exits 0
within seconds, every tunnel ends with reason `shutdown` (the relay's own
tunnel_end lines for the relay; for a terminator its own lines, and the
relay closes those tunnels with RST "closed by server|client: shutdown"),
the local ends are closed, and the other programs keep running."""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt  # noqa: E402

t = pt.Tap()

N = 3


def setup(ctx, relay_args=()):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_args=list(relay_args))
    px = w.proxy("echo")
    socks = []
    for i in range(N):
        s = pt.connect(px.port)
        s.sendall(b"hi %d" % i)
        assert pt.recv_exactly(s, 4) == b"hi %d" % i
        socks.append(s)
    return echo, w, px, socks


def stop_timed(p):
    started = time.monotonic()
    code = p.stop(timeout=15)
    return code, time.monotonic() - started


def ends(p, pattern):
    return re.findall(r"event=tunnel_end [^\n]*" + pattern, p.log())


# how a terminator logs the end of a tunnel that the relay ended at
# shutdown: an RST frame on the chunked path; on the upgraded path the relay
# does not write into the joined bytes, it resets both connections
RELAY_GONE = r'reason="(rst: shutdown|tunnel reset \(the relay or the other side broke it\))"'

@t.test
def sigterm_relay(ctx):
    # resumption off: the tunnels end with the relay (with it on, the
    # terminators resume on the restarted relay: faults_resume)
    echo, w, px, socks = setup(ctx, ["--resume-grace", "0"])
    code, took = stop_timed(w.relay)
    assert code == 0, code
    assert len(ends(w.relay, r"reason=shutdown")) == N, w.relay.log()
    assert "event=stopped" in w.relay.log()
    for s in socks:
        pt.wait_closed(s, timeout=10)
        s.close()
    fk.wait_until("proxy logs the ends", lambda: len(ends(px, RELAY_GONE)) == N)
    fk.wait_until("server logs the ends", lambda: len(ends(w.server, RELAY_GONE)) == N)
    assert w.server.alive() and px.alive()
    print("# relay: exit 0 after %.2fs, %d tunnels ended with reason=shutdown" % (took, N))


@t.test
def sigterm_server(ctx):
    echo, w, px, socks = setup(ctx)
    code, took = stop_timed(w.server)
    assert code == 0, code
    assert took < 5, took
    log = w.server.log()
    assert len(ends(w.server, r'reason="shutdown"')) == N, log
    assert re.search(r"event=stopping signal=SIGTERM tunnels=%d" % N, log), log
    assert "event=stopped" in log
    # on the upgraded path the server writes an RST frame and resets its
    # connection; the proxy, reading that frame, resets its own: the relay may
    # see either reset first (both in one round of its loop)
    fk.wait_until("relay ends them", lambda: len(ends(
        w.relay, r'reason=rst detail="(closed by server: shutdown|(server|client)\'s connection was reset)"')) == N,
                  timeout=5)
    for s in socks:
        pt.wait_closed(s, timeout=10)
        s.close()
    # the proxy reads the RST frame; or its leg was reset first and it tried
    # to resume: the relay's answer has the close's reason, or says the
    # tunnel ended when the close came before the resume
    fk.wait_until("proxy logs the ends", lambda: len(ends(
        px, r'reason="(rst: closed by server: shutdown|resume refused: HTTP 404 (closed by server: shutdown|tunnel ended))"'))
        == N)
    fk.wait_until("backends closed", lambda: len(echo.results) == N, timeout=10)
    assert w.relay.alive() and px.alive()
    print("# ptth_server: exit 0 after %.2fs, %d tunnels ended with reason=shutdown" % (took, N))


@t.test
def sigterm_proxy(ctx):
    backend_ends = []

    def handler(c):
        # the proxy's shutdown breaks the tunnel: ptth_server resets the
        # backend connection (transport abort), on either data path
        try:
            n = kit.echo_handler(c)
        except ConnectionResetError:
            n = "reset"
        backend_ends.append(n)
        return n

    b = kit.Backend(handler)
    ctx.cleanups.append(b.close)
    w = kit.World(ctx, {"echo": str(b.port)})
    px = w.proxy("echo")
    socks = []
    for i in range(N):
        s = pt.connect(px.port)
        s.sendall(b"hi %d" % i)
        assert pt.recv_exactly(s, 4) == b"hi %d" % i
        socks.append(s)
    code, took = stop_timed(px)
    assert code == 0, code
    assert took < 5, took
    assert len(ends(px, r'reason="shutdown"')) == N, px.log()
    for s in socks:
        pt.wait_closed(s, timeout=5)
        s.close()
    fk.wait_until("relay ends them", lambda: len(ends(w.relay, r'reason=rst detail="(closed by client: shutdown|client\'s connection was reset)"')) == N,
                  timeout=5)
    fk.wait_until("backends see the end", lambda: len(backend_ends) == N, timeout=10)
    assert backend_ends == ["reset"] * N, backend_ends
    fk.wait_until("server logs the ends", lambda: len(ends(w.server, r'reason="rst: closed by client: shutdown"')) == N)
    assert w.relay.alive() and w.server.alive()
    print("# ptth_proxy: exit 0 after %.2fs, %d tunnels ended with reason=shutdown" % (took, N))


@t.test
def sigterm_without_tunnels_is_quick(ctx):
    w = kit.World(ctx, {"echo": "9"})
    px = w.proxy("echo")
    for p in (px, w.server, w.relay):
        code, took = stop_timed(p)
        assert code == 0 and took < 3, (p.name, code, took)


t.run()
