"""Active learning measured: proton F1 after N labels chosen by ``uncertain`` vs ``random``.

    .venv/bin/python scripts/active_learning.py --train-sim SIM_A --pool-sim SIM_B... --out OUT
        [--budgets 100,250,500] [--test-files 4] [--seeds 0] [--epochs 10] [--base-epochs 15]
        [--lr 0.0005]

The loop of docs/labelling.md, with a simulation's hidden labels playing the person:

1. a base model is trained on ``--train-sim`` (e.g. ``e15503b_randomized``);
2. the last ``--test-files`` run files (by name) of ``--pool-sim`` (e.g.
   ``e15503b_standin``) are the test set; the others are the pool of "real" events;
3. for each strategy and budget N (ascending): the current model ranks the unlabelled
   pool (`attpc_classify.label.ranking.order`, as ``label --order`` does; ``uncertain``
   keeps its default 20 % random share), the next events are "labelled" with their
   hidden labels through the real labels writer (`LabelStore`), the labels are joined
   into an image file (`apply_labels`, = ``label --write-images``), the base model is
   fine-tuned on all N labels (``train model.init=run:BASE``) and the result is scored on
   the test set (``evaluate``: proton vs rest F1 with a bootstrap interval);
4. ``OUT/results.json``, ``OUT/results.md`` (table) and ``OUT/active_learning.png``.

Every stage goes through the command line (``preprocess``, ``train``, ``evaluate``) with
fixed seeds; torch uses 2 threads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from attpc_classify.cli import main
from attpc_classify.label import ranking
from attpc_classify.label.store import LabelStore, apply_labels
from data_prep.events import CLASS_NAMES
from data_prep.imagefile import read_images

PREP = ["--views", "xy,zy,zx", "--size", "64", "--set", "voxel_grid=0"]
STRATEGIES = ("uncertain", "random")


def cli(*args: object) -> None:
    rc = main([str(a) for a in args])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): attpc-classify {' '.join(map(str, args))}")


def proton_f1(run: Path, test: Path) -> dict[str, float]:
    """Proton-vs-rest F1 of ``run`` on ``test`` with its 95 % bootstrap interval."""
    out = run / "eval" / test.stem
    cli("evaluate", run, "--data", test, "--n-boot", 500, "--no-figures", "--out", out)
    m = json.loads((out / "metrics.json").read_text())["tasks"]["binary"]["per_class"]["proton"]
    low, high = m["f1"]["ci95"]
    return {"f1": m["f1"]["value"], "low": low, "high": high}


def train(
    data: Path, out: Path, epochs: int, seed: int, init: Path | None = None, lr: float = 0.0
) -> Path:
    if not (out / "model.json").exists():
        extra = [f"model.init=run:{init}"] if init else []
        extra += [f"optim.lr={lr}"] if lr else []
        cli("train", "--config", "configs/train/cnn_small.yaml", "--data", data, "--out", out,
            "--task", "multiclass", "--quiet", f"optim.epochs={epochs}", f"seed={seed}",
            "optim.patience=100", "model.width=16", *extra)  # fmt: skip
    return out


def main_(argv: list[str] | None = None) -> None:
    import torch

    torch.set_num_threads(2)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-sim", type=Path, required=True)
    p.add_argument("--pool-sim", type=Path, nargs="+", required=True, help="run-file dirs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budgets", default="100,250,500")
    p.add_argument("--test-files", type=int, default=4)
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    p.add_argument("--base-epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=0.0, help="fine-tuning lr (0: the config's)")
    args = p.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    files = sorted(f for d in args.pool_sim for f in d.glob("run_*.h5"))
    pool_files, test_files = files[: -args.test_files], files[-args.test_files :]
    train_h5, pool_h5, test_h5 = out / "train.h5", out / "pool.h5", out / "test.h5"
    for dest, inputs in ((train_h5, [args.train_sim]), (pool_h5, pool_files),
                         (test_h5, test_files)):  # fmt: skip
        if not dest.exists():
            cli("preprocess", *inputs, "--out", dest, *PREP, "--workers", 1)

    base = train(train_h5, out / "runs" / "base", args.base_epochs, 0)
    pool = read_images(pool_h5)  # the hidden labels: the "person"
    if max(budgets) > len(pool):
        raise SystemExit(f"the pool holds {len(pool)} events, fewer than {max(budgets)}")
    results = {"base": proton_f1(base, test_h5), "n_pool": len(pool), "n_test": 0, "runs": []}
    results["n_test"] = len(read_images(test_h5))
    results["settings"] = {k: str(v) for k, v in vars(args).items()}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for strategy in STRATEGIES:
            labels = out / f"labels_{strategy}_s{seed}.csv"
            labels.unlink(missing_ok=True)
            store = LabelStore(labels, CLASS_NAMES, f"simulation-{strategy}")
            model, chosen = base, np.zeros(len(pool), dtype=bool)
            for n in budgets:
                from attpc_classify.checkpoint import load_run

                proba = load_run(model, device="cpu").predict_proba(pool.images)
                queue = ranking.order(np.flatnonzero(~chosen), strategy, proba=proba,
                                      seed=seed + n)  # fmt: skip
                for i in queue[: n - int(chosen.sum())]:
                    store.set(int(pool.run[i]), int(pool.event_id[i]), CLASS_NAMES[pool.label[i]])
                    chosen[i] = True
                data = out / f"labelled_{strategy}_s{seed}_{n}.h5"
                apply_labels(pool_h5, labels, data)
                model = train(data, out / "runs" / f"{strategy}_s{seed}_{n}", args.epochs, seed,
                              init=base, lr=args.lr)  # fmt: skip
                row = {"strategy": strategy, "seed": seed, "labels": n, **proton_f1(model, test_h5)}
                row["labelled_protons"] = int((pool.label[chosen] == 0).sum())
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    write_table(results, out / "results.md")
    plot(results, out / "active_learning.png")


def write_table(results: dict, path: Path) -> None:
    lines = ["| labels | strategy | seed | proton F1 [95 % interval] | protons among labels |",
             "|---|---|---|---|---|"]  # fmt: skip
    b = results["base"]
    lines.append(f"| 0 | base model | - | {b['f1']:.3f} [{b['low']:.3f}, {b['high']:.3f}] | - |")
    for r in sorted(results["runs"], key=lambda r: (r["labels"], r["strategy"], r["seed"])):
        lines.append(f"| {r['labels']} | {r['strategy']} | {r['seed']} | {r['f1']:.3f} "
                     f"[{r['low']:.3f}, {r['high']:.3f}] | {r['labelled_protons']} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy, colour in zip(STRATEGIES, ("C0", "C1"), strict=True):
        rows = [r for r in results["runs"] if r["strategy"] == strategy]
        ns = sorted({r["labels"] for r in rows})
        f1 = [np.mean([r["f1"] for r in rows if r["labels"] == n]) for n in ns]
        lo = [np.mean([r["low"] for r in rows if r["labels"] == n]) for n in ns]
        hi = [np.mean([r["high"] for r in rows if r["labels"] == n]) for n in ns]
        ax.plot(ns, f1, "o-", color=colour, label=f"{strategy} (mean over seeds)")
        ax.plot([r["labels"] for r in rows], [r["f1"] for r in rows], "x", color=colour, ms=5)
        ax.fill_between(ns, lo, hi, color=colour, alpha=0.2)
    ax.axhline(results["base"]["f1"], color="grey", ls="--", label="base (0 labels)")
    ax.set_xlabel("labelled events")
    ax.set_ylabel("proton F1 on the test set (x: one seed)")
    ax.legend()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main_()
