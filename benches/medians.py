#!/usr/bin/env python3
"""Tables of medians and the target ratios from criterion's saved estimates.

    python3 benches/medians.py [--devices N] [--footprint FILE] [CRITERION_DIR]

CRITERION_DIR defaults to target/criterion. For each benchmark it reads `new/estimates.json`
(the median of the per-sample time per iteration) and `new/benchmark.json` (the throughput
declared), and prints one Markdown table per group, then the ratios of the target
table for fleet size N (default: the largest measured). With --footprint, the output of
`cargo bench --bench footprint` is read for the bytes-per-task rows.
"""

import argparse
import json
import os
import re
import sys


def load(root):
    rows = []
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        median_ns = est["median"]["point_estimate"]
        elements = (bench.get("throughput") or {}).get("Elements", 1)
        rows.append({
            "group": bench["group_id"],
            "function": bench["function_id"],
            "param": bench.get("value_str") or "",
            "median_ns": median_ns,
            "per_sec": elements * 1e9 / median_ns,
            "elements": elements,
        })
    return rows


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}/s"
    return f"{x:.3g} /s"


def param_key(param):
    return int(param) if param.isdigit() else param


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default="target/criterion")
    ap.add_argument("--devices", type=int)
    ap.add_argument("--footprint")
    args = ap.parse_args()
    rows = load(args.root)
    if not rows:
        sys.exit(f"no criterion estimates under {args.root}")

    for group in sorted({r["group"] for r in rows}):
        print(f"\n### {group}\n")
        print("| benchmark | parameter | median time / iteration | median throughput |")
        print("|---|---|---:|---:|")
        for r in sorted((r for r in rows if r["group"] == group),
                        key=lambda r: (param_key(r["param"]), r["function"])):
            print(f"| {r['function']} | {r['param']} | {fmt_time(r['median_ns'])} "
                  f"| {fmt_rate(r['per_sec'])} |")

    by_id = {(r["group"], r["function"], r["param"]): r for r in rows}
    sizes = sorted({int(r["param"]) for r in rows
                    if r["group"] == "query_mix" and r["param"].isdigit()})
    n = args.devices or (sizes[-1] if sizes else None)
    if n is None:
        return
    rate = lambda g, f: by_id.get((g, f, str(n)), {}).get("per_sec")

    def ratio(a, b):
        return None if a is None or b is None else a / b

    q = lambda imp: rate("query_mix", imp)
    c = lambda name: rate("concurrency", name)
    targets = [
        ("queries/s ota-index / naive-hashmap", ratio(q("ota-index"), q("naive-hashmap")), "≥ 2.5"),
        ("queries/s ota-index / floor-prerendered", ratio(q("ota-index"), q("floor-prerendered")), "≥ 0.8"),
        ("queries/s ota-index / sqlite-memory", ratio(q("ota-index"), q("sqlite-memory")), "≥ 12"),
        ("bulk load, tasks/s", rate("ingest", "load/ota-index"), "≥ 1,000,000"),
        ("upserts of existing tasks /s", rate("ingest", "upsert/ota-index"), "≥ 2,000,000"),
        ("read throughput 2 threads / 1 thread", ratio(c("readers-2"), c("readers-1")), "≥ 1.8"),
        ("1 reader: with 100k/s writer / without", ratio(c("readers-1+writer"), c("readers-1")), "≥ 0.85"),
        ("2 readers: with 100k/s writer / without", ratio(c("readers-2+writer"), c("readers-2")), "≥ 0.85"),
    ]
    # Wider reader counts (OTA_BENCH_READERS, e.g. 1,2,4,8,16 on a 16-core machine), with the
    # read-only baselines' scaling for reference.
    wide = sorted({int(r["function"].rsplit("-", 1)[1]) for r in rows
                   if r["group"] == "concurrency" and re.fullmatch(r"readers-\d+", r["function"])})
    for k in (k for k in wide if k > 2):
        targets.append((f"read throughput {k} threads / 1 thread", ratio(c(f"readers-{k}"), c("readers-1")),
                        "≥ 14" if k == 16 else "(reference)"))
        targets.append((f"{k} readers: with 100k/s writer / without",
                        ratio(c(f"readers-{k}+writer"), c(f"readers-{k}")), "(reference)"))
        for base in ("naive-hashmap", "floor-prerendered"):
            targets.append((f"{base}: {k} threads / 1 thread",
                            ratio(c(f"{base}-readers-{k}"), c(f"{base}-readers-1")), "(reference)"))
    if args.footprint:
        with open(args.footprint) as f:
            for line in f:
                m = re.match(r"footprint (\S+) devices=(\d+) tasks=(\d+) bytes=(\d+) "
                             r"bytes_per_task=([\d.]+)", line)
                if m and int(m.group(2)) == n:
                    goal = "≤ 100" if m.group(1) == "ota-index" else "(reference)"
                    targets.append((f"bytes per task, {m.group(1)}", float(m.group(5)), goal))
    print(f"\n### Target ratios, {n:,} devices\n")
    print("| measure | measured | target |")
    print("|---|---:|---|")
    for name, value, goal in targets:
        shown = "not measured" if value is None else (
            f"{value:,.0f}" if value >= 1000 else f"{value:.2f}")
        print(f"| {name} | {shown} | {goal} |")


if __name__ == "__main__":
    main()
