"""Runs each query twice as the same principal — over Tessera's HTTP API (JSON) and over its
PostgreSQL front end (psycopg 3) — and prints, as JSON, how many were compared and every
difference: the two front ends must give the same rows (as sets; floats to 6 significant
digits, timestamps in one ISO form) or both refuse the query.

    python pg_differential.py CONNINFO HTTP_URL TOKEN QUERIES.json
"""

import datetime
import decimal
import json
import re
import sys
import urllib.error
import urllib.request

import psycopg

TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]00(:?00)?)?$")


def norm(v):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        return format(float(v), ".6e")
    if isinstance(v, (datetime.datetime, datetime.date)):
        return norm(v.isoformat())
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, str):
        m = TIMESTAMP.match(v)
        if m:
            fraction = (m.group(3) or "").rstrip("0").rstrip(".")
            return f"{m.group(1)}T{m.group(2)}{fraction}"
    return v


def rows_of(rows):
    return sorted(json.dumps([norm(v) for v in row]) for row in rows)


def over_http(url, token, sql):
    request = urllib.request.Request(
        url + "/api/v1/query",
        data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json",
                 "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        return None, e.read().decode()
    if "error" in body:
        return None, json.dumps(body["error"])
    columns = [c["name"] for c in body["columns"]]
    return rows_of([[row[c] for c in columns] if isinstance(row, dict) else row
                    for row in body["rows"]]), None


def over_postgres(conn, sql):
    try:
        cur = conn.execute(sql, prepare=False)
        return rows_of(cur.fetchall()), None
    except psycopg.Error as e:
        return None, f"{e.sqlstate}: {e}"


def main():
    conninfo, url, token, queries_file = sys.argv[1:5]
    with open(queries_file) as f:
        queries = json.load(f)
    differences, answered = [], 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for sql in queries:
            http_rows, http_error = over_http(url, token, sql)
            pg_rows, pg_error = over_postgres(conn, sql)
            if http_rows is not None and pg_rows is not None:
                answered += 1
                if http_rows != pg_rows:
                    first = next((a, b) for a, b in zip(http_rows + [None] * len(pg_rows),
                                                        pg_rows + [None] * len(http_rows)) if a != b)
                    differences.append({"sql": sql, "http": len(http_rows), "postgres": len(pg_rows),
                                        "first difference": first})
            elif (http_rows is None) != (pg_rows is None):
                differences.append({"sql": sql, "http_error": http_error, "postgres_error": pg_error})
    print(json.dumps({"compared": len(queries), "answered": answered, "differences": differences}))


if __name__ == "__main__":
    main()
