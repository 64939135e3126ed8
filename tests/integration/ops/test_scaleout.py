#!/usr/bin/env python3
"""Past one relay (SPEC §8, docs/scale-out.md): two relays behind one nginx
that hashes the server-name path segment (`map $uri $ptth_server`, `hash
$ptth_server consistent`), configured from the nginx block of
docs/scale-out.md. Several servers, all reachable through the one entry
point; each server's listens and its clients' tunnels on one relay; both
relays carrying some; a stopped relay's servers moving to the other; and a
killed relay's open tunnel resuming on the other (SPEC §9.3: the relays
share --resume-secret-file, nginx passes upgrades and sends a dead relay's
requests on)."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import opskit as kit  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()


def scaleout_site(relay_ports, port4, port6, ca):
    with open(os.path.join(kit.DOCS, "scale-out.md")) as f:
        text = kit.nginx_conf_block(f.read())
    return kit.substitute(text, [
        # the server lines keep their parameters (max_fails, fail_timeout)
        (r"^(\s*)server 10\.0\.0\.11:4000([ ;])", r"\g<1>server 127.0.0.1:%d\g<2>" % relay_ports[0], 1),
        (r"^(\s*)server 10\.0\.0\.12:4000([ ;])", r"\g<1>server 127.0.0.1:%d\g<2>" % relay_ports[1], 1),
        (r"^(\s*)listen 443 ssl http2;", r"\g<1>listen 127.0.0.1:%d ssl http2;" % port4, 1),
        (r"^(\s*)listen \[::\]:443 ssl http2;", r"\g<1>listen [::1]:%d ssl http2;" % port6, 1),
        (r"ssl_certificate /etc/ptth/tls/fullchain\.pem;", "ssl_certificate %s;" % ca.cert, 1),
        (r"ssl_certificate_key /etc/ptth/tls/privkey\.pem;", "ssl_certificate_key %s;" % ca.key, 1),
    ])


def echo_check(port, payload, timeout=20):
    s = pt.connect(port, timeout=timeout)
    try:
        s.sendall(payload)
        got = pt.recv_exactly(s, len(payload), timeout=timeout)
        s.shutdown(socket.SHUT_WR)
        return got + pt.recv_until_eof(s, timeout=timeout)
    finally:
        s.close()


class Farm:
    """Two relays with the same keys, ACLs and resume secret (as
    docs/scale-out.md asks), nginx in front, servers s0, s1, ... each with
    its own echo backend."""

    MAX_SERVERS = 16

    def __init__(self, ctx, relay_args=()):
        self.ctx = ctx
        self.ca = kit.CA(os.path.join(ctx.dir, "tls"))
        self.admin = pt.Key()
        self.ckey = ctx.key("alice")
        self.skeys = [pt.Key() for _ in range(self.MAX_SERVERS)]
        for i, k in enumerate(self.skeys):
            k.path = k.write(ctx.path("s%d.key" % i))
        self.secret = ctx.path("resume.secret")
        fd = os.open(self.secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        self.relays = []
        for name in ("A", "B"):
            r = ctx.relay(servers={"s%d" % i: k for i, k in enumerate(self.skeys)}, clients={"alice": self.ckey},
                          allow=["alice=*/*"], admin=self.admin,
                          args=["--trusted-proxy", "127.0.0.1/32", "--resume-secret-file", self.secret] + list(relay_args))
            r.label = name
            self.relays.append(r)
        self.port4, self.port6 = pt.free_port(), kit.free_port6()
        site = scaleout_site([r.port for r in self.relays], self.port4, self.port6, self.ca)
        self.nginx = kit.Nginx(ctx, site, [self.port4])
        self.url = "https://127.0.0.1:%d/ptth" % self.port4
        self.servers = []
        self.backends = []

    def add_server(self, args=()):
        i = len(self.servers)
        echo = pt.EchoServer()
        self.ctx.cleanups.append(echo.close)
        self.backends.append(echo)
        srv = self.ctx.server(self.url, "s%d" % i, self.skeys[i], ["echo=%d" % echo.port],
                              args=["--ca-file", self.ca.ca_cert, "--listens", "2"] + list(args))
        self.servers.append(srv)
        return "s%d" % i

    def home(self, name, timeout=20):
        """The relay where the server came online (waits for one)."""
        deadline = time.monotonic() + timeout
        rx = r"event=server_online server=%s\b" % re.escape(name)
        while time.monotonic() < deadline:
            found = [r for r in self.relays if r.count(rx)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError("server %s never came online" % name)

    def status(self, relay):
        r = kit.http_get(relay.url + "/v1/status", bearer=self.admin.text)
        assert r.status == 200, (r.status, r.body)
        return r.json()


@t.test
def servers_spread_over_two_relays_reachable_through_one_entry(ctx):
    farm = Farm(ctx)
    homes = {}
    for _ in range(6):
        name = farm.add_server()
    for i in range(6):
        homes["s%d" % i] = farm.home("s%d" % i)
    # until both relays have a server (an unlucky hash of six names)
    while len({h[0].label for h in homes.values()}) < 2:
        assert len(farm.servers) < farm.MAX_SERVERS, "all %d servers hashed to one relay" % len(farm.servers)
        name = farm.add_server()
        homes[name] = farm.home(name)
    time.sleep(1.0)  # more listens of every server came in meanwhile
    for name in homes:
        found = [r.label for r in farm.relays if r.count(r"event=server_online server=%s\b" % name)]
        assert len(found) == 1, "server %s came online on relays %s" % (name, found)
    # one proxy, one forward per server, through the one entry point
    args = ["--ca-file", farm.ca.ca_cert]
    for name in sorted(homes):
        args += ["--forward", "0=%s/echo" % name]
    px = ctx.proxy(farm.url, farm.ckey, args=args, wait=False)
    ports = {}
    for name, m in zip(sorted(homes), re.finditer(r"listening on \S+:(\d+)", wait_lines(px, len(homes)))):
        ports[name] = int(m.group(1))
    for name, port in ports.items():
        data = ("%s|" % name).encode() * 1000 + os.urandom(5000)
        assert echo_check(port, data) == data, "echo through %s differs" % name
    # each tunnel ended on its server's relay, and on no other
    for name, home in homes.items():
        h = home[0]
        rx = r"event=tunnel_end [^\n]*server=%s [^\n]*reason=fin" % re.escape(name)
        h.wait_for(rx, timeout=10)
        for r in farm.relays:
            if r is not h:
                assert r.count(r"event=tunnel_end [^\n]*server=%s " % re.escape(name)) == 0, (name, r.label)
    # both relays carry some: by the logs and by /v1/status
    per = {r.label: r.count(r"event=tunnel_end ") for r in farm.relays}
    assert all(per.values()), per
    online = {r.label: sorted(s["name"] for s in farm.status(r)["servers"]) for r in farm.relays}
    assert all(online.values()), online
    assert sorted(online["A"] + online["B"]) == sorted(homes), online
    for name, home in homes.items():
        assert name in online[home[0].label], (name, online)

    # relay A stops: its servers come online on B and are reachable again
    a, b = farm.relays
    moved = [n for n, h in homes.items() if h[0] is a]
    a.stop()
    for name in moved:
        b.wait_for(r"event=server_online server=%s\b" % re.escape(name), timeout=30)
    for name in moved:
        data = os.urandom(3000)
        for attempt in range(5):
            # nginx probes the failed relay again after fail_timeout: one
            # request may meet it (502) and the tunnel is refused
            try:
                if echo_check(ports[name], data, timeout=10) == data:
                    break
            except (OSError, AssertionError):
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("server %s not reachable after its relay stopped" % name)
    assert sorted(s["name"] for s in farm.status(b)["servers"]) == sorted(homes), farm.status(b)


class Resumed:
    """One server and one proxy behind the farm, an upgraded resumable
    tunnel with a paced echo of 32 MB (hashed at both ends) through it; the
    relay that carries it goes down (how: "kill" or "stop") in the middle,
    the echo completes exact, and the other relay and both terminators
    logged the resume of that tunnel. Attributes for the checks that
    follow: farm, name, home (the relay that went down), other, px, srv,
    conn, down_at (time.monotonic() of the kill), flowing (seconds from it
    until 2 MiB more came back), longest_wait (the longest the client
    waited for echoed bytes), line (the other relay's tunnel_resumed)."""

    SIZE = 32 * 1000 * 1000

    def __init__(self, ctx, how):
        # debug: the relay's tunnel_open (which relay joined the tunnel, on
        # which path) and the proxy's tunnel_resumable
        debug = ["--log-level", "debug"]
        self.farm = farm = Farm(ctx, relay_args=debug)
        self.name = farm.add_server(args=debug)
        self.srv = farm.servers[0]
        self.home = farm.home(self.name)[0]
        self.other = next(r for r in farm.relays if r is not self.home)
        self.px = ctx.proxy(farm.url, farm.ckey, self.name, "echo", args=["--ca-file", farm.ca.ca_cert] + debug)
        e = pt.PacedEcho(self.px.port, self.SIZE, rate=16e6)  # two seconds at the least
        e.wait_got(6 * pt.MIB, timeout=30)
        self.conn = self.px.wait_for(r"event=tunnel_resumable conn=(\S+)").group(1)
        rx_conn = re.escape(self.conn)
        carriers = [r.label for r in farm.relays if r.count(r"event=tunnel_open id=%s [^\n]*path=upgrade" % rx_conn)]
        assert carriers == [self.home.label], "tunnel %s joined on %s, its server is on %s" % (
            self.conn, carriers, self.home.label)
        assert e.sent < self.SIZE, "the transfer ended before the relay went down"
        self.down_at = time.monotonic()
        if how == "kill":
            self.home.kill9()
        else:
            self.home.stop()
        e.wait_got(e.got + 2 * pt.MIB, timeout=30)
        self.flowing = time.monotonic() - self.down_at
        e.finish(timeout=60)
        self.longest_wait = e.longest_wait

        other = self.other
        self.line = other.wait_for(r"event=tunnel_resumed conn=%s [^\n]*" % rx_conn, timeout=10).group(0)
        assert other.count(r"event=tunnel_resumed ") == 1, other.log()[-3000:]
        other.wait_for(r'event=tunnel_suspended id=%s [^\n]*detail="resumed, unknown here"' % rx_conn)
        other.wait_for(r"event=tunnel_end id=%s [^\n]*reason=fin [^\n]*path=upgrade" % rx_conn, timeout=10)
        for p in (self.px, self.srv):
            p.wait_for(r"event=tunnel_resumed conn=%s " % rx_conn)
            p.wait_for(r'event=tunnel_end conn=%s [^\n]*reason="?fin"? resumes=1\b' % rx_conn, timeout=10)
            assert p.count(r"event=tunnel_resumed ") == 1, p.log()[-3000:]
        # each side resumed once, answered 101 through nginx: no resume met
        # a 502 because it was the request that found the relay gone
        rx_resume = r'"POST /ptth/v1/servers/%s/conns/%s/resume HTTP/1\.1" (\d+)' % (re.escape(self.name), rx_conn)
        # (nginx writes an upgraded request's line when its connection closes)
        pt.wait_until("both resumes in nginx's access log", lambda: len(re.findall(rx_resume, farm.nginx.access())) >= 2)
        answers = re.findall(rx_resume, farm.nginx.access())
        assert answers == ["101", "101"], "resume answers through nginx: %s" % answers

    def new_tunnel(self):
        """An echo through a new tunnel of the server, which must go to the
        other relay."""
        self.other.wait_for(r"event=server_online server=%s\b" % re.escape(self.name), timeout=30)
        before = self.other.count(r"event=tunnel_end ")
        data = os.urandom(100000)
        assert echo_check(self.px.port, data) == data, "a new tunnel after the relay went down"
        pt.wait_until("the new tunnel's end on the other relay", lambda: self.other.count(
            r"event=tunnel_end id=[^\n]*server=%s [^\n]*reason=fin" % re.escape(self.name)) > before)

    def summary(self, how):
        gaps = [re.search(r"event=tunnel_resumed [^\n]*gap_ms=(\d+)", p.log()).group(1) for p in (self.px, self.srv)]
        return ("relay %s %s under a 32 MB echo: resumed on %s, exact; the client's longest wait for bytes %d ms, "
                "2 MiB more back %.2fs after; gap_ms proxy %s server %s; relay %s" % (
                    self.home.label, how, self.other.label, self.longest_wait * 1000, self.flowing, gaps[0], gaps[1],
                    self.line))


@t.test
def a_killed_relays_open_tunnel_resumes_on_the_other(ctx):
    """kill -9 of the relay that carries an open tunnel (upgraded through
    nginx, resumable): both terminators resume it through nginx, which
    sends both resumes to the other relay; that relay, which never saw the
    tunnel, checks the tokens (same --resume-secret-file) and joins them,
    and the echo completes byte for byte. The server's new tunnels go to
    the other relay too, also the one whose connect nginx tries on the
    dead relay after fail_timeout (proxy_next_upstream error)."""
    r = Resumed(ctx, "kill")
    r.new_tunnel()
    nginx = r.farm.nginx
    # the held listens that broke with the relay marked it failed at once
    assert "Connection refused" not in nginx.errors(), "a request tried the dead relay within fail_timeout"

    # fail_timeout (10 s) after the kill nginx tries the dead relay again
    # with the next request of its servers, here a new tunnel's connect:
    # the connect is refused and the request goes on to the other relay, it
    # is not answered 502
    time.sleep(max(0.0, r.down_at + 11.5 - time.monotonic()))
    r.new_tunnel()
    rx_probe = (r'connect\(\) failed \(111: Connection refused\) while connecting to upstream, [^\n]*'
                r'request: "POST /ptth/v1/servers/%s/ports/echo/connect HTTP/1\.1", upstream: "http://127\.0\.0\.1:%d/'
                % (re.escape(r.name), r.home.port))
    assert re.search(rx_probe, nginx.errors()), nginx.errors()[-3000:]
    rx_connect = r'"POST /ptth/v1/servers/%s/ports/echo/connect HTTP/1\.1" (\d+)' % re.escape(r.name)
    pt.wait_until("three connects logged", lambda: len(re.findall(rx_connect, nginx.access())) >= 3)
    connects = re.findall(rx_connect, nginx.access())
    assert connects == ["101"] * 3, connects
    print("# %s; a connect that met the dead relay %.1fs later went on to %s" % (
        r.summary("killed"), time.monotonic() - r.down_at, r.other.label))


@t.test
def a_stopped_relays_open_tunnel_resumes_on_the_other(ctx):
    """The same with SIGTERM: the relay closes its listening socket, resets
    the tunnel's legs (and logs its end, reason=shutdown) and exits 0; the
    terminators take the reset for a lost connection and resume on the
    other relay."""
    r = Resumed(ctx, "stop")
    r.home.wait_for(r"event=tunnel_end id=%s [^\n]*reason=shutdown" % re.escape(r.conn))
    r.new_tunnel()
    print("# " + r.summary("stopped"))


def wait_lines(px, n, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        text = px.log()
        if len(re.findall(r"listening on \S+:\d+", text)) >= n:
            return text
        assert px.alive() and time.monotonic() < deadline, text
        time.sleep(0.05)


t.run()
