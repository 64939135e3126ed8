#!/usr/bin/env python3
"""Relay hardening (SPEC §9.6, issue 12), with real processes: one address
cannot make the relay spin, starve it of descriptors, or flood its log.

- A relay under `prlimit --nofile=4096` flooded with 6,000 idle connections
  from 127.0.0.2 (no per-address cap, so the descriptor limit is hit): the
  relay pauses accepting instead of spinning (CPU from /proc/PID/stat), a
  tunnel opened before keeps moving data, and terminators started afterwards
  from 127.0.0.1 open new tunnels.
- A bad-key spray from 127.0.0.3: a handful of log lines per penalty, 429s
  with Retry-After after the limit, a tunnel from 127.0.0.1 unaffected, and
  the penalty ends on time.
- --max-connections-per-address at its boundary (HTTP/1, HTTP/2, TLS),
  --trusted-proxy peers with X-Forwarded-For (IPv6 clients grouped by /64),
  and a full per-address table.

Flood sources are other loopback addresses (127.0.0.2 and up), never
anything but loopback."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_INTEGRATION = os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(_HERE, "..", "..", "..")), "tests", "integration")
sys.path.insert(0, _INTEGRATION)
sys.path.insert(0, os.path.join(_INTEGRATION, "tunnel"))
sys.path.insert(0, _HERE)

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402
import tunnelkit as kit  # noqa: E402

t = pt.Tap()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_share(pid, seconds):
    """Share of one core a process used over the next `seconds`."""
    c0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - w0)


def metric(port, admin, name):
    r = rc.Api(port).get("/metrics", rc.bearer(admin))
    assert r.status == 200, r
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.body.decode(), re.M)
    assert m, (name, r.body[:3000])
    return int(m.group(1))


class Flood:
    """n idle TCP connections to 127.0.0.1:port from source address src
    (non-blocking connects: they wait in the relay's listen queue when it
    does not accept)."""

    def __init__(self, port, src, n):
        self.socks = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((src, 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def world_under_prlimit(ctx, nofile, relay_args):
    """tunnelkit's world (server 'foo', client 'alice') with the relay under
    prlimit --nofile=nofile (soft and hard, so its own raise has no room)."""
    w = kit.World(ctx, start_server=False, relay_port=pt.free_port(), relay_args=relay_args)
    w.relay.stop()
    argv = ["prlimit", "--nofile=%d" % nofile, pt.program("ptth_relay"), "--listen", "127.0.0.1:%d" % w.relay.port,
            "--server", "foo=%s" % w.skey.hash, "--client", "alice=%s" % w.ckey.hash, "--allow", "alice=foo/*"]
    argv += list(relay_args)
    p = ctx.start(argv, name="ptth_relay")
    p.wait_for(r"event=listening\S* addr=127\.0\.0\.1:%d" % w.relay.port)
    p.port, p.url = w.relay.port, w.relay.url
    w.relay = p
    return w


def echo_round(sock, payload, timeout=20.0):
    """Sends payload through an echo tunnel and reads it back; seconds taken."""
    t0 = time.monotonic()
    sock.sendall(payload)
    got = pt.recv_exactly(sock, len(payload), timeout=timeout)
    assert got == payload, "echo differs"
    return time.monotonic() - t0


@t.test
def descriptor_flood_pauses_accepting_instead_of_spinning(ctx):
    admin = pt.Key()
    w = world_under_prlimit(ctx, 4096, ["--max-connections-per-address", "0", "--admin-key-hash", admin.hash])
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w.server = w.start_server({"echo": "127.0.0.1:%d" % echo.port})
    proxy = w.proxy("echo")
    old = pt.connect(proxy.port)
    ctx.cleanups.append(old.close)
    payload = os.urandom(2 << 20)
    before = echo_round(old, payload)
    idle = cpu_share(w.relay.popen.pid, 1.0)

    flood = Flood(w.relay.port, "127.0.0.2", 6000)
    ctx.cleanups.append(flood.close)
    w.relay.wait_for(r"event=accept_paused reason=EMFILE", timeout=20)
    time.sleep(1.0)
    fds = len(os.listdir("/proc/%d/fd" % w.relay.popen.pid))
    share = cpu_share(w.relay.popen.pid, 3.0)
    print("# flooded: %d flood sockets, relay at %d of 4096 descriptors, CPU %.1f %% of a core (idle %.1f %%)"
          % (len(flood.socks), fds, 100 * share, 100 * idle))
    assert fds > 3900, fds
    assert share < 0.20, "relay CPU %.0f %% of a core while flooded" % (100 * share)

    # the tunnel opened before moves data as before
    during = echo_round(old, payload)
    print("# existing tunnel: 2 MiB echoed in %.0f ms before the flood, %.0f ms during it" % (before * 1000, during * 1000))
    assert during < max(10 * before, 2.0), (before, during)

    # a terminator started now, from 127.0.0.1, opens tunnels
    t0 = time.monotonic()
    late = w.proxy("echo")
    for i in range(3):
        c = pt.connect(late.port, timeout=30)
        try:
            echo_round(c, b"late tunnel %d\n" % i, timeout=30)
        finally:
            c.close()
    print("# a proxy started during the flood had 3 tunnels through within %.1f s" % (time.monotonic() - t0))

    # one line per pause, never two within the shortest pause
    stamps = [pt_time(line) for line in w.relay.log().splitlines() if "event=accept_paused" in line]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g >= 0.09 for g in gaps), gaps
    assert metric(w.relay.port, admin, "ptth_accept_pauses_total") == len(stamps)
    print("# %d accept_paused lines; shed %d unused flood connections, drained %d from the queue"
          % (len(stamps), metric(w.relay.port, admin, "ptth_connections_shed_total"),
             int(re.search(r'reason="out_of_descriptors"\} (\d+)',
                           rc.Api(w.relay.port).get("/metrics", rc.bearer(admin)).body.decode()).group(1))))
    flood.close()


def pt_time(line):
    """Seconds of a log line's UTC timestamp (within the day)."""
    m = re.match(r"\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z", line)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def bad_requests(port, src, key, seconds=None, count=None, path="/v1/servers/foo/listen"):
    """Requests with a key the relay does not know, over keep-alive
    connections from src, for `seconds` or `count` requests. Returns
    [(monotonic time, status, retry-after)]."""
    out = []
    deadline = time.monotonic() + seconds if seconds is not None else None
    conn = None
    while (deadline is None or time.monotonic() < deadline) and (count is None or len(out) < count):
        if conn is None:
            conn = rc.H1(port, source=src)
        r = conn.request("POST", path, dict(rc.bearer(key), **{"PTTH-Ports": "ssh"}))
        out.append((time.monotonic(), r.status, r.headers.get("retry-after")))
        if r.headers.get("connection", "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return out


@t.test
def bad_key_spray_is_penalised_with_few_log_lines(ctx):
    # a 2 s penalty: a 6 s spray then covers three penalties and what comes
    # between them, which is what a 10 s spray against 60 s would show once
    penalty, limit, spray_s = 2, 20, 6.0
    w = kit.World(ctx, start_server=False, relay_args=["--auth-fail-limit", str(limit), "--auth-fail-penalty", str(penalty)])
    echo = kit.Backend(kit.echo_handler)
    ctx.cleanups.append(echo.close)
    w.server = w.start_server({"echo": "127.0.0.1:%d" % echo.port})
    proxy = w.proxy("echo")
    tun = pt.connect(proxy.port)
    ctx.cleanups.append(tun.close)
    echo_round(tun, b"before\n")
    lines_before = len(w.relay.log().splitlines())

    # the legitimate tunnel keeps working while the spray runs, and new ones open
    legit = {"rounds": 0, "new": 0, "errors": []}

    def legit_traffic():
        end = time.monotonic() + spray_s
        while time.monotonic() < end:
            try:
                echo_round(tun, os.urandom(4096))
                legit["rounds"] += 1
                if legit["rounds"] % 50 == 0:
                    c = pt.connect(proxy.port)
                    echo_round(c, b"new\n")
                    c.close()
                    legit["new"] += 1
            except Exception as e:  # reported below
                legit["errors"].append(repr(e))
                return
            time.sleep(0.01)

    th = threading.Thread(target=legit_traffic)
    th.start()
    stranger = pt.Key()
    got = bad_requests(w.relay.port, "127.0.0.3", stranger, seconds=spray_s)
    th.join()
    log = w.relay.log().splitlines()[lines_before:]
    failed = [ln for ln in log if "event=auth_failed" in ln]
    penalties = [ln for ln in log if "event=auth_penalty" in ln]
    codes = {}
    for _, st, _ in got:
        codes[st] = codes.get(st, 0) + 1
    print("# spray: %d requests in %.0f s from 127.0.0.3 %s; relay wrote %d lines (%d auth_failed, %d auth_penalty); "
          "legit tunnel %d round trips, %d new tunnels" % (len(got), spray_s, codes, len(log), len(failed), len(penalties),
                                                            legit["rounds"], legit["new"]))
    assert not legit["errors"], legit["errors"]
    assert legit["rounds"] > 20 and legit["new"] >= 1, legit
    assert len(log) < 200, len(log)
    assert 2 <= len(penalties) <= 4, penalties
    assert all(re.search(r"addr=127\.0\.0\.3 failures=%d for_s=%d$" % (limit, penalty), ln) for ln in penalties), penalties
    assert all("addr=127.0.0.3 " in ln for ln in failed), failed[:3]
    assert len(failed) <= limit * len(penalties) + limit, len(failed)
    # the limit-th failure is answered 401; then 429 with Retry-After
    statuses = [st for _, st, _ in got]
    assert statuses[:limit] == [401] * limit, statuses[:limit + 1]
    assert statuses[limit] == 429, statuses[:limit + 1]
    assert all(ra is not None and 1 <= int(ra) <= penalty for _, st, ra in got if st == 429)

    # the auth_penalty filter of docs/security.md finds each penalty's address
    check_penalty_filter(ctx, w.relay, ["127.0.0.3"] * len(penalties))

    # the penalty ends on time: start one from a fresh address (127.0.0.3
    # may have failures of a new window counted) and watch it
    first = bad_requests(w.relay.port, "127.0.0.7", stranger, count=limit)
    assert [st for _, st, _ in first] == [401] * limit, first
    t0 = first[-1][0]
    time.sleep(penalty - 0.6)
    (_, st, ra), = bad_requests(w.relay.port, "127.0.0.7", stranger, count=1)
    assert st == 429 and ra == "1", (st, ra)
    time.sleep(max(0.0, t0 + penalty + 0.3 - time.monotonic()))
    (_, st, _), = bad_requests(w.relay.port, "127.0.0.7", stranger, count=1)
    assert st == 401, st  # its key is looked at again


def penalty_filter_from_docs():
    """The ini block after the line naming filter.d/ptth-relay-penalty.conf."""
    with open(os.path.join(pt.SOURCE_DIR, "docs", "security.md")) as f:
        text = f.read()
    m = re.search(r"filter\.d/ptth-relay-penalty\.conf[^\n]*\n+```ini\n(.*?)```", text, re.S)
    assert m, "docs/security.md shows no filter.d/ptth-relay-penalty.conf block"
    return m.group(1)


def check_penalty_filter(ctx, relay, want):
    """fail2ban-regex (a DEPS package of ptth-dev) with the documented filter
    on the relay's real log: the addresses of its auth_penalty lines, in
    order. Python's re stands in when fail2ban is not installed."""
    flt = penalty_filter_from_docs()
    rx = re.search(r"^failregex\s*=\s*(.*)$", flt, re.M).group(1).strip()
    rx = re.compile(rx.replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))
    got = []
    for line in relay.log().splitlines():
        m = rx.search(re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "", line))
        if m:
            got.append(m.group("host"))
    assert got == want, (got, want)
    tool = shutil.which("fail2ban-regex")
    if not tool:
        print("# fail2ban-regex not installed: the auth_penalty filter was checked in Python only")
        return
    path = ctx.path("ptth-relay-penalty.conf")
    with open(path, "w") as f:
        f.write(flt)
    p = subprocess.run([tool, "-o", "ip", relay.log_path, path], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == want, (p.stdout, p.stderr[-2000:])
    print("# fail2ban-regex matched %d auth_penalty lines with the filter of docs/security.md" % len(want))


def refused(port, src, timeout=5.0):
    """True when the relay closes (or resets) a new connection from src
    without an answer (the reset may even beat connect() back)."""
    try:
        sock = conn_from(port, src)
    except ConnectionResetError:
        return True
    sock.settimeout(timeout)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        return sock.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.close()


def healthz_on(sock):
    sock.settimeout(5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
    data = b""
    while b"ok\n" not in data:
        b = sock.recv(4096)
        assert b, "closed"
        data += b
    return data.startswith(b"HTTP/1.1 200")


def conn_from(port, src):
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))


@t.test
def per_address_cap_at_its_boundary(ctx):
    admin = pt.Key()
    relay = ctx.relay(admin=admin, args=["--max-connections-per-address", "5"])
    held = [conn_from(relay.port, "127.0.0.4") for _ in range(5)]
    for s in held:
        assert healthz_on(s)
    # the sixth, seventh, ... are closed at accept; one line for them all
    for _ in range(4):
        assert refused(relay.port, "127.0.0.4")
    # HTTP/2 from that address too
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--interface", "127.0.0.4", "--max-time", "5",
                        "http://127.0.0.1:%d/healthz" % relay.port], capture_output=True, timeout=15)
    assert p.returncode != 0, p
    # other addresses are not affected
    other = conn_from(relay.port, "127.0.0.5")
    assert healthz_on(other)
    assert rc.curl_h2("http://127.0.0.1:%d/healthz" % relay.port)[0] == 200
    # one of the five closes: exactly one more fits
    held.pop().close()
    time.sleep(0.2)
    again = conn_from(relay.port, "127.0.0.4")
    assert healthz_on(again)
    assert refused(relay.port, "127.0.0.4")
    lines = [ln for ln in relay.log().splitlines() if "event=conn_refused" in ln]
    assert len(lines) == 1, lines
    assert re.search(r"addr=127\.0\.0\.4 reason=max_connections_per_address open=5 limit=5 refused=1$", lines[0]), lines
    assert metric(relay.port, admin, 'ptth_connections_refused_total{reason="max_connections_per_address"}') == 6
    for s in held + [other, again]:
        s.close()


@t.test
def per_address_cap_comes_before_the_tls_handshake(ctx):
    cert, key = kit.make_cert(ctx)
    relay = ctx.relay(args=["--max-connections-per-address", "2", "--tls-cert", cert, "--tls-key", key])
    tls = ssl.create_default_context(cafile=cert)
    held = [tls.wrap_socket(conn_from(relay.port, "127.0.0.6"), server_hostname="127.0.0.1") for _ in range(2)]
    # no ServerHello for the third: the connection is gone before TLS
    try:
        third = tls.wrap_socket(conn_from(relay.port, "127.0.0.6"), server_hostname="127.0.0.1")
        third.close()
        raise AssertionError("a TLS handshake over the cap succeeded")
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
        pass
    for s in held:
        assert healthz_on(s)
        s.close()


@t.test
def trusted_proxy_clients_counted_by_forwarded_for(ctx):
    foo = pt.Key()
    relay = ctx.relay(servers={"foo": foo}, args=["--trusted-proxy", "127.0.0.1/32", "--max-connections-per-address", "2",
                                                  "--auth-fail-limit", "3", "--auth-fail-penalty", "30"])
    api = rc.Api(relay.port)
    # the proxy itself is not capped at accept
    many = [conn_from(relay.port, "127.0.0.1") for _ in range(6)]
    for s in many:
        assert healthz_on(s)

    def listen(xff):
        return api.start(api.listen_path("foo"), foo, {"PTTH-Ports": "ssh", "X-Forwarded-For": xff})

    # two held listens for client 198.51.100.1 through the proxy, the third is 429
    held = [listen("198.51.100.1"), listen("198.51.100.1")]
    time.sleep(0.2)
    third = listen("198.51.100.1")
    r = third.read_head()
    assert r.status == 429 and r.headers.get("retry-after") == "1", r
    third.close()
    other = listen("203.0.113.5, 198.51.100.2")  # the last hop is the client
    for c in held + [other]:
        try:
            r = c.read_head(timeout=0.3)
            raise AssertionError("a listen within the cap was answered at once: %r" % r)
        except socket.timeout:
            pass
    lines = [ln for ln in relay.log().splitlines() if "event=conn_refused" in ln]
    assert len(lines) == 1 and "addr=198.51.100.1 " in lines[0] and "via=proxy" in lines[0], lines
    for c in held + [other] + many:
        c.close()

    # failures are counted per client, IPv6 clients by /64 (one keep-alive
    # connection, as nginx would reuse: it is counted under the client of
    # its latest request)
    stranger = pt.Key()
    conn = rc.H1(relay.port)
    ctx.cleanups.append(conn.close)

    def fail(xff):
        h = dict(rc.bearer(stranger), **{"PTTH-Ports": "ssh"})
        if xff:
            h["X-Forwarded-For"] = xff
        return conn.request("POST", api.listen_path("foo"), h)

    assert [fail("2001:db8:1:2::1").status for _ in range(2)] == [401, 401]
    assert fail("2001:db8:1:2::2").status == 401  # the third failure of 2001:db8:1:2::/64
    r = fail("2001:db8:1:2::99")
    assert r.status == 429 and 1 <= int(r.headers["retry-after"]) <= 30, r
    assert fail("2001:db8:1:3::1").status == 401  # the next /64 is someone else
    assert fail("198.51.100.9").status == 401
    pen = [ln for ln in relay.log().splitlines() if "event=auth_penalty" in ln]
    assert len(pen) == 1 and re.search(r"addr=2001:db8:1:2::2 failures=3 for_s=30 prefix=2001:db8:1:2::/64$", pen[0]), pen
    # the proxy's own requests (no X-Forwarded-For) are never penalised
    for _ in range(5):
        assert fail(None).status == 401


@t.test
def full_address_table_fails_open(ctx):
    admin = pt.Key()
    relay = ctx.relay(admin=admin, args=["--address-table-size", "16", "--max-connections-per-address", "1"])
    # 127.0.0.1 holds one entry (the admin requests below come from it);
    # 15 more addresses with a connection open fill the table
    pinned = [conn_from(relay.port, "127.0.1.%d" % i) for i in range(1, 16)]
    for s in pinned:
        assert healthz_on(s)
    keep = rc.H1(relay.port)
    assert keep.request("GET", "/metrics", rc.bearer(admin)).status == 200
    # a 17th address: not tracked, so not capped (accepted twice)
    a, b = conn_from(relay.port, "127.0.2.1"), conn_from(relay.port, "127.0.2.1")
    assert healthz_on(a) and healthz_on(b)
    body = keep.request("GET", "/metrics", rc.bearer(admin)).body.decode()
    assert int(re.search(r"^ptth_address_table_full_total (\d+)$", body, re.M).group(1)) >= 2, body
    assert int(re.search(r"^ptth_address_table_entries (\d+)$", body, re.M).group(1)) == 16, body
    # the pinned ones keep their cap
    assert refused(relay.port, "127.0.1.3")
    # when one leaves, its room goes to the next newcomer, counted again
    pinned.pop(0).close()
    a.close()
    b.close()
    time.sleep(0.3)
    c = conn_from(relay.port, "127.0.2.2")
    assert healthz_on(c)
    assert refused(relay.port, "127.0.2.2")
    for s in pinned + [c]:
        s.close()
    keep.close()


@t.test
def limits_come_from_the_config_file_and_reload(ctx):
    conf = ctx.path("relay.conf")
    with open(conf, "w") as f:
        f.write("max-connections-per-address = 2\naddress-table-size = 64\n")
    relay = ctx.relay(args=["--config", conf])
    held = [conn_from(relay.port, "127.0.0.8") for _ in range(2)]
    for s in held:
        assert healthz_on(s)
    assert refused(relay.port, "127.0.0.8")
    with open(conf, "w") as f:
        f.write("max-connections-per-address = 3\naddress-table-size = 128\nauth-fail-limit = 5\n")
    relay.signal(1)  # SIGHUP
    relay.wait_for(r"event=reload ")
    assert relay.count(r"event=reload_ignored option=address-table-size") == 1, relay.log()[-2000:]
    third = conn_from(relay.port, "127.0.0.8")
    assert healthz_on(third)
    assert refused(relay.port, "127.0.0.8")
    for s in held + [third]:
        s.close()
    # bad values are configuration errors that name the option and the value
    for args, what in ((["--auth-fail-penalty", "0"], "auth-fail-penalty"), (["--address-table-size", "8"], "address-table-size"),
                       (["--max-connections-per-address", "-1"], "max-connections-per-address"),
                       (["--auth-fail-limit", "x"], "auth-fail-limit")):
        r = pt.run([pt.program("ptth_relay"), "--check-config"] + args)
        assert r.returncode == 2 and what in r.stderr, (args, r.returncode, r.stderr)


t.run()
