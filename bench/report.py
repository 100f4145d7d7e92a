#!/usr/bin/env python3
"""Turns one bench/run output directory into bench/results/<date>-<host>.{md,json,png}.

usage: report.py OUT_DIR RESULTS_DIR

Stdlib only; the plot needs matplotlib and is skipped without it. See docs/BENCHMARKS.md.
"""

import datetime
import glob
import json
import os
import platform
import re
import socket
import subprocess
import sys

PCTS = ("p50", "p99", "p99.9")


def load(path):
    with open(path) as f:
        return json.load(f)


def cmd(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    info = {"host": socket.gethostname(), "kernel": platform.release(), "nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        info["memory"] = "?"
    info["rustc"] = cmd("rustc", "-V")
    info["python"] = platform.python_version()
    return info


# ------------------------------------------------------------------ readers


def read_oha(path):
    """Latency percentiles in ms (oha reports seconds), errors, achieved rate."""
    d = load(path)
    s = d.get("summary", {})
    lat = d.get("latencyPercentiles", {}) or {}
    codes = d.get("statusCodeDistribution", {}) or {}
    errs = d.get("errorDistribution", {}) or {}
    ok = sum(n for c, n in codes.items() if str(c).startswith("2"))
    bad_status = sum(n for c, n in codes.items() if not str(c).startswith("2"))
    # oha -z cuts the requests still in flight when the time is up: not failures.
    cut = sum(n for e, n in errs.items() if "deadline" in e.lower())
    other = sum(n for e, n in errs.items() if "deadline" not in e.lower())
    return {
        "lat": {p: (lat.get(p) * 1000 if lat.get(p) is not None else None) for p in PCTS},
        "ok": ok,
        "errors": bad_status + other,
        "error_kinds": {**{f"status {c}": n for c, n in codes.items() if not str(c).startswith("2")},
                        **{e: n for e, n in errs.items() if "deadline" not in e.lower()}},
        "cut": cut,
        "rate": s.get("requestsPerSec"),
        "success_rate": s.get("successRate"),
    }


def read_stream(path, which):
    d = load(path)
    lat = d.get(which) or {}
    return {
        "lat": {p: (lat.get(p) * 1000 if lat.get(p) is not None else None) for p in PCTS},
        "ok": d.get("ok"),
        "errors": d.get("errors"),
        "error_kinds": {d["first_error"]: d["errors"]} if d.get("first_error") else {},
        "cut": 0,
        "rate": d.get("achieved_rate"),
    }


def runs(out, workload, target, kind, which=None):
    """{rate: result} for one workload and target."""
    found = {}
    for path in glob.glob(os.path.join(out, f"{workload}__{target}@*.{kind}.json")):
        rate = float(re.search(r"@([\d.]+)\.", os.path.basename(path)).group(1))
        found[rate] = read_oha(path) if kind == "oha" else read_stream(path, which)
    return found


# ------------------------------------------------------------------ formatting


def read_overhead(path):
    """Per-route summary of agm_gateway_overhead_seconds from a Prometheus text scrape:
    count, the share at or under 0.25/0.5/1 ms, and p50/p99/p99.9 in ms (linear within
    a bucket)."""
    if not os.path.exists(path):
        return {}
    buckets = {}
    for line in open(path):
        if not line.startswith("agm_gateway_overhead_seconds_bucket{"):
            continue
        labels, value = line.rsplit(" ", 1)
        fields = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1:labels.rindex("}")].split(","))
        route = fields.get("route", "?").strip('"')
        le = fields["le"].strip('"')
        buckets.setdefault(route, []).append((float("inf") if le == "+Inf" else float(le), float(value)))
    out = {}
    for route, pairs in buckets.items():
        pairs.sort()
        total = pairs[-1][1]
        if total <= 0:
            continue

        def share(limit):
            return max((c for le, c in pairs if le <= limit + 1e-12), default=0.0) / total

        def quantile(q):
            target = q * total
            prev_le, prev_c = 0.0, 0.0
            for le, c in pairs:
                if c >= target:
                    if le == float("inf"):
                        return None  # above the last bucket
                    span = c - prev_c
                    frac = (target - prev_c) / span if span > 0 else 1.0
                    return (prev_le + (le - prev_le) * frac) * 1000
                prev_le, prev_c = le, c
            return prev_le * 1000

        out[route] = {"count": int(total), "le_0.00025": share(0.00025), "le_0.0005": share(0.0005),
                      "le_0.001": share(0.001), "p50": quantile(0.5), "p99": quantile(0.99),
                      "p99.9": quantile(0.999)}
    return out


def ms(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def rate_s(r):
    return f"{r:g}"


def added(a, d):
    return {p: (a["lat"][p] - d["lat"][p]) if a["lat"][p] is not None and d["lat"][p] is not None else None
            for p in PCTS}


def latency_table(title, direct, via, via_name="agm"):
    lines = [f"### {title}", "",
             f"| rate (req/s) | direct p50 | direct p99 | direct p99.9 | {via_name} p50 | {via_name} p99 "
             f"| {via_name} p99.9 | **added p50** | **added p99** | **added p99.9** | {via_name} errors | {via_name} achieved req/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for rate in sorted(set(direct) & set(via)):
        d, a = direct[rate], via[rate]
        add = added(a, d)
        rows.append((rate, add, a))
        err = str(a["errors"]) + (f" (direct {d['errors']})" if d["errors"] else "")
        lines.append(
            f"| {rate_s(rate)} | {ms(d['lat']['p50'])} | {ms(d['lat']['p99'])} | {ms(d['lat']['p99.9'])} "
            f"| {ms(a['lat']['p50'])} | {ms(a['lat']['p99'])} | {ms(a['lat']['p99.9'])} "
            f"| **{ms(add['p50'])}** | **{ms(add['p99'])}** | **{ms(add['p99.9'])}** "
            f"| {err} | {a['rate']:.0f} |")
        for kind, n in a["error_kinds"].items():
            lines.append(f"|  | ↳ {kind}: {n} |||||||||||")
    lines.append("")
    return lines, rows


def main():
    out, results = sys.argv[1], sys.argv[2]
    settings = load(os.path.join(out, "settings.json"))
    m = machine()
    date = datetime.date.today().isoformat()
    base = os.path.join(results, f"{date}-{m['host']}")
    summary = {"machine": m, "settings": settings, "workloads": {}}

    md = [f"# agm benchmark, {date} on {m['host']}", "",
          "Produced by `bench/run` (see docs/BENCHMARKS.md). Latencies in **milliseconds**, "
          "measured open-loop at a constant rate with coordinated-omission correction; "
          "**added = agm percentile − direct percentile** (the same request straight to the simulated Google). "
          "Load generator, simulated Google and gateway share this machine's cores.", "",
          "## Machine and settings", "",
          "| | |", "|---|---|",
          f"| CPU | {m['cpu']} ({m['nproc']} cores) |",
          f"| memory | {m['memory']} |",
          f"| kernel | {m['kernel']} |",
          f"| rustc | {m['rustc']} |",
          f"| agm commit | {settings.get('agm_commit')} |",
          f"| load generators | {settings.get('oha')} (non-streaming), bench/streamload (streams) |",
          f"| sim | latency {settings['sim_latency']}, {settings['stream_chunks']} SSE chunks "
          f"{settings['chunk_delay']} apart |",
          f"| runs | {settings['duration_s']} s per rate and target, oha with max(8, rate/5) connections, at most {settings['connections']}; "
          f"saturation: {settings['sat_connections']} connections for {settings['sat_duration_s']} s |",
          ""]

    md += ["## Added latency at fixed rates", ""]
    plots = []
    workloads = [
        ("anthropic", "Anthropic Messages, non-streaming (`POST /v1/messages`)", "oha", None),
        ("anthropic_stream", "Anthropic Messages, streaming: time to first byte", "stream", "ttfb"),
        ("anthropic_stream", "Anthropic Messages, streaming: time to last byte", "stream", "ttlb"),
        ("openai", "OpenAI Chat Completions, non-streaming (`POST /v1/chat/completions`)", "oha", None),
    ]
    for workload, title, kind, which in workloads:
        direct = runs(out, workload, "direct", kind, which)
        via = runs(out, workload, "agm", kind, which)
        if not direct or not via:
            continue
        lines, rows = latency_table(title, direct, via)
        md += lines
        key = workload + (f"_{which}" if which else "")
        summary["workloads"][key] = {rate_s(r): {"direct": direct[r], "agm": via[r], "added": add}
                                     for r, add, _ in rows}
        plots.append((title, key, direct, via))

    # ---- overhead measured inside agm
    overhead = read_overhead(os.path.join(out, "metrics_fixed.txt"))
    if overhead:
        md += ["## Gateway overhead measured inside agm", "",
               "`agm_gateway_overhead_seconds`: each request's time to its first byte minus the time spent "
               "on Google (calls, token refresh, discovery, waits), over the warm-up and the fixed-rate runs above. "
               "Measured in the process, so the load generator sharing the cores does not blur it; percentiles "
               "are interpolated within histogram buckets.", "",
               "| route | requests | ≤ 0.25 ms | ≤ 0.5 ms | ≤ 1 ms | p50 (ms) | p99 (ms) | p99.9 (ms) |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for route, h in sorted(overhead.items()):
            def q(v):
                return "> 100" if v is None else ms(v)
            md.append(f"| `{route}` | {h['count']} | {h['le_0.00025']:.2%} | {h['le_0.0005']:.2%} | "
                      f"{h['le_0.001']:.2%} | {q(h['p50'])} | {q(h['p99'])} | {q(h['p99.9'])} |")
        md.append("")
        summary["overhead"] = overhead

    # ---- LiteLLM
    ll_direct = runs(out, "litellm", "direct", "oha")
    ll = runs(out, "litellm", "litellm", "oha")
    if ll_direct and ll:
        md += ["## Peer baseline: LiteLLM proxy, same OpenAI Chat workload", "",
               f"LiteLLM {settings.get('litellm_version') or ''} (`litellm[proxy]` from PyPI, default single worker), "
               "model `gemini/gemini-2.5-flash` with `api_base` at the sim's Gemini API; its direct baseline is the "
               "same request straight to the sim's `:generateContent`.", ""]
        lines, ll_rows = latency_table("LiteLLM", ll_direct, ll, "LiteLLM")
        md += lines[1:]
        summary["workloads"]["litellm"] = {rate_s(r): {"direct": ll_direct[r], "litellm": ll[r], "added": add}
                                           for r, add, _ in ll_rows}
        agm_oai = summary["workloads"].get("openai", {})
        md += ["### Ratio at the same rates: agm added / LiteLLM added (lower is better for agm)", "",
               "| rate (req/s) | agm added p50 | LiteLLM added p50 | ratio p50 | agm added p99 | LiteLLM added p99 | ratio p99 |",
               "|---:|---:|---:|---:|---:|---:|---:|"]
        for rate, add_ll, _ in ll_rows:
            a = agm_oai.get(rate_s(rate))
            if not a:
                continue

            def ratio(x, y):
                if x is None or y is None or y <= 0:
                    return "–"
                return f"{x / y:.3f}" if x > 0 else f"≤ 0 (agm added {ms(x)} ms)"
            md.append(f"| {rate_s(rate)} | {ms(a['added']['p50'])} | {ms(add_ll['p50'])} | "
                      f"{ratio(a['added']['p50'], add_ll['p50'])} | {ms(a['added']['p99'])} | {ms(add_ll['p99'])} | "
                      f"{ratio(a['added']['p99'], add_ll['p99'])} |")
        md.append("")

    # ---- saturation
    sats = sorted(glob.glob(os.path.join(out, "*.sat.json")))
    if sats:
        md += ["## Throughput at saturation (closed loop)", "",
               f"{settings['sat_connections']} connections sending back to back for {settings['sat_duration_s']} s.", "",
               "| workload | target | req/s | errors | p50 | p99 |", "|---|---|---:|---:|---:|---:|"]
        summary["saturation"] = {}
        for path in sats:
            workload, target = os.path.basename(path)[: -len(".sat.json")].split("__")
            r = read_oha(path)
            summary["saturation"][f"{workload}/{target}"] = r
            md.append(f"| {workload} | {target} | {r['rate']:.0f} | {r['errors']} | {ms(r['lat']['p50'])} | {ms(r['lat']['p99'])} |")
        md.append("")

    # ---- memory
    rss_path, hold_path = os.path.join(out, "rss.json"), os.path.join(out, "hold.json")
    if os.path.exists(rss_path):
        rss = load(rss_path)
        hold = load(hold_path) if os.path.exists(hold_path) else {}
        summary["rss"] = {**rss, "hold": hold}

        def mib(kb):
            return "–" if kb is None else f"{kb / 1024:.1f} MiB"
        md += ["## Memory (agm's resident set, VmRSS)", "",
               "| when | RSS |", "|---|---:|",
               f"| idle, just started (after one request) | {mib(rss.get('agm_idle_kb'))} |",
               f"| idle, after warm-up | {mib(rss.get('agm_after_warmup_kb'))} |",
               f"| idle, after all the load above | {mib(rss.get('agm_after_load_kb'))} |",
               f"| peak during the load above (VmHWM) | {mib(rss.get('agm_peak_kb'))} |"]
        if hold:
            md.append(f"| another agm, idle before the streams | {mib(hold.get('rss_kb_before'))} |")
            md.append(f"| with {hold.get('open')} of {hold.get('n')} streams open at once "
                      f"(all opened in {hold.get('seconds_to_open', 0):.1f} s) | {mib(hold.get('rss_kb_with_streams'))} |")
        if rss.get("litellm_after_load_kb"):
            md.append(f"| *LiteLLM proxy, after its load (process tree)* | {mib(rss['litellm_after_load_kb'])} |")
        md.append("")

    # ---- criterion
    crit = os.path.join(out, "criterion")
    benches = []
    for est in sorted(glob.glob(os.path.join(crit, "**", "new", "estimates.json"), recursive=True)):
        folder = os.path.dirname(est)
        bench = load(os.path.join(folder, "benchmark.json"))
        e = load(est)
        ns = e["mean"]["point_estimate"]
        through = bench.get("throughput") or {}
        nbytes = through.get("Bytes") or through.get("BytesDecimal")
        benches.append((bench.get("full_id") or bench.get("title"), ns, nbytes))
    benches.sort(key=lambda b: (b[0].split("/")[0], b[2] or 0))
    if benches:
        md += ["## Translation alone (criterion micro-benchmarks, `crates/agm-translate/benches/translate.rs`)", "",
               "| benchmark | input | time | per KB of input | throughput |", "|---|---:|---:|---:|---:|"]
        summary["criterion"] = []
        for name, ns, nbytes in benches:
            per_kb = ns / (nbytes / 1024) if nbytes else None
            mbs = nbytes / ns * 1e9 / 1e6 if nbytes else None
            summary["criterion"].append({"bench": name, "ns": ns, "bytes": nbytes, "ns_per_kb": per_kb})
            md.append(f"| {name} | {nbytes or '–'} B | {ns / 1000:.2f} µs | "
                      f"{'–' if per_kb is None else f'{per_kb / 1000:.2f} µs'} | "
                      f"{'–' if mbs is None else f'{mbs:.0f} MB/s'} |")
        md.append("")

    md += ["## Caveats", "",
           f"- One {m['nproc']}-core machine runs the load generator, the simulated Google and the gateway (and LiteLLM): "
           "they compete for the CPU, so tails (p99.9) and saturation figures measure the box as much as agm. "
           "Compare runs on the same machine only.",
           "- The direct baseline includes the same load generator and sim, so their cost cancels out of *added*, "
           "but agm's extra hop (a second loopback connection, JSON in and out twice) is inside it, as it is in real use.",
           "- A negative *added* figure is noise: the difference of two distributions measured a few seconds apart.",
           "- Saturation is closed-loop and CPU-bound by everything on the box; errors below saturation must be 0.",
           ""]

    os.makedirs(results, exist_ok=True)
    png = base + ".png"
    if plot(plots, png):
        md.insert(md.index("## Added latency at fixed rates") + 2, f"![latency]({os.path.basename(png)})\n")
    with open(base + ".md", "w") as f:
        f.write("\n".join(md))
    with open(base + ".json", "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(base + ".md")


def plot(plots, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not plots:
        return False
    fig, axes = plt.subplots(1, len(plots), figsize=(4.5 * len(plots), 4), squeeze=False)
    for ax, (title, key, direct, via) in zip(axes[0], plots):
        rates = sorted(set(direct) & set(via))
        for p, style in zip(PCTS, ("o-", "s-", "^-")):
            ax.plot(rates, [via[r]["lat"][p] for r in rates], style, label=f"agm {p}")
            ax.plot(rates, [direct[r]["lat"][p] for r in rates], style, alpha=0.35, label=f"direct {p}")
        ax.set_title(title.replace("Anthropic Messages", "Anthropic").split(" (")[0], fontsize=9)
        ax.set_xlabel("req/s")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


if __name__ == "__main__":
    main()
