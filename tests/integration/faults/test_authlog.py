#!/usr/bin/env python3
"""Failed authentication is logged for fail2ban (issue 5): one
`event=auth_failed addr=IP reason=... key=... path=...` line per refused
request, with the client's address (X-Forwarded-For from a trusted proxy),
and the fail2ban filter printed in docs/security.md matches exactly those
lines and extracts those addresses (checked with fail2ban-regex when it is
installed, else with the same regular expression in Python)."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit as fk  # noqa: E402
from faultkit import pt, rc  # noqa: E402

t = pt.Tap()


def filter_from_docs():
    """The filter file shown in docs/security.md (the ini block after the
    line that names filter.d/ptth-relay.conf)."""
    with open(os.path.join(pt.SOURCE_DIR, "docs", "security.md")) as f:
        text = f.read()
    m = re.search(r"filter\.d/ptth-relay\.conf[^\n]*\n+```ini\n(.*?)```", text, re.S)
    assert m, "docs/security.md shows no filter.d/ptth-relay.conf block"
    return m.group(1)


def failregex(filter_text):
    m = re.search(r"^failregex\s*=\s*(.*)$", filter_text, re.M)
    assert m, filter_text
    return m.group(1).strip()


def python_matches(filter_text, lines):
    """fail2ban's way, in short: cut the date, then search failregex with
    <HOST> standing for an address. Returns the addresses of matching lines."""
    rx = re.compile(failregex(filter_text).replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))
    out = []
    for line in lines:
        rest = re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "", line)
        m = rx.search(rest)
        if m:
            out.append(m.group("host"))
    return out


@t.test
def auth_failures_are_logged_one_line_each_for_fail2ban(ctx):
    foo, bar, alice, admin = pt.Key(), pt.Key(), pt.Key(), pt.Key()
    relay = ctx.relay(servers={"foo": foo, "bar": bar}, clients={"alice": alice}, allow=["alice=foo/ssh"], admin=admin,
                      args=["--trusted-proxy", "127.0.0.1/32"])
    api = rc.Api(relay.port)
    stranger = pt.Key()
    xff4 = {"X-Forwarded-For": "198.51.100.23"}
    xff6 = {"X-Forwarded-For": "2001:db8::5"}
    attempts = [  # (path, key or header dict, extra headers, status, reason, address)
        (api.listen_path("foo"), None, {}, 401, "no_key", "127.0.0.1"),
        (api.listen_path("foo"), {"Authorization": "Bearer short"}, {}, 401, "no_key", "127.0.0.1"),
        (api.listen_path("foo"), {"Authorization": "Basic Zm9vOmJhcg=="}, xff4, 401, "no_key", "198.51.100.23"),
        (api.listen_path("foo"), stranger, xff4, 401, "unknown_key", "198.51.100.23"),
        (api.connect_path("foo", "ssh"), stranger, xff6, 401, "unknown_key", "2001:db8::5"),
        (api.listen_path("foo"), alice, {}, 403, "not_allowed", "127.0.0.1"),
        (api.listen_path("foo"), bar, {}, 403, "not_allowed", "127.0.0.1"),
        (api.connect_path("bar", "ssh"), alice, xff4, 403, "not_allowed", "198.51.100.23"),
        (api.connect_path("foo", "web"), alice, {}, 403, "not_allowed", "127.0.0.1"),
        (api.conn_path("foo", "A" * 22, "upstream"), foo, {}, 403, "not_allowed", "127.0.0.1"),
        (api.conn_path("foo", "A" * 22, "close"), stranger, {}, 401, "unknown_key", "127.0.0.1"),
    ]
    for path, key, extra, status, _, _ in attempts:
        headers = dict(extra)
        if isinstance(key, dict):
            headers.update(key)
            key = None
        r = api.post(path, key, headers)
        assert r.status == status, (path, r)
    # what is allowed logs nothing of the kind
    assert api.post(api.connect_path("foo", "ssh"), alice).status == 503  # offline, but allowed
    assert api.get("/v1/status", rc.bearer(admin)).status == 200
    assert api.get("/healthz").status == 200

    lines = fk.wait_until("every failure logged", lambda: (lambda ls: ls if len(ls) >= len(attempts) else None)(
        [ln for ln in relay.log().splitlines() if "event=auth_failed" in ln]), timeout=5)
    assert len(lines) == len(attempts), "\n".join(lines)
    for line, (path, key, _, _, reason, addr) in zip(lines, attempts):
        f = dict(kv.split("=", 1) for kv in line.split(" ")[2:] if "=" in kv)
        assert f["addr"] == addr and f["reason"] == reason, (line, addr, reason)
        assert f["path"] == '"%s"' % path, line
        if hasattr(key, "hash"):
            assert f["key"] == key.hash[:12], line
        else:
            assert f["key"] == "-", line
        assert line.split(" ")[1] == "warn", line

    flt = filter_from_docs()
    want = [a[5] for a in attempts]
    assert python_matches(flt, relay.log().splitlines()) == want
    tool = shutil.which("fail2ban-regex")
    if tool:
        path = ctx.path("ptth-relay.conf")
        with open(path, "w") as f:
            f.write(flt)
        p = subprocess.run([tool, "-o", "ip", relay.log_path, path], capture_output=True, text=True, timeout=60)
        got = p.stdout.split()
        assert got == want, (got, p.stderr[-2000:])
        print("# fail2ban-regex extracted %d addresses from %d auth_failed lines" % (len(got), len(lines)))
    else:
        print("# fail2ban-regex not installed: the filter's regex was checked in Python only")


t.run()
