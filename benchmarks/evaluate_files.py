"""Scoring several image files: one `evaluate` call per file against one call for all.

A user scoring a model on many runs (the sim->real report scores each model on nine test
sets) pays the start of a process each time: Python, torch, timm and the model load
before the first event is scored. This script times, side by side in one run, ``--copies``
separate ``attpc-classify evaluate RUN --data FILE`` calls against one ``evaluate RUN
--data FILE_1 ... FILE_K`` call on the same files (copies of ``--data``, so every call
scores the same events), with the same bootstrap. It checks that both ways write the same
metrics, and ends with one JSON line of the figures.

Usage::

    python benchmarks/evaluate_files.py --run RUN_DIR --data TEST.h5 [--copies 6]
    python benchmarks/evaluate_files.py      # the demo's 3-class CNN and its test file
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]


def timed(args: list[str]) -> float:
    """Wall seconds of one CLI call (output discarded; a failure stops the script)."""
    t0 = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "demo_out" / "runs" / "cnn_multiclass")
    parser.add_argument("--data", type=Path, default=ROOT / "demo_out" / "data" / "test.h5")
    parser.add_argument("--copies", type=int, default=6, help="files scored each way")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    if not (args.run / "model.json").exists() or not args.data.exists():
        print(f"no trained run or image file (looked for {args.run} and {args.data}): give "
              "--run and --data, or run `make demo` first; nothing measured")  # fmt: skip
        print(json.dumps({"skipped": "no trained run"}))
        return

    work = Path(tempfile.mkdtemp(prefix="evaluate_files_"))
    try:
        files = []
        for k in range(args.copies):
            files.append(work / f"set_{k}.h5")
            shutil.copyfile(args.data, files[-1])
        common = ["--n-boot", str(args.n_boot), "--quiet"]
        separate = 0.0
        for f in files:
            out = work / "separate" / f.stem
            separate += timed(["evaluate", str(args.run), "--data", str(f), "--out", str(out),
                               *common])  # fmt: skip
        one_call = timed(["evaluate", str(args.run), "--data", *map(str, files), "--out",
                          str(work / "one"), *common])  # fmt: skip
        for f in files:  # same model, same bootstrap seed: the same numbers either way
            a = json.loads((work / "separate" / f.stem / "metrics.json").read_text())
            b = json.loads((work / "one" / f.stem / "metrics.json").read_text())
            assert a["tasks"] == b["tasks"], f"{f.stem}: the two ways disagree"
        n_events = json.loads((work / "one" / files[0].stem / "metrics.json").read_text())
        n_events = n_events["n_events"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from attpc_classify.device import describe_cpu

    print(f"{args.copies} files of {n_events} events, {args.run.name}, --n-boot {args.n_boot}, "
          f"{describe_cpu()}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  one call per file: {separate:7.1f} s ({separate / args.copies:.1f} s per file)")
    print(f"  one call, all files: {one_call:5.1f} s ({one_call / args.copies:.1f} s per file)")
    print(json.dumps({
        "files": args.copies,
        "events_per_file": n_events,
        "separate_s": round(separate, 1),
        "one_call_s": round(one_call, 1),
        "speedup": round(separate / one_call, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
