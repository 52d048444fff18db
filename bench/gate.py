#!/usr/bin/env python3
"""Benchmark: the commit gate. 100k-row batches appended to a 10M-row dataset whose contract has
a primary key and a row count rule (both gate every commit) and row-level rules (required,
ranges, valid values, pattern), next to the same batch size into an empty dataset: if the gate
costs in proportion to the batch, the two are close.

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/gate.py --rows 10000000

Data is generated with DuckDB as Parquet; batches are sent over HTTP as Parquet. Results are
added to bench/RESULTS.md.
"""

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
import time
import urllib.request

import duckdb

from common import ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section


PRODUCT = """apiVersion: v1.0.0
kind: DataProduct
id: bench-orders
name: orders
domain: bench
status: active
outputPorts:
  - name: orders
    version: 1.0.0
    contractId: bench-orders
"""

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: bench-orders
version: 1.0.0
status: active
schema:
  - name: orders
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
    properties:
      - name: id
        logicalType: integer
        primaryKey: true
      - name: customer_id
        logicalType: string
        required: true
        logicalTypeOptions:
          pattern: "^U[0-9]{8}$"
      - name: amount
        logicalType: number
        required: true
        logicalTypeOptions:
          minimum: 0
          maximum: 100000
      - name: quantity
        logicalType: integer
        logicalTypeOptions:
          minimum: 1
          maximum: 1000
      - name: status
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments:
              validValues: [open, shipped, returned]
            mustBe: 0
      - name: created_at
        logicalType: timestamp
"""


def write_parquet(con, path, first, rows, id_of="2 * i"):
    """Rows `first`..`first + rows`; existing and appended rows get even ids (`2 * i`), a
    scattered batch odd ones between them, so that no file can be skipped by its key range."""
    con.execute(f"""
        COPY (SELECT {id_of} AS id,
                     printf('U%08d', i % 1000000) AS customer_id,
                     (i * 7919 % 100000) / 100.0 AS amount,
                     1 + i % 50 AS quantity,
                     ['open', 'shipped', 'returned'][1 + i % 3] AS status,
                     TIMESTAMP '2026-01-01' + to_seconds(i % 31536000) AS created_at
              FROM range({first}, {first + rows}) t(i))
        TO '{path}' (FORMAT PARQUET)""")


def post(url, token, path, body, content_type):
    request = urllib.request.Request(url + path, data=body, headers={
        "content-type": content_type, "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    work = scratch_dir("tessera-gate-")
    con = duckdb.connect()
    chunk = 1_000_000
    print(f"generating {args.rows:,} rows in {work}", flush=True)
    bulk = []
    for n, first in enumerate(range(0, args.rows, chunk)):
        path = work / f"bulk-{n}.parquet"
        write_parquet(con, path, first, min(chunk, args.rows - first))
        bulk.append(path)
    batches = []
    for n in range(args.runs + 1):
        path = work / f"batch-{n}.parquet"
        write_parquet(con, path, args.rows + n * args.batch, args.batch)
        batches.append(path)

    # One batch whose keys fall between existing keys all over the table (no file pruned).
    stride = args.rows // args.batch
    scattered = work / "scattered.parquet"
    write_parquet(con, scattered, 0, args.batch, id_of=f"2 * (i * {stride}) + 1")

    folder = work / "product"
    folder.mkdir()
    (folder / "product.odps.yaml").write_text(PRODUCT)
    (folder / "orders.odcs.yaml").write_text(CONTRACT)
    server, url, token = start_server(args.binary, work / "data", "--check-tick-seconds", "0")
    try:
        subprocess.run([args.binary, "apply", str(folder), "--server", url, "--token", token],
                       check=True, capture_output=True)
        ingest = "/api/v1/datasets/bench/orders/orders/batches?batch_id="

        def send(path, batch_id):
            start = time.perf_counter()
            report = post(url, token, ingest + batch_id, path.read_bytes(), "application/vnd.apache.parquet")
            elapsed = (time.perf_counter() - start) * 1000
            assert report["accepted"] == report["rows"], report
            return elapsed

        empty_ms = send(batches[0], "batch-0")
        print(f"{args.batch:,} rows into an empty dataset: {empty_ms:.0f} ms", flush=True)
        start = time.perf_counter()
        for n, path in enumerate(bulk):
            send(path, f"bulk-{n}")
        bulk_seconds = time.perf_counter() - start
        print(f"loaded {args.rows:,} rows in {bulk_seconds:.1f} s", flush=True)
        times = [send(path, f"batch-{n + 1}") for n, path in enumerate(batches[1:])]
        for t in times:
            print(f"{args.batch:,} rows into {args.rows:,}: {t:.0f} ms", flush=True)
        scattered_ms = send(scattered, "scattered")
        print(f"{args.batch:,} rows with keys between existing ones: {scattered_ms:.0f} ms", flush=True)
        # The gate does refuse: a batch that repeats a key is quarantined whole.
        clash = post(url, token, ingest + "clash", batches[1].read_bytes(), "application/vnd.apache.parquet")
        assert clash["accepted"] == 0 and clash["refused"], clash
    finally:
        server.terminate()
        server.wait()

    median = statistics.median(times)
    section = [
        f"## commit gate: {args.batch:,}-row batches into a {args.rows:,}-row dataset — {datetime.date.today().isoformat()}",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build); data generated by DuckDB {duckdb.__version__}",
        "- contract: primary key and row count (both gate every commit), required, ranges, valid values, pattern (row-level)",
        "- each batch: Parquet over HTTP on loopback, read, cast, row rules, gate, commit, fsync — the whole ingest, as a client sees it",
        "",
        "| what | median (ms) |",
        "|---|---:|",
        f"| {args.batch:,} rows into an empty dataset (one run) | {empty_ms:.0f} |",
        f"| {args.batch:,} rows into the {args.rows:,}-row dataset, new keys above the existing ones ({args.runs} runs) | {median:.0f} |",
        f"| {args.batch:,} rows into the {args.rows:,}-row dataset, keys between existing ones all over the table (one run; no file can be skipped) | {scattered_ms:.0f} |",
        "",
        f"Bulk load before that: {args.rows:,} rows in {len(bulk)} batches in {bulk_seconds:.1f} s "
        f"({args.rows / bulk_seconds:,.0f} rows/s). A batch repeating existing keys is refused whole (checked).",
        "",
    ]
    write_section(args.results, section)

if __name__ == "__main__":
    main()
