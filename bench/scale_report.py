#!/usr/bin/env python3
"""Writes the scale benchmark report from raw/scale.jsonl: DIR/scale.md and DIR/scale.png.

usage: scale_report.py RAW.jsonl DIR COMMIT MODE ELAPSED_S [BASELINE_PATH]

One record per (profile, size, label): label "current" is the build measured,
"baseline" the binary given with --baseline-weftd, both measured on the same
data at each size, the baseline first.
"""
import json
import os
import sys

# The request kinds in report order, with what each one sends.
KINDS = [
    ("list", "GET /api/work?limit=50"),
    ("list-pending", "... &status=pending"),
    ("list-capability", "... &capability=scale-c07"),
    ("list-project", "... &projectId=scale-p03"),
    ("list-deep", "page 11 (nextCursor followed 10 times)"),
    ("get", "GET /api/work/{id}"),
    ("stats", "GET /api/stats"),
    ("stats-projects", "GET /api/stats/projects"),
    ("agents", "GET /api/agents?limit=50"),
    ("submit", "POST /api/work"),
    ("claim", "POST /api/work/claim"),
    ("complete", "POST /api/work/{id}/complete"),
]


def ms(us):
    """Microseconds as a short millisecond figure."""
    if us is None:
        return "-"
    v = us / 1000.0
    if v < 1:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def size_name(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def num(v):
    return "-" if v is None else f"{v:,}"


def mib(kb):
    return f"{kb / 1024:,.0f} MiB" if kb else "-"


def request(rec, name):
    for r in rec["requests"]:
        if r["name"] == name:
            return r
    return None


def main():
    raw, out_dir, commit, mode, elapsed = sys.argv[1:6]
    baseline_path = sys.argv[6] if len(sys.argv) > 6 else ""
    recs = [json.loads(line) for line in open(raw) if line.strip()]
    skipped = [r for r in recs if "skipped" in r]
    recs = [r for r in recs if "skipped" not in r]
    profiles, labels = [], []
    for r in recs + skipped:
        if r["profile"] not in profiles:
            profiles.append(r["profile"])
        if "label" in r and r["label"] not in labels:
            labels.append(r["label"])
    two = len(labels) > 1

    lines = [f"# Scale benchmark ({mode}, commit {commit})", "",
             "Measured by `./scripts/bench --scale`: one data set per backend grows through the "
             "sizes below (work items cloned through the plugin from items made through REST, "
             "about 10 % pending, 0.2 % assigned or in progress, the rest completed, failed "
             "and cancelled; 20 projects, 50 capabilities), and at every size weftd is restarted "
             "on it and measured. All on 127.0.0.1, on one shared machine: compare the columns "
             f"of one run. {int(elapsed) // 60} min {int(elapsed) % 60} s in all.", ""]
    if two:
        lines += [f"`baseline` is `{baseline_path}`, `current` the build of this commit; both "
                  "ran on the same data at each size, the baseline first.", ""]
    lines += [
        "Columns: *serving* is the time from spawning weftd to the first `GET /api/work?limit=1` "
        "that lists every stored item (its resolution is the cost of that list, see below), "
        "after the bulk of the items was written with weftd stopped (a saved view, if any, "
        "covers only the items before the fill, so this is close to a cold start); *serving, "
        "saved view* is the same for a second restart right after weftd stopped (SIGTERM) on "
        "unchanged data, when it loads the work view it saved and reads only what came after "
        "it (nats; redis and sqlite cannot resume a watch and replay again); *stop* is how "
        "long the SIGTERM took, saving included; "
        "*RSS* is weftd's VmRSS right then; *bytes/item* is (RSS - RSS of the same binary started "
        "on an empty backend) / stored items, so the agents' share is in it too; *marginal* is "
        "the RSS growth from the previous size divided by the items added; *peak* is VmHWM after "
        "the requests. Request latencies are p50 / p99 in ms of sequential requests on one "
        "keep-alive connection (n = how many were measured: up to a count, within a time "
        "budget per kind); *growth* is the p50 at the largest size over the p50 at the "
        "smallest. *plugin fill*: work items written per second by `weft-bench scale-fill` "
        "(8 threads, weftd stopped); *REST submits*: `POST /api/work` per second on 8 "
        "connections for the sample (how many) submitted before the fill; *backend RSS* and "
        "*data on disk*: the nats-server or redis-server process and the data directory, after "
        "the requests; *load*: the machine's 1-minute load average before and after the "
        "requests (2 cores: above 2, a request that needs more than a scheduler slice of CPU "
        "waits for the other processes too, so its latency grows with the load, not only with "
        "the items). *weftd CPU per request* is weftd's user + system time over a kind's run "
        "(warm-up included, and whatever weftd did in the background meanwhile, such as the "
        "5-second sweep) divided by its requests: it does not depend on the load (/proc counts "
        "in 10 ms ticks, so figures well under 10 ms / n are coarse); not given for claim and "
        "complete, which alternate.", ""]

    for profile in profiles:
        rows = [r for r in recs if r["profile"] == profile]
        lines += [f"## {profile}", ""]
        for r in skipped:
            if r["profile"] == profile:
                lines += [f"**Not measured: {r['size']:,} items and beyond** ({r['skipped']}).", ""]
        if not rows:
            continue
        sizes = sorted({r["size"] for r in rows})
        by = {(r["size"], r["label"]): r for r in rows}
        agents = rows[0].get("agents", 0)
        lines += [f"{agents:,} agents registered at every size.", "",
                  "| items stored | binary | /health | /ready | serving | serving, saved view | stop "
                  "| RSS | bytes/item | marginal "
                  "| peak | backend RSS | data on disk | plugin fill | REST submits | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        prev = {}
        for size in sizes:
            for label in labels:
                r = by.get((size, label))
                if not r:
                    continue
                st = r["restart"]
                per_item = ((r["rssServingKb"] - r["rssEmptyKb"]) * 1024 / r["stored"]
                            if r["stored"] else 0)
                marginal = "-"
                if label in prev and r["stored"] > prev[label]["stored"]:
                    p = prev[label]
                    marginal = (f"{(r['rssServingKb'] - p['rssServingKb']) * 1024 / (r['stored'] - p['stored']):,.0f}")
                prev[label] = r
                fill = r.get("fill", {})
                rest = r.get("restSample", {})
                rest_cell = (f"{rest['opsPerSec']:,.0f}/s ({rest['count']:,})"
                             if rest.get("count") else "-")
                lines.append(
                    f"| {r['stored']:,} | {label} | {num(st.get('healthMs'))} ms | "
                    f"{num(st.get('readyMs'))} ms | {num(st.get('servingMs'))} ms | "
                    f"{num(r.get('restartSaved', {}).get('servingMs'))} ms | {num(r.get('stopMs'))} ms | "
                    f"{mib(r['rssServingKb'])} | {per_item:,.0f} | {marginal} | {mib(r['hwmKb'])} | "
                    f"{mib(r['backendRssKb'])} | {r['dataBytes'] / 2**20:,.0f} MiB | "
                    f"{fill.get('itemsPerSec', 0):,.0f}/s | {rest_cell} | "
                    + (" - ".join(f"{v:.1f}" for v in r["loadavg"]) if r.get("loadavg") else "-")
                    + " |")
        lines.append("")

        head = "| request | binary | " + " | ".join(size_name(s) for s in sizes) + " | growth |"
        lines += ["p50 / p99 ms (n):", "", head, "|---|---|" + "---|" * (len(sizes) + 1)]
        for kind, what in KINDS:
            for label in labels:
                cells, p50s = [], []
                for size in sizes:
                    r = by.get((size, label))
                    q = request(r, kind) if r else None
                    if not q or not q.get("count"):
                        cells.append("-" if not q or not q.get("lastError") else
                                     "error: " + q["lastError"][:60].replace("|", "/"))
                        continue
                    p50s.append(q["p50Us"])
                    cell = f"{ms(q['p50Us'])} / {ms(q['p99Us'])} ({q['count']})"
                    if q.get("errors"):
                        cell += f", {q['errors']} errors"
                    cells.append(cell)
                growth = (f"x{p50s[-1] / p50s[0]:,.1f}" if len(p50s) == len(sizes) and len(p50s) > 1
                          and p50s[0] > 0 else "-")
                lines.append(f"| `{kind}` {what} | {label} | " + " | ".join(cells) + f" | {growth} |")
        lines.append("")

        head = "| request | binary | " + " | ".join(size_name(s) for s in sizes) + " |"
        lines += ["weftd CPU ms per request:", "", head, "|---|---|" + "---|" * len(sizes)]
        for kind, _ in KINDS:
            for label in labels:
                cells = []
                for size in sizes:
                    r = by.get((size, label))
                    q = request(r, kind) if r else None
                    cpu = q.get("cpuUsPerRequest") if q else None
                    cells.append("-" if cpu is None else ms(cpu))
                if any(c != "-" for c in cells):
                    lines.append(f"| `{kind}` | {label} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["`list-deep` follows `nextCursor` from the first page ten times and then repeats "
              "that request; `claim` claims from the claimer's project and capability (filled "
              "by `submit` just before) and each claimed item is completed right away "
              "(`complete`), so the state after a step is the state before it plus the submits.",
              "", "Raw numbers: `raw/scale.jsonl` (one line per backend, size and binary) and the "
              "JSON of each step in `raw/scale-*`.", ""]
    with open(os.path.join(out_dir, "scale.md"), "w") as f:
        f.write("\n".join(lines))
    chart(recs, profiles, labels, os.path.join(out_dir, "scale.png"))


def chart(recs, profiles, labels, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("scale_report.py: no matplotlib, no chart", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(profiles), figsize=(6.5 * len(profiles) + 1.3, 6),
                             squeeze=False)
    colors = plt.get_cmap("tab20").colors
    for ax, profile in zip(axes[0], profiles):
        for i, (kind, _) in enumerate(KINDS):
            for label in labels:
                pts = []
                for r in sorted((r for r in recs if r["profile"] == profile and r["label"] == label),
                                key=lambda r: r["stored"]):
                    q = request(r, kind)
                    if q and q.get("count"):
                        pts.append((r["stored"], q["p50Us"] / 1000.0))
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                        color=colors[2 * i if i < 10 else 2 * (i - 10) + 1],
                        linestyle="--" if label == "baseline" else "-",
                        label=kind if label == labels[-1] else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # 1, 2, 5 per decade, written out
            axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,g}"))
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(profile)
        ax.set_xlabel("stored work items")
        ax.set_ylabel("p50 latency, ms (one request at a time)")
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    title = "request" + (" (dashed: baseline)" if len(labels) > 1 else "")
    fig.legend(handles, names, loc="center right", title=title, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1 - 1.3 / (6.5 * len(profiles) + 1.3), 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
