#!/usr/bin/env python3
"""Resumable tunnels (issue 14, SPEC §9.3) with the real ptth_relay,
ptth_server and ptth_proxy: an open tunnel on the upgraded path (and on
the chunked and hybrid paths) survives cut connections between a
terminator and the relay, a relay killed with -9
or stopped with SIGTERM and started again with the same
--resume-secret-file, and an ssh session keeps running across a relay
restart. Past --resume-grace a suspended tunnel ends and both local sockets
are reset; a terminator with --resume-buffer 0 does not ask for resumption
and its tunnels end at a cut as before. A tunnel whose window and local
end are full does not stall, on any path."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt  # noqa: E402

t = pt.Tap()

MIB = pt.MIB
# the default, said out loud: these tests are about resumption
RESUME = ["--resume-buffer", "4194304"]


def secret_file(ctx):
    path = ctx.path("resume.secret")
    with open(path, "wb") as f:
        f.write(os.urandom(32).hex().encode() + b"\n")
    os.chmod(path, 0o600)
    return path


def resumed(proc):
    return proc.count(r"event=tunnel_resumed ")


def resume_lines(proc):
    return re.findall(r"event=tunnel_resumed [^\n]*", proc.log())


def hybrid_args():
    """The terminators' arguments and the relay's of a tunnel on the hybrid
    path: both ask to upgrade (--data-path auto, the default), the relay
    has --upgrade off and answers 200 with the framed stream as the body
    of the upgrade request's answer."""
    return ["--data-path", "auto"], ["--upgrade", "off"]


def assert_hybrid(procs):
    """Each terminator's first tunnel took the hybrid path: its upgrade
    request got a 2xx framed stream because of the relay's --upgrade off
    (logged only where the answer's body becomes the framed stream), and
    it did not fall back to a framed-stream request of the chunked path."""
    for p in procs:
        assert p.count(r'event=upgrade_unavailable [^\n]*reason="?the relay has --upgrade off') == 1, p.log()[-3000:]
        assert p.count(r"event=upgrade_fallback ") == 0, p.log()[-3000:]


def paced_echo_cut_test(ctx, path):
    """100 MB echoed through one tunnel on path (upgrade, chunks, hybrid)
    while the connections of ptth_proxy and ptth_server to the relay are
    reset 5 times each (a TCP forwarder in between that resets everything
    it carries and keeps accepting): the hashes match, the relay logged a
    resume per cut and one clean end."""
    relay_args = []
    if path == "hybrid":
        data_path, relay_args = hybrid_args()
    else:
        data_path = ["--data-path", path]
    term_args = ["--log-level", "debug"] + data_path + RESUME
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, start_server=False, relay_args=relay_args)
    near_client = fk.TcpProxy(w.relay.port)
    near_server = fk.TcpProxy(w.relay.port)
    ctx.cleanups += [near_client.close, near_server.close]
    w.server = ctx.server("http://127.0.0.1:%d" % near_server.port, "foo", w.skey, ["echo=%d" % echo.port],
                          args=term_args)  # resume_attempt lines, for a failure's logs
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = ctx.proxy("http://127.0.0.1:%d" % near_client.port, w.ckey, "foo", "echo", args=term_args)
    size = 100 * 1000 * 1000
    # 25 MB/s: four seconds, a cut every 8 MB echoed, the last one well
    # before the end
    e = pt.PacedEcho(px.port, size, rate=25e6)
    cuts = 0
    for i in range(10):
        e.wait_got((i + 1) * 8 * 1000 * 1000)
        assert e.sent < size, "the transfer ended before cut %d" % (i + 1)
        side = near_client if i % 2 == 0 else near_server
        before = resumed(w.relay)
        assert side.cut_all() >= 1, "nothing to cut on the %s side" % ("client" if side is near_client else "server")
        cuts += 1
        pt.wait_until("resume %d at the relay" % cuts, lambda: resumed(w.relay) > before or e.error is not None,
                      timeout=30)
    e.finish()
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=fin", 1)
    assert w.relay.count(r"event=tunnel_end ") == 1, w.relay.log()
    # the relay tells the hybrid path from the chunked one only by its
    # answer (PTTH-Upgrade: off): it logs path=chunks for both
    relay_path = "chunks" if path == "hybrid" else path
    assert w.relay.count(r"event=tunnel_end [^\n]*path=%s" % relay_path) == 1, w.relay.log()
    if path == "hybrid":
        assert_hybrid([px, w.server])
    assert resumed(w.relay) >= cuts, resume_lines(w.relay)
    # each cut was seen by the terminator on that side, and the other
    # terminator resumed too (the relay resets its leg)
    assert resumed(px) >= cuts and resumed(w.server) >= cuts, (resume_lines(px), resume_lines(w.server))
    line = resume_lines(w.relay)[-1]
    assert re.search(r"conn=\S+ gap_ms=\d+ replayed_up=\d+ replayed_down=\d+", line), line
    print("# %s: 100 MB echoed exact across %d cuts; relay resumes: %d; e.g. %s" % (path, cuts, resumed(w.relay), line))


@t.test
def silent_connection_on_chunks_is_taken_as_dead_and_resumes(ctx):
    """On the chunked path all of ptth_server's requests share one HTTP/2
    connection. When the path drops everything on it without a reset, the
    server PINGs it after 10 s of silence, takes it as dead 10 s later
    (its log says "the connection is dead?"), and the
    tunnel resumes on a new connection: an echo paced through it comes back
    exact."""
    term_args = ["--log-level", "debug", "--data-path", "chunks"] + RESUME
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, start_server=False)
    near_server = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(near_server.close)
    w.server = ctx.server("http://127.0.0.1:%d" % near_server.port, "foo", w.skey, ["echo=%d" % echo.port],
                          args=term_args)
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = w.proxy("echo", args=term_args)
    size = 16 * 1000 * 1000
    e = pt.PacedEcho(px.port, size, rate=0.5e6)  # 32 s: the silence and the resume fall inside
    e.wait_got(1000 * 1000)
    started = time.monotonic()
    assert near_server.silence_all() == 1, "the server should have one connection to the relay"
    pt.wait_until("the server's resume", lambda: resumed(w.server) >= 1 or e.error is not None, timeout=40)
    took = time.monotonic() - started
    assert e.error is None, e.error
    assert 15 <= took <= 30, "resumed %.1f s after the path went silent (PING after 10 s, dead 10 s later)" % took
    assert w.server.count(r"the connection is dead\?") >= 1, w.server.log()[-3000:]
    e.finish()
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=fin", 1)
    assert near_server.accepted >= 2
    print("# chunks: the server's connection went silent; resumed after %.1f s on connection %d; %d MB echoed exact"
          % (took, near_server.accepted, size // 1000000))


@t.test
def paced_echo_survives_cut_connections_both_sides(ctx):
    paced_echo_cut_test(ctx, "upgrade")


@t.test
def paced_echo_survives_cut_connections_both_sides_on_chunks(ctx):
    """The same on the chunked path: chunks carry the end-to-end frames,
    a cut breaks the framed stream and the chunks in flight, and both
    terminators resume with plain resume requests."""
    paced_echo_cut_test(ctx, "chunks")


@t.test
def paced_echo_survives_cut_connections_both_sides_on_hybrid(ctx):
    """The same on the hybrid path (relay --upgrade off, terminators on
    --data-path auto): the framed stream of the first epoch is the body of
    each upgrade request's 200, chunks go as POSTs; the first cut resets
    those legs, and every resume after it is a plain one, on the chunked
    path."""
    paced_echo_cut_test(ctx, "hybrid")


def restart_test(ctx, how, path="upgrade"):
    echo = kit.echo_backend(ctx)
    secret = secret_file(ctx)
    port = pt.free_port()
    term_args = ["--data-path", path] + RESUME
    w = kit.World(ctx, {"echo": echo.port}, relay_args=["--resume-secret-file", secret], relay_port=port,
                  server_args=term_args)
    px = w.proxy("echo", args=term_args)
    size = 40 * 1000 * 1000
    e = pt.PacedEcho(px.port, size, rate=25e6)
    e.wait_got(8 * MIB)
    assert e.sent < size, "the transfer ended before the relay went down"
    started = time.monotonic()
    if how == "kill":
        w.relay.kill9()
    else:
        w.relay.stop()
    w.relay = w.start_relay()
    e.wait_got(e.got + 2 * MIB)
    took = time.monotonic() - started
    e.finish()
    kit.wait_count(w.relay, r"event=tunnel_resumed ", 1)
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=fin", 1)
    assert resumed(px) == 1 and resumed(w.server) == 1, (resume_lines(px), resume_lines(w.server))
    assert w.relay.count(r"event=tunnel_end [^\n]*path=%s" % path) == 1, w.relay.log()
    print("# %s: relay %s and restart: 40 MB exact, bytes flowed again %.2fs after; %s" %
          (path, how, took, resume_lines(w.relay)[0]))


@t.test
def relay_killed_and_restarted_with_the_same_secret(ctx):
    restart_test(ctx, "kill")


@t.test
def relay_killed_and_restarted_with_the_same_secret_on_chunks(ctx):
    restart_test(ctx, "kill", "chunks")


@t.test
def relay_stopped_and_restarted_with_the_same_secret(ctx):
    restart_test(ctx, "sigterm")


@t.test
def ssh_session_keeps_counting_across_a_relay_restart(ctx):
    """A real sshd behind ptth_server, ssh through ptth_proxy, a remote
    command printing a counter every 100 ms: the relay is killed and
    started again in the middle; the counter goes on without a gap and ssh
    exits 0."""
    sshd = kit.Sshd(ctx)
    secret = secret_file(ctx)
    w = kit.World(ctx, {"ssh": sshd.port}, relay_args=["--resume-secret-file", secret], relay_port=pt.free_port(),
                  server_args=RESUME)
    px = w.proxy("ssh", args=RESUME)
    n = 50
    cmd = ["ssh"] + sshd.client_opts() + ["-p", str(px.port), "127.0.0.1",
                                          "for i in $(seq 1 %d); do echo $i; sleep 0.1; done" % n]
    ssh = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []

    def read():
        for raw in ssh.stdout:
            lines.append((time.monotonic(), raw.decode().strip()))

    th = threading.Thread(target=read, daemon=True)
    th.start()
    pt.wait_until("the counter runs", lambda: len(lines) >= 10, timeout=30)
    w.relay.kill9()
    time.sleep(0.3)
    w.relay = w.start_relay()
    try:
        code = ssh.wait(timeout=60)
    except subprocess.TimeoutExpired:
        ssh.kill()
        raise AssertionError("ssh hung after the relay restart; got %r" % [x[1] for x in lines][-5:])
    th.join(10)
    err = ssh.stderr.read().decode(errors="replace")
    assert code == 0, "ssh exited %d: %s" % (code, err)
    assert [x[1] for x in lines] == [str(i) for i in range(1, n + 1)], [x[1] for x in lines]
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    kit.wait_count(w.relay, r"event=tunnel_resumed ", 1)
    print("# ssh counter 1..%d without a gap across a relay kill and restart; longest pause %.2fs" %
          (n, max(gaps)))


@t.test
def past_the_grace_both_local_ends_are_reset(ctx):
    """The relay is killed and not started again: after --resume-grace (2 s
    here, from the 101) both terminators give up, the client's connection
    and the backend's are reset, and both log reason resume_timeout."""
    ends = []

    def handler(c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    ends.append("eof")
                    return
                c.sendall(b)
        except ConnectionResetError:
            ends.append("reset")

    backend = kit.Backend(handler)
    ctx.cleanups.append(backend.close)
    w = kit.World(ctx, {"echo": backend.port}, relay_args=["--resume-grace", "2"], server_args=RESUME)
    px = w.proxy("echo", args=RESUME)
    s = pt.connect(px.port)
    kit.round_trip(s, b"before")
    w.relay.kill9()
    took = fk.closed_within([s], 15, reset=True)
    assert 1.5 <= took <= 8, "the client's connection was reset %.2fs after the relay died (grace 2 s)" % took
    pt.wait_until("the backend's connection ends", lambda: ends, timeout=10)
    assert ends == ["reset"], ends
    kit.wait_count(px, r'event=tunnel_end [^\n]*reason="?resume_timeout', 1)
    kit.wait_count(w.server, r'event=tunnel_end [^\n]*reason="?resume_timeout', 1)
    print("# relay gone for good: client reset %.2fs later (grace 2 s), backend reset too" % took)


def full_resume_buffer_test(ctx, path=None):
    echo = kit.echo_backend(ctx)
    small = ["--resume-buffer", "524288"]
    relay_args = []
    if path == "hybrid":
        data_path, relay_args = hybrid_args()
        small += data_path + ["--log-level", "debug"]  # upgrade_fallback is a debug line
    w = kit.World(ctx, {"echo": str(echo.port)}, server_args=small, relay_args=relay_args)
    px = w.proxy("echo", args=small)
    stuck = pt.connect(px.port, timeout=30)
    data = os.urandom(1 << 20) * 96  # more than every socket buffer on the way holds
    sent = [0]

    def writer():
        try:
            while sent[0] < len(data):
                sent[0] += stuck.send(data[sent[0]:sent[0] + 65536])
        except OSError:
            pass

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    pt.wait_until("the stuck tunnel backs up", lambda: time.sleep(0.2) or sent[0] > 0, timeout=10)
    last = -1
    while sent[0] != last:  # until the writer blocks: everything between is full
        last = sent[0]
        time.sleep(0.5)
    assert sent[0] < len(data), "96 MB went in without reading: nothing backed up"
    t0 = time.monotonic()
    other = pt.connect(px.port, timeout=30)
    block = os.urandom(4 << 20)
    got = b""
    for off in range(0, len(block), 65536):  # a piece, then its echo: no deadlock of our own
        other.sendall(block[off:off + 65536])
        got += pt.recv_exactly(other, 65536, timeout=20)
    assert got == block, "the other tunnel's echo differs"
    took = time.monotonic() - t0
    other.close()
    assert th.is_alive() and sent[0] < len(data), "the stuck tunnel moved on its own"
    back = pt.recv_exactly(stuck, len(data), timeout=60)
    th.join(timeout=10)
    assert back == data, "the stuck tunnel's bytes differ once read"
    stuck.close()
    if path == "hybrid":  # the stuck tunnel was each terminator's first: hybrid
        assert_hybrid([px, w.server])
    print("# %s%d MB in before the stuck tunnel was full; the other tunnel echoed 4 MB in %.2fs" %
          (path + ": " if path else "", last >> 20, took))


@t.test
def full_resume_buffer_stalls_only_its_own_tunnel(ctx):
    """A client that writes 96 MB to an echo and reads nothing: both
    directions of its tunnel back up until the resume buffers and windows
    are full (512 KiB here). Meanwhile a second tunnel through the same
    three programs echoes 4 MB at once; then the first client reads, and
    gets every byte back in order."""
    full_resume_buffer_test(ctx)


@t.test
def full_resume_buffer_stalls_only_its_own_tunnel_on_hybrid(ctx):
    """The same with the stuck tunnel on the hybrid path: a terminator
    that may send nothing more (its buffer or the peer's window is full)
    reads its leg's framed stream past a full local end, for the ACKs
    behind the peer's DATA; else the echo's tunnel stalls for good. The
    second tunnel goes on the chunked path (auto remembers --upgrade off)."""
    full_resume_buffer_test(ctx, "hybrid")


def window_full_while_local_full_test(ctx, path):
    """A backend that reads nothing until it has written 16 MB, and a client
    that writes 32 MB and reads nothing for a while: ptth_server's local
    end is full first (its leg's framed stream is not read then), and only
    after that does what it sends fill the proxy's window (512 KiB). The
    proxy's ACKs then wait in the framed stream behind DATA for the
    backend, which reads nothing until its own writes went through: the
    server must read its framed stream past the full local end for them.
    Once the client reads, every byte goes both ways."""
    small = ["--resume-buffer", "524288", "--log-level", "debug"]
    relay_args = []
    if path == "hybrid":
        data_path, relay_args = hybrid_args()
    else:
        data_path = ["--data-path", path]
    down = os.urandom(1 << 20) * 16
    up = os.urandom(1 << 20) * 32
    seen = []

    def handler(c):
        time.sleep(1)  # the client's bytes fill everything up to the backend first
        c.sendall(down)
        got = pt.recv_exactly(c, len(up), timeout=60)
        seen.append(got == up)
        c.sendall(b"done")

    backend = kit.Backend(handler)
    ctx.cleanups.append(backend.close)
    w = kit.World(ctx, {"b": str(backend.port)}, server_args=small + data_path, relay_args=relay_args)
    px = w.proxy("b", args=small + data_path)
    s = pt.connect(px.port, timeout=60)
    th = threading.Thread(target=lambda: s.sendall(up), daemon=True)
    th.start()
    time.sleep(3)  # the backend wrote what it could; the proxy's window is full
    t0 = time.monotonic()
    back = pt.recv_exactly(s, len(down), timeout=30)
    took = time.monotonic() - t0
    assert back == down, "the backend's bytes differ"
    assert pt.recv_exactly(s, 4, timeout=30) == b"done"
    th.join(10)
    assert seen == [True], "the client's bytes differ at the backend"
    s.close()
    if path == "hybrid":
        assert_hybrid([px, w.server])
    print("# %s: 16 MB down and 32 MB up through a full window and a full local end; down took %.2fs once read" %
          (path, took))


@t.test
def window_full_while_the_local_end_is_full(ctx):
    window_full_while_local_full_test(ctx, "upgrade")


@t.test
def window_full_while_the_local_end_is_full_on_chunks(ctx):
    window_full_while_local_full_test(ctx, "chunks")


@t.test
def window_full_while_the_local_end_is_full_on_hybrid(ctx):
    window_full_while_local_full_test(ctx, "hybrid")


@t.test
def resume_buffer_zero_ends_cut_tunnels_as_before(ctx):
    """ptth_proxy --resume-buffer 0 does not ask for resumption: a cut of
    its connection ends the tunnel at once (the relay logs reason=rst, the
    backend sees the end), and nothing is resumed."""
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, {"echo": echo.port})
    mid = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(mid.close)
    px = ctx.proxy("http://127.0.0.1:%d" % mid.port, w.ckey, "foo", "echo", args=["--resume-buffer", "0"])
    s = pt.connect(px.port)
    kit.round_trip(s, b"hello")
    started = time.monotonic()
    mid.cut_all()
    kit.wait_count(w.relay, r"event=tunnel_end [^\n]*reason=rst", 1, timeout=10)
    took = time.monotonic() - started
    assert took < 5, took
    s.settimeout(10)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    assert resumed(w.relay) == 0 and resumed(px) == 0
    print("# --resume-buffer 0: the cut tunnel ended after %.2fs, not resumed" % took)


@t.test
def a_cut_server_listens_again_at_once(ctx):
    """A cut of ptth_server's connection also fails its waiting listens: the
    first retry goes at once (retry_in_ms=0), not after the backoff, so a
    new tunnel is not kept waiting while the open one resumes; the open
    tunnel resumes and a new one through the same server works."""
    echo = kit.echo_backend(ctx)
    w = kit.World(ctx, start_server=False)
    near_server = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(near_server.close)
    w.server = ctx.server("http://127.0.0.1:%d" % near_server.port, "foo", w.skey, ["echo=%d" % echo.port], args=RESUME)
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = w.proxy("echo")
    s = pt.connect(px.port)
    kit.round_trip(s, b"before the cut")
    assert w.server.count(r"event=relay_unreachable ") == 0, w.server.log()
    assert near_server.cut_all() >= 1
    line = w.server.wait_for(r"event=relay_unreachable [^\n]*", timeout=10).group(0)
    assert "retry_in_ms=0" in line.split(), line
    pt.wait_until("the open tunnel resumed", lambda: resumed(w.server) >= 1, timeout=20)
    kit.round_trip(s, b"after the cut")
    started = time.monotonic()
    assert kit.echo_once(px.port, b"a new tunnel") == b"a new tunnel"
    took = time.monotonic() - started
    s.close()
    print("# after the cut: %s; a new tunnel echoed in %.3fs" % (line, took))


t.run()
