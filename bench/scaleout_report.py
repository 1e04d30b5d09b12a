#!/usr/bin/env python3
"""Summarises ./scripts/bench --scaleout: raw/scaleout.jsonl -> scaleout.md.

Usage: scaleout_report.py RAW_JSONL OUT_MD COMMIT MODE
Each line is {"topology", "instances", "casGuard", "rep", "result"} where
result is the JSON of `weft-bench cycles`. Figures are medians over the
repetitions of each configuration.
"""
import json
import statistics
import sys
from collections import defaultdict


def write_chart(groups, med, out_md):
    """scaleout.png beside the report: cycles/s against instances per setup."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import os
    series = [(("single", "auto"), "one nats-server (R1)"),
              (("cluster", "auto"), "3-node cluster (R3), guarded"),
              (("cluster", "off"), "3-node cluster (R3), native (unsafe)")]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for (topo, guard), label in series:
        points = sorted((n, med(rows, "cyclesPerSecond"))
                        for (t, g, n), rows in groups.items() if (t, g) == (topo, guard))
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("weftd instances")
    ax.set_ylabel("claim + complete cycles/s")
    ax.set_xticks([1, 2, 3])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = "scaleout.png"
    fig.savefig(os.path.join(os.path.dirname(os.path.abspath(out_md)), name), dpi=110)
    plt.close(fig)
    return name


def main():
    raw, out, commit, mode = sys.argv[1:5]
    groups = defaultdict(list)
    errors = []
    with open(raw) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            key = (row["topology"], row["casGuard"], row["instances"])
            if "error" in row["result"]:
                errors.append((key, row["result"]["error"]))
                continue
            groups[key].append(row["result"])

    def med(rows, *path):
        values = []
        for r in rows:
            v = r
            for p in path:
                v = v.get(p, {}) if isinstance(v, dict) else {}
            if isinstance(v, (int, float)):
                values.append(v)
        return statistics.median(values) if values else float("nan")

    lines = [
        "# Scale-out: claim + complete cycles per second",
        "",
        f"Commit {commit}, mode {mode}. 8 agent threads in a closed loop, each on its own "
        "keep-alive connection to instance (thread mod N); every agent claims from one shared "
        "queue (one capability) and completes what it got. Medians over "
        f"{max((len(v) for v in groups.values()), default=0)} run(s) per row.",
        "",
        "| backend | compare-and-set | instances | cycles/s | claim p50 ms | claim p99 ms "
        "| complete p50 ms | complete p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {"single": "one nats-server (R1)", "cluster": "3-node cluster (R3)"}
    for key in sorted(groups, key=lambda k: (k[0] != "single", k[1] != "auto", k[2])):
        topo, guard, n = key
        rows = groups[key]
        cas = "native" if topo == "single" else ("guarded" if guard == "auto" else "native (UNSAFE)")
        lines.append(
            f"| {names[topo]} | {cas} | {n} | {med(rows, 'cyclesPerSecond'):.0f} | "
            f"{med(rows, 'claim', 'p50Us') / 1000:.2f} | {med(rows, 'claim', 'p99Us') / 1000:.2f} | "
            f"{med(rows, 'complete', 'p50Us') / 1000:.2f} | {med(rows, 'complete', 'p99Us') / 1000:.2f} | "
            f"{med(rows, 'errors'):.0f} |")
    guarded = groups.get(("cluster", "auto", 2))
    native = groups.get(("cluster", "off", 2))
    if guarded and native:
        ratio = med(guarded, "cyclesPerSecond") / med(native, "cyclesPerSecond")
        lines += ["", f"Guard cost on the cluster, 2 instances: guarded / native = {ratio:.2f} "
                  "(measured side by side in this run; the native check is not exclusive on "
                  "nats-server 2.9.10, so its figure is only a reference)."]
    chart = write_chart(groups, med, out)
    if chart:
        lines += ["", f"![cycles per second by instances]({chart})"]
    if errors:
        lines += ["", "Failed runs:"] + [f"- {k}: {e}" for k, e in errors]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
