#!/usr/bin/env python3
"""Benchmark: streaming event ingest. Events of about 250 bytes posted in requests of 1,000 by
client threads pinned to core 0, the server pinned to core 1, for `--seconds`; then the time
until every acknowledged event is queryable, the Delta commits the committer made, and
single-event POSTs for a few seconds.

    cargo build --release -p tessera
    python3 bench/events.py --seconds 30

The client is Python (http.client, one keep-alive connection per thread): at single-event
POSTs it is the limit, not the server, and the figure says so. The issue's peer (a FastAPI +
deltalake micro-batch service) is not measured yet. Results are added to bench/RESULTS.md.
"""

import argparse
import datetime
import http.client
import json
import os
import random
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from common import git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section

PRODUCT = """apiVersion: v1.0.0
kind: DataProduct
id: clicks
name: clicks
domain: web
status: active
team:
  name: web team
outputPorts:
  - name: events
    version: 1.0.0
    contractId: web-clicks
"""

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: web-clicks
version: 1.0.0
status: active
schema:
  - name: events
    properties:
      - name: event_id
        logicalType: string
        required: true
      - name: user_id
        logicalType: string
        required: true
        logicalTypeOptions:
          pattern: "^U[0-9]{8}$"
      - name: kind
        logicalType: string
        quality:
          - metric: invalidValues
            arguments:
              validValues: [view, like, share, purchase]
            mustBe: 0
      - name: artwork_id
        logicalType: string
      - name: page
        logicalType: string
      - name: at
        logicalType: timestamp
      - name: dwell_ms
        logicalType: integer
        logicalTypeOptions:
          minimum: 0
"""


def call(url, token, method, path, body=None):
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read())


def event(rng, n):
    return json.dumps({
        "event_id": f"e{n:012d}", "user_id": f"U{rng.randrange(10**8):08d}",
        "kind": rng.choice(["view", "like", "share", "purchase"]),
        "artwork_id": f"art-{rng.randrange(10**6):06d}", "page": f"/artworks/{rng.randrange(10**6)}?ref=feed",
        "at": f"2026-12-0{rng.randrange(1, 9)}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
        "dwell_ms": rng.randrange(60_000)})


def post_loop(url, token, bodies, events_per_body, until, latencies, counts, lock):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port)
    headers = {"content-type": "application/x-ndjson", "authorization": f"Bearer {token}"}
    sent, lat, retries = 0, [], 0
    i = random.randrange(len(bodies))
    while time.perf_counter() < until:
        body = bodies[i % len(bodies)]
        i += 1
        start = time.perf_counter()
        conn.request("POST", "/api/v1/datasets/web/clicks/events/events", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status == 429:
            retries += 1
            time.sleep(0.05)
            continue
        if r.status != 202:
            raise SystemExit(f"unexpected answer {r.status}")
        lat.append((time.perf_counter() - start) * 1000)
        sent += events_per_body
    with lock:
        latencies.extend(lat)
        counts["events"] += sent
        counts["retries"] += retries


def pin(pid, core):
    subprocess.run(["taskset", "-a", "-cp", str(core), str(pid)], check=True, capture_output=True)


def scalar(url, token, sql):
    return call(url, token, "POST", "/api/v1/query", {"sql": sql})["rows"][0]["n"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    require_binary(args.binary)
    data = scratch_dir("tessera-bench-events-")
    server, url, admin = start_server(args.binary, data, "--event-commit-interval-ms", "500")
    try:
        pin(server.pid, 1)
        os.sched_setaffinity(0, {0})
        for p in call(url, admin, "GET", "/api/v1/governance/policies"):
            if p["origin"] == "standard":
                call(url, admin, "POST", f"/api/v1/governance/policies/{p['id']}/disable", {})
        call(url, admin, "POST", "/api/v1/apply", {"files": [
            {"name": "clicks/product.odps.yaml", "content": PRODUCT},
            {"name": "clicks/clicks.odcs.yaml", "content": CONTRACT}], "dry_run": False})
        rng = random.Random(7)
        bodies = []
        for b in range(40):
            lines = [event(rng, b * args.batch + i) for i in range(args.batch)]
            bodies.append(("\n".join(lines) + "\n").encode())
        event_bytes = sum(len(b) for b in bodies) / (len(bodies) * args.batch)
        print(f"posting {args.batch}-event requests ({event_bytes:.0f} bytes an event) from {args.threads} "
              f"threads for {args.seconds:.0f} s", flush=True)
        latencies, counts, lock = [], {"events": 0, "retries": 0}, threading.Lock()
        started = time.perf_counter()
        until = started + args.seconds
        threads = [threading.Thread(target=post_loop, args=(url, admin, bodies, args.batch, until, latencies,
                                                            counts, lock)) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        acked = counts["events"]
        rate = acked / elapsed
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        drained_from = time.perf_counter()
        while scalar(url, admin, "SELECT count(*) AS n FROM web.clicks.events") < acked:
            time.sleep(0.1)
        drain = time.perf_counter() - drained_from
        log = data / "tables/web/clicks/events/_delta_log"
        commits = len([f for f in os.listdir(log) if f.endswith(".json")]) - 1
        rss = int(next(l for l in open(f"/proc/{server.pid}/status") if l.startswith("VmHWM:")).split()[1]) * 1024
        print(f"{rate:,.0f} events/s acknowledged; p50 {p50:.1f} ms, p99 {p99:.1f} ms; {counts['retries']} 429s; "
              f"all queryable {drain:.2f} s after the last acknowledgement; {commits} commits "
              f"({acked / max(commits, 1):,.0f} rows each); peak RSS {rss / 2**20:.0f} MiB", flush=True)

        single = [json.dumps({"event_id": f"s{i}", "user_id": "U00000001", "kind": "view"}).encode()
                  for i in range(1000)]
        latencies_single, counts_single = [], {"events": 0, "retries": 0}
        started = time.perf_counter()
        until = started + min(args.seconds, 10)
        threads = [threading.Thread(target=post_loop, args=(url, admin, single, 1, until, latencies_single,
                                                            counts_single, lock)) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        single_rate = counts_single["events"] / (time.perf_counter() - started)
        latencies_single.sort()
        single_p99 = latencies_single[min(len(latencies_single) - 1, int(len(latencies_single) * 0.99))]
        print(f"single-event POSTs: {single_rate:,.0f} requests/s, p99 {single_p99:.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait()

    if args.results:
        today = datetime.date.today().isoformat()
        write_section(args.results, [
            f"## streaming events — {today}, {args.batch}-event requests for {args.seconds:.0f} s",
            "",
            f"- machine: {machine()}",
            f"- versions: tessera {git_rev()} (release build), SQLite metadata, local tables; "
            "`--event-commit-interval-ms 500`",
            f"- events of {event_bytes:.0f} bytes (7 contract columns: a pattern, valid values, a minimum, a "
            f"timestamp cast); client: {args.threads} Python threads (http.client, keep-alive) pinned to core 0; "
            "server pinned to core 1",
            "",
            "| measurement | Tessera | bar |",
            "|---|---:|---|",
            f"| events/s acknowledged (durable, fsynced) | {rate:,.0f} | ≥ 150,000 |",
            f"| acknowledgement p50 / p99 (ms) | {p50:.1f} / {p99:.1f} | p99 < 250 |",
            f"| all acknowledged events queryable after the last acknowledgement (s) | {drain:.2f} | about 2 |",
            f"| Delta commits, rows per commit | {commits}, {acked / max(commits, 1):,.0f} | |",
            f"| server peak RSS (MiB) | {rss / 2**20:.0f} | bounded |",
            f"| single-event POSTs (requests/s; the Python client is the limit) | {single_rate:,.0f} | ≥ 25,000 |",
            "",
        ])


if __name__ == "__main__":
    main()
