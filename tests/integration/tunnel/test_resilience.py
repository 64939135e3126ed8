#!/usr/bin/env python3
"""Failures around the tunnel (SPEC §5, §6): a ptth_server killed with -9
gets its tunnels' local connections closed within seconds; a relay that
restarts (cleanly or killed) is found again by both terminators without
restarting them; a ptth_server started before its relay comes online by
itself."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()


def assert_all_closed(socks, within):
    deadline = time.monotonic() + within
    for s in socks:
        pt.wait_closed(s, timeout=max(0.1, deadline - time.monotonic()))
        s.close()


@t.test
def kill9_server_closes_local_connections(ctx):
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, {"echo": str(echo.port)})
    px = w.proxy("echo")
    socks = kit.open_tunnels(px.port, 5)
    w.server.kill9()
    started = time.monotonic()
    assert_all_closed(socks, within=10)
    took = time.monotonic() - started
    assert took < 10, took
    for _ in range(5):
        px.wait_for(r"event=tunnel_end [^\n]*")
    # the relay ended them as the server's streams broke
    deadline = time.monotonic() + 10
    while w.relay.count(r"event=tunnel_end ") < 5:
        assert time.monotonic() < deadline, w.relay.log()
        time.sleep(0.05)
    # a new server process is picked up without touching the proxy
    w.start_server({"echo": str(echo.port)}, wait=False)
    kit.wait_works(px.port)


@t.test
def relay_restart_clean(ctx):
    echo = kit.echo_backend(ctx)
    # resumption off: the open tunnels end with the relay (resuming them on
    # the restarted relay is faults_resume's)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_port=pt.free_port(), relay_args=["--resume-grace", "0"])
    px = w.proxy("echo")
    socks = kit.open_tunnels(px.port, 3)
    w.relay.stop()
    assert_all_closed(socks, within=10)
    assert w.server.alive() and px.alive()
    w.relay = w.start_relay()
    w.relay.wait_for(r"event=server_online server=foo", timeout=40)
    took = kit.wait_works(px.port)
    assert took < 20, took
    w.server.wait_for(r"event=relay_connected")


@t.test
def relay_killed_and_restarted(ctx):
    echo = kit.echo_backend(ctx)
    # resumption off: the open tunnels end with the relay (resuming them on
    # the restarted relay is faults_resume's)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_port=pt.free_port(), relay_args=["--resume-grace", "0"])
    px = w.proxy("echo")
    socks = kit.open_tunnels(px.port, 3)
    w.relay.kill9()
    assert_all_closed(socks, within=10)
    # while the relay is away, connections are refused and logged
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    px.wait_for(r"event=connect_failed [^\n]*relay=http://127\.0\.0\.1:%d" % w.relay_port)
    w.server.wait_for(r"event=relay_unreachable")
    w.relay = w.start_relay()
    w.relay.wait_for(r"event=server_online server=foo", timeout=40)
    kit.wait_works(px.port)
    assert w.server.alive() and px.alive()


@t.test
def server_started_before_relay(ctx):
    echo = kit.echo_backend(ctx)
    port = pt.free_port()
    w = kit.World.__new__(kit.World)
    w.ctx = ctx
    w.skey, w.ckey = ctx.key("server"), ctx.key("client")
    w.allow, w.relay_args, w.relay_port = ["alice=foo/*"], [], port
    srv = ctx.server("http://127.0.0.1:%d" % port, "foo", w.skey, ["echo=%d" % echo.port])
    srv.wait_for(r"event=relay_unreachable")
    time.sleep(1.5)
    w.relay = w.start_relay()
    w.relay.wait_for(r"event=server_online server=foo", timeout=20)
    px = w.proxy("echo")
    assert kit.echo_once(px.port, b"late relay") == b"late relay"
    # backoff grows but stays bounded: the log shows the delays it chose
    delays = [int(x) for x in __import__("re").findall(r"retry_in_ms=(\d+)", srv.log())]
    assert delays and all(0 <= d <= 30000 for d in delays), delays
    assert delays[-1] > 0, delays


t.run()
