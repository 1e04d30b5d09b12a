#!/usr/bin/env python3
"""Writes the connections benchmark report (markdown) from raw/connections.jsonl.

usage: connections_report.py RAW.jsonl OUT.md COMMIT MODE

One column per measured weftd (label: "baseline" when --baseline-weftd was
given, "current"), side by side, as measured in one run on one machine.
"""
import json
import sys


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def main():
    raw, out, commit, mode = sys.argv[1:5]
    recs = [json.loads(line) for line in open(raw) if line.strip()]
    labels = []
    for r in recs:
        if r["label"] not in labels:
            labels.append(r["label"])

    def find(label, kind, route=None):
        for r in recs:
            if r["label"] == label and r["kind"] == kind and (route is None or r.get("route") == route):
                return r
        return None

    lines = [f"# Connections benchmark ({mode}, commit {commit})", "",
             "Measured by `./scripts/bench --connections` on one nats-server, all on 127.0.0.1; "
             "each weftd measured alone, one after the other, in the same run.", ""]
    head = "| measurement | " + " | ".join(labels) + " |"
    sep = "|---|" + "---|" * len(labels)

    lines += ["## Throughput, wrk -t2 -c32 (nothing else open)", "", head, sep]
    for route, name in (("health", "GET /health"), ("agents", "GET /api/agents (100 agents)"),
                        ("submit", "POST /api/work")):
        cells = []
        for label in labels:
            r = find(label, "throughput", route)
            cells.append("-" if not r else
                         f"{fmt(r['rps'])} req/s, p50 {fmt(r['p50Ms'], 2)} ms, p99 {fmt(r['p99Ms'], 2)} ms, "
                         f"errors {r['socketErrors'] + r['non2xx']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    lines += ["", "## Idle keep-alive connections", "", head, sep]
    cells_served, cells_rss = [], []
    for label in labels:
        r = find(label, "idle")
        cells_served.append("-" if not r else
                            f"{fmt(r['served'])} of {fmt(r['connections'])} served, "
                            f"{fmt(r['open'])} still open after 1 s")
        cells_rss.append("-" if not r else
                         f"{fmt(r['rssPer1000KiB'], 1)} KiB per 1,000 "
                         f"({fmt(r['rssBeforeKiB'])} -> {fmt(r['rssAfterKiB'])} KiB)")
    lines.append("| opened, one request each, then held | " + " | ".join(cells_served) + " |")
    lines.append("| weftd RSS growth | " + " | ".join(cells_rss) + " |")
    for route, name in (("health", "GET /health"), ("agents", "GET /api/agents")):
        cells = []
        for label in labels:
            r = find(label, "idle-load", route)
            cells.append("-" if not r else
                         f"{fmt(r['rps'])} req/s, p50 {fmt(r['p50Ms'], 2)} ms, p99 {fmt(r['p99Ms'], 2)} ms, "
                         f"errors {fmt(r['socketErrors'] + r['non2xx'])} of {fmt(r['requests'])}, "
                         f"idle open {fmt(r['idleOpen'])}")
        lines.append(f"| wrk -c256 {name} beside them | " + " | ".join(cells) + " |")

    lines += ["", "## Slow-header connections", "", head, sep]
    cells = []
    for label in labels:
        r = find(label, "slow")
        cells.append("-" if not r else
                     f"{fmt(r['slowConnections'])} stalled; /health {fmt(r['rps'])} req/s, "
                     f"p50 {fmt(r['p50Ms'], 2)} ms, p99 {fmt(r['p99Ms'], 2)} ms, "
                     f"errors {fmt(r['socketErrors'] + r['non2xx'])}")
    lines.append("| wrk -c32 GET /health beside them | " + " | ".join(cells) + " |")
    kv = find("current", "kv-put")
    submit = find("current", "throughput", "submit")
    if kv and submit and kv["opsPerSec"]:
        lines += ["", "## Per-request cost (current)", "",
                  "| measurement | value |", "|---|---|",
                  f"| plugin put, 32 threads, 700-byte values | {fmt(kv['opsPerSec'])} ops/s |",
                  f"| POST /api/work, wrk -c32 | {fmt(submit['rps'])} req/s |",
                  f"| ratio | {submit['rps'] / kv['opsPerSec'] * 100:.0f} % |"]
    lines += ["", "## 64 concurrent full lists (GET /api/work, 10,000 items, no limit)", "", head, sep]
    cells = []
    for label in labels:
        r = find(label, "lists")
        cells.append("-" if not r else
                     f"peak RSS {fmt(r['rssPeakKiB'] // 1024)} MiB (before: {fmt(r['rssBeforeKiB'] // 1024)} MiB), "
                     f"{fmt(r['seconds'], 2)} s for all, {fmt(r['bytesEach'])} bytes each")
    lines.append("| 64 lists at once | " + " | ".join(cells) + " |")
    lines += ["", "## At the connection limit (http.maxConnections idle connections held)", "",
              head, sep]
    for route, name in (("health", "new connection, GET /health"),
                        ("agents", "new connection, GET /api/agents")):
        cells = []
        for label in labels:
            r = find(label, "limit", route)
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())) if r else ""
            cells.append("-" if not r else
                         f"{fmt(r['held'])} held; {statuses} (0 = no answer); "
                         f"p50 {fmt(r['p50Ms'], 2)} ms, p99 {fmt(r['p99Ms'], 2)} ms, "
                         f"max {fmt(r['maxMs'], 2)} ms")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Errors are wrk's socket errors (connect, read, write, timeout) plus non-2xx answers.",
              "The machine is shared: compare columns of one run, not runs of different days.", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
