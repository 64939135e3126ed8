#!/usr/bin/env python3
"""Refused tunnels (SPEC §4, §5, §6): whatever the relay answers to a
connect, ptth_proxy closes the local connection promptly and logs the status
and reason; ptth_server rejects what it cannot reach and keeps running; bad
keys are logged clearly; Retry-After is honoured."""

import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()


def refused(px, status, timeout=5.0):
    """Opens a connection through px, asserts it is closed within timeout
    without data and that the proxy logged the status; returns the line."""
    before = px.count(r"event=connect_refused")
    s = pt.connect(px.port)
    s.sendall(b"anyone there?")
    started = time.monotonic()
    assert pt.wait_closed(s, timeout=timeout) == b""
    took = time.monotonic() - started
    s.close()
    deadline = time.monotonic() + 5
    while px.count(r"event=connect_refused") == before:
        assert time.monotonic() < deadline, px.log()
        time.sleep(0.02)
    line = re.findall(r"[^\n]*event=connect_refused[^\n]*", px.log())[before]
    assert "status=%d" % status in line, line
    return line, took


@t.test
def backend_refused_is_502(ctx):
    closed_port = pt.free_port()
    w = kit.World(ctx, {"dead": str(closed_port)})
    px = w.proxy("dead")
    line, took = refused(px, 502)
    assert "Connection refused" in line or "refused" in line, line
    assert took < 5, took
    w.server.wait_for(r"event=backend_failed [^\n]*port=dead[^\n]*127\.0\.0\.1:%d" % closed_port)
    # the server keeps running and serving
    assert w.server.alive()
    refused(px, 502)


@t.test
def unknown_server_and_port_are_404(ctx):
    w = kit.World(ctx, {"echo": "1"}, allow=["alice=*/*"])
    refused(w.proxy("echo", server="nosuch"), 404)
    refused(w.proxy("noport"), 404)


@t.test
def wrong_client_key_is_401(ctx):
    w = kit.World(ctx, {"echo": "1"})
    stranger = ctx.key("stranger")
    line, _ = refused(w.proxy("echo", key=stranger), 401)


@t.test
def acl_miss_is_403(ctx):
    w = kit.World(ctx, {"echo": "1", "other": "2"}, allow=["alice=foo/other"])
    refused(w.proxy("echo"), 403)


@t.test
def server_with_wrong_key_logs_401_and_keeps_trying(ctx):
    w = kit.World(ctx, {}, start_server=False)
    stranger = ctx.key("stranger")
    srv = w.start_server({"echo": "1"}, key=stranger, wait=False)
    line = srv.wait_for(r"[^\n]*event=relay_refused_key[^\n]*").group(0)
    assert " error " in line and "status=401" in line and "server=foo" in line, line
    time.sleep(1)
    assert srv.alive(), srv.log()


@t.test
def offline_server_503_and_retry_after(ctx):
    w = kit.World(ctx, {}, start_server=False)
    px = w.proxy("echo")
    line, _ = refused(px, 503)
    m = re.search(r"retry_after=(\d+)", line)
    assert m and int(m.group(1)) > 0, line
    # within the Retry-After window the proxy does not ask the relay again:
    # it closes the connection at once and says so
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=2) == b""
    s.close()
    line = px.wait_for(r"[^\n]*event=connect_refused [^\n]*relay asked to retry later[^\n]*").group(0)
    assert "status=503" in line and "retry_in_ms=" in line, line


@t.test
def limit_reached_is_429(ctx):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_args=["--max-connections-per-server", "1"])
    px = w.proxy("echo")
    first = pt.connect(px.port)
    first.sendall(b"hold")
    assert pt.recv_exactly(first, 4) == b"hold"
    line, _ = refused(px, 429)
    assert "retry_after=" in line, line
    first.close()


@t.test
def server_that_does_not_accept_is_504(ctx):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, {"echo": str(echo.port)}, relay_args=["--connect-timeout", "1"])
    px = w.proxy("echo")
    w.server.signal(signal.SIGSTOP)
    try:
        line, took = refused(px, 504, timeout=8)
    finally:
        w.server.signal(signal.SIGCONT)
    assert took >= 0.8, took
    # once running again, the server serves normally
    time.sleep(0.5)
    assert kit.echo_once(px.port, b"after") == b"after"


t.run()
