"""The reporting half of bench/run (docs/performance.md): the targets of
issues 7 and 11 and the systems and workloads they are about, issue 15's
UDP and SOCKS5 rows, the tables
(terminal and Markdown), the generated section of docs/performance.md, the
plot and the smoke run's TAP checks. Everything here reads the results dict
that Bench.run() builds (also written as bench/out/results.json); nothing
here starts a process other than gnuplot."""

import os
import re
import shutil
import statistics
import subprocess
import time

# Issue 7's targets.
TARGET_TPUT_VS_SOCAT = 1.0
TARGET_TPUT_VS_SSH = 2.0
TARGET_P50_VS_SOCAT = 1.5
TARGET_SETUP_RATE = 2000.0
TARGET_RSS_RELAY_KIB = 16.0
TARGET_RSS_TERM_KIB = 64.0
TARGET_TERM_CONNS = 8

# Issue 11's targets: (label, metric, system compared, goal, higher is better).
TARGETS_11 = [
    ("one tunnel throughput vs socat x3", "throughput_mb_s", "socat", 1.2, True),
    ("64-byte ping-pong p50 vs socat x3", "p50_us", "socat", 0.9, False),
    ("rr, 50 connections, vs ssh -L", "rr_per_s", "ssh", 1.5, True),
    ("rr, 50 connections, vs direct", "rr_per_s", "direct", 0.6, True),
    ("redis-benchmark GET vs ssh -L", "redis_per_s", "ssh", 1.5, True),
    ("redis-benchmark GET vs direct", "redis_per_s", "direct", 0.6, True),
    ("wrk keep-alive vs ssh -L", "wrk_per_s", "ssh", 1.5, True),
    ("wrk keep-alive vs direct", "wrk_per_s", "direct", 0.6, True),
    ("8 parallel tunnels bulk vs socat x3", "par8_mb_s", "socat", 1.0, True),
]
TARGET_TLS_VS_SSH = 1.3

SYSTEMS = ("direct", "socat", "ssh", "ptth", "ptth_chunks", "ptth_tls", "ptth_before")
SYSTEM_LABELS = {"direct": "direct", "socat": "socat x3", "ssh": "ssh -L", "ptth": "ptth", "ptth_chunks": "ptth chunks",
                 "ptth_tls": "ptth TLS", "ptth_before": "ptth before"}
PTTH_VARIANTS = ("ptth", "ptth_chunks", "ptth_before")  # cleartext ptth, compared in the issue 11 table

# Workloads in the order they run, each with the metrics it yields and the
# backend it needs (a key of Bench.targets).
WORKLOADS = {
    "throughput": (("throughput_mb_s",), "sink"),
    "par8": (("par8_mb_s",), "sink"),
    "pingpong": (("p50_us", "p99_us"), "echo"),
    "rr": (("rr_per_s", "rr_p50_us", "rr_p99_us"), "echo"),
    "redis": (("redis_per_s", "redis_p50_us", "redis_p99_us"), "redis"),
    "wrk": (("wrk_per_s", "wrk_p50_us", "wrk_p99_us"), "http"),
    # issue 15: UDP through ptth_proxy's UDP forward, and SOCKS5 set-ups
    "udp": (("udp_rr1_per_s", "udp_rr1_p50_us", "udp_rr1_lost", "udp_rr16_per_s", "udp_rr16_p50_us", "udp_rr16_lost",
             "udp_sent", "udp_received", "udp_loss_pct", "udp_send_rate_per_s"), "udp"),
    "socks": (("socks_setup_per_s", "socks_setup_p50_ms", "forward_setup_per_s", "forward_setup_p50_ms"), "echo"),
}
METRICS = [m for ms, _ in WORKLOADS.values() for m in ms]
RR_CONNECTIONS = 50
PAR_TUNNELS = 8
UDP_PEERS = 16  # the many-peer UDP round-trip row (udp_rr16_*)
# Workloads that run on some systems only (the others: on all): UDP has no
# socat or ssh -L counterpart here, SOCKS5 is ptth's own front.
WORKLOAD_SYSTEMS = {"udp": ("direct", "ptth", "ptth_before"), "socks": ("ptth", "ptth_before")}
# Workloads that run after the scale runs, each on ptth stacks of its own
# (not per system): resume (issue 14, bench/resume.py).
OWN_STACK_WORKLOADS = ("resume",)
# Metrics for which 0 is a measurement, not a missing number.
ZERO_OK = ("udp_rr1_lost", "udp_rr16_lost", "udp_loss_pct")


def median(values):
    return statistics.median(values) if values else None


# ---- reporting --------------------------------------------------------------

def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(results):
    sysres = results["systems"]

    def med(name, key):
        return sysres.get(name, {}).get(key)

    ok_scale = [s for s in results["scale"] if "error" not in s]
    rows = []

    def row(name, measured, target, met):
        rows.append({"target": name, "measured": measured, "goal": target, "met": met})

    def paired(a, b, key):
        """Ratios a/b of the runs where both systems produced a number: the
        spread says how much the machine moved during the run."""
        ra = sysres.get(a, {}).get("by_run", {}).get(key, [])
        rb = sysres.get(b, {}).get("by_run", {}).get(key, [])
        return [x / y for x, y in zip(ra, rb) if x is not None and y]

    def spread(rs):
        return "; per run %.2f-%.2fx" % (min(rs), max(rs)) if len(rs) > 1 else ""

    pt, sc, sh = med("ptth", "median_throughput_mb_s"), med("socat", "median_throughput_mb_s"), med("ssh", "median_throughput_mb_s")
    r = ratio(pt, sc)
    row("throughput vs socat x3", None if r is None else "%.2fx (%.0f vs %.0f MB/s%s)" %
        (r, pt, sc, spread(paired("ptth", "socat", "throughput_mb_s"))), ">= %.1fx" % TARGET_TPUT_VS_SOCAT,
        None if r is None else r >= TARGET_TPUT_VS_SOCAT)
    r = ratio(pt, sh)
    row("throughput vs ssh -L", None if r is None else "%.2fx (%.0f vs %.0f MB/s%s)" %
        (r, pt, sh, spread(paired("ptth", "ssh", "throughput_mb_s"))), ">= %.1fx" % TARGET_TPUT_VS_SSH,
        None if r is None else r >= TARGET_TPUT_VS_SSH)
    pl, sl = med("ptth", "median_p50_us"), med("socat", "median_p50_us")
    r = ratio(pl, sl)
    row("ping-pong p50 vs socat x3", None if r is None else "%.2fx (%.0f vs %.0f us%s)" %
        (r, pl, sl, spread(paired("ptth", "socat", "p50_us"))), "<= %.1fx" % TARGET_P50_VS_SOCAT,
        None if r is None else r <= TARGET_P50_VS_SOCAT)
    p99 = med("ptth", "median_p99_us")
    row("ping-pong p99", None if p99 is None else "%.0f us (socat x3 %s us)" % (p99, "%.0f" % med("socat", "median_p99_us")
                                                                             if med("socat", "median_p99_us") else "-"),
        "reported", None if p99 is None else True)
    if ok_scale:
        n = ok_scale[0]["tunnels"]
        worst_ok = min(s["succeeded"] for s in ok_scale)
        row("%d concurrent tunnels, one round trip each" % n, "%d of %d succeeded (worst of %d runs)" % (worst_ok, n, len(ok_scale)),
            "all", worst_ok == n)
        rate = median([s["rate_per_s"] for s in ok_scale])
        row("tunnel set-up rate", "%.0f /s" % rate, ">= %d /s" % TARGET_SETUP_RATE, rate >= TARGET_SETUP_RATE)
        for role, lim in (("relay", TARGET_RSS_RELAY_KIB), ("server", TARGET_RSS_TERM_KIB), ("proxy", TARGET_RSS_TERM_KIB)):
            v = median([s["rss_per_tunnel_kib"][role] for s in ok_scale])
            row("RSS per open tunnel, ptth_%s" % role, "%.1f KiB" % v, "<= %.0f KiB" % lim, v <= lim)
        for role in ("server", "proxy"):
            v = max(s["tcp_conns_to_relay"][role] for s in ok_scale)
            row("TCP connections ptth_%s -> relay" % role, "%d (max of runs)" % v, "<= %d" % TARGET_TERM_CONNS,
                v <= TARGET_TERM_CONNS)
        v = max(s["proxy_stop_s"] for s in ok_scale)
        row("ptth_proxy exit after SIGTERM, %d tunnels open" % n, "%.2f s (max of runs)" % v, "reported", True)
    else:
        row("scale (concurrent tunnels, set-up rate, RSS, connections)", None, "see issue 7", None)
    tl = med("ptth_tls", "median_throughput_mb_s")
    row("throughput over TLS", None if tl is None else "%.0f MB/s (cleartext %s)" % (tl, "%.0f" % pt if pt else "-"), "reported",
        None if tl is None else True)
    return rows


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def targets_11(results):
    """Issue 11's targets for each cleartext ptth variant (ptth, ptth chunks,
    ptth before): the ratio of medians, the ratios of the runs where both
    systems produced a number (their spread says how much the machine moved),
    and whether the goal is met. The TLS row compares ptth TLS."""
    sysres = results["systems"]

    def cell(a, b, metric, goal, higher):
        ma, mb = sysres.get(a, {}).get("median_" + metric), sysres.get(b, {}).get("median_" + metric)
        r = ratio(ma, mb)
        if r is None:
            return None
        ra, rb = (sysres[s]["by_run"][metric] for s in (a, b))
        per = [x / y for x, y in zip(ra, rb) if x is not None and y]
        return {"system": a, "ratio": r, "value": ma, "reference": mb, "per_run": per, "met": r >= goal if higher else r <= goal}

    rows = []
    tls = ("TLS bulk vs ssh -L (ptth TLS)", "throughput_mb_s", "ssh", TARGET_TLS_VS_SSH, True)
    for label, metric, ref, goal, higher in TARGETS_11 + [tls]:
        cols = {"ptth": "ptth_tls"} if metric == tls[1] and ref == tls[2] else {v: v for v in PTTH_VARIANTS}
        rows.append({"target": label, "metric": metric, "against": ref, "goal": "%s %.1fx" % (">=" if higher else "<=", goal),
                     "cells": {col: cell(s, ref, metric, goal, higher) for col, s in cols.items()}})
    return rows


def targets_11_rows(results):
    cols = [v for v in PTTH_VARIANTS if v in results["systems"] and "error" not in results["systems"][v]]

    def show(c):
        if c is None:
            return "-"
        per = c["per_run"]
        spread = " (%.2f-%.2f)" % (min(per), max(per)) if len(per) > 1 else ""
        return "%.2fx%s %s" % (c["ratio"], spread, "yes" if c["met"] else "**no**")

    return ["target (issue 11)", "goal"] + [SYSTEM_LABELS[v] for v in cols], [
        [t["target"], t["goal"]] + [show(t["cells"].get(v)) for v in cols] for t in results.get("targets_11", [])]


def system_rows(results):
    rows, lat = [], []
    for name in SYSTEMS:
        res = results["systems"].get(name)
        if res is None:
            continue
        if "error" in res:
            rows.append([SYSTEM_LABELS[name], "did not start"] + [""] * (len(SYS_HEADER) - 2))
            continue

        def m(key, spec="%.0f"):
            return fmt(res.get("median_" + key), spec)

        def pair(key):
            return "%s / %s" % (m(key + "_p50_us"), m(key + "_p99_us"))

        runs = "/".join(str(len(res[ms[0]])) for k, (ms, _) in WORKLOADS.items()
                        if k in results.get("workloads", WORKLOADS) and k not in WORKLOAD_SYSTEMS)
        rows.append([SYSTEM_LABELS[name], m("throughput_mb_s"), m("par8_mb_s"), "%s / %s" % (m("p50_us"), m("p99_us")),
                     m("rr_per_s"), m("redis_per_s"), m("wrk_per_s"), runs])
        lat.append([SYSTEM_LABELS[name], pair("rr"), pair("redis"), pair("wrk")])
    return rows, lat


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def text_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


SYS_HEADER = ["system", "MB/s 1 tunnel", "MB/s 8 tunnels", "ping-pong p50 / p99 us", "rr round trips/s", "redis GET/s",
              "wrk requests/s", "runs"]
LAT_HEADER = ["system (50 connections)", "rr p50 / p99 us", "redis GET p50 / p99 us", "wrk p50 / p99 us"]
TGT_HEADER = ["target (issue 7)", "measured (medians)", "goal", "met"]


def target_rows(results):
    return [[t["target"], t["measured"] or "not measured", t["goal"],
             {True: "yes", False: "**no**", None: "-"}[t["met"]]] for t in results["targets"]]


def issue15_rows(results):
    """Issue 15's rows: for each ptth variant that ran them, the UDP figures
    against direct and the SOCKS5 set-up rate against the same proxy's
    --forward; ratio of medians, per-run range of the ratios in parentheses."""
    sysres, cfg = results["systems"], results["config"]
    cols = [v for v in PTTH_VARIANTS if "error" not in sysres.get(v, {"error": 1})
            and any(k in sysres[v].get("workloads", ()) for k in WORKLOAD_SYSTEMS)]
    d = sysres.get("direct", {})

    def med(res, m):
        return res.get("median_" + m)

    def ratio_cell(res, m, ref_res, ref_m, spec):
        a, b = med(res, m), med(ref_res, ref_m)
        if a is None or b is None:
            return "-"
        ra, rb = res["by_run"].get(m, []), ref_res.get("by_run", {}).get(ref_m, [])
        per = [x / y for x, y in zip(ra, rb) if x is not None and y]
        spread = " (%.2f-%.2f)" % (min(per), max(per)) if len(per) > 1 else ""
        return "%s vs %s = %.2fx%s" % (spec % a, spec % b, a / b if b else float("nan"), spread)

    def loss_cell(res):
        sent, got, loss = med(res, "udp_sent"), med(res, "udp_received"), med(res, "udp_loss_pct")
        if sent is None:
            return "-"
        worst = max(v for v in res["by_run"]["udp_loss_pct"] if v is not None)
        return "%.0f of %.0f, loss %.2f %% (worst run %.2f %%)" % (got, sent, loss, worst)

    peers = cfg.get("udp_peers", UDP_PEERS)
    rows = [
        ["UDP round trips/s, 1 peer, 64 B (vs direct)"] + [ratio_cell(sysres[v], "udp_rr1_per_s", d, "udp_rr1_per_s", "%.0f")
                                                          for v in cols],
        ["UDP round trips/s, %d peers, 64 B (vs direct)" % peers] + [
            ratio_cell(sysres[v], "udp_rr%d_per_s" % peers, d, "udp_rr%d_per_s" % peers, "%.0f") for v in cols],
        ["UDP round trip p50 us, 1 peer (vs direct)"] + [ratio_cell(sysres[v], "udp_rr1_p50_us", d, "udp_rr1_p50_us", "%.0f")
                                                         for v in cols],
        ["UDP %s/s x %s B for %s s: echoed of sent" % (cfg.get("udp_rate"), cfg.get("udp_size"), cfg.get("udp_seconds"))]
        + [loss_cell(sysres[v]) for v in cols],
        ["the same, direct"] + [loss_cell(d) for v in cols],
        ["SOCKS5 set-ups/s vs --forward (%s tunnels, %s at once)" % (cfg.get("socks_conns"), cfg.get("socks_parallel"))]
        + [ratio_cell(sysres[v], "socks_setup_per_s", sysres[v], "forward_setup_per_s", "%.0f") for v in cols],
    ]
    return ["row (issue 15)"] + [SYSTEM_LABELS[v] for v in cols], rows if cols else []


TARGET_RESUME_P50_MS = 300.0  # issue 14: p50 from a cut to bytes flowing again
LEAK_RSS_MARGIN_KIB = 128  # issue 14's "flat": RSS growth allowed between the leak check's middle and last sample
RESUME_HEADER = ["resume (issue 14)", "measured", "goal", "met"]


def leak_flat(samples, role):
    """Flat after warm-up: from the middle sample (or the first, when the
    run had no middle one) to the last, the same fds and RSS grown by at
    most LEAK_RSS_MARGIN_KIB."""
    a, b = samples[1 if len(samples) > 2 else 0][role], samples[-1][role]
    return a["fds"] == b["fds"] and b["rss_kib"] - a["rss_kib"] <= LEAK_RSS_MARGIN_KIB


def resume_rows(results):
    """Issue 14's rows from results["resume"] (bench/resume.py), [] when the
    workload did not run."""
    res = results.get("resume")
    if res is None:
        return []
    if "error" in res:
        return [["resume workload", "failed: %s" % res["error"].splitlines()[0], "-", "**no**"]]
    rows, met = [], {True: "yes", False: "**no**"}
    g = res.get("gap")
    if g:
        side = g["side_p50_ms"]
        rows += [["ms from a cut to the next byte at the client, p50 (%d cuts)" % g["cuts"],
                  "%.1f (proxy side %.1f, server side %.1f; a round trip without a cut %.2f)" % (
                      g["p50_ms"], side["proxy"], side["server"], g["rtt_p50_ms"]),
                  "<= %.0f" % TARGET_RESUME_P50_MS, met[g["p50_ms"] <= TARGET_RESUME_P50_MS]],
                 ["the same, p99 / max", "%.1f / %.1f (the relay's gap_ms p50 %d)" % (g["p99_ms"], g["max_ms"], g["relay_p50_ms"]),
                  "reported", "yes"],
                 ["paced echo across the cuts: bytes lost, duplicated or reordered",
                  "0 of %d (%d records, each once, in order)" % (g["bytes"], g["records"]), "0", "yes"]]
    b = res.get("bulk")
    if b:
        rows.append(["bulk MB/s with a cut every %g s vs without (%s each)" % (b["every_s"], b["bytes"]),
                     "%.2fx (%.0f vs %.0f; %d cuts, %d bytes replayed, count checked)" % (
                         b["ratio"], b["median_with_mb_s"], b["median_without_mb_s"], sum(b["cuts"]), b["replayed_bytes"]),
                     "reported", "yes"])
    k = res.get("leak")
    if k:
        at = ", ".join(str(v["cuts"]) for v in k["samples"])
        for role in ("relay", "server", "proxy"):
            rows.append(["ptth_%s RSS KiB / fds at %s cuts" % (role, at),
                         ", ".join("%d / %d" % (v[role]["rss_kib"], v[role]["fds"]) for v in k["samples"]),
                         "flat (+%d KiB, same fds)" % LEAK_RSS_MARGIN_KIB, met[leak_flat(k["samples"], role)]])
        rows.append(["%d back-to-back cuts took" % k["cuts"],
                     "%.1f s (paced echo exact: %d records)" % (k["seconds"], k["records"]), "reported", "yes"])
    return rows


def print_report(results):
    rows, lat = system_rows(results)
    hdr11, rows11 = targets_11_rows(results)
    hdr15, rows15 = issue15_rows(results)
    for header, body in ((SYS_HEADER, rows), (LAT_HEADER, lat), (TGT_HEADER, target_rows(results)), (hdr11, rows11),
                         (hdr15, rows15), (RESUME_HEADER, resume_rows(results))):
        if not body:
            continue
        print(text_table(header, [[str(c).replace("**", "") for c in r] for r in body]))
        print()
    for n in results["notes"]:
        print("note: " + n)


def docs_section(results, png_name):
    cfg = results["config"]
    lines = ["<!-- bench:results:begin (generated by bench/run; edits here are overwritten) -->", "",
             "Measured %s on %d CPUs (kernel %s), load average %s at start and %s at the end; "
             "%s runs of throughput (%s bytes each) and ping-pong (%s round trips of 64 bytes), %s runs of 8 parallel "
             "tunnels (%s bytes in all), rr and wrk (%s s each) and redis-benchmark (%s GETs), alternating the systems; "
             "%s scale run(s) of %s tunnels (%s setting up at once). Medians; the whole run took %.0f s." %
             (cfg.get("date") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cfg["cpus"], cfg["kernel"], " ".join(cfg["loadavg_start"]),
              " ".join(cfg["loadavg_end"]), cfg["runs"], cfg["bytes"], cfg["pingpongs"], cfg.get("load_runs", "-"),
              cfg.get("par_bytes", "-"), cfg.get("rr_seconds", "-"), cfg.get("requests", "-"), cfg["scale_runs"], cfg["tunnels"],
              cfg["parallel"], cfg["seconds"]), ""]
    if cfg.get("before"):
        lines += ["ptth before: the programs of %s." % cfg["before"], ""]
    if cfg["server_args"] or cfg["proxy_args"]:
        lines += ["Extra options: ptth_server %s; ptth_proxy %s." % (" ".join(cfg["server_args"]) or "-",
                                                                     " ".join(cfg["proxy_args"]) or "-"), ""]
    rows, lat = system_rows(results)
    hdr11, rows11 = targets_11_rows(results)
    lines += [markdown_table(SYS_HEADER, rows), "", "Request/response latency, 50 connections at once:", "",
              markdown_table(LAT_HEADER, lat), "", markdown_table(TGT_HEADER, target_rows(results)), "",
              "Issue 11 (ratio of medians, per-run range in parentheses, goal met):", "", markdown_table(hdr11, rows11), ""]
    hdr15, rows15 = issue15_rows(results)
    if rows15:
        lines += ["Issue 15, UDP and SOCKS5 (ptth vs direct to the UDP echo; `--socks` vs `--forward` of the same "
                  "ptth_proxy; medians, per-run range of the ratio in parentheses):", "", markdown_table(hdr15, rows15), ""]
    if resume_rows(results):
        lines += ["Issue 14, resumable tunnels (bench/resume.py: a cutter between each terminator and the relay):", "",
                  markdown_table(RESUME_HEADER, resume_rows(results)), ""]
    runs = int(cfg["runs"])
    per_run = []
    for name in SYSTEMS:
        res = results["systems"].get(name)
        if not res or "by_run" not in res:
            continue
        per_run.append([SYSTEM_LABELS[name]] + ["%s / %s" % (fmt(t), fmt(p)) for t, p in
                                                zip(res["by_run"]["throughput_mb_s"], res["by_run"]["p50_us"])])
    if per_run and runs > 1:
        lines += ["Every run (throughput MB/s / ping-pong p50 us); in each run all systems were measured one after "
                  "the other, so a column is one state of the machine:", "",
                  markdown_table(["system"] + ["run %d" % (i + 1) for i in range(runs)], per_run), ""]
    ok_scale = [s for s in results["scale"] if "error" not in s]
    if ok_scale:
        lines.append("Scale runs (each on a fresh relay, server and proxy):")
        lines.append("")
        hdr = ["run", "ok/failed", "set-ups/s", "set-up p50/p99 ms", "RSS relay KiB before->held", "server", "proxy",
               "KiB/tunnel relay/server/proxy", "TCP to relay server/proxy", "failures"]
        rows = []
        for i, s in enumerate(ok_scale, 1):
            b, d, p = s["rss_before_kib"], s["rss_during_kib"], s["rss_per_tunnel_kib"]
            rows.append([i, "%d/%d" % (s["succeeded"], s["failed"]), "%.0f" % s["rate_per_s"],
                         "%.1f/%.1f" % (s["setup_p50_ms"], s["setup_p99_ms"]), "%d->%d" % (b["relay"], d["relay"]),
                         "%d->%d" % (b["server"], d["server"]), "%d->%d" % (b["proxy"], d["proxy"]),
                         "%.1f/%.1f/%.1f" % (p["relay"], p["server"], p["proxy"]),
                         "%d/%d" % (s["tcp_conns_to_relay"]["server"], s["tcp_conns_to_relay"]["proxy"]),
                         ", ".join(s["failures"]) or "-"])
        lines += [markdown_table(hdr, rows), ""]
    for s in results["scale"]:
        if "error" in s:
            lines.append("- a scale run failed: %s" % s["error"].splitlines()[0])
    for n in results["notes"]:
        lines.append("- note: %s" % n)
    for name, res in results["systems"].items():
        for e in res.get("errors", []):
            lines.append("- %s: %s" % (SYSTEM_LABELS.get(name, name), e.splitlines()[0]))
    lines += ["", "![throughput and p50 latency, ptth and the references](%s)" % png_name, "",
              "<!-- bench:results:end -->"]
    return "\n".join(lines)


def update_docs(results, doc_path, png_name):
    section = docs_section(results, png_name)
    text = open(doc_path).read() if os.path.exists(doc_path) else ""
    rx = re.compile(r"<!-- bench:results:begin.*?<!-- bench:results:end -->", re.S)
    if rx.search(text):
        text = rx.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
    with open(doc_path, "w") as f:
        f.write(text)


def plot(results, png_path, workdir):
    if shutil.which("gnuplot") is None:
        return "gnuplot not installed (apt-get install gnuplot-nox): no plot"
    data = os.path.join(workdir, "plot.dat")
    n = 0
    cols = ("throughput_mb_s", "par8_mb_s", "p50_us", "rr_per_s", "redis_per_s", "wrk_per_s")
    with open(data, "w") as f:
        for name in SYSTEMS:
            res = results["systems"].get(name)
            if not res or "error" in res:
                continue
            f.write('"%s" %s\n' % (SYSTEM_LABELS[name], " ".join(fmt(res.get("median_" + c), "%.1f").replace("-", "NaN")
                                                                 for c in cols)))
            n += 1
    if n == 0:
        return "nothing to plot"
    script = os.path.join(workdir, "plot.gp")
    with open(script, "w") as f:
        f.write("""set terminal pngcairo size 1500,460 font "sans,10"
set output '%s'
set multiplot layout 1,3 title "ptth vs references, loopback, 2 CPUs (medians)"
set style fill solid 0.8 border -1
set style histogram clustered gap 1
set grid ytics
set yrange [0:*]
set xtics nomirror scale 0 rotate by -30
set key top right
set title "bulk throughput (MB/s, higher is better)"
plot '%s' using 2:xtic(1) with histogram lc rgb "#4477aa" title "1 tunnel", '' using 3 with histogram lc rgb "#88ccee" title "8 tunnels"
unset key
set boxwidth 0.6
set xrange [-0.6:%d-0.4]
set title "64-byte ping-pong p50 (microseconds, lower is better)"
plot '%s' using 0:4:xtic(1) with boxes lc rgb "#cc6677", '' using 0:4:(sprintf("%%.0f",$4)) with labels offset 0,0.8 notitle
set autoscale x
set boxwidth
set key top right
set title "request/response, 50 connections (thousands per second)"
plot '%s' using ($5/1000):xtic(1) with histogram lc rgb "#117733" title "rr", '' using ($6/1000) with histogram lc rgb "#ddcc77" title "redis GET", '' using ($7/1000) with histogram lc rgb "#aa4499" title "wrk"
unset multiplot
""" % (png_path, data, n, data, data))
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return "gnuplot failed: %s" % r.stderr.strip()[-300:]
    return None


# ---- smoke (TAP) -------------------------------------------------------------

def smoke_checks(results):
    """(ok, name, detail) per check; a name ending in "# SKIP why" is a TAP
    skip (a system or workload this machine or these binaries cannot run)."""
    checks = [(True, "%s # SKIP %s" % (k, why), "") for k, why in results.get("skipped", {}).items()]
    checks += [(True, "%s # SKIP %s" % (n.split(" skipped: ")[0], n.split(" skipped: ")[1]), "") for n in results["notes"]
               if n.startswith(("ptth chunks skipped", "ptth TLS skipped"))]
    for name in SYSTEMS:
        res = results["systems"].get(name)
        if res is None:
            continue
        if "error" in res:
            checks.append((False, "%s starts" % SYSTEM_LABELS[name], res["error"]))
            continue
        for kind in res.get("workloads", results["workloads"]):
            for key in WORKLOADS[kind][0]:
                vals = res[key]
                checks.append((bool(vals) and all(v >= 0 if key in ZERO_OK else v > 0 for v in vals),
                               "%s %s %s is a number (%s)" % (SYSTEM_LABELS[name], kind, key, ", ".join("%.1f" % v for v in vals)),
                               "; ".join(e for e in res["errors"] if e.startswith(kind + " "))))
        if "udp" in res.get("workloads", ()):
            pairs = list(zip(res["udp_sent"], res["udp_received"]))
            checks.append((bool(pairs) and all(0 < got <= sent for sent, got in pairs),
                           "%s udp: echoed datagrams are some and at most those sent (%s)" %
                           (SYSTEM_LABELS[name], ", ".join("%.0f/%.0f" % (g, s) for s, g in pairs)), ""))
    for kind in WORKLOAD_SYSTEMS:
        # a ptth build that has UDP and SOCKS5 must have been measured on them
        if kind in results["workloads"] and not any(kind in r.get("workloads", ()) for n, r in results["systems"].items()
                                                    if n != "direct" and "error" not in r):
            checks.append((False, "ptth measured on %s" % kind, "no ptth system ran it"))
    if "ptth" in results["systems"] and "error" not in results["systems"]["ptth"]:
        for s in results["scale"] or [{"error": "no scale run"}]:
            if "error" in s:
                checks.append((False, "ptth scale run", s["error"]))
                continue
            checks.append((s["succeeded"] == s["tunnels"] and s["held"] == s["tunnels"],
                           "ptth %d concurrent tunnels: %d succeeded, %d held" % (s["tunnels"], s["succeeded"], s["held"]),
                           "; ".join(s["failures"])))
            checks.append((s["rate_per_s"] > 0, "ptth set-up rate is a number (%.0f/s)" % s["rate_per_s"], ""))
            for role in ("relay", "server", "proxy"):
                checks.append((isinstance(s["rss_per_tunnel_kib"][role], float),
                               "ptth_%s RSS per tunnel is a number (%.1f KiB)" % (role, s["rss_per_tunnel_kib"][role]), ""))
            for role in ("server", "proxy"):
                checks.append((s["tcp_conns_to_relay"][role] >= 1,
                               "ptth_%s has TCP connections to the relay (%d)" % (role, s["tcp_conns_to_relay"][role]), ""))
    checks += resume_checks(results)
    for n in results["notes"]:
        if "not a clean exit" in n:
            checks.append((False, "ptth programs exit 0 after SIGTERM", n))
    return checks


def resume_checks(results):
    """The resume workload's smoke checks: it ran, every figure is there, the
    echo across the cuts came back exact and the bulk runs with cuts had
    some."""
    if "resume" not in results:
        return []
    res = results["resume"]
    if "error" in res:
        return [(False, "ptth resume workload", res["error"])]
    g, b, k = res.get("gap"), res.get("bulk"), res.get("leak")
    checks = [(g is not None and g["p50_ms"] > 0 and g["p99_ms"] > 0, "ptth resume gap p50, p99 are numbers (%s ms)" % (
        "%.1f, %.1f" % (g["p50_ms"], g["p99_ms"]) if g else "-"), ""),
              (g is not None and g["exact"], "ptth resume: the paced echo across %s cuts came back exact" % (
                  g["cuts"] if g else "-"), "")]
    checks.append((b is not None and sum(b["cuts"]) > 0 and b["ratio"] > 0, "ptth resume bulk with cuts (%s cuts, %s)" % (
        sum(b["cuts"]) if b else "-", "%.2fx" % b["ratio"] if b else "-"), ""))
    checks.append((k is not None and k["exact"] and all(v[r]["rss_kib"] > 0 and v[r]["fds"] > 0 for v in k["samples"]
                                                        for r in ("relay", "server", "proxy")),
                   "ptth resume leak check: RSS and fds sampled over %s cuts, echo exact" % (k["cuts"] if k else "-"), ""))
    return checks
