#!/usr/bin/env python3
"""The NVMe transport through the whole tunnel (SPEC §7): ptth_proxy ->
ptth_relay -> ptth_server --port-map X=nvme:SOCKET:PORT -> ptth_csd_emu ->
backend. Echo, 50 MB with half-close and a checksum, 20 tunnels at once, a
refused backend, the emulator killed and restarted, --check-config on a bad
device, and the throughput of one tunnel."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration", "tunnel"))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()
SLOW = kit.sanitized()


def emulator(ctx, path=None):
    """Starts ptth_csd_emu on a socket in the test's directory."""
    path = path or ctx.path("csd.sock")
    p = ctx.start([pt.program("ptth_csd_emu"), "--socket", path], name="ptth_csd_emu")
    p.wait_for(r"event=listening socket=\S+")
    p.socket = path
    return p


def nvme_world(ctx, backend_port, emu):
    return kit.World(ctx, {"csd": "nvme:%s:%d" % (emu.socket, backend_port)})


@t.test
def echo_round_trips(ctx):
    emu = emulator(ctx)
    echo = kit.echo_backend(ctx)
    w = nvme_world(ctx, echo.port, emu)
    px = w.proxy("csd")
    s = pt.connect(px.port)
    s.sendall(b"early|")
    assert pt.recv_exactly(s, 6) == b"early|"
    for i in range(20):
        msg = os.urandom(1 + (i * 7919) % 30000)
        s.sendall(msg)
        assert pt.recv_exactly(s, len(msg)) == msg, "round trip %d differs" % i
    s.close()
    emu.wait_for(r"event=relay_open desc=\d+ node=\"127\.0\.0\.1\" service=\"%d\"" % echo.port)
    emu.wait_for(r"event=relay_close desc=\d+ [^\n]*reason=close")
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=csd")


@t.test
def fifty_mb_with_half_close(ctx):
    """50 MB both ways at once through one tunnel; the client half-closes after
    sending and still receives everything, then the end of stream (the relay is
    closed after the 3 s linger, docs/transports.md)."""
    emu = emulator(ctx)
    echo = kit.echo_backend(ctx)
    w = nvme_world(ctx, echo.port, emu)
    px = w.proxy("csd")
    size = 50 * 1000 * 1000
    sent, got, n, secs = kit.bulk_both_ways(px.port, size, timeout=300 if SLOW else 120)
    assert n == size, (n, size)
    assert sent == got, "checksums differ"
    print("# nvme tunnel: 50 MB echoed (both ways at once) in %.1f s, %.1f MB/s each way (includes the 3 s linger)"
          % (secs, size / 1e6 / secs), flush=True)
    line = w.relay.wait_for(r"event=tunnel_end [^\n]*port=csd[^\n]*").group(0)
    assert "reason=fin" in line, line
    emu.wait_for(r"event=relay_close [^\n]*bytes_to_backend=%d bytes_from_backend=%d" % (size, size))


@t.test
def twenty_tunnels_at_once(ctx):
    emu = emulator(ctx)
    echo = kit.echo_backend(ctx)
    w = nvme_world(ctx, echo.port, emu)
    px = w.proxy("csd")
    n = 20
    results = kit.echo_in_parallel(px.port, n, 512 * 1024)
    assert all(r is True for r in results), results
    assert echo.accepted == n, echo.accepted
    deadline = time.monotonic() + 20  # for both
    kit.wait_count(w.relay, r"event=tunnel_end ", n, timeout=20)
    kit.wait_count(emu, r"event=relay_close ", n, timeout=deadline - time.monotonic())


@t.test
def refused_backend_closes_the_client(ctx):
    emu = emulator(ctx)
    dead = pt.free_port()
    w = nvme_world(ctx, dead, emu)
    px = w.proxy("csd")
    s = pt.connect(px.port)
    s.sendall(b"hello?")
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    px.wait_for(r"event=connect_refused [^\n]*status=502")
    w.server.wait_for(r"open relay to 127\.0\.0\.1:%d: Connection refused" % dead)
    emu.wait_for(r"event=relay_open_failed [^\n]*service=\"%d\"" % dead)
    assert w.server.alive()


@t.test
def emulator_killed_then_back(ctx):
    emu = emulator(ctx)
    echo = kit.echo_backend(ctx)
    w = nvme_world(ctx, echo.port, emu)
    px = w.proxy("csd")
    open_socks = []
    for i in range(3):
        s = pt.connect(px.port)
        s.sendall(b"ping%d" % i)
        assert pt.recv_exactly(s, 5) == b"ping%d" % i
        open_socks.append(s)

    emu.kill9()
    # the open tunnels are closed, with a clear line in the server's log
    for s in open_socks:
        pt.wait_closed(s, timeout=10)
        s.close()
    w.server.wait_for(r"event=nvme_relay_failed [^\n]*emulator closed the connection")
    deadline = time.monotonic() + 10
    while w.relay.count(r"event=tunnel_end ") < 3:
        assert time.monotonic() < deadline, w.relay.log()
        time.sleep(0.05)
    # while it is down, new tunnels are refused promptly and say why
    s = pt.connect(px.port)
    assert pt.wait_closed(s, timeout=10) == b""
    s.close()
    w.server.wait_for(r"cannot reach the emulator[^\n]*is ptth_csd_emu running\?")
    assert w.server.alive()

    # back on the same socket path: new tunnels work without restarting anything
    emulator(ctx, emu.socket)
    s = pt.connect(px.port)
    s.sendall(b"again")
    assert pt.recv_exactly(s, 5) == b"again"
    s.close()


@t.test
def check_config_refuses_a_bad_device(ctx):
    w = kit.World(ctx, {}, start_server=False)
    key = w.skey.write(ctx.path("s.key"))
    plain = ctx.path("not-a-device")
    open(plain, "w").close()
    for target, want in (("nvme:%s/nope:22" % ctx.dir, "No such file or directory"),
                         ("nvme:%s:22" % plain, "not a character device")):
        r = pt.run([pt.program("ptth_server"), "--relay", w.relay.url, "--name", "foo", "--key-file", key,
                    "--port-map", "x=" + target, "--check-config"])
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert want in r.stderr and target.split(":")[1] in r.stderr, r.stderr
        assert r.stderr.startswith("ptth_server"), r.stderr
    # a socket passes the check (the emulator need not be running yet)
    sock = ctx.path("later.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(sock)
    r = pt.run([pt.program("ptth_server"), "--relay", w.relay.url, "--name", "foo", "--key-file", key,
                "--port-map", "x=nvme:%s:22" % sock, "--check-config"])
    lst.close()
    assert r.returncode == 0, r.stderr


@t.test
def emulator_command_line(ctx):
    emu = pt.program("ptth_csd_emu")
    r = pt.run([emu, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("ptth_csd_emu "), r
    r = pt.run([emu, "--help"])
    assert r.returncode == 0 and "--socket PATH" in r.stdout and "--max-relays" in r.stdout, r
    r = pt.run([emu])
    assert r.returncode == 2 and r.stderr.startswith("ptth_csd_emu: ") and "--socket" in r.stderr, r
    r = pt.run([emu, "--socket", "x" * 200])
    assert r.returncode == 2 and "1 to 107 bytes" in r.stderr, r
    # a file that is not a socket is never replaced
    plain = ctx.path("plain")
    open(plain, "w").close()
    r = pt.run([emu, "--socket", plain])
    assert r.returncode == 1 and "not a socket" in r.stderr, r
    assert os.path.isfile(plain)
    # a live emulator's socket is not taken over; SIGTERM ends it with 0 and
    # removes its socket
    first = emulator(ctx)
    r = pt.run([emu, "--socket", first.socket])
    assert r.returncode == 1 and "served by another process" in r.stderr, r
    assert first.alive()
    first.stop()
    assert not os.path.exists(first.socket)


@t.test
def throughput_one_tunnel(ctx):
    """Backend -> client and client -> backend through one tunnel, 20 MB each
    (reported, not asserted)."""
    emu = emulator(ctx)
    kit.throughput_one_tunnel(
        ctx, "nvme tunnel",
        lambda down_port, up_port: kit.World(ctx, {"down": "nvme:%s:%d" % (emu.socket, down_port),
                                                    "up": "nvme:%s:%d" % (emu.socket, up_port)}))


t.run()
