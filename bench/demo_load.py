#!/usr/bin/env python3
"""Benchmark: load the artgo demo at a larger scale, then time its example queries on Tessera
(over HTTP, Arrow answers) and on DuckDB reading the same Delta tables with delta_scan.

Run from the repository root with the test venv's python (it has duckdb and its delta
extension; `scripts/setup-test-env --venv` creates it):

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/demo_load.py --scale 20

The results are appended to bench/RESULTS.md (medians, machine, versions).
"""

import argparse
import datetime
import pathlib
import re
import resource
import subprocess
import sys
import time

import duckdb
import duckdb_extension_delta

from common import (ROOT, git_rev, interleaved_medians_ms, machine, query_arrow, release_binary, require_binary,
                    scratch_dir, start_server, write_section)



def example_queries():
    """(title, sql) per paragraph of examples/artgo/queries.sql, as the demo reads it."""
    out = []
    for block in (ROOT / "examples/artgo/queries.sql").read_text().split(";"):
        title, sql = "", []
        for line in (l.strip() for l in block.splitlines()):
            if not line:
                continue
            if line.startswith("--"):
                title = line[2:].strip()
            else:
                sql.append(line)
        if sql:
            out.append((title, " ".join(sql)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    data = str(scratch_dir("tessera-bench-"))
    print(f"loading the demo at scale {args.scale} into {data}", flush=True)
    start = time.perf_counter()
    load = subprocess.run(
        [args.binary, "demo", "--no-serve", "--scale", str(args.scale), "--data-dir", data],
        capture_output=True, text=True,
    )
    load_seconds = time.perf_counter() - start
    if load.returncode != 0:
        sys.exit(load.stderr)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = int(re.search(r"Loaded (\d+) rows", load.stdout).group(1))
    print(load.stdout)

    server, url, token = start_server(args.binary, data)
    try:

        ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
        con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        con.execute(f"LOAD '{ext}'")
        tables = pathlib.Path(data) / "tables"

        def for_duckdb(sql):
            def scan(m):
                path = tables / m.group(1) / m.group(2) / m.group(3)
                return f"delta_scan('{path}')" if path.is_dir() else m.group(0)
            return re.sub(r"\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b", scan, sql)

        results = []
        for title, sql in example_queries():
            duck_sql = for_duckdb(sql)
            ours, theirs = interleaved_medians_ms(
                [lambda: query_arrow(url, token, sql), lambda: con.execute(duck_sql).fetchall()], args.runs)
            results.append((title, ours, theirs))
            print(f"{title}: tessera {ours:.1f} ms, duckdb {theirs:.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait()

    today = datetime.date.today().isoformat()
    section = [
        f"## artgo demo load and example queries — {today}, scale {args.scale:g}",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build), DuckDB {duckdb.__version__} with the delta extension",
        f"- load (`tessera demo --no-serve`: generate, ingest with contract checks, derive, commit): "
        f"{rows:,} rows in {load_seconds:.1f} s = **{rows / load_seconds:,.0f} rows/s**, peak RSS {peak_rss_mib:.0f} MiB",
        f"- queries: median of {args.runs} runs after one warm-up, the two interleaved; Tessera over HTTP on loopback with an Arrow "
        "answer (client and server share the 2 cores), DuckDB in process with `delta_scan` on the same tables (results fetched as Python rows; all three are small)",
        "",
        "| query | Tessera (ms) | DuckDB (ms) | Tessera / DuckDB |",
        "|---|---:|---:|---:|",
    ]
    for title, ours, theirs in results:
        section.append(f"| {title} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    section.append("")
    write_section(args.results, section)

if __name__ == "__main__":
    main()
