#!/usr/bin/env python3
"""Benchmark: the governed query session's cost. The artgo demo's example queries
(examples/artgo/queries.sql) run as a granted consumer, whose session masks personal data
(keyed hashes) and applies a row filter on every dataset it reads, against the same queries as
the platform admin, whose session reads the tables as they are (no rewrite). Both over HTTP
with an Arrow answer, interleaved, medians in one run. Bar: consumer / admin <= 1.15.

A fourth query reads a masked column whole (`count(DISTINCT ip)`), to show what the
keyed hash itself costs when every value goes through it.

    cargo build --release -p tessera
    ~/.cache/tessera-venv/bin/python bench/masks.py --scale 5 --runs 9
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import urllib.request

from common import (ROOT, git_rev, interleaved_medians_ms, machine, query_arrow, release_binary, require_binary,
                    scratch_dir, start_server, write_section)
from demo_load import example_queries

# What the consumer is granted: row filters that keep every row, so both principals' queries do
# the same work and the difference is the rewrite. Engagement's grant has none: its quarantine
# table (the third query) is not read through a row-filtered grant at all; its personal data
# (and the quarantine's reasons quoting it) is masked.
GRANTS = [
    ("digital_assets.asset_catalog", "asset_id IS NOT NULL"),
    ("artwork_engagement.engagement", None),
    ("marketplace.provenance", "price >= 0"),
]

# Words that may follow a table name and are not its alias.
KEYWORDS = "WHERE|GROUP|ORDER|JOIN|INNER|LEFT|RIGHT|FULL|CROSS|ON|LIMIT|UNION|HAVING|WINDOW"


def with_row_filters(sql):
    """`sql` with every table the consumer reads through a row filter replaced by a subquery
    that applies the filter as a WHERE: what the admin runs to pay for the same predicate."""
    for product, row_filter in GRANTS:
        if not row_filter:
            continue
        pattern = re.compile(
            rf"\b({re.escape(product)}\.(\w+))(?:\s+(?:AS\s+)?(?!(?:{KEYWORDS})\b)(\w+))?",
            re.IGNORECASE)
        sql = pattern.sub(
            lambda m: f"(SELECT * FROM {m.group(1)} WHERE {row_filter}) AS {m.group(3) or m.group(2)}", sql)
    return sql


MASKED_WHOLE = ("Distinct masked IP addresses (every value hashed)",
                "SELECT count(DISTINCT ip) FROM artwork_engagement.engagement.events_raw")


def call(url, token, path, body=None):
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=5)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    data = scratch_dir("tessera-bench-masks-")
    print(f"loading the demo at scale {args.scale} into {data}", flush=True)
    load = subprocess.run(
        [args.binary, "demo", "--no-serve", "--scale", str(args.scale), "--data-dir", str(data)],
        capture_output=True, text=True,
    )
    if load.returncode != 0:
        sys.exit(load.stderr)
    rows = int(re.search(r"Loaded (\d+) rows", load.stdout).group(1))

    server, url, admin = start_server(args.binary, data)
    try:
        consumer = call(url, admin, "/api/v1/tokens", {"user": "bench_consumer"})["token"]
        for product, row_filter in GRANTS:
            grant = {"product": product, "grantee": "user:bench_consumer"}
            if row_filter:
                grant["row_filter"] = row_filter
            call(url, admin, "/api/v1/grants", grant)

        results = []
        for title, sql in example_queries() + [MASKED_WHOLE]:
            filtered = with_row_filters(sql)
            theirs, ours, theirs_filtered = interleaved_medians_ms(
                [lambda: query_arrow(url, admin, sql), lambda: query_arrow(url, consumer, sql),
                 lambda: query_arrow(url, admin, filtered)], args.runs)
            results.append((title, theirs, ours, theirs_filtered if filtered != sql else None))
            print(f"{title}: admin {theirs:.1f} ms, consumer {ours:.1f} ms ({ours / theirs:.2f}x), "
                  f"admin with the row filters as WHEREs {theirs_filtered:.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait()

    today = datetime.date.today().isoformat()
    section = [
        f"## governed session: masks and row filters on the demo queries — {today}, scale {args.scale:g}",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build)",
        f"- data: `tessera demo --no-serve --scale {args.scale:g}`, {rows:,} rows",
        "- consumer: a user granted read on the three products the queries read, with row filters ("
        + "; ".join(f"`{p}`: `{f}`" for p, f in GRANTS if f) + "; none on the others), without `read_pii` "
        "(personal data masked with keyed hashes); admin: reads the tables as they are",
        "- admin + WHERE: the admin runs the query with the consumer's row filters written into it as "
        "WHEREs (what the same predicate costs without the rewrite); `-` where the query reads no "
        "row-filtered table",
        f"- median of {args.runs} runs after one warm-up, the three runs of a query interleaved; over HTTP on "
        "loopback with an Arrow answer (client and server share the 2 cores)",
        "",
        "| query | admin (ms) | consumer (ms) | consumer / admin | admin + WHERE (ms) | consumer / admin + WHERE |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for title, theirs, ours, theirs_filtered in results:
        same_predicate = ("- | -" if theirs_filtered is None
                          else f"{theirs_filtered:.1f} | {ours / theirs_filtered:.2f}")
        section.append(f"| {title} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f} | {same_predicate} |")
    section.append("")
    write_section(args.results, section)


if __name__ == "__main__":
    main()
