#!/usr/bin/env python3
"""ptth_relay's side of resumable tunnels (SPEC §9.3, docs/protocol.md
"Resumable tunnels"), raw HTTP/1.1 sockets playing both terminators: tokens
only when both sides asked, a reset leg resets the other and suspends the
tunnel, both resumes get 101 with the other side's counts and a new joint,
a bad proof (403, one resume_refused line, no token in the log), another
client's key with the token (403), an ended
tunnel (404), the grace running out (404, reason=resume_timeout), a relay
restart with the same --resume-secret-file, a superseded resume (409),
resumption off (404), a resume that is no upgrade request (400)."""

import json
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402

t = pt.Tap()
TOKEN = "ptth-tunnel/1"
UPGRADE = {"Connection": "Upgrade", "Upgrade": TOKEN}
RESUMABLE = dict(UPGRADE, **{"PTTH-Resumable": "1"})


class Keys:
    def __init__(self, ctx):
        self.sk, self.ck, self.admin = pt.Key(), pt.Key(), pt.Key()
        self.secret = ctx.path("resume.secret")
        if not os.path.exists(self.secret):
            fd = os.open(self.secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(48))
            os.close(fd)


def start(ctx, keys, args=("--resume-secret-file", None)):
    args = [keys.secret if a is None else a for a in args]
    relay = ctx.relay(servers={"foo": keys.sk}, clients={"alice": keys.ck}, allow=["alice=foo/*"], admin=keys.admin,
                      args=args)
    return relay, rc.Api(relay.port)


def kv_of(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def tunnel_end_line(relay, cid, timeout=10):
    return kv_of(relay.wait_for(r"event=tunnel_end id=%s [^\n]*" % re.escape(cid), timeout=timeout).group(0))


def open_upgraded(api, keys, client_h=RESUMABLE, server_h=RESUMABLE):
    """listen -> connect -> accept with these headers. Returns (cid, client
    H1, its response, server H1, its response)."""
    lc = api.start(api.listen_path("foo"), keys.sk, {"PTTH-Ports": "ssh"})
    time.sleep(0.05)
    cc = rc.H1(api.port)
    cc.send("POST", api.connect_path("foo", "ssh"), dict(rc.bearer(keys.ck), **client_h), b"")
    lr = lc.read_head()
    lc.read_body(lr)
    lc.close()
    assert lr.status == 200, lr
    assert lr.headers["ptth-client"] == "alice", lr
    cid = lr.headers["ptth-conn"]
    ac = rc.H1(api.port)
    ac.send("POST", api.conn_path("foo", cid, "accept"), dict(rc.bearer(keys.sk), **server_h), b"")
    ar = ac.read_head()
    cr = cc.read_head()
    return cid, cc, cr, ac, ar


def send_resume(api, cid, key, token, received, sent, client=None, upgrade=True, port="ssh"):
    c = rc.H1(api.port)
    h = dict(rc.bearer(key))
    if upgrade:
        h.update(UPGRADE)
    h.update({"PTTH-Resume": token, "PTTH-Port": port, "PTTH-Received": str(received), "PTTH-Sent": str(sent)})
    if client is not None:
        h["PTTH-Client"] = client
    c.send("POST", api.conn_path("foo", cid, "resume"), h, b"")
    return c


def answer(conn, timeout=10.0):
    r = conn.read_head(timeout)
    if r.status != 101:
        conn.read_body(r, timeout)
    return r


def recv_n(conn, n, timeout=10.0):
    data, conn.buf = conn.buf[:n], conn.buf[n:]
    deadline = time.monotonic() + timeout
    while len(data) < n:
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        b = conn.sock.recv(n - len(data))
        if not b:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += b
    return data


def expect_eof(conn, timeout=10.0):
    assert conn.buf == b"", conn.buf[:100]
    conn.sock.settimeout(timeout)
    assert conn.sock.recv(100) == b""


def expect_reset(conn, timeout=10.0):
    conn.sock.settimeout(timeout)
    try:
        while True:
            if not conn.sock.recv(1 << 16):
                raise AssertionError("clean end of stream where a reset was expected")
    except ConnectionResetError:
        return


def reset(conn):
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.sock.close()


def broken(api, keys, relay):
    """A resumable joined tunnel whose client leg was reset; returns (cid,
    client token, server token, server H1 already seen reset)."""
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    cc.sock.sendall(b"0123456789")
    assert recv_n(ac, 10) == b"0123456789"
    reset(cc)
    expect_reset(ac)
    relay.wait_for(r"event=tunnel_suspended id=%s " % re.escape(cid))
    ac.close()
    return cid, cr.headers["ptth-resume"], ar.headers["ptth-resume"]


def metrics(api, keys):
    r = api.get("/metrics", rc.bearer(keys.admin))
    assert r.status == 200, r
    return r.body.decode()


@t.test
def tokens_only_when_both_sides_ask(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    assert cr.status == 101 and ar.status == 101, (cr, ar)
    ct, st = cr.headers.get("ptth-resume", ""), ar.headers.get("ptth-resume", "")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", ct) and re.fullmatch(r"[A-Za-z0-9_-]{43}", st) and ct != st, (cr, ar)
    assert cr.headers.get("ptth-resume-grace") == "30" and ar.headers.get("ptth-resume-grace") == "30", (cr, ar)
    cc.close()
    ac.close()
    for c_h, s_h in ((UPGRADE, RESUMABLE), (RESUMABLE, UPGRADE)):
        cid, cc, cr, ac, ar = open_upgraded(api, keys, c_h, s_h)
        assert cr.status == 101 and ar.status == 101, (cr, ar)
        assert "ptth-resume" not in cr.headers and "ptth-resume" not in ar.headers, (cr, ar)
        assert "ptth-resume-grace" not in cr.headers and "ptth-resume-grace" not in ar.headers, (cr, ar)
        # not resumable: a reset leg ends it as before
        reset(cc)
        expect_reset(ac)
        assert tunnel_end_line(relay, cid)["reason"] == "rst"
        ac.close()
    # a token is a secret: never logged
    assert ct not in relay.log() and st not in relay.log()


@t.test
def reset_leg_then_both_resume_and_bytes_flow(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    assert "ptth_tunnels_suspended 1\n" in metrics(api, keys)
    r = api.get("/v1/status", rc.bearer(keys.admin))
    tun = [x for x in json.loads(r.body)["tunnels"] if x["id"] == cid]
    assert tun and tun[0]["state"] == "suspended", r.body
    # the client received 5, sent 10; the server received 7, sent 5
    c2 = send_resume(api, cid, keys.ck, ct, 5, 10)
    time.sleep(0.2)
    s2 = send_resume(api, cid, keys.sk, st, 7, 5, client="alice")
    cr, sr = answer(c2), answer(s2)
    assert cr.status == 101 and sr.status == 101, (cr, sr)
    assert cr.headers.get("ptth-conn") == cid and sr.headers.get("ptth-conn") == cid, (cr, sr)
    assert cr.headers.get("ptth-heartbeat") == "20", cr
    assert cr.headers.get("ptth-resume") == ct and sr.headers.get("ptth-resume") == st, (cr, sr)
    assert cr.headers.get("ptth-resume-grace") == "30", cr
    assert (cr.headers.get("ptth-peer-received"), cr.headers.get("ptth-peer-sent")) == ("7", "5"), cr
    assert (sr.headers.get("ptth-peer-received"), sr.headers.get("ptth-peer-sent")) == ("5", "10"), sr
    line = kv_of(relay.wait_for(r"event=tunnel_resumed conn=%s [^\n]*" % re.escape(cid)).group(0))
    assert line["replayed_up"] == "3" and line["replayed_down"] == "0", line
    assert int(line["gap_ms"]) >= 200, line
    c2.sock.sendall(b"again up")
    assert recv_n(s2, 8) == b"again up"
    s2.sock.sendall(b"down too")
    assert recv_n(c2, 8) == b"down too"
    m = metrics(api, keys)
    assert "ptth_tunnels_resumed_total 1\n" in m and "ptth_tunnels_suspended 0\n" in m, m
    assert 'ptth_resume_replayed_bytes_total{direction="up"} 3\n' in m, m
    # the status JSON and page say so too
    r = api.get("/v1/status", rc.bearer(keys.admin))
    st_relay = json.loads(r.body)["relay"]
    assert (st_relay["tunnels_suspended"], st_relay["tunnels_resumed"]) == (0, 1), st_relay
    assert (st_relay["replayed_up"], st_relay["replayed_down"]) == (3, 0), st_relay
    page = api.get("/", rc.bearer(keys.admin)).body.decode()
    for label, value in (("tunnels-suspended", "0"), ("tunnels-resumed", "1"), ("bytes-replayed", "3 B")):
        assert re.search(r'id="%s"><b>%s</b>' % (label, value), page), (label, page)
    c2.sock.shutdown(socket.SHUT_WR)
    expect_eof(s2)
    s2.sock.shutdown(socket.SHUT_WR)
    expect_eof(c2)
    end = tunnel_end_line(relay, cid)
    # the same tunnel: its counts went on over both joints
    assert end["reason"] == "fin" and end["path"] == "upgrade", end
    assert end["bytes_up"] == "18" and end["bytes_down"] == "8", end
    c2.close()
    s2.close()


@t.test
def bad_proof_is_403_and_one_resume_refused_line(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    bad = ("A" if ct[0] != "A" else "B") + ct[1:]
    r = answer(send_resume(api, cid, keys.ck, bad, 0, 0))
    assert r.status == 403 and r.body == b"bad resume proof\n", r
    # the server's token is no proof for the client side either
    line = relay.wait_for(r"event=resume_refused [^\n]*").group(0)
    assert "reason=bad_proof" in line and "conn=%s" % cid in line and "side=client" in line, line
    assert relay.count(r"event=resume_refused") == 1
    assert relay.count(r"event=auth_failed") == 0
    assert 'ptth_resume_refused_total{reason="bad_proof"} 1\n' in metrics(api, keys)
    assert bad not in relay.log() and ct not in relay.log()
    # the tunnel is still there: the right token is held
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    s2 = send_resume(api, cid, keys.sk, st, 0, 0, client="alice")
    assert answer(c2).status == 101 and answer(s2).status == 101
    c2.close()
    s2.close()


@t.test
def another_clients_key_is_no_proof(ctx):
    """The token names the tunnel's client: bob, who may reach foo/ssh too,
    presenting alice's token with his own key gets 403 (bad proof), and so
    does the server's token sent for another client's tunnel (PTTH-Client:
    bob). Nothing of the tunnel leaks (no token in the log, no 101), and
    alice's and the server's own resumes still join it."""
    keys = Keys(ctx)
    bob = pt.Key()
    relay = ctx.relay(servers={"foo": keys.sk}, clients={"alice": keys.ck, "bob": bob},
                      allow=["alice=foo/*", "bob=foo/*"], admin=keys.admin, args=["--resume-secret-file", keys.secret])
    api = rc.Api(relay.port)
    cid, ct, st = broken(api, keys, relay)
    r = answer(send_resume(api, cid, bob, ct, 0, 0))
    assert r.status == 403 and r.body == b"bad resume proof\n", r
    r = answer(send_resume(api, cid, keys.sk, st, 0, 0, client="bob"))
    assert r.status == 403 and r.body == b"bad resume proof\n", r
    lines = re.findall(r"event=resume_refused [^\n]*", relay.log())
    assert len(lines) == 2 and all("reason=bad_proof" in x for x in lines), lines
    assert ct not in relay.log() and st not in relay.log()
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    s2 = send_resume(api, cid, keys.sk, st, 0, 0, client="alice")
    assert answer(c2).status == 101 and answer(s2).status == 101
    c2.close()
    s2.close()
    print("# bob with alice's token: 403; the server's token for client bob: 403; alice and the server resume: 101")


@t.test
def ended_tunnel_is_404(ctx):
    """A tunnel that ended (here: one side's clean end of stream, then the
    other's reset, as when a terminator dies) is remembered for the grace:
    its resume is 404."""
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    ct = cr.headers["ptth-resume"]
    cc.sock.shutdown(socket.SHUT_WR)
    expect_eof(ac)
    reset(ac)
    assert tunnel_end_line(relay, cid)["reason"] == "rst"
    r = answer(send_resume(api, cid, keys.ck, ct, 0, 0))
    assert r.status == 404 and r.body == b"tunnel ended\n", r
    cc.close()


@t.test
def both_clean_ends_are_not_remembered(ctx):
    """Both legs ended cleanly: the terminators' own end, or a proxy in
    between that closed both (a squid restart); the relay cannot tell, so
    the terminators' resumes recreate the tunnel and join it again."""
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    ct, st = cr.headers["ptth-resume"], ar.headers["ptth-resume"]
    cc.sock.shutdown(socket.SHUT_WR)
    expect_eof(ac)
    ac.sock.shutdown(socket.SHUT_WR)
    expect_eof(cc)
    assert tunnel_end_line(relay, cid)["reason"] == "fin"
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    s2 = send_resume(api, cid, keys.sk, st, 0, 0, client="alice")
    r, r2 = answer(c2), answer(s2)
    assert r.status == 101 and r2.status == 101, (r, r2)
    relay.wait_for(r"event=tunnel_resumed conn=%s " % re.escape(cid))
    c2.sock.sendall(b"again")
    assert recv_n(s2, 5) == b"again"
    cc.close()
    ac.close()


@t.test
def grace_runs_out_then_404_and_resume_timeout(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys, args=("--resume-secret-file", None, "--resume-grace", "1"))
    cid, ct, st = broken(api, keys, relay)
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    r = answer(c2, timeout=5)
    assert r.status == 404 and r.body == b"resume timed out\n", r
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "resume_timeout" and end["path"] == "upgrade", end
    r = answer(send_resume(api, cid, keys.sk, st, 0, 0, client="alice"))
    assert r.status == 404 and r.body == b"tunnel ended\n", r
    c2.close()


@t.test
def restart_with_the_same_secret_resumes_an_unknown_tunnel(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    ct, st = cr.headers["ptth-resume"], ar.headers["ptth-resume"]
    cc.sock.sendall(b"before")
    assert recv_n(ac, 6) == b"before"
    relay.stop()
    cc.close()
    ac.close()
    relay2, api2 = start(ctx, keys)
    s2 = send_resume(api2, cid, keys.sk, st, 6, 0, client="alice")
    time.sleep(0.1)
    c2 = send_resume(api2, cid, keys.ck, ct, 0, 6)
    cr2, sr2 = answer(c2), answer(s2)
    assert cr2.status == 101 and sr2.status == 101, (cr2, sr2)
    assert cr2.headers.get("ptth-conn") == cid and cr2.headers.get("ptth-resume") == ct, cr2
    assert cr2.headers.get("ptth-peer-received") == "6", cr2
    c2.sock.sendall(b"after")
    assert recv_n(s2, 5) == b"after"
    s2.sock.sendall(b"back")
    assert recv_n(c2, 4) == b"back"
    relay2.wait_for(r"event=tunnel_resumed conn=%s gap_ms=\d+ replayed_up=0 replayed_down=0" % re.escape(cid))
    # a relay with another secret does not take the token
    c2.close()
    s2.close()
    relay2.stop()
    other = ctx.path("other.secret")
    fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    relay3, api3 = start(ctx, keys, args=("--resume-secret-file", other))
    r = answer(send_resume(api3, cid, keys.ck, ct, 0, 0))
    assert r.status == 403, r


@t.test
def second_resume_of_a_side_supersedes_the_first(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    c1 = send_resume(api, cid, keys.ck, ct, 0, 0)
    time.sleep(0.2)
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    r = answer(c1)
    assert r.status == 409 and r.body == b"superseded\n", r
    s2 = send_resume(api, cid, keys.sk, st, 0, 0, client="alice")
    assert answer(c2).status == 101 and answer(s2).status == 101
    c1.close()
    c2.close()
    s2.close()


@t.test
def held_resume_whose_connection_closes_is_dropped(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    c1 = send_resume(api, cid, keys.ck, ct, 0, 0)
    time.sleep(0.2)
    c1.close()
    time.sleep(0.2)
    s2 = send_resume(api, cid, keys.sk, st, 0, 0, client="alice")
    try:
        r = s2.read_head(timeout=0.5)
        raise AssertionError("answered without the client side: %r" % (r,))
    except socket.timeout:
        pass
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    assert answer(s2).status == 101 and answer(c2).status == 101
    c2.sock.sendall(b"ok")
    assert recv_n(s2, 2) == b"ok"
    c2.close()
    s2.close()


@t.test
def resumption_off_is_404_without_tokens(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys, args=("--resume-grace", "0"))
    cid, cc, cr, ac, ar = open_upgraded(api, keys)
    assert cr.status == 101 and "ptth-resume" not in cr.headers and "ptth-resume" not in ar.headers, (cr, ar)
    r = answer(send_resume(api, cid, keys.ck, "x" * 43, 0, 0))
    assert r.status == 404 and r.body == b"resumption is off\n", r
    cc.close()
    ac.close()


@t.test
def resume_requests_that_are_refused_before_the_tunnel(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    # no key, another server's side, no Upgrade, bad counts
    c = rc.H1(api.port)
    c.send("POST", api.conn_path("foo", cid, "resume"), dict(UPGRADE, **{"PTTH-Port": "ssh"}), b"")
    assert answer(c).status == 401
    # no Upgrade: a resume of the chunked path, and this tunnel is upgraded
    r = answer(send_resume(api, cid, keys.ck, ct, 0, 0, upgrade=False))
    assert r.status == 409 and b"resume it with Upgrade" in r.body, r
    r = answer(send_resume(api, cid, keys.ck, ct, "-1", 0))
    assert r.status == 400 and b"PTTH-Received" in r.body, r
    r = answer(send_resume(api, cid, keys.ck, ct, 0, "18446744073709551616"))
    assert r.status == 400 and b"PTTH-Sent" in r.body, r
    r = answer(send_resume(api, cid, keys.sk, st, 0, 0))  # the server side without PTTH-Client
    assert r.status == 400 and b"PTTH-Client" in r.body, r
    # a tunnel that is not resumable
    cid2, cc, cr, ac, ar = open_upgraded(api, keys, UPGRADE, UPGRADE)
    r = answer(send_resume(api, cid2, keys.ck, ct, 0, 0))
    assert r.status == 403, r  # the proof names the tunnel: another id's token is no proof
    cc.close()
    ac.close()


@t.test
def shutdown_ends_a_suspended_tunnel(ctx):
    keys = Keys(ctx)
    relay, api = start(ctx, keys)
    cid, ct, st = broken(api, keys, relay)
    c2 = send_resume(api, cid, keys.ck, ct, 0, 0)
    time.sleep(0.2)
    relay.signal(__import__("signal").SIGTERM)
    r = answer(c2)
    assert r.status == 503, r
    end = tunnel_end_line(relay, cid)
    assert end["reason"] == "shutdown" and end["path"] == "upgrade", end
    assert relay.stop() == 0
    c2.close()


@t.test
def bad_proof_spray_is_penalised_like_bad_keys(ctx):
    """SPEC 9.6 on resume attempts: guesses of a token from one address
    (127.0.0.3) count as authentication failures: after --auth-fail-limit
    of them that address gets 429 with Retry-After before any key or token
    is checked, resume_refused lines stop at the limit, a real resume from
    another address is untouched, and the penalty ends on time."""
    keys = Keys(ctx)
    limit, penalty = 5, 2
    relay, api = start(ctx, keys, args=("--resume-secret-file", None, "--auth-fail-limit", str(limit),
                                        "--auth-fail-penalty", str(penalty)))
    cid, ct, st = broken(api, keys, relay)

    def guess(token):
        c = rc.H1(api.port, source="127.0.0.3")
        h = dict(rc.bearer(keys.ck), **UPGRADE)
        h.update({"PTTH-Resume": token, "PTTH-Port": "ssh", "PTTH-Received": "0", "PTTH-Sent": "0"})
        c.send("POST", api.conn_path("foo", cid, "resume"), h, b"")
        r = answer(c)
        c.close()
        return r.status, r.headers.get("retry-after")

    statuses = [guess("%043d" % i) for i in range(limit + 5)]
    assert [x[0] for x in statuses[:limit]] == [403] * limit, statuses
    assert all(code == 429 and ra is not None and 1 <= int(ra) <= penalty for code, ra in statuses[limit:]), statuses
    assert relay.count(r"event=resume_refused ") == limit, relay.log()
    assert relay.count(r"event=auth_penalty addr=127\.0\.0\.3 ") == 1, relay.log()
    # the tunnel's own terminators, from 127.0.0.1, resume during the penalty
    c2 = send_resume(api, cid, keys.ck, ct, 0, 10)
    s2 = send_resume(api, cid, keys.sk, st, 10, 0, client="alice")
    assert answer(c2).status == 101 and answer(s2).status == 101
    c2.close()
    s2.close()
    time.sleep(penalty + 0.5)
    assert guess("x" * 43)[0] == 403
    print("# %d guessed tokens from 127.0.0.3: %s; %d resume_refused lines; the real resume from 127.0.0.1 went "
          "through; 403 again after the %d s penalty" % (len(statuses), [x[0] for x in statuses],
                                                        relay.count(r"event=resume_refused "), penalty))


if __name__ == "__main__":
    t.run()
