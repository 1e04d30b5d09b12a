#!/usr/bin/env python3
"""The connections benchmark: what idle, slow and busy clients cost weftd.

Run by `./scripts/bench --connections`, once per weftd binary under test, each
against its own running weftd (URL and PID given). Appends one JSON object per
measurement to --out:

  throughput   wrk -t2 -c32 on /health, GET /api/agents, POST /api/work
               (requests/s, p50, p99, errors)
  idle         N idle keep-alive connections (each made one request, then
               stays open): how many were served, RSS per 1,000 connections
  idle-load    wrk -c256 on /health and GET /api/agents while those N
               connections stay open
  slow         M connections that sent part of their headers and stall:
               wrk -c32 /health p50/p99 meanwhile
  lists        64 concurrent full GET /api/work lists of 10,000 items: weftd's
               peak RSS while they are served, and how long they take
  limit        http.maxConnections idle connections held open, then 200 new
               connections one after another asking /health and 50 asking
               GET /api/agents: statuses and latency (connect to last byte)

Everything stays on 127.0.0.1. Only the standard library and the wrk binary.
"""
import argparse
import http.client
import json
import threading
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def wrk(url, path, conns, seconds, script=None):
    """Runs wrk --latency; returns rps, p50/p99 in ms and error counts."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    cmd.append(url + path)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    res = {"connections": conns, "seconds": seconds}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}Ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socketErrors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    return res


def open_idle(port, n, request):
    """Opens n connections; each sends `request` (if any) and reads its reply.
    Returns (sockets, served, failed)."""
    socks, failed = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
        except OSError:
            failed += 1
    if not request:
        return socks, 0, failed
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        try:
            s.sendall(request)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            pending[s] = b""
        except OSError:
            failed += 1
    served = 0
    deadline = time.time() + 30
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                failed += 1
                sel.unregister(s)
                del pending[s]
                continue
            pending[s] += data
            buf = pending[s]
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"content-length:\s*(\d+)", buf[:head_end].lower())
                need = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    if buf.startswith(b"HTTP/1.1 200"):
                        served += 1
                    else:
                        failed += 1
                    sel.unregister(s)
                    del pending[s]
    failed += len(pending)
    sel.close()
    return socks, served, failed


def alive(socks):
    """How many of the sockets the server has not closed."""
    n = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1, socket.MSG_PEEK)
            if data:
                n += 1  # something unread (should not happen) but open
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def submit_items(port, n, capability, threads=8):
    """Submits n work items with one capability over keep-alive connections."""
    body = json.dumps({"boundary": "default", "capability": capability,
                       "description": "connections bench list item " + "x" * 200,
                       "taskId": "list"})
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    failures = []

    def run(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(k):
            conn.request("POST", "/api/work", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                failures.append(r.status)
        conn.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in per]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return len(failures)


def concurrent_lists(port, pid, path, n):
    """n concurrent GETs of path (Connection: close); returns bytes each, the
    wall time, and the peak RSS sampled every 20 ms meanwhile."""
    sizes, peak, done = [], [rss_kib(pid)], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(rss_kib(pid))
            time.sleep(0.02)

    def one():
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        total = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            total += len(d)
        s.close()
        sizes.append(total)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.time()
    ts = [threading.Thread(target=one) for _ in range(n)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    elapsed = time.time() - t0
    done.set()
    sampler.join()
    return sizes, elapsed, max(peak)


def probe(port, path):
    """One fresh connection asking for path; returns (status, ms)."""
    t0 = time.perf_counter()
    status = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        buf = b""
        while b"\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        s.close()
        m = re.match(rb"HTTP/1\.1 (\d{3})", buf)
        status = int(m.group(1)) if m else 0
    except OSError:
        status = 0
    return status, (time.perf_counter() - t0) * 1000.0


def percentile(values, pct):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 2)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--max-connections", type=int, default=16384)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = int(args.url.rsplit(":", 1)[1])
    results = []

    def emit(kind, **fields):
        rec = {"label": args.label, "kind": kind, **fields}
        results.append(rec)
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), file=sys.stderr, flush=True)

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write('wrk.method = "POST"\n'
                  'wrk.headers["Content-Type"] = "application/json"\n'
                  'wrk.body = \'{"boundary":"default","capability":"bench",'
                  '"description":"connections bench","taskId":"t"}\'\n')
        post_script = lua.name

    # 1. Throughput at 32 connections, nothing else open.
    for name, path, script in (("health", "/health", None),
                               ("agents", "/api/agents", None),
                               ("submit", "/api/work", post_script)):
        emit("throughput", route=name, **wrk(args.url, path, 32, args.seconds, script))

    # 2. Idle keep-alive connections.
    rss_before = rss_kib(args.pid)
    t0 = time.time()
    socks, served, failed = open_idle(port, args.idle,
                                      b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
    time.sleep(1)
    rss_after = rss_kib(args.pid)
    still = alive(socks)
    emit("idle", connections=args.idle, served=served, failed=failed, open=still,
         seconds=round(time.time() - t0, 2), rssBeforeKiB=rss_before, rssAfterKiB=rss_after,
         rssPer1000KiB=round((rss_after - rss_before) * 1000 / max(1, still), 1))

    # 3. Load beside them.
    for name, path in (("health", "/health"), ("agents", "/api/agents")):
        emit("idle-load", route=name, idleOpen=alive(socks),
             **wrk(args.url, path, 256, args.seconds))
    close_all(socks)
    time.sleep(2)

    # 4. Slow headers: a request line and one header, then nothing.
    slow, _, failed = open_idle(port, args.slow, None)
    for s in slow:
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n")
        except OSError:
            failed += 1
    time.sleep(0.5)
    seconds = min(args.seconds, 5)  # within the default 10 s header timeout
    emit("slow", slowConnections=args.slow, failed=failed, route="health",
         **wrk(args.url, "/health", 32, seconds))
    close_all(slow)

    # 5. 64 concurrent full lists of 10,000 items (a capability of their own).
    failures = submit_items(port, 10000, "lists")
    time.sleep(2)  # the view catches up with the last writes
    rss_before = rss_kib(args.pid)
    sizes, elapsed, peak = concurrent_lists(port, args.pid, "/api/work?capability=lists", 64)
    emit("lists", lists=64, items=10000, submitFailures=failures,
         bytesEach=max(sizes) if sizes else 0, seconds=round(elapsed, 2),
         rssBeforeKiB=rss_before, rssPeakKiB=peak)

    # 6. At the connection limit: /health from new connections still answers.
    time.sleep(2)
    held, _, failed = open_idle(port, args.max_connections, None)
    time.sleep(1)
    for name, path, n in (("health", "/health", 200), ("agents", "/api/agents", 50)):
        runs = [probe(port, path) for _ in range(n)]
        statuses = {}
        for status, _ in runs:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        ms = [t for _, t in runs]
        emit("limit", route=name, held=alive(held), heldFailed=failed, probes=n,
             statuses=statuses, p50Ms=percentile(ms, 50), p99Ms=percentile(ms, 99),
             maxMs=round(max(ms), 2))
    close_all(held)
    os.unlink(post_script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
