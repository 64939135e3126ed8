#!/usr/bin/env python3
"""Tests of the ptth_key program (SPEC §2): runs the built tools/ptth_key."""

import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))
import ptthtest as pt  # noqa: E402

t = pt.Tap()
KEY_RX = re.compile(r"^[A-Za-z0-9_-]{43}$")
HASH_RX = re.compile(r"^[0-9a-f]{64}$")


def ptth_key(*args, **kw):
    return pt.run([pt.program("ptth_key")] + list(args), **kw)


def shell_sha256(text):
    """The hash as SPEC §2 says an operator computes it."""
    out = subprocess.run(["sh", "-c", 'printf %s "$1" | sha256sum', "sh", text], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def expect_error(r, code, *fragments):
    assert r.returncode == code, "exit %d, expected %d; stderr: %r" % (r.returncode, code, r.stderr)
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert lines, "nothing on stderr"
    for line in lines:
        assert line.startswith("ptth_key: "), line
    for f in fragments:
        assert f in r.stderr, "%r not in %r" % (f, r.stderr)


@t.test
def new_writes_0600_key_and_prints_hash(ctx):
    path = ctx.path("a.key")
    r = ptth_key("new", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(path) as f:
        content = f.read()
    assert content.endswith("\n") and content.count("\n") == 1, repr(content)
    key = content[:-1]
    assert KEY_RX.match(key), key
    printed = r.stdout.strip()
    assert HASH_RX.match(printed), r.stdout
    assert r.stdout == printed + "\n"
    assert printed == shell_sha256(key)
    assert printed == pt.Key(key).hash


@t.test
def new_keys_differ(ctx):
    hashes = set()
    for i in range(5):
        r = ptth_key("new", ctx.path("k%d.key" % i))
        assert r.returncode == 0, r.stderr
        hashes.add(r.stdout)
    assert len(hashes) == 5


@t.test
def new_is_0600_whatever_the_umask(ctx):
    for mask in ("000", "022", "277"):
        path = ctx.path("u%s.key" % mask)
        r = subprocess.run(["sh", "-c", 'umask %s && exec "$0" new "$1"' % mask, pt.program("ptth_key"), path],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (mask, oct(os.stat(path).st_mode))


@t.test
def hash_matches_sha256sum(ctx):
    path = ctx.path("b.key")
    r = ptth_key("new", path)
    assert r.returncode == 0, r.stderr
    h = ptth_key("hash", path)
    assert h.returncode == 0, h.stderr
    assert h.stdout == r.stdout
    with open(path) as f:
        assert h.stdout.strip() == shell_sha256(f.read().strip())


@t.test
def hash_of_key_made_elsewhere(ctx):
    k = ctx.key("py")  # written by the harness: 43 chars + newline, 0600
    r = ptth_key("hash", k.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == k.hash + "\n"
    # without the trailing newline too
    with open(k.path, "w") as f:
        f.write(k.text)
    r = ptth_key("hash", k.path)
    assert r.stdout == k.hash + "\n", r.stderr


@t.test
def new_refuses_to_overwrite(ctx):
    path = ctx.path("c.key")
    assert ptth_key("new", path).returncode == 0
    with open(path) as f:
        before = f.read()
    r = ptth_key("new", path)
    expect_error(r, 2, path, "already exists")
    with open(path) as f:
        assert f.read() == before
    # nor a file that is not a key
    other = ctx.path("notes.txt")
    with open(other, "w") as f:
        f.write("important\n")
    expect_error(ptth_key("new", other), 2, "already exists")
    with open(other) as f:
        assert f.read() == "important\n"


@t.test
def new_in_missing_directory(ctx):
    path = ctx.path("nodir/d.key")
    expect_error(ptth_key("new", path), 2, path, "No such file or directory")


@t.test
def hash_refuses_readable_by_group_or_others(ctx):
    path = ctx.path("e.key")
    assert ptth_key("new", path).returncode == 0
    for mode in (0o640, 0o604, 0o644, 0o444):
        os.chmod(path, mode)
        expect_error(ptth_key("hash", path), 2, path, "readable by group or others", "%04o" % mode)
    os.chmod(path, 0o400)
    assert ptth_key("hash", path).returncode == 0


@t.test
def hash_refuses_bad_files(ctx):
    cases = {"empty": "", "short": "abc\n", "two-lines": "A" * 43 + "\n" + "A" * 43 + "\n", "std-b64": "+" * 43 + "\n",
             "spaces": " " + "A" * 43 + "\n"}
    for name, content in cases.items():
        path = ctx.path(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        r = ptth_key("hash", path)
        expect_error(r, 2, path, "does not hold a key")
    expect_error(ptth_key("hash", ctx.path("missing.key")), 2, "missing.key", "No such file or directory")
    expect_error(ptth_key("hash", ctx.dir), 2, "not a regular file")


@t.test
def usage_errors(ctx):
    expect_error(ptth_key(), 2, "missing command")
    expect_error(ptth_key("new"), 2, "new: missing FILE")
    expect_error(ptth_key("hash"), 2, "hash: missing FILE")
    expect_error(ptth_key("frob", "x"), 2, "unknown command 'frob'")
    expect_error(ptth_key("new", ctx.path("x"), "extra"), 2, "unexpected argument 3 (not shown")
    expect_error(ptth_key("--frob", "new", ctx.path("x")), 2, "unknown option '--frob'")
    expect_error(ptth_key("--log-level", "loud", "hash", ctx.path("x")), 2, "--log-level: bad level 'loud'")
    assert not os.path.exists(ctx.path("x"))


@t.test
def help_and_version(ctx):
    r = ptth_key("--help")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("Usage: ptth_key "), r.stdout
    for word in ("new FILE", "hash FILE", "--config FILE", "--check-config", "--log-level LEVEL", "--help", "--version",
                 "Exit codes"):
        assert word in r.stdout, word
    assert ptth_key("-h").stdout == r.stdout
    v = ptth_key("--version")
    assert v.returncode == 0 and v.stderr == ""
    assert re.match(r"^ptth_key \d+\.\d+\.\d+\S*\n$", v.stdout), v.stdout


@t.test
def check_config(ctx):
    r = ptth_key("--check-config", "hash", ctx.path("k"))
    assert r.returncode == 0 and r.stdout == "config ok\n", (r.stdout, r.stderr)
    expect_error(ptth_key("--check-config", "hash"), 2, "hash: missing FILE")


@t.test
def stdout_write_error_is_exit_1(ctx):
    path = ctx.path("f.key")
    assert ptth_key("new", path).returncode == 0
    with open("/dev/full", "w") as full:
        r = subprocess.run([pt.program("ptth_key"), "hash", path], stdout=full, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith("ptth_key: cannot write to stdout"), r.stderr


t.run()
