#!/usr/bin/env python3
"""The long-poll benchmark: dispatch latency and idle request rate of N agents
that long-poll POST /api/work/claim (waitMs) against N agents that poll it
once a second (today's way).

Run by `./scripts/bench --longpoll` against a running weftd (URL given), once
per mode. Each agent is one keep-alive connection driven by asyncio:

  longpoll  loop: POST /api/work/claim {"waitMs": W}; 200 -> record, claim again
  poll      loop: POST /api/work/claim; 200 -> record, claim again at once;
            204 -> sleep 1 s (agents start at random phases within the first
            second, so the polls are spread evenly)

Phases, per mode:
  idle      no work for --idle-seconds: requests/s the agents make
            (weft_http_requests_total of the claim route, as weftd counted it)
  dispatch  --items submits, one every --gap-ms (each on its own, so at most
            one item is waiting for an agent at a time): for each item the
            time from sending the submit to the agent receiving the claim
            response that carries it; median, p90, p99, max

The agents run in --procs client processes (asyncio in each), so a busy
machine does not turn the client into the bottleneck of 1,000 polls a second.
Appends one JSON object per mode to --out. Only the standard library.
"""
import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import statistics
import sys
import time
import urllib.request


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


class Conn:
    """One keep-alive HTTP/1.1 connection with a minimal client."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path, body):
        if self.writer is None:
            await self.open()
        data = json.dumps(body).encode()
        req = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        self.writer.write(req)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
            self.writer = None
        return status, payload


def metric_sum(url, name, route_label):
    """Sum of a counter's samples whose labels contain route_label."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and route_label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def sync_post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


async def agents_loop(args, host, port, capability, guids, stop_flag, received, counts):
    """Runs the agents of one process until stop_flag is set."""
    async def agent(guid):
        conn = Conn(host, port)
        body = {"agentGuid": guid, "capabilities": [capability]}
        if args.mode == "longpoll":
            body["waitMs"] = args.wait_ms
        else:
            await asyncio.sleep(random.random())  # spread the polls over the second
        while not stop_flag.is_set():
            try:
                status, payload = await conn.post("/api/work/claim", body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                conn = Conn(host, port)
                await asyncio.sleep(0.1)
                continue
            counts["requests"] += 1
            if status == 200:
                received[json.loads(payload)["id"]] = time.monotonic()
                continue
            if status != 204:
                counts["errors"] += 1
            if args.mode == "poll":
                await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(agent(g)) for g in guids]
    while not stop_flag.is_set():
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def agent_process(args, host, port, capability, guids, stop_flag, results):
    """One client process: its share of the agents (CLOCK_MONOTONIC is shared
    by all processes, so its receive times compare with the submitter's)."""
    received, counts = {}, {"requests": 0, "errors": 0}
    asyncio.run(agents_loop(args, host, port, capability, guids, stop_flag, received, counts))
    results.put((received, counts))


async def submit_items(args, host, port, capability):
    submitter = Conn(host, port)
    sent, errors = {}, 0
    for _ in range(args.items):
        t = time.monotonic()
        status, payload = await submitter.post(
            "/api/work", {"boundary": "b", "capability": capability, "description": "bench"})
        if status != 201:
            print(f"submit failed: {status} {payload[:200]}", file=sys.stderr)
            errors += 1
            continue
        sent[json.loads(payload)["id"]] = t
        await asyncio.sleep(args.gap_ms / 1000.0)
    return sent, errors


def run(args):
    host, port = args.url.split("//", 1)[1].split(":")
    port = int(port)
    capability = f"lp-{args.mode}-{random.randrange(1 << 30)}"
    guids = [f"bench-{args.mode}-{i}-{random.randrange(1 << 30)}" for i in range(args.agents)]
    for g in guids:
        sync_post(args.url, "/api/agents", {"guid": g, "handle": g, "capabilities": [capability]})

    ctx = multiprocessing.get_context("fork")
    stop_flag = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=agent_process,
                         args=(args, host, port, capability, guids[i::args.procs], stop_flag, results))
             for i in range(args.procs)]
    for p in procs:
        p.start()
    time.sleep(args.settle_seconds)  # the long-pollers park; the pollers settle

    # Idle: what weftd counted for the claim route.
    route = 'route="/api/work/claim"'
    before = metric_sum(args.url, "weft_http_requests_total", route)
    t0 = time.monotonic()
    time.sleep(args.idle_seconds)
    idle_s = time.monotonic() - t0
    idle_rate = (metric_sum(args.url, "weft_http_requests_total", route) - before) / idle_s

    sent, submit_errors = asyncio.run(submit_items(args, host, port, capability))
    time.sleep(3)  # the last items' claim responses
    stop_flag.set()
    received, errors = {}, submit_errors
    for _ in procs:
        r, c = results.get(timeout=60)
        received.update(r)
        errors += c["errors"]
    for p in procs:
        p.join(timeout=60)
    lat = [(received[i] - t) * 1000.0 for i, t in sent.items() if i in received]
    return {
        "mode": args.mode, "agents": args.agents, "clientProcesses": args.procs,
        "waitMs": args.wait_ms if args.mode == "longpoll" else 0,
        "idleSeconds": round(idle_s, 1),
        "idleRequestsPerSec": round(idle_rate, 1),
        "items": len(sent), "dispatched": len(lat), "missing": len(sent) - len(lat),
        "latencyMsMedian": round(statistics.median(lat), 2) if lat else None,
        "latencyMsP90": round(percentile(lat, 90), 2) if lat else None,
        "latencyMsP99": round(percentile(lat, 99), 2) if lat else None,
        "latencyMsMax": round(max(lat), 2) if lat else None,
        "errors": errors,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--mode", choices=["longpoll", "poll"], required=True)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--wait-ms", type=int, default=30000)
    p.add_argument("--idle-seconds", type=float, default=20)
    p.add_argument("--settle-seconds", type=float, default=5)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--gap-ms", type=int, default=100)
    p.add_argument("--procs", type=int, default=4, help="client processes sharing the agents")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.agents + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    result = run(args)
    print(json.dumps(result))
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
