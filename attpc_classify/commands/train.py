"""``attpc-classify train``: train a classifier on an image file.

Examples::

    attpc-classify train --config configs/train/cnn_small.yaml --data sim.h5 --task binary
    attpc-classify train --config configs/train/vit_tiny.yaml --data sim.h5 optim.lr=3e-4
    attpc-classify train --resume runs/vit_tiny optim.epochs=60   # continue, train longer
    torchrun --standalone --nproc_per_node 4 -m attpc_classify.cli train --data sim.h5 ...
                                              # 4 GPUs, DDP (docs/scale-out.md)

Settings: defaults in code <- ``--config`` YAML <- ``key=value`` <- the options below.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig overrides")
    parser.add_argument("--data", help="training image file (data.path)")
    parser.add_argument("--val", help="separate validation image file (data.val_path)")
    parser.add_argument("--task", choices=("binary", "multiclass"), help="data.task")
    parser.add_argument("--out", help="run directory (out); default runs/<model>_<task>")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue the run in RUN from its last epoch, with RUN/config.yaml",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. optim.lr=3e-4")


def resolve_config(args: argparse.Namespace):
    """The TrainConfig of a command line (see the module docstring for precedence)."""
    from attpc_classify.config import from_dict, load_config, merge, parse_overrides, read_yaml
    from attpc_classify.config import to_dict as config_to_dict
    from attpc_classify.train_config import TrainConfig
    from data_prep.errors import InputError

    if args.resume is not None:
        if args.config is not None:
            raise InputError("--resume uses RUN/config.yaml; drop --config")
        saved = read_yaml(args.resume / "config.yaml")
        saved.pop("git_sha", None)
        data = merge(config_to_dict(TrainConfig()), saved)
        data = merge(data, parse_overrides(args.overrides))
        data["out"] = str(args.resume)
    else:
        data = config_to_dict(load_config(TrainConfig, args.config, args.overrides))
    for flag, key in (("data", "path"), ("val", "val_path"), ("task", "task")):
        if getattr(args, flag) is not None:
            data["data"][key] = getattr(args, flag)
    if args.out is not None and args.resume is None:
        data["out"] = args.out
    return from_dict(TrainConfig, data)


def run(args: argparse.Namespace) -> int:
    import math

    from tqdm import tqdm

    from attpc_classify.distributed import env_from_vars
    from attpc_classify.engine import default_out, train_run

    cfg = resolve_config(args)
    # under torchrun only rank 0 shows progress and the result (train_run logs on rank 0)
    main_rank = env_from_vars().is_main
    bar = None
    if not args.quiet and cfg.model.name != "logreg" and main_rank:
        bar = tqdm(unit="img", desc="train", dynamic_ncols=True, leave=False, disable=None)

    def progress(n: int) -> None:
        if bar is not None:
            if bar.total is None and cfg.max_train_images:
                bar.total = cfg.max_train_images
            bar.update(n)

    out = default_out(cfg)
    if main_rank:
        (bar.write if bar is not None else print)(f"run directory {out}")
    try:
        train_run(cfg, resume=args.resume is not None, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    best = out / "model.json"
    if main_rank and best.exists():
        import json

        metrics = json.loads(best.read_text())["metrics"]
        f1 = metrics.get("val_macro_f1")
        shown = "n/a" if f1 is None or math.isnan(f1) else f"{f1:.4f}"
        print(f"{out}: best val macro-F1 {shown}")
    return 0
