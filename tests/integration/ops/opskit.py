"""opskit: what the operations tests share on top of ptthtest: a throwaway CA
made with openssl, a real nginx started from docs/nginx.conf (or
docs/scale-out.md) on loopback ports, and small HTTP helpers for the admin
endpoints. Everything binds to loopback and is stopped by the test's
Context."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.environ.get("PTTH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                                "tests", "integration"))

import ptthtest as pt  # noqa: E402

DOCS = os.path.join(pt.SOURCE_DIR, "docs")


def sanitized():
    """True when PTTH_BUILD_DIR was configured with a sanitizer (slower)."""
    try:
        with open(os.path.join(pt.BUILD_DIR, "meson-info", "intro-buildoptions.json")) as f:
            for opt in json.load(f):
                if opt.get("name") == "b_sanitize":
                    return str(opt.get("value")) not in ("none", "", "[]")
    except (OSError, ValueError):
        pass
    return False


def artifacts_dir():
    """Where tests leave files for people to look at (screenshots): under the
    build directory, kept after the run."""
    d = os.path.join(pt.BUILD_DIR, "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


# ---- TLS ----------------------------------------------------------------------

class CA:
    """A CA and one certificate for localhost, 127.0.0.1 and ::1, made by the
    openssl command in dir. Attributes: ca_cert, cert, key (paths)."""

    def __init__(self, dir):
        os.makedirs(dir, exist_ok=True)
        if shutil.which("openssl") is None:
            raise AssertionError("openssl command not found (Debian package openssl)")
        self.ca_key = os.path.join(dir, "ca.key")
        self.ca_cert = os.path.join(dir, "ca.crt")
        self.key = os.path.join(dir, "site.key")
        self.cert = os.path.join(dir, "site.crt")
        csr = os.path.join(dir, "site.csr")
        ext = os.path.join(dir, "site.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        self._run(["openssl", "req", "-x509"] + ec + ["-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2",
                                                      "-subj", "/CN=ptth test CA"])
        self._run(["openssl", "req"] + ec + ["-keyout", self.key, "-out", csr, "-subj", "/CN=localhost"])
        self._run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                   "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext])

    @staticmethod
    def _run(argv):
        r = pt.run(argv)
        if r.returncode != 0:
            raise AssertionError("%s failed: %s" % (" ".join(argv[:3]), r.stderr))


# ---- nginx --------------------------------------------------------------------

def nginx_binary():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.path.exists(p):
            return p
    return None


def substitute(text, subs):
    """Applies (regex, replacement, expected count) substitutions and fails
    when one does not match exactly that often: a change to the documented
    config that the test no longer understands must break the test, not
    quietly test something else."""
    for rx, repl, count in subs:
        text, n = re.subn(rx, repl, text, flags=re.M)
        if n != count:
            raise AssertionError("docs config: /%s/ matched %d times, expected %d" % (rx, n, count))
    return text


def nginx_conf_block(text):
    """The part of a Markdown page between ```nginx and ```."""
    m = re.search(r"^```nginx\n(.*?)^```", text, re.S | re.M)
    if not m:
        raise AssertionError("no ```nginx block")
    return m.group(1)


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc is not None and not proc.alive():
                raise AssertionError("nginx exited with %s; log:\n%s" % (proc.popen.returncode, pt.tail(proc.log())))
            if time.monotonic() > deadline:
                raise AssertionError("nothing listens on %s:%d after %.0fs" % (host, port, timeout))
            time.sleep(0.05)


class Nginx:
    """A real nginx in the foreground with its own prefix, pid file, logs and
    temp paths in dir/nginx. site is the text that goes into http { } (a
    server block and upstreams). wait_ports are polled until they accept."""

    def __init__(self, ctx, site, wait_ports, http_extra="", name="nginx"):
        binary = nginx_binary()
        if binary is None:
            raise AssertionError("nginx not installed (Debian package nginx-light)")
        self.dir = os.path.join(ctx.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = ("%sworker_processes 1;\npid %s/nginx.pid;\nerror_log %s info;\n"
                "events { worker_connections 4096; }\n"
                "http {\n"
                "    access_log %s;\n"
                "    client_body_temp_path %s/body;\n    proxy_temp_path %s/proxy;\n"
                "    fastcgi_temp_path %s/fastcgi;\n    uwsgi_temp_path %s/uwsgi;\n    scgi_temp_path %s/scgi;\n"
                "%s\n%s\n}\n") % (user, d, self.error_log, self.access_log, d, d, d, d, d, http_extra, site)
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        r = pt.run([binary, "-t", "-p", d, "-c", self.conf])
        if r.returncode != 0:
            raise AssertionError("nginx -t refused the config:\n%s\n%s" % (r.stderr, conf))
        self.proc = ctx.start([binary, "-p", d, "-c", self.conf, "-g", "daemon off;"], name=name)
        for p in wait_ports:
            wait_port(p, proc=self.proc)

    def errors(self):
        with open(self.error_log, errors="replace") as f:
            return f.read()

    def access(self):
        with open(self.access_log, errors="replace") as f:
            return f.read()

    def wait_access(self, patterns, timeout=15.0):
        """The access log once every regex in patterns matches it. nginx
        writes a request's line when the request ends, and an upgraded one
        ends when its connection closes, which can be after the tunnel's
        client saw its end: so poll instead of reading once."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.access()
            missing = [p for p in patterns if not re.search(p, text)]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise AssertionError("nginx access log lacks %r after %.0fs:\n%s" % (missing, timeout, text[-2000:]))
            time.sleep(0.05)


def free_ports(n):
    """n distinct free loopback ports (bound at once so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port6():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


# ---- admin endpoints -----------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def http_get(url, bearer=None, basic=None, headers=None, context=None, timeout=10.0):
    """GET url; bearer is a key text, basic a (user, password) pair. Returns a
    Response whatever the status."""
    h = dict(headers or {})
    if bearer is not None:
        h["Authorization"] = "Bearer " + bearer
    if basic is not None:
        h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    req = urllib.request.Request(url, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())
