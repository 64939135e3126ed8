#!/usr/bin/env python3
"""ptth behind a real nginx (SPEC §8) configured from docs/nginx.conf: TLS at
nginx with a throwaway CA, the relay under /ptth/, 50 tunnels at once, an idle
tunnel that outlives nginx's proxy_read_timeout thanks to heartbeats (and one
that does not without them), the client's real address carried through
X-Forwarded-For, PTTH-Client-Addr and the PROXY v2 header to an nginx backend
that logs $proxy_protocol_addr, X-Forwarded-For ignored from untrusted
peers, and a killed proxy's tunnel ended at once (SPEC §3 --trusted-proxy,
§5 --proxy-protocol)."""

import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import opskit as kit  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()

READ_TIMEOUT = 3  # nginx proxy_read_timeout in these tests (docs: 60s)


def docs_site(relay_port, port4, port6, ca, read_timeout=READ_TIMEOUT, listen_options="ssl http2", extra_subs=()):
    """docs/nginx.conf with only loopback ports, the test certificate and a
    short proxy_read_timeout put in (and other listen options when asked:
    "ssl" alone, or "" for cleartext HTTP/1.1)."""
    with open(os.path.join(kit.DOCS, "nginx.conf")) as f:
        text = f.read()
    return kit.substitute(text, [
        (r"^(\s*)server 127\.0\.0\.1:4000;", r"\g<1>server 127.0.0.1:%d;" % relay_port, 1),
        (r"^(\s*)listen 443 ssl http2;", r"\g<1>listen 127.0.0.1:%d %s;" % (port4, listen_options), 1),
        (r"^(\s*)listen \[::\]:443 ssl http2;", r"\g<1>listen [::1]:%d %s;" % (port6, listen_options), 1),
        (r"ssl_certificate /etc/ptth/tls/fullchain\.pem;", "ssl_certificate %s;" % ca.cert, 1),
        (r"ssl_certificate_key /etc/ptth/tls/privkey\.pem;", "ssl_certificate_key %s;" % ca.key, 1),
        (r"proxy_read_timeout 60s;", "proxy_read_timeout %ds;" % read_timeout, 1),
    ] + list(extra_subs))


class Setup:
    """Relay (trusting 127.0.0.1, the nginx in front), nginx from the docs on
    127.0.0.1 and [::1], server 'foo' and client 'alice' through
    https://127.0.0.1:PORT/ptth with --ca-file."""

    def __init__(self, ctx, relay_args=(), trusted=("127.0.0.1/32",), listen_timeout=2, name="nginx",
                 listen_options="ssl http2", extra_subs=()):
        self.ctx = ctx
        self.ca = kit.CA(os.path.join(ctx.dir, name + "-tls"))
        self.skey, self.ckey = pt.Key(), pt.Key()
        self.skey.path = self.skey.write(ctx.path(name + "-server.key"))
        self.ckey.path = self.ckey.write(ctx.path(name + "-client.key"))
        self.admin = pt.Key()
        args = ["--listen-timeout", str(listen_timeout)] + list(relay_args)
        for c in trusted:
            args += ["--trusted-proxy", c]
        self.relay = ctx.relay(servers={"foo": self.skey}, clients={"alice": self.ckey}, allow=["alice=foo/*"],
                               args=args, admin=self.admin)
        self.port4 = pt.free_port()
        self.port6 = kit.free_port6()
        self.nginx = kit.Nginx(ctx, docs_site(self.relay.port, self.port4, self.port6, self.ca,
                                              listen_options=listen_options, extra_subs=extra_subs), [self.port4], name=name)
        kit.wait_port(self.port6, host="::1", proc=self.nginx.proc)
        scheme = "https" if "ssl" in listen_options else "http"
        self.url = "%s://127.0.0.1:%d/ptth" % (scheme, self.port4)
        self.url6 = "%s://[::1]:%d/ptth" % (scheme, self.port6)

    def server(self, maps, args=(), url=None):
        s = self.ctx.server(url or self.url, "foo", self.skey, maps, args=["--ca-file", self.ca.ca_cert] + list(args))
        self.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
        return s

    def proxy(self, port, url=None, args=()):
        return self.ctx.proxy(url or self.url, self.ckey, "foo", port, args=["--ca-file", self.ca.ca_cert] + list(args))


def echo_backend(ctx):
    b = pt.EchoServer()
    ctx.cleanups.append(b.close)
    return b


def echo_check(port, payload):
    s = pt.connect(port, timeout=20)
    try:
        s.sendall(payload)
        got = pt.recv_exactly(s, len(payload), timeout=20)
        s.shutdown(socket.SHUT_WR)
        rest = pt.recv_until_eof(s, timeout=20)
        return got + rest
    finally:
        s.close()


@t.test
def tunnels_through_the_ptth_prefix_over_tls(ctx):
    st = Setup(ctx)
    echo = echo_backend(ctx)
    srv = st.server(["echo=%d" % echo.port])
    px = st.proxy("echo")
    for size in (1, 1000, 300000, 2 * 1024 * 1024 + 3):
        data = os.urandom(size)
        assert echo_check(px.port, data) == data, "echo of %d bytes differs" % size
    # every request went through nginx under /ptth/, and reached the relay
    # without the prefix
    # the tunnels themselves took the upgraded path: connect and accept on
    # HTTP/1.1 connections of their own, answered 101, no chunks
    access = st.nginx.wait_access([
        r'"POST /ptth/v1/servers/foo/listen HTTP/2\.0" 20[04]',
        r'"POST /ptth/v1/servers/foo/ports/echo/connect HTTP/1\.1" 101',
        r'"POST /ptth/v1/servers/foo/conns/[A-Za-z0-9_-]+/accept HTTP/1\.1" 101'])
    assert not re.search(r'/upstream HTTP', access), access[-2000:]
    # the relay logs a tunnel's end once both legs are closed, which can be a
    # moment after the client saw its EOF
    pt.wait_until("4 tunnel_end lines", lambda: st.relay.count(r"event=tunnel_end [^\n]*reason=fin") >= 4)
    assert st.relay.count(r"event=tunnel_end [^\n]*reason=fin") == 4, st.relay.log()[-3000:]
    # /ptth and /ptth/healthz
    r = kit.http_get("https://127.0.0.1:%d/ptth/healthz" % st.port4, context=ssl_ctx(st.ca))
    assert r.status == 200 and r.body == b"ok\n", (r.status, r.body)
    r = pt.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--cacert", st.ca.ca_cert,
                "https://127.0.0.1:%d/ptth" % st.port4])
    assert r.stdout == "301 https://127.0.0.1:%d/ptth/" % st.port4, (r.stdout, r.stderr)
    # without --ca-file the terminators refuse the test CA's certificate
    bad = ctx.proxy(st.url, st.ckey, "foo", "echo")
    s = pt.connect(bad.port)
    pt.wait_closed(s, timeout=15)
    s.close()
    bad.wait_for(r"event=connect_failed [^\n]*(certificate|SSL)", timeout=15)
    assert srv.alive()


@t.test
def an_http1_only_front_makes_the_terminators_use_http1(ctx):
    """nginx without http2, over TLS (ALPN offers http/1.1 only) and in
    cleartext (an HTTP/1.1 400 answers the HTTP/2 preface): the terminators'
    own HTTP/2 client sees it before sending any request and hands everything
    to libcurl, which speaks HTTP/1.1; tunnels work the same."""
    for options in ("ssl", ""):
        st = Setup(ctx, name="h1" + options, listen_options=options)
        echo = echo_backend(ctx)
        st.server(["echo=%d" % echo.port])
        px = st.proxy("echo")
        for size in (1, 300000):
            data = os.urandom(size)
            assert echo_check(px.port, data) == data, "echo of %d bytes differs (%r)" % (size, options)
        access = st.nginx.wait_access([
            r'"POST /ptth/v1/servers/foo/listen HTTP/1\.1" 20[04]',
            r'"POST /ptth/v1/servers/foo/ports/echo/connect HTTP/1\.1" 101'])
        # in cleartext the server's preface (its listens) got nginx's 400, and
        # nothing else went as HTTP/2; the proxy sent none: its tunnels went
        # on upgraded HTTP/1.1 legs, it had nothing else to ask
        prefaces = len(re.findall(r'"PRI \* HTTP/2\.0" 400 ', access))
        assert prefaces == (0 if options else 1), access[-2000:]
        assert not re.search(r'"POST [^"]* HTTP/2\.0"', access), access[-2000:]
        print("# nginx listen options %r: tunnels over HTTP/1.1" % options)


def ssl_ctx(ca):
    import ssl
    c = ssl.create_default_context(cafile=ca.ca_cert)
    return c


@t.test
def fifty_tunnels_at_once(ctx):
    """50 tunnels open at the same time (the relay's status, read through
    nginx with the admin key, shows all 50), each carrying its own bytes."""
    st = Setup(ctx)
    echo = echo_backend(ctx)
    st.server(["echo=%d" % echo.port], args=["--listens", "8"])
    px = st.proxy("echo")
    n = 50
    results = [None] * n
    start, echoed, release = threading.Barrier(n), threading.Barrier(n + 1), threading.Barrier(n + 1)

    def one(i):
        try:
            s = pt.connect(px.port, timeout=60)
            start.wait(timeout=30)
            payload = (b"%03d|" % i) * 5000 + os.urandom(20000)
            s.sendall(payload)
            got = pt.recv_exactly(s, len(payload), timeout=60)
            echoed.wait(timeout=60)
            release.wait(timeout=60)
            s.shutdown(socket.SHUT_WR)
            tail = pt.recv_until_eof(s, timeout=60)
            s.close()
            results[i] = got == payload and tail == b""
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    try:
        echoed.wait(timeout=90)
        r = kit.http_get(st.url + "/v1/status", bearer=st.admin.text, context=ssl_ctx(st.ca))
        assert r.status == 200, (r.status, r.body[:200])
        status = r.json()
    finally:
        try:
            release.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        for th in threads:
            th.join(timeout=120)
    bad = [(i, r) for i, r in enumerate(results) if r is not True]
    assert not bad, bad[:5]
    open_now = [x for x in status["tunnels"] if x["state"] == "open"]
    assert len(open_now) == n, (len(open_now), status["relay"])
    # upgraded: the relay counts frame headers too (4 bytes per DATA frame)
    assert all(40000 <= x["bytes_up"] <= 40400 and 40000 <= x["bytes_down"] <= 40400 for x in open_now), open_now[:3]
    # behind nginx, the addresses come from X-Forwarded-For (no port)
    assert all(x["addr"] == "127.0.0.1:0" for x in open_now), open_now[:3]
    deadline = time.monotonic() + 20
    while st.relay.count(r"event=tunnel_end [^\n]*reason=fin") < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert st.relay.count(r"event=tunnel_end [^\n]*reason=fin") == n, st.relay.log()[-3000:]
    assert "upstream timed out" not in st.nginx.errors()


def idle_tunnel_then_echo(ctx, relay_args):
    """A tunnel to an echo through nginx, idle for 3 proxy_read_timeouts
    between two sends: (setup, proxy, what came back after the idle time)."""
    st = Setup(ctx, relay_args=relay_args)
    echo = echo_backend(ctx)
    st.server(["echo=%d" % echo.port])
    px = st.proxy("echo")
    return st, px, idle_then_echo(st, px, 3 * READ_TIMEOUT)


def idle_then_echo(st, px, idle):
    s = pt.connect(px.port, timeout=20)
    s.sendall(b"before|")
    assert pt.recv_exactly(s, 7) == b"before|"
    time.sleep(idle)
    try:
        s.sendall(b"after")
        got = pt.recv_exactly(s, 5, timeout=10)
    except (OSError, AssertionError) as e:
        got = e
    s.close()
    return got


# docs/nginx.conf without its two upgrade lines: what an nginx set up for
# the chunked path only does
NO_UPGRADE = [(r"^\s*proxy_set_header Upgrade \$http_upgrade;\n", "", 1),
              (r"proxy_set_header Connection \$ptth_connection;", 'proxy_set_header Connection "";', 1)]


def tunnel_end(relay, pattern=""):
    line = relay.wait_for(r"event=tunnel_end [^\n]*%s[^\n]*" % pattern, timeout=15).group(0)
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


@t.test
def the_docs_settings_pass_the_upgraded_path(ctx):
    """With docs/nginx.conf as it is, connect and accept are upgraded through
    nginx (TLS at nginx, HTTP/1.1 to the relay) and the relay joins them."""
    st = Setup(ctx)
    echo = echo_backend(ctx)
    srv = st.server(["echo=%d" % echo.port])
    px = st.proxy("echo")
    payload = os.urandom(4 << 20)
    assert echo_check(px.port, payload) == payload
    end = tunnel_end(st.relay)
    assert end["path"] == "upgrade" and end["reason"] == "fin", end
    assert "upgrade_unavailable" not in px.log() + srv.log(), px.log()[-2000:]


@t.test
def without_the_upgrade_settings_the_terminators_fall_back(ctx):
    """An nginx that drops Upgrade (the two lines missing): the relay answers
    the framed stream, the same tunnels work on the chunked path, and each
    terminator says once why."""
    st = Setup(ctx, extra_subs=NO_UPGRADE)
    echo = echo_backend(ctx)
    srv = st.server(["echo=%d" % echo.port])
    px = st.proxy("echo")
    for _ in range(3):
        payload = os.urandom(1 << 20)
        assert echo_check(px.port, payload) == payload
    deadline = time.monotonic() + 15
    while st.relay.count(r"event=tunnel_end [^\n]*reason=fin[^\n]*path=chunks") < 3:
        assert time.monotonic() < deadline, st.relay.log()[-3000:]
        time.sleep(0.05)
    assert st.relay.count(r"path=upgrade") == 0, st.relay.log()[-3000:]
    for p in (px, srv):
        assert p.count(r"event=upgrade_unavailable") == 1, p.log()[-3000:]
    assert not re.search(r"event=tunnel_end [^\n]*reason=\"(?!fin)", px.log()), px.log()[-3000:]


@t.test
def idle_tunnel_outlives_proxy_read_timeout_with_heartbeats(ctx):
    st, px, got = idle_tunnel_then_echo(ctx, ["--heartbeat", "1"])
    assert got == b"after", got
    st.relay.wait_for(r"event=tunnel_end [^\n]*reason=fin", timeout=15)
    assert "upstream timed out" not in st.nginx.errors(), st.nginx.errors()[-2000:]


@t.test
def idle_tunnel_dies_at_proxy_read_timeout_without_heartbeats(ctx):
    """The control for the test above: with heartbeats rarer than nginx's
    proxy_read_timeout, nginx cuts the idle framed streams and the tunnel
    ends; so the timeout really is in force in these tests. Without
    resumption (--resume-grace 0): a resumable tunnel comes back (the test
    below)."""
    st, px, got = idle_tunnel_then_echo(ctx, ["--heartbeat", "30", "--resume-grace", "0"])
    assert got != b"after", "the idle tunnel survived without heartbeats"
    # nginx ends both upgraded connections cleanly: the relay cannot tell
    # that from an end (docs/protocol.md), the terminators can
    st.relay.wait_for(r"event=tunnel_end ", timeout=15)
    px.wait_for(r'event=tunnel_end [^\n]*reason="relay ended the stream without FIN"', timeout=15)
    assert "upstream timed out" in st.nginx.errors(), st.nginx.errors()[-2000:]


@t.test
def idle_tunnel_resumes_after_proxy_read_timeout(ctx):
    """The same cut with resumption on (the default): nginx ends both
    connections cleanly, the relay logs an end (it cannot tell), the
    terminators, which saw no FIN frame, resume through nginx, and the
    tunnel carries bytes again."""
    st, px, got = idle_tunnel_then_echo(ctx, ["--heartbeat", "30"])
    assert got == b"after", got
    st.relay.wait_for(r"event=tunnel_resumed ", timeout=15)
    px.wait_for(r"event=tunnel_resumed ", timeout=15)
    assert "upstream timed out" in st.nginx.errors(), st.nginx.errors()[-2000:]


def kill_proxy_under_a_tunnel(ctx, grace):
    """A tunnel through nginx with one round trip, then kill -9 of its
    ptth_proxy; returns (setup, server, client socket, when killed)."""
    st = Setup(ctx, relay_args=["--heartbeat", "30", "--resume-grace", str(grace)])
    b = pt.EchoServer()
    ctx.cleanups.append(b.close)
    srv = st.server(["echo=%d" % b.port])
    px = st.proxy("echo")
    s = pt.connect(px.port)
    s.sendall(b"ping")
    assert pt.recv_exactly(s, 4) == b"ping"
    started = time.monotonic()
    px.kill9()
    return st, srv, s, started


@t.test
def a_dead_proxy_ends_its_tunnel_behind_nginx(ctx):
    """kill -9 of ptth_proxy: nginx drops the requests of its connection,
    the relay sees its HTTP/1.1 upstream connections close and ends the
    tunnel, the server closes the backend connection (seconds, not the
    heartbeat or a timeout). Without resumption: nginx closes both of the
    tunnel's connections cleanly, which a resumable tunnel takes for a cut
    it resumes (docs/protocol.md), so it would end only at the grace (the
    test below)."""
    st, srv, s, started = kill_proxy_under_a_tunnel(ctx, 0)
    # (nginx turns the reset into clean ends of its upstream connections,
    # so the relay's reason may be fin; the server knows better)
    st.relay.wait_for(r"event=tunnel_end ", timeout=10)
    srv.wait_for(r'event=tunnel_end [^\n]*reason="(?!fin)', timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 8, elapsed
    s.close()


@t.test
def a_dead_proxy_ends_its_resumable_tunnel_at_the_grace_behind_nginx(ctx):
    """kill -9 of ptth_proxy with resumption on: nginx ends both of the
    tunnel's connections cleanly, the server resumes and waits for a peer
    that does not come; at the relay's --resume-grace (2 s here) the tunnel
    ends with resume_timeout and the backend connection is reset."""
    st, srv, s, started = kill_proxy_under_a_tunnel(ctx, 2)
    srv.wait_for(r'event=tunnel_end [^\n]*reason="resume_timeout"', timeout=10)
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 6, elapsed
    s.close()


def pp_backend(ctx):
    """An nginx that listens with proxy_protocol on a loopback port, answers
    each request with $proxy_protocol_addr and logs it."""
    port = pt.free_port()
    d = os.path.join(ctx.dir, "ppnginx")
    site = ("log_format pp '$proxy_protocol_addr $remote_addr \"$request\"';\n"
            "server {\n    listen 127.0.0.1:%d proxy_protocol;\n    access_log %s/pp.log pp;\n"
            "    location / { default_type text/plain; return 200 \"client=$proxy_protocol_addr\\n\"; }\n}\n") % (port, d)
    n = kit.Nginx(ctx, site, [port], name="ppnginx")
    n.pp_log = os.path.join(d, "pp.log")
    n.port = port
    return n


def http_through(port, path="/"):
    s = pt.connect(port, timeout=20)
    try:
        s.sendall(b"GET %s HTTP/1.0\r\nHost: backend\r\n\r\n" % path.encode())
        return pt.recv_until_eof(s, timeout=20)
    finally:
        s.close()


def read_pp_log(n, count, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(n.pp_log) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@t.test
def backend_sees_the_real_client_address_behind_nginx(ctx):
    """The client reaches nginx over [::1]; nginx reaches the relay from
    127.0.0.1 (trusted) with X-Forwarded-For; the relay hands [::1] to the
    server in PTTH-Client-Addr; the server's PROXY v2 header gives it to an
    nginx backend that logs $proxy_protocol_addr. A client's own
    X-Forwarded-For does not fool it, and the backend's $remote_addr (the
    server's own connection) is 127.0.0.1."""
    st = Setup(ctx)
    pp = pp_backend(ctx)
    srv = st.server(["web=%d" % pp.port], args=["--proxy-protocol"])
    px = st.proxy("web", url=st.url6)
    out = http_through(px.port, "/first")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"client=::1\n"), out
    lines = read_pp_log(pp, 1)
    assert lines == ['::1 127.0.0.1 "GET /first HTTP/1.0"'], lines
    srv.wait_for(r"event=tunnel_open [^\n]*client_addr=\[::1\]:0")
    # a client that sends its own X-Forwarded-For through nginx: nginx appends
    # the real peer, the relay takes the rightmost untrusted entry
    # a connect made with curl and a forged X-Forwarded-For
    cid = forged_connect(ctx, st, url=st.url6)
    srv.wait_for(r"event=tunnel_open conn=%s [^\n]*client_addr=\[::1\]:0" % re.escape(cid))
    lines = read_pp_log(pp, 2)
    assert len(lines) == 2 and lines[1].startswith("::1 127.0.0.1 "), lines
    assert "203.0.113.9" not in srv.log()


def forged_connect(ctx, st, url):
    """Opens a tunnel with curl, sending X-Forwarded-For: 203.0.113.9 and one
    HTTP request as the first upstream chunk; returns the connection id."""
    hdrs = os.path.join(ctx.dir, "connect.hdrs")
    body = os.path.join(ctx.dir, "connect.body")
    argv = ["curl", "-sS", "--cacert", st.ca.ca_cert, "-X", "POST", "-H", "Authorization: Bearer " + st.ckey.text,
            "-H", "X-Forwarded-For: 203.0.113.9", "-D", hdrs, "-o", body, "--max-time", "8",
            url + "/v1/servers/foo/ports/web/connect"]
    p = ctx.start(argv, name="curl-connect")
    deadline = time.monotonic() + 15
    cid = None
    while time.monotonic() < deadline and cid is None:
        try:
            with open(hdrs) as f:
                m = re.search(r"(?im)^ptth-conn: (\S+)", f.read())
                cid = m.group(1) if m else None
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    assert cid, "no PTTH-Conn from the connect"
    req = b"GET /forged HTTP/1.0\r\n\r\n"
    r = pt.run(["curl", "-sS", "--cacert", st.ca.ca_cert, "-X", "POST", "-H", "Authorization: Bearer " + st.ckey.text,
                "-H", "PTTH-Seq: 0", "--data-binary", "@-", "-o", "/dev/null", "-w", "%{http_code}",
                url + "/v1/servers/foo/conns/%s/upstream" % cid], input=req.decode())
    assert r.stdout == "204", (r.stdout, r.stderr)
    r = pt.run(["curl", "-sS", "--cacert", st.ca.ca_cert, "-X", "POST", "-H", "Authorization: Bearer " + st.ckey.text,
                "-H", "PTTH-Seq: 1", "-H", "PTTH-Fin: 1", "-o", "/dev/null", "-w", "%{http_code}",
                url + "/v1/servers/foo/conns/%s/upstream" % cid])
    assert r.stdout == "204", (r.stdout, r.stderr)
    p.popen.wait(timeout=15)
    p.stopped = True
    p.log_file.close()
    return cid


@t.test
def forwarded_for_ignored_from_untrusted_peers(ctx):
    """Straight to the relay from 127.0.0.3, which is not a trusted proxy:
    its X-Forwarded-For is ignored and the server sees 127.0.0.3. And a relay
    that trusts nobody sees nginx's own address behind nginx."""
    st = Setup(ctx)
    echo = echo_backend(ctx)
    srv = st.server(["echo=%d" % echo.port])
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.settimeout(15)
    s.connect(("127.0.0.1", st.relay.port))
    s.sendall(("POST /v1/servers/foo/ports/echo/connect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "X-Forwarded-For: 203.0.113.9\r\nContent-Length: 0\r\n\r\n" % st.ckey.text).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        assert b, head
        head += b
    assert head.startswith(b"HTTP/1.1 200"), head
    cid = re.search(rb"(?i)ptth-conn: (\S+)", head).group(1).decode()
    srv.wait_for(r"event=tunnel_open conn=%s [^\n]*client_addr=127\.0\.0\.3:%d" % (cid, s.getsockname()[1]))
    s.close()
    st.relay.wait_for(r"event=tunnel_end id=%s [^\n]*addr=127\.0\.0\.3:" % cid)

    # a second relay behind the same kind of nginx, trusting nobody
    st2 = Setup(ctx, trusted=(), name="nginx2")
    srv2 = st2.server(["echo=%d" % echo.port])
    px = st2.proxy("echo", url=st2.url6)
    assert echo_check(px.port, b"hi") == b"hi"
    m = srv2.wait_for(r"event=tunnel_open [^\n]*client_addr=(\S+)")
    assert m.group(1).startswith("127.0.0.1:") and not m.group(1).endswith(":0"), m.group(0)


t.run()
