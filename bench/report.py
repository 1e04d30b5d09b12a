#!/usr/bin/python3
"""Builds the benchmark report from the raw JSON that scripts/bench collected.

Writes OUT/report.json (everything, machine-readable), OUT/report.md (tables
for a person) and OUT/latency.png, OUT/throughput.png, OUT/durability.png.

Exit status: 0; 3 when an acknowledged write was lost outside the positive
control; 4 when the harness could not prove it sees loss (the positive
control lost nothing) or a crash round failed. The report is written in
every case.

Runs with Debian's python3 and python3-matplotlib (no other dependency).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

PROFILE_INFO = {
    "nats": ("nats", "nats-server -js, file storage (JetStream default: lazy fsync)"),
    "redis-aof": ("redis", "appendonly yes, appendfsync everysec, no RDB snapshots"),
    "redis-noaof": ("redis", "appendonly no, save \"\" (POSITIVE CONTROL: must lose)"),
    "sqlite-normal": ("sqlite", "WAL, synchronous=NORMAL"),
    "sqlite-full": ("sqlite", "WAL, synchronous=FULL"),
}
CONTROL = "redis-noaof"
COLORS = {
    "nats": "#1f77b4",
    "redis-aof": "#d62728",
    "redis-noaof": "#ff9896",
    "sqlite-normal": "#2ca02c",
    "sqlite-full": "#98df8a",
}
CLASSES = ["acked_present", "acked_lost", "failed_absent", "failed_present",
           "indeterminate_present", "indeterminate_absent", "duplicated"]

KILL_NOTE = (
    "A `kill -9` ends the server process but not the operating system: everything the "
    "process had handed to the kernel with write(2) survives in the page cache and reaches "
    "the disk later. So these rounds prove that each backend acknowledges a write only "
    "after handing it to the kernel (and that Weft acknowledges only after the backend "
    "did); they do NOT exercise fsync, and say nothing about a power loss or a kernel "
    "crash. `appendfsync everysec`, `synchronous=NORMAL` and `synchronous=FULL` cannot be "
    "told apart by a process kill, and none of them earns credit for surviving one "
    "(see docs/reliability.md).")


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def read_kv_file(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    except OSError:
        pass
    return out


def machine_info(raw_dir, commit_arg=""):
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nats_v = run(["nats-server", "--version"])
    redis_v = run(["redis-server", "--version"])
    m = re.search(r"v=(\S+)", redis_v)
    libs = {}
    for pkg in ["libsqlite3-0", "libnats3.4", "libhiredis0.14", "libpoco-dev"]:
        v = run(["dpkg-query", "-W", "-f=${Version}", pkg])
        if v:
            libs[pkg] = v
    weft_version = ""
    for f in sorted(glob.glob(os.path.join(raw_dir, "*-settings.txt"))):
        weft_version = read_kv_file(f).get("weft.version", "") or weft_version
    commit = commit_arg or run(["git", "rev-parse", "--short", "HEAD"])
    dirty = False if commit_arg else bool(run(["git", "status", "--porcelain"]))
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memoryGiB": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "versions": {
            "weft": weft_version,
            "weftCommit": commit + ("+local changes" if dirty else ""),
            "nats-server": nats_v.replace("nats-server: ", ""),
            "redis-server": m.group(1) if m else redis_v,
            "sqlite": libs.get("libsqlite3-0", ""),
            "nats.c": libs.get("libnats3.4", ""),
            "hiredis": libs.get("libhiredis0.14", ""),
            "poco": libs.get("libpoco-dev", ""),
        },
    }


def settings_for(raw, profile):
    s = read_kv_file(os.path.join(raw, f"{profile}-settings.txt"))
    backend = PROFILE_INFO[profile][0]
    out = {}
    if backend == "redis":
        for k in ("appendonly", "appendfsync", "save", "version"):
            out["CONFIG GET " + k if k != "version" else "redis_version"] = s.get("redis." + k)
    elif backend == "sqlite":
        out["PRAGMA journal_mode (read from the file)"] = s.get("sqlite.journal_mode")
        out["synchronous (per connection; as logged by weftd's plugin)"] = s.get(
            "sqlite.synchronous_logged_by_weftd")
        out["sqlite library"] = s.get("sqlite.library_version")
    elif backend == "nats":
        varz = load(os.path.join(raw, f"{profile}-varz.json"), {})
        jsz = load(os.path.join(raw, f"{profile}-jsz.json"), {})
        out["server version (varz)"] = varz.get("version")
        out["jetstream config (varz)"] = varz.get("jetstream", {}).get("config")
        streams = {}
        for acc in jsz.get("account_details", []) or []:
            for st in acc.get("stream_detail", []) or []:
                cfg = st.get("config", {})
                streams[st.get("name")] = {
                    "storage": cfg.get("storage"),
                    "replicas": cfg.get("num_replicas"),
                    "messages": st.get("state", {}).get("messages"),
                }
        out["streams (jsz)"] = streams
    out["weft version (GET /api/openapi.json)"] = s.get("weft.version")
    return out


def med(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def mx(values):
    values = [v for v in values if v is not None]
    return round(max(values), 1) if values else None


def crash_summary(raw, profile):
    rounds = []
    for path in sorted(glob.glob(os.path.join(raw, f"{profile}-crash-*.json")),
                       key=lambda p: int(re.search(r"-crash-(\d+)\.json$", p).group(1))):
        rounds.append(load(path, {"error": "unreadable " + os.path.basename(path)}))
    out = {"rounds": len(rounds), "errors": [r["error"] for r in rounds if "error" in r],
           "killedProcess": "weftd (it is the SQLite writer)"
           if PROFILE_INFO[profile][0] == "sqlite" else PROFILE_INFO[profile][0] + "-server"}
    for part in ("rest", "direct"):
        present = [r[part] for r in rounds if part in r]
        if not present:
            continue
        totals = {c: sum(p["classes"][c] for p in present) for c in CLASSES}
        rec = [p["recovery"] for p in present]
        out[part] = {
            "writes": present[0]["writes"],
            "sent": sum(p["sent"] for p in present),
            "classes": totals,
            "roundsWithAckedLoss": sum(1 for p in present if p["classes"]["acked_lost"] > 0),
            "lostSamples": [s for p in present for s in p.get("lostSamples", [])][:10],
            "recovery": {
                k: {"median": med([r.get(k) for r in rec]), "max": mx([r.get(k) for r in rec])}
                for k in ("killToFirst503Ms", "killToFirstFailureMs", "restartToFirstSuccessMs")
                if any(k in r for r in rec)
            },
        }
    out["perRound"] = rounds
    return out


def short(v):
    """A bar label: few digits, no exponent."""
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def fmt_ms(us):
    if us is None:
        return "–"
    ms = us / 1000.0
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def fmt_opt(v):
    return "–" if v is None else f"{v:,.0f}"


def rest_label(w):
    if w.get("mode") == "open":
        return f"{w['name']} (open {w['targetRate']:.0f}/s)"
    return f"{w['name']} (closed {w['threads']} conn)"


def kv_label(o):
    return f"plugin {o['name']} (closed {o['threads']} thr)"


def find_rest(profile_doc, name, mode):
    for w in profile_doc.get("rest", {}).get("workloads", []):
        if w.get("name") == name and w.get("mode", "closed") == mode and "error" not in w:
            return w
    return None


def find_kv(profile_doc, name, threads):
    for o in profile_doc.get("baseline", {}).get("ops", []):
        if o["name"] == name and o["threads"] == threads:
            return o
    return None


def charts(doc, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = [p["name"] for p in doc["profiles"]]
    written = []

    # Latency: p50 and p99 per workload, one bar per profile.
    groups = [("submit", "closed"), ("submit", "open"), ("submit-idempotent", "closed"),
              ("submit-replay", "closed"), ("submit-delayed", "closed"), ("heartbeat", "closed"),
              ("heartbeat", "open"), ("claim-complete", "closed"), ("agent-list", "closed")]
    kv_groups = [("put", 1), ("get", 1), ("create", 1), ("update", 1)]
    labels = []
    for name, mode in groups:
        labels.append(f"REST {name}\n{'open ' + str(int(doc['parameters']['openRate'])) + '/s' if mode == 'open' else 'closed ' + str(doc['parameters']['threads']) + ' conn'}")
    for name, t in kv_groups:
        labels.append(f"plugin {name}\n{t} thread")
    fig, axes = plt.subplots(2, 1, figsize=(15, 10), sharex=True)
    width = 0.8 / max(1, len(profiles))
    for ax, stat, title in ((axes[0], "p50Us", "median (p50)"), (axes[1], "p99Us", "p99")):
        for i, prof in enumerate(doc["profiles"]):
            vals = []
            for name, mode in groups:
                w = find_rest(prof, name, mode)
                vals.append(w[stat] / 1000 if w else 0)
            for name, t in kv_groups:
                o = find_kv(prof, name, t)
                vals.append(o[stat] / 1000 if o else 0)
            xs = [x + (i - (len(profiles) - 1) / 2) * width for x in range(len(labels))]
            bars = ax.bar(xs, vals, width, label=prof["name"], color=COLORS.get(prof["name"]))
            for b, v in zip(bars, vals):
                if v > 0:
                    ax.annotate(short(v), (b.get_x() + b.get_width() / 2, v),
                                ha="center", va="bottom", fontsize=6, rotation=90,
                                xytext=(0, 2), textcoords="offset points")
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 4)  # room for the labels above the tallest bar
        ax.set_ylabel("latency, ms (log scale)")
        ax.set_title(f"Latency {title}: REST through weftd vs. the plugin alone (lower is better)")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.axvline(len(groups) - 0.5, color="grey", linestyle=":")
    axes[1].set_xticks(range(len(labels)))
    axes[1].set_xticklabels(labels, fontsize=9)
    axes[0].legend(title="profile", ncol=len(profiles), loc="upper left", fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_dir, "latency.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append("latency.png")

    # Throughput: closed-loop ops/s.
    t_groups = [("submit", None), ("submit-idempotent", None), ("submit-replay", None),
                ("submit-delayed", None), ("heartbeat", None), ("claim-complete", None),
                ("agent-list", None), ("put", 8), ("get", 8), ("create", 8), ("update", 8)]
    labels = [f"REST {n}" if t is None else f"plugin {n}\n{t} threads" for n, t in t_groups]
    fig, ax = plt.subplots(figsize=(15, 6))
    for i, prof in enumerate(doc["profiles"]):
        vals = []
        for name, t in t_groups:
            w = find_rest(prof, name, "closed") if t is None else find_kv(prof, name, t)
            vals.append(w["opsPerSec"] if w else 0)
        xs = [x + (i - (len(profiles) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(xs, vals, width, label=prof["name"], color=COLORS.get(prof["name"]))
        for b, v in zip(bars, vals):
            if v > 0:
                ax.annotate(f"{v:,.0f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                            textcoords="offset points")
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 4)
    ax.set_ylabel("operations/s (log scale)")
    ax.set_title(f"Throughput, closed loop (REST: {doc['parameters']['threads']} connections; "
                 "claim-complete counts cycles) — higher is better")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=9)
    ax.axvline(3.5, color="grey", linestyle=":")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(title="profile", ncol=len(profiles), loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "throughput.png"), dpi=110)
    plt.close(fig)
    written.append("throughput.png")

    # Durability and recovery.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(17, 6.5),
                                   gridspec_kw={"width_ratios": [1.3, 1]})
    lost, labels_d = [], []
    for prof in doc["profiles"]:
        c = prof["crash"]
        for part in ("rest", "direct"):
            if part in c:
                labels_d.append(f"{prof['name']}\n{'REST' if part == 'rest' else 'plugin put'}")
                lost.append((c[part]["classes"]["acked_lost"], c[part]["classes"]["acked_present"],
                             prof["name"]))
    xs = range(len(lost))
    bars = ax1.bar(xs, [max(v[0], 0) for v in lost],
                   color=[COLORS.get(v[2]) for v in lost], edgecolor="black")
    for b, (n_lost, n_ok, _) in zip(bars, lost):
        ax1.annotate(f"{n_lost:,} lost\nof {n_lost + n_ok:,}\nacked",
                     (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                     fontsize=8, xytext=(0, 3), textcoords="offset points",
                     fontweight="bold" if n_lost else "normal")
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(labels_d, fontsize=8)
    ax1.set_ylabel("acknowledged writes lost (sum over rounds)")
    ax1.set_title(f"Crash rounds: kill -9 of the backend, {doc['parameters']['rounds']} rounds each\n"
                  f"({CONTROL} is the positive control and must lose)")
    top = max([v[0] for v in lost] + [1])
    ax1.set_ylim(0, top * 1.35)
    ax1.grid(axis="y", alpha=0.3)

    rec_labels = ["kill → first 503\n(median)", "restart → first success\n(median)",
                  f"weftd restart → serving\n{doc['parameters']['restartItems']:,} items"]
    for i, prof in enumerate(doc["profiles"]):
        rest = prof["crash"].get("rest", {}).get("recovery", {})
        vals = [
            (rest.get("killToFirst503Ms") or {}).get("median"),
            (rest.get("restartToFirstSuccessMs") or {}).get("median"),
            prof.get("restart", {}).get("servingMs"),
        ]
        xs2 = [x + (i - (len(profiles) - 1) / 2) * width for x in range(len(rec_labels))]
        b2 = ax2.bar(xs2, [v or 0 for v in vals], width, label=prof["name"],
                     color=COLORS.get(prof["name"]))
        for b, v in zip(b2, vals):
            ax2.annotate("n/a" if v is None else f"{v:,.0f}", (b.get_x() + b.get_width() / 2,
                         v or 0), ha="center", va="bottom", fontsize=7, rotation=90,
                         xytext=(0, 2), textcoords="offset points")
    ax2.set_xticks(range(len(rec_labels)))
    ax2.set_xticklabels(rec_labels, fontsize=9)
    lo, hi = ax2.get_ylim()
    ax2.set_ylim(0, hi * 1.15)
    ax2.set_ylabel("milliseconds")
    ax2.set_title("Recovery (sqlite: weftd is the killed process, so no 503 can come)")
    ax2.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "durability.png"), dpi=110)
    plt.close(fig)
    written.append("durability.png")
    return written


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join("" if c is None else str(c) for c in r) + " |")
    return "\n".join(lines)


def markdown(doc):
    p = doc["parameters"]
    m = doc["machine"]
    v = m["versions"]
    L = []
    L.append(f"# Weft persistence benchmark ({doc['mode']})")
    L.append("")
    L.append(f"Generated {doc['generatedAt']} in {doc['elapsedSeconds']} s of measurements. "
             f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memoryGiB']} GiB, kernel {m['kernel']}, "
             f"{m['os']}. Versions: weft {v['weft']} ({v['weftCommit']}), nats-server {v['nats-server']}, "
             f"redis-server {v['redis-server']}, SQLite {v['sqlite']}, nats.c {v['nats.c']}, "
             f"hiredis {v['hiredis']}, Poco {v['poco']}.")
    L.append("")
    L.append("Load average (1/5/15 min) at the start of each profile: " + ", ".join(
        f"{pr['name']} {pr.get('loadavg', {}).get('start', '?')}" for pr in doc["profiles"]) +
        ". Everything (weftd, the backend, the load generator) shares these cores, "
        "so treat the numbers as ratios between profiles rather than as capacities.")
    L.append("")
    L.append("Disk flush latency (`fdatasync` of a 4 KiB write, p50 at the start / end of each "
             "profile): " + ", ".join(
                 f"{pr['name']} {pr['fdatasyncProbe'].get('start', {}).get('p50Ms', '?')} / "
                 f"{pr['fdatasyncProbe'].get('end', {}).get('p50Ms', '?')} ms"
                 for pr in doc["profiles"]) +
             ". On a shared VM this moves by an order of magnitude within minutes, and with it "
             "every number that waits for a flush (sqlite FULL most of all).")
    L.append("")
    verdict = doc["verdict"]
    L.append("## Verdict")
    L.append("")
    for msg in verdict["messages"]:
        L.append(f"- {msg}")
    L.append("")
    L.append("**What a process kill proves.** " + KILL_NOTE)
    L.append("")

    # Summary
    L.append("## Summary")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        sub = find_rest(pr, "submit", "closed")
        cyc = find_rest(pr, "claim-complete", "closed")
        hb = find_rest(pr, "heartbeat", "closed")
        al = find_rest(pr, "agent-list", "closed")
        c = pr["crash"]
        lost = " / ".join(str(c[part]["classes"]["acked_lost"]) for part in ("rest", "direct")
                          if part in c) or "–"
        rec = c.get("rest", {}).get("recovery", {})
        rows.append([
            f"**{pr['name']}**",
            fmt_opt(sub and sub["opsPerSec"]),
            f"{fmt_ms(sub and sub['p50Us'])} / {fmt_ms(sub and sub['p99Us'])}",
            fmt_opt(cyc and cyc["opsPerSec"]),
            fmt_opt(hb and hb["opsPerSec"]),
            fmt_opt(al and al["opsPerSec"]),
            lost,
            fmt_num((rec.get("killToFirst503Ms") or {}).get("median")),
            fmt_num((rec.get("restartToFirstSuccessMs") or {}).get("median")),
            fmt_num(pr.get("restart", {}).get("servingMs")),
        ])
    L.append(table(["profile", "submit ops/s", "submit p50 / p99 ms", "claim+complete cycles/s",
                    "heartbeat ops/s", "agent list (1,000) ops/s",
                    "acked_lost (REST / plugin put)", "kill → first 503 ms",
                    "restart → first success ms", "weftd restart → serving ms"], rows))
    L.append("")
    L.append(f"REST runs: closed loop with {p['threads']} keep-alive connections, "
             f"{p['warmupMs']} ms warm-up discarded, {p['durationMs']} ms measured. "
             f"acked_lost sums {p['rounds']} crash rounds per profile. Medians over the rounds. "
             f"weftd restart: with {p['restartItems']:,} work items stored (submitted through REST "
             "before the other workloads), from spawning the process to the first "
             "`GET /api/work` that lists them all; SIGTERM drain is the graceful stop before it.")
    L.append("")
    L.append("Charts: `latency.png` (p50 and p99 per workload and profile), `throughput.png` "
             "(ops/s), `durability.png` (acked writes lost, recovery times).")
    L.append("")

    # REST detail
    L.append("## REST workloads through weftd")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        for w in pr.get("rest", {}).get("workloads", []):
            if "error" in w:
                rows.append([pr["name"], w["name"], "", "", "", "", "", "", "", "", "ERROR: " + w["error"]])
                continue
            extra = ""
            if w["name"] == "claim-complete":
                extra = (f"claim p50 {fmt_ms(w['claimStep']['p50Us'])} ms, complete p50 "
                         f"{fmt_ms(w['completeStep']['p50Us'])} ms")
            if w.get("mode") == "open":
                extra = f"max start lag {w['maxStartLagMs']} ms"
            if w["name"] == "agent-list":
                extra = (f"{w.get('agentsPerResponse', '?')} agents, "
                         f"{w.get('responseBytes', 0) / 1024:,.0f} KiB per response")
            errs = w["errors"]
            rows.append([pr["name"], rest_label(w), fmt_num(w["count"]), fmt_num(w["opsPerSec"]),
                         fmt_ms(w["p50Us"]), fmt_ms(w["p90Us"]), fmt_ms(w["p99Us"]),
                         fmt_ms(w["p999Us"]), fmt_ms(w["maxUs"]),
                         f"**{errs}**" if errs else "0", extra])
    L.append(table(["profile", "workload", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms",
                    "p99.9 ms", "max ms", "errors", "notes"], rows))
    L.append("")
    L.append("Open loop: requests are due at a fixed rate whatever happened before, and latency "
             "is measured from the intended send time, so a stall also counts against the "
             "requests it delayed (no coordinated omission). Its p50 includes the load "
             "generator's own wake-up delay on a busy machine.")
    L.append("")

    # Baseline
    L.append("## Plugin baseline (no weftd)")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        b = pr.get("baseline", {})
        if "error" in b:
            rows.append([pr["name"], "ERROR: " + b["error"]] + [""] * 8)
            continue
        for o in b.get("ops", []):
            rows.append([pr["name"], kv_label(o), fmt_num(o["count"]), fmt_num(o["opsPerSec"]),
                         fmt_ms(o["p50Us"]), fmt_ms(o["p90Us"]), fmt_ms(o["p99Us"]),
                         fmt_ms(o["p999Us"]), fmt_ms(o["maxUs"]), o["errors"]])
    L.append(table(["profile", "operation", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms",
                    "p99.9 ms", "max ms", "errors"], rows))
    L.append("")
    L.append(f"Values of {doc['baselineValueBytes']} bytes, through the same plugin `.so` and "
             "loader as weftd. For sqlite the baseline uses its own database file with the "
             "profile's settings, so it does not compete with weftd for the write lock.")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        for rest_name, kv_name, pair in (("submit", "create", "submit vs. create"),
                                         ("heartbeat", "update", "heartbeat vs. update")):
            w = find_rest(pr, rest_name, "closed")
            k1 = find_kv(pr, kv_name, 1)
            k8 = find_kv(pr, kv_name, p["threads"])
            if not w:
                continue
            rows.append([pr["name"], pair, fmt_ms(k1 and k1["p50Us"]), fmt_ms(k8 and k8["p50Us"]),
                         fmt_ms(w["p50Us"]), fmt_opt(k1 and k1["opsPerSec"]),
                         fmt_opt(k8 and k8["opsPerSec"]), fmt_opt(w["opsPerSec"])])
    L.append("Weft's overhead: each REST operation next to the storage primitive it mostly is "
             "(a submit is one `create`; a heartbeat is a `get` plus an `update`), the plugin "
             f"alone with 1 and with {p['threads']} threads, REST with {p['threads']} "
             "connections. Where the plugin with several threads is slower than REST, the "
             "backend's own contention (for sqlite: writers queueing for the file lock) costs "
             "more than weftd's handling, which admits fewer concurrent writes.")
    L.append("")
    L.append(table(["profile", "pair", "plugin p50 ms (1 thr)",
                    f"plugin p50 ms ({p['threads']} thr)", f"REST p50 ms ({p['threads']} conn)",
                    "plugin ops/s (1 thr)", f"plugin ops/s ({p['threads']} thr)", "REST ops/s"],
                   rows))
    L.append("")

    # Crash
    L.append("## Crash durability")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        c = pr["crash"]
        for part in ("rest", "direct"):
            if part not in c:
                continue
            k = c[part]["classes"]
            lost = k["acked_lost"]
            lost_cell = f"**{lost}**" if lost else "0"
            rows.append([pr["name"], c["killedProcess"], c[part]["writes"], c["rounds"],
                         fmt_num(c[part]["sent"]), fmt_num(k["acked_present"]), lost_cell,
                         k["failed_absent"], k["failed_present"], k["indeterminate_present"],
                         k["indeterminate_absent"], k["duplicated"]])
        if c["errors"]:
            rows.append([pr["name"], "", "ROUND ERRORS: " + "; ".join(c["errors"])] + [""] * 9)
    L.append(table(["profile", "killed", "writes", "rounds", "sent", "acked_present",
                    "acked_lost", "failed_absent", "failed_present", "indeterminate_present",
                    "indeterminate_absent", "duplicated"], rows))
    L.append("")
    L.append(f"Each round: writes at a fixed rate (REST {p['crashRate']:.0f}/s over "
             f"{p['threads']} connections; plugin puts {p['crashDirectRate']:.0f}/s) with a "
             "unique tag per item (REST: `taskId` and `contextData.benchTag`; plugin: the key); "
             "`kill -9` after about 1.5 s; restart on the same data 1 s later; writing goes on "
             "until service has been back for 1.5 s; then every item is looked up straight in "
             "the backend through the plugin (not through weftd's caches). "
             "*acked* = 2xx (plugin: Ok); *failed* = an error answer, or no connection at all "
             "(plugin: any error but Timeout); *indeterminate* = sent, but no answer (plugin: "
             "Timeout). `failed_present` is allowed for REST: docs/api.md §1.9 says a 503 on a write "
             "does not prove that nothing was written. `duplicated` counts tags stored twice.")
    L.append("")

    # Recovery
    L.append("## Recovery")
    L.append("")
    rows = []
    for pr in doc["profiles"]:
        rec = pr["crash"].get("rest", {}).get("recovery", {})
        drec = pr["crash"].get("direct", {}).get("recovery", {})
        rs = pr.get("restart", {})

        def mm(d, k):
            x = d.get(k) or {}
            if x.get("median") is None:
                return "n/a"
            return f"{x['median']:,.0f} / {x['max']:,.0f}"
        rows.append([pr["name"], mm(rec, "killToFirst503Ms"), mm(rec, "killToFirstFailureMs"),
                     mm(rec, "restartToFirstSuccessMs"), mm(drec, "restartToFirstSuccessMs"),
                     fmt_num(rs.get("minItems")), fmt_num(rs.get("healthMs")),
                     fmt_num(rs.get("readyMs")), fmt_num(rs.get("servingMs")),
                     fmt_num(pr.get("stopMs")), rs.get("error", "")])
    L.append(table(["profile", "kill → first 503 ms (median / max)",
                    "kill → first failure ms", "restart → first REST success ms",
                    "restart → first plugin put ok ms", "weftd restart: items stored",
                    "→ /health ms", "→ /ready ms", "→ serving all items ms",
                    "SIGTERM drain ms", "note"], rows))
    L.append("")
    L.append("Times are measured from the moment the script sent the kill or spawned the "
             "restarted process to the completion of the first request with that outcome. For "
             "sqlite the killed process is weftd itself, so clients see refused connections, "
             "not 503s (n/a), and \"restart\" is weftd's restart. weftd reconnects with backoff "
             "from `kv.reconnectWaitMs` (default 2000 ms), which dominates restart → first "
             "success for nats and redis.")
    L.append("")

    # Settings
    L.append("## Backend settings, read back from the running backends")
    L.append("")
    for pr in doc["profiles"]:
        L.append(f"- **{pr['name']}** ({pr['durability']}): " + "; ".join(
            f"{k}: `{json.dumps(val) if not isinstance(val, str) else val}`"
            for k, val in pr["settings"].items()))
    L.append("")
    L.append("## Parameters")
    L.append("")
    L.append("```")
    L.append(json.dumps(p, indent=2))
    L.append("```")
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--profiles", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--open-rate", type=float, default=0)
    ap.add_argument("--crash-rate", type=float, default=0)
    ap.add_argument("--crash-direct-rate", type=float, default=0)
    ap.add_argument("--duration-ms", type=int, default=0)
    ap.add_argument("--warmup-ms", type=int, default=0)
    ap.add_argument("--kv-duration-ms", type=int, default=0)
    ap.add_argument("--kv-threads", default="")
    ap.add_argument("--restart-items", type=int, default=0)
    ap.add_argument("--commit", default="", help="the weft commit measured (default: git HEAD now)")
    a = ap.parse_args()

    doc = {
        "generatedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": a.mode,
        "elapsedSeconds": a.elapsed,
        "machine": machine_info(a.raw, a.commit),
        "parameters": {
            "rounds": a.rounds, "threads": a.threads, "openRate": a.open_rate,
            "crashRate": a.crash_rate, "crashDirectRate": a.crash_direct_rate,
            "durationMs": a.duration_ms, "warmupMs": a.warmup_ms,
            "kvDurationMs": a.kv_duration_ms, "kvThreads": a.kv_threads,
            "restartItems": a.restart_items,
            "weftd": "defaults (log.level=info, kv.timeoutMs=2000, kv.reconnectWaitMs=2000, "
                     "http.threads=64), bound to 127.0.0.1",
        },
        "profiles": [],
        "baselineValueBytes": 512,
    }
    for profile in a.profiles.split(","):
        backend, durability = PROFILE_INFO[profile]
        kv = load(os.path.join(a.raw, f"{profile}-kv.json"), {"error": "missing"})
        doc["baselineValueBytes"] = kv.get("valueBytes", 512)
        try:
            with open(os.path.join(a.raw, f"{profile}-loadavg.txt")) as f:
                loadavg = dict(line.rstrip("\n").split(" ", 1) for line in f if " " in line)
        except OSError:
            loadavg = {}
        fsync = {}
        try:
            with open(os.path.join(a.raw, f"{profile}-fsync.txt")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        fsync[parts[0]] = {"p50Ms": float(parts[1]), "p90Ms": float(parts[2])}
        except (OSError, ValueError):
            pass
        doc["profiles"].append({
            "name": profile,
            "backend": backend,
            "durability": durability,
            "settings": settings_for(a.raw, profile),
            "baseline": kv,
            "rest": load(os.path.join(a.raw, f"{profile}-rest.json"), {"error": "missing"}),
            "crash": crash_summary(a.raw, profile),
            "fill": load(os.path.join(a.raw, f"{profile}-fill.json"), {}),
            "restart": load(os.path.join(a.raw, f"{profile}-restart.json"), {}),
            "stopMs": (load(os.path.join(a.raw, f"{profile}-stop.json"), {}) or {}).get("stopMs"),
            "loadavg": loadavg,
            "fdatasyncProbe": fsync,
        })

    # Verdict: loss outside the control is the headline.
    messages = []
    status = 0
    for pr in doc["profiles"]:
        c = pr["crash"]
        for part in ("rest", "direct"):
            if part not in c:
                continue
            lost = c[part]["classes"]["acked_lost"]
            acked = lost + c[part]["classes"]["acked_present"]
            what = "REST submits" if part == "rest" else "plugin puts"
            if pr["name"] == CONTROL:
                if c[part]["roundsWithAckedLoss"] == c["rounds"] and lost > 0:
                    messages.append(f"Positive control {CONTROL}: {lost:,} of {acked:,} acknowledged "
                                    f"{what} lost, in every one of {c['rounds']} rounds, as it "
                                    "must: the harness sees loss when there is loss.")
                else:
                    status = max(status, 4)
                    messages.append(f"**HARNESS PROBLEM: the positive control {CONTROL} lost only "
                                    f"{lost} acknowledged {what} (loss in "
                                    f"{c[part]['roundsWithAckedLoss']} of {c['rounds']} rounds); "
                                    "it must lose in every round.**")
            elif lost > 0:
                status = 3
                messages.append(f"**ACKNOWLEDGED WRITES LOST: {pr['name']} lost {lost:,} of "
                                f"{acked:,} acknowledged {what} in {c[part]['roundsWithAckedLoss']} "
                                f"of {c['rounds']} rounds (e.g. {', '.join(c[part]['lostSamples'][:3])}). "
                                "This breaks Weft's first promise (docs/reliability.md).**")
            else:
                messages.append(f"{pr['name']}: 0 of {acked:,} acknowledged {what} lost over "
                                f"{c['rounds']} kill -9 rounds.")
        if c["errors"]:
            status = max(status, 4)
            messages.append(f"**{pr['name']}: {len(c['errors'])} crash round(s) failed: "
                            f"{'; '.join(c['errors'])}**")
    doc["verdict"] = {
        "lossOutsideControl": status == 3,
        "controlShowedLoss": not any("HARNESS PROBLEM" in m for m in messages),
        "messages": messages,
    }

    os.makedirs(a.out, exist_ok=True)
    try:
        doc["charts"] = charts(doc, a.out)
    except Exception as e:  # a missing chart must not lose the tables
        doc["charts"] = []
        doc["chartError"] = repr(e)
        print(f"report.py: charts failed: {e!r}", file=sys.stderr)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(markdown(doc))
    for m in messages:
        print(("!!! " if m.startswith("**") else "") + m.replace("**", ""), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
