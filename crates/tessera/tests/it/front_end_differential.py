"""Runs each query three times as the same principal — over Tessera's HTTP API (JSON), its
PostgreSQL front end (psycopg 3) and its Flight SQL front end (ADBC) — and prints, as JSON, how
many were compared and every difference: each front end must give the rows HTTP gives (as
sets; floats to 6 significant digits, timestamps in one ISO form) or refuse the query as HTTP
does.

    python front_end_differential.py CONNINFO FLIGHT_URI HTTP_URL TOKEN QUERIES.json
"""

import datetime
import decimal
import json
import re
import sys
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import psycopg
import pyarrow
from adbc_driver_flightsql import DatabaseOptions

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


def over_flight(conn, sql):
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return rows_of(cur.fetchall()), None
    except (adbc_driver_manager.Error, pyarrow.ArrowException, OSError) as e:
        return None, str(e)


def compare(sql, http, theirs, front_end, differences):
    """Whether both answered; a difference is noted."""
    (http_rows, http_error), (rows, error) = http, theirs
    if http_rows is not None and rows is not None:
        if http_rows != rows:
            first = next((a, b) for a, b in zip(http_rows + [None] * len(rows),
                                                rows + [None] * len(http_rows)) if a != b)
            differences.append({"sql": sql, "front_end": front_end, "http": len(http_rows),
                                front_end: len(rows), "first difference": first})
        return True
    if (http_rows is None) != (rows is None):
        differences.append({"sql": sql, "http_error": http_error, f"{front_end}_error": error})
    return False


def main():
    conninfo, flight_uri, url, token, queries_file = sys.argv[1:6]
    with open(queries_file) as f:
        queries = json.load(f)
    differences, answered = [], 0
    flight = flight_sql.connect(
        flight_uri, autocommit=True,
        db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token})
    with psycopg.connect(conninfo, autocommit=True) as conn, flight:
        for sql in queries:
            http = over_http(url, token, sql)
            by_postgres = compare(sql, http, over_postgres(conn, sql), "postgres", differences)
            by_flight = compare(sql, http, over_flight(flight, sql), "flight_sql", differences)
            answered += by_postgres and by_flight
    print(json.dumps({"compared": len(queries), "answered": answered, "differences": differences}))


if __name__ == "__main__":
    main()
