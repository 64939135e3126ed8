#!/usr/bin/env python3
"""installed_tunnel.py VERSION: checks the installed Debian packages (run by
tests/packaging/run after apt-get install ./*.deb, as root). TAP on stdout.

One tunnel with the programs in /usr/bin: ptth_key makes the keys, then
ptth_relay, ptth_server and ptth_proxy on loopback ports chosen by the
kernel carry bytes to an echo backend of this script and back. Also: every
program's --version is VERSION, the ptth user and /etc/ptth (root:ptth
0750) exist, the units are installed under /lib/systemd/system and not
enabled, the man pages and example configs are there. Every process is
stopped at the end; every wait is bounded."""

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

BIN = "/usr/bin"
PROGRAMS = ("ptth_relay", "ptth_server", "ptth_proxy", "ptth_key", "ptth_cc_agent", "ptth_csd_emu")
UNITS = ("ptth-relay.service", "ptth-server@.service", "ptth-proxy@.service")

results = []


def check(name, fn):
    try:
        fn()
        results.append((True, name, ""))
    except Exception as e:  # one failed check does not stop the others
        results.append((False, name, "%s: %s" % (type(e).__name__, e)))


def wait_log(path, pattern, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    raise AssertionError("no /%s/ in %s (exit %s):\n%s" % (pattern, os.path.basename(path), proc.poll(), log[-2000:]))


def echo_backend():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    c.sendall(b)
    threading.Thread(target=serve, daemon=True).start()
    return ls


def tunnel():
    work = tempfile.mkdtemp(prefix="ptth-installed-")
    procs = []
    backend = echo_backend()
    try:
        def key(name):
            path = os.path.join(work, name + ".key")
            r = subprocess.run([os.path.join(BIN, "ptth_key"), "new", path], capture_output=True, text=True, timeout=10)
            assert r.returncode == 0, r.stderr
            return path, r.stdout.split()[-1]

        def start(argv, name):
            log = os.path.join(work, name + ".log")
            p = subprocess.Popen([os.path.join(BIN, argv[0])] + argv[1:], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
            procs.append(p)
            return p, log

        skey, shash = key("server")
        ckey, chash = key("client")
        relay, rlog = start(["ptth_relay", "--listen", "127.0.0.1:0", "--server", "foo=" + shash,
                             "--client", "alice=" + chash, "--allow", "alice=foo/echo"], "relay")
        port = wait_log(rlog, r"event=listening\S* addr=127\.0\.0\.1:(\d+)", relay).group(1)
        url = "http://127.0.0.1:%s" % port
        server, slog = start(["ptth_server", "--relay", url, "--name", "foo", "--key-file", skey,
                              "--port-map", "echo=%d" % backend.getsockname()[1]], "server")
        wait_log(rlog, r"event=server_online server=foo\b", relay)
        proxy, plog = start(["ptth_proxy", "--relay", url, "--key-file", ckey, "--server", "foo", "--port", "echo",
                             "--listen", "127.0.0.1:0"], "proxy")
        lport = int(wait_log(plog, r"listening on 127\.0\.0\.1:(\d+)", proxy).group(1))
        payload = os.urandom(100000)
        with socket.create_connection(("127.0.0.1", lport), timeout=15) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
        assert got == payload, "%d bytes back of %d" % (len(got), len(payload))
        for p, log in ((proxy, plog), (server, slog), (relay, rlog)):
            p.terminate()
            code = p.wait(timeout=15)
            assert code == 0, "%s exited %d after SIGTERM" % (os.path.basename(log), code)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        backend.close()
        shutil.rmtree(work, ignore_errors=True)


def versions(want):
    for prog in PROGRAMS:
        r = subprocess.run([os.path.join(BIN, prog), "--version"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.strip() == "%s %s" % (prog, want), (prog, r.returncode, r.stdout, r.stderr)


def user_and_etc():
    pw = pwd.getpwnam("ptth")
    assert pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"), pw
    st = os.stat("/etc/ptth")
    assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
    assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == "ptth", (st.st_uid, st.st_gid)
    for conf in ("relay", "server", "proxy"):
        assert os.path.isfile("/etc/ptth/%s.conf.example" % conf), conf


def units_not_enabled():
    for unit in UNITS:
        path = "/lib/systemd/system/" + unit
        with open(path) as f:
            text = f.read()
        assert re.search(r"^ExecStart=/usr/bin/ptth_", text, re.M), path
        assert "User=ptth" in text, path
    for root, _, files in os.walk("/etc/systemd/system"):
        for f in files:
            assert not f.startswith("ptth-"), "enabled: %s" % os.path.join(root, f)


def man_pages():
    for prog in PROGRAMS:
        assert os.path.isfile("/usr/share/man/man1/%s.1.gz" % prog), prog


def main():
    want = sys.argv[1]
    check("installed programs print --version %s" % want, lambda: versions(want))
    check("ptth user, /etc/ptth root:ptth 0750, example configs", user_and_etc)
    check("units under /lib/systemd/system, /usr/bin, User=ptth, not enabled", units_not_enabled)
    check("a man page per program", man_pages)
    check("one tunnel through the installed relay, server and proxy", tunnel)
    for i, (ok, name, why) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        for line in why.splitlines():
            print("# " + line)
    print("1..%d" % len(results))
    sys.exit(0 if all(ok for ok, _, _ in results) else 1)


if __name__ == "__main__":
    main()
