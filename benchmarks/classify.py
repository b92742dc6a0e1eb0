"""End-to-end classification throughput: Spyral point-cloud files -> predictions CSV.

Measures events/s of `attpc_classify.predict.classify_files` (read, project with the
model's recorded `ImageConfig`, infer, write) for the small CNN (configs/train/
cnn_small.yaml), ViTs of depth 2, 4 and 6 at the width of configs/train/vit_tiny.yaml (192)
and the demo's ViT (depth 2, width 96), in fp32 and bf16, on ``--threads`` CPU threads
(default 2, the target machine).

The models have random weights: throughput does not depend on what they learned, and
training them first would only make the benchmark slower. They are saved as real run
directories and loaded with `load_run`, the path ``attpc-classify classify`` takes.

The input is simulated (e15503b nominal preset, ~580 points per event), cached under
``--work`` so reruns skip the simulation. Each figure is the best of ``--repeats`` runs
over all events. Also printed: the read + project rate alone and each model's inference
rate alone, to show where the time goes. The last line is one JSON object::

    {"results": [{"model": "vit_d2", "dtype": "bf16", "events_per_s": ...}, ...], ...}

Usage: ``python benchmarks/classify.py [--events 3000] [--threads 2] [--work bench_out/classify]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from attpc_classify.checkpoint import load_run, save_model
from attpc_classify.config import git_sha, load_config, to_dict
from attpc_classify.models import create_model, input_kind, model_args
from attpc_classify.predict import classify_files
from attpc_classify.train_config import TrainConfig
from data_prep.events import CLASS_NAMES
from data_prep.images import ImageConfig, project
from data_prep.readers import open_events
from data_prep.simulate import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[1]
IMAGE_CONFIG = ImageConfig(views=("xy", "zy"), size=64, voxel_grid=0)


def make_input(work: Path, n_events: int, workers: int) -> list[Path]:
    """Simulated Spyral run files (cached: simulate() resumes finished files)."""
    sim = load_config(SimConfig, ROOT / "configs/sim/e15503b_nominal.yaml")
    per_file = -(-n_events // max(1, workers))
    t0 = time.perf_counter()
    summary = simulate(
        sim,
        n_events,
        work / f"sim_{n_events}",  # one directory per size: resume needs the same plan
        seed=0,
        workers=workers,
        events_per_file=per_file,
        resume=True,
    )
    fresh = len(summary.files) - len(summary.resumed)
    points = summary.mean_points
    print(
        f"input: {summary.n_events} simulated events in {len(summary.files)} Spyral files "
        f"({fresh} simulated now, {time.perf_counter() - t0:.1f} s); mean points per event "
        + ", ".join(f"{k} {v:.0f}" for k, v in points.items())
    )
    return list(summary.files)


def make_run(work: Path, name: str, preset: str, overrides: list[str]) -> Path:
    """A run directory holding a random-init model (real files, loaded by load_run)."""
    cfg = load_config(TrainConfig, ROOT / "configs/train" / f"{preset}.yaml", overrides)
    args = model_args(cfg.model, IMAGE_CONFIG, len(CLASS_NAMES))
    torch.manual_seed(0)
    model = create_model(cfg.model.name, args)
    run_dir = work / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": {"name": cfg.model.name, "args": args, "config": to_dict(cfg.model)},
        "image_config": IMAGE_CONFIG.to_dict(),
        "class_names": list(CLASS_NAMES),
        "output_names": list(CLASS_NAMES),
        "task": "multiclass",
        "input": input_kind(cfg.model.name),
        "metrics": {},
        "epoch": 0,
        "git_sha": git_sha(),
    }
    save_model(run_dir, model, meta)
    return run_dir


def read_project_rate(files: list[Path], batch: int = 256) -> float:
    """Events/s of reading and projecting alone (no model)."""
    t0 = time.perf_counter()
    n = 0
    for path in files:
        with open_events(path) as reader:
            events = []
            for event in reader.iter_events():
                events.append(event)
                if len(events) == batch:
                    project(events, IMAGE_CONFIG)
                    n += len(events)
                    events = []
            if events:
                project(events, IMAGE_CONFIG)
                n += len(events)
    return n / (time.perf_counter() - t0)


def inference_rate(run_dir: Path, precision: str, n: int = 1024, batch: int = 256) -> float:
    """Images/s of the model alone on random uint8 images."""
    trained = load_run(run_dir, device="cpu")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 2, 64, 64), dtype=np.uint8)
    trained.predict_proba(images[:batch], precision=precision, batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    trained.predict_proba(images, precision=precision, batch_size=batch)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="simulated input events")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure (best kept)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "classify")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    files = make_input(args.work, args.events, args.workers)
    n_events = 0
    for path in files:
        with open_events(path) as reader:
            n_events += len(reader)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs visible; batch {args.batch_size}; models have random weights"
    )
    rp = read_project_rate(files)
    print(f"read + project alone: {rp:,.0f} events/s")

    vit_overrides = ["model.drop_path=0.0"]
    models = {
        "cnn_small": ("cnn_small", []),
        **{f"vit_d{d}": ("vit_tiny", [*vit_overrides, f"model.depth={d}"]) for d in (2, 4, 6)},
        # the demo's ViT: width 96 instead of 192, about a quarter of the work per event
        "vit_d2_w96": ("vit_tiny", [*vit_overrides, "model.depth=2", "model.width=96"]),
    }
    results = []
    out_csv = args.work / "predictions.csv"
    for name, (preset, overrides) in models.items():
        run_dir = make_run(args.work, name, preset, overrides)
        trained = load_run(run_dir, device="cpu")
        n_params = sum(p.numel() for p in trained.model.parameters())
        for dtype in ("fp32", "bf16"):
            best = 0.0
            for _ in range(args.repeats):
                summary = classify_files(
                    trained, files, out_csv, precision=dtype, batch_size=args.batch_size
                )
                assert summary.n_events == n_events
                best = max(best, summary.events_per_s)
            model_only = inference_rate(run_dir, dtype, batch=args.batch_size)
            print(
                f"{name:10s} {n_params / 1e6:5.2f} M params  {dtype}: end to end "
                f"{best:7,.0f} events/s   (model alone {model_only:7,.0f} images/s)"
            )
            results.append(
                {
                    "model": name,
                    "dtype": dtype,
                    "events_per_s": round(best, 1),
                    "model_only_images_per_s": round(model_only, 1),
                    "params": n_params,
                }
            )
    print(
        json.dumps(
            {
                "results": results,
                "events": n_events,
                "threads": torch.get_num_threads(),
                "read_project_events_per_s": round(rp, 1),
                "random_init": True,
                # other processes on the machine slow every figure down; say how busy it was
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
