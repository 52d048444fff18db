#!/usr/bin/env python3
"""Benchmark: governance policies at mesh scale. A generated mesh of 1,000 products in 20
domains (each product one output port with two datasets of ten columns: 20,000 columns), every
product compliant with the standard library, and ten custom global policies. Measured:

- full evaluation: `POST /api/v1/governance/check` over the whole mesh (building tessera_meta,
  every policy over it, storing every product's standing); bar: under 1 s;
- one product's apply: `POST /api/v1/apply` with `dry_run` of one product folder that changes
  its descriptor (the gate evaluates every policy on the mesh as it would be after); bar: the
  evaluation under 50 ms, and here the whole dry-run apply is timed, parsing and planning
  included, so it is an upper bound of the evaluation.

    cargo build --release -p tessera
    python3 bench/governance.py --products 1000 --runs 9

No peer: no tool we know evaluates SQL policies over a mesh's metadata at publish time (the
issue sets absolute bars). Results are added to bench/RESULTS.md.
"""

import argparse
import datetime
import json
import statistics
import sys
import time
import urllib.error
import urllib.request

from common import ROOT, git_rev, machine, release_binary, require_binary, scratch_dir, start_server, write_section

DOMAINS = 20
COLUMNS_PER_DATASET = 10

CUSTOM_POLICIES = {
    "numbers-say-their-unit": ("Numeric columns end in their unit.", "warn",
        "SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object "
        "FROM tessera_meta.columns WHERE logical_type = 'number' AND NOT regexp_like(column_name, '_(usd|eur|ms|bytes|ratio)$')"),
    "no-draft-products": ("Only finished products are published.", "block",
        "SELECT domain, product, 'product ' || product AS object FROM tessera_meta.products WHERE status = 'draft'"),
    "semantic-versions": ("Products carry a semantic version.", "warn",
        "SELECT domain, product, 'product ' || product AS object FROM tessera_meta.products "
        "WHERE version IS NULL OR NOT regexp_like(version, '^[0-9]+\\.[0-9]+\\.[0-9]+$')"),
    "timestamps-end-in-at": ("Timestamp columns are named *_at.", "warn",
        "SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object "
        "FROM tessera_meta.columns WHERE logical_type = 'timestamp' AND NOT regexp_like(column_name, '_at$')"),
    "booleans-ask": ("Boolean columns are named is_* or has_*.", "warn",
        "SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object "
        "FROM tessera_meta.columns WHERE logical_type = 'boolean' AND NOT regexp_like(column_name, '^(is|has)_')"),
    "active-contracts": ("Published datasets are governed by active contracts.", "block",
        "SELECT d.domain, d.product, d.dataset, 'dataset ' || d.dataset AS object FROM tessera_meta.datasets d "
        "JOIN tessera_meta.contracts c ON c.domain = d.domain AND c.contract_id = d.contract_id "
        "AND c.version = d.contract_version WHERE c.status <> 'active'"),
    "described-ports": ("Output ports are described.", "warn",
        "SELECT domain, product, 'output port ' || port AS object FROM tessera_meta.output_ports WHERE description IS NULL"),
    "narrow-datasets": ("Datasets keep under 200 columns.", "warn",
        "SELECT domain, product, dataset, 'dataset ' || dataset AS object FROM tessera_meta.columns "
        "GROUP BY domain, product, dataset HAVING count(*) >= 200"),
    "keys-are-text-or-integers": ("Identifier columns are strings or integers.", "block",
        "SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object "
        "FROM tessera_meta.columns WHERE regexp_like(column_name, '_id$') AND logical_type NOT IN ('string', 'integer')"),
    "primary-keys": ("Every dataset has a primary key.", "warn",
        "SELECT d.domain, d.product, d.dataset, 'dataset ' || d.dataset AS object FROM tessera_meta.datasets d "
        "LEFT JOIN (SELECT DISTINCT domain, product, dataset FROM tessera_meta.columns WHERE primary_key) k "
        "ON k.domain = d.domain AND k.product = d.product AND k.dataset = d.dataset WHERE k.dataset IS NULL"),
}


def policy_file(pid, description, severity, query):
    return (f"apiVersion: tessera/v1\nkind: Policy\nid: {pid}\ndescription: {json.dumps(description)}\n"
            f"severity: {severity}\nmessage: {json.dumps(description)}\nquery: {json.dumps(query)}\n")


def product_files(domain, n, version="1.0.0"):
    name = f"p{n:04d}"
    cid = f"{name}-contract"
    descriptor = f"""apiVersion: v1.0.0
kind: DataProduct
id: {name}
name: {name}
domain: {domain}
status: active
version: {version}
description:
  purpose: Generated product {n} of the governance benchmark.
team:
  name: team {domain}
support:
  - channel: "#{domain}"
    url: https://chat.example.com/{domain}
outputPorts:
  - name: main
    version: 1.0.0
    description: Both datasets of the product.
    contractId: {cid}
    customProperties:
      - property: sampleQueries
        value:
          - name: count_events
            sql: SELECT count(*) FROM {domain}.{name}.events
"""
    kinds = ["integer", "string", "number", "timestamp", "boolean"]
    schema = []
    for dataset in ("events", "facts"):
        props = [f"""      - name: {dataset}_id
        description: The row's key.
        logicalType: integer
        primaryKey: true
        required: true"""]
        for c in range(1, COLUMNS_PER_DATASET):
            kind = kinds[c % len(kinds)]
            column = {"integer": f"count_{c}", "string": f"label_{c}", "number": f"amount_{c}_usd",
                      "timestamp": f"seen_{c}_at", "boolean": f"is_flag_{c}"}[kind]
            props.append(f"""      - name: {column}
        description: Column {c} of {dataset}.
        logicalType: {kind}""")
        schema.append(f"""  - name: {dataset}
    description: The {dataset} of product {n}.
    properties:
""" + "\n".join(props))
    contract = f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
version: 1.0.0
status: active
description:
  purpose: Generated contract of product {n}.
schema:
""" + "\n".join(schema) + """
slaProperties:
  - property: latency
    value: 1
    unit: d
    element: events
  - property: latency
    value: 1
    unit: d
    element: facts
"""
    return [{"name": f"{name}/product.odps.yaml", "content": descriptor},
            {"name": f"{name}/{name}.odcs.yaml", "content": contract}]


def call(url, token, method, path, body=None):
    request = urllib.request.Request(
        f"{url}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()[:2000]}")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    args = parser.parse_args()
    require_binary(args.binary)

    data = scratch_dir("tessera-bench-governance-")
    server, url, admin = start_server(args.binary, data)
    try:
        print(f"applying {args.products} products in {DOMAINS} domains", flush=True)
        apply_times = []
        for n in range(args.products):
            domain = f"domain_{n % DOMAINS:02d}"
            spent, plan = timed(lambda: call(url, admin, "POST", "/api/v1/apply",
                                             {"files": product_files(domain, n), "dry_run": False}))
            apply_times.append(spent)
            if (n + 1) % 100 == 0:
                print(f"  {n + 1} applied; the last 100 took {statistics.median(apply_times[-100:]):.1f} ms "
                      "each (median)", flush=True)
        columns = call(url, admin, "POST", "/api/v1/query",
                       {"sql": "SELECT count(*) AS n FROM tessera_meta.columns"})["rows"][0]["n"]
        print(f"{columns} columns; applying {len(CUSTOM_POLICIES)} custom global policies", flush=True)
        files = [{"name": f"{pid}.yaml", "content": policy_file(pid, *spec)}
                 for pid, spec in CUSTOM_POLICIES.items()]
        put_ms, _ = timed(lambda: call(url, admin, "PUT", "/api/v1/governance/policies", {"files": files}))
        in_force = call(url, admin, "POST", "/api/v1/query", {
            "sql": "SELECT count(*) AS n FROM tessera_meta.policies WHERE enabled"})["rows"][0]["n"]

        check = lambda: call(url, admin, "POST", "/api/v1/governance/check", {})
        probe = product_files("domain_00", 0, version="1.0.1")
        dry_run = lambda: call(url, admin, "POST", "/api/v1/apply", {"files": probe, "dry_run": True})
        full = check()
        if full["blocking"] or full["products"] != args.products:
            sys.exit(f"unexpected evaluation: {json.dumps(full)[:2000]}")
        plan = dry_run()
        if plan["policies"]["blocking"]:
            sys.exit(f"unexpected plan: {json.dumps(plan)[:2000]}")
        full_ms, dry_ms, full_eval_ms, gate_eval_ms = [], [], [], []
        for _ in range(args.runs):
            spent, found = timed(check)
            full_ms.append(spent)
            full_eval_ms.append(found["duration_ms"])
            spent, plan = timed(dry_run)
            dry_ms.append(spent)
            gate_eval_ms.append(plan["policies"]["duration_ms"])
        full_median, dry_median = statistics.median(full_ms), statistics.median(dry_ms)
        full_eval, gate_eval = statistics.median(full_eval_ms), statistics.median(gate_eval_ms)
        print(f"full evaluation: {full_median:.1f} ms end to end, {full_eval} ms evaluating (median of "
              f"{args.runs}); one product's dry-run apply: {dry_median:.1f} ms, its gate {gate_eval} ms",
              flush=True)
    finally:
        server.terminate()
        server.wait()

    today = datetime.date.today().isoformat()
    section = [
        f"## governance policies at mesh scale — {today}, {args.products:,} products, {columns:,} columns",
        "",
        f"- machine: {machine()}",
        f"- versions: tessera {git_rev()} (release build), SQLite metadata",
        f"- mesh: {args.products:,} generated products in {DOMAINS} domains, each one output port with two "
        f"datasets of {COLUMNS_PER_DATASET} columns, all compliant; {in_force} policies in force (the standard "
        f"library and {len(CUSTOM_POLICIES)} custom global ones: {', '.join(CUSTOM_POLICIES)})",
        f"- median of {args.runs} runs, the two measurements interleaved, over HTTP on loopback (client and "
        "server share the 2 cores); no peer (the issue sets absolute bars)",
        "",
        "| measurement | median (ms) | bar |",
        "|---|---:|---|",
        f"| full evaluation (`POST /api/v1/governance/check`: tessera_meta built, {in_force} policies over "
        f"{args.products:,} products, every standing stored), over HTTP | {full_median:.1f} | under 1,000 ms |",
        f"| of which the evaluation, as the server measures it (`duration_ms`: tessera_meta built, every policy "
        f"run) | {full_eval} | |",
        f"| one product's dry-run apply (parse, lint, plan, gate), over HTTP | {dry_median:.1f} | |",
        f"| of which the gate's evaluation (`duration_ms`) | {gate_eval} | under 50 ms |",
        f"| applying the {len(CUSTOM_POLICIES)} custom policies (plans them, then evaluates the whole mesh) | "
        f"{put_ms:.1f} | — |",
        f"| one product's apply while the mesh grows: first 100, last 100 (median) | "
        f"{statistics.median(apply_times[:100]):.1f}, {statistics.median(apply_times[-100:]):.1f} | — |",
        "",
    ]
    write_section(args.results, section)


if __name__ == "__main__":
    main()
