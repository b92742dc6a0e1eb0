"""End-to-end classification: speed and proton F1 of trained runs x inference engines.

For each trained run (``--run NAME=DIR``) and engine (torch fp32, torch bf16, ONNX Runtime
fp32, ONNX Runtime int8 static and dynamic), `attpc_classify.predict.classify_files`
classifies the labelled point-cloud files ``--test`` (read -> denoise + project with the
run's recorded image config -> infer -> write a CSV) on ``--workers`` local processes;
the proton F1 of its labels against the files' true labels (events the recipe leaves
blank count as "not proton") and its speed come from the same run. The exports are made
first (``export --onnx``, static int8 calibrated on the run's training file).

Speed is measured two ways, because the machine this was written on is shared: the wall
clock (events/s as the user sees them, load average printed beside it) and the CPU time
of this process and its workers: ``events / CPU seconds x cores`` is what ``--cores``
free cores give when the work splits evenly over the workers (it does: one process per
core, tasks of 2 batches, small serial merge). Before that, one pass times each stage in
CPU seconds per event: read, denoise (beam mask, DBSCAN, charge norm), projection, each
engine's inference, and writing.

The last line is one JSON object; ``--figure`` writes the accuracy/speed Pareto plot.

Usage::

    python benchmarks/classify.py --run cnn=RUN_DIR [--run vit=RUN_DIR] --test FILE_OR_DIR...
        [--workers 2] [--repeats 2] [--work bench_out/classify] [--figure PNG]
    python benchmarks/classify.py       # the runs and held-out files of `make demo`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from attpc_classify.export import export_onnx
from attpc_classify.metrics import binary_f1
from attpc_classify.predict import (
    PredictionWriter,
    classify_files,
    load_predictor,
    model_config,
    read_predictions,
)
from data_prep.build import expand_inputs
from data_prep.images import _project, clean_points
from data_prep.readers import open_events

ROOT = Path(__file__).resolve().parents[1]
#: (label, engine for load_predictor, torch precision, export directory key)
ENGINES = [
    ("torch fp32", "torch", "fp32", None),
    ("torch bf16", "torch", "bf16", None),
    ("ORT fp32", "onnxruntime:fp32", "auto", "static"),
    ("ORT int8 static", "onnxruntime:int8", "auto", "static"),
    ("ORT int8 dynamic", "onnxruntime:int8", "auto", "dynamic"),
]


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def truth(files: list[Path]) -> dict[tuple[int, int], int]:
    """(run, event id) -> true class id, read from the test files."""
    out = {}
    for path in files:
        with open_events(path, point_labels=False) as reader:
            for ev in reader.iter_events():
                out[(ev.run, ev.event_id)] = ev.label
    return out


def proton_f1(pred_csv: Path, labels: dict[tuple[int, int], int]) -> float:
    """Proton F1 of a prediction table (``empty`` = not proton) against true labels."""
    p = read_predictions(pred_csv)
    true = np.array([labels[(r, e)] for r, e in zip(p["run"], p["event_id"], strict=True)])
    keep = true >= 0
    return binary_f1(true[keep] == 0, p["label"][keep] == "proton")


def agreement(pred_csv: Path, ref_csv: Path, threshold: float | None) -> dict:
    """How an engine's table differs from torch fp32's: the largest |dp| and the labels
    changed (non-blank events), and the widest torch decision margin among the changed
    ones (|p_proton - threshold|, or half the top-two gap for argmax): a label can only
    change where that margin is below the largest |dp|."""
    got, ref = read_predictions(pred_csv), read_predictions(ref_csv)
    cols = [c for c in ref if c.startswith("p_")]
    p, q = np.stack([got[c] for c in cols], 1), np.stack([ref[c] for c in cols], 1)
    live = ~np.isnan(q).any(axis=1)
    changed = live & (got["label"] != ref["label"])
    if threshold is None:
        top = np.sort(np.nan_to_num(q), axis=1)
        margin = (top[:, -1] - top[:, -2]) / 2
    else:
        margin = np.abs(np.nan_to_num(q[:, 0]) - threshold)
    return {
        "max_abs_dp": round(float(np.abs(p[live] - q[live]).max()), 4) if live.any() else 0.0,
        "labels_changed": int(changed.sum()),
        "events_not_blank": int(live.sum()),
        "max_margin_changed": round(float(margin[changed].max()), 4) if changed.any() else None,
    }


def stage_profile(run_dir: Path, exports: dict[str, Path], files: list[Path]) -> dict:
    """CPU seconds per event of each stage, one pass, batches of 256, one thread."""
    trained = load_predictor(run_dir, device="cpu")
    config = model_config(trained.info)
    cpu = time.process_time
    t = cpu()
    batches = []
    for path in files:
        with open_events(path, charge=config.charge_column, point_labels=False) as reader:
            events = list(reader.iter_events())
        for i in range(0, len(events), 256):
            part = events[i : i + 256]
            counts = np.array([e.points.shape[0] for e in part])
            batches.append((np.concatenate([e.points[:, :4] for e in part]), counts))
    n = sum(len(c) for _, c in batches)
    out = {"read": (cpu() - t) / n}
    t = cpu()
    cleaned = [clean_points(p, c, config) for p, c in batches]
    out["denoise"] = (cpu() - t) / n
    t = cpu()
    images = np.concatenate([_project(p, c, config).images for p, c in cleaned])
    out["project"] = (cpu() - t) / n
    for label, engine, precision, key in ENGINES:
        model = load_predictor(exports[key] if key else run_dir, device="cpu", engine=engine)
        model.predict_proba(images[:256], precision=precision)  # warm-up
        t = cpu()
        proba = model.predict_proba(images, precision=precision)
        out[f"infer {label}"] = (cpu() - t) / n
    tmp = run_dir.parent / "profile.csv"
    t = cpu()
    with PredictionWriter(tmp, trained.info.output_names) as writer:
        ids = np.arange(len(proba))
        for i in range(0, len(proba), 256):
            writer.append(ids[i : i + 256] * 0, ids[i : i + 256], proba[i : i + 256])
        writer.commit()
    out["write"] = (cpu() - t) / n
    return {k: round(v * 1e6, 1) for k, v in out.items()}  # microseconds


def export_run(name: str, run_dir: Path, work: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of the run (the original stays untouched) with static and dynamic exports."""
    copy = work / "runs" / name
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    for f in ("model.json", "model.safetensors", "config.yaml"):
        if (run_dir / f).exists():
            shutil.copy2(run_dir / f, copy / f)
    exports = {}
    for mode in ("static", "dynamic"):
        out = copy / "onnx" if mode == "static" else work / "exports" / f"{name}_dynamic"
        summary = export_onnx(copy, out, int8=mode, seed=0)
        exports[mode] = out
        int8 = summary.checks.get("int8", {})
        print(
            f"{name}: exported fp32 + int8 {mode} (calibration/check sample: max |dp| int8 "
            f"{int8.get('max_abs_diff_p', float('nan')):.3f}, "
            f"{int8.get('labels_changed', '?')} labels changed of {int8.get('n_events', '?')})"
        )
    return copy, exports


def plot_pareto(results: list[dict], path: Path, cores: int) -> None:
    """Events/s (CPU-time based) against proton F1: colour = engine, marker = model; the
    dashed line joins the Pareto front (no other point is both faster and more accurate)."""
    from attpc_classify.plots import figure, save

    fig, axes = figure(6.4, 4.2)
    ax = axes[0, 0]
    engines = [e[0] for e in ENGINES]
    models = list(dict.fromkeys(r["model"] for r in results))
    for r in results:
        ax.scatter(r["proton_f1"], r["cpu_events_per_s"], s=45, zorder=3,
                   color=f"C{engines.index(r['engine'])}",
                   marker="osD^v"[models.index(r["model"]) % 5])  # fmt: skip
    front, best = [], -1.0
    for r in sorted(results, key=lambda r: (-r["cpu_events_per_s"], -r["proton_f1"])):
        if r["proton_f1"] > best:  # more accurate than every faster point
            front.append(r)
            best = r["proton_f1"]
    front.sort(key=lambda r: r["proton_f1"])
    ax.plot([r["proton_f1"] for r in front], [r["cpu_events_per_s"] for r in front], "k--",
            lw=0.8, label="Pareto front")  # fmt: skip
    ax.axhline(1000, color="grey", lw=0.6, ls=":", label="1,000 events/s")
    for k, e in enumerate(engines):
        ax.scatter([], [], color=f"C{k}", marker="s", label=e)
    for k, m in enumerate(models):
        ax.scatter([], [], color="k", marker="osD^v"[k % 5], facecolors="none", label=m)
    ax.set_xlabel("proton F1 (test files)")
    ax.set_ylabel(f"events/s end to end, {cores} cores (CPU-time based)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, loc="lower center", ncol=2)
    save(fig, path)


def demo_inputs(demo: Path, test_files: int = 3) -> tuple[list[str], list[str]]:
    """The demo's 3-class runs (``NAME=DIR``) and its test run files (the last
    ``test_files`` of ``DIR/sim``, as `attpc_classify.demo.DemoConfig.test_files`)."""
    runs = [f"{m}={demo / 'runs' / f'{m}_multiclass'}" for m in ("cnn", "vit")
            if (demo / "runs" / f"{m}_multiclass" / "model.json").is_file()]  # fmt: skip
    sims = sorted((demo / "sim").glob("run_*.h5"))
    return (runs, [str(p) for p in sims[-test_files:]]) if runs and sims else ([], [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", metavar="NAME=DIR", help="a trained run")
    parser.add_argument("--test", nargs="+", help="labelled point-cloud files or directories")
    parser.add_argument(
        "--demo",
        type=Path,
        default=ROOT / "demo_out",
        help="without --run/--test: the demo's 3-class runs and its held-out run files",
    )
    parser.add_argument("--workers", type=int, default=2, help="classify worker processes")
    parser.add_argument("--cores", type=int, default=2, help="cores the CPU-time rate assumes")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure (best kept)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "classify")
    parser.add_argument("--figure", type=Path, help="Pareto plot (PNG)")
    args = parser.parse_args()

    if not args.run or not args.test:
        args.run, args.test = demo_inputs(args.demo)
        if not args.run:
            print(f"no trained runs: give --run NAME=DIR --test FILE..., or run `make demo` "
                  f"first (looked in {args.demo}); nothing measured")  # fmt: skip
            print(json.dumps({"results": [], "skipped": "no trained runs"}))
            return
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # the profile's ONNX Runtime sessions: one thread
    args.work.mkdir(parents=True, exist_ok=True)
    files = expand_inputs(args.test)
    labels = truth(files)
    n_events = len(labels)
    print(f"{n_events} labelled test events in {len(files)} files; torch {torch.__version__}, "
          f"{args.workers} workers, batch {args.batch_size}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    results, profiles = [], {}
    for spec in args.run:
        name, _, raw = spec.partition("=")
        run_dir, exports = export_run(name, Path(raw), args.work)
        profiles[name] = stage_profile(run_dir, exports, files)
        print(f"{name}: CPU us/event " + ", ".join(f"{k} {v}" for k, v in profiles[name].items()))
        for label, engine, precision, key in ENGINES:
            where = exports[key] if key else run_dir
            trained = load_predictor(where, device="cpu", engine=engine)
            out = args.work / f"pred_{name}_{label.replace(' ', '_')}.csv"
            best_wall, best_cpu = 0.0, 0.0
            for _ in range(args.repeats):
                c0, t0 = cpu_seconds(), time.perf_counter()
                summary = classify_files(
                    trained, files, out, precision=precision, batch_size=args.batch_size,
                    workers=args.workers, engine=engine, device="cpu",
                )  # fmt: skip
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                assert summary.n_events == n_events
                best_wall = max(best_wall, n_events / wall)
                best_cpu = max(best_cpu, args.cores * n_events / cpu)
            f1 = proton_f1(out, labels)
            ref_csv = args.work / f"pred_{name}_torch_fp32.csv"
            agree = agreement(out, ref_csv, trained.info.proton_threshold)
            row = {"model": name, "engine": label, "proton_f1": round(f1, 4),
                   "wall_events_per_s": round(best_wall, 1),
                   "cpu_events_per_s": round(best_cpu, 1),
                   "load_avg_1m": round(os.getloadavg()[0], 2), **agree}  # fmt: skip
            results.append(row)
            print(f"  {label:17s} proton F1 {f1:.4f}   {best_cpu:7,.0f} events/s on "
                  f"{args.cores} cores (CPU time)   {best_wall:7,.0f} events/s wall "
                  f"(load {row['load_avg_1m']}); vs torch fp32: max |dp| "
                  f"{agree['max_abs_dp']}, {agree['labels_changed']} of "
                  f"{agree['events_not_blank']} labels changed (widest margin "
                  f"{agree['max_margin_changed']})")  # fmt: skip
        ref = next(r for r in results if r["model"] == name and r["engine"] == "torch fp32")
        for r in results:
            if r["model"] == name:
                r["f1_minus_torch_fp32"] = round(r["proton_f1"] - ref["proton_f1"], 4)
    if args.figure:
        plot_pareto(results, args.figure, args.cores)
        print(f"wrote {args.figure}")
    summary = {"results": results, "profile_us_per_event": profiles, "events": n_events,
               "workers": args.workers, "cores": args.cores}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
