#!/usr/bin/env python3
"""Real OpenSSH through the tunnel: sshd (Debian's openssh-server) on a free
loopback port with a throwaway host key and authorized key, behind
ptth_server; ssh and scp through ptth_proxy's port, and ssh with
ProxyCommand=ptth_proxy --stdio."""

import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tunnelkit as kit  # noqa: E402
from tunnelkit import pt  # noqa: E402

t = pt.Tap()

USER = kit.USER
Sshd = kit.Sshd


def setup(ctx):
    sshd = Sshd(ctx)
    w = kit.World(ctx, {"ssh": str(sshd.port)})
    return sshd, w


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@t.test
def ssh_command_through_proxy_port(ctx):
    sshd, w = setup(ctx)
    px = w.proxy("ssh")
    r = subprocess.run(["ssh"] + sshd.client_opts() + ["-p", str(px.port), "%s@127.0.0.1" % USER,
                                                       "echo hello-$((6*7)); uname -s"],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, "ssh exit %d: %s" % (r.returncode, r.stderr)
    assert r.stdout == "hello-42\nLinux\n", r.stdout
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=ssh[^\n]*reason=fin")


@t.test
def scp_20mb_both_ways(ctx):
    sshd, w = setup(ctx)
    px = w.proxy("ssh")
    src = ctx.path("big.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(20 * 1024 * 1024))
    up = ctx.path("uploaded.bin")
    down = ctx.path("downloaded.bin")
    scp = ["scp", "-q", "-P", str(px.port)] + sshd.client_opts()
    r = subprocess.run(scp + [src, "%s@127.0.0.1:%s" % (USER, up)], capture_output=True, timeout=90, text=True)
    assert r.returncode == 0, "scp up exit %d: %s" % (r.returncode, r.stderr)
    assert sha256_file(up) == sha256_file(src), "uploaded copy differs"
    r = subprocess.run(scp + ["%s@127.0.0.1:%s" % (USER, up), down], capture_output=True, timeout=90, text=True)
    assert r.returncode == 0, "scp down exit %d: %s" % (r.returncode, r.stderr)
    assert sha256_file(down) == sha256_file(src), "downloaded copy differs"


@t.test
def ssh_proxycommand_stdio(ctx):
    sshd, w = setup(ctx)
    log = ctx.path("proxycommand.log")
    script = ctx.path("proxycommand.sh")
    with open(script, "w") as f:
        # ssh sends SIGHUP to its ProxyCommand when it is done: the wrapper
        # ignores it so that it can still record ptth_proxy's exit code
        f.write("#!/bin/sh\ntrap '' HUP\n'%s' --relay '%s' --key-file '%s' --server foo --port ssh --stdio 2>>'%s'\n"
                "echo \"exit=$?\" >>'%s'\n" % (pt.program("ptth_proxy"), w.relay.url, w.ckey.path, log, log))
    os.chmod(script, 0o755)
    r = subprocess.run(["ssh"] + sshd.client_opts() + ["-o", "ProxyCommand=%s" % script, "%s@foo" % USER,
                                                       "echo via-stdio; cat"],
                       input="and stdin too\n", capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, "ssh exit %d: %s" % (r.returncode, r.stderr)
    assert r.stdout == "via-stdio\nand stdin too\n", r.stdout
    w.relay.wait_for(r"event=tunnel_end [^\n]*port=ssh[^\n]*")
    deadline = time.monotonic() + 10
    while "exit=" not in open(log).read():
        assert time.monotonic() < deadline, open(log).read()
        time.sleep(0.05)
    text = open(log).read()
    assert "exit=0" in text and "event=tunnel_end" in text, text


t.run()
