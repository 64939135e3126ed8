#!/usr/bin/env python3
"""ptth_relay data path (SPEC §4): listen -> connect -> accept -> chunks both
ways -> FIN, over HTTP/1.1 and over HTTP/2; chunk sequence rules (retries,
reordering, window, FIN), body limits, heartbeats, close and broken streams,
and the tunnel_end log line."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402
from relayclient import DATA, FIN, PING, RST  # noqa: E402

t = pt.Tap()


def setup(ctx, args=()):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=list(args))
    return relay, rc.Api(relay.port), sk, ck


def tunnel_end_line(relay, cid, timeout=10):
    m = relay.wait_for(r"event=tunnel_end id=%s [^\n]*" % re.escape(cid), timeout=timeout)
    return dict(kv.split("=", 1) for kv in m.group(0).split() if "=" in kv)


@t.test
def full_sequence_http1(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid), cid
    assert down.resp.headers.get("cache-control") == "no-store", down.resp.headers
    assert down.resp.headers.get("x-accel-buffering") == "no", down.resp.headers
    assert up.resp.headers.get("x-accel-buffering") == "no", up.resp.headers
    assert up.resp.headers.get("cache-control") == "no-store", up.resp.headers
    assert down.resp.headers.get("ptth-max-chunk") == "262144", down.resp.headers
    assert up.resp.headers.get("ptth-max-chunk") == "262144", up.resp.headers
    # both streams start with a PING so that their heads go out at once
    assert up.next_frame() == (PING, b"")
    assert down.next_frame() == (PING, b"")

    r = api.chunk("foo", cid, "upstream", ck, 0, b"hello ")
    assert r.status == 204, r
    r = api.chunk("foo", cid, "upstream", ck, 1, b"server")
    assert r.status == 204, r
    assert up.read_data(12) == b"hello server"
    r = api.chunk("foo", cid, "downstream", sk, 0, b"hi client")
    assert r.status == 204, r
    assert down.read_data(9) == b"hi client"

    # half-close: the client's FIN reaches the server, the server keeps sending
    r = api.chunk("foo", cid, "upstream", ck, 2, fin=True)
    assert r.status == 204, r
    assert up.next_non_ping() == (FIN, b"")
    r = api.chunk("foo", cid, "downstream", sk, 1, b"more")
    assert r.status == 204, r
    assert down.read_data(4) == b"more"
    r = api.chunk("foo", cid, "downstream", sk, 2, fin=True)
    assert r.status == 204, r
    assert down.next_non_ping() == (FIN, b"")
    # both FINs delivered: both responses end cleanly
    assert up.next_non_ping() is None
    assert down.next_non_ping() is None
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "fin", end
    assert end["server"] == "foo" and end["port"] == "ssh" and end["client"] == "alice", end
    assert end["bytes_up"] == "12" and end["bytes_down"] == "13", end
    assert re.fullmatch(r"127\.0\.0\.1:\d+", end["addr"]), end
    assert int(end["duration_ms"]) >= 0, end
    # the tunnel is forgotten
    r = api.chunk("foo", cid, "upstream", ck, 3, b"late")
    assert r.status == 404, r


@t.test
def full_sequence_http2(ctx):
    relay, api, sk, ck = setup(ctx)
    base = relay.url
    streams = []
    try:
        listen = rc.CurlStream(base + api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
        streams.append(listen)
        relay.wait_for(r"event=server_online server=foo")
        conn = rc.CurlStream(base + api.connect_path("foo", "ssh"), ck)
        streams.append(conn)
        assert listen.read_head() == 200, listen.headers
        cid = listen.headers["ptth-conn"]
        assert listen.headers["ptth-port"] == "ssh", listen.headers
        assert re.fullmatch(r"127\.0\.0\.1:\d+", listen.headers["ptth-client-addr"]), listen.headers
        acc = rc.CurlStream(base + api.conn_path("foo", cid, "accept"), sk)
        streams.append(acc)
        assert acc.read_head() == 200
        assert conn.read_head() == 200
        assert conn.headers["ptth-conn"] == cid, conn.headers
        assert conn.headers["cache-control"] == "no-store", conn.headers

        st, _, _ = rc.curl_h2(base + api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": "0"}, b"over h2")
        assert st == 204, st
        assert acc.next_non_ping() == (DATA, b"over h2")
        payload = os.urandom(200000)
        st, _, _ = rc.curl_h2(base + api.conn_path("foo", cid, "downstream"), sk, {"PTTH-Seq": "0"}, payload)
        assert st == 204, st
        got = b""
        while len(got) < len(payload):
            f = conn.next_non_ping()
            assert f is not None and f[0] == DATA, f
            got += f[1]
        assert got == payload
        st, _, _ = rc.curl_h2(base + api.conn_path("foo", cid, "downstream"), sk, {"PTTH-Seq": "1", "PTTH-Fin": "1"}, b"")
        assert st == 204, st
        st, _, _ = rc.curl_h2(base + api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": "1", "PTTH-Fin": "1"}, b"")
        assert st == 204, st
        assert conn.next_non_ping() == (FIN, b"")
        assert acc.next_non_ping() == (FIN, b"")
        assert conn.next_non_ping() is None
        assert acc.next_non_ping() is None
        end = tunnel_end_line(relay, cid)
        assert end["reason"] == "fin" and end["bytes_down"] == str(len(payload)), end
    finally:
        for s in streams:
            s.close()


@t.test
def retry_of_delivered_chunk_is_idempotent(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.chunk("foo", cid, "upstream", ck, 0, b"once").status == 204
    assert up.read_data(4) == b"once"
    r = api.chunk("foo", cid, "upstream", ck, 0, b"once")
    assert r.status == 204, r
    assert api.chunk("foo", cid, "upstream", ck, 1, b"twice").status == 204
    # the retried chunk did not appear a second time
    assert up.read_data(5) == b"twice"
    assert api.chunk("foo", cid, "upstream", ck, 1, b"twice").status == 204
    assert api.chunk("foo", cid, "upstream", ck, 0, b"once").status == 204
    assert api.chunk("foo", cid, "upstream", ck, 2, fin=True).status == 204
    assert up.next_non_ping() == (FIN, b"")
    # a retried FIN is a no-op too
    assert api.chunk("foo", cid, "upstream", ck, 2, fin=True).status == 204
    assert api.post(api.conn_path("foo", cid, "close"), sk).status == 204
    assert tunnel_end_line(relay, cid)["bytes_up"] == "9"


@t.test
def out_of_order_chunks_are_delivered_in_order(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    # seq 3, 2, 1 first: held (no answer) until 0 arrives
    held = [api.start(api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": str(s)}, b"<%d>" % s) for s in (3, 2, 1)]
    time.sleep(0.3)
    for c in held:
        try:
            c.read_head(timeout=0.05)
            raise AssertionError("a chunk ahead of its turn was answered")
        except OSError:
            pass
    assert up.next_frame(timeout=0.5) == (PING, b"")
    assert api.chunk("foo", cid, "upstream", ck, 0, b"<0>").status == 204
    for c in held:
        r = c.read_head()
        assert r.status == 204, r
        c.close()
    assert up.read_data(12) == b"<0><1><2><3>"


@t.test
def window_overflow_is_409(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    # next is 0: 1..7 fit the window of 8, 8 is more than 8 ahead of the last delivered (-1 + 8 = 7)
    held = [api.start(api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": str(s)}, b"x") for s in range(1, 8)]
    time.sleep(0.2)
    r = api.chunk("foo", cid, "upstream", ck, 8, b"y")
    assert r.status == 409, r
    assert b"ahead" in r.body, r
    r = api.chunk("foo", cid, "upstream", ck, 1000, b"y")
    assert r.status == 409, r
    assert api.chunk("foo", cid, "upstream", ck, 0, b"x").status == 204
    for c in held:
        assert c.read_head().status == 204
        c.close()
    assert up.read_data(8) == b"x" * 8
    # now 8..15 fit
    assert api.chunk("foo", cid, "upstream", ck, 8, b"y").status == 204
    assert up.read_data(1) == b"y"


@t.test
def oversized_chunk_is_413(ctx):
    relay, api, sk, ck = setup(ctx, ["--max-chunk", "1000"])
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.chunk("foo", cid, "upstream", ck, 0, b"a" * 1000).status == 204
    # HTTP/1.1: h2o refuses by Content-Length before reading the body
    r = api.chunk("foo", cid, "upstream", ck, 1, b"b" * 5000)
    assert r.status == 413, r
    # one byte over reaches the relay's own check
    r = api.chunk("foo", cid, "upstream", ck, 1, b"b" * 1001)
    assert r.status == 413 and b"max-chunk" in r.body, r
    # HTTP/2: one byte over is the relay's 413 too
    st, _, body = rc.curl_h2(relay.url + api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": "1"}, b"c" * 1001)
    assert st == 413, (st, body)
    # HTTP/2 far beyond: h2o resets the stream (REFUSED_STREAM) instead of
    # buffering it; curl gives up without a status (see docs/protocol.md)
    try:
        st, _, body = rc.curl_h2(relay.url + api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": "1"}, b"d" * 100000,
                                 timeout=10)
        raise AssertionError("a 100000-byte chunk got a response: %d" % st)
    except AssertionError as e:
        assert "no response" in str(e), e
    # the tunnel is unharmed and nothing oversized went through
    assert api.chunk("foo", cid, "upstream", ck, 1, b"fine").status == 204
    assert up.read_data(1004) == b"a" * 1000 + b"fine"
    assert relay.alive()


@t.test
def chunk_header_errors(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    path = api.conn_path("foo", cid, "upstream")
    assert api.post(path, ck, {}, b"x").status == 400  # no PTTH-Seq
    assert api.post(path, ck, {"PTTH-Seq": "-1"}, b"x").status == 400
    assert api.post(path, ck, {"PTTH-Seq": "1x"}, b"x").status == 400
    assert api.post(path, ck, {"PTTH-Seq": "99999999999999999999999"}, b"x").status == 400
    assert api.post(path, ck, {"PTTH-Seq": "0"}, b"").status == 400  # empty without FIN
    assert api.post(path, ck, {"PTTH-Seq": "0", "PTTH-Fin": "yes"}, b"").status == 400
    # FIN at 2 while a chunk at 3 is held: conflict
    c3 = api.start(path, ck, {"PTTH-Seq": "3"}, b"3")
    time.sleep(0.2)
    assert api.chunk("foo", cid, "upstream", ck, 2, fin=True).status == 409
    # FIN at 4, then a chunk after it: conflict
    c4 = api.start(path, ck, {"PTTH-Seq": "4", "PTTH-Fin": "1"}, b"")
    time.sleep(0.2)
    assert api.chunk("foo", cid, "upstream", ck, 5, b"after fin").status == 409
    for s in (0, 1, 2):
        assert api.chunk("foo", cid, "upstream", ck, s, b"%d" % s).status == 204
    assert c3.read_head().status == 204
    assert c4.read_head().status == 204
    assert up.read_data(4) == b"0123"
    assert up.next_non_ping() == (FIN, b"")
    # chunks for a tunnel that was never accepted
    assert api.chunk("foo", "A" * 22, "upstream", ck, 0, b"x").status == 404


@t.test
def unknown_tunnel_is_404(ctx):
    relay, api, sk, ck = setup(ctx)
    for verb, key in (("upstream", ck), ("downstream", sk), ("accept", sk), ("reject", sk), ("close", sk), ("close", ck)):
        r = api.post(api.conn_path("foo", "B" * 22, verb), key, {"PTTH-Seq": "0"}, b"x")
        assert r.status == 404, (verb, r)
    # malformed ids are not routes at all
    assert api.post("/v1/servers/foo/conns/short/upstream", ck, {"PTTH-Seq": "0"}, b"x").status == 404
    # a tunnel id under another server's path is unknown there
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.chunk("bar", cid, "upstream", ck, 0, b"x").status in (403, 404)


@t.test
def heartbeat_ping_on_idle_streams(ctx):
    relay, api, sk, ck = setup(ctx, ["--heartbeat", "1"])
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert up.next_frame() == (PING, b"")
    assert down.next_frame() == (PING, b"")
    started = time.monotonic()
    assert up.next_frame(timeout=5) == (PING, b"")
    assert down.next_frame(timeout=5) == (PING, b"")
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 4, elapsed
    # data resets the idle clock; pings keep coming after it
    assert api.chunk("foo", cid, "upstream", ck, 0, b"d").status == 204
    assert up.next_frame() == (DATA, b"d")
    assert up.next_frame(timeout=5) == (PING, b"")


@t.test
def close_sends_rst_to_both(ctx):
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    r = api.post(api.conn_path("foo", cid, "close"), ck, {"PTTH-Reason": "user hit ctrl-c"})
    assert r.status == 204, r
    for s in (up, down):
        f = s.next_non_ping()
        assert f[0] == RST and b"user hit ctrl-c" in f[1], f
        assert s.next_non_ping() is None
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "rst", end
    # the server side may close too
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.post(api.conn_path("foo", cid, "close"), sk, {"PTTH-Reason": "backend died"}).status == 204
    f = down.next_non_ping()
    assert f[0] == RST and b"backend died" in f[1], f


@t.test
def broken_stream_sends_rst_to_the_other_side(ctx):
    relay, api, sk, ck = setup(ctx, ["--heartbeat", "1"])
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    # the client's HTTP/1.1 connection (its connect stream) goes away; the
    # relay finds out at the next heartbeat and aborts the server's side
    down.conn.close()
    started = time.monotonic()
    f = up.next_non_ping(timeout=10)
    assert f is not None and f[0] == RST and b"client" in f[1], f
    assert time.monotonic() - started < 4
    assert tunnel_end_line(relay, cid)["reason"] == "rst"
    # and a server whose accept stream goes away: the client gets RST
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    up.conn.close()
    f = down.next_non_ping(timeout=10)
    assert f is not None and f[0] == RST and b"server" in f[1], f


@t.test
def dead_http1_listen_is_not_used(ctx):
    relay, api, sk, ck = setup(ctx)
    dead = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    live = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    time.sleep(0.2)
    dead.close()
    time.sleep(0.2)
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    r = live.read_head()
    assert r.status == 200 and "ptth-conn" in r.headers, r
    cc.close()
    live.close()


@t.test
def broken_stream_over_http2_is_seen_at_once(ctx):
    relay, api, sk, ck = setup(ctx)
    base = relay.url
    listen = rc.CurlStream(base + api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    conn = rc.CurlStream(base + api.connect_path("foo", "ssh"), ck)
    try:
        assert listen.read_head() == 200
        cid = listen.headers["ptth-conn"]
        acc = rc.CurlStream(base + api.conn_path("foo", cid, "accept"), sk)
        assert acc.read_head() == 200
        assert conn.read_head() == 200
        conn.close()  # curl dies: its HTTP/2 connection closes
        f = acc.next_non_ping(timeout=5)
        assert f is not None and f[0] == RST and b"client" in f[1], f
        assert tunnel_end_line(relay, cid)["reason"] == "rst"
        acc.close()
    finally:
        listen.close()
        conn.close()


@t.test
def idle_timeout_closes_tunnel(ctx):
    relay, api, sk, ck = setup(ctx, ["--idle-timeout", "1", "--heartbeat", "1"])
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.chunk("foo", cid, "upstream", ck, 0, b"x").status == 204
    started = time.monotonic()
    f = up.next_non_ping(timeout=6)
    assert f == (DATA, b"x"), f
    f = up.next_non_ping(timeout=6)
    assert f is not None and f[0] == RST and f[1] == b"idle", f
    assert time.monotonic() - started < 5
    assert down.next_non_ping()[0] == RST
    assert tunnel_end_line(relay, cid)["reason"] == "idle"


@t.test
def large_transfer_with_window(ctx):
    """8 chunks in flight at a time, 4 MiB each way in 64 KiB chunks."""
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    data = os.urandom(4 << 20)
    size = 65536
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    inflight = []
    got = b""
    def pump_until_answered(c):
        nonlocal got
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                return c.read_head(timeout=0.01)
            except OSError:
                pass
            try:
                f = up.next_non_ping(timeout=0.05)
                assert f is not None and f[0] == DATA, f
                got += f[1]
            except OSError:
                pass
        raise AssertionError("chunk not answered")

    for seq, piece in enumerate(pieces):
        inflight.append(api.start(api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": str(seq)}, piece))
        if len(inflight) == 8:
            c = inflight.pop(0)
            r = pump_until_answered(c)
            assert r.status == 204, r
            c.close()
    for c in inflight:
        assert pump_until_answered(c).status == 204
        c.close()
    while len(got) < len(data):
        f = up.next_non_ping(timeout=10)
        assert f is not None and f[0] == DATA, f
        got += f[1]
    assert got == data


@t.test
def h2_chunk_outlives_its_connection(ctx):
    """Over HTTP/2 the relay sends a chunk's bytes from the request's own body
    buffer (no copy; relay/h2obuf.h). Chunks are posted over HTTP/2 while the
    accept stream is not read, until one is not answered: its bytes wait in
    h2o's output. Its curl is then killed (h2o disposes of that request) and
    the stream is read: every byte of every chunk arrives intact and in order
    (a buffer freed with its request would show here, and under ASan)."""
    import subprocess
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    url = relay.url + api.conn_path("foo", cid, "upstream")
    sent = b""
    blocked = None
    for seq in range(96):  # 24 MiB at most: more than the loopback socket buffers hold
        piece = bytes([seq & 0xFF]) * 1000 + os.urandom(256 * 1024 - 1000)
        argv = ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                "-H", "Authorization: Bearer " + ck.text, "-H", "PTTH-Seq: %d" % seq, "-X", "POST", "--data-binary", "@-", url]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(piece)
        p.stdin.close()
        sent += piece
        try:
            out = p.stdout.read() if p.wait(timeout=2) is not None else b""
        except subprocess.TimeoutExpired:
            blocked = p
            break
        assert out == b"204", (seq, out, p.stderr.read())
    assert blocked is not None, "the accept stream never pushed back"
    blocked.kill()
    blocked.wait()
    blocked.stdout.close()
    blocked.stderr.close()
    time.sleep(0.3)  # h2o closes the killed curl's connection and disposes of its request
    got = up.read_data(len(sent), timeout=30)
    assert got == sent, "bytes differ from offset %d" % next(i for i in range(len(sent)) if got[i] != sent[i])
    print("# %d chunks, the last one's request gone before h2o sent it; %d bytes intact" % (len(sent) // (256 * 1024), len(sent)))


@t.test
def h2_held_requests_keep_no_body_buffer(ctx):
    """HTTP/2 request bodies start at --max-chunk (relay/h2obuf.h), and curl
    sends a POST's empty body as an empty DATA frame: 40 listens held over
    HTTP/2 must not each keep a 256 KiB body buffer (the relay frees the
    body of every request but a chunk). Measured as the growth of the
    relay's address space (VmSize; malloc maps buffers this size apart)."""
    import subprocess
    relay, api, sk, ck = setup(ctx)

    def vm_kib():
        with open("/proc/%d/status" % relay.popen.pid) as f:
            return int(re.search(r"VmSize:\s+(\d+)", f.read()).group(1))

    with open("/proc/%d/maps" % relay.popen.pid) as f:
        if "libasan" in f.read():
            raise pt.Skip("ASan reserves its heap up front: VmSize shows nothing")

    url = relay.url + api.listen_path("foo")
    procs = []

    def hold_listens(n):
        for _ in range(n):
            procs.append(subprocess.Popen(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "--max-time", "20", "-H",
                                           "Authorization: Bearer " + sk.text, "-H", "PTTH-Ports: ssh", "-X", "POST",
                                           "--data-binary", "", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.5)

    try:
        hold_listens(4)  # h2o's first allocations
        before = vm_kib()
        hold_listens(40)
        grown = vm_kib() - before
        print("# 40 held HTTP/2 listens: relay VmSize +%d KiB" % grown)
        assert all(p.poll() is None for p in procs), "a listen was answered early"
        assert grown < 40 * 64, "held listens grew the relay by %d KiB: body buffers kept?" % grown
    finally:
        for p in procs:
            p.kill()
            p.wait()


@t.test
def h2_reset_of_a_connection_with_a_stream_and_held_chunks(ctx):
    """One HTTP/2 connection carries a tunnel's accept stream and the same
    server's held downstream chunks (1 to 7 wait for 0), as multiplexing
    terminators do. The client sends data that the server does not read
    until the relay's write to that connection waits; then, with a frame
    unread by the relay (stopped), the connection is reset. The relay's
    write fails first (h2o closes the connection with its streams while
    still reading it). The tunnel ends (RST to the client) and the relay
    keeps serving. (Ending the tunnel from inside that close answered the
    held chunks on the dying connection: h2o 2.2.5 asserted, the relay
    aborted.)"""
    import signal
    relay, api, sk, ck = setup(ctx)
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    time.sleep(0.05)
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    lr = lc.read_head()
    lc.close()
    assert lr.status == 200, lr
    cid = lr.headers["ptth-conn"]
    auth = {"authorization": "Bearer " + sk.text}
    h2 = rc.RawH2(relay.port)
    try:
        h2.post(api.conn_path("foo", cid, "accept"), auth)
        for seq in range(1, 8):
            h2.post(api.conn_path("foo", cid, "downstream"), dict(auth, **{"ptth-seq": str(seq)}), b"held %d" % seq)
        cr = cc.read_head()
        assert cr.status == 200, cr
        down = rc.H1Stream(cc, cr)
        blocked = False
        for seq in range(96):
            c = api.start(api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": str(seq)}, os.urandom(256 * 1024))
            try:
                r = c.read_head(timeout=1.0)
            except OSError:
                blocked = True  # its bytes wait for the server's connection
                break
            assert r.status == 204, r
            c.close()
        assert blocked, "the server's connection never pushed back"
        print("# the relay waits to write to the server's connection after %d upstream chunks" % seq)
        relay.popen.send_signal(signal.SIGSTOP)
        try:
            h2.ping()  # unread when the reset comes: h2o's read succeeds, its write fails
            time.sleep(0.1)
            h2.reset()
            time.sleep(0.1)
        finally:
            relay.popen.send_signal(signal.SIGCONT)
        f = down.next_non_ping(timeout=10)
        assert f is not None and f[0] == RST, f
        assert tunnel_end_line(relay, cid)["reason"] == "rst"
        assert relay.popen.poll() is None, "the relay died"
        assert api.get("/healthz").status == 200
    finally:
        h2.close()


t.run()
