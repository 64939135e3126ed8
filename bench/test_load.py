#!/usr/bin/env python3
"""TAP test of bench/ptth_load itself: that it measures what it says and that
its failures are failures (exit 1 with a reason), so that bench/run's numbers
can be trusted. Runs in a few seconds against loopback only."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

BUILD_DIR = os.environ.get("PTTH_BUILD_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build")
LOAD = os.path.join(BUILD_DIR, "bench", "ptth_load")

tests = []


def test(fn):
    tests.append(fn)
    return fn


def run(args, timeout=30, stdin=None):
    return subprocess.run([LOAD] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, input=stdin)


def fields(stdout, match="mode="):
    for line in stdout.splitlines():
        if line.startswith(match) and "event=" not in line:
            return dict(kv.split("=", 1) for kv in line.split())
    raise AssertionError("no result line in %r" % stdout)


class Server:
    def __init__(self, mode, *extra):
        self.p = subprocess.Popen([LOAD, mode, "--listen", "127.0.0.1:0"] + list(extra), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"event=listening addr=127\.0\.0\.1:(\d+)", line)
        assert m, "no listening line: %r" % line
        self.port = int(m.group(1))
        self.addr = "127.0.0.1:%d" % self.port

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=10)
        assert self.p.returncode == 0, "exit %s: %s" % (self.p.returncode, err)
        stopped = [line for line in out.splitlines() if "event=stopped" in line]
        assert stopped, "no totals line: %r" % out
        return dict(kv.split("=", 1) for kv in stopped[-1].split())


@test
def help_and_usage_errors():
    r = run(["--help"])
    assert r.returncode == 0 and "pingpong" in r.stdout and "--hold" in r.stdout and "--duration" in r.stdout, r
    for args, what in ((["nope"], "unknown mode"), (["send"], "--connect"), (["send", "--connect", "x"], "bad address"),
                       (["sink", "--bytes", "12Q"], "bad value"),
                       (["conns", "--connect", "127.0.0.1:1", "--size", "0"], "bad value"),
                       (["echo", "--frob"], "unknown option"),
                       (["rr", "--connect", "127.0.0.1:1", "--connections", "0"], "bad value"),
                       (["rr", "--connect", "127.0.0.1:1", "--duration", "0"], "bad value")):
        r = run(args)
        assert r.returncode == 2 and what in r.stderr, (args, r.returncode, r.stderr)


@test
def send_counts_every_byte():
    s = Server("sink")
    try:
        r = run(["send", "--connect", s.addr, "--bytes", "3000001", "--write-size", "65536"])
        assert r.returncode == 0, r.stderr
        f = fields(r.stdout)
        assert f["ok"] == "1" and f["bytes"] == "3000001" and float(f["mb_per_s"]) > 0, f
    finally:
        st = s.stop()
    assert st["bytes"] == "3000001" and st["completed"] == "1", st


@test
def send_detects_a_wrong_count():
    # A fake sink that answers a count one less than it received.
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        n = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
        c.sendall((n - 1).to_bytes(8, "big"))
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = run(["send", "--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--bytes", "100000"])
    ls.close()
    assert r.returncode == 1 and "counted 99999" in r.stderr and "ok=0" in r.stdout, r


@test
def send_times_out_when_nobody_reads():
    s = Server("echo")  # echo stops reading while the sender does not read the echo
    try:
        t0 = time.monotonic()
        r = run(["send", "--connect", s.addr, "--bytes", "1G", "--timeout", "1"])
        assert r.returncode == 1 and "no progress" in r.stderr, r
        assert time.monotonic() - t0 < 15
    finally:
        s.stop()


@test
def pingpong_percentiles_are_ordered():
    s = Server("echo")
    try:
        r = run(["pingpong", "--connect", s.addr, "--count", "300", "--warmup", "10", "--size", "100"])
        assert r.returncode == 0, r.stderr
        f = fields(r.stdout)
        p50, p90, p99, mx = (int(f[k]) for k in ("p50_us", "p90_us", "p99_us", "max_us"))
        assert 0 <= p50 <= p90 <= p99 <= mx and f["count"] == "300", f
    finally:
        s.stop()


@test
def pingpong_fails_without_an_echo():
    s = Server("sink")  # never answers until half-close
    try:
        r = run(["pingpong", "--connect", s.addr, "--count", "5", "--timeout", "1"])
        assert r.returncode == 1 and "no progress" in r.stderr, r
    finally:
        s.stop()


@test
def conns_all_succeed_and_hold():
    s = Server("echo")
    try:
        p = subprocess.Popen([LOAD, "conns", "--connect", s.addr, "--count", "300", "--parallel", "50", "--hold", "20"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, "ended before holding"
            lines.append(line)
            if "event=holding" in line:
                break
        f = fields("".join(lines))
        assert f["succeeded"] == "300" and f["failed"] == "0" and float(f["rate_per_s"]) > 0, f
        assert "open=300" in lines[-1], lines
        p.stdin.close()  # ends the hold
        p.stdin = None
        out, err = p.communicate(timeout=10)
        assert p.returncode == 0 and "held=300 alive=300" in out, (out, err)
    finally:
        st = s.stop()
    assert st["completed"] == "300", st


@test
def conns_reports_refused_connections():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()  # nothing listens there now
    r = run(["conns", "--connect", "127.0.0.1:%d" % port, "--count", "20"])
    assert r.returncode == 1, r
    f = fields(r.stdout)
    assert f["failed"] == "20" and f["succeeded"] == "0", f
    assert "event=failure stage=connect errno=ECONNREFUSED count=20" in r.stdout, r.stdout


@test
def conns_reports_a_peer_that_closes():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)

    def serve():
        for _ in range(5):
            c, _ = ls.accept()
            c.recv(100)
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = run(["conns", "--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--count", "5", "--parallel", "1"])
    ls.close()
    assert r.returncode == 1 and "stage=eof" in r.stdout and fields(r.stdout)["failed"] == "5", r.stdout


def fake_server(handle, conns):
    """A listening socket whose first conns connections are each served by
    handle(sock) in a thread; returns (addr, closer)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)

    def accept_all():
        for _ in range(conns):
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=accept_all, daemon=True).start()
    return "127.0.0.1:%d" % ls.getsockname()[1], ls.close


@test
def rr_counts_round_trips_of_every_connection():
    s = Server("echo")
    try:
        r = run(["rr", "--connect", s.addr, "--connections", "8", "--duration", "1", "--size", "100", "--warmup", "3"])
        assert r.returncode == 0, r.stderr
        f = fields(r.stdout)
        n, secs = int(f["round_trips"]), float(f["seconds"])
        assert f["ok"] == "1" and f["connections"] == "8" and f["failed"] == "0" and n > 0, f
        assert abs(float(f["rate_per_s"]) - n / secs) < 1 and 0.99 < secs < 1.01, f
        p50, p90, p99, mx = (int(f[k]) for k in ("p50_us", "p90_us", "p99_us", "max_us"))
        assert 0 <= p50 <= p90 <= p99 <= mx, f
    finally:
        st = s.stop()
    # Every connection ended cleanly, and the echo saw at least the counted
    # and the warm-up round trips, in whole messages.
    b = int(st["bytes"])
    assert st["completed"] == "8" and st["errors"] == "0", st
    assert b % 100 == 0 and b >= 100 * (n + 8 * 3), (b, n)


@test
def rr_connections_run_at_once():
    # An echo that takes 50 ms per round trip: 10 connections at once make
    # about 200 round trips/s together; one after the other would make 20.
    def slow_echo(c):
        with c:
            while True:
                b = c.recv(64)
                if not b:
                    return
                time.sleep(0.05)
                c.sendall(b)

    addr, close = fake_server(slow_echo, 10)
    try:
        r = run(["rr", "--connect", addr, "--connections", "10", "--duration", "2", "--warmup", "1"])
    finally:
        close()
    assert r.returncode == 0, r.stderr
    f = fields(r.stdout)
    assert 120 <= float(f["rate_per_s"]) <= 210 and int(f["p50_us"]) >= 50000, f


@test
def rr_fails_on_a_wrong_echo():
    def bad_echo(c):
        with c:
            n = 0
            while True:
                b = c.recv(64)
                if not b:
                    return
                n += 1
                c.sendall(b if n < 5 else b[:-1] + b"!")

    addr, close = fake_server(bad_echo, 2)
    try:
        r = run(["rr", "--connect", addr, "--connections", "2", "--duration", "1", "--warmup", "2"])
    finally:
        close()
    assert r.returncode == 1 and "ok=0" in r.stdout, r
    assert "event=failure stage=mismatch errno=- count=2" in r.stdout, r.stdout


@test
def rr_fails_without_an_echo_or_a_server():
    s = Server("sink")  # reads, never answers
    try:
        t0 = time.monotonic()
        r = run(["rr", "--connect", s.addr, "--connections", "3", "--duration", "1", "--timeout", "1"])
        assert r.returncode == 1 and "stage=timeout errno=- count=3" in r.stdout, r
        assert time.monotonic() - t0 < 10
    finally:
        s.stop()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()
    r = run(["rr", "--connect", "127.0.0.1:%d" % port, "--connections", "4", "--duration", "1"])
    assert r.returncode == 1 and "stage=connect errno=ECONNREFUSED count=4" in r.stdout, r.stdout
    assert fields(r.stdout)["round_trips"] == "0", r.stdout


class UdpServer:
    """ptth_load udpecho on a free loopback port."""

    def __init__(self):
        self.p = subprocess.Popen([LOAD, "udpecho", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"mode=udpecho event=listening addr=127\.0\.0\.1:(\d+)", line)
        assert m, "no listening line: %r" % line
        self.addr = "127.0.0.1:%s" % m.group(1)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=10)
        assert self.p.returncode == 0, "exit %s: %s" % (self.p.returncode, err)
        stopped = [line for line in out.splitlines() if "event=stopped" in line]
        assert stopped, "no totals line: %r" % out
        return dict(kv.split("=", 1) for kv in stopped[-1].split())


def fake_udp(handle):
    """A UDP socket on loopback whose datagrams go to handle(sock, data,
    addr) in a thread; returns (addr, closer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    stop = threading.Event()

    def serve():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            handle(s, data, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join(2)
        s.close()
    return "127.0.0.1:%d" % s.getsockname()[1], close


@test
def udp_usage_errors():
    for args, what in ((["udprr"], "--connect"), (["udprr", "--connect", "127.0.0.1:1", "--size", "11"], "12 to 65507"),
                       (["udprate", "--connect", "127.0.0.1:1", "--rate", "0"], "bad value"),
                       (["udprate", "--connect", "127.0.0.1:1", "--rate", "1000000", "--duration", "1000"], "at most"),
                       (["conns", "--connect", "127.0.0.1:1", "--socks", ""], "--socks")):
        r = run(args)
        assert r.returncode == 2 and what in r.stderr, (args, r.returncode, r.stderr)


@test
def udprr_counts_round_trips_of_every_peer():
    s = UdpServer()
    try:
        r = run(["udprr", "--connect", s.addr, "--connections", "4", "--duration", "1", "--warmup", "3"])
        assert r.returncode == 0, r.stderr
        f = fields(r.stdout)
        n = int(f["round_trips"])
        assert f["ok"] == "1" and f["connections"] == "4" and f["lost"] == "0" and f["mismatched"] == "0" and n > 100, f
        assert abs(float(f["rate_per_s"]) - n / float(f["seconds"])) < 1, f
        assert 0 <= int(f["p50_us"]) <= int(f["p90_us"]) <= int(f["p99_us"]) <= int(f["max_us"]), f
    finally:
        st = s.stop()
    # the echo saw at least the counted and the warm-up round trips
    assert int(st["datagrams"]) >= n + 4 * 3 and int(st["bytes"]) == 64 * int(st["datagrams"]), (st, n)


@test
def udprr_counts_lost_datagrams_and_fails_on_wrong_ones():
    # drops every 4th datagram: the peer counts it lost after 250 ms and goes on
    seen = [0]

    def lossy(sock, data, addr):
        seen[0] += 1
        if seen[0] % 4:
            sock.sendto(data, addr)

    addr, close = fake_udp(lossy)
    try:
        r = run(["udprr", "--connect", addr, "--duration", "2", "--warmup", "0"])
    finally:
        close()
    f = fields(r.stdout)
    assert r.returncode == 0 and int(f["lost"]) >= 2 and int(f["round_trips"]) > 0, r
    assert float(f["rate_per_s"]) < 100, f  # a loss costs 250 ms

    k = [0]

    def changed(sock, data, addr):  # every 3rd echo has its last byte changed
        k[0] += 1
        sock.sendto(data[:-1] + bytes([data[-1] ^ (k[0] % 3 == 0)]), addr)

    addr, close = fake_udp(changed)
    try:
        r = run(["udprr", "--connect", addr, "--duration", "1", "--warmup", "0", "--timeout", "1"])
    finally:
        close()
    f = fields(r.stdout)
    assert r.returncode == 1 and f["ok"] == "0" and int(f["mismatched"]) > 0 and int(f["round_trips"]) > 0, r


@test
def udprr_fails_without_an_echo():
    addr, close = fake_udp(lambda sock, data, addr: None)
    try:
        t0 = time.monotonic()
        r = run(["udprr", "--connect", addr, "--duration", "1", "--timeout", "1"])
        assert r.returncode == 1 and "warm-up" in r.stderr and "ok=0" in r.stdout, r
        assert time.monotonic() - t0 < 10
    finally:
        close()


@test
def udprate_paces_and_counts_loss():
    s = UdpServer()
    try:
        t0 = time.monotonic()
        r = run(["udprate", "--connect", s.addr, "--rate", "5000", "--duration", "2", "--size", "300", "--connections", "3"])
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        f = fields(r.stdout)
        assert f["ok"] == "1" and f["sent"] == "10000" and f["received"] == "10000" and f["loss_pct"] == "0.000", f
        assert 1.9 < float(f["seconds"]) < 2.2 and 1.9 < took < 6, (f, took)  # paced, not as fast as it can
    finally:
        st = s.stop()
    assert st["datagrams"] == "10000" and st["bytes"] == str(300 * 10000), st
    # an echo that drops every 10th and sends every other 7th twice
    n = [0]

    def lossy(sock, data, addr):
        n[0] += 1
        if n[0] % 10:
            sock.sendto(data, addr)
            if n[0] % 7 == 0:
                sock.sendto(data, addr)

    addr, close = fake_udp(lossy)
    try:
        r = run(["udprate", "--connect", addr, "--rate", "2000", "--duration", "1"])
    finally:
        close()
    f = fields(r.stdout)
    assert r.returncode == 0 and f["sent"] == "2000", r
    assert f["received"] == "1800" and f["lost"] == "200" and f["loss_pct"] == "10.000" and f["duplicates"] == "257", f


def fake_socks(reply_code, conns):
    """A SOCKS5 server: no authentication, checks the CONNECT to echo.bench,
    answers reply_code, then (0) echoes."""
    def handle(c):
        with c:
            got = c.recv(3)
            if got != b"\x05\x01\x00":
                return
            c.sendall(b"\x05\x00")
            want = b"\x05\x01\x00\x03\x0aecho.bench\x00\x00"
            buf = b""
            while len(buf) < len(want):
                b = c.recv(64)
                if not b:
                    return
                buf += b
            if buf != want:
                c.sendall(b"\x05\x01\x00\x01\0\0\0\0\0\0")
                return
            # a domain-name BND.ADDR, sent in two pieces: read to its exact length
            c.sendall(bytes([5, reply_code, 0, 3, 4]) + b"ab")
            if reply_code != 0:
                return  # the client gives up at the reply code
            time.sleep(0.01)
            c.sendall(b"cd\x00\x01")
            while reply_code == 0:
                b = c.recv(64)
                if not b:
                    return
                c.sendall(b)

    return fake_server(handle, conns)


@test
def conns_socks_handshake_then_round_trip():
    addr, close = fake_socks(0, 20)
    try:
        r = run(["conns", "--connect", addr, "--count", "20", "--parallel", "5", "--socks", "echo.bench"])
    finally:
        close()
    f = fields(r.stdout)
    assert r.returncode == 0 and f["succeeded"] == "20" and float(f["rate_per_s"]) > 0, r
    addr, close = fake_socks(2, 5)  # "not allowed by the ruleset"
    try:
        r = run(["conns", "--connect", addr, "--count", "5", "--socks", "echo.bench"])
    finally:
        close()
    assert r.returncode == 1 and "stage=socks_reply_2 errno=- count=5" in r.stdout, r.stdout
    addr, close = fake_socks(0, 3)
    try:  # a wrong destination gets a general failure from the fake
        r = run(["conns", "--connect", addr, "--count", "3", "--socks", "sink.bench"])
    finally:
        close()
    assert r.returncode == 1 and "stage=socks_reply_1 errno=- count=3" in r.stdout, r.stdout
    s = Server("echo")  # no SOCKS5 at all: echo answers the greeting with itself
    try:
        r = run(["conns", "--connect", s.addr, "--count", "3", "--socks", "echo.bench"])
    finally:
        s.stop()
    assert r.returncode == 1 and "stage=socks_method" in r.stdout, r.stdout


def main():
    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, fn in enumerate(tests, 1):
        try:
            t0 = time.monotonic()
            fn()
            print("ok %d - %s (%.1f s)" % (i, fn.__name__, time.monotonic() - t0), flush=True)
        except Exception as e:  # report and go on
            failed += 1
            print("not ok %d - %s" % (i, fn.__name__))
            for line in repr(e).splitlines():
                print("# " + line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
