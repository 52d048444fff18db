"""Runs statements over Tessera's PostgreSQL front end with psycopg 3, as a Python user would,
and prints what came back as JSON: for each statement its columns (name, type oid), its rows
(each value with its Python type) or its error (SQLSTATE and message).

    python pg_client.py CONNINFO JOB.json

JOB: {"statements": [{"sql": "...", "params": [...], "prepare": BOOL?}, ...], "cancel_after": SECONDS?}
Each result also holds the NOTICEs the server sent while the statement ran. "prepare": true
makes psycopg prepare the statement on the server (a named statement, run by Bind and Execute
only). A step {"run": [ARGV...], "capture": NAME?, "pattern": REGEX?} runs a command between
statements on the still open connection (a grant given or revoked meanwhile); with "capture",
the pattern's first group in its output replaces "{NAME}" in the arguments of later steps.
With "cancel_after", the one statement runs while another thread cancels it after that long.
"""

import datetime
import decimal
import json
import re
import subprocess
import sys
import threading

import psycopg


def value(v):
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


def run(conn, statement):
    notices = []

    def handler(diagnostic):
        notices.append(diagnostic.message_primary)

    conn.add_notice_handler(handler)
    try:
        return {**answer(conn, statement), "notices": notices}
    finally:
        conn.remove_notice_handler(handler)


def answer(conn, statement):
    try:
        with conn.cursor() as cur:
            cur.execute(statement["sql"], statement.get("params"), prepare=statement.get("prepare"))
            columns = [[c.name, c.type_code] for c in cur.description or []]
            rows = cur.fetchall() if cur.description else []
            return {
                "columns": columns,
                "rows": [[value(v) for v in row] for row in rows],
                "types": [[type(v).__name__ for v in row] for row in rows[:1]],
            }
    except psycopg.Error as e:
        return {"sqlstate": e.sqlstate, "message": str(e)}


def run_command(step, captured):
    argv = step["run"]
    for name, text in captured.items():
        argv = [a.replace("{" + name + "}", text) for a in argv]
    done = subprocess.run(argv, capture_output=True, text=True)
    if "capture" in step and done.returncode == 0:
        found = re.search(step["pattern"], done.stdout)
        if found:
            captured[step["capture"]] = found.group(1)
    return {"ran": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main():
    conninfo, job_file = sys.argv[1], sys.argv[2]
    with open(job_file) as f:
        job = json.load(f)
    try:
        conn = psycopg.connect(conninfo, autocommit=job.get("autocommit", False))
    except psycopg.Error as e:
        print(json.dumps({"connect_error": str(e)}))
        return
    with conn:
        if "cancel_after" in job:
            timer = threading.Timer(job["cancel_after"], conn.cancel)
            timer.start()
            results = [run(conn, job["statements"][0])]
            timer.cancel()
            # The connection still serves after a cancel.
            conn.rollback()
            results.append(run(conn, {"sql": "SELECT 1 AS still_here"}))
        else:
            results, captured = [], {}
            for s in job["statements"]:
                if "run" in s:
                    results.append(run_command(s, captured))
                else:
                    results.append(run(conn, s))
            if not job.get("autocommit", False):
                conn.rollback()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
