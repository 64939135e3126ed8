#!/usr/bin/env python3
"""Restarted terminators (docs/protocol.md "Restarted terminators"): a
ptth_server or ptth_proxy whose connection to the relay was lost (reset by
a forwarder that then goes away, as a failed network would) leaves its
tunnel suspended; killed with -9 and started again with the same arguments,
it says so at its first request (a new LIFE in PTTH-Instance), and the
relay ends the old process's suspended tunnels at once with reason
peer_restarted instead of waiting out --resume-grace (60 s here): the other
side's local connection is reset within seconds. (A killed terminator whose
kernel closes its connection cleanly ends its tunnels at once anyway: the
relay takes a clean end of a leg for an end.) Two running terminators with the same slot do not end each
other's tunnels, and a malformed PTTH-Instance is 400."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt, rc  # noqa: E402

t = pt.Tap()

RESUME = ["--resume-buffer", "4194304"]
GRACE = ["--resume-grace", "60"]
WITHIN = 10.0  # far below the grace: only the rule can end the tunnel this soon


class EndingBackend:
    """An echo backend that records how each connection ended."""

    def __init__(self, ctx):
        self.ends = []

        def handler(c):
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        self.ends.append("eof")
                        return
                    c.sendall(b)
            except ConnectionResetError:
                self.ends.append("reset")

        self.b = kit.Backend(handler)
        ctx.cleanups.append(self.b.close)
        self.port = self.b.port


def suspended(relay, n=1):
    kit.wait_count(relay, r"event=tunnel_suspended ", n, timeout=10)


@t.test
def restarted_server_ends_its_old_tunnels_at_once(ctx):
    """kill -9 ptth_server under an open tunnel, start it again with the same
    arguments: the relay logs reason=peer_restarted, the proxy's client
    connection is reset within seconds (grace 60 s) and the proxy logs
    reason peer_restarted; a new tunnel through the new server works."""
    echo = kit.echo_backend(ctx)
    ports = {"echo": echo.port}
    w = kit.World(ctx, ports, relay_args=GRACE, start_server=False)
    near = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(near.close)
    w.server = ctx.server("http://127.0.0.1:%d" % near.port, "foo", w.skey, ["echo=%d" % echo.port], args=RESUME)
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = w.proxy("echo", args=RESUME)
    s = pt.connect(px.port)
    kit.round_trip(s, b"before the restart")
    near.cut()  # the server's network fails: its resumes cannot reach the relay
    suspended(w.relay)
    time.sleep(0.5)  # the proxy's resume is held at the relay
    w.server.kill9()
    assert w.relay.count(r"event=tunnel_end ") == 0, w.relay.log()
    started = time.monotonic()
    w.server = w.start_server(ports, RESUME, wait=False)
    fk.closed_within([s], WITHIN, reset=True)
    took = time.monotonic() - started
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=peer_restarted", 1, timeout=5)
    kit.wait_count(w.relay, r"event=peer_restarted side=server name=foo slot=\S+ ", 1, timeout=5)
    kit.wait_count(px, r'event=tunnel_end [^\n]*reason="?peer_restarted', 1, timeout=5)
    assert w.relay.count(r"reason=resume_timeout") == 0, w.relay.log()
    # the instance line says the slot, never a key
    assert w.skey.text not in w.relay.log() and w.skey.text not in w.server.log()
    s2 = pt.connect(px.port)
    kit.round_trip(s2, b"after the restart")
    s2.close()
    print("# server restarted: the client's connection was reset %.2fs after the new server started (grace 60 s)" % took)


@t.test
def restarted_proxy_ends_its_old_tunnels_at_its_first_connect(ctx):
    """kill -9 ptth_proxy under an open tunnel, start it again with the same
    arguments: it asks nothing of the relay until a client comes, and that
    first connect ends the old tunnel (reason peer_restarted): the backend's
    connection is reset within seconds, the new client's tunnel works."""
    backend = EndingBackend(ctx)
    w = kit.World(ctx, {"echo": backend.port}, relay_args=GRACE, server_args=RESUME)
    near = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(near.close)
    px = ctx.proxy("http://127.0.0.1:%d" % near.port, w.ckey, "foo", "echo", args=RESUME)
    s = pt.connect(px.port)
    kit.round_trip(s, b"before the restart")
    near.cut()  # the proxy's network fails
    suspended(w.relay)
    time.sleep(0.5)  # the other side resumes and is held
    px.kill9()
    s.close()
    px2 = w.proxy("echo", args=RESUME)
    time.sleep(1.0)
    assert backend.ends == [], "the old tunnel ended before the new proxy said anything: %s" % backend.ends
    started = time.monotonic()
    s2 = pt.connect(px2.port)
    kit.round_trip(s2, b"after the restart")
    pt.wait_until("the old backend connection ends", lambda: backend.ends, timeout=WITHIN)
    took = time.monotonic() - started
    assert backend.ends == ["reset"], backend.ends
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=peer_restarted", 1, timeout=5)
    kit.wait_count(w.relay, r"event=peer_restarted side=client name=alice slot=\S+ ", 1, timeout=5)
    kit.wait_count(w.server, r'event=tunnel_end [^\n]*reason="?peer_restarted', 1, timeout=5)
    s2.close()
    print("# proxy restarted: the backend's old connection was reset %.2fs after the first new connect (grace 60 s)" % took)


@t.test
def two_running_servers_with_one_slot_keep_their_tunnels(ctx):
    """Two ptth_server processes with the same arguments on one host share
    a slot. Tunnels through both stay open while both send their listens;
    a cut of one server's connection is resumed, not ended; the relay logs
    the collision once and never peer_restarted."""
    echo = kit.echo_backend(ctx)
    ports = {"echo": echo.port}
    w = kit.World(ctx, ports, relay_args=GRACE, server_args=RESUME + ["--listens", "1"])
    near = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(near.close)
    maps = ["%s=%s" % kv for kv in ports.items()]
    other = ctx.server("http://127.0.0.1:%d" % near.port, "foo", w.skey, maps, args=RESUME + ["--listens", "1"])
    pt.wait_until("the second server listens", lambda: other.count(r"event=started ") > 0, timeout=10)
    px = w.proxy("echo", args=RESUME)
    socks = []
    for i in range(12):
        s = pt.connect(px.port)
        kit.round_trip(s, b"tunnel %d" % i)
        socks.append(s)
        if w.server.count(r"event=tunnel_open ") > 0 and other.count(r"event=tunnel_open ") > 0:
            break
    assert w.server.count(r"event=tunnel_open ") > 0 and other.count(r"event=tunnel_open ") > 0, \
        "the tunnels did not reach both servers"
    # both keep listening with their own lives
    time.sleep(1.0)
    for i, s in enumerate(socks):
        kit.round_trip(s, b"still open %d" % i)
    assert near.cut_all() >= 1
    kit.wait_count(other, r"event=tunnel_resumed ", 1, timeout=20)
    for i, s in enumerate(socks):
        kit.round_trip(s, b"after the cut %d" % i)
    assert w.relay.count(r"reason=peer_restarted") == 0, w.relay.log()
    assert w.relay.count(r"event=instance_collision ") == 1, w.relay.log()
    for s in socks:
        s.close()
    print("# %d tunnels over two servers of one slot: none ended, the cut one resumed" % len(socks))


@t.test
def malformed_instance_is_400(ctx):
    """A PTTH-Instance that is not SLOT.LIFE (base64url, one dot, bounded)
    is refused with 400 and a reason; a valid one and none are taken."""
    w = kit.World(ctx, start_server=False)
    api = rc.Api(w.relay.port)
    path = api.listen_path("foo")
    for bad in ["nodot", "a.b.c", "a b.c", "a+b.c", ".life", "slot.", "x" * 44 + ".y", "a.b" + "c" * 90]:
        c = api.start(path, w.skey, {"PTTH-Ports": "ssh", "PTTH-Instance": bad})
        r = c.read_head()
        body = c.read_body(r)
        c.close()
        assert r.status == 400, (bad, r)
        assert b"PTTH-Instance" in body, body
    r = api.post(path, w.skey, {"PTTH-Ports": "ssh", "PTTH-Instance": "bad"}, timeout=10)
    assert r.status == 400, r
    # well-formed: held like any listen (answered 204 at --listen-timeout, or
    # taken by a connect); here it is enough that it is not refused at once
    for good in ["AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB", None]:
        h = {"PTTH-Ports": "ssh"}
        if good is not None:
            h["PTTH-Instance"] = good
        c = api.start(path, w.skey, h)
        try:
            r = c.read_head(timeout=0.5)
            assert r.status != 400, (good, r)
        except socket.timeout:
            pass  # held, as a listen is until a connect comes
        finally:
            c.close()
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=5)
    print("# malformed PTTH-Instance values: 400 with the reason")


t.run()
