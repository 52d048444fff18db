#!/usr/bin/env python3
"""Benchmark: is a table fed by the event API as fast to query as one bulk load? The issue's
"a day of events stays as fast to query as one bulk load", measured on a day's worth of commits
made fast: `--requests` event requests of `--events` each, posted one after another with the
committer told to commit every `--events` rows (`--event-commit-rows`), so that every request is
a Delta commit of its own (a file each, as a day of trickling events leaves them). The same events are then loaded into a
second dataset of the same contract as one batch (one commit). Measured, for four queries (a
count, a group-by, a point lookup, a filtered top-10), the median answer time over HTTP:

1. the events table as the commits left it (maintenance off), against the bulk load;
2. the events table after table maintenance (the server restarted with maintenance on: small
   files compacted, a checkpoint written), against the bulk load.

    cargo build --release -p tessera
    python3 bench/maintenance.py --requests 1000 --events 1000

No peer: the bar is Tessera's own bulk load. Results are added to bench/RESULTS.md.
"""

import argparse
import datetime
import http.client
import json
import random
import statistics
import time
import urllib.parse

from common import (ROOT, git_rev, interleaved_medians_ms, machine, query_arrow, release_binary, require_binary,
                    scratch_dir, start_server, write_section)
from events import CONTRACT, PRODUCT, call, event

# The events contract with a second dataset, `bulk`, of the same columns.
TWO_DATASETS = CONTRACT + CONTRACT.split("schema:\n", 1)[1].replace("- name: events", "- name: bulk", 1)

QUERIES = {
    "count": "SELECT count(*) AS n FROM web.clicks.{t}",
    "group-by": "SELECT kind, count(*) AS n, avg(dwell_ms) AS dwell FROM web.clicks.{t} GROUP BY kind",
    "point lookup": "SELECT event_id, at FROM web.clicks.{t} WHERE event_id = 'e000000123456'",
    "filtered top-10": ("SELECT artwork_id, count(*) AS n FROM web.clicks.{t} WHERE kind = 'purchase' "
                        "AND at >= TIMESTAMP '2026-12-05 00:00:00' GROUP BY artwork_id ORDER BY n DESC LIMIT 10"),
}
MAINTENANCE_FLAGS = ["--maintenance-interval-seconds", "1"]


def dataset(url, token, name):
    return call(url, token, "GET", f"/api/v1/datasets/web/clicks/{name}")


def count(url, token, name):
    return call(url, token, "POST", "/api/v1/query",
                {"sql": f"SELECT count(*) AS n FROM web.clicks.{name}"})["rows"][0]["n"]


def post_events(url, token, bodies):
    """Posts each body as one event request, one after another on one connection."""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port)
    headers = {"content-type": "application/x-ndjson", "authorization": f"Bearer {token}"}
    for i, body in enumerate(bodies):
        while True:
            conn.request("POST", "/api/v1/datasets/web/clicks/events/events", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status == 429:
                time.sleep(0.1)
                continue
            if r.status != 202:
                raise SystemExit(f"event request {i}: {r.status}")
            break
        if (i + 1) % 500 == 0:
            print(f"  {i + 1} requests posted", flush=True)


def bulk_load(url, token, bodies):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
    conn.request("POST", "/api/v1/datasets/web/clicks/bulk/batches?format=ndjson", body=b"".join(bodies),
                 headers={"content-type": "application/x-ndjson", "authorization": f"Bearer {token}"})
    r = conn.getresponse()
    answer = r.read()
    if r.status != 201:
        raise SystemExit(f"bulk load: {r.status} {answer[:500]}")
    return json.loads(answer)


def wait_until(predicate, what, timeout=600):
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.5)
    return time.perf_counter() - start


def measure(url, token, runs):
    """Per query: (events ms, bulk ms), medians of interleaved runs."""
    out = {}
    for name, sql in QUERIES.items():
        fns = [lambda t=t: query_arrow(url, token, sql.format(t=t)) for t in ("events", "bulk")]
        out[name] = interleaved_medians_ms(fns, runs)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000, help="events per request")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    rng = random.Random(7)
    bodies, n = [], 0
    for _ in range(args.requests):
        lines = []
        for _ in range(args.events):
            lines.append(event(rng, n))
            n += 1
        bodies.append(("\n".join(lines) + "\n").encode())
    total = n

    data = scratch_dir("tessera-bench-maintenance-")
    server, url, token = start_server(args.binary, data, "--maintenance-interval-seconds", "0",
                                      "--event-commit-rows", str(args.events))
    try:
        # The bench's product is minimal (the standard library would ask for descriptions).
        for p in call(url, token, "GET", "/api/v1/governance/policies"):
            if p["origin"] == "standard":
                call(url, token, "POST", f"/api/v1/governance/policies/{p['id']}/disable", {})
        call(url, token, "POST", "/api/v1/apply", {"dry_run": False, "files": [
            {"name": "clicks/product.odps.yaml", "content": PRODUCT},
            {"name": "clicks/clicks.odcs.yaml", "content": TWO_DATASETS}]})
        print(f"posting {args.requests} requests of {args.events} events, one after another", flush=True)
        start = time.perf_counter()
        post_events(url, token, bodies)
        posting_s = time.perf_counter() - start
        drain_s = wait_until(lambda: count(url, token, "events") == total, "the events to be committed",
                             timeout=3600)
        print("loading the same events as one batch", flush=True)
        start = time.perf_counter()
        bulk_load(url, token, bodies)
        bulk_s = time.perf_counter() - start
        if count(url, token, "bulk") != total:
            raise SystemExit("the bulk load did not keep every event")
        fragmented = dataset(url, token, "events")
        bulk = dataset(url, token, "bulk")
        print(f"events table: version {fragmented['table_version']}, {fragmented['table_files']} files; "
              f"bulk: {bulk['table_files']} file(s)", flush=True)
        before = measure(url, token, args.runs)
    finally:
        server.terminate()
        server.wait()

    # The same mesh with table maintenance on.
    server, url, token = start_server(args.binary, data, *MAINTENANCE_FLAGS, token=token)
    try:
        fragmented_files = fragmented["table_files"]
        waited = wait_until(lambda: dataset(url, token, "events")["table_files"] < fragmented_files,
                            "maintenance to compact the events table")
        compacted = dataset(url, token, "events")
        if count(url, token, "events") != total:
            raise SystemExit("maintenance changed the events table's rows")
        print(f"maintenance: {fragmented_files} files → {compacted['table_files']} in {waited:.1f} s", flush=True)
        after = measure(url, token, args.runs)
    finally:
        server.terminate()
        server.wait()

    for name in QUERIES:
        print(f"{name}: {before[name][0]:.1f} / {after[name][0]:.1f} ms (events before / after maintenance), "
              f"bulk {after[name][1]:.1f} ms", flush=True)

    today = datetime.date.today().isoformat()
    mib = lambda b: f"{b / 2**20:.1f} MiB"
    section = [
        f"## table maintenance: a day of event commits against one bulk load — {today}, {total:,} events",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build), SQLite metadata, local tables",
        f"- load: {args.requests:,} event requests of {args.events} events (about 185 bytes each) posted one after "
        f"another in {posting_s:.1f} s with the committer at `--event-commit-rows {args.events}` (a commit a request; all committed {drain_s:.1f} s after the last acknowledgement): the events table "
        f"at version {fragmented['table_version']}, {fragmented_files:,} files, {mib(fragmented['table_bytes'])}; the "
        f"same events as one NDJSON batch into `bulk` ({bulk_s:.1f} s): {bulk['table_files']} file(s), "
        f"{mib(bulk['table_bytes'])}",
        f"- maintenance: the server restarted with `{' '.join(MAINTENANCE_FLAGS)}` (defaults otherwise); the events "
        f"table compacted to {compacted['table_files']} file(s), {mib(compacted['table_bytes'])}, {waited:.1f} s after "
        "the start",
        f"- median of {args.runs} runs after one warm-up, the two tables interleaved, over HTTP on loopback with an "
        "Arrow answer",
        "",
        "| query | events, as committed (ms) | bulk (ms) | ratio | events, maintained (ms) | bulk (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in QUERIES:
        (e0, b0), (e1, b1) = before[name], after[name]
        section.append(f"| {name} | {e0:.1f} | {b0:.1f} | {e0 / b0:.2f} | {e1:.1f} | {b1:.1f} | {e1 / b1:.2f} |")
    section.append("")
    section.append("Queries: " + "; ".join(f"{k}: `{v.format(t='…')}`" for k, v in QUERIES.items()) + ".")
    section.append("")
    write_section(args.results, section)
    print(f"results written to {args.results}")


if __name__ == "__main__":
    main()
