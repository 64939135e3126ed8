#!/usr/bin/env python3
"""The README's run command (./ptth-dev demo = tools/demo.py BUILD_DIR): the
demo starts the three programs, makes its round trip through the tunnel,
prints the port to connect to, and stops everything cleanly; a client can use
that port while it runs."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()
DEMO = os.path.join(pt.SOURCE_DIR, "tools", "demo.py")


@t.test
def demo_once(ctx):
    r = subprocess.run([sys.executable, DEMO, pt.BUILD_DIR, "--once"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    assert "got it back" in r.stdout, r.stdout
    assert re.search(r"echo: +nc 127\.0\.0\.1 \d+", r.stdout), r.stdout


@t.test
def demo_runs_until_ctrl_c(ctx):
    p = subprocess.Popen([sys.executable, DEMO, pt.BUILD_DIR], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        port = None
        lines = []
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"echo: +nc 127\.0\.0\.1 (\d+)", line)
            if m:
                port = int(m.group(1))
        assert port, "no echo port printed:\n%s%s" % ("".join(lines), p.stderr.read() if p.poll() is not None else "")
        assert kit.echo_once(port, b"from the test") == b"from the test"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, "exit %d\n%s%s" % (p.returncode, out, err)
        assert "stopping" in out, out
        assert "unclean" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


t.run()
