#!/usr/bin/env python3
"""The systemd units of docs/systemd/ (SPEC §8), tested without a running
systemd: `systemd-analyze verify` finds no problem in them, `systemd-analyze
security` rates them well, they carry the hardening and service settings the
docs promise, and every command line they run (with the example configs and
a key in place of the credential) passes the program's --check-config."""

import os
import re
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import opskit as kit  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()

UNITS = os.path.join(kit.DOCS, "systemd")
# unit file, instance used for the test, program, example config, config path in the unit
SERVICES = [
    ("ptth-relay.service", None, "ptth_relay", "relay.conf", "/etc/ptth/relay.conf"),
    ("ptth-server@.service", "foo", "ptth_server", "server.conf", "/etc/ptth/server-%i.conf"),
    ("ptth-proxy@.service", "laptop", "ptth_proxy", "proxy.conf", "/etc/ptth/proxy-%i.conf"),
]


def read_unit(name):
    """{section: [(key, value)]} of a unit file (keys may repeat)."""
    sections = {}
    cur = None
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"\[(\w+)\]", line)
            if m:
                cur = sections.setdefault(m.group(1), [])
                continue
            k, _, v = line.partition("=")
            assert cur is not None and _ == "=", (name, line)
            cur.append((k.strip(), v.strip()))
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit, section, key):
    v = values(unit, section, key)
    assert len(v) == 1, (section, key, v)
    return v[0]


def installed_units(ctx):
    """The units copied to a temp dir with ExecStart pointing at the build,
    and an instance link for each template."""
    d = os.path.join(ctx.dir, "units")
    os.makedirs(d)
    paths = []
    for unit, instance, prog, _, _ in SERVICES:
        with open(os.path.join(UNITS, unit)) as f:
            text = f.read()
        n = len(re.findall(r"/usr/local/bin/%s\b" % prog, text))
        assert n >= 1, (unit, "no /usr/local/bin/%s" % prog)
        text = kit.substitute(text, [(r"/usr/local/bin/%s\b" % prog, pt.program(prog), n)])
        with open(os.path.join(d, unit), "w") as f:
            f.write(text)
        if instance:
            link = unit.replace("@.", "@%s." % instance)
            os.symlink(unit, os.path.join(d, link))
            paths.append(os.path.join(d, link))
        else:
            paths.append(os.path.join(d, unit))
    return paths


def need_systemd_analyze():
    p = shutil.which("systemd-analyze")
    if p is None:
        raise pt.Skip("no systemd-analyze (Debian package systemd)")
    return p


@t.test
def units_pass_systemd_analyze_verify(ctx):
    sa = need_systemd_analyze()
    paths = installed_units(ctx)
    # --man=no: the man: links are checked only once the man pages are installed
    r = pt.run([sa, "verify", "--man=no"] + paths, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", (r.returncode, r.stdout, r.stderr)
    # the check is real: a typo in a unit is reported
    bad = os.path.join(ctx.dir, "units", "ptth-bad.service")
    with open(paths[0]) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    r = pt.run([sa, "verify", "--man=no", bad], timeout=60)
    assert "protect system value" in r.stderr and "strickt" in r.stderr, (r.returncode, r.stderr)


@t.test
def units_rate_well_in_systemd_analyze_security(ctx):
    sa = need_systemd_analyze()
    for path in installed_units(ctx):
        r = pt.run([sa, "security", "--offline=yes", "--no-pager", path], timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
        assert m, (r.returncode, r.stdout[-2000:], r.stderr)
        assert float(m.group(1)) <= 2.0, (path, m.group(0))


@t.test
def units_carry_hardening_and_service_settings(ctx):
    for unit_name, instance, prog, _, conf in SERVICES:
        u = read_unit(unit_name)
        s = "Service"
        for key, want in (("DynamicUser", "yes"), ("User", "ptth"), ("Group", "ptth"), ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"),
                          ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("LimitNOFILE", "1048576"),
                          ("Restart", "on-failure"), ("Type", "exec"), ("CapabilityBoundingSet", ""),
                          ("SystemCallFilter", "@system-service")):
            assert one(u, s, key) == want, (unit_name, key, values(u, s, key))
        start = one(u, s, "ExecStart")
        assert start.startswith("/usr/local/bin/%s --config %s" % (prog, conf)), (unit_name, start)
        assert one(u, "Install", "WantedBy") == "multi-user.target", unit_name
        assert "network-online.target" in one(u, "Unit", "After"), unit_name
        if instance:
            # one instance per name: its own config and key, handed over as a credential
            assert "%i" in conf and "--key-file %d/key" in start, (unit_name, start)
            cred = one(u, s, "LoadCredential")
            assert re.fullmatch(r"key:/etc/ptth/\w+-%i\.key", cred), cred
        else:
            assert one(u, s, "ExecReload") == "/bin/kill -HUP $MAINPID", unit_name


def exec_lines(unit_name):
    u = read_unit(unit_name)
    return values(u, "Service", "ExecStartPre") + values(u, "Service", "ExecStart")


@t.test
def unit_command_lines_pass_check_config(ctx):
    key = ctx.key("credential")  # stands for the credential: mode 0600
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    for unit_name, instance, prog, example, conf in SERVICES:
        lines = exec_lines(unit_name)
        assert lines, unit_name
        for line in lines:
            argv = line.split()
            assert argv[0] == "/usr/local/bin/" + prog, line
            argv[0] = pt.program(prog)
            real = []
            for a in argv:
                a = a.replace(conf, os.path.join(UNITS, example))
                a = a.replace("%d/key", key.path)
                assert "%" not in a and "$" not in a, (unit_name, a)  # every specifier was accounted for
                real.append(a)
            if "--check-config" not in real:
                real.append("--check-config")
            r = pt.run(real, timeout=60)
            assert r.returncode == 0 and r.stdout == "config ok\n", (unit_name, real, r.returncode, r.stdout, r.stderr)


@t.test
def example_configs_use_only_known_options_and_break_on_typos(ctx):
    """Every name in the example configs is an option of the program
    (--help lists it), and a misspelt one makes --check-config fail, so the
    test above would notice a wrong example."""
    key = ctx.key("credential")
    for unit_name, instance, prog, example, conf in SERVICES:
        help_text = pt.run([pt.program(prog), "--help"]).stdout
        with open(os.path.join(UNITS, example)) as f:
            text = f.read()
        names = set()
        for line in text.splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if line:
                names.add(line.partition("=")[0].strip())
        assert names, example
        for n in names:
            assert re.search(r"--%s\b" % re.escape(n), help_text), (example, n)
        bad = ctx.path("bad-" + example)
        with open(bad, "w") as f:
            f.write(text + "\nlisten-timout = 5\n")
        argv = [pt.program(prog), "--config", bad, "--check-config"]
        if prog != "ptth_relay":
            argv += ["--key-file", key.path]
        r = pt.run(argv)
        assert r.returncode == 2 and "listen-timout" in r.stderr, (example, r.returncode, r.stderr)


t.run()
