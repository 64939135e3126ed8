#!/usr/bin/env python3
"""Peers that vanish (issue 5, Faults): a ptth_server killed with -9, a
terminator's HTTP/1.1 stream or held request whose connection closes, and a
terminator stream cut by a TCP proxy in the middle of a tunnel. Each time the
other side learns it at once (RST), the relay forgets the tunnel (its
/v1/status says so) and nothing is left open; a restarted server is reachable
again quickly."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import kit, pt, rc  # noqa: E402

t = pt.Tap()


def echo_backend(ctx):
    b = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(b.close)
    return b


def open_tunnels(port, n):
    socks = []
    for i in range(n):
        s = pt.connect(port)
        s.sendall(b"ping %d" % i)
        assert pt.recv_exactly(s, len(b"ping %d" % i)) == b"ping %d" % i
        socks.append(s)
    return socks


def world_with_admin(ctx, ports, relay_args=(), server_relay_url=None, start_server=True):
    admin = pt.Key()
    w = kit.World(ctx, ports, relay_args=list(relay_args) + ["--admin-key-hash", admin.hash], start_server=False)
    w.admin = admin
    if start_server:
        maps = ["%s=%s" % kv for kv in ports.items()]
        w.server = ctx.server(server_relay_url or w.relay.url, "foo", w.skey, maps)
        w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    return w


def held_listens(port, admin):
    servers = fk.status(port, admin)["servers"]
    return servers[0]["listens"] if servers else 0


def open_tunnel_count(w):
    return len(fk.status(w.relay.port, w.admin)["tunnels"])


# ---- HTTP/1.1 terminators that vanish ------------------------------------------

@t.test
def h1_server_stream_vanishes(ctx):
    """The server side's accept stream is HTTP/1.1 (as behind nginx) and its
    connection closes: the client's stream gets RST at once, not at the next
    heartbeat (20 s here)."""
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=["--heartbeat", "20"])
    api = rc.Api(relay.port)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    r = api.chunk("foo", cid, "upstream", ck, 0, b"hello")
    # a chunk's answer names what it answers, so a terminator can check it
    assert r.status == 204 and r.headers.get("ptth-conn") == cid and r.headers.get("ptth-seq") == "0", r
    assert up.read_data(5) == b"hello"
    r = api.chunk("foo", cid, "upstream", ck, 0, b"hello")  # a retry: no effect, same names
    assert r.status == 204 and r.headers.get("ptth-seq") == "0", r
    started = time.monotonic()
    up.conn.sock.close()
    f = down.next_non_ping(timeout=5)
    took = time.monotonic() - started
    assert f is not None and f[0] == rc.RST and b"server's stream broke" in f[1], f
    assert down.next_non_ping(timeout=5) is None
    assert took < 2, took
    relay.wait_for(r"event=tunnel_end id=%s .*reason=rst" % cid)
    print("# client's stream got RST %.3fs after the server's HTTP/1.1 connection closed" % took)


@t.test
def h1_client_stream_vanishes(ctx):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=["--heartbeat", "20"])
    api = rc.Api(relay.port)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    started = time.monotonic()
    down.conn.sock.close()
    f = up.next_non_ping(timeout=5)
    took = time.monotonic() - started
    assert f is not None and f[0] == rc.RST and b"client's stream broke" in f[1], f
    assert took < 2, took


@t.test
def h1_held_listen_and_connect_vanish(ctx):
    """A held listen whose connection closes stops counting at once; so does
    a held connect (its tunnel ends instead of waiting for the accept)."""
    sk, ck, admin = pt.Key(), pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], admin=admin,
                      args=["--listen-timeout", "60", "--connect-timeout", "60"])
    api = rc.Api(relay.port)
    listens = [api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"}) for _ in range(3)]
    fk.wait_until("3 listens held", lambda: held_listens(relay.port, admin) == 3)
    listens[0].close()
    listens[1].close()
    fk.wait_until("the closed listens forgotten",
                  lambda: held_listens(relay.port, admin) == 1, timeout=2)
    # a connect takes the one left; its client goes away before the accept
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    r = listens[2].read_head()
    assert r.status == 200, r
    cid = r.headers["ptth-conn"]
    started = time.monotonic()
    cc.close()
    relay.wait_for(r"event=tunnel_end id=%s .*reason=rst detail=\"client went away before the tunnel opened\"" % cid,
                   timeout=2)
    assert time.monotonic() - started < 2
    assert fk.status(relay.port, admin)["tunnels"] == []
    assert api.post(api.conn_path("foo", cid, "accept"), sk).status == 404
    listens[2].close()


# ---- the real ptth_server killed -------------------------------------------------

@t.test
def kill9_server_ends_tunnels_and_restart_is_reachable(ctx):
    echo = echo_backend(ctx)
    w = world_with_admin(ctx, {"echo": str(echo.port)})
    px = w.proxy("echo")
    socks = open_tunnels(px.port, 5)
    assert open_tunnel_count(w) == 5
    w.server.kill9()
    took = fk.closed_within(socks, 15, reset=True)
    assert took < 15, took
    fk.wait_until("relay forgets the tunnels", lambda: open_tunnel_count(w) == 0, timeout=5)
    assert w.relay.count(r"event=tunnel_end [^\n]*reason=rst") == 5
    restarted = time.monotonic()
    w.server = ctx.server(w.relay.url, "foo", w.skey, ["echo=%d" % echo.port])
    deadline = restarted + 10
    while True:
        try:
            if kit.echo_once(px.port, b"back", timeout=5) == b"back":
                break
        except (OSError, AssertionError):
            pass
        assert time.monotonic() < deadline, "restarted server not reachable within 10 s"
        time.sleep(0.1)
    print("# kill -9: tunnels ended at the client after %.3fs; restarted server reachable after %.3fs" %
          (took, time.monotonic() - restarted))


# ---- a TCP proxy between a terminator and the relay is cut -------------------

def cut_test(ctx, side):
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    admin = pt.Key()
    # resumption off: this is the end of a tunnel whose connection is cut
    # for good (a resumable one resumes: faults_resume)
    w = kit.World(ctx, relay_args=["--admin-key-hash", admin.hash, "--heartbeat", "20", "--resume-grace", "0"],
                  start_server=False)
    w.admin = admin
    relay_fds = fk.open_fds(w.relay.popen.pid)
    mid = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(mid.close)
    via = "http://127.0.0.1:%d" % mid.port
    w.server = ctx.server(via if side == "server" else w.relay.url, "foo", w.skey, ["echo=%d" % echo.port])
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = ctx.proxy(via if side == "client" else w.relay.url, w.ckey, "foo", "echo")
    socks = open_tunnels(px.port, 3)
    assert open_tunnel_count(w) == 3
    started = time.monotonic()
    mid.cut()
    if side == "server":
        # the client's local connections are reset (RST via the relay)
        took = fk.closed_within(socks, 10, reset=True)
        fk.wait_until("backends closed", lambda: len(echo.results) == 3, timeout=10)
    else:
        # the backends see the end; the client's connections are closed by its proxy
        fk.wait_until("backends closed", lambda: len(echo.results) == 3, timeout=10)
        took = time.monotonic() - started
        fk.closed_within(socks, 10)
    fk.wait_until("relay forgets the tunnels", lambda: open_tunnel_count(w) == 0, timeout=10)
    assert w.relay.count(r"event=tunnel_end [^\n]*reason=rst") == 3, w.relay.log()
    # the terminators log the end, and nothing stays open at the relay
    term = w.server if side == "server" else px
    fk.wait_until("terminator logs the ends", lambda: term.count(r"event=tunnel_end ") >= 3, timeout=10)
    mid.close()
    fk.wait_until("relay descriptors back to the start",
                  lambda: fk.open_fds(w.relay.popen.pid) <= relay_fds + 12, timeout=10)
    print("# %s side cut: the other side saw the end after %.3fs; relay fds %d before, %d after" %
          (side, took, relay_fds, fk.open_fds(w.relay.popen.pid)))
    return took


@t.test
def server_stream_cut_by_a_proxy(ctx):
    assert cut_test(ctx, "server") < 5


@t.test
def client_stream_cut_by_a_proxy(ctx):
    assert cut_test(ctx, "client") < 5


def shared_cut(ctx, resumable):
    """Four chunked-path tunnels of one server move data both ways over one
    HTTP/2 connection (listens, chunks and the framed accept streams), and
    it is reset. Returns (the results of bulk_both_ways or the exception of
    each, the TcpProxy, the world)."""
    import threading
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w = kit.World(ctx, start_server=False, relay_args=[] if resumable else ["--resume-grace", "0"])
    mid = fk.TcpProxy(w.relay.port)
    ctx.cleanups.append(mid.close)
    # the chunked path: on the upgraded path each tunnel has its own connection
    w.server = ctx.server("http://127.0.0.1:%d" % mid.port, "foo", w.skey, ["echo=%d" % echo.port],
                          args=["--log-level", "debug", "--data-path", "chunks"])
    w.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
    px = w.proxy("echo")
    results = []

    def run():
        try:
            results.append(kit.bulk_both_ways(px.port, 64 << 20, timeout=60))
        except Exception as e:  # an ended tunnel: expected without resumption
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    fk.wait_until("four tunnels open", lambda: w.server.count(r"event=tunnel_open ") >= 4, timeout=20)
    assert mid.accepted == 1, "the server used %d connections, not one" % mid.accepted
    # the cut comes while every tunnel is moving bytes
    fk.wait_until("bytes moving", lambda: mid.carried() >= 4 << 20, timeout=20)
    mid.cut_one(0)
    for th in threads:
        th.join(60)
    assert len(results) == 4, "a tunnel hung after its connection was reset"
    return results, mid, w, px


@t.test
def shared_connection_cut_ends_its_tunnels_cleanly(ctx):
    """Without resumption (relay --resume-grace 0), as SPEC §4 says for a
    failed stream, those tunnels end (no hang, the relay forgets them, the
    server logs each end), and the server opens a new connection on which a
    new tunnel works."""
    started = time.monotonic()
    results, mid, w, px = shared_cut(ctx, resumable=False)
    ended = [r for r in results if isinstance(r, Exception) or r[2] != 64 << 20]
    # (a tunnel whose accept answer had not arrived yet ends as accept_failed)
    fk.wait_until("the server ends them",
                  lambda: w.server.count(r"event=tunnel_end |event=accept_failed ") == 4, timeout=10)
    fk.wait_until("relay ends the tunnels", lambda: w.relay.count(r"event=tunnel_end ") == 4, timeout=10)
    took = time.monotonic() - started
    kit.wait_works(px.port, timeout=20)
    print("# shared connection reset: %d of 4 tunnels cut short, all ended within %.2fs; a new tunnel works "
          "over connection %d" % (len(ended), took, mid.accepted))
    assert ended, "no tunnel noticed that its stream's connection was reset"
    assert mid.accepted >= 2


@t.test
def shared_connection_cut_resumes_its_tunnels(ctx):
    """With resumption (the default), the same reset costs nothing: the
    server opens a new connection, each of the four tunnels resumes on it,
    and every byte comes back exact."""
    results, mid, w, px = shared_cut(ctx, resumable=True)
    failed = [r for r in results if isinstance(r, Exception) or r[2] != 64 << 20]
    assert not failed, "tunnels did not survive the reset: %r" % failed
    fk.wait_until("four resumes at the relay", lambda: w.relay.count(r"event=tunnel_resumed ") >= 4, timeout=10)
    assert mid.accepted >= 2
    print("# shared connection reset: 4 of 4 tunnels carried 64 MiB each way exact, %d resumes at the relay, "
          "connections %d" % (w.relay.count(r"event=tunnel_resumed "), mid.accepted))

t.run()
