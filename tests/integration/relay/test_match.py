#!/usr/bin/env python3
"""ptth_relay matching (SPEC §4): listens and connects, online/offline,
unknown ports, reject 502, timeouts 504, limits 429, listen timeouts."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402
from relayclient import FIN, RST  # noqa: E402

t = pt.Tap()


BAR = pt.Key()


def setup(ctx, args=()):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk, "bar": BAR}, clients={"alice": ck}, allow=["alice=*/*"], args=list(args))
    return relay, rc.Api(relay.port), sk, ck


def tunnel_end(relay, pattern=r"", timeout=10):
    m = relay.wait_for(r"event=tunnel_end [^\n]*%s[^\n]*" % pattern, timeout=timeout)
    return dict(kv.split("=", 1) for kv in m.group(0).split() if "=" in kv)


@t.test
def offline_server_is_503_with_retry_after(ctx):
    relay, api, sk, ck = setup(ctx, ["--listen-timeout", "1"])
    r = api.post(api.connect_path("foo", "ssh"), ck)
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) > 0, r
    assert b"offline" in r.body, r
    # online while a listen is outstanding...
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    # ... and for --listen-timeout after the last one: the listen times out
    # after 1 s (204), then the server goes offline 1 s later
    r = lc.read_head(timeout=5)
    assert r.status == 204, r
    assert r.headers.get("ptth-max-chunk") == "262144", r
    lc.close()
    relay.wait_for(r"event=server_offline server=foo", timeout=5)
    r = api.post(api.connect_path("foo", "ssh"), ck)
    assert r.status == 503, r
    # a server nobody configured is 404, offline or not
    r = api.post(api.connect_path("nosuch", "ssh"), ck)
    assert r.status == 404, r


@t.test
def unknown_port_is_404_at_once(ctx):
    relay, api, sk, ck = setup(ctx)
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh, web"})
    relay.wait_for(r"event=server_online server=foo")
    started = time.monotonic()
    r = api.post(api.connect_path("foo", "db"), ck)
    assert r.status == 404 and b"does not offer port 'db'" in r.body, r
    assert time.monotonic() - started < 1
    # the listen was not used
    cc = api.start(api.connect_path("foo", "web"), ck)
    r = lc.read_head()
    assert r.status == 200 and r.headers["ptth-port"] == "web", r
    cc.close()
    lc.close()


@t.test
def bad_or_missing_ports_header(ctx):
    relay, api, sk, ck = setup(ctx)
    for bad in ("", "ssh,", ",", "s s", "ssh,we$b", ",".join("p%d" % i for i in range(300))):
        r = api.post(api.listen_path("foo"), sk, {"PTTH-Ports": bad})
        assert r.status == 400, (bad, r)
    r = api.post(api.listen_path("foo"), sk)
    assert r.status == 400 and b"PTTH-Ports" in r.body, r
    # once known, a listen without the header keeps the ports
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    lc2 = api.start(api.listen_path("foo"), sk)
    time.sleep(0.2)
    for c in (lc, lc2):
        c.close()


@t.test
def connect_waits_for_a_listen_then_for_accept(ctx):
    relay, api, sk, ck = setup(ctx, ["--listen-timeout", "2"])
    # server online (had a listen lately) but no listen outstanding right now
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    assert lc.read_head(timeout=5).status == 204
    lc.close()
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    time.sleep(0.3)
    # the next listen gets the waiting connect at once
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    r = lc.read_head(timeout=2)
    assert r.status == 200, r
    cid = r.headers["ptth-conn"]
    assert r.headers["ptth-max-chunk"] == "262144", r
    ac = api.start(api.conn_path("foo", cid, "accept"), sk)
    ar = ac.read_head()
    assert ar.status == 200, ar
    cr = cc.read_head()
    assert cr.status == 200 and cr.headers["ptth-conn"] == cid, cr
    # a second accept is a conflict
    r = api.post(api.conn_path("foo", cid, "accept"), sk)
    assert r.status == 409, r
    for c in (ac, cc, lc):
        c.close()


@t.test
def listens_are_used_oldest_first(ctx):
    relay, api, sk, ck = setup(ctx)
    listens = []
    for i in range(3):
        listens.append(api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"}))
        time.sleep(0.1)
    ccs = [api.start(api.connect_path("foo", "ssh"), ck) for _ in range(3)]
    ids = []
    for lc in listens:
        r = lc.read_head()
        assert r.status == 200, r
        ids.append(r.headers["ptth-conn"])
    assert len(set(ids)) == 3
    for c in listens + ccs:
        c.close()


@t.test
def reject_is_502(ctx):
    relay, api, sk, ck = setup(ctx)
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    r = lc.read_head()
    cid = r.headers["ptth-conn"]
    r = api.post(api.conn_path("foo", cid, "reject"), sk, {"PTTH-Reason": "connect to 127.0.0.1:22: Connection refused"})
    assert r.status == 204, r
    cr = cc.read_head()
    cc.read_body(cr)
    assert cr.status == 502, cr
    assert b"Connection refused" in cr.body, cr
    end = tunnel_end(relay, "id=" + cid)
    assert end["reason"] == "backend", end
    # the tunnel is gone
    assert api.post(api.conn_path("foo", cid, "accept"), sk).status == 404
    lc.close()
    cc.close()


@t.test
def connect_timeout_is_504(ctx):
    relay, api, sk, ck = setup(ctx, ["--connect-timeout", "1", "--listen-timeout", "5"])
    # waiting for the accept
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    r = lc.read_head()
    cid = r.headers["ptth-conn"]
    started = time.monotonic()
    cr = cc.read_head(timeout=5)
    assert cr.status == 504, cr
    assert 0.5 < time.monotonic() - started < 3
    assert tunnel_end(relay, "id=" + cid)["reason"] == "timeout"
    # a late accept finds nothing
    assert api.post(api.conn_path("foo", cid, "accept"), sk).status == 404
    cc.close()
    lc.close()
    # waiting for a listen (the server is online: it had one lately)
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    cr = cc.read_head(timeout=5)
    assert cr.status == 504, cr
    cc.close()


@t.test
def limits_are_429_with_retry_after(ctx):
    relay, api, sk, ck = setup(ctx, ["--max-connections", "3", "--max-connections-per-server", "2"])
    bar_key = BAR
    tunnels = [rc.open_tunnel(api, "foo", "ssh", sk, ck) for _ in range(2)]
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    time.sleep(0.1)
    r = api.post(api.connect_path("foo", "ssh"), ck)
    assert r.status == 429 and int(r.headers["retry-after"]) >= 1, r
    assert b"per-server" in r.body, r
    tunnels.append(rc.open_tunnel(api, "bar", "ssh", bar_key, ck))
    lb = api.start(api.listen_path("bar"), bar_key, {"PTTH-Ports": "ssh"})
    time.sleep(0.1)
    r = api.post(api.connect_path("bar", "ssh"), ck)
    assert r.status == 429 and b"--max-connections" in r.body, r
    # one ends: room again
    cid = tunnels[0][0]
    assert api.post(api.conn_path("foo", cid, "close"), ck).status == 204
    relay.wait_for(r"event=tunnel_end id=%s" % cid)
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    r = lc.read_head()
    assert r.status == 200, r
    for c in (cc, lc, lb):
        c.close()


@t.test
def fin_from_both_sides_with_data_in_flight(ctx):
    """Each side sends FIN while the other still sends: the tunnel ends only
    when both FINs were delivered."""
    relay, api, sk, ck = setup(ctx)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    assert api.chunk("foo", cid, "downstream", sk, 0, fin=True).status == 204
    assert down.next_non_ping() == (FIN, b"")
    for i in range(5):
        assert api.chunk("foo", cid, "upstream", ck, i, b"u%d" % i).status == 204
    assert up.read_data(10) == b"u0u1u2u3u4"
    assert relay.count(r"event=tunnel_end id=%s" % cid) == 0
    assert api.chunk("foo", cid, "upstream", ck, 5, fin=True).status == 204
    assert up.next_non_ping() == (FIN, b"")
    assert tunnel_end(relay, "id=" + cid)["reason"] == "fin"


@t.test
def server_closes_before_accept(ctx):
    relay, api, sk, ck = setup(ctx)
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    cid = lc.read_head().headers["ptth-conn"]
    assert api.post(api.conn_path("foo", cid, "close"), sk, {"PTTH-Reason": "changed my mind"}).status == 204
    cr = cc.read_head()
    cc.read_body(cr)
    assert cr.status == 502 and b"changed my mind" in cr.body, cr
    assert tunnel_end(relay, "id=" + cid)["reason"] == "rst"


@t.test
def client_gone_before_accept(ctx):
    relay, api, sk, ck = setup(ctx)
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    relay.wait_for(r"event=server_online server=foo")
    cc = api.start(api.connect_path("foo", "ssh"), ck)
    cid = lc.read_head().headers["ptth-conn"]
    cc.close()
    time.sleep(0.2)
    r = api.post(api.conn_path("foo", cid, "accept"), sk)
    assert r.status == 404, r
    assert tunnel_end(relay, "id=" + cid)["reason"] == "rst"
    # over HTTP/2 the relay sees it at once (stream reset)
    l2 = rc.CurlStream(relay.url + api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    c2 = rc.CurlStream(relay.url + api.connect_path("foo", "ssh"), ck)
    try:
        assert l2.read_head() == 200
        cid2 = l2.headers["ptth-conn"]
        c2.close()
        end = tunnel_end(relay, "id=" + cid2)
        assert end["reason"] == "rst", end
    finally:
        l2.close()
        c2.close()


@t.test
def hundred_held_streams_on_one_http2_connection(ctx):
    """Multiplexing terminators keep up to 100 long-lived streams on one
    HTTP/2 connection (listens, framed streams). h2o 2.2.5 advertises and
    enforces SETTINGS_MAX_CONCURRENT_STREAMS = 100: the relay runs all 100
    at once (nothing queued behind --max-listens-per-server or h2o's
    per-connection request limit), its idle timeout (--request-timeout)
    does not close a connection whose streams are all held, and a 101st
    open stream is refused (RST_STREAM REFUSED_STREAM) without harming the
    others."""
    sk, ck, admin = pt.Key(), pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=*/*"], admin=admin,
                      args=["--max-listens-per-server", "200", "--request-timeout", "1", "--listen-timeout", "20"])
    api = rc.Api(relay.port)

    def listens_held():
        r = api.get("/metrics", {"Authorization": "Bearer " + admin.text})
        assert r.status == 200, r
        return int(re.search(rb"^ptth_listens_outstanding (\d+)$", r.body, re.M).group(1))

    h2 = rc.RawH2(relay.port)
    try:
        auth = {"authorization": "Bearer " + sk.text, "ptth-ports": "ssh"}
        ids = [h2.post(api.listen_path("foo"), auth) for _ in range(100)]
        frames = h2.read_frames(3.0)  # three idle timeouts
        assert (None, 0, 0, b"") not in frames, "the relay closed the connection: %r" % frames[-3:]
        bad = [f for f in frames if f[0] in (1, 3, 7)]  # HEADERS, RST_STREAM, GOAWAY
        assert not bad, "held listens answered, reset or the connection closed: %r" % bad[:3]
        assert listens_held() == 100  # none waits in h2o's queue
        extra = h2.post(api.listen_path("foo"), auth)
        frames = h2.read_frames(1.0)
        rst = [f for f in frames if f[0] == 3]
        assert [(f[2], int.from_bytes(f[3], "big")) for f in rst] == [(extra, 7)], frames
        # the 100 are still held: a client's connect gets one of them
        cc = api.start(api.connect_path("foo", "ssh"), ck)
        frames = h2.read_frames(3.0)
        answered = [f[2] for f in frames if f[0] == 1]
        assert len(answered) == 1 and answered[0] in ids, frames
        print("# 100 listens held on one HTTP/2 connection past 3 idle timeouts; stream 101 refused; a connect matched one")
        cc.close()
    finally:
        h2.close()


t.run()
