#!/usr/bin/env python3
"""SIGHUP reload (SPEC §3, issue 5): keys and ACLs added, changed and
removed take effect without dropping the tunnels of keys that stay; the
tunnels of a changed or removed key end (RST), also a removed server's; an
ACL change leaves open tunnels alone; a broken file keeps the running
configuration and logs every problem in it."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import pt, rc  # noqa: E402

t = pt.Tap()


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def works(api, cid, up, down, skey, ckey, tag):
    """One chunk each way through an open tunnel."""
    data = b"up " + tag
    r = api.chunk(works.server[cid], cid, "upstream", ckey, works.seq.setdefault((cid, "u"), 0), data)
    assert r.status == 204, (cid, r)
    works.seq[(cid, "u")] += 1
    assert up.read_data(len(data)) == data
    data = b"down " + tag
    r = api.chunk(works.server[cid], cid, "downstream", skey, works.seq.setdefault((cid, "d"), 0), data)
    assert r.status == 204, (cid, r)
    works.seq[(cid, "d")] += 1
    assert down.read_data(len(data)) == data


works.seq = {}
works.server = {}


def tunnel(api, server, skey, ckey):
    cid, up, down = rc.open_tunnel(api, server, "ssh", skey, ckey)
    works.server[cid] = server
    return cid, up, down


def reload(relay, n):
    relay.signal(signal.SIGHUP)
    fk.wait_until("reload %d done" % n, lambda: relay.count(r"event=reload(_failed)? file=\S+ (servers|problems)=") >= n)


@t.test
def reload_keys_and_acls_keeps_the_tunnels_of_keys_that_stay(ctx):
    foo, bar = pt.Key(), pt.Key()
    alice, bob, carol, dave, bob2 = pt.Key(), pt.Key(), pt.Key(), pt.Key(), pt.Key()
    conf = ctx.path("relay.conf")
    base = ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "server = bar=" + bar.hash]
    write(conf, base + ["client = alice=" + alice.hash, "client = bob=" + bob.hash, "client = carol=" + carol.hash,
                        "allow = alice=foo/*", "allow = bob=foo/*", "allow = carol=bar/*"])
    relay = ctx.start([pt.program("ptth_relay"), "--config", conf], name="ptth_relay")
    port = int(relay.wait_for(r"event=listening addr=127\.0\.0\.1:(\d+)").group(1))
    api = rc.Api(port)
    ta = tunnel(api, "foo", foo, alice)
    tb = tunnel(api, "foo", foo, bob)
    tc = tunnel(api, "bar", bar, carol)
    works(api, *ta, foo, alice, b"0")

    # 1: dave added, bob's key changed, alice's ACL narrowed, carol's rule removed (her key stays)
    write(conf, base + ["client = alice=" + alice.hash, "client = bob=" + bob2.hash, "client = carol=" + carol.hash,
                        "client = dave=" + dave.hash, "allow = alice=foo/ssh", "allow = bob=foo/*", "allow = dave=foo/ssh"])
    reload(relay, 1)
    f = tb[1].next_non_ping(timeout=5)
    assert f[0] == rc.RST and b"client key revoked" in f[1], f
    assert tb[2].next_non_ping(timeout=5)[0] == rc.RST
    works(api, *ta, foo, alice, b"1")  # alice's tunnel stays and works
    works(api, *tc, bar, carol, b"1")  # an ACL change does not end open tunnels
    assert api.post(api.connect_path("bar", "ssh"), carol).status == 403  # ... but applies to new ones
    assert api.post(api.connect_path("foo", "web"), alice).status == 403
    assert api.post(api.connect_path("foo", "ssh"), bob).status == 401  # the old key is gone
    td = tunnel(api, "foo", foo, dave)  # the new client works
    works(api, *td, foo, dave, b"1")
    tb2 = tunnel(api, "foo", foo, bob2)  # and the changed key
    works(api, *tb2, foo, bob2, b"1")
    log = relay.log()
    assert len(re.findall(r"event=tunnel_end [^\n]*reason=rst detail=\"client key revoked\"", log)) == 1, log

    # 2: server bar removed: its tunnel ends, nobody else's
    write(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "client = alice=" + alice.hash,
                 "client = bob=" + bob2.hash, "client = dave=" + dave.hash, "allow = alice=foo/ssh",
                 "allow = bob=foo/*", "allow = dave=foo/ssh"])
    reload(relay, 2)
    f = tc[1].next_non_ping(timeout=5)
    assert f[0] == rc.RST and b"server key revoked" in f[1], f
    for tun, ck in ((ta, alice), (td, dave), (tb2, bob2)):
        works(api, *tun, foo, ck, b"2")
    assert api.post(api.listen_path("bar"), bar, {"PTTH-Ports": "ssh"}).status == 401

    # 3: a broken file: every problem is logged, the running configuration stays
    write(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "server = foo=" + bar.hash,
                 "client = alice=nothex", "client = bob=" + bob2.hash, "allow = ghost=foo/ssh",
                 "allow = bob=nosuch/ssh", "max-chunk = lots", "bogus-option = 1"])
    reload(relay, 3)
    fails = re.findall(r"event=reload_failed file=\S+ problem=([^\n]*)", relay.log())
    print("# reload of a broken file logged %d problems: %s" % (len(fails), fails))
    for what in ("bogus-option", "max-chunk", "relay.conf:4: client: bad key hash for 'alice'", "'foo' is given more than once",
                 "ghost", "nosuch"):
        assert any(what in p for p in fails), (what, fails)
    assert re.search(r"event=reload_failed file=\S+ problems=%d reason=\"kept the running configuration\"" % len(fails),
                     relay.log())
    for tun, ck in ((ta, alice), (td, dave), (tb2, bob2)):
        works(api, *tun, foo, ck, b"3")
    t2 = tunnel(api, "foo", foo, alice)  # alice's key and ACL are still the old ones
    works(api, *t2, foo, alice, b"3")
    assert relay.count(r"event=tunnel_end ") == 2
    assert relay.stop() == 0


t.run()
