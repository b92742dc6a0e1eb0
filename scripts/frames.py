"""A model on runs stored in another frame: the same events turned, mirrored, rotated.

    .venv/bin/python scripts/frames.py RUN SIM_DIR [SIM_DIR ...] --out DIR [--prep YAML]
        [--set KEY=VALUE ...] [--reference TRAINING_IMAGES]

Tools store AT-TPC events in different frames (pytpc: z = 0 at the micromegas, the beam
along -z; the simulation, Spyral and attpc-engine: z = 0 at the window, the beam along
+z; the sign of the field sets which way a track curls). For each simulated run
directory this writes copies of its Spyral-format run files with every point moved by
one of `TRANSFORMS` (in ``DIR/sim``; atomic: a temporary directory renamed when done),
preprocesses them with ``--prep`` and its ``--set`` overrides (default the trees'
features.yaml; give the run's own, e.g. the recommended recipe's ``--set
features=tracks_v7 ...``; the run's beam direction is found per file,
`data_prep.beamaxis.beam_direction`), scores RUN on each with ``attpc-classify
evaluate`` and prints a markdown table: proton F1 and macro-F1 with 95 % intervals, and
how many files preprocessing turned around.
Finished steps are reused. docs/sim-to-real.md, "A run read in another frame".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from data_prep.beamaxis import backward
from data_prep.imagefile import read_info

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]
LENGTH_MM = 1000.0  # the simulation's drift length: z -> L - z keeps z in [0, L]


def _turned(p: np.ndarray) -> None:
    p[:, 1], p[:, 2] = -p[:, 1], LENGTH_MM - p[:, 2]


def _mirrored(p: np.ndarray) -> None:
    p[:, 0] = -p[:, 0]


def _rotated(p: np.ndarray) -> None:
    p[:, 0], p[:, 1] = -p[:, 1].copy(), p[:, 0].copy()


def _z_mirrored(p: np.ndarray) -> None:
    p[:, 2] = LENGTH_MM - p[:, 2]


#: name -> (what it is, the in-place change of an (N, 3+) array of x, y, z)
TRANSFORMS: dict[str, tuple[str, Callable[[np.ndarray], None] | None]] = {
    "as_simulated": ("as simulated", None),
    "turned": ("turned 180 deg about x (pytpc's frame: the beam along -z)", _turned),
    "mirrored": ("x mirrored (the field reversed: every curl the other way)", _mirrored),
    "rotated": ("rotated 90 deg about the beam axis", _rotated),
    "z_mirrored": ("z mirrored alone (beam along -z and curls reversed)", _z_mirrored),
}
HEADER = (
    "| test set | stored | proton F1 [95 %] | macro-F1 [95 %] | files turned around |\n"
    "|---|---|---|---|---|"
)


def transformed_copy(src: Path, dst: Path, change: Callable[[np.ndarray], None]) -> Path:
    """``dst``: the Spyral run files of ``src`` with every cloud's x, y, z changed."""
    if dst.exists():
        return dst
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in sorted(src.glob("*.h5")):
        shutil.copyfile(path, tmp / path.name)
        with h5py.File(tmp / path.name, "r+") as f:
            for name, ds in f["cloud"].items():
                if name.startswith("cloud_"):
                    a = ds[...]
                    change(a)
                    ds[...] = a
    tmp.rename(dst)
    return dst


RAN: list[str] = []  # the CLI steps this process ran (not reused)


def _cli(args: list, done: Path) -> None:
    if not done.exists():
        RAN.append(" ".join(map(str, args)))
        subprocess.run([*CLI, *map(str, args)], check=True, cwd=REPO)


def measure(
    run: str,
    sim_dir: str,
    out: str,
    prep: str,
    reference: str | None = None,
    sets: tuple[str, ...] = (),
) -> list[str]:
    """Markdown rows of `HEADER` for one simulated run directory, every `TRANSFORMS`
    (``reference``: the model's training file, for per-run charge normalisation; ``sets``:
    ``KEY=VALUE`` overrides of ``prep``, as `preprocess --set` takes them). The
    copies are preprocessed one by one and scored by one `evaluate` call (the model loads
    once), each into ``RUN/eval/frames/<sim>_<transform>/``."""
    src, out_dir = Path(sim_dir), Path(out)
    datas = {}
    for key, (_, change) in TRANSFORMS.items():
        name = f"{src.name}_{key}"
        sim = src if change is None else transformed_copy(src, out_dir / "sim" / name, change)
        data = out_dir / "data" / f"{name}.h5"
        data.parent.mkdir(parents=True, exist_ok=True)
        extra = ["--reference", reference] if reference else []
        extra += [a for kv in sets for a in ("--set", kv)]
        _cli(["preprocess", sim, "--out", data, "--config", prep, *extra, "--workers", "2",
              "--quiet"], data)  # fmt: skip
        datas[key] = data
    ev = Path(run) / "eval" / "frames"
    last = ev / list(datas.values())[-1].stem / "metrics.json"
    _cli(["evaluate", run, "--data", *datas.values(), "--out", ev, "--n-boot", "1000",
          "--quiet"], last)  # fmt: skip
    rows = []
    for key, (what, _) in TRANSFORMS.items():
        data = datas[key]
        tasks = json.loads((ev / data.stem / "metrics.json").read_text())["tasks"]
        axes = read_info(data).get("beam_axes") or {}
        turned = sum(backward(a) for a in axes.values())
        proton = _cell(tasks["binary"]["per_class"]["proton"]["f1"])
        macro = _cell(tasks["multiclass"]["macro_f1"])
        rows.append(f"| {src.name} | {what} | {proton} | {macro} | {turned} of {len(axes)} |")
    return rows


def _cell(metric: dict) -> str:
    lo, hi = metric["ci95"]
    return f"{metric['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a trained run directory")
    ap.add_argument("sim_dirs", nargs="+", help="simulated run directories (Spyral files)")
    ap.add_argument("--out", required=True, help="directory for the copies and image files")
    ap.add_argument("--prep", default=str(REPO / "configs/prep/features.yaml"))
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of --prep (repeatable)")  # fmt: skip
    ap.add_argument("--reference", help="the model's training image file (charge_norm: "
                    "quantile)")  # fmt: skip
    args = ap.parse_args()
    print(HEADER)
    for d in args.sim_dirs:
        rows = measure(args.run, d, args.out, args.prep, args.reference, tuple(args.sets))
        print("\n".join(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
