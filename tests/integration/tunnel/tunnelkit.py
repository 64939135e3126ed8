"""tunnelkit: what the tunnel tests share on top of ptthtest: starting the
relay with a server and a client key, the backends the tests talk to, and a
few clients. Everything binds to loopback and is stopped by the test's
Context."""

import getpass
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))

import ptthtest as pt  # noqa: E402


def sanitized():
    """True when the programs under test were built with a sanitizer (the
    meson option of PTTH_BUILD_DIR); such builds run several times slower."""
    try:
        with open(os.path.join(pt.BUILD_DIR, "meson-info", "intro-buildoptions.json")) as f:
            for opt in json.load(f):
                if opt.get("name") == "b_sanitize":
                    return str(opt.get("value")) not in ("none", "", "[]")
    except (OSError, ValueError):
        pass
    return False


def make_cert(ctx, name=""):
    """A self-signed P-256 certificate for 127.0.0.1 in the test's
    directory (files NAMEcert.pem, NAMEkey.pem): (cert path, key path)."""
    cert, key = ctx.path(name + "cert.pem"), ctx.path(name + "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return cert, key


def tls_world(ctx, ports, server_args=(), server_env=None):
    """A World whose relay serves HTTPS, with a server (trusting the relay's
    certificate with --ca-file) for ports; returns (world, cert)."""
    cert, key = make_cert(ctx)
    w = World(ctx, {}, start_server=False, relay_args=["--tls-cert", cert, "--tls-key", key])
    w.relay.url = "https://127.0.0.1:%d" % w.relay.port
    w.server = w.start_server(ports, args=["--ca-file", cert] + list(server_args), env=server_env)
    return w, cert


class World:
    """A relay that knows server 'foo' (key skey) and client 'alice' (key
    ckey, allowed everywhere on foo), and optionally a running ptth_server."""

    def __init__(self, ctx, ports=None, relay_args=(), server_args=(), allow=("alice=foo/*",), start_server=True,
                 relay_port=None):
        self.ctx = ctx
        self.skey = ctx.key("server")
        self.ckey = ctx.key("client")
        self.allow = list(allow)
        self.relay_args = list(relay_args)
        self.relay_port = relay_port
        self.relay = self.start_relay()
        self.server = None
        if start_server:
            self.server = self.start_server(ports, server_args)

    def start_relay(self):
        if self.relay_port is None:
            return self.ctx.relay(servers={"foo": self.skey}, clients={"alice": self.ckey}, allow=self.allow,
                                  args=self.relay_args)
        argv = [pt.program("ptth_relay"), "--listen", "127.0.0.1:%d" % self.relay_port,
                "--server", "foo=%s" % self.skey.hash, "--client", "alice=%s" % self.ckey.hash]
        for rule in self.allow:
            argv += ["--allow", rule]
        argv += self.relay_args
        p = self.ctx.start(argv, name="ptth_relay")
        p.wait_for(r"event=listening\S* addr=127\.0\.0\.1:%d" % self.relay_port)
        p.port = self.relay_port
        p.url = "http://127.0.0.1:%d" % self.relay_port
        return p

    def start_server(self, ports, args=(), wait=True, name="foo", key=None, env=None):
        maps = ["%s=%s" % kv for kv in ports.items()]
        srv = self.ctx.server(self.relay.url, name, key or self.skey, maps, args=list(args), env=env)
        if wait:
            self.relay.wait_for(r"event=server_online server=%s\b" % name, timeout=20)
        return srv

    def proxy(self, port, server="foo", args=(), key=None, wait=True, env=None):
        return self.ctx.proxy(self.relay.url, key or self.ckey, server, port, args=list(args), wait=wait, env=env)


# ---- backends ---------------------------------------------------------------

SSHD = "/usr/sbin/sshd"
USER = getpass.getuser()


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ptth-test", "-f", path], check=True,
                   timeout=30)


class Sshd:
    """A throwaway sshd on a free loopback port (host key and authorized key
    in the test's directory), stopped with the test."""

    def __init__(self, ctx):
        if not os.path.exists(SSHD):
            raise AssertionError("%s is missing: install openssh-server (./ptth-dev deps)" % SSHD)
        d = ctx.path("ssh")
        os.makedirs(d)
        self.hostkey = os.path.join(d, "host_ed25519")
        self.userkey = os.path.join(d, "user_ed25519")
        keygen(self.hostkey)
        keygen(self.userkey)
        auth = os.path.join(d, "authorized_keys")
        with open(self.userkey + ".pub") as src, open(auth, "w") as dst:
            dst.write(src.read())
        os.chmod(auth, 0o600)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.port = pt.free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.hostkey,
                "AuthorizedKeysFile %s" % auth,
                "PidFile %s" % os.path.join(d, "sshd.pid"),
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                ""]))
        self.proc = ctx.start([SSHD, "-D", "-e", "-f", conf], name="sshd")
        # sshd exits 255 on SIGTERM: stop it ourselves, before the harness does
        ctx.cleanups.append(lambda: self.proc.stop(expect_code=None))
        self.proc.wait_for(r"Server listening on 127\.0\.0\.1 port %d" % self.port)

    def client_opts(self):
        return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", self.userkey]



class Backend:
    """A loopback TCP (or UNIX) server running handler(conn) in a thread per
    connection."""

    def __init__(self, handler, unix_path=None):
        self.handler = handler
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.port = None
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(512)
        self.accepted = 0
        self.results = []
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            r = self.handler(c)
            with self.lock:
                self.results.append(r)
        except OSError as e:
            with self.lock:
                self.results.append(e)
        finally:
            c.close()

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def wait_results(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= n:
                    return list(self.results)
            time.sleep(0.02)
        raise AssertionError("backend saw %d of %d connections end" % (len(self.results), n))


def hash_handler(c):
    """Reads until the client half-closes, then answers the byte count and
    SHA-256 of what came ("N HEX\\n") and closes."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(1 << 18)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
    c.shutdown(socket.SHUT_WR)
    return n


def greet_then_count_handler(c):
    """Sends a greeting and half-closes at once, then counts what the client
    sends until it half-closes too."""
    c.sendall(b"hello from the backend\n")
    c.shutdown(socket.SHUT_WR)
    n = 0
    while True:
        b = c.recv(1 << 18)
        if not b:
            break
        n += len(b)
    return n


def echo_handler(c):
    n = 0
    while True:
        b = c.recv(1 << 18)
        if not b:
            break
        c.sendall(b)
        n += len(b)
    c.shutdown(socket.SHUT_WR)
    return n


# ---- clients ----------------------------------------------------------------

def echo_once(port, payload, timeout=10.0):
    """Connects, sends payload, half-closes, returns all that came back."""
    s = pt.connect(port, timeout=timeout)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return pt.recv_until_eof(s, timeout=timeout)
    finally:
        s.close()


def bulk_both_ways(port, size, timeout=120.0, block=1 << 20):
    """Sends size pseudo-random bytes and reads the echo at the same time;
    returns (sha256 sent, sha256 received, bytes received, seconds)."""
    s = pt.connect(port, timeout=timeout)
    s.settimeout(timeout)
    seed = os.urandom(block)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    got = [0]
    err = []

    def reader():
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    return
                hr.update(b)
                got[0] += len(b)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=reader, daemon=True)
    started = time.monotonic()
    th.start()
    sent = 0
    i = 0
    while sent < size:
        # vary the block so that a reordering or duplication would show
        chunk = seed[i % 7:] if sent + block - i % 7 <= size else seed[:size - sent]
        chunk = chunk[:size - sent]
        s.sendall(chunk)
        hs.update(chunk)
        sent += len(chunk)
        i += 1
    s.shutdown(socket.SHUT_WR)
    th.join(timeout)
    elapsed = time.monotonic() - started
    s.close()
    if th.is_alive():
        raise AssertionError("echo incomplete after %.0fs: %d of %d bytes" % (timeout, got[0], size))
    if err:
        raise AssertionError("receiving failed after %d bytes: %s" % (got[0], err[0]))
    return hs.hexdigest(), hr.hexdigest(), got[0], elapsed


def log_fields(line):
    """key=value fields of a log line (quoted values kept with their quotes)."""
    out = {}
    for part in line.split(" "):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


# ---- test steps the tunnel, cc and nvme tests share -------------------------

def echo_backend(ctx, unix_path=None):
    """An echo Backend (TCP, or UNIX at unix_path) closed with the test."""
    b = Backend(echo_handler, unix_path=unix_path)
    ctx.cleanups.append(b.close)
    return b


def round_trip(sock, payload):
    """Sends payload and asserts that exactly it comes back."""
    sock.sendall(payload)
    assert pt.recv_exactly(sock, len(payload)) == payload


def open_tunnels(port, n):
    """n open connections to a forwarded echo port, each proven with one round
    trip."""
    socks = []
    for i in range(n):
        s = pt.connect(port)
        round_trip(s, b"ping %d" % i)
        socks.append(s)
    return socks


def wait_count(proc, pattern, n, timeout=20.0):
    """Waits until proc's log matches pattern n times; asserts within timeout
    seconds (none left, e.g. a negative timeout: the count must be there now)."""
    deadline = time.monotonic() + timeout
    while proc.count(pattern) < n:
        assert time.monotonic() < deadline, "%s: %d of %d /%s/" % (proc.name, proc.count(pattern), n, pattern)
        time.sleep(0.05)


def wait_works(port, timeout=20.0):
    """Retries a round trip until it works (the terminators reconnect on their
    own schedule); returns the seconds it took."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            if echo_once(port, b"are you back?", timeout=5) == b"are you back?":
                return time.monotonic() - started
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError("no working tunnel within %.0fs; last error: %s" % (timeout, last))


def echo_in_parallel(port, n, size):
    """n tunnels to an echo port at once, each sending size - i random bytes
    (all start together) while reading the echo; returns one result per
    tunnel: True when the echo matched, else False or the exception."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        try:
            s = pt.connect(port, timeout=60)
            data = os.urandom(size - i)
            barrier.wait(timeout=30)
            got = bytearray()

            def rd():
                while len(got) < len(data):
                    b = s.recv(1 << 16)
                    if not b:
                        break
                    got.extend(b)

            th = threading.Thread(target=rd)
            th.start()
            s.sendall(data)
            th.join(60)
            s.close()
            results[i] = hashlib.sha256(bytes(got)).hexdigest() == hashlib.sha256(data).hexdigest()
        except Exception as e:  # reported by the caller's assertion
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return results


def throughput_one_tunnel(ctx, label, start_world):
    """Backend -> client and client -> backend through one tunnel, 20 MB each,
    printed as '# LABEL throughput ...' (reported, not asserted; the byte
    counts are). start_world(down_port, up_port) returns a World whose ptth_server
    forwards ports 'down' and 'up' to the two backends on those ports."""
    size = 20 * 1000 * 1000
    block = b"\xa5" * (1 << 16)

    def sender(c):
        left = size
        while left > 0:
            n = c.send(block[:min(left, len(block))])
            left -= n
        c.shutdown(socket.SHUT_WR)
        while c.recv(1 << 16):
            pass
        return size

    received = [0]

    def counter(c):
        while True:
            b = c.recv(1 << 18)
            if not b:
                break
            received[0] += len(b)
        return received[0]

    down = Backend(sender)
    up = Backend(counter)
    ctx.cleanups.append(down.close)
    ctx.cleanups.append(up.close)
    w = start_world(down.port, up.port)
    pd = w.proxy("down")
    s = pt.connect(pd.port, timeout=120)
    started = time.monotonic()
    got = len(pt.recv_until_eof(s, timeout=120))
    down_secs = time.monotonic() - started
    s.close()
    assert got == size, got

    pu = w.proxy("up")
    s = pt.connect(pu.port, timeout=120)
    started = time.monotonic()
    left = size
    while left > 0:
        s.sendall(block[:min(left, len(block))])
        left -= min(left, len(block))
    s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 120
    while received[0] < size:
        assert time.monotonic() < deadline, received[0]
        time.sleep(0.002)
    up_secs = time.monotonic() - started
    s.close()
    assert up.wait_results(1, timeout=10) == [size], up.results
    print("# %s throughput, one tunnel, 20 MB: backend->client %.1f MB/s, client->backend %.1f MB/s"
          % (label, size / 1e6 / down_secs, size / 1e6 / up_secs), flush=True)
