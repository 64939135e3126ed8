"""proxykit: a real forward proxy (squid, Debian package) for the tunnel
tests, started on a free loopback port inside the test's directory with
Basic auth (basic_ncsa_auth and a password file made here), stopped by the
test's Context. Everything squid opens is on 127.0.0.1 (its DNS and ICP
sockets included)."""

import os
import pwd
import shutil
import subprocess
import time

import tunnelkit as kit
from tunnelkit import pt

NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"
DIGEST_AUTH = "/usr/lib/squid/digest_file_auth"
NTLM_FAKE_AUTH = "/usr/lib/squid/ntlm_fake_auth"


def available():
    """Why squid cannot run here, or None."""
    if shutil.which("squid") is None and not os.path.exists("/usr/sbin/squid"):
        return "squid is not installed (Debian package squid)"
    if not os.path.exists(NCSA_AUTH):
        return "%s is missing" % NCSA_AUTH
    return None


def wait_listening(proc, port, timeout=20.0):
    """Waits until proc (a proxy just started) accepts on port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pt.connect(port, timeout=1).close()
            return
        except OSError:
            if not proc.alive() or time.monotonic() > deadline:
                raise AssertionError("%s did not start:\n%s" % (proc.name, pt.tail(proc.log())))
            time.sleep(0.1)


class Squid:
    """squid -N on 127.0.0.1:port. users maps user names to passwords (auth
    required when given) for scheme "basic" (basic_ncsa_auth), "digest"
    (digest_file_auth) or "ntlm" (ntlm_fake_auth: any NTLM handshake
    passes, which is all a test without a Windows domain can check: that
    libcurl's NTLM goes through); deny_connect refuses every CONNECT (a
    proxy that only forwards absolute-form requests)."""

    def __init__(self, ctx, users=None, deny_connect=False, port=None, scheme="basic", extra=()):
        why = available()
        if why:
            raise pt.Skip(why)
        helper = {"basic": NCSA_AUTH, "digest": DIGEST_AUTH, "ntlm": NTLM_FAKE_AUTH}[scheme]
        if not os.path.exists(helper):
            raise pt.Skip("%s is missing" % helper)
        self.scheme = scheme
        self.extra = list(extra)  # more squid.conf lines
        self.ctx = ctx
        self.dir = ctx.path("squid")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or pt.free_port()
        self.users = dict(users or {})
        self.deny_connect = deny_connect
        self.access_log = os.path.join(self.dir, "access.log")
        self.proc = None
        self.start()
        ctx.cleanups.append(self.stop)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _config(self):
        lines = [
            "http_port 127.0.0.1:%d" % self.port,
            "pid_filename %s" % os.path.join(self.dir, "squid.pid"),
            "access_log stdio:%s" % self.access_log,
            "cache_log %s" % os.path.join(self.dir, "cache.log"),
            "coredump_dir %s" % self.dir,
            "cache deny all",
            "shutdown_lifetime 0 seconds",
            "udp_incoming_address 127.0.0.1",
            "udp_outgoing_address 127.0.0.1",
            "dns_nameservers 127.0.0.1",
            "visible_hostname ptth-test",
            "acl CONNECT method CONNECT",
        ] + self.extra
        if self.deny_connect:
            lines.append("http_access deny CONNECT")
        if self.users:
            passwd = os.path.join(self.dir, "passwd")
            with open(passwd, "w") as f:
                for user, password in self.users.items():
                    if self.scheme == "basic":
                        password = subprocess.run(["openssl", "passwd", "-1", password], capture_output=True,
                                                  text=True, check=True, timeout=30).stdout.strip()
                    f.write("%s:%s\n" % (user, password))  # digest_file_auth reads the password itself
            if self.scheme == "ntlm":
                lines.append("auth_param ntlm program %s" % NTLM_FAKE_AUTH)
            else:
                helper = NCSA_AUTH if self.scheme == "basic" else DIGEST_AUTH
                lines += ["auth_param %s program %s %s" % (self.scheme, helper, passwd),
                          "auth_param %s realm ptth-test" % self.scheme]
            lines += ["acl authed proxy_auth REQUIRED", "http_access allow authed"]
        else:
            lines.append("http_access allow localhost")
        lines.append("http_access deny all")
        path = os.path.join(self.dir, "squid.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self):
        conf = self._config()
        if os.getuid() == 0:
            # squid drops root for its cache_effective_user (proxy), which
            # must be able to write its logs here
            try:
                uid = pwd.getpwnam("proxy").pw_uid
                for root, dirs, files in os.walk(self.dir):
                    for n in dirs + files:
                        os.chown(os.path.join(root, n), uid, -1)
                os.chown(self.dir, uid, -1)
                os.chmod(self.ctx.dir, 0o755)
            except KeyError:
                pass
        self.proc = self.ctx.start(["squid", "-N", "-f", conf], name="squid")
        wait_listening(self.proc, self.port)

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=15, expect_code=None)
        self.proc = None

    def access(self):
        """squid's access log lines so far (written as requests end)."""
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except OSError:
            return []


class Tinyproxy:
    """tinyproxy -d (Debian package tinyproxy) on 127.0.0.1:port: no auth,
    CONNECT to any port (no ConnectPort line), a second and simpler proxy
    than squid."""

    def __init__(self, ctx):
        if shutil.which("tinyproxy") is None:
            raise pt.Skip("tinyproxy is not installed (Debian package tinyproxy)")
        self.port = pt.free_port()
        d = ctx.path("tinyproxy")
        os.makedirs(d, exist_ok=True)
        self.log_path = os.path.join(d, "tinyproxy.log")
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nBind 127.0.0.1\nAllow 127.0.0.1\nTimeout 600\nMaxClients 500\n"
                    "LogLevel Connect\nLogFile \"%s\"\nPidFile \"%s\"\n" % (self.port, self.log_path,
                                                                       os.path.join(d, "tinyproxy.pid")))
        if os.getuid() == 0:
            os.chmod(ctx.dir, 0o755)
            os.chmod(d, 0o777)  # it drops root for the user nobody
        self.proc = ctx.start(["tinyproxy", "-d", "-c", conf], name="tinyproxy")
        wait_listening(self.proc, self.port)
        ctx.cleanups.append(lambda: self.proc.stop(timeout=15, expect_code=None))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


class TlsFront:
    """TLS in front of a proxy (an https:// proxy URL): socat
    OPENSSL-LISTEN on 127.0.0.1:port with cert/key, each connection
    forwarded in cleartext to 127.0.0.1:backend_port."""

    def __init__(self, ctx, backend_port, cert, key):
        if shutil.which("socat") is None:
            raise pt.Skip("socat is not installed (Debian package socat)")
        self.port = pt.free_port()
        listen = "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,verify=0" % (self.port, cert, key)
        self.proc = ctx.start(["socat", listen, "TCP:127.0.0.1:%d" % backend_port], name="tls-front")
        wait_listening(self.proc, self.port)
        ctx.cleanups.append(lambda: self.proc.stop(timeout=15, expect_code=None))

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port


def user_file(ctx, text, mode=0o600, name="proxy-user"):
    path = ctx.path(name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def clean_env():
    """The proxy variables removed (the tests say what they want)."""
    return {k: "" for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                            "no_proxy", "NO_PROXY")}


__all__ = ["Squid", "Tinyproxy", "TlsFront", "available", "user_file", "clean_env", "kit", "pt"]
