#!/usr/bin/env python3
"""The comm-channel transport through the whole tunnel (SPEC §7): ptth_proxy
-> ptth_relay -> ptth_server --port-map X=cc:SERVICE -> (seqpacket channel in
$PTTH_CC_DIR) -> ptth_cc_agent --target T -> backend. Echo (TCP and unix
targets), 50 MB with half-close and a checksum, 20 tunnels at once, the
--max-clients limit, the agent restarted (killed), ptth_server restarted
(cleanly and killed), --check-config, and the throughput of one tunnel."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration", "tunnel"))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()
SLOW = kit.sanitized()
SERVICE = "dpu0"


def cc_dir(ctx):
    """Each test has its own channel directory; the programs it starts
    inherit PTTH_CC_DIR from this process's environment."""
    d = ctx.path("cc")
    os.environ["PTTH_CC_DIR"] = d
    return d


def agent(ctx, target, args=(), service=SERVICE):
    p = ctx.start([pt.program("ptth_cc_agent"), "--cc-name", service, "--target", target] + list(args),
                  name="ptth_cc_agent")
    p.wait_for(r"event=listening channel=seqpacket:\S+/%s " % service)
    return p


def cc_world(ctx):
    return kit.World(ctx, {"dpu": "cc:" + SERVICE})


HOST_GONE = r"host closed the channel|channel receive failed: Connection reset by peer"

@t.test
def echo_round_trips(ctx):
    d = cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port)
    assert oct(os.stat(d).st_mode & 0o777) == "0o700", oct(os.stat(d).st_mode)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    s = pt.connect(px.port)
    s.sendall(b"early|")
    assert pt.recv_exactly(s, 6) == b"early|"
    for i in range(20):
        kit.round_trip(s, os.urandom(1 + (i * 7919) % 30000))
    s.close()
    ag.wait_for(r"event=tunnel_open tunnel=\d+ client=\"127\.0\.0\.1:\d+\" target=127\.0\.0\.1:%d" % echo.port)
    ag.wait_for(r"event=tunnel_end tunnel=\d+ [^\n]*reason=\"close\"")
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=dpu")
    w.server.wait_for(r"event=cc_channel_up channel=seqpacket:%s/%s" % (d, SERVICE))


@t.test
def unix_target(ctx):
    cc_dir(ctx)
    path = ctx.path("backend.sock")
    kit.echo_backend(ctx, unix_path=path)
    ag = agent(ctx, "unix:" + path)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    assert kit.echo_once(px.port, b"through a unix target") == b"through a unix target"
    ag.wait_for(r"event=tunnel_open [^\n]*target=unix:%s" % path)


@t.test
def fifty_mb_with_half_close(ctx):
    """50 MB both ways at once through one tunnel; the client half-closes after
    sending and still receives everything, then the end of stream."""
    cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    size = 50 * 1000 * 1000
    sent, got, n, secs = kit.bulk_both_ways(px.port, size, timeout=300 if SLOW else 120)
    assert n == size, (n, size)
    assert sent == got, "checksums differ"
    print("# cc tunnel: 50 MB echoed (both ways at once) in %.1f s, %.1f MB/s each way" % (secs, size / 1e6 / secs),
          flush=True)
    line = w.relay.wait_for(r"event=tunnel_end [^\n]*port=dpu[^\n]*").group(0)
    assert "reason=fin" in line, line
    ag.wait_for(r"event=tunnel_end [^\n]*bytes_up=%d bytes_down=%d [^\n]*reason=\"close\"" % (size, size))


@t.test
def twenty_tunnels_at_once(ctx):
    cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    n = 20
    results = kit.echo_in_parallel(px.port, n, 512 * 1024)
    assert all(r is True for r in results), results
    assert echo.accepted == n, echo.accepted
    kit.wait_count(w.relay, r"event=tunnel_end ", n)
    kit.wait_count(ag, r"event=tunnel_end ", n)
    # all on one channel connection
    assert ag.count(r"event=channel_open ") == 1, ag.log()


@t.test
def max_clients_refuses_one_over(ctx):
    """With --max-clients 3, a fourth tunnel is refused (its client sees the
    connection closed, the proxy logs 502 and the server why) while the three
    keep working; closing one makes room again."""
    cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port, ["--max-clients", "3"])
    w = cc_world(ctx)
    px = w.proxy("dpu")
    socks = kit.open_tunnels(px.port, 3)
    over = pt.connect(px.port)
    over.sendall(b"one too many")
    assert pt.wait_closed(over, timeout=15) == b""
    over.close()
    px.wait_for(r"event=connect_refused [^\n]*status=502")
    w.server.wait_for(r"event=backend_failed [^\n]*agent refused the tunnel: too many tunnels: --max-clients 3 reached")
    ag.wait_for(r"event=tunnel_refused [^\n]*reason=max_clients max_clients=3")
    for i, s in enumerate(socks):
        kit.round_trip(s, b"still working %d" % i)
    socks[0].close()
    kit.wait_count(ag, r"event=tunnel_end ", 1)
    s = pt.connect(px.port)
    kit.round_trip(s, b"room again")
    s.close()
    for s in socks[1:]:
        s.close()
    assert w.server.alive() and ag.alive()


@t.test
def agent_killed_then_back(ctx):
    """The agent dies (kill -9): open tunnels are closed, new ones are refused
    promptly while it is down, and once it is back (replacing its stale
    socket) new tunnels work without restarting ptth_server."""
    cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    socks = kit.open_tunnels(px.port, 3)
    ag.kill9()
    started = time.monotonic()
    for s in socks:
        pt.wait_closed(s, timeout=10)
        s.close()
    assert time.monotonic() - started < 10
    w.server.wait_for(r"event=cc_channel_lost channel=\S+ reason=\"agent closed the channel\"")
    kit.wait_count(w.relay, r"event=tunnel_end ", 3)
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    w.server.wait_for(r"event=backend_failed [^\n]*cannot connect to agent at [^\n]*is ptth_cc_agent running\?")
    assert w.server.alive()
    agent(ctx, "127.0.0.1:%d" % echo.port)
    kit.wait_works(px.port)


@t.test
def server_restarts_agent_stays(ctx):
    """ptth_server stops cleanly with tunnels open over the channel (exit 0,
    and under ASan nothing leaked), then is killed with -9: each time the
    agent ends that channel's tunnels and serves the next ptth_server."""
    cc_dir(ctx)
    echo = kit.echo_backend(ctx)
    ag = agent(ctx, "127.0.0.1:%d" % echo.port)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    socks = kit.open_tunnels(px.port, 3)
    w.server.stop()
    # a host that exits while the agent's answers to its last closes are on
    # their way resets the SOCK_SEQPACKET channel instead of closing it (the
    # upgraded path ends tunnels in a millisecond): either is the host gone
    ag.wait_for(r"event=channel_closed channel=1 reason=\"(%s)\"" % HOST_GONE)
    kit.wait_count(ag, r"event=tunnel_end ", 3)
    for s in socks:
        pt.wait_closed(s, timeout=15)
        s.close()

    w.server = w.start_server({"dpu": "cc:" + SERVICE}, wait=False)
    kit.wait_works(px.port, timeout=40)
    ag.wait_for(r"event=channel_open channel=2 ")
    socks = kit.open_tunnels(px.port, 2)
    w.server.kill9()
    ag.wait_for(r"event=channel_closed channel=2 reason=\"(%s)\"" % HOST_GONE)
    for s in socks:
        pt.wait_closed(s, timeout=15)
        s.close()

    w.server = w.start_server({"dpu": "cc:" + SERVICE}, wait=False)
    kit.wait_works(px.port, timeout=40)
    ag.wait_for(r"event=channel_open channel=3 ")
    assert ag.alive()


@t.test
def unreachable_target_is_refused(ctx):
    cc_dir(ctx)
    dead = pt.free_port()
    ag = agent(ctx, "127.0.0.1:%d" % dead)
    w = cc_world(ctx)
    px = w.proxy("dpu")
    s = pt.connect(px.port)
    s.sendall(b"hello?")
    assert pt.wait_closed(s, timeout=15) == b""
    s.close()
    px.wait_for(r"event=connect_refused [^\n]*status=502")
    w.server.wait_for(r"event=backend_failed [^\n]*cannot connect to target 127\.0\.0\.1:%d: Connection refused" % dead)
    ag.wait_for(r"event=tunnel_failed [^\n]*target=127\.0\.0\.1:%d" % dead)
    assert ag.alive() and w.server.alive()


@t.test
def check_config(ctx):
    cc_dir(ctx)
    w = kit.World(ctx, {}, start_server=False)
    key = w.skey.write(ctx.path("s.key"))
    r = pt.run([pt.program("ptth_server"), "--relay", w.relay.url, "--name", "foo", "--key-file", key,
                "--port-map", "dpu=cc:" + SERVICE, "--port-map", "v=cc:vsock:3:5000", "--check-config"])
    assert r.returncode == 0, r.stderr
    assert "config ok" in r.stdout, r.stdout
    ok = pt.run([pt.program("ptth_cc_agent"), "--cc-name", SERVICE, "--target", "127.0.0.1:22", "--check-config"])
    assert ok.returncode == 0 and "config ok" in ok.stdout, (ok.returncode, ok.stdout, ok.stderr)
    for args, want in ((["--cc-name", "a/b", "--target", "127.0.0.1:22"], "not a name"),
                       (["--cc-name", "vsock:x:1", "--target", "127.0.0.1:22"], "CID is not a number"),
                       (["--cc-name", SERVICE, "--target", "nowhere"], "expected unix:PATH, HOST:PORT"),
                       (["--cc-name", SERVICE, "--target", "127.0.0.1:22", "--max-clients", "0"], "max-clients"),
                       (["--target", "127.0.0.1:22"], "--cc-name is required")):
        r = pt.run([pt.program("ptth_cc_agent")] + args + ["--check-config"])
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("ptth_cc_agent: ") and want in r.stderr, (args, r.stderr)
    # a second agent on a channel that a live agent holds: exit 1, says why
    first = agent(ctx, "127.0.0.1:22")
    r = pt.run([pt.program("ptth_cc_agent"), "--cc-name", SERVICE, "--target", "127.0.0.1:22"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "another agent is listening" in r.stderr, r.stderr
    assert first.alive()


@t.test
def throughput_one_tunnel(ctx):
    """Backend -> client and client -> backend through one tunnel, 20 MB each
    (reported, not asserted)."""
    cc_dir(ctx)

    def world(down_port, up_port):
        agent(ctx, "127.0.0.1:%d" % down_port, service="down")
        agent(ctx, "127.0.0.1:%d" % up_port, service="up")
        return kit.World(ctx, {"down": "cc:down", "up": "cc:up"})

    kit.throughput_one_tunnel(ctx, "cc tunnel", world)


t.run()
