"""ptthtest: the harness of the integration tests.

Every integration test is a Python script that starts the real ptth programs
on free loopback ports, talks to them with real clients, and prints TAP
(one "ok N - name" / "not ok N - name" line per check) so that meson and
tests/run-summary count each check. Nothing here touches an address other
than loopback; every process started is stopped at the end, and every wait is
bounded.

Typical use:

    import ptthtest as pt
    t = pt.Tap()

    @t.test
    def echo_round_trip(ctx):
        relay = ctx.relay(servers={"foo": skey.hash}, clients=...)
        ...
        assert data == b"hello", data

    t.run()
"""

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD_DIR = os.environ.get("PTTH_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SOURCE_DIR = os.environ.get("PTTH_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")

MIB = 1 << 20

PROGRAM_DIRS = {
    "ptth_relay": "relay",
    "ptth_server": "server_proxy",
    "ptth_proxy": "client_proxy",
    "ptth_key": "tools",
    "ptth_csd_emu": "transports",
    "ptth_cc_agent": "transports/cc",
}


def program(name):
    """Path of a built program."""
    path = os.path.join(BUILD_DIR, PROGRAM_DIRS.get(name, ""), name)
    if not os.path.exists(path):
        raise AssertionError("program not built: %s" % path)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Key:
    """A key as SPEC §2 defines it: 43 base64url chars; hash = sha256 hex of them."""

    def __init__(self, text=None):
        if text is None:
            text = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        self.text = text
        self.hash = hashlib.sha256(text.encode()).hexdigest()

    def write(self, path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.text + "\n")
        return path


class Proc:
    """A program under test. Its stderr goes to a log file that the test can
    wait on; stop() sends SIGTERM and checks the exit code."""

    def __init__(self, argv, workdir, name=None, env=None, stdin=None, stdout=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.argv = valgrind_prefix(self.argv)
        self.log_path = os.path.join(workdir, "%s.%d.log" % (self.name, id(self) % 100000))
        self.log_file = open(self.log_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(self.argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                      stdout=stdout if stdout is not None else self.log_file,
                                      stderr=self.log_file, env=full_env)
        self.stopped = False

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=10.0, start=0):
        """Waits until the log matches pattern (a regex); returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            text = self.log()
            m = rx.search(text, start)
            if m:
                return m
            if self.popen.poll() is not None:
                raise AssertionError("%s exited with %s before logging /%s/; log:\n%s" %
                                     (self.name, self.popen.returncode, pattern, tail(text)))
            if time.monotonic() > deadline:
                raise AssertionError("%s did not log /%s/ within %.0fs; log:\n%s" %
                                     (self.name, pattern, timeout, tail(text)))
            time.sleep(0.02)

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def kill9(self):
        if self.alive():
            self.popen.kill()
        self.popen.wait(timeout=10)
        self.stopped = True

    def stop(self, timeout=15.0, expect_code=0):
        """SIGTERM, wait, and assert the exit code (sanitizer reports make it
        non-zero, so a leak or UB fails the test that ran the program)."""
        if self.stopped:
            return self.popen.returncode
        self.stopped = True
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError("%s did not exit within %.0fs of SIGTERM; log:\n%s" %
                                 (self.name, timeout, tail(self.log())))
        finally:
            self.log_file.close()
        if expect_code is not None and code != expect_code:
            raise AssertionError("%s exited with %d, expected %d; log:\n%s" %
                                 (self.name, code, expect_code, tail(self.log())))
        return code


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def run(argv, timeout=30, input=None, env=None):
    """Runs a program to completion; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([str(a) for a in argv], input=input, capture_output=True, timeout=timeout,
                          env=full_env, text=True)


class Context:
    """What one test owns: a temporary directory and the processes it started.
    Everything is stopped when the test ends, whatever happened."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="ptth-%s-" % re.sub(r"[^A-Za-z0-9_]", "_", name)[:40])
        self.procs = []
        self.cleanups = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv, name=None, env=None, **kw):
        p = Proc(argv, self.dir, name=name, env=env, **kw)
        self.procs.append(p)
        return p

    def key(self, name=None):
        k = Key()
        if name:
            k.path = k.write(self.path(name + ".key"))
        return k

    def relay(self, servers=None, clients=None, allow=None, args=(), env=None, admin=None):
        """Starts ptth_relay on 127.0.0.1 with a kernel-chosen port. servers and
        clients map names to Key objects (or hashes); allow is a list of
        "CLIENT=SERVER/PORT". Returns the Proc with .url and .port set."""
        argv = [program("ptth_relay"), "--listen", "127.0.0.1:0"]
        for name, key in (servers or {}).items():
            argv += ["--server", "%s=%s" % (name, getattr(key, "hash", key))]
        for name, key in (clients or {}).items():
            argv += ["--client", "%s=%s" % (name, getattr(key, "hash", key))]
        for rule in allow or []:
            argv += ["--allow", rule]
        if admin is not None:
            argv += ["--admin-key-hash", getattr(admin, "hash", admin)]
        argv += list(args)
        p = self.start(argv, name="ptth_relay", env=env)
        m = p.wait_for(r"event=listening\S* addr=(\S+):(\d+)")
        p.port = int(m.group(2))
        p.url = "http://127.0.0.1:%d" % p.port
        return p

    @staticmethod
    def data_path_args(args):
        """PTTH_TEST_DATA_PATH (chunks, upgrade) runs a whole script on that
        data path (meson's *_chunks tests); a test that names its own keeps it."""
        want = os.environ.get("PTTH_TEST_DATA_PATH")
        if want and "--data-path" not in args:
            return list(args) + ["--data-path", want]
        return list(args)

    def server(self, relay_url, name, key, port_maps, args=(), env=None):
        """Starts ptth_server. port_maps: list of "NAME=TARGET"."""
        if not hasattr(key, "path"):
            key.path = key.write(self.path("server-%s.key" % name))
        argv = [program("ptth_server"), "--relay", relay_url, "--name", name, "--key-file", key.path]
        for pm in port_maps:
            argv += ["--port-map", pm]
        argv += self.data_path_args(args)
        return self.start(argv, name="ptth_server", env=env)

    def proxy(self, relay_url, key, server=None, port=None, args=(), env=None, wait=True):
        """Starts ptth_proxy listening on a kernel-chosen port; returns the Proc
        with .port set (the first 'listening on' line) unless wait is False."""
        if not hasattr(key, "path"):
            key.path = key.write(self.path("client-%d.key" % id(key)))
        argv = [program("ptth_proxy"), "--relay", relay_url, "--key-file", key.path]
        if server is not None:
            argv += ["--server", server, "--port", port, "--listen", "127.0.0.1:0"]
        argv += self.data_path_args(args)
        p = self.start(argv, name="ptth_proxy", env=env)
        if wait:
            m = p.wait_for(r"listening on (\S+):(\d+)")
            p.port = int(m.group(2))
        return p

    def close(self, ok):
        errors = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep stopping the rest
                errors.append("cleanup: %s" % e)
        for p in reversed(self.procs):
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e))
        if ok and not errors and not os.environ.get("PTTH_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return errors


class Skip(Exception):
    """Raised by a test when something it needs is not installed: the test is
    reported `ok N - name # SKIP reason` (tests/run-summary lists it and does
    not count it as passed)."""


class Tap:
    """Runs test functions and prints TAP. A test function takes a Context;
    it fails by raising (assert), or skips by raising Skip. Processes it
    started must exit cleanly too."""

    def __init__(self):
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self):
        only = os.environ.get("PTTH_TEST_ONLY")
        tests = [t for t in self.tests if not only or only in t.__name__]
        print("1..%d" % len(tests), flush=True)
        failed = 0
        for i, fn in enumerate(tests, 1):
            ctx = Context(fn.__name__)
            ok, skip, messages = True, None, []
            started = time.monotonic()
            try:
                fn(ctx)
            except Skip as e:
                skip = str(e) or "skipped"
            except Exception:
                ok = False
                messages.append(traceback.format_exc())
            errors = ctx.close(ok)
            if errors:
                ok = False
                messages.extend(errors)
            elapsed = time.monotonic() - started
            if ok and skip is not None:
                print("ok %d - %s # SKIP %s" % (i, fn.__name__, skip), flush=True)
                continue
            print("%s %d - %s (%.1fs)" % ("ok" if ok else "not ok", i, fn.__name__, elapsed), flush=True)
            if not ok:
                failed += 1
                for msg in messages:
                    for line in msg.splitlines():
                        print("# " + line)
                print("# test files kept in %s" % ctx.dir, flush=True)
        sys.exit(1 if failed else 0)


# ---- small clients -------------------------------------------------------

def connect(port, host="127.0.0.1", timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(sock, n, timeout=10.0):
    sock.settimeout(timeout)
    chunks = []
    got = 0
    while got < n:
        b = sock.recv(min(1 << 20, n - got))
        if not b:
            raise AssertionError("connection closed after %d of %d bytes" % (got, n))
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_until_eof(sock, timeout=10.0, limit=1 << 31):
    sock.settimeout(timeout)
    chunks = []
    got = 0
    while True:
        b = sock.recv(1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        got += len(b)
        if got > limit:
            raise AssertionError("more than %d bytes" % limit)


def wait_until(what, fn, timeout=10.0, interval=0.05):
    """Polls fn() until it returns something true; returns it. For what a
    process writes a moment after the event the test saw (a log line, a
    counter)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.1fs" % (what, timeout))
        time.sleep(interval)


def wait_closed(sock, timeout=10.0):
    """Asserts the peer closes (EOF or reset) within timeout; returns bytes read before."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return data
            data += b
    except ConnectionResetError:
        return data
    except socket.timeout:
        raise AssertionError("connection still open after %.0fs" % timeout)


class EchoServer:
    """A TCP (or UNIX) echo backend on loopback, in a thread. Half-close aware:
    when the client shuts down writing, it finishes echoing and shuts down too."""

    def __init__(self, unix_path=None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.port = None
            self.path = unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(512)
        self.accepted = 0
        self.closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        try:
            while True:
                b = c.recv(1 << 18)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class PacedEcho:
    """One tunnel to an echo backend: a thread sends `size` pseudo-random
    bytes, never more than `ahead` bytes past what came back, while another
    reads the echo; both hash what they saw. So the transfer lasts as long
    as the faults the test injects meanwhile, and any loss, duplicate or
    reorder shows in the hashes."""

    def __init__(self, port, size, ahead=4 * MIB, block=64 * 1024, timeout=120.0, rate=None):
        self.size, self.ahead, self.block, self.rate = size, ahead, block, rate
        self.sock = connect(port, timeout=timeout)
        self.sock.settimeout(timeout)
        self.sent = 0
        self.got = 0
        self.longest_wait = 0.0  # seconds: the longest time between two reads that got bytes
        self.hs, self.hr = hashlib.sha256(), hashlib.sha256()
        self.error = None
        self.cond = threading.Condition()
        self.seed = os.urandom(block + 7)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader.start()
        self.writer.start()

    def _write(self):
        i = 0
        started = time.monotonic()
        try:
            while self.sent < self.size:
                if self.rate is not None:  # paced: the transfer outlasts the faults
                    early = self.sent / self.rate - (time.monotonic() - started)
                    if early > 0:
                        time.sleep(early)
                with self.cond:
                    while self.sent - self.got >= self.ahead and self.error is None:
                        self.cond.wait(1)
                    if self.error is not None:
                        return
                # a block whose start moves by a byte each time, so that a
                # replayed or skipped piece would not hash the same
                chunk = self.seed[i % 7:i % 7 + self.block][:self.size - self.sent]
                self.sock.sendall(chunk)
                self.hs.update(chunk)
                with self.cond:
                    self.sent += len(chunk)
                i += 1
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            with self.cond:
                self.error = self.error or e
                self.cond.notify_all()

    def _read(self):
        last = time.monotonic()
        try:
            while True:
                b = self.sock.recv(MIB)
                if not b:
                    return
                now = time.monotonic()
                self.longest_wait, last = max(self.longest_wait, now - last), now
                self.hr.update(b)
                with self.cond:
                    self.got += len(b)
                    self.cond.notify_all()
        except OSError as e:
            with self.cond:
                self.error = self.error or e
                self.cond.notify_all()

    def wait_got(self, n, timeout=60.0):
        wait_until("%d bytes echoed" % n, lambda: self.got >= n or self.error is not None, timeout=timeout)
        assert self.error is None, "the tunnel broke after %d bytes echoed: %r" % (self.got, self.error)

    def finish(self, timeout=120.0):
        self.writer.join(timeout)
        self.reader.join(timeout)
        self.sock.close()
        assert self.error is None, "the tunnel broke after %d of %d bytes echoed: %r" % (
            self.got, self.size, self.error)
        assert not self.reader.is_alive(), "echo incomplete: %d of %d bytes" % (self.got, self.size)
        assert self.got == self.size, "%d bytes came back, %d were sent" % (self.got, self.size)
        assert self.hr.hexdigest() == self.hs.hexdigest(), "the echo differs from what was sent"


# ---- valgrind (docs/security.md) ---------------------------------------------

VALGRIND_PROGRAMS = ("ptth_relay", "ptth_server", "ptth_proxy")
VALGRIND_EXIT = 99


def valgrind_prefix(argv):
    """With PTTH_VALGRIND=1 in the environment, the relay and the two
    terminators run under valgrind memcheck: a memory error or a definite
    leak makes the program exit with 99 instead of 0, which fails the test
    that stops it (Proc.stop checks the exit code). Use a build without
    sanitizers. PTTH_VALGRIND_ARGS adds options (e.g. --suppressions=FILE)."""
    if not os.environ.get("PTTH_VALGRIND") or os.path.basename(argv[0]) not in VALGRIND_PROGRAMS:
        return argv
    extra = os.environ.get("PTTH_VALGRIND_ARGS", "").split()
    return ["valgrind", "--error-exitcode=%d" % VALGRIND_EXIT, "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--track-fds=no", "--num-callers=30"] + extra + argv


def tcp_conns_to(pid, port):
    """Established TCP connections of process pid whose remote port is port."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    rem_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if fields[3] == "01" and rem_port == port and fields[9] in inodes:
                        count += 1
        except FileNotFoundError:
            pass
    return count
