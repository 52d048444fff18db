"""Runs a job over Tessera's Arrow Flight SQL front end with ADBC (adbc-driver-flightsql and
pyarrow), as a Python user would, and prints what came back as JSON.

    python flight_client.py URI JOB.json

JOB: {"token": "...", "user": "..."?, "ca_file": "..."?, "objects": bool?,
      "table_schema": [catalog, schema, table]?,
      "statements": [{"sql": "...", "params": [...]?}, ...]}

With "user", the token goes as the password of basic auth (a Handshake); without, as a bearer
token. For each statement: its Arrow schema (field name, type, nullable), its rows as Python
values, the schema's metadata, and its number of record batches; or its error (the gRPC code
ADBC reports as vendor_code, the message, and the tessera-sqlstate it carried).
"""

import datetime
import decimal
import json
import sys

import re

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow
from adbc_driver_flightsql import DatabaseOptions

# The driver names the gRPC status code at the end of its messages ("... (PermissionDenied;
# Prepare)"); an error while the rows stream reaches Python as a pyarrow error that has only
# the message. vendor_code is not set by adbc-driver-flightsql 1.13.
GRPC_CODES = {
    "Canceled": 1, "Unknown": 2, "InvalidArgument": 3, "DeadlineExceeded": 4, "NotFound": 5,
    "AlreadyExists": 6, "PermissionDenied": 7, "ResourceExhausted": 8, "FailedPrecondition": 9,
    "Aborted": 10, "OutOfRange": 11, "Unimplemented": 12, "Internal": 13, "Unavailable": 14,
    "DataLoss": 15, "Unauthenticated": 16,
}


def value(v):
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [value(x) for x in v]
    if isinstance(v, dict):
        return {k: value(x) for k, x in v.items()}
    return v


def grpc_code(message):
    code = re.search(r"\((\w+); [^()]*\)\s*$", message)
    return GRPC_CODES.get(code.group(1)) if code else None


def text(raw):
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def error(e):
    details = {text(name): text(raw) for name, raw in e.details or []}
    return {
        "grpc_code": e.vendor_code or grpc_code(str(e)),
        "message": str(e),
        "sqlstate": details.get("tessera-sqlstate"),
    }


def schema_of(schema):
    return [[f.name, str(f.type), f.nullable] for f in schema]


def connect(uri, job):
    kwargs = {}
    if job.get("user") is None:
        kwargs[DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {job['token']}"
    else:
        kwargs[adbc_driver_manager.DatabaseOptions.USERNAME.value] = job["user"]
        kwargs[adbc_driver_manager.DatabaseOptions.PASSWORD.value] = job["token"]
    if job.get("ca_file"):
        with open(job["ca_file"]) as f:
            kwargs[DatabaseOptions.TLS_ROOT_CERTS.value] = f.read()
    return flight_sql.connect(uri, db_kwargs=kwargs, autocommit=True)


def run(conn, statement):
    try:
        with conn.cursor() as cur:
            params = statement.get("params")
            if params is None:
                cur.execute(statement["sql"])
            else:
                cur.execute(statement["sql"], params)
            reader = cur.fetch_record_batch()
            batches = list(reader)
            schema = reader.schema
            rows = []
            for batch in batches:
                rows.extend(batch.to_pylist())
            metadata = {
                k.decode(): v.decode() for k, v in (schema.metadata or {}).items()
            }
            return {
                "schema": schema_of(schema),
                "rows": [[value(v) for v in row.values()] for row in rows],
                "metadata": metadata,
                "batches": len(batches),
            }
    except adbc_driver_manager.Error as e:
        return error(e)
    except (pyarrow.ArrowException, OSError) as e:
        return {
            "grpc_code": grpc_code(str(e)),
            "message": str(e),
            "sqlstate": None,
            "while_streaming": True,
        }


def main():
    uri, job_file = sys.argv[1], sys.argv[2]
    with open(job_file) as f:
        job = json.load(f)
    out = {}
    try:
        conn = connect(uri, job)
        # The driver checks nothing until the first call: make one.
        conn.adbc_get_table_types()
    except adbc_driver_manager.Error as e:
        print(json.dumps({"connect_error": error(e)}))
        return
    with conn:
        if job.get("objects"):
            objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
            out["objects"] = [
                {
                    "catalog": c["catalog_name"],
                    "schemas": [
                        {
                            "schema": s["db_schema_name"],
                            "tables": [
                                {
                                    "table": t["table_name"],
                                    "type": t["table_type"],
                                    "columns": [col["column_name"] for col in t["table_columns"] or []],
                                }
                                for t in s["db_schema_tables"] or []
                            ],
                        }
                        for s in c["catalog_db_schemas"] or []
                    ],
                }
                for c in objects
            ]
        if job.get("table_schema"):
            catalog, schema, table = job["table_schema"]
            try:
                out["table_schema"] = schema_of(
                    conn.adbc_get_table_schema(
                        table, catalog_filter=catalog, db_schema_filter=schema
                    )
                )
            except adbc_driver_manager.Error as e:
                out["table_schema"] = error(e)
        out["results"] = [run(conn, s) for s in job.get("statements", [])]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
