"""Each robust input option on its own: the demo CNN trained on the nominal simulation,
tested on three detectors it never saw. Prints one line per variant.

Data (run first; the README's numbers used the simulator of commit 939396c)::

    A=.venv/bin/attpc-classify
    $A simulate --config e15503b_nominal --events 1000 --out exp/sim/nominal --seed 0 --workers 2
    $A simulate --config e15503b_shifted --events 400 --out exp/sim/shifted --seed 5 \
        --workers 2 --first-run 100
    $A simulate --config e15503b_nominal --events 400 --out exp/sim/noisy_lowgain --seed 6 \
        --workers 2 --first-run 200 --set noise.hits_per_event=[150,400] \
        --set detector.mpgd_gain=4000 --set electronics.adc_threshold=15
    $A simulate --config e15503b_shifted --events 400 --out exp/sim/noisy_highgain --seed 7 \
        --workers 2 --first-run 300 --set noise.hits_per_event=[150,400] \
        --set detector.mpgd_gain=30000 --set electronics.adc_threshold=60 \
        --set noise.amplitude_adc=150

    .venv/bin/python scripts/robust_inputs.py [VARIANT ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

A = ".venv/bin/attpc-classify"
ROBUST = ["pixel_values=sum,occupancy", "charge_norm=event", "denoise=dbscan"]
#: variant -> (preprocess --set options, train overrides)
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "base": ([], []),
    "occupancy": (["pixel_values=sum,occupancy"], []),
    "occupancy_only": (["pixel_values=occupancy"], []),
    "event_norm": (["charge_norm=event"], []),
    "dbscan": (["denoise=dbscan"], []),
    "robust": (ROBUST, []),
    "robust_max": (["pixel_values=max,occupancy", "charge_norm=event", "denoise=dbscan"], []),
    "robust_augment": (ROBUST, ["data.detector_augment=true"]),
}
SETS = ["nominal", "shifted", "noisy_lowgain", "noisy_highgain"]


def sh(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(names: list[str]) -> None:
    for name in names or list(VARIANTS):
        prep, train = VARIANTS[name]
        d = Path("exp/v") / name
        d.mkdir(parents=True, exist_ok=True)
        sets = {s: d / f"{s}.h5" for s in SETS}
        for s, out in sets.items():
            if not out.exists():
                opts = [x for o in ["voxel_grid=0", *prep] for x in ("--set", o)]
                sh([A, "preprocess", f"exp/sim/{s}", "--out", str(out), "--views", "xy,zy",
                    "--size", "64", "--workers", "1", *opts])  # fmt: skip
        run = d / "run"
        if not (run / "model.json").exists():
            sh([A, "train", "--config", "configs/train/cnn_small.yaml", "--data",
                str(sets["nominal"]), "--out", str(run), "model.width=16", "optim.epochs=10",
                "optim.batch_size=32", "optim.patience=0", "device=cpu", *train])  # fmt: skip
        cells = [name]
        for s in SETS[1:]:
            ev = run / "eval" / s
            if not (ev / "metrics.json").exists():
                sh([A, "evaluate", str(run), "--data", str(sets[s]), "--out", str(ev),
                    "--n-boot", "200", "--no-figures", "--quiet"])  # fmt: skip
            m = json.loads((ev / "metrics.json").read_text())["tasks"]
            pf = m["binary"]["per_class"]["proton"]["f1"]["value"]
            mf = m["multiclass"]["macro_f1"]["value"]
            auc = m["binary"]["roc_auc"]["value"]
            cells.append(f"{s}: proton F1 {pf:.3f} macro-F1 {mf:.3f} AUC {auc:.3f}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
