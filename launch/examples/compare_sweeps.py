#!/usr/bin/env python3
"""compare_sweeps.py: the same runs of two study sweeps made two ways, seed by seed.

    python3 launch/examples/compare_sweeps.py A/results.csv B/results.csv [--metric test_acc]

Pairs the rows of two `regdist study` results.csv files by run id (the same point: same
config, seed, data order and masks), e.g. a sweep on one rank against the same sweep on two,
or two builds. For each point (the id without its -sN seed suffix) it prints the mean of the
metric in A and in B, the mean paired difference A - B, its 95% t interval over the seeds
both files have, and whether the interval excludes zero. Accuracies, gaps and ECE are
fractions in results.csv and printed in percent (differences in points). Standard library
only; the t quantiles are launch/stats.c's table.
"""
import argparse
import csv
import math
import re
import statistics
import sys

T975 = [math.nan, 12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622,
        2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930,
        2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452,
        2.0423]


def fail(msg):
    print(f"compare_sweeps: {msg}", file=sys.stderr)
    sys.exit(2)


def rows(path, metric):
    try:
        with open(path, newline="") as f:
            r = csv.DictReader(f)
            if metric not in (r.fieldnames or []):
                fail(f"{path} has no column {metric}")
            return {row["id"]: float(row[metric]) for row in r if row.get(metric)}
    except OSError as e:
        fail(f"{path}: {e.strerror}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="test_acc")
    args = ap.parse_args()
    a, b = rows(args.a, args.metric), rows(args.b, args.metric)
    scale = 1.0 if "loss" in args.metric else 100.0
    points = {}
    for rid in sorted(set(a) & set(b)):
        points.setdefault(re.sub(r"-s\d+$", "", rid), []).append(rid)
    if not points:
        fail("no run id is in both files")
    print(f"| point | seeds | {args.metric} A | {args.metric} B | A − B | 95% CI | verdict |")
    print("|---|---|---|---|---|---|---|")
    for p, ids in points.items():
        d = [scale * (a[i] - b[i]) for i in ids]
        ma = statistics.mean(scale * a[i] for i in ids)
        mb = statistics.mean(scale * b[i] for i in ids)
        m = statistics.mean(d)
        if len(d) < 2:
            ci, verdict = "–", "one seed: no interval"
        else:
            h = (T975[len(d) - 1] if len(d) <= 31 else 1.96) * statistics.stdev(d) / math.sqrt(len(d))
            ci = f"[{m - h:+.2f}, {m + h:+.2f}]"
            verdict = "an effect" if m - h > 0 or m + h < 0 else "no effect at this power"
        print(f"| {p} | {len(d)} | {ma:.2f} | {mb:.2f} | {m:+.2f} | {ci} | {verdict} |")


if __name__ == "__main__":
    main()
