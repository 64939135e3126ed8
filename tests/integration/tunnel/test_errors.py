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


@t.test
def environment_instead_of_options(ctx):
    """PTTH_RELAY and PTTH_KEY stand in for --relay and --key-file."""
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, {}, start_server=False)
    ctx.start([pt.program("ptth_server"), "--name", "foo", "--port-map", "echo=%d" % echo.port], name="ptth_server",
              env={"PTTH_RELAY": w.relay.url, "PTTH_KEY": w.skey.text})
    w.relay.wait_for(r"event=server_online server=foo")
    px = ctx.start([pt.program("ptth_proxy"), "--server", "foo", "--port", "echo"], name="ptth_proxy",
                   env={"PTTH_RELAY": w.relay.url, "PTTH_KEY": w.ckey.text})
    port = int(px.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    assert kit.echo_once(port, b"env") == b"env"


@t.test
def check_config_and_usage_errors(ctx):
    key = ctx.key("k")
    srv = pt.program("ptth_server")
    prx = pt.program("ptth_proxy")
    base = ["--relay", "http://127.0.0.1:1", "--key-file", key.path]
    r = pt.run([srv] + base + ["--name", "foo", "--port-map", "ssh=22", "--port-map", "u=unix:/x.sock",
                               "--check-config"])
    assert r.returncode == 0 and r.stdout == "config ok\n", (r.returncode, r.stdout, r.stderr)
    r = pt.run([prx] + base + ["--forward", "0=foo/ssh", "--check-config"])
    assert r.returncode == 0 and r.stdout == "config ok\n", (r.returncode, r.stdout, r.stderr)
    cases = [
        ([srv] + base + ["--name", "foo"], "at least one --port-map"),
        ([srv] + base + ["--name", "foo", "--port-map", "ssh=22", "--port-map", "ssh=23"], "mapped twice"),
        ([srv] + base + ["--name", "foo", "--port-map", "ssh=::1:22"], "'::1:22'"),
        ([srv] + base + ["--name", "foo", "--port-map", "bad name=22"], "bad port name"),
        ([srv, "--key-file", key.path, "--name", "foo", "--port-map", "a=1"], "--relay is required"),
        ([prx] + base, "give --server and --port, at least one --forward, or --socks"),
        ([prx] + base + ["--server", "foo"], "--server and --port go together"),
        ([prx] + base + ["--forward", "22=foo"], "bad forward"),
        ([prx] + base + ["--server", "foo", "--port", "p", "--stdio", "--forward", "1=a/b"], "--stdio cannot"),
        ([prx] + base + ["--listen", "127.0.0.1:0", "--forward", "1=a/b"], "--listen needs --server"),
    ]
    for argv, needle in cases:
        r = pt.run(argv)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)
        assert needle in r.stderr, (argv, r.stderr)
        assert all(line.startswith(os.path.basename(argv[0]) + ": ") for line in r.stderr.splitlines()), r.stderr
    # a key file readable by others is refused, naming the problem
    os.chmod(key.path, 0o644)
    r = pt.run([srv] + base + ["--name", "foo", "--port-map", "a=1"])
    assert r.returncode == 2 and "group or others" in r.stderr, (r.returncode, r.stderr)
    # a port that cannot be bound: exit 1, naming the address
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        os.chmod(key.path, 0o600)
        r = pt.run([prx] + base + ["--server", "foo", "--port", "p", "--listen", "127.0.0.1:%d" % busy.getsockname()[1]])
        assert r.returncode == 1 and "127.0.0.1:%d" % busy.getsockname()[1] in r.stderr, (r.returncode, r.stderr)


t.run()
