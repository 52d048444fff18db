#!/usr/bin/env python3
"""Benchmark: the artgo demo's derived datasets computed by its transforms
(`examples/artgo/*/transforms/*.sql`) — a full refresh of the whole DAG, then, after 1% of each
upstream table's rows is appended, the incremental run (`events_clean` appends the rows past its
watermark, `virality_daily` recomputes from its newest day and replaces those days, `collectors` and
`ownership_history` recompute the buyers and artworks of the new sales; the others are `full` and
recompute), right after a full refresh and after another
incremental run — against DuckDB running the same SQL over the same Delta tables with
delta_scan. Then the event stream alone: 1% appended to `events_raw` only, and one call that
runs what is behind its inputs (`POST /api/v1/transforms/run`: the four transforms downstream of
the events). Then the whole DAG in one call, as `tessera run` runs it: a full refresh, and after
1% appended to every upstream table.

Run from the repository root with the test venv's python (it has duckdb and its delta
extension; `scripts/setup-test-env --venv` creates it):

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/transforms.py --scale 20 --runs 5

The issue's bar: the incremental run costs at most 10% of the full refresh. The server runs with
`--transform-tick-seconds 0` (no run starts on its own after an upstream commit: every run is
started by the script) and maintenance and scheduled checks off, so nothing runs between two
measurements. The results are written into bench/RESULTS.md (medians, machine, versions).
"""

import argparse
import datetime
import hashlib
import json
import pathlib
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import duckdb
import duckdb_extension_delta

from common import (ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server,
                    write_section)

# The upstream datasets the transforms read.
EVENTS = "artwork_engagement.engagement.events_raw"
ASSETS = "digital_assets.asset_catalog.assets"
SALES = "marketplace.provenance.sales"
UPSTREAM = (EVENTS, ASSETS, SALES)


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def call(self, method, path, body=None, content_type="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"authorization": f"Bearer {self.token}",
                                                  "content-type": content_type,
                                                  "accept": "application/json"})
        try:
            with urllib.request.urlopen(request) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")

    def rows(self, sql):
        return self.call("POST", "/api/v1/query", {"sql": sql})["rows"]

    def run(self, dataset, full_refresh):
        d, p, x = dataset.split(".")
        query = "?full_refresh=true" if full_refresh else ""
        start = time.perf_counter()
        runs = self.call("POST", f"/api/v1/transforms/{d}/{p}/{x}/run{query}")
        wall = (time.perf_counter() - start) * 1000
        run = runs[0]
        if run["status"] != "succeeded":
            raise SystemExit(f"the run of {dataset} failed: {run['error']}")
        return wall, run

    def ingest(self, dataset, parquet):
        d, p, x = dataset.split(".")
        start = time.perf_counter()
        report = self.call("POST", f"/api/v1/datasets/{d}/{p}/{x}/batches?format=parquet", parquet,
                           "application/vnd.apache.parquet")
        seconds = time.perf_counter() - start
        if report.get("refused") or report["quarantined"]:
            raise SystemExit(f"the appended batch of {dataset} was not taken whole: {report}")
        return report["accepted"], seconds


def in_order(transforms):
    """The transforms' datasets, each after those it reads (the order the server runs them in)."""
    inputs = {t["dataset"]: set(t["inputs"]) for t in transforms}
    done, order = set(), []
    while len(order) < len(inputs):
        ready = sorted(d for d, i in inputs.items() if d not in done and not (i & inputs.keys()) - done)
        if not ready:
            raise SystemExit("the transforms read each other round a loop")
        order += ready
        done |= set(ready)
    return order


class Upstream:
    """Makes the 1% appended to each upstream table: rows that pass the contracts, with new keys
    and times past the newest the tables hold (so the append's watermark picks the events up),
    written as Parquet by DuckDB from the tables' own rows."""

    def __init__(self, con, tables, scratch, percent):
        self.con, self.tables, self.scratch, self.percent = con, tables, scratch, percent
        self.round = 0

    def scan(self, dataset):
        return f"delta_scan('{self.tables.joinpath(*dataset.split('.'))}')"

    def one(self, sql):
        return self.con.execute(sql).fetchone()

    def parquet(self, sql, name):
        path = self.scratch / f"{name}-{self.round}.parquet"
        self.con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        return path.read_bytes()

    def events(self):
        scan = self.scan(EVENTS)
        n, next_id, lo, hi = self.one(
            f"SELECT count(*), max(CAST(substr(event_id, 2) AS BIGINT)) + 1, epoch_us(min(occurred_at)), "
            f"epoch_us(max(occurred_at)) FROM {scan}")
        take = round(n * self.percent / 100)
        # Sampled events, renumbered, their 30 days squeezed into the day after the newest.
        return take, self.parquet(f"""
            SELECT 'E' || lpad(CAST({next_id} + row_number() OVER (ORDER BY event_id) - 1 AS VARCHAR), 10, '0') AS event_id,
                   event_type, asset_id, user_id, dwell_ms, user_agent, ip,
                   make_timestamptz({hi} + 1000 + (epoch_us(occurred_at) - {lo}) // 30) AS occurred_at
            FROM (SELECT * FROM {scan} USING SAMPLE reservoir({take} ROWS) REPEATABLE ({self.round + 1}))""",
            "events")

    def assets(self):
        scan = self.scan(ASSETS)
        n, next_id, hi = self.one(
            f"SELECT count(*), max(CAST(substr(asset_id, 2) AS BIGINT)) + 1, epoch_us(max(uploaded_at)) FROM {scan}")
        take = round(n * self.percent / 100)
        return take, self.parquet(f"""
            SELECT 'A' || lpad(CAST({next_id} + i AS VARCHAR), 8, '0') AS asset_id,
                   artist_id, title, format, width, height, file_bytes, dominant_colors,
                   make_timestamptz({hi} + (i + 1) * 60000000) AS uploaded_at
            FROM (SELECT *, row_number() OVER (ORDER BY asset_id) - 1 AS i
                  FROM (SELECT * FROM {scan} USING SAMPLE reservoir({take} ROWS) REPEATABLE ({self.round + 1})))""",
            "assets")

    def sales(self):
        """New sales continuing the table's hash chain (the contract's `sql` rules block a sale
        whose hash does not cover it or whose prev_hash is not the previous sale's hash)."""
        scan = self.scan(SALES)
        n, next_id = self.one(f"SELECT count(*), max(CAST(substr(sale_id, 2) AS BIGINT)) + 1 FROM {scan}")
        prev, last_us = self.one(f"SELECT hash, epoch_us(sold_at) FROM {scan} ORDER BY sold_at DESC, sale_id DESC LIMIT 1")
        take = round(n * self.percent / 100)
        # Assets that exist, buyers as in the table.
        picks = self.con.execute(
            f"SELECT asset_id, seller_id, buyer_id, CAST(price AS VARCHAR), currency FROM {scan} "
            f"USING SAMPLE reservoir({take} ROWS) REPEATABLE ({self.round + 1}) ORDER BY sale_id").fetchall()
        rows = []
        for i, (asset, seller, buyer, price, currency) in enumerate(picks):
            sale_id = f"S{next_id + i:08d}"
            sold_us = last_us + (i + 1) * 1_000_000
            sold = datetime.datetime.fromtimestamp(sold_us / 1e6, datetime.timezone.utc)
            sold_at = sold.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            digest = hashlib.sha256("|".join([prev, sale_id, asset, seller, buyer, price, currency, sold_at])
                                    .encode()).hexdigest()
            rows.append((sale_id, asset, seller, buyer, price, currency, sold_us, prev, digest))
            prev = digest
        self.con.execute("CREATE OR REPLACE TEMP TABLE new_sales (sale_id VARCHAR, asset_id VARCHAR, seller_id VARCHAR, "
                         "buyer_id VARCHAR, price VARCHAR, currency VARCHAR, sold_us BIGINT, prev_hash VARCHAR, hash VARCHAR)")
        self.con.executemany("INSERT INTO new_sales VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return take, self.parquet(
            "SELECT sale_id, asset_id, seller_id, buyer_id, CAST(price AS DECIMAL(12, 2)) AS price, currency, "
            "make_timestamptz(sold_us) AS sold_at, prev_hash, hash FROM new_sales ORDER BY sale_id", "sales")

    def append(self, api, datasets=UPSTREAM):
        """Appends the next 1% to the upstream tables (all three unless told); (dataset, rows,
        seconds) each."""
        self.round += 1
        out = []
        makers = {EVENTS: self.events, ASSETS: self.assets, SALES: self.sales}
        for dataset, make in ((d, makers[d]) for d in datasets):
            take, parquet = make()
            accepted, seconds = api.ingest(dataset, parquet)
            if accepted != take:
                raise SystemExit(f"{dataset}: {accepted} of {take} appended rows accepted")
            out.append((dataset, accepted, seconds))
        return out


def load_demo(binary, scale, data, backlog_bytes=2 << 30):
    """`tessera demo --no-serve` at `scale` into `data`; what it printed."""
    print(f"loading the demo at scale {scale} into {data}", flush=True)
    load = subprocess.run(
        # The demo posts its events faster than they are committed: at scale 20 the event log
        # reaches the default backlog bound (256 MiB), and the demo then commits what waits
        # before it goes on; a larger bound loads in fewer, larger commits, as the runs in
        # bench/RESULTS.md were loaded.
        [binary, "demo", "--no-serve", "--scale", str(scale), "--data-dir", str(data),
         "--event-max-backlog-bytes", str(backlog_bytes)],
        capture_output=True, text=True)
    if load.returncode != 0:
        sys.exit(load.stderr)
    return load.stdout


def duckdb_with_delta():
    """An in-memory DuckDB with the venv's delta extension loaded (no download), in UTC."""
    ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{ext}'")
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_sql(sql, local, scan):
    """A transform's query for DuckDB: datasets computed by a transform read from DuckDB's own
    table (`local`), the others with delta_scan; DataFusion's regexp_like is DuckDB's
    regexp_matches (both take `(?i)`)."""
    def name(m):
        dataset = m.group(0)
        if dataset in local:
            return local[dataset]
        return scan(dataset) if dataset in UPSTREAM else dataset
    body = "\n".join(l for l in sql.splitlines() if not l.startswith("--"))
    body = re.sub(r"\b[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\b", name, body)
    return body.replace("regexp_like(", "regexp_matches(")


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each kind (medians)")
    parser.add_argument("--append-percent", type=float, default=1.0)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    parser.add_argument("--event-backlog-bytes", type=int, default=2 << 30,
                        help="the demo load's --event-max-backlog-bytes")
    parser.add_argument("--rev", help="the commit the binary was built from, when not the checkout's")
    args = parser.parse_args()
    require_binary(args.binary)
    runs = args.runs

    data = scratch_dir("tessera-bench-")
    print(load_demo(args.binary, args.scale, data, args.event_backlog_bytes))
    con = duckdb_with_delta()
    tables = data / "tables"
    upstream = Upstream(con, tables, scratch_dir("tessera-bench-batches-"), args.append_percent)

    server, url, token = start_server(args.binary, data, "--transform-tick-seconds", "0",
                                      "--maintenance-interval-seconds", "0", "--check-tick-seconds", "0")
    api = Api(url, token)
    try:
        transforms = {t["dataset"]: t for t in api.call("GET", "/api/v1/transforms")}
        order = in_order(transforms.values())
        mode = {d: transforms[d]["materialization"] for d in order}
        sizes = {d: api.rows(f"SELECT count(*) AS n FROM {d}")[0]["n"] for d in UPSTREAM}
        # The files each table's latest version reads (the directory also holds those a
        # compaction replaced, until vacuum).
        files = {d: api.call("GET", "/api/v1/datasets/" + d.replace(".", "/"))["table_files"] for d in UPSTREAM}
        print("order:", " → ".join(order), flush=True)

        def dag(full_refresh, label):
            walls, records = {}, {}
            for d in order:
                walls[d], records[d] = api.run(d, full_refresh)
            total = sum(walls.values())
            print(f"{label}: {total:.0f} ms ("
                  + ", ".join(f"{d.split('.')[-1]} {walls[d]:.0f}" for d in order) + ")", flush=True)
            return walls, records

        # Three kinds of run, each DAG run recorded with its kind (the query log is matched to
        # them below):
        # - full: every transform recomputed (`?full_refresh=true`);
        # - first: the incremental run after 1% was appended upstream, right after a full
        #   refresh (the commit gate keeps the state a replacement was measured at, but builds
        #   the replaced table's key index again on its next commit);
        # - incr: the incremental run after another 1%, following an incremental run.
        kinds, full, first, steady, appends, stream_appends = [], [], [], [], [], []

        def measured(kind, full_refresh, label):
            if kind in ("first", "incr"):
                appends.append(upstream.append(api))
            kinds.append(kind)
            ran = dag(full_refresh, label)
            {"full": full, "first": first, "incr": steady}.get(kind, []).append(ran)

        measured("warm-up", True, "full refresh (warm-up)")
        for i in range(runs):
            measured("full", True, f"full refresh {i + 1}")
        for i in range(runs):
            measured("first", False, f"incremental {i + 1}, first after a full refresh")
            measured("full", True, f"full refresh {runs + i + 1}")
        measured("first", False, f"incremental {runs + 1}, first after a full refresh")
        for i in range(runs):
            measured("incr", False, f"incremental {i + 1} after an incremental run")

        def check_events_clean():
            """What the incremental runs left equals what a full refresh computes; its rows."""
            held = api.rows("SELECT count(*) AS n, count(DISTINCT event_id) AS k "
                            "FROM artwork_engagement.engagement.events_clean")[0]
            want = api.rows("SELECT count(*) AS n FROM artwork_engagement.engagement.events_raw "
                            "WHERE NOT regexp_like(user_agent, '(?i)bot|crawler|spider|headless')")[0]["n"]
            if held["n"] != want or held["k"] != want:
                raise SystemExit(f"events_clean holds {held} rows after the incremental runs, a full refresh {want}")
            return want

        check_events_clean()

        # The query each run ran, as the query log has it (written within a second): how much of
        # a run its query was; the rest is reading the watermark, casting the result to the
        # contract, the commit gate, the commit and the run's records.
        time.sleep(2)
        log = api.call("GET", "/api/v1/queries?limit=1000")[::-1]
        query_ms = {}
        for d in order:
            ran = [e["wall_ms"] for e in log if e["sql"] == transforms[d]["sql"] and e["front_end"] == "http"]
            if len(ran) == len(kinds):
                for kind in ("full", "first", "incr"):
                    query_ms.setdefault(kind, {})[d] = statistics.median(
                        ms for ms, k in zip(ran, kinds) if k == kind)

        # The event stream alone: 1% appended to events_raw, then one call that runs, in order,
        # what is behind its inputs (`POST /api/v1/transforms/run`), as a loader or the
        # scheduler would — the transforms that do not read the events are not run.
        stream = []
        for i in range(runs):
            stream_appends.append(upstream.append(api, (EVENTS,)))
            start = time.perf_counter()
            ran = api.call("POST", "/api/v1/transforms/run")
            wall = (time.perf_counter() - start) * 1000
            failed = [r for r in ran if r["status"] != "succeeded"]
            if failed:
                raise SystemExit(f"a run after an append to the event stream failed: {failed}")
            stream.append((wall, {r["dataset"]: r["duration_ms"] for r in ran}))
            print(f"the event stream alone {i + 1}: {wall:.0f} ms ("
                  + ", ".join(f"{r['dataset'].split('.')[-1]} {r['duration_ms']}" for r in ran) + ")",
                  flush=True)
        # The whole DAG in one call, as `tessera run` and the scheduler run it (the server's
        # `--transform-concurrency`, default two at a time): a full refresh, then every upstream
        # table appended to and the incremental run.
        def whole(path):
            start = time.perf_counter()
            ran = api.call("POST", path)
            wall = (time.perf_counter() - start) * 1000
            failed = [r for r in ran if r["status"] != "succeeded"]
            if failed:
                raise SystemExit(f"a run of the whole DAG failed: {failed}")
            return wall, len(ran)

        whole_full, whole_incr, whole_appends = [], [], []
        for i in range(runs):
            whole_full.append(whole("/api/v1/transforms/run?full_refresh=true"))
            print(f"the DAG in one call, full refresh {i + 1}: {whole_full[-1][0]:.0f} ms", flush=True)
        for i in range(runs):
            whole_appends.append(upstream.append(api))
            whole_incr.append(whole("/api/v1/transforms/run"))
            print(f"the DAG in one call, incremental {i + 1}: {whole_incr[-1][0]:.0f} ms "
                  f"({whole_incr[-1][1]} transforms)", flush=True)
        want = check_events_clean()
        rss = peak_rss_mib(server.pid)
        grown = {d: api.rows(f"SELECT count(*) AS n FROM {d}")[0]["n"] for d in UPSTREAM}
    finally:
        server.terminate()
        server.wait()

    # DuckDB: the same SQL, each statement a CREATE TABLE AS in memory, in the same order,
    # the computed datasets read from its own tables, the upstream ones with delta_scan.
    local = {d: d.replace(".", "__") for d in order}
    scan = upstream.scan
    duck = {d: duckdb_sql(transforms[d]["sql"], local, scan) for d in order}

    def duck_dag():
        walls = {}
        for d in order:
            start = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TABLE {local[d]} AS {duck[d]}")
            walls[d] = (time.perf_counter() - start) * 1000
        return walls

    duck_dag()
    duck_full = [duck_dag() for _ in range(runs)]
    # DuckDB's incremental: the events past the newest events_clean holds, appended with an
    # INSERT, events_clean first made as it stood before the last 1% (not timed); then the full
    # ones recomputed as in Tessera.
    clean = "artwork_engagement.engagement.events_clean"
    last_events = (whole_appends or stream_appends or appends)[-1][0][1]
    last_first_id = con.execute(
        f"SELECT 'E' || lpad(CAST(max(CAST(substr(event_id, 2) AS BIGINT)) - {last_events} + 1 AS VARCHAR), 10, '0') "
        f"FROM {scan(EVENTS)}").fetchone()[0]
    duck_incr = []
    for _ in range(runs + 1):
        con.execute(f"CREATE OR REPLACE TABLE {local[clean]} AS SELECT * FROM ({duck[clean]}) "
                    f"WHERE event_id < '{last_first_id}'")
        walls = {}
        for d in order:
            start = time.perf_counter()
            if d == clean:
                con.execute(f"INSERT INTO {local[d]} SELECT * FROM ({duck[d]}) WHERE occurred_at > "
                            f"(SELECT max(occurred_at) FROM {local[d]})")
            else:
                con.execute(f"CREATE OR REPLACE TABLE {local[d]} AS {duck[d]}")
            walls[d] = (time.perf_counter() - start) * 1000
        duck_incr.append(walls)
    duck_incr = duck_incr[1:]
    n = con.execute(f"SELECT count(*) FROM {local[clean]}").fetchone()[0]
    if n != want:
        raise SystemExit(f"DuckDB's incremental events_clean holds {n} rows, the full one {want}")

    def med(dags, d):
        return statistics.median(walls[d] for walls, _ in dags)

    def total(dags):
        return statistics.median(sum(walls.values()) for walls, _ in dags)

    rows_out = {d: full[-1][1][d]["rows_out"] for d in order}
    rows_in = {"full": {d: full[-1][1][d]["rows_in"] for d in order},
               "incr": {d: steady[-1][1][d]["rows_in"] for d in order}}
    server_ms = {kind: {d: statistics.median(r[d]["duration_ms"] for _, r in dags) for d in order}
                 for kind, dags in (("full", full), ("first", first), ("incr", steady))}
    duck_med = lambda dags, d: statistics.median(w[d] for w in dags)
    duck_total = lambda dags: statistics.median(sum(w.values()) for w in dags)
    for d in order:
        print(f"{d}: full {med(full, d):.0f} ms, incremental {med(steady, d):.0f} ms "
              f"(after a full refresh {med(first, d):.0f}), duckdb {duck_med(duck_full, d):.0f} / "
              f"{duck_med(duck_incr, d):.0f} ms")
    print(f"the DAG: full {total(full):.0f} ms, incremental {total(steady):.0f} ms (after a full refresh "
          f"{total(first):.0f}), duckdb {duck_total(duck_full):.0f} / {duck_total(duck_incr):.0f} ms; "
          f"server peak RSS {rss:.0f} MiB")

    ingest = {d: statistics.median(s for a in appends for dd, _, s in a if dd == d) for d in UPSTREAM}
    appended = {d: rows for d, rows, _ in appends[0]}
    today = datetime.date.today().isoformat()
    short = lambda d: d.split(".")[-1]
    section = [
        f"## transforms: the artgo demo's DAG, full refresh and incremental — {today}, scale {args.scale:g}",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {args.rev or git_rev()} (release build), SQLite metadata, local tables; "
        f"DuckDB {duckdb.__version__} with the delta extension",
        f"- data: `tessera demo --no-serve --scale {args.scale:g}`: "
        + ", ".join(f"`{short(d)}` {sizes[d]:,} rows ({files[d]} file{'' if files[d] == 1 else 's'})" for d in UPSTREAM)
        + f", {len(appends)} appends, {len(stream_appends)} to `events_raw` alone and {len(whole_incr)} more later "
        + ", ".join(f"{grown[d]:,}" for d in UPSTREAM)
        + "; the server started with `--transform-tick-seconds 0 --maintenance-interval-seconds 0 "
        "--check-tick-seconds 0` (every run started by the script, one at a time, nothing in between)",
        f"- an append: {args.append_percent:g}% of each upstream table's rows as one Parquet batch "
        f"(`events_raw` +{appended[EVENTS]:,} events past the newest, `assets` +{appended[ASSETS]:,}, "
        f"`sales` +{appended[SALES]:,} continuing the hash chain; ingest, not counted, median: "
        + ", ".join(f"{short(d)} {ingest[d]:.1f} s" for d in UPSTREAM) + ")",
        f"- runs, each of the whole DAG in the order the transforms feed each other: a warm-up full refresh; "
        f"{runs} full refreshes (`POST …/run?full_refresh=true`); {runs} times an append, the incremental run "
        f"(`POST …/run`: each transform as its `materialize` header says: `events_clean` appends the rows past its "
        f"watermark, `virality_daily` recomputes from its newest day and replaces those days, `collectors` and "
        f"`ownership_history` recompute the buyers and artworks of the new sales, the others are `full` and "
        f"recompute) — *right after a full refresh* — and a full refresh; then one more append and "
        f"incremental run, and {runs} times an append and the incremental run *after an incremental run* "
        f"(the steady state of a scheduler). Medians: full refresh of {len(full)} runs, each incremental of "
        f"{len(first)} and {len(steady)}",
        "- Tessera's times, in ms: the HTTP call's wall time on loopback / the run's own `duration_ms` / the "
        "wall time of the run's query in the query log (the rest of a run: reading the watermark, casting the "
        "result to the contract, the commit gate, the Delta commit, the run's records); DuckDB: "
        "each statement as `CREATE TABLE … AS` in memory (no Delta write, no contract), the upstream tables "
        "with `delta_scan`, the computed ones from its own tables; its incremental `events_clean` an `INSERT … "
        f"WHERE occurred_at > (SELECT max(occurred_at) …)` onto the table as it stood before the last append; "
        f"median of {runs} runs after a warm-up, after Tessera's runs, over the grown tables",
        f"- server peak RSS (VmHWM) over the whole run: {rss:.0f} MiB",
        "",
        "| transform | materialize | rows out | full refresh (ms) | incremental (ms) | ÷ full "
        "| incremental right after a full refresh (ms) | ÷ full | rows read, full / incremental "
        "| DuckDB full (ms) | DuckDB incremental (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def spent(kind, d, wall):
        """HTTP wall / the run's duration_ms / its query's wall time in the query log."""
        q = query_ms.get(kind, {}).get(d)
        return f"{wall:.0f} / {server_ms[kind][d]:.0f}" + (f" / {q:.0f}" if q is not None else "")

    for d in order:
        f, i, i0 = med(full, d), med(steady, d), med(first, d)
        section.append(
            f"| `{d}` | {mode[d]} | {rows_out[d]:,} | {spent('full', d, f)} "
            f"| {spent('incr', d, i)} | {100 * i / f:.0f}% | {spent('first', d, i0)} | {100 * i0 / f:.0f}% "
            f"| {rows_in['full'][d]:,} / {rows_in['incr'][d]:,} "
            f"| {duck_med(duck_full, d):.0f} | {duck_med(duck_incr, d):.0f} |")
    f, i, i0 = total(full), total(steady), total(first)
    section.append(
        f"| **the DAG** | | | **{f:.0f}** | **{i:.0f}** | **{100 * i / f:.0f}%** | **{i0:.0f}** "
        f"| **{100 * i0 / f:.0f}%** | | {duck_total(duck_full):.0f} | {duck_total(duck_incr):.0f} |")
    # The event stream alone: the call's wall time against the full refresh of the DAG.
    s_total = statistics.median(wall for wall, _ in stream)
    s_ran = [d for d in order if any(d in r for _, r in stream)]
    s_ms = {d: statistics.median(r[d] for _, r in stream if d in r) for d in s_ran}
    section += [
        "",
        f"The event stream alone, after the runs above: {runs} times {args.append_percent:g}% appended to "
        f"`events_raw` only (+{stream_appends[0][0][1]:,} events), then one `POST /api/v1/transforms/run`, which "
        f"runs in order the transforms whose datasets are behind their inputs — "
        + ", ".join(f"`{short(d)}` ({sum(d in r for _, r in stream)} of {runs} times)" for d in s_ran)
        + "; the others read no events and did not run. Median wall time of the call: "
        f"**{s_total:.0f} ms, {100 * s_total / f:.0f}% of the DAG's full refresh**; each run's `duration_ms`, "
        "median: " + ", ".join(f"`{short(d)}` {s_ms[d]:.0f}" for d in s_ran) + ".",
    ]
    w_full = statistics.median(wall for wall, _ in whole_full)
    w_incr = statistics.median(wall for wall, _ in whole_incr)
    section += [
        "",
        f"The whole DAG in one call, as `tessera run` and the scheduler run it (the server's default "
        f"`--transform-concurrency`, two transforms at a time), "
        f"after the runs above: {runs} full refreshes (`POST /api/v1/transforms/run?full_refresh=true`), then "
        f"{runs} times {args.append_percent:g}% appended to every upstream table and one `POST "
        f"/api/v1/transforms/run` (all {whole_incr[0][1]} transforms behind). Median wall time of the call: "
        f"full refresh **{w_full:.0f} ms**, incremental **{w_incr:.0f} ms, {100 * w_incr / w_full:.0f}% of "
        f"it**; the event stream alone above, {100 * s_total / w_full:.0f}% of it.",
    ]
    section.append("")
    write_section(args.results, section)


if __name__ == "__main__":
    main()
