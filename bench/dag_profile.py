#!/usr/bin/env python3
"""Probe, not a benchmark: where an incremental run of the artgo demo's whole DAG spends its time.

Loads the demo (or reuses a loaded data directory with --data), starts the server with the
transform runs' debug log on, refreshes the DAG in full once, then `--rounds` times appends 1%
to every upstream table (as bench/transforms.py does) and runs the whole DAG in one call
(`POST /api/v1/transforms/run`). For each call it reads the server's CPU time per thread group
from /proc/PID/task/*/stat before and after (steadier on a shared host than wall time), and
from the log each run's phases ("transform computed": ms since the run began when the records
were looked up, the watermark read, the query run, the result cast to the contract, gated,
written, the commit recorded) and the time around it ("transform run recorded": the run's
START emitted, its end emitted, the run recorded), and the last call's timeline (each run's
start and end, from the log lines' times). Prints medians; writes nothing into RESULTS.md.

    ~/.cache/tessera-venv/bin/python bench/dag_profile.py --scale 20 --rounds 8
    ~/.cache/tessera-venv/bin/python bench/dag_profile.py --data /tmp/mesh --rounds 8 -- --transform-concurrency 1

Arguments after `--` go to `tessera serve`. With --data the directory is used as it is (copy
it first to keep a loaded demo unchanged); its admin token is read from the credentials file
the first server over it wrote (or printed, when this is that first server).
"""

import argparse
import datetime
import os
import pathlib
import re
import statistics
import subprocess
import time

from common import release_binary, require_binary, scratch_dir, start_server
from transforms import Api, Upstream, duckdb_with_delta, load_demo

PHASES = ("looked_up_ms", "watermark_ms", "queried_ms", "prepared_ms", "gated_ms", "written_ms",
          "recorded_ms")
# Around the computation ("transform run recorded"): its START emitted, the computation, its end
# emitted, the run recorded.
AROUND = ("began_ms", "computed_ms", "emitted_ms", "recorded_ms")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_thread_group(pid):
    """CPU seconds (user + system) per thread name with its digits dropped (a pool's threads
    together)."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        group = re.sub(r"[-_]?\d+$", "", name)
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


class Perf:
    """`perf record -a` started disabled, switched on and off through its control fifo."""

    def __init__(self, out, call_graph=None):
        fifos = scratch_dir("tessera-probe-perf-")
        self.ctl, self.ack = fifos / "ctl", fifos / "ack"
        os.mkfifo(self.ctl)
        os.mkfifo(self.ack)
        self.process = subprocess.Popen(
            ["perf", "record", "-a", "-F", "499" if call_graph else "1999", "-D", "-1", "-o", out,
             *(["--call-graph", call_graph] if call_graph else []),
             "--control", f"fifo:{self.ctl},{self.ack}"], stderr=subprocess.DEVNULL)
        self.ctl_w = open(self.ctl, "w")
        self.ack_r = open(self.ack, "r")

    def switch(self, command):
        self.ctl_w.write(command + "\n")
        self.ctl_w.flush()
        self.ack_r.readline()

    def stop(self):
        self.process.send_signal(2)
        self.process.wait()


def admin_token(data):
    """The admin token a server started over `data` before kept; `None` before its first start
    (which prints it)."""
    path = pathlib.Path(data) / "credentials"
    if not path.exists():
        return None
    return re.search(r"(tsr_\w+)", path.read_text()).group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--data", help="a data directory the demo was loaded into (used as it is)")
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--perf", help="also record `perf record -a` samples into this file, only "
                        "while the measured calls run (read with `perf report -i FILE --comm tessera-query,tokio-rt-worker`)")
    parser.add_argument("--call-graph", help="with --perf: perf's --call-graph mode (e.g. dwarf; samples at "
                        "499 Hz then), for `perf report --children`")
    parser.add_argument("serve_args", nargs="*", help="more arguments for `tessera serve` (after --)")
    args = parser.parse_args()
    require_binary(args.binary)

    if args.data:
        data = pathlib.Path(args.data)
        token = admin_token(data)
    else:
        data, token = scratch_dir("tessera-probe-"), None
        load_demo(args.binary, args.scale, data)
    upstream = Upstream(duckdb_with_delta(), data / "tables", scratch_dir("tessera-probe-batches-"), 1.0)

    log_path = scratch_dir("tessera-probe-log-") / "server.log"
    os.environ["TESSERA_LOG"] = "warn,tessera_server::transform_runs=debug"
    with open(log_path, "w") as log:
        server, url, token = start_server(
            args.binary, data, "--transform-tick-seconds", "0", "--maintenance-interval-seconds", "0",
            "--check-tick-seconds", "0", *args.serve_args, token=token, stderr=log)
    api = Api(url, token)
    calls, spans = [], []
    perf = Perf(args.perf, args.call_graph) if args.perf else None
    try:
        def whole(path):
            start = time.perf_counter()
            ran = api.call("POST", path)
            wall = (time.perf_counter() - start) * 1000
            if failed := [r for r in ran if r["status"] != "succeeded"]:
                raise SystemExit(f"a run failed: {failed}")
            return wall

        print(f"full refresh: {whole('/api/v1/transforms/run?full_refresh=true'):.0f} ms", flush=True)
        upstream.append(api)
        print(f"incremental (warm-up): {whole('/api/v1/transforms/run'):.0f} ms", flush=True)
        offset = log_path.stat().st_size
        for i in range(args.rounds):
            upstream.append(api)
            before = cpu_by_thread_group(server.pid)
            if perf:
                perf.switch("enable")
            began = time.time()
            wall = whole("/api/v1/transforms/run")
            spans.append((began, began + wall / 1000))
            if perf:
                perf.switch("disable")
            after = cpu_by_thread_group(server.pid)
            cpu = {g: (after.get(g, 0) - before.get(g, 0)) * 1000 for g in after}
            calls.append((wall, cpu))
            print(f"incremental {i + 1}: {wall:.0f} ms, CPU {sum(cpu.values()):.0f} ms", flush=True)
    finally:
        if perf:
            perf.stop()
        server.terminate()
        server.wait()

    walls = [w for w, _ in calls]
    print(f"\nthe DAG in one call, incremental: median {statistics.median(walls):.0f} ms "
          f"(min {min(walls):.0f}, max {max(walls):.0f})")
    groups = sorted({g for _, c in calls for g in c}, key=lambda g: -statistics.median(c.get(g, 0) for _, c in calls))
    print("CPU per call, median ms by thread group:")
    for g in groups:
        m = statistics.median(c.get(g, 0) for _, c in calls)
        if m >= 1:
            print(f"  {g:24} {m:6.0f}")
    print(f"  {'(all)':24} {statistics.median(sum(c.values()) for _, c in calls):6.0f}")

    # Each run's phases, as time spent in each (the log gives ms since the run began).
    for message, marks in (("transform computed", PHASES), ("transform run recorded", AROUND)):
        phases = {}
        with open(log_path) as log:
            log.seek(offset)
            for line in log:
                if message not in line:
                    continue
                fields = dict(re.findall(r"(\w+)=(\S+)", line))
                at = [int(fields[p]) for p in marks]
                spent = [b - a for a, b in zip([0] + at, at)]
                phases.setdefault(fields["dataset"], []).append(spent)
        print(f"\n{message}: median ms spent per run: "
              + " / ".join(p.removesuffix("_ms") for p in marks) + " / total")
        for dataset, runs in phases.items():
            med = [statistics.median(r[i] for r in runs) for i in range(len(marks))]
            print(f"  {dataset.split('.')[-1]:20} " + " ".join(f"{m:5.0f}" for m in med)
                  + f"  {statistics.median(sum(r) for r in runs):5.0f}")

    # The last call's timeline: when each run started and ended, in ms from the call's start
    # (a run's end is its log line's time, its start that less its `recorded_ms`).
    began, ended = spans[-1]
    timeline = []
    with open(log_path) as log:
        for line in log:
            if "transform run recorded" not in line:
                continue
            at = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            if began <= at <= ended + 0.05:
                fields = dict(re.findall(r"(\w+)=(\S+)", line))
                end = (at - began) * 1000
                timeline.append((end - int(fields["recorded_ms"]), end, fields["dataset"]))
    print(f"\nthe last call's runs, ms from its start (the call took {(ended - began) * 1000:.0f}):")
    for start, end, dataset in sorted(timeline):
        print(f"  {start:5.0f} - {end:5.0f}  {dataset.split('.')[-1]}")


if __name__ == "__main__":
    main()
