#!/usr/bin/env python3
"""ptth_relay as a program: bad input on the wire leaves it serving,
SIGTERM ends tunnels with RST `shutdown` and exits 0, SIGHUP reloads keys and
ACLs, options and --check-config, several and IPv6 listeners, TLS with ALPN."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptthtest as pt  # noqa: E402
import relayclient as rc  # noqa: E402
from relayclient import RST  # noqa: E402

t = pt.Tap()


def healthz(port, host="127.0.0.1"):
    c = rc.H1(port, host)
    try:
        r = c.request("GET", "/healthz")
        return r.status, r.body
    finally:
        c.close()


def raw(port, data, read=True, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionResetError):
            pass
        return out
    finally:
        s.close()


@t.test
def garbage_and_huge_headers_leave_it_serving(ctx):
    relay = ctx.relay()
    out = raw(relay.port, os.urandom(4096))
    assert out == b"" or out.startswith(b"HTTP/1.1 400"), out[:100]
    # h2o takes request heads up to about 400 KiB (8 KiB + 4 KiB per header,
    # 100 headers at most) and answers 400 beyond
    out = raw(relay.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 500000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:100]
    out = raw(relay.port, b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:100]
    # a long header within the limit is just a header
    out = raw(relay.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: " + b"a" * 100000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:100]
    # a broken HTTP/2 preface and frames
    out = raw(relay.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(2000))
    # a chunked body that lies
    out = raw(relay.port, b"POST /v1/servers/foo/listen HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:100]
    # a request line of garbage bytes, NULs, and a half request left open
    raw(relay.port, b"\x00\x01\x02 / HTTP/1.1\r\n\r\n")
    half = socket.create_connection(("127.0.0.1", relay.port))
    half.sendall(b"POST /v1/servers/foo/listen HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
    # weird but valid paths and methods
    c = rc.H1(relay.port)
    assert c.request("GET", "/v1/servers/" + "a" * 5000 + "/listen").status == 404
    assert c.request("POST", "/v1/servers/" + "a" * 5000 + "/listen").status == 404
    assert c.request("DELETE", "/healthz").status == 405
    assert c.request("GET", "/%00%ff").status == 404
    c.close()
    assert healthz(relay.port) == (200, b"ok\n")
    st, _, body = rc.curl_h2(relay.url + "/healthz")
    assert st == 200 and body == b"ok\n"
    half.close()
    assert relay.alive()


@t.test
def sigterm_ends_tunnels_with_rst_shutdown(ctx):
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"])
    api = rc.Api(relay.port)
    cid, up, down = rc.open_tunnel(api, "foo", "ssh", sk, ck)
    h2 = rc.CurlStream(relay.url + api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    lc = api.start(api.listen_path("foo"), sk, {"PTTH-Ports": "ssh"})
    held = api.start(api.conn_path("foo", cid, "upstream"), ck, {"PTTH-Seq": "3"}, b"held")
    time.sleep(0.3)
    relay.signal(signal.SIGTERM)
    for s in (up, down):
        f = s.next_non_ping()
        assert f == (RST, b"shutdown"), f
        assert s.next_non_ping() is None
    r = lc.read_head()
    assert r.status == 503, r
    r = held.read_head()
    assert r.status == 404, r
    assert h2.read_head() == 503
    h2.close()
    code = relay.stop()
    assert code == 0
    log = relay.log()
    assert re.search(r"event=tunnel_end id=%s .*reason=shutdown" % cid, log), log
    assert "event=stopped" in log, log


@t.test
def sigterm_with_idle_connections_exits_at_once(ctx):
    relay = ctx.relay()
    conns = [rc.H1(relay.port) for _ in range(5)]
    for c in conns[:3]:
        assert c.request("GET", "/healthz").status == 200  # keep-alive, idle
    started = time.monotonic()
    assert relay.stop() == 0
    assert time.monotonic() - started < 5
    for c in conns:
        c.close()


def write_config(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


@t.test
def sighup_reloads_keys_and_acls(ctx):
    foo, alice, bob = pt.Key(), pt.Key(), pt.Key()
    conf = ctx.path("relay.conf")
    write_config(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "client = alice=" + alice.hash,
                        "client = bob=" + bob.hash, "allow = alice=foo/*"])
    relay = ctx.start([pt.program("ptth_relay"), "--config", conf], name="ptth_relay")
    m = relay.wait_for(r"event=listening addr=127\.0\.0\.1:(\d+)")
    api = rc.Api(int(m.group(1)))
    cid_a, up_a, down_a = rc.open_tunnel(api, "foo", "ssh", foo, alice)
    lc = api.start(api.listen_path("foo"), foo, {"PTTH-Ports": "ssh"})
    time.sleep(0.1)
    assert api.post(api.connect_path("foo", "ssh"), bob).status == 403

    # bob gets access, alice's key is removed: her tunnel ends, bob can connect
    write_config(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "client = bob=" + bob.hash,
                        "allow = bob=*/ssh"])
    relay.signal(signal.SIGHUP)
    relay.wait_for(r"event=reload file=\S+ servers=1 clients=1 rules=1")
    f = up_a.next_non_ping()
    assert f[0] == RST and b"client key revoked" in f[1], f
    assert down_a.next_non_ping()[0] == RST
    assert api.post(api.connect_path("foo", "ssh"), alice).status == 401
    cc = api.start(api.connect_path("foo", "ssh"), bob)
    r = lc.read_head()
    assert r.status == 200 and r.headers["ptth-client"] == "bob", r
    cc.close()
    lc.close()

    # a broken file keeps the running configuration and logs every problem
    write_config(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "client = bob=nothex", "allow = ghost=foo/ssh",
                        "bogus = 1"])
    relay.signal(signal.SIGHUP)
    relay.wait_for(r"event=reload_failed file=\S+ problems=\d+")
    log = relay.log()
    assert re.search(r"event=reload_failed .*problem=.*bogus", log), log
    assert re.search(r"event=reload_failed .*problem=.*relay.conf:3: .*bob", log), log
    lc = api.start(api.listen_path("foo"), foo, {"PTTH-Ports": "ssh"})
    time.sleep(0.1)
    cc = api.start(api.connect_path("foo", "ssh"), bob)
    assert lc.read_head().status == 200
    cc.close()
    lc.close()

    # options that need a restart are named
    write_config(conf, ["listen = 127.0.0.1:0", "server = foo=" + foo.hash, "client = bob=" + bob.hash,
                        "allow = bob=*/ssh", "heartbeat = 7"])
    relay.signal(signal.SIGHUP)
    relay.wait_for(r"event=reload_ignored option=heartbeat")
    # the server's key is removed: its listens are answered 401, it is forgotten
    lc = api.start(api.listen_path("foo"), foo, {"PTTH-Ports": "ssh"})
    time.sleep(0.2)
    write_config(conf, ["listen = 127.0.0.1:0", "client = bob=" + bob.hash])
    relay.signal(signal.SIGHUP)
    r = lc.read_head()
    assert r.status == 401, r
    assert api.post(api.listen_path("foo"), foo, {"PTTH-Ports": "ssh"}).status == 401
    lc.close()
    assert relay.stop() == 0


@t.test
def options_and_check_config(ctx):
    relay_bin = pt.program("ptth_relay")
    r = pt.run([relay_bin, "--help"])
    assert r.returncode == 0, r
    for opt in ("--listen", "--tls-cert", "--tls-key", "--server", "--client", "--allow", "--admin-key-hash",
                "--listen-timeout", "--connect-timeout", "--heartbeat", "--idle-timeout", "--max-chunk",
                "--max-connections", "--max-connections-per-server", "--trusted-proxy"):
        assert opt in r.stdout, (opt, r.stdout)
    r = pt.run([relay_bin, "--version"])
    assert r.returncode == 0 and r.stdout.strip(), r
    k = pt.Key()
    r = pt.run([relay_bin, "--check-config", "--server", "foo=" + k.hash, "--allow", "alice=foo/ssh"])
    assert r.returncode == 2, r
    assert "ptth_relay: " in r.stderr and "alice" in r.stderr, r.stderr
    r = pt.run([relay_bin, "--check-config", "--server", "foo=" + k.hash, "--client", "alice=" + pt.Key().hash,
                "--allow", "alice=foo/ssh", "--listen", "[::1]:0", "--trusted-proxy", "10.0.0.0/8"])
    assert r.returncode == 0 and "config ok" in r.stdout, r
    bad = [["--listen", "localhost:4000"], ["--listen", "1.2.3.4"], ["--server", "foo"], ["--server", "foo=abc"],
           ["--client", "b@d=" + k.hash], ["--allow", "x=y"], ["--max-chunk", "0"], ["--max-chunk", "99999999"],
           ["--heartbeat", "0"], ["--trusted-proxy", "10.0.0.0/99"], ["--admin-key-hash", "XYZ"],
           ["--tls-cert", "/nonexistent.pem"], ["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"],
           ["--server", "a=" + k.hash, "--client", "b=" + k.hash],
           ["--max-connections", "5", "--max-connections-per-server", "6"], ["--nosuch"]]
    for args in bad:
        r = pt.run([relay_bin, "--check-config"] + args)
        assert r.returncode == 2, (args, r)
        assert r.stderr.startswith("ptth_relay: "), (args, r.stderr)
    # a bad config file names the file and the line
    conf = ctx.path("bad.conf")
    write_config(conf, ["# comment", "server = foo=" + k.hash, "heartbeat = soon"])
    r = pt.run([relay_bin, "--check-config", "--config", conf])
    assert r.returncode == 2 and "bad.conf:3" in r.stderr, r


@t.test
def listen_in_use_is_fatal(ctx):
    relay = ctx.relay()
    r = pt.run([pt.program("ptth_relay"), "--listen", "127.0.0.1:%d" % relay.port], timeout=10)
    assert r.returncode == 1, r
    assert "ptth_relay: " in r.stderr and str(relay.port) in r.stderr, r.stderr


@t.test
def several_listeners_and_ipv6(ctx):
    relay = ctx.relay(args=["--listen", "[::1]:0", "--listen", "127.0.0.1:0"])
    addrs = re.findall(r"event=listening addr=(\S+)", relay.log())
    assert len(addrs) == 3, addrs
    v6 = [a for a in addrs if a.startswith("[::1]:")]
    if not v6:
        raise AssertionError("no IPv6 listener: %r" % addrs)
    port6 = int(v6[0].rsplit(":", 1)[1])
    s = socket.create_connection(("::1", port6), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"ok\n"), out
    for a in addrs[1:]:
        if a.startswith("127."):
            assert healthz(int(a.rsplit(":", 1)[1])) == (200, b"ok\n")


def make_cert(ctx):
    if shutil.which("openssl") is None:
        raise AssertionError("openssl command not found")
    cert, key = ctx.path("cert.pem"), ctx.path("key.pem")
    r = pt.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], timeout=60)
    assert r.returncode == 0, r.stderr
    return cert, key


@t.test
def tls_with_alpn_h2_and_http11(ctx):
    cert, key = make_cert(ctx)
    sk, ck = pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": sk}, clients={"alice": ck}, allow=["alice=foo/*"],
                      args=["--tls-cert", cert, "--tls-key", key])
    assert "tls=yes" in relay.log()
    url = "https://127.0.0.1:%d" % relay.port
    for proto, want in (("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200")):
        p = subprocess.run(["curl", "-sS", "-i", "--cacert", cert, proto, url + "/healthz"], capture_output=True, timeout=20)
        out = p.stdout.decode("latin-1")
        assert out.startswith(want) and out.endswith("ok\n"), (proto, out, p.stderr)
    # ALPN picked h2 when offered
    p = subprocess.run(["curl", "-sS", "-v", "--cacert", cert, "--http2", url + "/healthz"], capture_output=True, timeout=20)
    assert b"ALPN: server accepted h2" in p.stderr or b"ALPN, server accepted to use h2" in p.stderr, p.stderr
    # a whole tunnel over TLS with HTTP/2: listen held, connect, accept
    base = ["curl", "-sS", "-N", "--cacert", cert, "--http2", "-D", "-", "-o", "-", "-X", "POST", "--max-time", "20"]
    lp = subprocess.Popen(base + ["-H", "Authorization: Bearer " + sk.text, "-H", "PTTH-Ports: ssh",
                                  url + "/v1/servers/foo/listen"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relay.wait_for(r"event=server_online server=foo")
    cp = subprocess.Popen(base + ["-H", "Authorization: Bearer " + ck.text, url + "/v1/servers/foo/ports/ssh/connect"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = lp.communicate(timeout=20)
    status, headers, _ = rc.parse_curl_output(out)
    assert status == 200, out
    cid = headers["ptth-conn"]
    p = subprocess.run(["curl", "-sS", "--cacert", cert, "--http2", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "--max-time", "5", "-H", "Authorization: Bearer " + sk.text,
                        url + "/v1/servers/foo/conns/%s/accept" % cid], capture_output=True, timeout=20)
    # the accept stream stays open until the tunnel ends: curl's time limit cuts it
    assert p.stdout in (b"200", b"000") or p.stdout.startswith(b"200"), p
    relay.wait_for(r"event=tunnel_end id=%s" % cid, timeout=15)
    cp.kill()
    cp.communicate()
    # a plain-HTTP client on the TLS port gets nowhere, and the relay keeps serving
    raw(relay.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    p = subprocess.run(["curl", "-sS", "--cacert", cert, url + "/healthz"], capture_output=True, timeout=20)
    assert p.stdout == b"ok\n", p


@t.test
def many_held_requests_over_http2(ctx):
    """150 listens at once over TLS + HTTP/2 (curl multiplexes up to h2o's
    100 streams per connection and opens more): all are held together and
    all end with 204 at the listen timeout."""
    cert, key = make_cert(ctx)
    sk = pt.Key()
    relay = ctx.relay(servers={"foo": sk}, args=["--tls-cert", cert, "--tls-key", key, "--listen-timeout", "2",
                                                 "--max-listens-per-server", "150"])
    url = "https://127.0.0.1:%d/v1/servers/foo/listen" % relay.port
    n = 150
    argv = ["curl", "-sS", "--cacert", cert, "--http2", "--parallel", "--parallel-max", str(n), "-w", "%{http_code}\n",
            "-X", "POST", "-H", "Authorization: Bearer " + sk.text, "-H", "PTTH-Ports: ssh", "--max-time", "20"]
    for _ in range(n):
        argv += ["-o", "/dev/null", url]
    started = time.monotonic()
    p = subprocess.run(argv, capture_output=True, timeout=60)
    elapsed = time.monotonic() - started
    codes = p.stdout.decode().split()
    assert codes == ["204"] * n, (codes, p.stderr[-500:])
    assert elapsed < 6, elapsed  # held together, not one after the other
    assert relay.count(r"event=server_online server=foo") == 1


t.run()
