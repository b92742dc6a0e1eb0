"""Score every run a demo left in DEMO/runs on other simulated sets (docs/demo.md).

    .venv/bin/python scripts/demo_eval.py DEMO_DIR NAME=SIM_DIR [NAME=SIM_DIR ...]
        [--n-boot 1000]

Each set is preprocessed with the demo's settings (configs/prep/robust.yaml + the demo's
`prep_settings`, 64 x 64 xy + zy) and ``--reference`` the demo's training file, into
DEMO_DIR_eval/NAME.h5 (kept: a rerun only evaluates what is missing), then every run is
evaluated on it (`attpc_classify.evaluate.evaluate_run`, no figures). Printed: a Markdown
table of proton F1 [95 % interval] (binary reading of 3-class runs) and 3-class macro-F1
after the slash, the demo's own test set first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cell(metrics: dict) -> str:
    f1 = metrics["tasks"]["binary"]["per_class"]["proton"]["f1"]
    macro = metrics["tasks"].get("multiclass", {}).get("macro_f1")
    ci = f1.get("ci95")
    text = f"{f1['value']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return text + (f" / {macro['value']:.2f}" if macro else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path)
    ap.add_argument("sets", nargs="+", help="NAME=SIM_DIR")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()

    import torch

    from attpc_classify.demo import DemoConfig
    from attpc_classify.evaluate import evaluate_run

    torch.set_num_threads(1)
    settings = [x for k, v in DemoConfig().prep_settings.items() for x in ("--set", f"{k}={v}")]
    prep = ["--config", "configs/prep/robust.yaml", "--views", "xy,zy", "--size", "64",
            "--set", "voxel_grid=0", *settings]  # fmt: skip
    out = args.demo.parent / (args.demo.name + "_eval")
    out.mkdir(exist_ok=True)
    runs = sorted(p for p in (args.demo / "runs").iterdir() if (p / "model.json").exists())
    table = {"own test (in-simulation)": [
        cell(json.loads((r / "eval/test/metrics.json").read_text())) for r in runs
    ]}  # fmt: skip
    for spec in args.sets:
        name, _, sim = spec.partition("=")
        h5 = out / f"{name}.h5"
        if not h5.exists():
            subprocess.run(
                [sys.executable, "-m", "attpc_classify.cli", "preprocess", sim, "--out", str(h5),
                 *prep, "--reference", str(args.demo / "data/train.h5"), "--workers", "1",
                 "--quiet"], check=True, cwd=ROOT,
            )  # fmt: skip
        cells = []
        for run in runs:
            ev = out / "eval" / run.name / name
            if not (ev / "metrics.json").exists():
                evaluate_run(run, h5, out_dir=ev, n_boot=args.n_boot, figures=False)
            cells.append(cell(json.loads((ev / "metrics.json").read_text())))
        table[name] = cells
    print("| test set | " + " | ".join(r.name for r in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
