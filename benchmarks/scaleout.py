"""Speed-up of ``preprocess --scheduler local:N`` (Dask) over one process, on this machine.

Writes (once, cached) several Spyral-format runs with the generator of
``benchmarks/preprocess.py`` (helical tracks + noise, ~500 points per event), then times
``attpc-classify preprocess`` on all of them, each configuration in a fresh process as a
user would run it:

- ``one_process``: ``--workers 1``, everything in the command's own process;
- ``pool_N``: ``--workers N``, the local process pool (for reference);
- ``dask_local_N``: ``--scheduler local:N``, a Dask LocalCluster of N worker processes.

For Dask two times are given: the whole command (``wall_s``, LocalCluster start-up and
shut-down included) and the work itself (``work_s``, from the command's summary line:
plan, tasks, merge), which is what a long-lived cluster costs per run. Each configuration
runs ``--repeat`` times and the fastest is kept; the load average before and after is
recorded, since a speed-up on two cores means little while other processes use them.
Checks that every configuration wrote the same number of events.

Prints the figures, then one JSON line with them.

    .venv/bin/python benchmarks/scaleout.py                     # 4 runs x 5000 events
    .venv/bin/python benchmarks/scaleout.py --files 2 --events 1000 --repeat 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from preprocess import cached_file  # noqa: E402  (the shared synthetic-run generator)

SUMMARY = re.compile(r"^([\d,]+) events written .* in ([\d.]+) s \(", re.MULTILINE)


def run(inputs: list[Path], out: Path, extra: list[str]) -> dict[str, float]:
    """One ``preprocess`` command in a fresh process: wall time and the summary's figures."""
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "attpc_classify.cli", "preprocess", *map(str, inputs),
            "--out", str(out), "--quiet", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"preprocess {' '.join(extra)} failed:\n{proc.stderr}")
    match = SUMMARY.search(proc.stdout)
    if match is None:
        sys.exit(f"no summary line in:\n{proc.stdout}")
    return {
        "events": int(match.group(1).replace(",", "")),
        "wall_s": wall,
        "work_s": float(match.group(2)),
    }


def best(inputs: list[Path], out: Path, extra: list[str], repeat: int) -> dict[str, float]:
    runs = [run(inputs, out, extra) for _ in range(repeat)]
    return {
        "events": runs[0]["events"],
        "wall_s": min(r["wall_s"] for r in runs),
        "work_s": min(r["work_s"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="runs (input files)")
    parser.add_argument("--events", type=int, default=5000, help="events per run")
    parser.add_argument("--points", type=int, default=500, help="mean points per event")
    parser.add_argument("--workers", type=int, default=2, help="N of local:N and --workers N")
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "attpc_bench"
    )
    args = parser.parse_args()

    inputs = [
        cached_file(args.cache_dir, args.events, args.points, seed=100 + i)
        for i in range(args.files)
    ]
    n = args.workers
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        out = Path(tmp) / "images.h5"
        run(inputs[:1], out, ["--workers", "1"])  # warm the page cache and imports
        one = best(inputs, out, ["--workers", "1"], args.repeat)
        pool = best(inputs, out, ["--workers", str(n)], args.repeat)
        dask = best(inputs, out, ["--scheduler", f"local:{n}"], args.repeat)
    if not one["events"] == pool["events"] == dask["events"]:
        sys.exit(f"event counts differ: {one['events']}, {pool['events']}, {dask['events']}")

    events = one["events"]
    figures = {
        "files": args.files,
        "events": events,
        "workers": n,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
        "one_process_s": round(one["wall_s"], 2),
        "one_process_events_per_s": round(events / one["work_s"], 1),
        f"pool_{n}_s": round(pool["wall_s"], 2),
        f"dask_local_{n}_wall_s": round(dask["wall_s"], 2),
        f"dask_local_{n}_work_s": round(dask["work_s"], 2),
        f"dask_local_{n}_events_per_s": round(events / dask["work_s"], 1),
        f"speedup_dask_local_{n}_wall": round(one["wall_s"] / dask["wall_s"], 2),
        f"speedup_dask_local_{n}_work": round(one["work_s"] / dask["work_s"], 2),
        f"speedup_pool_{n}": round(one["wall_s"] / pool["wall_s"], 2),
    }
    print(f"{args.files} Spyral runs, {events:,} events (~{args.points} points each), "
          f"{os.cpu_count()} CPU cores, load average {load_before:.1f} -> "
          f"{figures['load_avg_1min_after']:.1f}")  # fmt: skip
    print(f"one process (--workers 1):  {one['wall_s']:7.2f} s  "
          f"({figures['one_process_events_per_s']:,.0f} events/s)")  # fmt: skip
    print(f"--workers {n} (process pool): {pool['wall_s']:7.2f} s  "
          f"(x{figures[f'speedup_pool_{n}']:.2f})")  # fmt: skip
    wall_x, work_x = (figures[f"speedup_dask_local_{n}_{k}"] for k in ("wall", "work"))
    print(f"--scheduler local:{n} (Dask): {dask['wall_s']:7.2f} s with cluster start-up "
          f"(x{wall_x:.2f}); {dask['work_s']:.2f} s of work (x{work_x:.2f})")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
