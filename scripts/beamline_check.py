"""The beam-line mask (``beam_line: ransac``) against the fixed 30 mm cylinder (issue 12).

    .venv/bin/python scripts/beamline_check.py --train exp/sim/rand_elec \
        --out exp/fm_beamline [--cnn cylinder line]

Reuses scripts/feature_model.py (test sets, feature preprocessing with
``structured_noise: rules``, the tree grid chosen on in-simulation validation only,
bootstrap intervals) and scripts/electronics_check.py's demo-size CNN (``--cnn``). One
training simulation (``--train``), preps that differ only in the beam mask
(`VARIANTS`); every test set is preprocessed each way. Adds a knob set with the beam at the top of
e15503b_randomized's ranges (e15503b_nominal, divergence 2.5 deg, spot sigma 6 mm, 4
extra ions, 80 % of them scattered; 200 events, seed 207). By simulation truth (point
label -2 = beam; never used to choose), per mask: the share of beam and of reaction
points each mask leaves, and the beam clusters left off the axis per event. Prints
markdown tables. Nothing is chosen on the stand-in or the knob sets.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import electronics_check as ec
import feature_model as fm

#: the preps compared (features and robust images alike): name -> extra settings; the
#: fixed 30 mm core stays in all
VARIANTS = {
    "cylinder": [],
    "line": ["--set", "beam_line=ransac"],
    "line_start300": ["--set", "beam_line=ransac", "--set", "beam_line_max_start_mm=300"],
    # vertex-aware: each line stops where the first track leaves it
    "line_vertex": ["--set", "beam_line=ransac", "--set", "beam_line_stop_at_vertex=true"],
    # narrower and straighter: fewer forward reaction points taken with the beam
    "line_narrow": [
        "--set",
        "beam_line=ransac",
        "--set",
        "beam_line_max_start_mm=300",
        "--set",
        "beam_line_radius_mm=6",
        "--set",
        "beam_line_max_angle_deg=5",
    ],
}
BEAM_TOP = ["beam.divergence_deg=2.5", "beam.spot_sigma_mm=6.0", "beam_axis.extra_ions=[4,4]",
            "beam_axis.scattered_fraction=0.8"]  # fmt: skip
#: image configs compared by simulation truth: name -> ImageConfig overrides
MASKS = {
    "cylinder 30 mm": {"beam_mask_mm": 30.0},
    "cylinder 30 mm + beam line": {"beam_mask_mm": 30.0, "beam_line": "ransac"},
    "cylinder 30 mm + beam line starting at z <= 300 mm": {
        "beam_mask_mm": 30.0,
        "beam_line": "ransac",
        "beam_line_max_start_mm": 300.0,
    },
    "cylinder 30 mm + narrow beam line (6 mm, 5 deg, z <= 300 mm)": {
        "beam_mask_mm": 30.0,
        "beam_line": "ransac",
        "beam_line_max_start_mm": 300.0,
        "beam_line_radius_mm": 6.0,
        "beam_line_max_angle_deg": 5.0,
    },
    "cylinder 30 mm + beam line stopping at the vertex": {
        "beam_mask_mm": 30.0,
        "beam_line": "ransac",
        "beam_line_stop_at_vertex": True,
    },
    "beam line only": {"beam_line": "ransac"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, required=True, help="e15503b_randomized sim dir")
    ap.add_argument("--sims", type=Path, default=Path("/work/wt/robust/s2r_small/sim"))
    ap.add_argument("--top", type=Path, default=Path("exp/fm_beam/sim/knob_structured_top"))
    ap.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[],
        help="more test sets (simulation dirs, named by their folder)",
    )
    ap.add_argument("--out", type=Path, default=Path("exp/fm_beamline"))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--truth-files", type=int, default=2, help="run files per set for truth")
    ap.add_argument(
        "--cnn",
        nargs="*",
        default=[],
        choices=list(VARIANTS),
        help="also the demo-size CNN (robust inputs) with these variants",
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out.resolve()
    sims = {name: args.sims / name for name in fm.TESTS}
    sims["knob_structured_top"] = args.top
    sims.update({d.name: d for d in args.extra})
    top = out / "sim" / "knob_beam_top"
    fm.sh(["simulate", "--config", "e15503b_nominal", "--events", 200, "--out", top,
           "--seed", 207, "--workers", 1, "--quiet",
           *[a for s in BEAM_TOP for a in ("--set", s)]], top / "run_0000.h5")  # fmt: skip
    sims[top.name] = top
    fm.TESTS[:] = list(sims)  # fit_and_score scores every name in fm.TESTS
    truth = {name: beam_left(sims[name], args.truth_files) for name in ("nominal_test",
             "standin", "knob_beam_top")}  # fmt: skip
    truth["train"] = beam_left(args.train, args.truth_files)
    fits: dict[str, dict] = {}
    for tag, extra in VARIANTS.items():
        prep = [*fm.PREP_CLEAN, *extra]
        data = out / "data" / tag
        data.mkdir(parents=True, exist_ok=True)
        for name in sims:
            dst = data / f"{name}.h5"
            fm.sh(["preprocess", sims[name], "--out", dst, *prep, "--workers", 2, "--quiet"],
                  dst)  # fmt: skip
        run = out / "runs" / tag
        fits[f"trees, {tag}"] = fm.fit_and_score("train", [args.train], data, run, args, prep)
    if args.cnn:
        cnns = {tag: (args.train, [*fm.ROBUST, *VARIANTS[tag]]) for tag in args.cnn}
        fits.update(ec.fit_cnns(args, sims, out, cnns))
    print_tables(fits, truth)
    print("\ncommands:\n" + "\n".join(dict.fromkeys(fm.COMMANDS)))
    return 0


def print_tables(fits: dict[str, dict], truth: dict[str, dict]) -> None:
    names = list(fits)
    print("| test set | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    val = [f"{max(f['val_f1'].values()):.3f}" for f in fits.values()]
    print("| validation macro-F1 (in-sim) | " + " | ".join(val) + " |")
    for name in fm.TESTS:
        cells = []
        for f in fits.values():
            m = f["rows"][name]
            cells.append(f"{fm.fmt(m['proton_f1'])}; {m['macro_f1']['value']:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| simulation | mask | beam points left | reaction points left | "
          "beam clusters / event |")  # fmt: skip
    print("|---|---|---|---|---|")
    for sim, rows in truth.items():
        for mask, (beam, reaction, clusters) in rows.items():
            print(f"| {sim} | {mask} | {beam:.3f} | {reaction:.3f} | {clusters:.2f} |")


def beam_left(sim_dir: Path, n_files: int) -> dict[str, tuple[float, float, float]]:
    """Per mask of `MASKS`, by simulation truth over the first ``n_files`` run files: the
    share of beam points (label -2) and of reaction points (label >= 0) it keeps, and the
    DBSCAN clusters (20 mm, 4 points) of the kept points that are mostly beam, per event.
    Diagnosis only: nothing is chosen on it."""
    import h5py
    import numpy as np

    from data_prep.cluster import dbscan_labels
    from data_prep.images import ImageConfig
    from data_prep.readers import open_events
    from data_prep.sim.physics import BEAM_POINT_LABEL

    configs = {k: ImageConfig(**v) for k, v in MASKS.items()}
    tally = {k: np.zeros(5) for k in MASKS}  # beam kept, beam, reaction kept, reaction, clus
    n_events = 0
    for path in sorted(sim_dir.glob("run_*.h5"))[:n_files]:
        with open_events(path) as reader, h5py.File(path) as f:
            for event in reader.iter_events():
                p = np.asarray(event.points[:, :4], dtype=np.float64)
                origin = f[f"cloud/labels_{event.event_id}"][()]
                for name, cfg in configs.items():
                    keep = np.hypot(p[:, 0], p[:, 1]) >= cfg.beam_mask_mm
                    beam = cfg.beam_points(p, np.array([len(p)]))
                    if beam is not None:
                        keep &= ~beam
                    o = origin[keep]
                    cl = dbscan_labels(p[keep], np.array([int(keep.sum())]), 20.0, 4)
                    beam_cl = sum(np.mean(o[cl == c] == BEAM_POINT_LABEL) > 0.5
                                  for c in np.unique(cl[cl >= 0]))  # fmt: skip
                    tally[name] += [np.sum(o == BEAM_POINT_LABEL),
                                    np.sum(origin == BEAM_POINT_LABEL),
                                    np.sum(o >= 0), np.sum(origin >= 0), beam_cl]  # fmt: skip
                n_events += 1
    return {k: (t[0] / max(t[1], 1), t[2] / max(t[3], 1), t[4] / max(n_events, 1))
            for k, t in tally.items()}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
