#!/usr/bin/env python3
"""The relay's operator views (SPEC §4 Operations): /metrics in Prometheus
text format (parsed strictly, values checked against the tunnels the test
made), /v1/status JSON and the / HTML page with the same content, the admin
key as Bearer or Basic password (401 with WWW-Authenticate: Basic for a
browser), hostile reasons escaped in JSON and HTML, and the page loaded in
headless Chromium (DOM checked, screenshot kept in
$PTTH_BUILD_DIR/test-artifacts/status.png)."""

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "relay"))

import opskit as kit  # noqa: E402
import promtext  # noqa: E402
import relayclient as rc  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()

HOSTILE = (b'<script>alert("x")</script> & \'q\' <img src=x onerror=alert(1)> \\ \xff\xfe \xc0\xaf '
           b'\xed\xa0\x80 \xe2\x82 end')
# what the relay must show: the bytes that are not valid UTF-8 (0xff, 0xfe,
# the overlong 0xc0 0xaf, the surrogate 0xed 0xa0 0x80, the cut 0xe2 0x82)
# each become U+FFFD, one per byte
HOSTILE_TEXT = ('<script>alert("x")</script> & \'q\' <img src=x onerror=alert(1)> \\ \ufffd\ufffd \ufffd\ufffd '
                '\ufffd\ufffd\ufffd \ufffd\ufffd end')


class World:
    """A relay with an admin key, ptth_server 'foo' (ports echo and down,
    down's backend refuses), a raw server 'evil' driven by the test, and
    ptth_proxy forwards for client alice. The terminators take the chunked
    path without resumption: the counts checked here are payload bytes,
    which the relay knows exactly only there (on the upgraded path, and on
    a resumable chunked tunnel whose chunks carry end-to-end frames, it
    counts frame bytes too)."""

    def __init__(self, ctx, relay_args=()):
        self.ctx = ctx
        self.admin = pt.Key()
        self.skey, self.ekey, self.ckey = ctx.key("foo"), ctx.key("evil"), ctx.key("alice")
        self.relay = ctx.relay(servers={"foo": self.skey, "evil": self.ekey}, clients={"alice": self.ckey},
                               allow=["alice=*/*"], admin=self.admin, args=list(relay_args))
        self.echo = pt.EchoServer()
        ctx.cleanups.append(self.echo.close)
        closed = pt.free_port()
        self.server = ctx.server(self.relay.url, "foo", self.skey, ["echo=%d" % self.echo.port, "down=%d" % closed],
                                 args=["--listens", "3", "--data-path", "chunks", "--resume-buffer", "0"])
        self.relay.wait_for(r"event=server_online server=foo\b", timeout=20)
        self.proxy = ctx.proxy(self.relay.url, self.ckey,
                               args=["--forward", "0=foo/echo", "--forward", "0=foo/down", "--data-path", "chunks", "--resume-buffer", "0"], wait=False)
        ports = [int(m.group(1)) for m in re.finditer(r"listening on \S+:(\d+)", wait_lines(self.proxy, 2))]
        self.echo_port, self.down_port = ports
        self.api = rc.Api(self.relay.port)

    def get(self, path, **kw):
        return kit.http_get(self.relay.url + path, bearer=kw.pop("bearer", self.admin.text), **kw)

    def listeners_settled(self, n=3, timeout=10):
        """Waits until foo holds n listens (the server sends them again after
        each answer)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.get("/v1/status").json()
            foo = [s for s in st["servers"] if s["name"] == "foo"]
            if foo and foo[0]["listens"] == n:
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.05)


def wait_lines(px, n, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        text = px.log()
        if len(re.findall(r"listening on \S+:\d+", text)) >= n:
            return text
        assert px.alive() and time.monotonic() < deadline, text
        time.sleep(0.05)


def echo_once(port, data):
    s = pt.connect(port)
    s.sendall(data)
    got = pt.recv_exactly(s, len(data))
    s.shutdown(socket.SHUT_WR)
    assert pt.recv_until_eof(s) == b""
    s.close()
    return got


def open_held_tunnel(w, data=b"held open|"):
    """An echo tunnel that stays open (no FIN) with len(data) bytes each way."""
    s = pt.connect(w.echo_port)
    s.sendall(data)
    assert pt.recv_exactly(s, len(data)) == data
    return s


def evil_reject(w, reason_bytes):
    """The raw server 'evil' takes a connect from alice and rejects it with
    reason_bytes in PTTH-Reason; returns the connection id."""
    lc = w.api.start(w.api.listen_path("evil"), w.ekey, {"PTTH-Ports": "web"})
    time.sleep(0.05)
    cc = w.api.start(w.api.connect_path("evil", "web"), w.ckey)
    lr = lc.read_head()
    lc.close()
    assert lr.status == 200, lr
    cid = lr.headers["ptth-conn"]
    s = socket.create_connection(("127.0.0.1", w.relay.port), timeout=10)
    s.sendall(b"POST /v1/servers/evil/conns/" + cid.encode() + b"/reject HTTP/1.1\r\nHost: relay\r\n"
              b"Authorization: Bearer " + w.ekey.text.encode() + b"\r\nPTTH-Reason: " + reason_bytes +
              b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    answer = pt.recv_until_eof(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    cr = cc.read_head()
    cc.close()
    assert cr.status == 502, cr
    return cid


def metrics(w):
    r = w.get("/metrics")
    assert r.status == 200, (r.status, r.body)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    text = r.body.decode("utf-8")
    return text, promtext.parse(text)


@t.test
def metrics_after_tunnels(ctx):
    w = World(ctx)
    sizes = [1, 1000, 70000, 300000]
    for n in sizes:
        data = os.urandom(n)
        assert echo_once(w.echo_port, data) == data
    # a tunnel to a backend that refuses: result backend
    s = pt.connect(w.down_port)
    pt.wait_closed(s)
    s.close()
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=down [^\n]*reason=backend")
    held = open_held_tunnel(w, b"x" * 1234)
    for _ in range(len(sizes)):
        w.relay.wait_for(r"event=tunnel_end [^\n]*port=echo [^\n]*reason=fin")
    deadline = time.monotonic() + 10
    while w.relay.count(r"event=tunnel_end [^\n]*port=echo [^\n]*reason=fin") < len(sizes):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    w.listeners_settled()
    text, fam = metrics(w)

    v = promtext.value
    total = sum(sizes)
    assert v(fam, "ptth_tunnels_open") == 1, text
    assert v(fam, "ptth_tunnels_current", state="open") == 1, text
    assert v(fam, "ptth_tunnels_current", state="await_listen") == 0, text
    assert v(fam, "ptth_tunnels_opened_total") == len(sizes) + 2, text
    assert v(fam, "ptth_tunnels_total", result="fin") == len(sizes), text
    assert v(fam, "ptth_tunnels_total", result="backend") == 1, text
    for r in ("rst", "idle", "timeout", "shutdown"):
        assert v(fam, "ptth_tunnels_total", result=r) == 0, (r, text)
    assert v(fam, "ptth_bytes_total", direction="up") == total + 1234, text
    assert v(fam, "ptth_bytes_total", direction="down") == total + 1234, text
    assert v(fam, "ptth_servers_online") == 1, text
    assert v(fam, "ptth_listens_outstanding") == 3, text
    assert v(fam, "ptth_server_online", server="foo") == 1, text
    assert v(fam, "ptth_server_listens", server="foo") == 3, text
    assert v(fam, "ptth_server_tunnels_open", server="foo") == 1, text
    assert v(fam, "ptth_port_tunnels_open", server="foo", port="echo") == 1, text
    assert v(fam, "ptth_port_tunnels_open", server="foo", port="down") == 0, text
    assert v(fam, "ptth_port_tunnels_total", server="foo", port="echo", result="fin") == len(sizes), text
    assert v(fam, "ptth_port_tunnels_total", server="foo", port="down", result="backend") == 1, text
    assert v(fam, "ptth_port_bytes_total", server="foo", port="echo", direction="up") == total + 1234, text
    assert v(fam, "ptth_port_bytes_total", server="foo", port="down", direction="down") == 0, text
    assert promtext.series(fam, "ptth_relay_info")[0][0]["version"], text
    assert abs(v(fam, "ptth_relay_start_time_seconds") - time.time()) < 120, text
    # the per-port series add up to the totals
    for d in ("up", "down"):
        per = sum(x for labels, x in promtext.series(fam, "ptth_port_bytes_total") if labels["direction"] == d)
        assert per == v(fam, "ptth_bytes_total", direction=d), (d, text)
    for name in ("ptth_tunnels_total", "ptth_port_tunnels_total", "ptth_bytes_total"):
        assert fam[name].type == "counter", name
    for name in ("ptth_tunnels_open", "ptth_servers_online", "ptth_listens_outstanding", "ptth_port_tunnels_open"):
        assert fam[name].type == "gauge", name

    # the tunnel ends: the open gauges drop, its bytes stay counted
    held.shutdown(socket.SHUT_WR)
    assert pt.recv_until_eof(held) == b""
    held.close()
    deadline = time.monotonic() + 10
    while True:
        text, fam = metrics(w)
        if v(fam, "ptth_tunnels_open") == 0:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert v(fam, "ptth_port_tunnels_open", server="foo", port="echo") == 0, text
    assert v(fam, "ptth_port_tunnels_total", server="foo", port="echo", result="fin") == len(sizes) + 1, text
    assert v(fam, "ptth_port_bytes_total", server="foo", port="echo", direction="down") == total + 1234, text

    # a second, independent parser where Debian's python3-prometheus-client is
    # installed (it lives in the system python)
    if os.path.exists("/usr/bin/python3"):
        check = ("import sys\ntry:\n from prometheus_client.parser import text_string_to_metric_families as p\n"
                 "except ImportError:\n print('absent'); sys.exit(0)\n"
                 "n=sum(len(f.samples) for f in p(sys.stdin.read()))\nprint(n)\n")
        r = subprocess.run(["/usr/bin/python3", "-c", check], input=text, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        if r.stdout.strip() != "absent":
            assert int(r.stdout) == sum(len(f.samples) for f in fam.values()), (r.stdout, text)


@t.test
def admin_key_as_bearer_or_basic(ctx):
    w = World(ctx)
    for path in ("/metrics", "/v1/status", "/"):
        r = w.get(path, bearer=None)
        assert r.status == 401, (path, r.status)
        assert r.headers["WWW-Authenticate"].startswith("Basic realm="), r.headers
        assert w.get(path).status == 200, path
        r = kit.http_get(w.relay.url + path, basic=("anyone", w.admin.text))
        assert r.status == 200, (path, r.status)
        r = kit.http_get(w.relay.url + path, basic=("", w.admin.text))
        assert r.status == 200, (path, r.status)
        assert kit.http_get(w.relay.url + path, basic=("admin", pt.Key().text)).status == 401, path
        assert kit.http_get(w.relay.url + path, basic=("admin", "not a key")).status == 401, path
        assert kit.http_get(w.relay.url + path, bearer=pt.Key().text).status == 401, path
        # a client's or a server's key is known but is not the admin key
        assert kit.http_get(w.relay.url + path, bearer=w.ckey.text).status == 403, path
        assert kit.http_get(w.relay.url + path, basic=("x", w.skey.text)).status == 403, path
    # each refusal is one auth_failed line for fail2ban (docs/security.md)
    log = w.relay.log()
    for path in ("/metrics", "/v1/status", "/"):
        q = r'event=auth_failed addr=127\.0\.0\.1 reason=%s key=%s path="%s"'
        assert len(re.findall(q % ("no_key", "-", re.escape(path)), log)) == 2, (path, log[-3000:])
        assert len(re.findall(q % ("unknown_key", "[0-9a-f]{12}", re.escape(path)), log)) == 2, (path, log[-3000:])
        assert len(re.findall(q % ("not_allowed", w.ckey.hash[:12], re.escape(path)), log)) == 1, path
        assert len(re.findall(q % ("not_allowed", w.skey.hash[:12], re.escape(path)), log)) == 1, path
    assert "reason=" not in "".join(re.findall(r"[^\n]*auth_failed[^\n]*" + w.admin.hash[:12], log))
    r = w.get("/")
    assert r.headers["Content-Type"] == "text/html; charset=utf-8", r.headers
    assert "default-src 'none'" in r.headers["Content-Security-Policy"], r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff", r.headers
    assert w.get("/v1/status").headers["Content-Type"] == "application/json"
    assert w.get("/v1/status").headers["Cache-Control"] == "no-store"
    # HEAD: headers only
    c = rc.H1(w.relay.port)
    c.send("HEAD", "/metrics", {"Authorization": "Bearer " + w.admin.text})
    r = c.read_head()
    c.close()
    assert r.status == 200, r
    # a relay without --admin-key-hash: 404, whatever the key
    bare = ctx.relay()
    for path in ("/metrics", "/v1/status", "/"):
        assert kit.http_get(bare.url + path, bearer=w.admin.text).status == 404, path


def html_rows(page, table_id):
    """The rows (lists of cell texts, unescaped) of <table id=table_id>."""
    m = re.search(r'<table id="%s">(.*?)</table>' % table_id, page, re.S)
    assert m, table_id
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", m.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        if cells:
            rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells])
    return rows


@t.test
def status_json_and_html_show_the_same(ctx):
    w = World(ctx)
    data = os.urandom(50000)
    assert echo_once(w.echo_port, data) == data
    held = [open_held_tunnel(w, b"y" * (100 + i)) for i in range(3)]
    w.listeners_settled()
    st = w.get("/v1/status").json()
    page = w.get("/").body.decode("utf-8")

    relay = st["relay"]
    assert relay["servers_online"] == 1 and relay["tunnels_open"] == 3 and relay["listens"] == 3, relay
    assert relay["tunnels_ended"]["fin"] == 1 and relay["bytes_up"] == 50000 + 300 + 3, relay
    assert relay["version"] and relay["uptime_s"] >= 0, relay
    assert [s["name"] for s in st["servers"]] == ["foo"], st
    foo = st["servers"][0]
    assert foo["online"] is True and sorted(foo["ports"]) == ["down", "echo"] and foo["tunnels"] == 3, foo
    assert len(st["tunnels"]) == 3, st
    for i, tun in enumerate(st["tunnels"]):  # oldest first
        assert tun["server"] == "foo" and tun["port"] == "echo" and tun["client"] == "alice", tun
        assert tun["state"] == "open" and tun["bytes_up"] == 100 + i and tun["bytes_down"] == 100 + i, tun
        assert re.fullmatch(r"127\.0\.0\.1:\d+", tun["addr"]) and tun["age_ms"] >= 0, tun
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", tun["id"]), tun
    assert len(st["recent"]) == 1 and st["recent"][0]["reason"] == "fin", st["recent"]
    assert st["recent"][0]["bytes_up"] == 50000, st["recent"]

    servers = html_rows(page, "servers")
    assert servers == [["foo", "online", "down, echo", "3", "3"]] or \
        servers == [["foo", "online", "echo, down", "3", "3"]], servers
    tunnels = html_rows(page, "tunnels")
    assert [(r[0], r[1], r[2], r[3], r[4], r[-1]) for r in tunnels] == \
        [(x["server"], x["port"], x["client"], x["addr"], x["state"], x["id"]) for x in st["tunnels"]], tunnels
    assert [r[5] for r in tunnels] == ["%d B" % (100 + i) for i in range(3)], tunnels
    recent = html_rows(page, "recent")
    assert len(recent) == 1 and recent[0][:5] == ["foo", "echo", "alice", st["recent"][0]["addr"], "fin"], recent
    for label, value in (("servers-online", "1"), ("tunnels-open", "3"), ("listens", "3"), ("tunnels-ended", "1")):
        assert re.search(r'id="%s"><b>%s</b>' % (label, value), page), (label, page)
    assert '<a href="v1/status">' in page and '<a href="metrics">' in page  # relative: works under a prefix
    for s in held:
        s.close()


@t.test
def hostile_reasons_are_escaped(ctx):
    w = World(ctx)
    cid = evil_reject(w, HOSTILE)
    w.relay.wait_for(r"event=tunnel_end id=%s [^\n]*reason=backend" % cid)
    r = w.get("/v1/status")
    body = r.body
    body.decode("utf-8", "strict")  # valid UTF-8
    assert b"<" not in body and b">" not in body and b"&" not in body, body
    st = json.loads(body)
    ends = [e for e in st["recent"] if e["id"] == cid]
    assert len(ends) == 1 and ends[0]["reason"] == "backend", st["recent"]
    assert ends[0]["detail"] == HOSTILE_TEXT, (ends[0]["detail"], HOSTILE_TEXT)

    page = w.get("/").body
    text = page.decode("utf-8", "strict")
    assert "<script" not in text and "<img" not in text and "onerror=alert(1)>" not in text, text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;" in text, text
    detail = [row[5] for row in html_rows(text, "recent") if row[4] == "backend"]
    assert detail == [HOSTILE_TEXT], detail
    # every tag on the page is one the relay writes
    tags = set(re.findall(r"<([a-zA-Z0-9]+)", text))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "div", "b", "a", "table", "tr", "th",
                    "td"}, tags

    # the same through a close with a reason, from the client side
    lc = w.api.start(w.api.listen_path("evil"), w.ekey, {"PTTH-Ports": "web"})
    time.sleep(0.05)
    cc = w.api.start(w.api.connect_path("evil", "web"), w.ckey)
    lr = lc.read_head()
    lc.close()
    cid2 = lr.headers["ptth-conn"]
    s = socket.create_connection(("127.0.0.1", w.relay.port), timeout=10)
    s.sendall(b"POST /v1/servers/evil/conns/" + cid2.encode() + b"/close HTTP/1.1\r\nHost: relay\r\n"
              b"Authorization: Bearer " + w.ckey.text.encode() + b"\r\nPTTH-Reason: \"}]}, {\"x\": \xf0\x9f\x98\x80 </td>"
              b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    pt.recv_until_eof(s)
    s.close()
    cc.close()
    w.relay.wait_for(r"event=tunnel_end id=%s " % cid2)
    st = w.get("/v1/status").json()
    ends = [e for e in st["recent"] if e["id"] == cid2]
    assert len(ends) == 1 and ends[0]["detail"] == 'closed by client: "}]}, {"x": \U0001F600 </td>', ends
    page = w.get("/").body.decode("utf-8")
    assert "&quot;}]}, {&quot;x&quot;: \U0001F600 &lt;/td&gt;" in page, page
    text, fam = metrics(w)  # still parses
    assert promtext.value(fam, "ptth_port_tunnels_total", server="evil", port="web", result="backend") == 1, text


# ---- headless Chromium ----------------------------------------------------------

def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium(ctx, url, extra, timeout=90):
    profile = os.path.join(ctx.dir, "chromium-profile")
    os.makedirs(profile, exist_ok=True)
    argv = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=1280,900"] + extra + [url]
    env = dict(os.environ, HOME=ctx.dir, XDG_CONFIG_HOME=os.path.join(ctx.dir, "xdg-config"),
               XDG_CACHE_HOME=os.path.join(ctx.dir, "xdg-cache"))
    r = subprocess.run(argv, capture_output=True, timeout=timeout, env=env)
    return r


def chromium_test(fn):
    """Registers fn as a test that is skipped (TAP # SKIP) when no Chromium
    is installed."""
    if chromium_binary() is None:
        def skipped(ctx):
            raise pt.Skip("no chromium")
        skipped.__name__ = fn.__name__
        return t.test(skipped)
    return t.test(fn)


@chromium_test
def chromium_shows_servers_and_tunnels(ctx):
    w = World(ctx)
    data = os.urandom(20000)
    assert echo_once(w.echo_port, data) == data
    held = [open_held_tunnel(w, b"z" * 4321) for _ in range(2)]
    evil_reject(w, b'<script>document.title="pwned"</script> backend said \xff')
    w.listeners_settled()
    st = w.get("/v1/status").json()
    url = "http://admin:%s@127.0.0.1:%d/" % (w.admin.text, w.relay.port)
    r = chromium(ctx, url, ["--dump-dom", "--virtual-time-budget=3000"])
    dom = r.stdout.decode("utf-8", "replace")
    assert "<h1>ptth_relay</h1>" in dom, (r.returncode, dom[:500], r.stderr.decode("utf-8", "replace")[-3000:])
    assert "<title>ptth_relay status</title>" in dom, dom[:500]  # the reason's script did not run
    assert "<script" not in dom, dom
    rows = html_rows(dom, "tunnels")
    assert sorted(r[-1] for r in rows) == sorted(x["id"] for x in st["tunnels"]) and len(rows) == 2, rows
    assert all(r[5] == "4.2 KiB" for r in rows), rows
    assert [r[0] for r in html_rows(dom, "servers")] == ["evil", "foo"], dom
    recent = html_rows(dom, "recent")
    assert any(r[4] == "backend" and r[5] == '<script>document.title="pwned"</script> backend said \ufffd'
               for r in recent), recent
    assert any(r[4] == "fin" for r in recent), recent

    shot = os.path.join(kit.artifacts_dir(), "status.png")
    if os.path.exists(shot):
        os.unlink(shot)
    r = chromium(ctx, url, ["--screenshot=" + shot, "--hide-scrollbars"])
    assert os.path.exists(shot), (r.returncode, r.stderr.decode("utf-8", "replace")[-3000:])
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:16]
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 900), (width, height)
    assert len(png) > 20000, "a %d-byte screenshot is too plain to be the page" % len(png)
    print("# screenshot: %s" % shot, flush=True)
    for s in held:
        s.close()


t.run()
