"""bench/flood.py: the flood workload of bench/run (`--flood`, issue 12).

A ptth stack with the relay's hardening at its defaults
(--max-connections-per-address 512, --auth-fail-limit 20, --auth-fail-penalty
60). The legitimate client (ptth_proxy on 127.0.0.1, ptth_server on
127.0.0.2) measures tunnel set-ups per second (ptth_load conns) and 64-byte
ping-pong p50 (ptth_load pingpong), first alone, then while two other
loopback addresses attack the relay:

  127.0.0.3  a connection flood: keeps FLOOD_CONNS connections open,
             reconnecting each one that the relay closes (so it keeps
             hitting the per-address cap);
  127.0.0.4  a bad-key spray: POST listen with an unknown key, keep-alive,
             as fast as one process can.

The attackers run as one separate Python process (`python3 flood.py PORT
SECONDS`, its own CPU, like a real attacker on another host would not share
the legitimate client's), started before the measurement and stopped
after it. Only loopback is used. Returns the figures of both runs and the
relay's log line count, for results.json.
"""

import os
import selectors
import socket
import subprocess
import sys
import time

FLOOD_CONNS = 2000
SETUP_TUNNELS = 1000
SETUP_PARALLEL = 32
_stop = False  # set by SIGTERM in the attacker process


def _connection_flood(port, until, sel, socks):
    """Keeps FLOOD_CONNS connections from 127.0.0.3 open (non-blocking)."""
    while len(socks) < FLOOD_CONNS and time.monotonic() < until:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind(("127.0.0.3", 0))
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        socks.add(s)
        sel.register(s, selectors.EVENT_READ)


def attack(port, seconds):
    """The attacker process: both floods until `seconds` passed."""
    until = time.monotonic() + seconds
    sel, socks = selectors.DefaultSelector(), set()
    key = "A" * 43  # well-formed, unknown to the relay
    req = ("POST /v1/servers/bench/listen HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n"
           "PTTH-Ports: x\r\nContent-Length: 0\r\n\r\n" % key).encode()
    spray, pending = None, b""
    sent = answered = 0
    while time.monotonic() < until and not _stop:
        _connection_flood(port, until, sel, socks)
        if spray is None:
            try:
                spray = socket.create_connection(("127.0.0.1", port), timeout=2, source_address=("127.0.0.4", 0))
                spray.setblocking(False)
                sel.register(spray, selectors.EVENT_READ)
            except OSError:
                spray = None
        if spray is not None:
            if not pending:  # a batch of pipelined requests; a partial send keeps its rest
                pending = req * 64
                sent += 64
            try:
                pending = pending[spray.send(pending):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                sel.unregister(spray)
                spray.close()
                spray, pending = None, b""
        for k, _ in sel.select(timeout=0.001):
            s = k.fileobj
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if s is spray and data:
                answered += data.count(b"HTTP/1.1 ")
                continue
            sel.unregister(s)
            s.close()
            if s is spray:
                spray, pending = None, b""
            else:
                socks.discard(s)  # refused at accept: come again
    print("flood sent=%d answered=%d open=%d" % (sent, answered, len(socks)), flush=True)


def _measure(bench, stack):
    echo = "127.0.0.1:%d" % stack["echo"]
    setup = bench.load_client(["conns", "--connect", echo, "--count", SETUP_TUNNELS, "--parallel", SETUP_PARALLEL,
                               "--timeout", "30", "--quiet"], timeout=120)
    ping = bench.load_client(["pingpong", "--connect", echo, "--count", bench.args.pingpongs, "--warmup",
                              bench.args.warmup, "--timeout", "30", "--quiet"], timeout=120)
    return {"setup_per_s": float(setup["rate_per_s"]), "setup_failed": int(setup.get("failed", 0)),
            "ping_p50_us": float(ping["p50_us"]), "ping_p99_us": float(ping["p99_us"])}


def run(bench, log):
    """The workload on a fresh stack (bench/run's Bench `bench`); returns
    {"without": {...}, "with": {...}, "relay_log_lines": N, "attacker": "..."}."""
    stack = bench.start_ptth("flood", extra_relay=["--max-connections-per-address", "512"])
    try:
        out = {"without": _measure(bench, stack)}
        log("flood: without a flood: %s" % out["without"])
        lines0 = len(stack["relay"].log_text().splitlines())
        seconds = 60
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(stack["relay_port"]), str(seconds)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2.0)  # the flood at full strength first
            t0 = time.monotonic()
            out["with"] = _measure(bench, stack)
            out["with"]["seconds"] = round(time.monotonic() - t0, 1)
        finally:
            p.terminate()
            stdout, stderr = p.communicate(timeout=20)
        out["attacker"] = (stdout.strip() or stderr.strip()[-300:])
        out["relay_log_lines"] = len(stack["relay"].log_text().splitlines()) - lines0
        log("flood: while flooded: %s; attacker: %s; relay log lines meanwhile: %d"
            % (out["with"], out["attacker"], out["relay_log_lines"]))
        return out
    finally:
        bench.stop_ptth(stack)


def _on_term(signum, frame):
    global _stop
    _stop = True


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, _on_term)
    attack(int(sys.argv[1]), float(sys.argv[2]))
