"""Fine-tune one MM-LG descendant of a finished benchmark run and print its predictions.

Diagnoses the pad-plane-only descendant (`mmlg_xy`) of ``configs/benchmark/mmlg_pilot.yaml``:
after every epoch, the predicted class counts on the target test set and the accuracy.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmlg_xy_finetune.py bench_mmlg \\
        --lr 5e-4 --balance weights --views xy --n 250 --depth 2 --epochs 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import learngene
from attpc_classify.data import as_float
from attpc_classify.engine import fit
from attpc_classify.train_config import DataConfig, OptimConfig, TrainConfig
from attpc_classify.transfer.grid import train_subset
from data_prep.imagefile import read_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a benchmark output directory with an mmlg learngene")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--balance", default="weights", help="weights | sampler | none")
    ap.add_argument("--views", default="xy", help="comma-separated, or 'all'")
    ap.add_argument("--n", type=int, default=250, help="labelled target events")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cache = a.out / "cache"
    pool = read_images(next(cache.glob("images_target_train-*")) / "images.h5")
    test = read_images(next(cache.glob("images_target_test-*")) / "images.h5")
    train = train_subset(pool, a.n, a.seed, 2)  # data seed: the pilot's target_train.seed
    x, y = as_float(torch.from_numpy(test.images)), test.label
    views = None if a.views == "all" else a.views.split(",")
    gene = learngene.load_learngene(a.out / "learngenes" / "mmlg")
    model = learngene.build_descendant(gene, a.depth, 3, views=views, seed=a.seed)

    def on_epoch(epoch: int, model: torch.nn.Module, record: dict) -> None:
        model.eval()
        with torch.no_grad():
            pred = model(x).argmax(1).numpy()
        counts = np.bincount(pred, minlength=3).tolist()
        print(f"epoch {epoch}: predicted {counts} (proton, carbon, other), "
              f"accuracy {(pred == y).mean():.3f}", flush=True)  # fmt: skip

    optim = OptimConfig(
        lr=a.lr, epochs=a.epochs, warmup_epochs=1, batch_size=32, patience=0, balance=a.balance
    )
    cfg = TrainConfig(
        optim=optim,
        data=DataConfig(task="multiclass", augment="rotate"),
        seed=a.seed,
        device="cpu",
        precision="fp32",
    )
    print(f"test set: {np.bincount(y, minlength=3).tolist()} (proton, carbon, other)")
    fit(model, train, None, cfg, task="multiclass", out_dir=None, on_epoch=on_epoch)


if __name__ == "__main__":
    main()
