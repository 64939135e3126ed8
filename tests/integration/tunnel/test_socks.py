#!/usr/bin/env python3
"""ptth_proxy --socks (SPEC 9.4) with real clients: curl --socks5-hostname
fetching a file from a real nginx behind ptth_server, byte-exact; ssh through
netcat-openbsd's `nc -X 5`; the refusals' reply codes (not allowed 0x02 with
curl's exit 97, unknown server 0x04, dead backend 0x05); malformed, truncated
and oversized handshakes from a raw socket; RFC 1929 username/password right
and wrong, and an auth file readable by others refused."""

import hashlib
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402
import opskit  # noqa: E402

t = pt.Tap()


def socks_proxy(w, args=(), allow_fail=False):
    """ptth_proxy with only --socks on a kernel-chosen port; .port is it."""
    p = w.ctx.proxy(w.relay.url, w.ckey, args=["--socks", "127.0.0.1:0"] + list(args), wait=False)
    m = p.wait_for(r"listening on (\S+):(\d+) \(socks5\)")
    p.port = int(m.group(2))
    return p


def echo_world(ctx, allow=("alice=foo/*",), extra_ports=None):
    b = kit.echo_backend(ctx)
    ports = {"echo": str(b.port)}
    ports.update(extra_ports or {})
    return kit.World(ctx, ports, allow=allow)


def handshake(port, request, greeting=b"\x05\x01\x00", expect_method=0):
    """A raw SOCKS5 client: greeting, then request; returns (socket, the
    10-byte reply, or what came before the close)."""
    s = pt.connect(port)
    s.sendall(greeting)
    assert pt.recv_exactly(s, 2) == bytes([5, expect_method])
    s.sendall(request)
    s.settimeout(20)
    rep = b""
    while len(rep) < 10:
        b = s.recv(10 - len(rep))
        if not b:
            break
        rep += b
    return s, rep


def connect_req(host, port=0, cmd=1):
    h = host.encode()
    return bytes([5, cmd, 0, 3, len(h)]) + h + struct.pack(">H", port)


def assert_closed_soon(s, timeout=15):
    pt.wait_closed(s, timeout=timeout)
    s.close()


def still_works(port):
    s, rep = handshake(port, connect_req("echo.foo"))
    assert rep[:2] == b"\x05\x00", rep
    kit.round_trip(s, b"still serving")
    s.close()


@t.test
def curl_fetches_from_nginx_byte_exact(ctx):
    root = ctx.path("www")
    os.makedirs(root)
    body = os.urandom(3 * 1024 * 1024 + 17)
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(body)
    port = pt.free_port()
    opskit.Nginx(ctx, "server { listen 127.0.0.1:%d; root %s; }" % (port, root), [port])
    w = kit.World(ctx, {"web": str(port)})
    px = socks_proxy(w)
    out = ctx.path("got.bin")
    r = pt.run(["curl", "-sS", "--fail", "-o", out, "--socks5-hostname", "127.0.0.1:%d" % px.port,
                "http://web.foo/blob.bin"], timeout=60)
    assert r.returncode == 0, "curl exit %d: %s" % (r.returncode, r.stderr)
    with open(out, "rb") as f:
        got = f.read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest(), "%d of %d bytes" % (len(got), len(body))
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=web")
    px.wait_for(r"event=tunnel_end [^\n]*server=foo port=web")


@t.test
def ssh_through_nc_x5(ctx):
    sshd = kit.Sshd(ctx)
    w = kit.World(ctx, {"ssh": str(sshd.port)})
    px = socks_proxy(w)
    r = subprocess.run(["ssh"] + sshd.client_opts() +
                       ["-o", "ProxyCommand=nc -X 5 -x 127.0.0.1:%d %%h %%p" % px.port, "%s@ssh.foo" % kit.USER,
                        "echo via-socks-$((6*7))"], capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, "ssh exit %d: %s" % (r.returncode, r.stderr)
    assert r.stdout == "via-socks-42\n", r.stdout
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=ssh")


@t.test
def client_bytes_before_the_reply_wait_for_the_tunnel(ctx):
    """Greeting, request and the first tunnel bytes in one write: nothing of
    the data is taken for the handshake, and the reply comes first."""
    w = echo_world(ctx)
    px = socks_proxy(w)
    s = pt.connect(px.port)
    s.sendall(b"\x05\x01\x00" + connect_req("echo.foo", 7) + b"early bytes")
    assert pt.recv_exactly(s, 2) == b"\x05\x00"
    rep = pt.recv_exactly(s, 10)
    assert rep[:4] == b"\x05\x00\x00\x01", rep
    assert pt.recv_exactly(s, 11) == b"early bytes"
    s.shutdown(socket.SHUT_WR)
    assert pt.recv_until_eof(s) == b""
    s.close()


@t.test
def not_allowed_is_0x02_and_curl_exit_97(ctx):
    w = echo_world(ctx, allow=("alice=foo/other",))
    px = socks_proxy(w)
    s, rep = handshake(px.port, connect_req("echo.foo"))
    assert rep[:2] == b"\x05\x02", rep
    assert_closed_soon(s)
    r = pt.run(["curl", "-sS", "--socks5-hostname", "127.0.0.1:%d" % px.port, "http://echo.foo/"], timeout=30)
    assert r.returncode == 97, "curl exit %d: %s" % (r.returncode, r.stderr)
    px.wait_for(r"event=connect_refused server=foo port=echo [^\n]*status=403")


@t.test
def unknown_server_or_port_is_0x04(ctx):
    w = echo_world(ctx, allow=("alice=*/*",))  # else the ACL answers 403 before the relay looks for the server
    px = socks_proxy(w)
    for host in ("echo.nosuchserver", "nosuchport.foo", "nodot"):
        s, rep = handshake(px.port, connect_req(host))
        assert rep[:2] == b"\x05\x04", (host, rep)
        assert_closed_soon(s)
    still_works(px.port)


@t.test
def dead_backend_is_0x05(ctx):
    w = echo_world(ctx, extra_ports={"dead": str(pt.free_port())})
    px = socks_proxy(w)
    s, rep = handshake(px.port, connect_req("dead.foo"))
    assert rep[:2] == b"\x05\x05", rep
    assert_closed_soon(s)
    px.wait_for(r"event=connect_refused server=foo port=dead [^\n]*status=502")


@t.test
def unsupported_commands_and_address_types(ctx):
    w = echo_world(ctx)
    px = socks_proxy(w)
    cases = [
        (connect_req("echo.foo", cmd=2), 0x07),  # BIND
        (connect_req("echo.foo", cmd=3), 0x07),  # UDP ASSOCIATE
        (bytes([5, 1, 0, 1, 127, 0, 0, 1, 0, 22]), 0x08),  # IPv4
        (bytes([5, 1, 0, 4]) + bytes(15) + b"\x01\x00\x16", 0x08),  # IPv6
    ]
    for req, code in cases:
        s, rep = handshake(px.port, req)
        assert len(rep) == 10 and rep[:2] == bytes([5, code]), (req, rep)
        assert_closed_soon(s)
    still_works(px.port)


@t.test
def malformed_truncated_and_oversized_handshakes(ctx):
    w = echo_world(ctx)
    px = socks_proxy(w)
    # SOCKS4 and an empty method list: closed without a reply
    for greeting in (b"\x04\x01\x00\x16\x7f\x00\x00\x01\x00", b"\x05\x00"):
        s = pt.connect(px.port)
        s.sendall(greeting)
        assert pt.wait_closed(s, timeout=10) == b"", greeting
        s.close()
    # oversized: 255 methods then 64 KiB of junk: answered per message, closed, never buffered whole
    s = pt.connect(px.port)
    s.sendall(b"\x05\xff" + bytes(range(255)))
    assert pt.recv_exactly(s, 2) == b"\x05\x00"
    try:
        s.sendall(b"\x05\x01\x00\x03\xff" + b"A" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = pt.wait_closed(s, timeout=10)
    assert data[:2] == b"\x05\x04", data  # a 255-byte name that is not PORT.SERVER
    s.close()
    # truncated: half a greeting, half a request, then silence: closed by the handshake timeout
    started = time.monotonic()
    s1 = pt.connect(px.port)
    s1.sendall(b"\x05")
    s2 = pt.connect(px.port)
    s2.sendall(b"\x05\x01\x00")
    assert pt.recv_exactly(s2, 2) == b"\x05\x00"
    s2.sendall(b"\x05\x01\x00\x03\x08echo")
    for s in (s1, s2):
        assert pt.wait_closed(s, timeout=20) == b""
        s.close()
    took = time.monotonic() - started
    assert 8 < took < 18, took
    px.wait_for(r"event=socks_refused [^\n]*state=greeting reason=\"handshake not finished in time\"")
    px.wait_for(r"event=socks_refused [^\n]*state=request reason=\"handshake not finished in time\"")
    still_works(px.port)
    assert px.alive()


@t.test
def username_password_right_and_wrong(ctx):
    w = echo_world(ctx)
    auth = ctx.path("socks-users")
    with open(auth, "w") as f:
        f.write("# who may use the SOCKS port\nalice:s3cret-pw\nbob:0therpw\n")
    os.chmod(auth, 0o600)
    px = socks_proxy(w, ["--socks-auth-file", auth])
    # right: a tunnel
    s = pt.connect(px.port)
    s.sendall(b"\x05\x02\x00\x02")
    assert pt.recv_exactly(s, 2) == b"\x05\x02"
    s.sendall(b"\x01\x05alice\x09s3cret-pw")
    assert pt.recv_exactly(s, 2) == b"\x01\x00"
    s.sendall(connect_req("echo.foo"))
    assert pt.recv_exactly(s, 10)[:2] == b"\x05\x00"
    kit.round_trip(s, b"authenticated")
    s.close()
    # wrong password, and no-auth only: refused
    s = pt.connect(px.port)
    s.sendall(b"\x05\x01\x02\x01\x05alice\x09s3cret-PW")
    assert pt.recv_exactly(s, 2) == b"\x05\x02"
    assert pt.recv_exactly(s, 2)[0:1] == b"\x01"
    assert_closed_soon(s)
    s = pt.connect(px.port)
    s.sendall(b"\x05\x01\x00")
    assert pt.recv_exactly(s, 2) == b"\x05\xff"
    assert_closed_soon(s)
    # curl, right and wrong
    url = "http://echo.foo/"
    r = pt.run(["curl", "-sS", "-m", "5", "--socks5-hostname", "bob:w7ongpw@127.0.0.1:%d" % px.port, url], timeout=30)
    assert r.returncode == 97, "curl exit %d: %s" % (r.returncode, r.stderr)
    r = pt.run(["curl", "-sS", "-m", "3", "--socks5-hostname", "bob:0therpw@127.0.0.1:%d" % px.port, url], timeout=30)
    assert r.returncode not in (97, 7), "curl exit %d: %s" % (r.returncode, r.stderr)  # past SOCKS: the echo backend is no HTTP server
    px.wait_for(r"event=socks_refused [^\n]*state=auth reason=\"wrong username or password\"")
    log = px.log()
    for secret in ("s3cret", "0therpw", "w7ongpw"):
        assert secret not in log, "%s in the log" % secret
    # readable by others: refused at start
    os.chmod(auth, 0o644)
    r = pt.run([pt.program("ptth_proxy"), "--relay", w.relay.url, "--key-file", w.ckey.path, "--socks", "127.0.0.1:0",
                "--socks-auth-file", auth], timeout=10)
    assert r.returncode == 2 and "readable by group or others" in r.stderr, r.stderr


@t.test
def socks_beside_forwards_and_from_a_config_file(ctx):
    w = echo_world(ctx)
    conf = ctx.path("proxy.conf")
    with open(conf, "w") as f:
        f.write("socks = 127.0.0.1:0\nforward = 127.0.0.1:0=foo/echo\n")
    px = w.ctx.proxy(w.relay.url, w.ckey, args=["--config", conf], wait=False)
    fwd = int(px.wait_for(r"listening on 127\.0\.0\.1:(\d+)\n").group(1))
    px.port = int(px.wait_for(r"listening on (\S+):(\d+) \(socks5\)").group(2))
    assert kit.echo_once(fwd, b"via forward") == b"via forward"
    still_works(px.port)
    r = pt.run([pt.program("ptth_proxy"), "--relay", w.relay.url, "--key-file", w.ckey.path, "--socks", "nonsense",
                "--check-config"], timeout=10)
    assert r.returncode == 2 and "--socks" in r.stderr, r.stderr


t.run()
