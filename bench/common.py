"""What every benchmark script shares: the machine and version lines, a server over a fresh mesh,
queries over HTTP, interleaved timings, and writing a section into bench/RESULTS.md (newest
first)."""

import atexit
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
    kernel = os.uname().sysname + " " + os.uname().release
    return f"{cpu}, {os.cpu_count()} cores, {int(mem) / 1024 / 1024:.0f} GiB, {kernel}"


def git_rev():
    """The commit measured; `-dirty` when files other than the results differ from it."""
    try:
        rev = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        changed = subprocess.check_output(
            ["git", "status", "--porcelain", "--", ".", ":!bench/RESULTS.md"], cwd=ROOT, text=True)
        return rev + ("-dirty" if changed.strip() else "")
    except Exception:
        return "unknown"


def release_binary():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "release/tessera")


def write_section(results, lines):
    """Puts the section `lines` (starting with a `## ` title) at the top of the results file."""
    path = pathlib.Path(results)
    previous = path.read_text() if path.exists() else (
        "# Benchmark results\n\nNewest first. Each section says how it was run; "
        "`bench/README.md` says how to rerun it.\n\n")
    head, _, rest = previous.partition("\n## ")
    body = ("## " + rest) if rest else ""
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n" + body)
    print(f"results written to {path}")


def require_binary(path):
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: build it with `cargo build --release -p tessera` "
                         "(CARGO_TARGET_DIR is honoured; --binary overrides)")


def scratch_dir(prefix):
    """A fresh temporary directory for a run's data, removed when the script exits."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def start_server(binary, data_dir, *extra, token=None, stderr=None):
    """`tessera serve` on a free port over `data_dir` (a new mesh): returns the process (its
    `banner` the lines printed before it listened), its URL and the admin token its first start
    prints (kept in `data_dir/credentials`, not the user's).
    Over a mesh started before, pass its admin `token` (it is not printed again). The server's
    log goes to `stderr` (a file) when given, else to this script's."""
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", str(data_dir), "--http", "127.0.0.1:0",
         "--credentials", str(pathlib.Path(data_dir) / "credentials"), *extra],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
        # A free port for the PostgreSQL front end too, unless the caller chose one.
        env={"TESSERA_PG": "127.0.0.1:0", "TESSERA_FLIGHT": "127.0.0.1:0", **os.environ},
    )
    # Every line up to the one that says where it listens (the front ends' addresses).
    server.banner = []
    for line in server.stdout:
        server.banner.append(line)
        if m := re.search(r"(tsr_\S+)", line):
            token = m.group(1)
        if m := re.search(r"listening on (\S+)", line):
            if token is None:
                server.terminate()
                raise SystemExit(f"{data_dir} is not a new mesh: its admin token is not printed again")
            return server, m.group(1), token
    raise SystemExit("the server stopped before it listened")


def query_arrow(url, token, sql):
    """Runs `sql` on the server as `token`'s principal with an Arrow answer; returns its bytes.
    A refused query ends the script with the server's message."""
    request = urllib.request.Request(
        f"{url}/api/v1/query",
        data=json.dumps({"sql": sql}).encode(),
        headers={"content-type": "application/json", "accept": "application/vnd.apache.arrow.stream",
                 "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{sql}: {e.code} {e.read().decode()}")


def interleaved_medians_ms(fns, runs):
    """The median wall time in ms of each of `fns` over `runs` runs, after one warm-up each
    (caches, the first open of the tables). The functions take turns within every run, so a
    machine that slows down or speeds up during the run weighs on all of them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]
