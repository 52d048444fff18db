#!/usr/bin/env python3
"""The streaming-event benchmark's peer: a FastAPI + deltalake micro-batch service that does what
Tessera's `POST /api/v1/datasets/{domain}/{product}/{dataset}/events` does for the contract in
bench/events.py, so that the same load generator drives both.

- The body is NDJSON (one JSON object a line; a JSON array of objects and gzip are taken too).
- Every event is validated by the contract's rules, the same way Tessera does: the values are
  read as text and cast to the column's type (`at` to a UTC timestamp, `dwell_ms` to a 64-bit
  integer; an empty text is a missing value there, a value that does not cast is a `type`
  violation), then `event_id` and `user_id` are required, `user_id` matches ^U[0-9]{8}$, `kind`
  is one of view/like/share/purchase and `dwell_ms` >= 0 (a missing value passes every rule but
  `required`). Columnar with pyarrow: pyarrow's JSON reader parses the body, and only a body it
  cannot read with the expected types goes through json.loads line by line.
- The request's valid rows and its refused rows (as received, with the rule, column and reason)
  are made durable before the answer: one checksummed frame `[u32 len][u32 crc32][payload]`
  (the payload holding both as Arrow IPC streams) appended to a log segment and fdatasync'ed,
  as Tessera's event log does. Concurrent requests group-commit: their frames are written
  together and share one fdatasync.
- The answer is 202 with the same receipt as Tessera's: {dataset, request_id, events, accepted,
  quarantined, rejections: [{index, rule, column, reason}], replayed}. A body that cannot be
  used (not NDJSON, no events, unknown columns) is 422 and writes nothing; over 16 MiB is 413;
  past 512 MiB of logged but uncommitted frames, 429 with Retry-After.
- A background task commits whatever waits every 500 ms (`--commit-interval-ms`) with
  `deltalake.write_deltalake(mode="append")`: the refused rows to the quarantine table
  (`{dataset}_quarantine`), the valid rows to the dataset's table; a log segment is deleted once
  everything in it is committed. What waits is committed once more at shutdown.

Not done (the benchmark does not need them): replaying the log after a crash, idempotency keys,
more than one dataset. With `--token`, requests must carry `Authorization: Bearer TOKEN`.

Run it with the bench venv (bench/events.py creates it and starts this peer itself):

    ~/.cache/tessera-bench-venv/bin/python bench/peers/events_fastapi.py --data-dir /tmp/peer --port 8100
    curl -si -X POST --data-binary @events.ndjson -H 'content-type: application/x-ndjson' \\
        http://127.0.0.1:8100/api/v1/datasets/web/clicks/events/events

It serves with uvicorn, one worker process (uvloop and httptools when installed). The tables
are at DATA_DIR/tables/web/clicks/events{,_quarantine}, the log at DATA_DIR/log.
"""

import argparse
import asyncio
import contextlib
import datetime
import gzip
import json
import os
import pathlib
import re
import struct
import sys
import uuid
import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import uvicorn
from deltalake import DeltaTable, write_deltalake
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

# The contract (bench/events.py's CONTRACT), by hand.
TEXT_COLUMNS = ["event_id", "user_id", "kind", "artwork_id", "page"]
COLUMNS = TEXT_COLUMNS + ["at", "dwell_ms"]
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
CAST_COLUMNS = {"at": (UTC_TIMESTAMP, "timestamp"), "dwell_ms": (pa.int64(), "integer")}
REQUIRED = ["event_id", "user_id"]
PATTERN = "^U[0-9]{8}$"
KINDS = ["view", "like", "share", "purchase"]
MINIMUM = 0

DATASET_SCHEMA = pa.schema(
    [pa.field(c, pa.string(), nullable=c not in REQUIRED) for c in TEXT_COLUMNS]
    + [pa.field("at", UTC_TIMESTAMP), pa.field("dwell_ms", pa.int64())])
QUARANTINE_SCHEMA = pa.schema(
    [pa.field(c, pa.string()) for c in COLUMNS]
    + [pa.field("_batch_id", pa.string(), nullable=False),
       pa.field("_row_number", pa.int64(), nullable=False),
       pa.field("_rule", pa.string(), nullable=False),
       pa.field("_column", pa.string(), nullable=False),
       pa.field("_reason", pa.string(), nullable=False),
       pa.field("_quarantined_at", UTC_TIMESTAMP, nullable=False)])

# What pyarrow's JSON reader expects of a well-formed body; anything else (a number sent as
# text, an unknown field, a bad line) is read again line by line, every value as text.
READ_SCHEMA = pa.schema([pa.field(c, pa.int64() if c == "dwell_ms" else pa.string()) for c in COLUMNS])
READ_OPTIONS = pa_json.ReadOptions(use_threads=False, block_size=1 << 20)
PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="error")
# Made once: pyarrow converting a Python value on every call costs more than the call.
KINDS_ARRAY = pa.array(KINDS)
KINDS_EXPECTED = "one of [" + ", ".join(json.dumps(k) for k in KINDS) + "]"
MINIMUM_SCALAR = pa.scalar(MINIMUM, pa.int64())
EMPTY_TEXT, NO_TEXT, TRUE = pa.scalar("", pa.string()), pa.scalar(None, pa.string()), pa.scalar(True)
INTEGER = re.compile(r"[+-]?[0-9]+")

MAX_BODY_BYTES = 16 << 20
MAX_BACKLOG_BYTES = 512 << 20


class Unusable(Exception):
    """The request as a whole cannot be used: 422, nothing written."""


# --- reading -------------------------------------------------------------------------------

def read_events(body: bytes) -> pa.Table:
    """The body's events as a table of COLUMNS, each value as received (text, or int64 for
    `dwell_ms` when the fast reader could take it)."""
    first = body.lstrip()[:1]
    if first == b"":
        raise Unusable("the request holds no events")
    if first != b"[":
        try:
            table = pa_json.read_json(pa.py_buffer(body), read_options=READ_OPTIONS,
                                      parse_options=PARSE_OPTIONS)
            if table.num_rows > 0:
                return table
        except pa.ArrowInvalid:
            pass
    return read_events_slowly(body)


def as_text(column, value):
    """A JSON scalar as the text it is validated and cast from (Tessera coerces the same way)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise Unusable(f"{column}: a nested value where one value is expected")


def read_events_slowly(body: bytes) -> pa.Table:
    try:
        text = body.decode()
    except UnicodeDecodeError as e:
        raise Unusable(f"the body is not UTF-8: {e}") from None
    if text.lstrip().startswith("["):
        try:
            events = json.loads(text)
        except ValueError as e:
            raise Unusable(f"the body is not a JSON array of events: {e}") from None
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                raise Unusable(f"event {i} is not a JSON object")
    else:
        events = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as e:
                raise Unusable(f"line {i}: {e}") from None
            if not isinstance(event, dict):
                raise Unusable(f"line {i}: expected a JSON object")
            events.append(event)
    if not events:
        raise Unusable("the request holds no events")
    unknown = sorted({k for event in events for k in event} - set(COLUMNS))
    if unknown:
        raise Unusable(f"unknown columns {unknown}; the contract has {COLUMNS}")
    return pa.table({c: pa.array([as_text(c, e.get(c)) for e in events], pa.string()) for c in COLUMNS})


# --- validating ----------------------------------------------------------------------------

def parse_timestamp(text):
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def parse_integer(text):
    if INTEGER.fullmatch(text) and -2**63 <= int(text) < 2**63:
        return int(text)
    return None


def cast(raw: pa.Array, target: pa.DataType) -> pa.Array:
    """`raw` as `target`, a value that does not cast becoming null: pyarrow's cast for the whole
    column, and only when some value fails it, one value at a time."""
    try:
        return pc.cast(raw, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parse = parse_timestamp if pa.types.is_timestamp(target) else parse_integer
        return pa.array([None if v is None else parse(v) for v in raw.to_pylist()], target)


def clip(text):
    return text[:80] + "…" if len(text) > 80 else text


def shown(value):
    """A value in a reason, quoted as Tessera does."""
    return json.dumps(clip("null" if value is None else str(value)), ensure_ascii=False)


def row_rules(typed):
    """(rule, column, passes, expectation) for each of the contract's row rules, in its order;
    `passes` is a boolean mask with no nulls."""
    user_id, kind, dwell = typed["user_id"], typed["kind"], typed["dwell_ms"]
    return [
        ("required", "event_id", pc.is_valid(typed["event_id"]), None),
        ("required", "user_id", pc.is_valid(user_id), None),
        ("pattern", "user_id", pc.fill_null(pc.match_substring_regex(user_id, PATTERN), TRUE),
         f"a match for pattern {PATTERN}"),
        ("validValues", "kind", pc.or_(pc.is_null(kind), pc.is_in(kind, value_set=KINDS_ARRAY)),
         KINDS_EXPECTED),
        ("minimum", "dwell_ms", pc.fill_null(pc.greater_equal(dwell, MINIMUM_SCALAR), TRUE), f">= {MINIMUM}"),
    ]


def validate(table: pa.Table, request_id: str, now: datetime.datetime):
    """Splits the events: (valid rows with DATASET_SCHEMA, refused rows with QUARANTINE_SCHEMA
    or None, the receipt's rejections)."""
    raw, typed = {}, {}
    for c in COLUMNS:
        column = table.column(c).combine_chunks()
        if c in CAST_COLUMNS and pa.types.is_string(column.type):
            column = pc.if_else(pc.equal(column, EMPTY_TEXT), NO_TEXT, column)
        raw[c] = column
        typed[c] = cast(column, CAST_COLUMNS[c][0]) if c in CAST_COLUMNS else column

    failures = {}  # row -> [(rule, column, reason)], in the order Tessera finds them
    failing = None  # rows that break anything
    for c, (_, logical) in CAST_COLUMNS.items():
        lost = pc.and_(pc.is_valid(raw[c]), pc.is_null(typed[c]))
        if pc.any(lost).as_py():
            failing = lost if failing is None else pc.or_(failing, lost)
            values = raw[c]
            for row in pc.indices_nonzero(lost).to_pylist():
                failures.setdefault(row, []).append(
                    ("type", c, f"{c}: {shown(values[row].as_py())} is not a valid {logical}"))
    for rule, c, passes, expectation in row_rules(typed):
        if pc.all(passes).as_py():
            continue
        broken = pc.invert(passes)
        failing = broken if failing is None else pc.or_(failing, broken)
        values = raw[c]
        for row in pc.indices_nonzero(broken).to_pylist():
            found = failures.setdefault(row, [])
            if rule == "required":
                # A value that failed its type is null after the cast; it is not also missing.
                if not any(r == "type" and col == c for r, col, _ in found):
                    found.append((rule, c, f"{c} is required but missing"))
            else:
                found.append((rule, c, f"{c}: {shown(values[row].as_py())} is not {expectation}"))

    valid = pa.Table.from_arrays([typed[c] for c in COLUMNS], schema=DATASET_SCHEMA)
    if not failures:
        return valid, None, []
    valid = valid.filter(pc.invert(failing))
    rows = sorted(failures)
    taken = pa.array(rows, pa.int64())
    n = len(rows)
    quarantine = pa.Table.from_arrays(
        [pc.cast(pc.take(raw[c], taken), pa.string()) for c in COLUMNS]
        + [pa.array([request_id] * n, pa.string()),
           pc.add(taken, 1),
           pa.array([failures[r][0][0] for r in rows], pa.string()),
           pa.array([failures[r][0][1] for r in rows], pa.string()),
           pa.array(["; ".join(f[2] for f in failures[r]) for r in rows], pa.string()),
           pa.array([now] * n, UTC_TIMESTAMP)],
        schema=QUARANTINE_SCHEMA)
    rejections = [{"index": r, "rule": failures[r][0][0], "column": failures[r][0][1],
                   "reason": "; ".join(f[2] for f in failures[r])} for r in rows]
    return valid, quarantine, rejections


# --- the log -------------------------------------------------------------------------------

def ipc(table):
    if table is None or table.num_rows == 0:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def frame(valid, quarantine) -> list:
    """The log frame of one request: [u32 len][u32 crc32][payload], the payload being the valid
    and the refused rows as Arrow IPC streams, each after its u32 length."""
    parts = []
    for table in (valid, quarantine):
        data = ipc(table)
        parts += [struct.pack("<I", len(data)), data]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [struct.pack("<II", sum(len(p) for p in parts), crc)] + parts


@dataclass
class Entry:
    """One request's rows, logged and not yet committed."""
    valid: pa.Table
    quarantine: pa.Table | None
    size: int
    segment: int = -1


class EventLog:
    """Appends requests' frames to DIR/{segment:020}.log; `append` returns once the frame is on
    disk. One writer task writes everything that arrived while the previous write was syncing in
    one write and one fdatasync (group commit); what is durable then waits for the committer."""

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment = 0
        self.fd = self._open(self.segment)
        self.rotate = False
        self.queue = []  # (frame parts, entry, future), not written yet
        self.arrived = asyncio.Event()
        self.waiting = []  # durable entries, not committed yet
        self.backlog_bytes = 0  # queued, waiting and being committed

    def _open(self, segment):
        fd = os.open(self.dir / f"{segment:020}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)
        return fd

    def backlogged(self):
        return self.backlog_bytes > MAX_BACKLOG_BYTES

    async def append(self, valid, quarantine):
        parts = frame(valid, quarantine)
        entry = Entry(valid, quarantine, sum(len(p) for p in parts))
        self.backlog_bytes += entry.size
        done = asyncio.get_running_loop().create_future()
        self.queue.append((parts, entry, done))
        self.arrived.set()
        await done

    def _write(self, fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)

    async def run(self):
        """The writer task."""
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            if not self.queue:
                continue
            group, self.queue = self.queue, []
            if self.rotate:
                os.close(self.fd)
                self.segment += 1
                self.fd = self._open(self.segment)
                self.rotate = False
            data = b"".join(p for parts, _, _ in group for p in parts)
            try:
                await asyncio.to_thread(self._write, self.fd, data)
            except OSError as e:
                for _, entry, done in group:
                    self.backlog_bytes -= entry.size
                    if not done.done():
                        done.set_exception(e)
                continue
            for _, entry, done in group:
                entry.segment = self.segment
                self.waiting.append(entry)
                if not done.done():
                    done.set_result(None)

    def take(self):
        """Everything durable and not committed; later frames go to a new segment."""
        taken, self.waiting = self.waiting, []
        if taken:
            self.rotate = True
        return taken

    def release(self, taken):
        """A failed commit's entries wait again, first."""
        self.waiting = taken + self.waiting

    def committed(self, taken):
        self.backlog_bytes -= sum(e.size for e in taken)
        oldest = min([e.segment for e in self.waiting] + [self.segment])
        for path in self.dir.glob("*.log"):
            if int(path.stem) < oldest:
                path.unlink()

    def close(self):
        os.close(self.fd)


# --- the service ---------------------------------------------------------------------------

def error(status, code, message, headers=None):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(data_dir: pathlib.Path, served: tuple, commit_interval: float, token: str | None) -> FastAPI:
    """The service for the dataset `served` (domain, product, dataset), its tables under
    `data_dir`, committed every `commit_interval` seconds."""
    domain, product, name = served
    table = data_dir / "tables" / domain / product / name
    quarantine_table = data_dir / "tables" / domain / product / f"{name}_quarantine"
    for path, schema in ((table, DATASET_SCHEMA), (quarantine_table, QUARANTINE_SCHEMA)):
        path.mkdir(parents=True, exist_ok=True)
        DeltaTable.create(str(path), schema=schema, mode="ignore")
    state = {}

    def write_tables(entries):
        refused = [e.quarantine for e in entries if e.quarantine is not None]
        if refused:
            write_deltalake(str(quarantine_table), pa.concat_tables(refused), mode="append")
        valid = [e.valid for e in entries if e.valid.num_rows > 0]
        if valid:
            write_deltalake(str(table), pa.concat_tables(valid), mode="append")

    async def commit(log):
        taken = log.take()
        if not taken:
            return
        try:
            await asyncio.to_thread(write_tables, taken)
        except Exception as e:
            log.release(taken)
            print(f"commit failed, retried at the next tick: {e}", file=sys.stderr, flush=True)
            return
        log.committed(taken)

    async def committer(log):
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + commit_interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            await commit(log)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        log = EventLog(data_dir / "log")
        state["log"] = log
        tasks = [asyncio.create_task(log.run()), asyncio.create_task(committer(log))]
        yield
        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]
        await commit(log)  # what is still waiting (an interrupted commit's rows included)
        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]
        log.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/api/v1/datasets/{domain}/{product}/{dataset}/events")
    async def events(domain: str, product: str, dataset: str, request: Request):
        if (domain, product, dataset) != served:
            return error(404, "not_found", f"no dataset {domain}.{product}.{dataset}")
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return error(401, "unauthenticated", "a bearer token is required")
        log = state["log"]
        if log.backlogged():
            return error(429, "backlogged", "the event log's backlog is full", {"retry-after": "1"})
        body = await request.body()
        if request.headers.get("content-encoding", "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as e:
                return error(400, "bad_request", f"the gzip body does not decompress: {e}")
        if len(body) > MAX_BODY_BYTES:
            return error(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        request_id = str(uuid.uuid4())
        try:
            valid, quarantine, rejections = validate(
                read_events(body), request_id, datetime.datetime.now(datetime.timezone.utc))
        except Unusable as e:
            return error(422, "unusable_batch", str(e))
        await log.append(valid, quarantine)
        refused = 0 if quarantine is None else quarantine.num_rows
        return JSONResponse({
            "dataset": ".".join(served), "request_id": request_id,
            "events": valid.num_rows + refused, "accepted": valid.num_rows, "quarantined": refused,
            "rejections": rejections, "replayed": False}, status_code=202)

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, type=pathlib.Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--dataset", default="web.clicks.events", help="domain.product.dataset")
    parser.add_argument("--commit-interval-ms", type=int, default=500)
    parser.add_argument("--token", default=os.environ.get("PEER_TOKEN"),
                        help="require `Authorization: Bearer TOKEN` (default: $PEER_TOKEN, else none)")
    args = parser.parse_args()
    dataset = tuple(args.dataset.split("."))
    if len(dataset) != 3:
        parser.error("--dataset is domain.product.dataset")
    app = create_app(args.data_dir, dataset, args.commit_interval_ms / 1000, args.token)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
