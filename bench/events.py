#!/usr/bin/env python3
"""Benchmark: streaming event ingest. Events of about 250 bytes posted in requests of 1,000 by
client threads pinned to core 0, the server pinned to core 1, for `--seconds`; then the time
until every acknowledged event is queryable, the Delta commits the committer made, and
single-event POSTs for a few seconds.

    cargo build --release -p tessera -p tessera-bench
    python3 bench/events.py --seconds 30

Then the same again against the issue's peer, `bench/peers/events_fastapi.py` (FastAPI +
deltalake micro-batches: the same validation, fsynced before the answer, committed every 500
ms), alone on the same core once Tessera has stopped; `--no-peer` skips it, `--no-tessera`
runs the peer alone (to try it; nothing is written to the results then). The peer runs in the
bench venv, ~/.cache/tessera-bench-venv, which this script creates when it is missing and
into which it installs the peer's packages at the versions pinned in PEER_PACKAGES. The time
until the peer's events are queryable is measured by reading its Delta table with deltalake
(from core 0), every 100 ms as Tessera's is queried.

The client is the Rust load generator `crates/tessera-bench/src/bin/event_load.rs` when it is built
(`cargo build --release -p tessera-bench`), else Python threads (http.client, one
keep-alive connection each), which are the limit at single-event POSTs. Results are added to
bench/RESULTS.md, the peer in a column next to Tessera's.
"""

import argparse
import datetime
import http.client
import json
import os
import pathlib
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from common import ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section

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


def load(url, token, bodies, events_per_body, seconds, threads):
    """Posts `bodies` from `threads` connections for `seconds`: (events acknowledged, seconds
    taken, p50 and p99 acknowledgement latency in ms, 429s). With the Rust load generator built
    (`cargo build --release -p tessera-bench`) it posts, from core 0; else Python
    threads do (and are the limit at single-event POSTs)."""
    if EVENT_LOAD.exists():
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for body in bodies:
                f.write("[" + ",".join(l for l in body.decode().splitlines() if l.strip()) + "]\n")
            path = f.name
        try:
            out = subprocess.run(
                ["taskset", "-c", "0", str(EVENT_LOAD), "--url", f"{url}/api/v1/datasets/web/clicks/events/events",
                 "--token", token, "--bodies", path, "--events-per-body", str(events_per_body),
                 "--connections", str(threads), "--seconds", str(seconds)],
                capture_output=True, text=True, check=True)
        finally:
            os.unlink(path)
        r = json.loads(out.stdout)
        if r["failed"]:
            raise SystemExit(f"{r['failed']} requests failed")
        return r["events"], r["seconds"], r["p50_ms"], r["p99_ms"], r["busy"]
    latencies, counts, lock = [], {"events": 0, "retries": 0}, threading.Lock()
    started = time.perf_counter()
    until = started + seconds
    workers = [threading.Thread(target=post_loop, args=(url, token, bodies, events_per_body, until, latencies,
                                                        counts, lock)) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (counts["events"], elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99),
            counts["retries"])


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def single_events():
    return [json.dumps({"event_id": f"s{i}", "user_id": "U00000001", "kind": "view"}).encode()
            for i in range(1000)]


def delta_commits(table):
    """The commits in a Delta table's log after the one that created it."""
    return len([f for f in os.listdir(table / "_delta_log") if f.endswith(".json")]) - 1


def peak_rss(pid):
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")).split()[1]) * 1024


def report(who, f):
    print(f"{who}{f['rate']:,.0f} events/s acknowledged; p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms; "
          f"{f['retries']} 429s; all queryable {f['drain']:.2f} s after the last acknowledgement; "
          f"{f['commits']} commits ({f['acked'] / max(f['commits'], 1):,.0f} rows each); "
          f"peak RSS {f['rss'] / 2**20:.0f} MiB", flush=True)


def run_tessera(args, bodies):
    """The batched load, the drain and the single-event POSTs against `tessera serve`."""
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
        f = {}
        f["acked"], elapsed, f["p50"], f["p99"], f["retries"] = load(url, admin, bodies, args.batch,
                                                                      args.seconds, args.threads)
        f["rate"] = f["acked"] / elapsed
        drained_from = time.perf_counter()
        while scalar(url, admin, "SELECT count(*) AS n FROM web.clicks.events") < f["acked"]:
            time.sleep(0.1)
        f["drain"] = time.perf_counter() - drained_from
        f["commits"] = delta_commits(data / "tables/web/clicks/events")
        f["rss"] = peak_rss(server.pid)
        report("", f)

        events, elapsed, _, f["single_p99"], _ = load(url, admin, single_events(), 1, min(args.seconds, 10),
                                                      args.single_connections)
        f["single_rate"] = events / elapsed
        print(f"single-event POSTs: {f['single_rate']:,.0f} requests/s, p99 {f['single_p99']:.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait()
    return f


# The Rust load generator (crates/tessera-bench/src/bin/event_load.rs), when built.
EVENT_LOAD = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/event_load"

# The peer: bench/peers/events_fastapi.py in the bench venv, its packages pinned here.
PEER = ROOT / "bench/peers/events_fastapi.py"
PEER_VENV = pathlib.Path.home() / ".cache/tessera-bench-venv"
PEER_PACKAGES = ["fastapi==0.163.2", "uvicorn[standard]==0.54.0", "deltalake==1.6.6", "pyarrow==26.0.1"]
PEER_REPORTED = ["fastapi", "uvicorn", "uvloop", "httptools", "deltalake", "pyarrow"]

# Run in the bench venv: waits for a row count on stdin, then reads the Delta table with
# deltalake every 100 ms until it holds that many rows, and answers with the count.
WATCHER = """
import sys, time
from deltalake import DeltaTable
print("ready", flush=True)
for line in sys.stdin:
    while (n := DeltaTable(sys.argv[1]).to_pyarrow_dataset().count_rows()) < int(line):
        time.sleep(0.1)
    print(n, flush=True)
"""


def peer_versions(python):
    """The installed versions of PEER_REPORTED and of Python in the bench venv."""
    script = ("import importlib.metadata as m, json, platform, sys\n"
              "v = {'python': platform.python_version()}\n"
              "for n in sys.argv[1:]:\n"
              "    try: v[n] = m.version(n)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print(json.dumps(v))")
    out = subprocess.run([python, "-c", script, *PEER_REPORTED], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def peer_python():
    """The bench venv's Python with the peer's pinned packages (the venv is created, and the
    packages installed, when missing) and the versions installed."""
    python = PEER_VENV / "bin/python"
    if not python.exists():
        print(f"creating {PEER_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    versions = peer_versions(python)
    pinned = {}
    for package in PEER_PACKAGES:
        name, version = package.split("==")
        pinned[name.split("[")[0]] = version
    if any(versions.get(name) != version for name, version in pinned.items()):
        print(f"installing {' '.join(PEER_PACKAGES)} into {PEER_VENV}", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
        versions = peer_versions(python)
    return python, versions


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_peer(args, bodies, python):
    """The same loads against the FastAPI + deltalake peer, pinned to core 1 as the server was;
    the time until queryable is measured by a deltalake reader pinned to core 0."""
    data = scratch_dir("tessera-bench-events-peer-")
    token = secrets.token_hex(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    peer = subprocess.Popen(["taskset", "-c", "1", str(python), str(PEER), "--data-dir", str(data),
                             "--port", str(port), "--token", token, "--commit-interval-ms", "500"])
    table = data / "tables/web/clicks/events"
    watcher = None
    try:
        os.sched_setaffinity(0, {0})
        deadline = time.monotonic() + 60
        while True:
            if peer.poll() is not None:
                raise SystemExit(f"the peer stopped ({peer.returncode}) before it answered")
            try:
                urllib.request.urlopen(f"{url}/health").read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the peer did not answer /health within 60 s")
                time.sleep(0.2)
        watcher = subprocess.Popen(["taskset", "-c", "0", str(python), "-c", WATCHER, str(table)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if watcher.stdout.readline().strip() != "ready":
            raise SystemExit("the deltalake reader did not start")
        f = {}
        f["acked"], elapsed, f["p50"], f["p99"], f["retries"] = load(url, token, bodies, args.batch,
                                                                      args.seconds, args.threads)
        f["rate"] = f["acked"] / elapsed
        drained_from = time.perf_counter()
        watcher.stdin.write(f"{f['acked']}\n")
        watcher.stdin.flush()
        watcher.stdout.readline()
        f["drain"] = time.perf_counter() - drained_from
        f["commits"] = delta_commits(table)
        f["rss"] = peak_rss(peer.pid)
        report("peer: ", f)

        events, elapsed, _, f["single_p99"], _ = load(url, token, single_events(), 1, min(args.seconds, 10),
                                                      args.single_connections)
        f["single_rate"] = events / elapsed
        print(f"peer: single-event POSTs: {f['single_rate']:,.0f} requests/s, p99 {f['single_p99']:.1f} ms",
              flush=True)
    finally:
        if watcher is not None:
            watcher.stdin.close()
            watcher.wait()
        peer.terminate()
        try:
            peer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()
    return f


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=8)
    # Many clients each sending one event: a durable acknowledgement waits for an fsync, so the
    # requests per second are the requests in flight per fsync.
    parser.add_argument("--single-connections", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=None)
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the FastAPI + deltalake peer (default: yes)")
    parser.add_argument("--tessera", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-tessera runs the peer alone, to try it (no --results then)")
    args = parser.parse_args()
    if not args.tessera and (args.results or not args.peer):
        parser.error("--no-tessera runs the peer alone: without --no-peer, and without --results")
    if args.tessera:
        require_binary(args.binary)
    python, versions = peer_python() if args.peer else (None, None)
    rng = random.Random(7)
    bodies = []
    for b in range(40):
        lines = [event(rng, b * args.batch + i) for i in range(args.batch)]
        bodies.append(("\n".join(lines) + "\n").encode())
    event_bytes = sum(len(b) for b in bodies) / (len(bodies) * args.batch)
    print(f"posting {args.batch}-event requests ({event_bytes:.0f} bytes an event) from {args.threads} "
          f"threads for {args.seconds:.0f} s", flush=True)
    tessera = run_tessera(args, bodies) if args.tessera else None
    peer = run_peer(args, bodies, python) if args.peer else None

    if args.results:
        today = datetime.date.today().isoformat()
        runs = [tessera] + ([peer] if peer else [])
        columns = "| measurement | Tessera |" + (" FastAPI + deltalake |" if peer else "") + " bar |"
        rule = "|---|---:|" + ("---:|" if peer else "") + "---|"

        def row(label, cell, bar):
            return f"| {label} | " + " | ".join(cell(f) for f in runs) + (f" | {bar} |" if bar else " | |")

        rust = EVENT_LOAD.exists()
        client = (f"the Rust load generator `event_load` ({args.threads} keep-alive connections for the batches, "
                  f"{args.single_connections} for single events)" if rust else
                  f"{args.threads} Python threads (http.client, keep-alive)")
        versions_line = (f"- versions: tessera {git_rev()} (release build), SQLite metadata, local tables; "
                         "`--event-commit-interval-ms 500`")
        if peer:
            v = versions
            versions_line += (f"; peer: `bench/peers/events_fastapi.py`, FastAPI {v.get('fastapi')} on uvicorn "
                              f"{v.get('uvicorn')} (one worker; uvloop {v.get('uvloop')}, httptools "
                              f"{v.get('httptools')}), pyarrow {v.get('pyarrow')}, deltalake {v.get('deltalake')}, "
                              f"Python {v.get('python')}; commits every 500 ms")
        write_section(args.results, [
            f"## streaming events — {today}, {args.batch}-event requests for {args.seconds:.0f} s",
            "",
            f"- machine: {machine()}",
            versions_line,
            f"- events of {event_bytes:.0f} bytes (7 contract columns: a pattern, valid values, a minimum, a "
            f"timestamp cast); client: {client} pinned to core 0; "
            "server pinned to core 1" + ("; the peer after Tessera, alone on the same core, read back with "
                                         "deltalake from core 0" if peer else ""),
            "",
            columns,
            rule,
            row("events/s acknowledged (durable, fsynced)", lambda f: f"{f['rate']:,.0f}", "≥ 150,000"),
            row("acknowledgement p50 / p99 (ms)", lambda f: f"{f['p50']:.1f} / {f['p99']:.1f}", "p99 < 250"),
            row("all acknowledged events queryable after the last acknowledgement (s)",
                lambda f: f"{f['drain']:.2f}", "about 2"),
            row("Delta commits, rows per commit",
                lambda f: f"{f['commits']}, {f['acked'] / max(f['commits'], 1):,.0f}", ""),
            row("server peak RSS (MiB)", lambda f: f"{f['rss'] / 2**20:.0f}", "bounded"),
            row("single-event POSTs (requests/s)" + ("" if rust else "; the Python client is the limit"),
                lambda f: f"{f['single_rate']:,.0f}", "≥ 25,000"),
            "",
        ])


if __name__ == "__main__":
    main()
