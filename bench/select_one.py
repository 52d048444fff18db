#!/usr/bin/env python3
"""Benchmark: one statement's round trip over the PostgreSQL wire, and what it costs the
server. psycopg runs `SELECT 1` (and, for comparison, a `count(*)` over an empty dataset, which
reads a table) on one open connection, as a driver's or pool's connection check does, against
Tessera and against PostgreSQL 15; for Tessera also the server's CPU time per statement (from
/proc over the measured round trips). Tessera runs with its query log and audit log on.

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/select_one.py --round-trips 3000 --runs 3

Bar (issue 12): `SELECT 1` p50 under 0.3 ms over pg wire. `front_ends.py` measures the same
round trip beside its 10M-row fetches; this one is quick enough to run after every change.
psycopg prepares a statement on the server after its fifth execution, so what is measured is a
prepared statement's Bind and Execute.
"""

import argparse
import os
import statistics
import subprocess
import time

import psycopg

import front_ends
from common import ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section


def server_cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def round_trips(conninfo, sql, count, pid=None):
    """(p50 ms, p99 ms, server CPU ms per statement or None) of `count` round trips after 200
    warm-up ones, on one connection."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        def run_one():
            conn.execute(sql).fetchone()
        for _ in range(200):
            run_one()
        cpu = server_cpu_seconds(pid) if pid else None
        p50, p99 = front_ends.latencies_ms(run_one, count, warmup=0)
        if pid:
            cpu = (server_cpu_seconds(pid) - cpu) / count * 1000
    return p50, p99, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3, help="connections measured one after another; the medians are given")
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    work = scratch_dir("tessera-select-one-")
    folder = work / "product"
    folder.mkdir()
    (folder / "product.odps.yaml").write_text(front_ends.PRODUCT)
    (folder / "rows.odcs.yaml").write_text(front_ends.CONTRACT)
    pg_conninfo, pg_version, stop_postgres = front_ends.start_postgres(work)
    server, url, token = start_server(args.binary, work / "data", "--check-tick-seconds", "0")
    statements = {"`SELECT 1`": ("SELECT 1", "SELECT 1"),
                  "`count(*)` of an empty table": ("SELECT count(*) FROM wire.rows", "SELECT count(*) FROM wire_rows")}
    measured = {}
    try:
        subprocess.run([args.binary, "apply", str(folder), "--server", url, "--token", token],
                       check=True, capture_output=True)
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE wire_rows (id BIGINT)")
        pg = front_ends.banner_address(server.banner, r"psql -h (\S+) -p (\d+)")
        tessera = f"host={pg.group(1)} port={pg.group(2)} user=admin dbname=bench password={token}"
        for name, (ours, theirs) in statements.items():
            for who, conninfo, sql, pid in [("Tessera", tessera, ours, server.pid),
                                            ("PostgreSQL", pg_conninfo, theirs, None)]:
                runs = [round_trips(conninfo, sql, args.round_trips, pid) for _ in range(args.runs)]
                measured[(name, who)] = tuple(
                    statistics.median(r[i] for r in runs) if runs[0][i] is not None else None for i in range(3))
                print(name, who, measured[(name, who)], flush=True)
    finally:
        server.terminate()
        server.wait()
        stop_postgres()

    lines = [
        f"## front ends: one statement's round trip over the PostgreSQL wire — {time.strftime('%Y-%m-%d')}",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build), SQLite metadata, query log and audit on; "
        f"PostgreSQL {pg_version} (Debian package); psycopg {psycopg.__version__}",
        f"- how: {args.round_trips:,} round trips (`conn.execute(sql).fetchone()`, prepared by psycopg after "
        f"five) on one open connection after 200 warm-up ones, {args.runs} connections one after another, "
        "medians of their p50s and p99s; Tessera's CPU per statement from /proc over the measured ones; "
        "client and servers on one machine over loopback",
        "",
        "| statement | server | p50 (ms) | p99 (ms) | server CPU per statement (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for (name, who), (p50, p99, cpu) in measured.items():
        lines.append(f"| {name} | {who} | {p50:.3f} | {p99:.3f} | {'—' if cpu is None else f'{cpu:.3f}'} |")
    p50 = measured[("`SELECT 1`", "Tessera")][0]
    lines += ["", f"Bar: `SELECT 1` p50 under 0.3 ms over pg wire: **{p50:.3f} ms "
              f"({'met' if p50 < 0.3 else 'missed'})**.", ""]
    write_section(args.results, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
