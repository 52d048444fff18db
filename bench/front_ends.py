#!/usr/bin/env python3
"""Benchmark: the query front ends. A 10M-row result (integers, strings, timestamps) fetched by
psycopg from PostgreSQL 15 holding the same rows in a table, by psycopg from Tessera's
PostgreSQL front end, and by ADBC over Tessera's Flight SQL front end (and, for the record, by
ADBC's own PostgreSQL driver); then `SELECT 1` round trips over each. Tessera runs with its
query log and audit log on (as always).

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/front_ends.py --rows 10000000 --runs 5

Bars (issue 12): Flight SQL at most 0.5x PostgreSQL's own time over its wire protocol;
Tessera's pg wire at most 1.0x PostgreSQL's; `SELECT 1` p50 under 0.3 ms over pg wire.

The rows are made by one formula twice: by DuckDB as Parquet files that Tessera ingests, and by
PostgreSQL's generate_series into its table (a checksum says they are the same rows). The
PostgreSQL server is a throw-away cluster of the Debian package (initdb, as the `postgres` user
when run as root). Results are added to bench/RESULTS.md.
"""

import argparse
import datetime
import decimal
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import time

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import psycopg
from adbc_driver_flightsql import DatabaseOptions

from common import ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section

PRODUCT = """apiVersion: v1.0.0
kind: DataProduct
id: bench-wire
name: wire
domain: bench
status: active
version: 1.0.0
description:
  purpose: Rows for the front-end benchmark (bench/front_ends.py).
team:
  name: bench team
support:
  - channel: "#bench"
    url: https://chat.example.com/channels/bench
outputPorts:
  - name: rows
    version: 1.0.0
    contractId: bench-wire
    customProperties:
      - property: sampleQueries
        value:
          - name: everything
            description: Every row.
            sql: SELECT * FROM bench.wire.rows
"""

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: bench-wire
version: 1.0.0
status: active
description:
  purpose: Integers, strings and timestamps, the same rows as the PostgreSQL table.
schema:
  - name: rows
    description: Generated rows, one formula for Tessera and PostgreSQL.
    properties:
      - name: id
        description: The row's number.
        logicalType: integer
        physicalType: bigint
        required: true
      - name: quantity
        description: A small integer.
        logicalType: integer
        physicalType: int
        required: true
      - name: customer
        description: C and eight digits.
        logicalType: string
        required: true
      - name: note
        description: A short text.
        logicalType: string
        required: true
      - name: created_at
        description: A time in 2026.
        logicalType: timestamp
        required: true
slaProperties:
  - property: latency
    value: 1
    unit: d
    element: rows
"""

# The same rows from DuckDB and from PostgreSQL: i from 0.
DUCKDB_ROWS = """SELECT i::BIGINT AS id, (1 + i % 1000)::INTEGER AS quantity,
                        printf('C%08d', i % 1000000) AS customer,
                        'note ' || (i * 7919 % 100000)::VARCHAR AS note,
                        TIMESTAMP '2026-01-01' + to_seconds(i % 31536000) AS created_at
                 FROM range({first}, {last}) t(i)"""
POSTGRES_ROWS = """SELECT i::BIGINT, (1 + i % 1000)::INTEGER, 'C' || lpad((i % 1000000)::text, 8, '0'),
                          'note ' || (i * 7919 % 100000)::text,
                          (TIMESTAMP '2026-01-01' + make_interval(secs => i % 31536000)) AT TIME ZONE 'UTC'
                   FROM generate_series({first}::BIGINT, {last}::BIGINT - 1) i"""
CHECKSUM = ("SELECT count(*), sum(id), sum(quantity), max(customer), min(note), "
            "max(created_at) FROM {table}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin():
    for d in sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    raise SystemExit("PostgreSQL's server binaries are missing: scripts/setup-test-env --system")


def start_postgres(work):
    """A throw-away PostgreSQL cluster on a free port; returns (conninfo, version, stop)."""
    bin_dir = postgres_bin()
    data, sockets = work / "pg", work / "pgsock"
    data.mkdir()
    sockets.mkdir()
    as_postgres = []
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        for d in (data, sockets):
            shutil.chown(d, "postgres")
        os.chmod(work, 0o755)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    port = free_port()
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(work / "pg.log"),
                    "-w", "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c shared_buffers=1GB", "start"], check=True, capture_output=True)

    def stop():
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)

    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(conninfo) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return conninfo, version, stop


def same_checksum(a, b):
    """Checksums equal as values (PostgreSQL sums bigints as numeric; time zones may differ)."""
    def plain(v):
        if isinstance(v, datetime.datetime):
            return v.timestamp()
        if isinstance(v, decimal.Decimal):
            return int(v)
        return v
    return [plain(v) for v in a] == [plain(v) for v in b]


def banner_address(lines, pattern):
    for line in lines:
        if m := re.search(pattern, line):
            return m
    raise SystemExit(f"the server did not print {pattern!r}")


def psycopg_fetch(conninfo, sql):
    """Every row of `sql` as Python tuples (psycopg's defaults: text format), counted."""
    def run():
        with psycopg.connect(conninfo, autocommit=True) as conn:
            cur = conn.execute(sql)
            n = 0
            while rows := cur.fetchmany(100_000):
                n += len(rows)
            return n
    return run


def adbc_fetch(uri, kwargs, sql):
    """The result of `sql` as one Arrow table through ADBC."""
    def run():
        with flight_sql.connect(uri, db_kwargs=kwargs, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().num_rows
    return run


def adbc_postgres_fetch(uri, sql):
    import adbc_driver_postgresql.dbapi as pg_adbc

    def run():
        with pg_adbc.connect(uri, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().num_rows
    return run


def timed_medians(fns, runs, expected):
    """Median seconds of each function over `runs` interleaved runs, after a warm-up each."""
    for fn in fns.values():
        assert fn() == expected
    spent = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            n = fn()
            spent[name].append(time.perf_counter() - start)
            assert n == expected, (name, n)
    return {name: statistics.median(t) for name, t in spent.items()}


def latencies_ms(run_one, count, warmup=100):
    """Round trips of one statement on one open connection: (p50, p99) in ms after `warmup`
    unmeasured ones."""
    for _ in range(warmup):
        run_one()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        run_one()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    work = scratch_dir("tessera-front-ends-")
    print(f"generating {args.rows:,} rows in {work}", flush=True)
    con = duckdb.connect()
    files = []
    chunk = 1_000_000
    for n, first in enumerate(range(0, args.rows, chunk)):
        path = work / f"rows-{n}.parquet"
        last = min(first + chunk, args.rows)
        con.execute(f"COPY ({DUCKDB_ROWS.format(first=first, last=last)}) TO '{path}' (FORMAT PARQUET)")
        files.append(path)

    folder = work / "product"
    folder.mkdir()
    (folder / "product.odps.yaml").write_text(PRODUCT)
    (folder / "rows.odcs.yaml").write_text(CONTRACT)
    pg_conninfo, pg_version, stop_postgres = start_postgres(work)
    server, url, token = start_server(args.binary, work / "data", "--check-tick-seconds", "0",
                                      "--query-max-result-rows", str(args.rows * 2),
                                      "--query-max-result-bytes", str(64 << 30),
                                      "--query-timeout-seconds", "3600")
    try:
        applied = subprocess.run([args.binary, "apply", str(folder), "--server", url, "--token", token],
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            raise SystemExit(f"apply failed:\n{applied.stdout}{applied.stderr}")
        start = time.perf_counter()
        for n, path in enumerate(files):
            subprocess.run([args.binary, "ingest", "bench.wire.rows", str(path), "--server", url,
                            "--token", token], check=True, capture_output=True)
        print(f"ingested into Tessera in {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE wire_rows (id BIGINT NOT NULL, quantity INTEGER NOT NULL, "
                         "customer TEXT NOT NULL, note TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)")
            conn.execute(f"INSERT INTO wire_rows {POSTGRES_ROWS.format(first=0, last=args.rows)}")
            conn.execute("VACUUM ANALYZE wire_rows")
            theirs = conn.execute(CHECKSUM.format(table="wire_rows")).fetchone()
        print(f"loaded into PostgreSQL in {time.perf_counter() - start:.1f} s", flush=True)

        pg = banner_address(server.banner, r"psql -h (\S+) -p (\d+)")
        tessera_pg = f"host={pg.group(1)} port={pg.group(2)} user=admin dbname=bench password={token}"
        flight_uri = banner_address(server.banner, r"Flight SQL clients: (\S+)").group(1)
        bearer = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
        with psycopg.connect(tessera_pg, autocommit=True) as conn:
            ours = conn.execute(CHECKSUM.format(table="bench.wire.rows")).fetchone()
        assert same_checksum(ours, theirs), (ours, theirs)

        everything = "SELECT id, quantity, customer, note, created_at FROM {table}"
        fetches = {
            "psycopg from PostgreSQL": psycopg_fetch(pg_conninfo, everything.format(table="wire_rows")),
            "psycopg from Tessera (pg wire)": psycopg_fetch(tessera_pg, everything.format(table="wire.rows")),
            "ADBC from Tessera (Flight SQL)": adbc_fetch(flight_uri, bearer, everything.format(table="bench.wire.rows")),
        }
        pg_uri = re.sub(r"host=(\S+) port=(\d+) user=(\S+) dbname=(\S+)", r"postgresql://\3@\1:\2/\4", pg_conninfo)
        try:
            import adbc_driver_postgresql  # noqa: F401
            fetches["ADBC from PostgreSQL (libpq COPY)"] = adbc_postgres_fetch(pg_uri, everything.format(table="wire_rows"))
        except ImportError:
            pass
        print("fetching the whole result over each", flush=True)
        medians = timed_medians(fetches, args.runs, args.rows)
        server_rss = peak_rss_mib(server.pid)

        print("SELECT 1 round trips", flush=True)
        trips = {}
        for name, conninfo in [("psycopg to PostgreSQL", pg_conninfo), ("psycopg to Tessera (pg wire)", tessera_pg)]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                trips[name] = latencies_ms(lambda: conn.execute("SELECT 1").fetchone(), args.round_trips)
        with flight_sql.connect(flight_uri, db_kwargs=bearer, autocommit=True) as conn:
            with conn.cursor() as cur:
                def one():
                    cur.execute("SELECT 1")
                    cur.fetchone()
                trips["ADBC to Tessera (Flight SQL)"] = latencies_ms(one, args.round_trips)
        # The round trips are in the query log (its newest entries are the last SELECT 1s).
        newest = json.loads(subprocess.run(
            [args.binary, "queries", "--limit", "5", "--format", "json", "--server", url, "--token", token],
            capture_output=True, text=True, check=True).stdout)
        log_on = any(q["sql"] == "SELECT 1" for q in newest)
    finally:
        server.terminate()
        server.wait()
        stop_postgres()

    base = medians["psycopg from PostgreSQL"]
    import adbc_driver_flightsql
    versions = (f"tessera {git_rev()} (release build), SQLite metadata, local tables; PostgreSQL {pg_version} "
                f"(Debian package, fsync off, shared_buffers 1 GB); psycopg {psycopg.__version__} "
                f"(libpq {psycopg.pq.version()}); adbc-driver-flightsql {adbc_driver_flightsql.__version__}")
    lines = [
        f"## front ends: a {args.rows:,}-row result and SELECT 1 over PostgreSQL's wire and Flight SQL — "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        f"- machine: {machine()}",
        f"- versions: {versions}",
        f"- data: {args.rows:,} rows of (id BIGINT, quantity INTEGER, customer TEXT, note TEXT, created_at "
        f"TIMESTAMP WITH TIME ZONE), the same rows in a Tessera dataset ({len(files)} Parquet batches ingested) and a PostgreSQL table "
        "(checksums equal); client, server and PostgreSQL on one machine over loopback",
        f"- each fetch: a new connection, the whole result read (psycopg: `fetchmany(100000)` to the end, "
        f"text format as by default; ADBC: `fetch_arrow_table()`); median of {args.runs} interleaved runs "
        f"after a warm-up each; Tessera's server peak RSS over all of them: {server_rss:.0f} MiB",
        f"- round trips: `SELECT 1` {args.round_trips:,} times on one open connection after 100 warm-up "
        f"ones (psycopg's `conn.execute(...).fetchone()`; ADBC's `cursor.execute` + `fetchone`, which "
        f"prepares, gets the FlightInfo and DoGets: three calls); Tessera's query log and audit log on "
        f"({'entries written' if log_on else 'no entries seen!'})",
        "",
        "| fetch of the whole result | seconds | rows/s | ÷ PostgreSQL over psycopg |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in medians.items():
        lines.append(f"| {name} | {seconds:.2f} | {args.rows / seconds:,.0f} | {seconds / base:.2f}× |")
    lines += ["", "| `SELECT 1` | p50 (ms) | p99 (ms) |", "|---|---:|---:|"]
    for name, (p50, p99) in trips.items():
        lines.append(f"| {name} | {p50:.3f} | {p99:.3f} |")
    flight = medians["ADBC from Tessera (Flight SQL)"] / base
    pgwire = medians["psycopg from Tessera (pg wire)"] / base
    p50 = trips["psycopg to Tessera (pg wire)"][0]
    lines += [
        "",
        f"Bars: Flight SQL at most 0.5× PostgreSQL's time over its wire: **{flight:.2f}× "
        f"({'met' if flight <= 0.5 else 'missed'})**; Tessera's pg wire at most 1.0×: **{pgwire:.2f}× "
        f"({'met' if pgwire <= 1.0 else 'missed'})**; `SELECT 1` p50 under 0.3 ms over pg wire: "
        f"**{p50:.3f} ms ({'met' if p50 < 0.3 else 'missed'})**.",
        "",
    ]
    write_section(args.results, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
