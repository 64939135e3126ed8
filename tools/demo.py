#!/usr/bin/env python3
"""ptth demo: the whole product on loopback, with nothing to configure.

    python3 tools/demo.py BUILD_DIR [--once]      (or: ./ptth-dev demo)

Starts ptth_relay, ptth_server and ptth_proxy on 127.0.0.1 with throwaway
keys in a temporary directory. The server offers:
  - echo: a small echo service built into this script;
  - ssh:  the local sshd, when one answers on 127.0.0.1:22.
The proxy gets one local port per service. The demo sends one round trip
through the tunnel, prints what you can connect to, and keeps running until
Ctrl-C, which stops all three programs. With --once it stops right after the
round trip (used by the tests).
"""

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

SERVER_NAME = "demo"
CLIENT_NAME = "you"


def fail(msg):
    print("demo: %s" % msg, file=sys.stderr)
    sys.exit(1)


class EchoService:
    """The embedded backend: echoes every byte, half-close aware."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def local_sshd():
    """True when something on 127.0.0.1:22 greets like an SSH server."""
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=0.5) as s:
            s.settimeout(1.0)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class Proc:
    def __init__(self, name, argv, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log_file = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
                                      start_new_session=True)  # Ctrl-C reaches only us; we stop them in order

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if rx.search(text):
                return rx.findall(text)
            if self.popen.poll() is not None:
                fail("%s exited (code %s); its log:\n%s" % (self.name, self.popen.returncode, text[-3000:]))
            time.sleep(0.05)
        fail("%s did not log /%s/ within %.0fs; its log is %s" % (self.name, pattern, timeout, self.log_path))

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log_file.close()
        return self.popen.returncode


def new_key(ptth_key, path):
    r = subprocess.run([ptth_key, "new", path], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        fail("ptth_key new failed: %s" % r.stderr.strip())
    return r.stdout.split()[-1]


def round_trip(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    once = "--once" in sys.argv[1:]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    build = os.path.abspath(args[0])
    progs = {
        "ptth_relay": os.path.join(build, "relay", "ptth_relay"),
        "ptth_server": os.path.join(build, "server_proxy", "ptth_server"),
        "ptth_proxy": os.path.join(build, "client_proxy", "ptth_proxy"),
        "ptth_key": os.path.join(build, "tools", "ptth_key"),
    }
    for name, path in progs.items():
        if not os.access(path, os.X_OK):
            fail("%s is not built (%s); run ./ptth-dev build" % (name, path))

    work = tempfile.mkdtemp(prefix="ptth-demo-")
    procs = []
    echo = EchoService()
    ok = False
    try:
        server_hash = new_key(progs["ptth_key"], os.path.join(work, "server.key"))
        client_hash = new_key(progs["ptth_key"], os.path.join(work, "client.key"))
        services = {"echo": str(echo.port)}
        if local_sshd():
            services["ssh"] = "22"

        relay = Proc("ptth_relay", [progs["ptth_relay"], "--listen", "127.0.0.1:0",
                                    "--server", "%s=%s" % (SERVER_NAME, server_hash),
                                    "--client", "%s=%s" % (CLIENT_NAME, client_hash),
                                    "--allow", "%s=%s/*" % (CLIENT_NAME, SERVER_NAME)], work)
        procs.append(relay)
        relay_port = relay.wait_for(r"event=listening\S* addr=127\.0\.0\.1:(\d+)")[0]
        relay_url = "http://127.0.0.1:%s" % relay_port

        argv = [progs["ptth_server"], "--relay", relay_url, "--name", SERVER_NAME,
                "--key-file", os.path.join(work, "server.key")]
        for name, target in services.items():
            argv += ["--port-map", "%s=%s" % (name, target)]
        server = Proc("ptth_server", argv, work)
        procs.append(server)
        relay.wait_for(r"event=server_online server=%s" % SERVER_NAME)

        argv = [progs["ptth_proxy"], "--relay", relay_url, "--key-file", os.path.join(work, "client.key")]
        for name in services:
            argv += ["--forward", "127.0.0.1:0=%s/%s" % (SERVER_NAME, name)]
        proxy = Proc("ptth_proxy", argv, work)
        procs.append(proxy)
        # one "listening on" line per --forward, in the order given
        found = proxy.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + 10
        while len(found) < len(services) and time.monotonic() < deadline:
            time.sleep(0.05)
            found = proxy.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
        if len(found) < len(services):
            fail("ptth_proxy listens on %d of %d ports; see %s" % (len(found), len(services), proxy.log_path))
        ports = dict(zip(services, found))

        message = b"hello through ptth\n"
        started = time.monotonic()
        answer = round_trip(int(ports["echo"]), message)
        took_ms = (time.monotonic() - started) * 1000
        if answer != message:
            fail("the round trip came back as %r" % answer)

        print("ptth demo: relay, server and proxy are running on 127.0.0.1 (logs in %s)" % work)
        print("  relay:  %s  (server '%s', client '%s')" % (relay_url, SERVER_NAME, CLIENT_NAME))
        print("  round trip through the tunnel: sent %r, got it back in %.1f ms" % (message.decode().strip(), took_ms))
        print("Connect to:")
        print("  echo:   nc 127.0.0.1 %s   or   socat - TCP:127.0.0.1:%s   (type a line: it comes back through the relay)"
              % (ports["echo"], ports["echo"]))
        if "ssh" in ports:
            print("  ssh:    ssh -p %s %s@127.0.0.1" % (ports["ssh"], os.environ.get("USER", "you")))
        else:
            print("  ssh:    (no sshd on 127.0.0.1:22, so no ssh port)")
        sys.stdout.flush()
        if once:
            ok = True
            return 0
        print("Press Ctrl-C to stop.")
        sys.stdout.flush()
        try:
            while all(p.popen.poll() is None for p in procs):
                time.sleep(0.5)
            dead = [p for p in procs if p.popen.poll() is not None]
            fail("%s exited unexpectedly; see %s" % (dead[0].name, dead[0].log_path))
        except KeyboardInterrupt:
            print("\nstopping...")
            ok = True
        return 0
    finally:
        codes = {}
        for p in reversed(procs):
            codes[p.name] = p.stop()
        echo.close()
        bad = {n: c for n, c in codes.items() if c != 0}
        if bad:
            print("demo: unclean exit codes %s; logs kept in %s" % (bad, work), file=sys.stderr)
            ok = False
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        elif procs:
            print("demo: logs kept in %s" % work, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main() or 0)
