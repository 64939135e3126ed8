"""bench/resume.py: the resume workload of bench/run (`--workloads resume`,
issue 14; docs/performance.md "Resumable tunnels (issue 14)").

A ptth stack of its own with a cutter (a TCP forwarder that can reset every
connection it carries, CUTTER below) between each terminator and the relay:

  client -> ptth_proxy -> cutter P -> ptth_relay <- cutter S <- ptth_server -> echo/sink

Three measurements, gap and bulk on one stack, leak on a fresh one:

  gap   --resume-cuts cuts (P and S in turn) during a paced echo (PacedEcho):
        the time from each cut to the first byte reaching the client again
        (p50, p99), and that every byte came back once and in order;
  bulk  ptth_load send of --resume-bytes to the sink without cuts and with a
        cut every --resume-every seconds, alternately (--load-runs pairs):
        MB/s of each and the ratio, the byte count checked by the sink;
  leak  --resume-leak-cuts cuts, each as soon as the previous resume is
        through (a record written after the cut came back), during a paced
        echo: VmRSS and open fds of the relay, the server and the proxy at
        the start, after 100 cuts and at the end.

A cutter is this file run as a script (`python3 resume.py cutter PORT`, like
flood.py's attacker: a process of its own, so that its copying does not
share bench/run's interpreter with the paced client). It listens on a free
loopback port, prints `cutter port=N`, forwards every accepted connection to
127.0.0.1:PORT, and for each line `cut` on its stdin resets every connection
it carries (SO_LINGER 0, then close: an RST both ways, as a NAT that forgot
its mappings) and answers `cut n=PAIRS t_ns=T` (T: CLOCK_MONOTONIC, the
clock of time.monotonic_ns() in bench/run). For `cut MIN` it does the same
only when one of them has carried MIN bytes since it was accepted, and
otherwise resets nothing and answers `idle n=PAIRS most=BYTES` (the most
any of them carried). It keeps accepting: the path is back at once, so a
gap is the programs' own resume time.
"""

import bisect
import os
import re
import select
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time

RECORD = 64  # bytes per record of the paced echo: its sequence number, 8 times
PACE = 0.001  # seconds between records
SETTLE = 0.3  # seconds of flow between two gap cuts
LEAK_SAMPLE_AT = 100  # the leak check's middle sample, after this many cuts
ROLES = ("relay", "server", "proxy")
SIDES = ("proxy", "server")  # cut i is on SIDES[i % 2]'s cutter
# bytes through one connection that make it a tunnel's leg with the bulk on it
# (a set-up or a listen carries less)
FLOWING = 65536
FLOW_WAIT = 10.0  # seconds a bulk cut waits for such a leg

SMOKE = {"resume_cuts": "4", "resume_leak_cuts": "6", "resume_bytes": "64M", "resume_every": "0.02"}


def add_options(ap):
    ap.add_argument("--resume-cuts", default="50", help="(resume) cuts during the paced echo whose gaps are measured "
                    "(default 50)")
    ap.add_argument("--resume-bytes", default="4G", help="(resume) bytes of each bulk run, with and without cuts "
                    "(default 4G)")
    ap.add_argument("--resume-every", default="2", help="(resume) seconds between cuts in the bulk run (default 2)")
    ap.add_argument("--resume-leak-cuts", default="1000", help="(resume) cuts of the leak check, each as soon as the "
                    "previous resume is through (default 1000; RSS and fds after %d and at the end)" % LEAK_SAMPLE_AT)


class Broken(Exception):
    """A resume measurement that could not be made, or found a fault (a
    byte lost, duplicated or reordered, a stall): bench/run reports it."""


def percentile(values, q):
    """Nearest rank: of 50 values, p50 is the 25th and p99 the 50th."""
    v = sorted(values)
    return v[max(0, -(-len(v) * q // 100) - 1)] if v else None


def usage(pid):
    """VmRSS in KiB and open file descriptors of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_kib": rss, "fds": len(os.listdir("/proc/%d/fd" % pid))}


class Cutter:
    """bench/run's handle on a cutter process (the script mode below) in
    front of 127.0.0.1:target."""

    def __init__(self, bench, target, name):
        self.name = name
        self.proc = bench.start([sys.executable, os.path.abspath(__file__), "cutter", target], name, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        self.port = int(self._answer(("cutter port=",))["port"])

    def _answer(self, prefixes, timeout=10.0):
        out = self.proc.popen.stdout
        ready, _, _ = select.select([out], [], [], timeout)
        line = out.readline().decode() if ready else ""
        if not line.startswith(prefixes):
            raise Broken("%s: no '%s' line within %.0fs (got %r); log:\n%s" % (self.name, "' or '".join(prefixes), timeout,
                                                                                line, self.proc.log_tail()))
        return dict((kv.split("=", 1) for kv in line.split()[1:]), answer=line.split()[0])

    def cut(self):
        """Resets every connection it carries; (connections reset, the
        moment of the reset in time.monotonic_ns())."""
        self.proc.popen.stdin.write(b"cut\n")
        self.proc.popen.stdin.flush()
        f = self._answer(("cut ",))
        return int(f["n"]), int(f["t_ns"])

    def cut_if_flowing(self, min_bytes):
        """The same when one of its connections has carried min_bytes since
        it was accepted: the answer's fields, answer "cut" (n, t_ns) or
        "idle" (n, most: nothing was reset)."""
        self.proc.popen.stdin.write(b"cut %d\n" % min_bytes)
        self.proc.popen.stdin.flush()
        return self._answer(("cut ", "idle "))


class PacedEcho:
    """One tunnel to the echo backend: a thread writes a RECORD-byte record
    (its sequence number, repeated) every PACE seconds; another reads the
    echo and checks that the records come back in order, each once. A lost,
    duplicated or reordered byte shifts or breaks a record: the reader stops
    with an error naming the record. With timing on, both note when
    (time.monotonic_ns()): the writer the first record of each write
    (writes: (record, ns) in order), the reader the records back after each
    read (reads: (records back, ns))."""

    def __init__(self, port, timing=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(60)
        self.sent = self.got = 0  # records handed to the socket (or being), records back
        self.error = None
        self.writes, self.reads = ([], []) if timing else (None, None)
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer.start()
        self.reader.start()

    def _fail(self, what):
        with self.cond:
            self.error = self.error or what
            self.cond.notify_all()

    def _write(self):
        started = time.monotonic()
        try:
            while not self.stopping.is_set():
                due = int((time.monotonic() - started) / PACE) + 1  # records due by now
                if due > self.sent:
                    first = self.sent
                    with self.cond:
                        self.sent = due  # before the write: a record >= sent is not written yet
                    if self.writes is not None:
                        self.writes.append((first, time.monotonic_ns()))
                    self.sock.sendall(b"".join(struct.pack(">Q", n) * (RECORD // 8) for n in range(first, due)))
                self.stopping.wait(max(0.0, started + due * PACE - time.monotonic()))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self._fail("write after %d records: %r" % (self.sent, e))

    def _read(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                buf += data
                n = self.got
                whole = len(buf) // RECORD * RECORD
                for off in range(0, whole, RECORD):
                    if buf[off:off + RECORD] != struct.pack(">Q", n) * (RECORD // 8):
                        raise Broken("record %d (byte %d of the echo) is %r, not record %d" %
                                     (n, n * RECORD, buf[off:off + RECORD], n))
                    n += 1
                buf = buf[whole:]
                if self.reads is not None and n > self.got:
                    self.reads.append((n, time.monotonic_ns()))
                with self.cond:
                    self.got = n
                    self.cond.notify_all()
        except (OSError, Broken) as e:
            self._fail("read after %d records: %s" % (self.got, e))

    def wait_got(self, n, timeout=30.0):
        """Until record n-1 came back; Broken on an error or after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.got < n and self.error is None and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            if self.error is not None:
                raise Broken("paced echo: %s" % self.error)
            if self.got < n:
                raise Broken("paced echo stalled: record %d not back within %.0fs (%d of %d back)" % (
                    n - 1, timeout, self.got, self.sent))

    def back_ns(self, record):
        """When record came back (the read that completed it)."""
        i = bisect.bisect_right(self.reads, (record, float("inf")))
        return self.reads[i][1]

    def first_write_after(self, t_ns):
        """The first record of the first write that started after t_ns."""
        i = bisect.bisect_right([t for _, t in self.writes], t_ns)
        return self.writes[i][0]

    def finish(self, timeout=30.0):
        """Stops writing, half-closes, reads the echo to its end; every
        record must have come back. Returns the records sent."""
        self.stopping.set()
        self.writer.join(timeout)
        self.reader.join(timeout)
        self.sock.close()
        if self.error is not None:
            raise Broken("paced echo: %s" % self.error)
        if self.reader.is_alive() or self.got != self.sent:
            raise Broken("paced echo: %d records sent, %d came back" % (self.sent, self.got))
        return self.sent

    def close(self):
        self.stopping.set()
        self.sock.close()


class Stack:
    """A ptth stack with a cutter between each terminator and the relay
    (the relay at --log-level info, for its tunnel_resumed lines)."""

    def __init__(self, bench, tag):
        self.bench, self.cutters = bench, {}

        def fronts(relay_port):
            for side in SIDES:
                self.cutters[side] = Cutter(bench, relay_port, "cutter-%s-%s" % (tag, side))
            return {side: c.port for side, c in self.cutters.items()}

        self.ptth = bench.start_ptth("resume-" + tag, extra_relay=["--log-level", "info"], via=fronts)

    def cut(self, i):
        """Cut i: on the proxy's side when i is even, else on the server's."""
        n, t_ns = self.cutters[SIDES[i % 2]].cut()
        if n == 0:
            raise Broken("cut %d: the %s's cutter carried no connection" % (i + 1, SIDES[i % 2]))
        return t_ns

    def cut_flowing(self, i, stop, timeout=FLOW_WAIT):
        """Cut i as cut(i), made once a connection through that cutter has
        carried FLOWING bytes since it was accepted: the bulk's leg, not a
        set-up or a listen. Until then the cutter is asked again every 2 ms:
        ptth_load takes a moment to open its tunnel (longer in a sanitizer
        build), a cut leg to resume, and the proxy holds no connection to
        the relay while it has no tunnel. The moment of the cut; None when
        stop is set first (the transfer ended); Broken after timeout s."""
        side = SIDES[i % 2]
        deadline = time.monotonic() + timeout
        while True:
            f = self.cutters[side].cut_if_flowing(FLOWING)
            if f["answer"] == "cut":
                return int(f["t_ns"])
            if stop.is_set():
                return None
            if time.monotonic() > deadline:
                raise Broken("cut %d: no connection through the %s's cutter carried %d bytes within %g s (it carries %s, "
                             "the most %s bytes)" % (i + 1, side, FLOWING, timeout, f["n"], f["most"]))
            stop.wait(0.002)

    def conns(self):
        """Established connections of each terminator to its cutter."""
        from ptthtest import tcp_conns_to  # bench/run's path has it; the cutter process needs none of it
        return {side: tcp_conns_to(self.ptth[side].pid, self.cutters[side].port) for side in SIDES}

    def probe(self):
        """A round trip through a new tunnel. A cut proxy opens its HTTP/2
        connection again only for its next tunnel, and a cut server listens
        again on its first retry (at once, server.c); after this both are
        back, whatever the last cut was."""
        self.bench.load_client(["pingpong", "--connect", "127.0.0.1:%d" % self.ptth["echo"], "--count", "3", "--warmup", "0",
                                "--timeout", "40", "--quiet"], timeout=60)

    def usage(self, conns=None):
        """usage() of the three programs, each time in the same state: after
        probe(), once the probe's tunnel is gone, that is once the
        terminators' connections to the cutters are conns again (for the
        first sample, conns=None: the same for 0.3 s; they are returned as
        "conns"). Broken when that takes 10 s."""
        self.probe()
        deadline, seen, since = time.monotonic() + 10, None, time.monotonic()
        while True:
            now = self.conns()
            if now != seen:
                seen, since = now, time.monotonic()
            if now == conns or (conns is None and time.monotonic() - since >= 0.3):
                break
            if time.monotonic() > deadline:
                raise Broken("connections to the cutters %s, not %s as at the first sample" % (now, conns))
            time.sleep(0.02)
        return dict({r: usage(self.ptth[r].pid) for r in ROLES}, conns=now)

    def relay_resumes(self):
        """(gap_ms, replayed_up, replayed_down) of each event=tunnel_resumed
        line of the relay."""
        return [tuple(int(x) for x in m) for m in re.findall(
            r"event=tunnel_resumed [^\n]*gap_ms=(\d+) replayed_up=(\d+) replayed_down=(\d+)", self.ptth["relay"].log_text())]

    def close(self):
        self.bench.stop_ptth(self.ptth)
        for c in self.cutters.values():
            self.bench.stop(c.proc)


def measure_gaps(stack, cuts):
    """Cuts during a paced echo, SETTLE s of flow between two. The gap of a
    cut: from the cut to the echo, at the client, of the first record
    written after it (so at most PACE of waiting for that write, one round
    trip, and the resume); the round trip of the records written before the
    first cut, for comparison. And that the echo came back exact."""
    e = PacedEcho(stack.ptth["echo"])
    try:
        e.wait_got(50)
        time.sleep(SETTLE)
        times = []
        for i in range(cuts):
            times.append(stack.cut(i))
            e.wait_got(e.sent + 1)  # a record written after the cut came back
            time.sleep(SETTLE)
        records = e.finish()
    finally:
        e.close()
    gaps = [(e.back_ns(e.first_write_after(t)) - t) / 1e6 for t in times]
    rtts = [(e.back_ns(rec) - t) / 1e6 for rec, t in e.writes if rec >= 50 and t < times[0]]
    relay = stack.relay_resumes()
    if len(relay) != cuts:
        raise Broken("%d cuts, but the relay logged %d tunnel_resumed" % (cuts, len(relay)))
    return {"cuts": cuts, "gaps_ms": gaps, "p50_ms": percentile(gaps, 50), "p99_ms": percentile(gaps, 99),
            "max_ms": max(gaps), "side_p50_ms": {side: percentile(gaps[k::2], 50) for k, side in enumerate(SIDES)},
            "rtt_p50_ms": percentile(rtts, 50), "records": records, "bytes": records * RECORD, "exact": True,
            "relay_gap_ms": [r[0] for r in relay], "relay_p50_ms": percentile([r[0] for r in relay], 50)}


def bulk_once(bench, stack, nbytes, every):
    """One ptth_load send of nbytes to the sink (count checked), with a
    cut every `every` seconds meanwhile (0: none), each on the bulk's leg
    (Stack.cut_flowing); (MB/s, cuts made)."""
    stop, cuts, errors = threading.Event(), [], []

    def cutting():
        try:
            while not stop.wait(every):
                t_ns = stack.cut_flowing(len(cuts), stop)
                if t_ns is None:
                    break
                cuts.append(t_ns)
        except Broken as e:
            errors.append(str(e))

    th = threading.Thread(target=cutting, daemon=True)
    if every:
        th.start()
    try:
        f = bench.load_client(["send", "--connect", "127.0.0.1:%d" % stack.ptth["sink"], "--bytes", nbytes, "--timeout",
                               "30", "--quiet"], timeout=600)
    finally:
        stop.set()
        if every:
            th.join(15)
    if errors:
        raise Broken(errors[0])
    return float(f["mb_per_s"]), len(cuts)


def measure_bulk(bench, stack, runs):
    """Pairs of bulk runs, without and with cuts, the order swapped from
    pair to pair."""
    every = float(bench.args.resume_every)
    out = {"bytes": bench.args.resume_bytes, "every_s": every, "without_mb_s": [], "with_mb_s": [], "cuts": []}
    resumed = len(stack.relay_resumes())
    for r in range(runs):
        if r > 0 and bench.time_left() < 60 and not bench.smoke:
            bench.notes.append("resume: bulk pair %d and later skipped to stay within the time limit" % (r + 1))
            break
        for with_cuts in ((False, True) if r % 2 == 0 else (True, False)):
            stack.probe()  # both terminators are back after the last cut
            mb, n = bulk_once(bench, stack, bench.args.resume_bytes, every if with_cuts else 0)
            out["with_mb_s" if with_cuts else "without_mb_s"].append(mb)
            if with_cuts:
                out["cuts"].append(n)
    replays = stack.relay_resumes()[resumed:]
    out["replayed_bytes"] = sum(up + down for _, up, down in replays)
    out["median_without_mb_s"] = percentile(out["without_mb_s"], 50)
    out["median_with_mb_s"] = percentile(out["with_mb_s"], 50)
    out["ratio"] = out["median_with_mb_s"] / out["median_without_mb_s"]
    return out


def measure_leak(stack, cuts):
    """Cuts during a paced echo, each as soon as the previous resume is
    through; usage() of the three programs at the start, after
    LEAK_SAMPLE_AT cuts and at the end, each after half a second of quiet
    flow and in the state of the first (Stack.usage)."""
    e = PacedEcho(stack.ptth["echo"], timing=False)
    try:
        e.wait_got(50)
        time.sleep(0.5)
        samples = [dict(stack.usage(), cuts=0)]  # in order: results.json sorts keys
        conns = samples[0]["conns"]
        started, sampling = time.monotonic(), 0.0
        for i in range(cuts):
            stack.cut(i)
            e.wait_got(e.sent + 1)
            if i + 1 == LEAK_SAMPLE_AT and cuts > LEAK_SAMPLE_AT:
                t = time.monotonic()
                time.sleep(0.5)
                samples.append(dict(stack.usage(conns), cuts=LEAK_SAMPLE_AT))
                sampling = time.monotonic() - t
        seconds = time.monotonic() - started - sampling
        time.sleep(0.5)
        samples.append(dict(stack.usage(conns), cuts=cuts))
        records = e.finish()
    finally:
        e.close()
    resumes = len(stack.relay_resumes())
    if resumes != cuts:
        raise Broken("%d cuts, but the relay logged %d tunnel_resumed" % (cuts, resumes))
    return {"cuts": cuts, "seconds": seconds, "samples": samples, "records": records, "exact": True}


def run(bench, log):
    """The three measurements; the figures for results.json["resume"]. A
    part that could end after the run's time limit is skipped with a note."""
    out = {}
    cuts, leak_cuts = int(bench.args.resume_cuts), int(bench.args.resume_leak_cuts)

    def fits(part, seconds):
        if bench.smoke or bench.time_left() >= seconds:
            return True
        bench.notes.append("resume: %s skipped to stay within the time limit (%.0f s left, about %.0f s needed)" % (
            part, bench.time_left(), seconds))
        return False

    if fits("the gap run", cuts * (SETTLE + 0.05) + 60):
        stack = Stack(bench, "gap")
        try:
            out["gap"] = g = measure_gaps(stack, cuts)
            log("resume: %d cuts, gap p50 %.1f p99 %.1f max %.1f ms (round trip without a cut %.2f ms; relay's gap_ms "
                "p50 %d), %d records echoed exact" % (cuts, g["p50_ms"], g["p99_ms"], g["max_ms"], g["rtt_p50_ms"],
                                                      g["relay_p50_ms"], g["records"]))
            out["bulk"] = b = measure_bulk(bench, stack, int(bench.args.load_runs))
            log("resume: bulk %s MB/s without cuts, %s MB/s with a cut every %ss (%s cuts, %d bytes replayed): %.2fx" % (
                b["without_mb_s"], b["with_mb_s"], b["every_s"], b["cuts"], b["replayed_bytes"], b["ratio"]))
        finally:
            stack.close()
    if fits("the leak check", leak_cuts * 0.02 + 60):
        stack = Stack(bench, "leak")
        try:
            out["leak"] = k = measure_leak(stack, leak_cuts)
            log("resume: %d cuts in %.1f s; RSS KiB / fds: %s" % (leak_cuts, k["seconds"], "; ".join(
                "%s %s" % (r, " -> ".join("%d/%d" % (v[r]["rss_kib"], v[r]["fds"]) for v in k["samples"]))
                for r in ROLES)))
        finally:
            stack.close()
    return out


# ---- the cutter (its own process) --------------------------------------------

def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    """One forwarded connection: a (accepted) and b (to the target); out[s]
    holds what was read for s and not yet written; eof[s]: s's peer ended its
    side and s was (or will be, once out[s] is written) half-closed."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.out = {a: b"", b: b""}
        self.eof = {a: False, b: False}
        self.peer = {a: b, b: a}
        self.carried = 0  # bytes read from either side


def cutter(target):
    """The cutter's loop (see the top of this file): one selector over the
    listener, stdin and both sockets of every pair; each direction copies
    through one pending buffer, reading its source only while that buffer
    is empty (backpressure); a reset on one side resets the other."""
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin, selectors.EVENT_READ, "control")
    pairs = set()
    masks = {}  # socket -> events it is registered for (absent: none)
    print("cutter port=%d" % lsock.getsockname()[1], flush=True)

    def watch(pair, s):
        # read s while nothing waits to be written to its peer; write s
        # while something waits for it
        peer = pair.peer[s]
        ev = (0 if pair.out[peer] or pair.eof[peer] else selectors.EVENT_READ) | (selectors.EVENT_WRITE if pair.out[s] else 0)
        old = masks.pop(s, 0)
        if ev and old:
            sel.modify(s, ev, pair)
        elif ev:
            sel.register(s, ev, pair)
        elif old:
            sel.unregister(s)
        if ev:
            masks[s] = ev

    def drop(pair, reset=True):
        for s in (pair.a, pair.b):
            if masks.pop(s, 0):
                sel.unregister(s)
            if reset:
                _reset(s)
            else:
                s.close()
        pairs.discard(pair)

    while True:
        for key, ev in sel.select():
            if key.data == "control":
                line = sys.stdin.readline()
                if not line:
                    return
                words = line.split()
                if words[:1] == ["cut"]:
                    t_ns, n = time.monotonic_ns(), len(pairs)
                    most = max((p.carried for p in pairs), default=0)
                    if len(words) > 1 and (n == 0 or most < int(words[1])):
                        print("idle n=%d most=%d" % (n, most), flush=True)
                        continue
                    for pair in list(pairs):
                        drop(pair)
                    print("cut n=%d t_ns=%d" % (n, t_ns), flush=True)
                continue
            if key.data == "listen":
                try:
                    a, _ = lsock.accept()
                    b = socket.create_connection(("127.0.0.1", target), timeout=5)
                except OSError:
                    continue
                pair = _Pair(a, b)
                pairs.add(pair)
                for s in (a, b):
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    watch(pair, s)
                continue
            pair, s = key.data, key.fileobj
            if pair not in pairs:
                continue  # dropped earlier in this round
            peer = pair.peer[s]
            try:
                if ev & selectors.EVENT_WRITE and pair.out[s]:
                    pair.out[s] = pair.out[s][s.send(pair.out[s]):]
                    if not pair.out[s] and pair.eof[s]:
                        s.shutdown(socket.SHUT_WR)
                if ev & selectors.EVENT_READ and not pair.out[peer] and not pair.eof[peer]:
                    data = s.recv(262144)
                    pair.carried += len(data)
                    if data:
                        try:
                            data = data[peer.send(data):]
                        except BlockingIOError:
                            pass
                        pair.out[peer] = data
                    else:
                        pair.eof[peer] = True
                        if not pair.out[peer]:
                            peer.shutdown(socket.SHUT_WR)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                drop(pair)  # one side reset: reset the other, as a NAT would
                continue
            if all(pair.eof[x] and not pair.out[x] for x in (pair.a, pair.b)):
                drop(pair, reset=False)  # both ended cleanly
                continue
            watch(pair, s)
            watch(pair, peer)


if __name__ == "__main__" and sys.argv[1:2] == ["cutter"]:
    cutter(int(sys.argv[2]))
