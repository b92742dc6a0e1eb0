"""Trees trained with and without the per-file electronics knobs (issue 12), scored alike.

    .venv/bin/python scripts/electronics_check.py --before exp/sim/rand_beam \
        --after exp/sim/rand_elec --out exp/fm_elec

Reuses scripts/feature_model.py: the same test sets (``--sims``: nominal_test, standin,
knob_*; ``--top``: the structured-noise top set), the same feature preprocessing without
and with ``structured_noise: rules``, the same grid chosen on in-simulation validation
only, and its bootstrap intervals. It adds two knob sets: e15503b_nominal at 69 and at
1014 ns shaping (200 events each). ``--before`` and ``--after`` are two e15503b_randomized
simulations of one size and seed, before and after
``randomize.point_formation`` / ``randomize.shaping_time_ns`` were drawn per run file.
``--cnn`` adds the demo-size CNN (configs/train/cnn_small.yaml, width 16, robust inputs)
trained the same two ways. Prints a markdown table (proton F1 of the binary task with its
95 % interval, macro-F1). Nothing is chosen on the stand-in or the knob sets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import feature_model as fm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--sims", type=Path, default=Path("/work/wt/robust/s2r_small/sim"))
    ap.add_argument("--top", type=Path, default=Path("exp/fm_beam/sim/knob_structured_top"))
    ap.add_argument("--out", type=Path, default=Path("exp/fm_elec"))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--cnn", action="store_true", help="also the demo-size CNN, robust inputs")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out.resolve()
    sims = {name: args.sims / name for name in fm.TESTS}
    sims["knob_structured_top"] = args.top
    # e15503b_nominal at the shortest and longest shaping time of e15503b_randomized (the
    # knob sets of scripts/sim_extremes.py, 200 events as the other knob sets)
    for tau, seed in ((69, 205), (1014, 206)):
        dst = out / "sim" / f"knob_shaping_{tau}ns"
        fm.sh(["simulate", "--config", "e15503b_nominal", "--events", 200, "--out", dst,
               "--seed", seed, "--workers", 1, "--quiet", "--set",
               f"randomize.shaping_time_ns=[{tau}]"], dst / "run_0001.h5")  # fmt: skip
        sims[dst.name] = dst
    tests = list(sims)
    fm.TESTS[:] = tests  # fit_and_score scores every name in fm.TESTS
    preps = {"": fm.PREP, " + cleaning": fm.PREP_CLEAN}
    fits: dict[str, dict] = {}
    for suffix, prep in preps.items():
        data = out / ("data_clean" if suffix else "data")
        data.mkdir(parents=True, exist_ok=True)
        for name in tests:
            dst = data / f"{name}.h5"
            fm.sh(["preprocess", sims[name], "--out", dst, *prep, "--workers", 2, "--quiet"],
                  dst)  # fmt: skip
        for stem, sim in (("before", args.before), ("after", args.after)):
            run = out / "runs" / f"{stem}{'_clean' if suffix else ''}"
            fits[stem + suffix] = fm.fit_and_score(stem, [sim], data, run, args, prep)
    if args.cnn:
        fits.update(fit_cnns(args, sims, out))
    names = list(fits)
    print("| test set | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    val = [f"{max(f['val_f1'].values()):.3f}" for f in fits.values()]
    print("| validation macro-F1 (in-sim, own set) | " + " | ".join(val) + " |")
    for name in tests:
        cells = []
        for f in fits.values():
            m = f["rows"][name]
            cells.append(f"{fm.fmt(m['proton_f1'])}; {m['macro_f1']['value']:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\ncommands:\n" + "\n".join(dict.fromkeys(fm.COMMANDS)))
    return 0


def fit_cnns(
    args, sims: dict[str, Path], out: Path, trainings: dict[str, tuple[Path, list]] | None = None
) -> dict[str, dict]:
    """The small CNN of docs/sim-to-real.md (feature_model's settings, robust inputs, no
    cleaning) trained on each simulation and scored on every test set, each test set
    preprocessed with that training file as ``--reference`` (its charge quantiles).
    ``trainings``: name -> (simulation, prep arguments); default ``--before`` and
    ``--after`` with the robust prep."""
    data = out / "robust"
    data.mkdir(parents=True, exist_ok=True)
    fits = {}
    if trainings is None:
        trainings = {"before": (args.before, fm.ROBUST), "after": (args.after, fm.ROBUST)}
    for stem, (sim, prep) in trainings.items():
        train = data / f"{stem}.h5"
        fm.sh(["preprocess", sim, "--out", train, *prep, "--workers", 2, "--quiet"], train)
        run = out / "runs" / f"cnn_{stem}"
        fm.sh(["train", *fm.CNN, "--data", train, "--out", run], run / "model.json")
        rows = fm.score_on_tests(run, sims, prep, train, data / stem, run / "eval", args.n_boot)
        val = json.loads((run / "model.json").read_text())["metrics"]["val_macro_f1"]
        fits[f"CNN {stem}"] = {"rows": rows, "val_f1": {"cnn": val}}
    return fits


if __name__ == "__main__":
    raise SystemExit(main())
