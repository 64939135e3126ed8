#!/usr/bin/env python3
"""ptth_relay authentication and authorization (SPEC §4): 401 without or
with an unknown key, 403 with a known key that may not do this, ACLs with
wildcards, and a connection id alone granting nothing."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402

t = pt.Tap()


class Setup:
    def __init__(self, ctx):
        self.foo, self.bar = pt.Key(), pt.Key()
        self.alice, self.bob, self.carol = pt.Key(), pt.Key(), pt.Key()
        self.admin = pt.Key()
        self.relay = ctx.relay(servers={"foo": self.foo, "bar": self.bar},
                               clients={"alice": self.alice, "bob": self.bob, "carol": self.carol},
                               allow=["alice=foo/ssh", "bob=*/web", "carol=*/*"], admin=self.admin,
                               # these tests make dozens of failures from one address on purpose:
                               # no penalty (that is relay_hardening's subject)
                               args=["--auth-fail-limit", "0"])
        self.api = rc.Api(self.relay.port)


@t.test
def no_key_and_unknown_key_are_401(ctx):
    s = Setup(ctx)
    api = s.api
    stranger = pt.Key()
    paths = [api.listen_path("foo"), api.connect_path("foo", "ssh"), api.conn_path("foo", "C" * 22, "accept"),
             api.conn_path("foo", "C" * 22, "upstream"), api.conn_path("foo", "C" * 22, "downstream"),
             api.conn_path("foo", "C" * 22, "close"), api.conn_path("foo", "C" * 22, "reject")]
    for path in paths:
        r = api.post(path, None, {"PTTH-Ports": "ssh", "PTTH-Seq": "0"}, b"x")
        assert r.status == 401, (path, r)
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), r
        r = api.post(path, stranger, {"PTTH-Ports": "ssh", "PTTH-Seq": "0"}, b"x")
        assert r.status == 401, (path, r)
        for bad in ("Bearer", "Bearer short", "Basic " + s.foo.text, s.foo.text, "Bearer " + s.foo.text + "x"):
            r = api.post(path, None, {"Authorization": bad, "PTTH-Ports": "ssh", "PTTH-Seq": "0"}, b"x")
            assert r.status == 401, (path, bad, r)


@t.test
def server_endpoints_need_that_servers_key(ctx):
    s = Setup(ctx)
    api = s.api
    # a client key on a server endpoint
    r = api.post(api.listen_path("foo"), s.alice, {"PTTH-Ports": "ssh"})
    assert r.status == 403, r
    # another server's key
    r = api.post(api.listen_path("foo"), s.bar, {"PTTH-Ports": "ssh"})
    assert r.status == 403, r
    # the admin key is a known key but not a server's
    r = api.post(api.listen_path("foo"), s.admin, {"PTTH-Ports": "ssh"})
    assert r.status == 403, r
    # a server that is not configured: its key cannot exist
    r = api.post(api.listen_path("nosuch"), s.foo, {"PTTH-Ports": "ssh"})
    assert r.status == 403, r
    # the right key works (held, then released by the listen timeout... we only check it is held)
    c = api.start(api.listen_path("foo"), s.foo, {"PTTH-Ports": "ssh"})
    s.relay.wait_for(r"event=server_online server=foo")
    c.close()


@t.test
def client_endpoints_need_an_allowed_client_key(ctx):
    s = Setup(ctx)
    api = s.api
    lc = api.start(api.listen_path("foo"), s.foo, {"PTTH-Ports": "ssh,web,db"})
    s.relay.wait_for(r"event=server_online server=foo")
    # a server key on a client endpoint
    r = api.post(api.connect_path("foo", "ssh"), s.foo)
    assert r.status == 403, r
    r = api.post(api.connect_path("foo", "ssh"), s.bar)
    assert r.status == 403, r
    # ACL misses
    r = api.post(api.connect_path("foo", "web"), s.alice)  # alice: foo/ssh only
    assert r.status == 403, r
    r = api.post(api.connect_path("bar", "ssh"), s.alice)
    assert r.status == 403, r
    r = api.post(api.connect_path("foo", "ssh"), s.bob)  # bob: */web only
    assert r.status == 403, r
    # a miss is 403 even for a server that does not exist (no probing of names)
    r = api.post(api.connect_path("nosuch", "ssh"), s.alice)
    assert r.status == 403, r
    # wildcard rules let through to the next check: unknown server 404, unknown port 404
    r = api.post(api.connect_path("nosuch", "web"), s.bob)
    assert r.status == 404, r
    r = api.post(api.connect_path("foo", "nosuchport"), s.carol)
    assert r.status == 404 and b"does not offer" in r.body, r
    # allowed ones reach the server
    cc = api.start(api.connect_path("foo", "db"), s.carol)
    r = lc.read_head()
    assert r.status == 200 and r.headers["ptth-port"] == "db" and r.headers["ptth-client"] == "carol", r
    cc.close()
    lc.close()


@t.test
def connection_id_alone_grants_nothing(ctx):
    s = Setup(ctx)
    api = s.api
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", s.foo, s.alice)
    p = lambda verb: api.conn_path("foo", cid, verb)  # noqa: E731
    # no key at all
    assert api.post(p("upstream"), None, {"PTTH-Seq": "0"}, b"x").status == 401
    assert api.post(p("downstream"), None, {"PTTH-Seq": "0"}, b"x").status == 401
    assert api.post(p("close"), None).status == 401
    # another client (allowed on foo) cannot write into alice's tunnel or close it
    assert api.post(p("upstream"), s.carol, {"PTTH-Seq": "0"}, b"x").status == 403
    assert api.post(p("close"), s.carol).status == 403
    # the client cannot play the server and the other way round
    assert api.post(p("downstream"), s.alice, {"PTTH-Seq": "0"}, b"x").status == 403
    assert api.post(p("accept"), s.alice).status == 403
    assert api.post(p("reject"), s.alice).status == 403
    assert api.post(p("upstream"), s.foo, {"PTTH-Seq": "0"}, b"x").status == 403
    # another server cannot touch it, under its own path or foo's
    assert api.post(p("downstream"), s.bar, {"PTTH-Seq": "0"}, b"x").status == 403
    assert api.post(api.conn_path("bar", cid, "downstream"), s.bar, {"PTTH-Seq": "0"}, b"x").status == 404
    assert api.post(api.conn_path("bar", cid, "close"), s.bar).status == 404
    # nothing got through, the tunnel still works for its owners
    assert api.chunk("foo", cid, "upstream", s.alice, 0, b"mine").status == 204
    assert up.read_data(4) == b"mine"
    assert api.chunk("foo", cid, "downstream", s.foo, 0, b"yours").status == 204
    assert down.read_data(5) == b"yours"


@t.test
def admin_endpoints(ctx):
    s = Setup(ctx)
    api = s.api
    for path in ("/metrics", "/v1/status", "/"):
        r = api.get(path)
        assert r.status == 401, (path, r)
        assert r.headers.get("www-authenticate", "").startswith("Basic"), r
        r = api.get(path, rc.bearer(s.alice))
        assert r.status == 403, (path, r)
        r = api.get(path, rc.bearer(pt.Key()))
        assert r.status == 401, (path, r)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", s.foo, s.alice)
    assert api.chunk("foo", cid, "upstream", s.alice, 0, b"12345").status == 204
    up.read_data(5)
    r = api.get("/v1/status", rc.bearer(s.admin))
    assert r.status == 200 and r.headers["content-type"] == "application/json", r
    import json
    st = json.loads(r.body)
    assert [sv["name"] for sv in st["servers"]] == ["foo"], st
    assert st["servers"][0]["ports"] == ["ssh", "web"], st
    assert len(st["tunnels"]) == 1 and st["tunnels"][0]["id"] == cid, st
    tun = st["tunnels"][0]
    assert tun["client"] == "alice" and tun["port"] == "ssh" and tun["bytes_up"] == 5 and tun["state"] == "open", tun
    r = api.get("/metrics", rc.bearer(s.admin))
    assert r.status == 200, r
    assert b"ptth_tunnels_open 1\n" in r.body, r.body
    assert b'ptth_bytes_total{direction="up"} 5\n' in r.body, r.body
    assert b'ptth_port_tunnels_open{server="foo",port="ssh"} 1\n' in r.body, r.body
    assert b"ptth_servers_online 1\n" in r.body, r.body
    # the HTML page, with the key as an HTTP Basic password (what a browser sends)
    import base64
    basic = base64.b64encode(b"ops:" + s.admin.text.encode()).decode()
    r = api.get("/", {"Authorization": "Basic " + basic})
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r
    assert cid.encode() in r.body and b"alice" in r.body, r.body
    assert api.post(api.conn_path("foo", cid, "close"), s.alice).status == 204
    s.relay.wait_for(r"event=tunnel_end id=%s" % cid)
    r = api.get("/metrics", rc.bearer(s.admin))
    assert b'ptth_tunnels_total{result="rst"} 1\n' in r.body, r.body


@t.test
def client_address_and_trusted_proxies(ctx):
    sk, ck = pt.Key(), pt.Key()
    for trusted, want in ((None, r"127\.0\.0\.1:\d+"), ("127.0.0.0/8", r"198\.51\.100\.7:0"), ("10.0.0.0/8", r"127\.0\.0\.1:\d+")):
        args = ["--trusted-proxy", trusted] if trusted else []
        relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"], args=args)
        api = rc.Api(relay.port)
        lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
        relay.wait_for(r"event=server_online server=foo")
        cc = api.start(api.connect_path("foo", "ssh"), ck, {"X-Forwarded-For": "203.0.113.1, 198.51.100.7"})
        r = lc.read_head()
        assert r.status == 200 and re.fullmatch(want, r.headers["ptth-client-addr"]), (trusted, r)
        cid = r.headers["ptth-conn"]
        assert api.post(api.conn_path("foo", cid, "reject"), sk).status == 204
        m = relay.wait_for(r"event=tunnel_end id=%s [^\n]* addr=(\S+)" % cid)
        assert re.fullmatch(want, m.group(1)), m.group(0)
        lc.close()
        cc.close()
        relay.stop()


@t.test
def admin_endpoints_are_404_without_admin_key(ctx):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck})
    api = rc.Api(relay.port)
    for path in ("/metrics", "/v1/status", "/"):
        assert api.get(path).status == 404
        assert api.get(path, rc.bearer(ck)).status == 404
    assert api.get("/healthz").status == 200


t.run()
