#!/usr/bin/env python3
"""Reads criterion's estimates under target/criterion and prints the ratio table of
BENCHMARKS.md; writes docs/bench-scaling.svg (get and set latency against vault size).

Usage: cargo bench --bench vault && python3 scripts/bench_report.py [CRITERION_DIR]
"""
import json
import math
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def median_ns(*parts):
    path = os.path.join(root, *parts, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns):
    if ns is None:
        return "—"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.2f} µs"


def ratio(a, b):
    return None if a is None or b is None else a / b


sizes = sorted(int(d) for d in os.listdir(os.path.join(root, "get", "tresor-off"))
               if d.isdigit()) if os.path.isdir(os.path.join(root, "get", "tresor-off")) else []

rows = []
print("| work | tresor (median) | baseline (median) | ratio | target | met |")
print("|---|---|---|---|---|---|")


def row(work, t, base, target, limit, absolute=False):
    r = None if t is None else (t / limit if absolute else ratio(t, base))
    met = None if r is None or limit == float("inf") else (t <= limit if absolute else r <= limit)
    rtxt = "—" if r is None or absolute else f"{r:.2f}×"
    print(f"| {work} | {fmt(t)} | {fmt(base) if not absolute else '—'} | {rtxt} | {target} | "
          f"{'—' if met is None else ('yes' if met else 'no')} |")


for n in sizes:
    base = median_ns("get", "physical-limit", str(n))
    off = median_ns("get", "tresor-off", str(n))
    row(f"get, Off, {n:,} secrets (vs physical limit)", off, base,
        "≤ 1.5 × redb read + ring open", 1.5)
    buffered = median_ns("get", "tresor-buffered", str(n))
    row(f"get, Buffered, {n:,} secrets (vs physical limit)", buffered, base, "(measured)",
        float("inf"))
    if buffered is not None and off is not None:
        extra = buffered - off
        print(f"| get, Buffered − Off, {n:,} secrets | {fmt(extra)} | — | — | ≤ 0.30 µs | "
              f"{'yes' if extra <= 300 else 'no'} |")
    cpu_off = median_ns("get-cpu", "tresor-off", str(n))
    cpu_buf = median_ns("get-cpu", "tresor-buffered", str(n))
    if cpu_off is not None and cpu_buf is not None:
        print(f"| get, Buffered − Off, CPU time of the whole process per get, {n:,} secrets | "
              f"{fmt(cpu_buf - cpu_off)} | — | — | (measured: the background commit included) | — |")
    row(f"get, Durable, {n:,} secrets", median_ns("get", "tresor-durable", str(n)), base,
        "(measured: one commit per read)", float("inf"))
    row(f"(raw redb read alone, {n:,})", median_ns("get", "raw-redb", str(n)), None,
        "(reference)", float("inf"), absolute=True)
if sizes:
    lo = sizes[0]
    for hi in sizes[1:]:
        for level in ["off", "buffered"]:
            target, limit = ("≤ 1.3×", 1.3) if hi >= 1_000_000 else ("(measured)", float("inf"))
            row(f"get {level} at {hi:,} vs {lo:,}", median_ns("get", f"tresor-{level}", str(hi)),
                median_ns("get", f"tresor-{level}", str(lo)), target, limit)
        row(f"(physical limit at {hi:,} vs {lo:,})", median_ns("get", "physical-limit", str(hi)),
            median_ns("get", "physical-limit", str(lo)), "(reference)", float("inf"))
row("durable set", median_ns("set-durable", "tresor"), median_ns("set-durable", "raw-redb"),
    "≤ 1.4 × redb one-row Immediate commit", 1.4)
row("bulk import 100k (vs sorted sealed insert)", median_ns("bulk-100k", "tresor"),
    median_ns("bulk-100k", "raw-redb-sealed-sorted"), "≤ 1.5 × sorted sealed insert", 1.5)
row("(bulk import 100k vs plain redb insert)", median_ns("bulk-100k", "tresor"),
    median_ns("bulk-100k", "raw-redb"), "(reference)", float("inf"))
row("list 100k names", median_ns("list", "tresor-list-100k"), None, "< 150 ms", 150e6, absolute=True)
row("list_versions, 1,000 versions", median_ns("list", "tresor-list-versions-1000"), None,
    "(measured)", float("inf"), absolute=True)
row("open, external key", median_ns("open", "tresor-open-key"), None, "< 5 ms", 5e6, absolute=True)
row("open, passphrase (64 MiB, t=3, p=4)", median_ns("open", "tresor-open-passphrase-default-kdf"),
    None, "(measured)", float("inf"), absolute=True)
row("create, external key", median_ns("open", "tresor-create-key"), None, "(measured)",
    float("inf"), absolute=True)
row("rotate_master_key, 10k secrets", median_ns("maintenance-10k", "tresor-rotate-master-key"),
    None, "(measured)", float("inf"), absolute=True)
row("backup_secret, 10k-secret vault", median_ns("maintenance-10k", "tresor-backup-secret"),
    None, "(measured)", float("inf"), absolute=True)

# The scaling plot.
series = [
    ("get physical limit", "get", "physical-limit", "#888888"),
    ("get tresor Off", "get", "tresor-off", "#1f77b4"),
    ("get tresor Buffered", "get", "tresor-buffered", "#2ca02c"),
    ("get tresor Durable", "get", "tresor-durable", "#d62728"),
    ("set tresor (durable)", "set-scaling", "tresor", "#9467bd"),
]
points = []
for label, group, bench, color in series:
    pts = [(n, median_ns(group, bench, str(n))) for n in sizes]
    pts = [(n, v) for n, v in pts if v]
    if pts:
        points.append((label, color, pts))
if points:
    W, H, L, R, T, B = 720, 420, 70, 200, 20, 50
    xs = [math.log10(n) for _, _, p in points for n, _ in p]
    ys = [math.log10(v / 1e3) for _, _, p in points for _, v in p]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    sx = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    sy = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="14">tresor latency against vault size (median, log–log)</text>']
    for e in range(y0, y1 + 1):
        y = sy(e)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} µs</text>')
    for n in sizes:
        x = sx(math.log10(n))
        out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{n:,}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">secrets in the vault</text>')
    for i, (label, color, pts) in enumerate(points):
        path = " ".join(f"{sx(math.log10(n)):.1f},{sy(math.log10(v / 1e3)):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, v in pts:
            out.append(f'<circle cx="{sx(math.log10(n)):.1f}" cy="{sy(math.log10(v / 1e3)):.1f}" '
                       f'r="3" fill="{color}"/>')
        ly = T + 20 + i * 18
        out.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 36}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    os.makedirs("docs", exist_ok=True)
    with open(os.path.join("docs", "bench-scaling.svg"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\nwrote docs/bench-scaling.svg", file=sys.stderr)
