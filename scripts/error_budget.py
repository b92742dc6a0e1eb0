"""Where a run's proton F1 is lost on its own validation split, by the simulation's truth.

    .venv/bin/python scripts/error_budget.py RUN TRAIN_FILE SIM_DIR [SIM_DIR ...]
        [--seed 0] [--oracle-gain] [--test] [--knobs]

RUN: a 3-class run trained on TRAIN_FILE (an image file with features, made from the run
files in the SIM_DIRs by `simulate`, so each event has its channel, gain and per-point
truth). The validation split is the one `train` held out (`scripts/validation_scores.py`);
with ``--test`` TRAIN_FILE is a test file instead (a stand-in, say), scored whole.
Printed, as Markdown tables:

* errors per simulated channel (what each channel's wrong calls were);
* elastic protons missed, by how many light-product points show >= 30 mm from the run's
  beam line (a reaction counts as seen from 10: the label's floor);
* pile-ups called proton or carbon, by the points its weaker reaction shows there;
* elastic protons missed and (p,alpha) and fusion-evaporation events called proton, by
  the polar angle of the first track's helix (``t1_helix_cot_polar``): the forward cone
  where protons and alphas overlap;
* fusion-evaporation events called proton, by how many of their products show >= 10
  points there (one light particle and its residue look like an elastic proton);
* the proton F1 on the events whose every reaction shows >= `FLOOR` points there;
* with ``--knobs``: per detector setting the simulation drew (the event table's
  `TABLE_KNOBS` that vary among the scored events), the events in four quarters of its
  values, with the protons missed, the other events called proton and the proton F1 in
  each (`by_knob`): which setting of the randomised detector the errors come from;
* with ``--oracle-gain``: what a known charge scale would be worth (`charge_scales`).
  scikit-learn's trees (one stage, 127 leaves) on the features alone, and plus the
  event's median point charge and the three tracks' charge per mm: in raw ADC (the
  randomised simulation draws the gain per event), with one gain per run file (as a
  real run has) uncalibrated and calibrated on the file's own elastic-proton band, and
  with the simulated gain divided out (a calibration no run has). Scored on a fifth of
  the run files held out.

~2 min for `classify` and ~2 min per 36,000 events of truth on 2 cores;
``--oracle-gain`` ~6 min more (the truth of every event, five fits). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
from proton_misses import centred_events, event_rows, table  # the centring; tables
from validation_scores import called  # classify's call for each event of an image file

from attpc_classify.data import stratified_split
from attpc_classify.metrics import binary_f1
from data_prep.features import BAND_COT, BAND_MIN_TRACKS, CORE_MM
from data_prep.features import BAND_LOG10_INVARIANT as BAND_INVARIANT
from data_prep.sim.config import TABLE_KNOBS

CLASSES = ("proton", "carbon", "other")
SHOWN_BINS = ((0, 20, "0-19"), (20, 40, "20-39"), (40, 80, "40-79"), (80, 10**9, ">= 80"))
# the elastic-proton band a run's charge scale is read on (`charge_scales`) is the
# application's (data_prep.features.BAND_*, `charge_calibration: proton_band`)
FLOOR = 40  # points shown >= 30 mm: below it a reaction is a stub (docs/sim-to-real.md)
SEEN = 10  # points shown >= 30 mm from which the simulation counts a reaction as seen
PRODUCT_BINS = ((0, 1, "0"), (1, 2, "1"), (2, 3, "2"), (3, 10**9, ">= 3"))
COT_BINS = ((-np.inf, 0.0, "< 0 (backward)"), (0.0, 0.5, "0-0.5 (63-90 deg)"),
            (0.5, 2.0, "0.5-2 (27-63 deg)"), (2.0, 4.0, "2-4 (14-27 deg)"),
            (4.0, np.inf, ">= 4 (< 14 deg)"))  # fmt: skip


def truth(sims: list[Path], keep: set[tuple[int, int]]) -> dict[tuple[int, int], dict]:
    """Per kept event: channel, gain factor, median point charge, and the points shown
    >= CORE_MM from the beam line by each reaction's products (2, 3; 12, 13 for the
    second reaction of a pile-up) and by the light product alone."""
    out = {}
    for sim in sims:
        files = {}  # the charges: centred_events gives the points' positions only
        for run, e, row, xyz, lab in centred_events(sim, lambda r: True):
            if (run, e) not in keep:
                continue
            if run not in files:
                files.clear()  # one run file open at a time: the events come file by file
                files[run] = h5py.File(sim / f"run_{run:04d}.h5", "r")
            q = files[run]["cloud"][f"cloud_{e}"][:, 3]
            far = np.hypot(xyz[:, 0], xyz[:, 1]) >= CORE_MM
            out[(run, e)] = {
                "channel": row["channel"].decode(),
                "gain": float(row["gain_factor"]),
                "median_q": float(np.median(q[q > 0])) if (q > 0).any() else np.nan,
                "light": int((far & (lab == 2)).sum()),
                "reactions": [int((far & np.isin(lab, (2 + o, 3 + o))).sum()) for o in (0, 10)],
                "products": products_shown(far, lab),
            }
    return out


def products_shown(far: np.ndarray, lab: np.ndarray) -> int:
    """How many products of the (first) reaction show >= `SEEN` points ``far`` from the
    beam line: labels 2-9 (a fusion-evaporation event's particles, its residue last; the
    preset's `fusion_max_particles` is 8)."""
    return sum(int((far & (lab == p)).sum() >= SEEN) for p in range(2, 10))


def shown(event: dict) -> list[int]:
    """Points each reaction of the event shows >= CORE_MM from the beam line (one or two)."""
    return event["reactions"] if event["channel"] == "pileup" else event["reactions"][:1]


def binned(title: str, what: str, bins, values: list[tuple[float, bool]]) -> str:
    """`proton_misses.table` with events counted, ``what`` flagged."""
    return table(title, bins, values, count="events", what=what)


def knob_values(sims: list[Path], keys: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Per `TABLE_KNOBS` name, its value for each of ``keys`` (run, event), read from the
    event tables of the run files in ``sims``."""
    rows = event_rows(p for sim in sims for p in sorted(sim.glob("run_*.h5")))
    return {k: np.array([float(rows[key][k]) for key in keys]) for k in TABLE_KNOBS}


def by_knob(
    values: np.ndarray, proton: np.ndarray, called_proton: np.ndarray, n_bins: int = 4
) -> list[tuple[str, int, int, int, float]]:
    """(value range, events, protons missed, other events called proton, proton F1) in
    ``n_bins`` quantile bins of ``values`` (fewer where values repeat; each bin holds its
    lower edge, the last also its upper)."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) < 2:
        return []
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        m = index == b
        missed = int((proton[m] & ~called_proton[m]).sum())
        false = int((~proton[m] & called_proton[m]).sum())
        f1 = binary_f1(proton[m], called_proton[m])
        out.append((f"{edges[b]:.3g}-{edges[b + 1]:.3g}", int(m.sum()), missed, false, f1))
    return out


def band_scale(dedx: np.ndarray, runs: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Per event, the median ``dedx`` of its run file's tracks in the elastic-proton
    ``band`` (NaN for a file with fewer than `BAND_MIN_TRACKS`): the run's charge scale."""
    out = np.full(len(runs), np.nan)
    for r in np.unique(runs):
        here, ref = runs == r, band & (runs == r)
        if ref.sum() >= BAND_MIN_TRACKS:
            out[here] = np.median(dedx[ref])
    return out


def charge_scales(x: np.ndarray, y: np.ndarray, runs: np.ndarray, med_q: np.ndarray,
                  gain: np.ndarray, names: tuple[str, ...], seed: int = 0) -> dict:  # fmt: skip
    """Proton F1 / macro-F1 of one-stage trees (the recommended 127 leaves) on the
    features plus the event's charge scale and t1-t3's charge per mm read five ways. The
    simulation draws the gain per event; a real run has one. "One gain per run file"
    multiplies the gain-free charges by a log-uniform 0.3-3 per file (seeded), and
    "calibrated" divides them by the median of the file's first tracks in the
    elastic-proton band (27-63 degrees, where no (p,alpha) alpha reaches, on the elastic
    line). Validation: a fifth of the run files, so no per-file number is shared with
    training."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import f1_score

    col = {n: x[:, names.index(n)] for n in ("t1_helix_cot_polar", "t1_helix_log10_invariant",
                                             "t1_charge_per_mm_rel", "n_tracks")}  # fmt: skip
    per_mm = np.column_stack([x[:, names.index(f"t{k}_charge_per_mm_rel")] for k in (1, 2, 3)])
    rng = np.random.default_rng(seed)
    files = np.unique(runs)
    g_file = dict(zip(files, np.exp(rng.uniform(np.log(0.3), np.log(3.0), len(files))),
                      strict=True))  # fmt: skip
    per_run = med_q / gain * np.array([g_file[r] for r in runs])
    cot, inv = col["t1_helix_cot_polar"], col["t1_helix_log10_invariant"]
    band = ((cot > BAND_COT[0]) & (cot < BAND_COT[1]) & (inv > BAND_INVARIANT[0])
            & (inv < BAND_INVARIANT[1]) & (col["n_tracks"] >= 1))  # fmt: skip
    scales = {"the features": None, "+ raw ADC (the gain drawn per event)": med_q,
              "+ one gain per run file, uncalibrated": per_run,
              "+ one gain per run file, calibrated on its proton band":
                  per_run / band_scale(per_run * col["t1_charge_per_mm_rel"], runs, band),
              "+ gain-free ADC (the simulated gain divided out)": med_q / gain}  # fmt: skip
    val_files = rng.choice(files, len(files) // 5, replace=False)
    va, tr = np.flatnonzero(np.isin(runs, val_files)), np.flatnonzero(~np.isin(runs, val_files))
    out = {}
    for name, scale in scales.items():
        z = x
        if scale is not None:
            z = np.column_stack([x, np.log10(scale), np.log10(scale[:, None] * per_mm)])
        clf = HistGradientBoostingClassifier(learning_rate=0.1, max_leaf_nodes=127, max_iter=300,
                                             class_weight="balanced", random_state=0)  # fmt: skip
        p = clf.fit(z[tr], y[tr]).predict(z[va])
        f1 = f1_score(y[va] == 0, p == 0), f1_score(y[va], p, average="macro")
        out[name] = (round(f1[0], 4), round(f1[1], 4))
        print(f"| {name} | {out[name][0]:.4f} | {out[name][1]:.4f} |", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("train_file", type=Path)
    ap.add_argument("sims", type=Path, nargs="+")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (its split)")
    ap.add_argument("--oracle-gain", action="store_true")
    ap.add_argument("--knobs", action="store_true", help="the errors per detector setting")
    ap.add_argument(
        "--test",
        action="store_true",
        help="TRAIN_FILE is a test file: every event of it, not a validation split",
    )
    args = ap.parse_args()
    with h5py.File(args.train_file, "r") as f:
        y, runs, events = f["label"][()], f["run"][()], f["event_id"][()]
        x = f["features"][()]
        names = tuple(json.loads(f["features"].attrs["feature_names"]))
    calls = called(args.run, args.train_file)
    _, va = stratified_split(y, 0.2, np.random.default_rng(args.seed))
    if args.test:
        va = np.flatnonzero(y >= 0)
    every = list(zip(runs.tolist(), events.tolist(), strict=True))
    keys = [every[i] for i in va]
    # the truth of every event when the charge scales need it, else of the split's
    info = truth(args.sims, set(every) if args.oracle_gain else set(keys))
    call = {every[i]: int(calls[i]) for i in va}
    label = {every[i]: int(y[i]) for i in va}
    # errors per channel
    total, wrong = Counter(), Counter()
    for k in keys:
        c = info[k]["channel"]
        total[c] += 1
        if call[k] != label[k]:
            wrong[c, CLASSES[call[k]]] += 1
    print("| channel | validation events | called wrong |\n|---|---|---|")
    for c in sorted(total):
        got = ", ".join(f"{n} {wrong[c, n]}" for n in CLASSES if wrong[c, n])
        print(f"| {c} | {total[c]} | {got or '-'} |")
    tp = sum(label[k] == 0 and call[k] == 0 for k in keys)
    fn = sum(label[k] == 0 and call[k] != 0 for k in keys)
    fp = sum(label[k] != 0 and call[k] == 0 for k in keys)
    f1 = binary_f1(y[va] == 0, calls[va] == 0)
    print(f"\nprotons {tp + fn}: missed {fn}; false protons {fp}; proton F1 {f1:.4f}\n")
    elastic = [k for k in keys if info[k]["channel"] == "p_elastic"]
    print(binned("elastic proton: light-product points >= 30 mm", "missed", SHOWN_BINS,
                 [(info[k]["light"], call[k] != 0) for k in elastic]), "\n")  # fmt: skip
    pileup = [k for k in keys if info[k]["channel"] == "pileup"]
    print(binned("pile-up: points its weaker reaction shows >= 30 mm", "called proton", SHOWN_BINS,
                 [(min(info[k]["reactions"]), call[k] == 0) for k in pileup]), "\n")  # fmt: skip
    index = {k: i for i, k in enumerate(every)}
    cot = x[:, names.index("t1_helix_cot_polar")]
    forward = (("p_elastic", "missed", lambda k: call[k] != 0),
               ("alpha_43cl", "called proton", lambda k: call[k] == 0),
               ("fusion_evap", "called proton", lambda k: call[k] == 0))  # fmt: skip
    for channel, what, bad in forward:
        ks = [k for k in keys if info[k]["channel"] == channel and np.isfinite(cot[index[k]])]
        print(binned(f"{channel}: t1 cot(polar angle)", what, COT_BINS,
                     [(cot[index[k]], bad(k)) for k in ks]), "\n")  # fmt: skip
    # fusion-evaporation: one light particle and its residue look like an elastic proton
    fusion = [k for k in keys if info[k]["channel"] == "fusion_evap"]
    title = f"fusion_evap: products showing >= {SEEN} points >= 30 mm"
    products = [(info[k]["products"], call[k] == 0) for k in fusion]
    print(binned(title, "called proton", PRODUCT_BINS, products), "\n")
    # the same score on the events above the floor: every reaction shows >= FLOOR points
    clear = np.array([info[k]["channel"] == "noise" or min(shown(info[k])) >= FLOOR
                      for k in keys])  # fmt: skip
    f1_clear = binary_f1(y[va][clear] == 0, calls[va][clear] == 0)
    print(f"proton F1 on the {int(clear.sum())} events whose every reaction shows >= {FLOOR} "
          f"points >= 30 mm (noise events all kept): {f1_clear:.4f}\n")  # fmt: skip
    result = {"proton_f1": round(f1, 4), "missed": fn, "false": fp,
              "proton_f1_above_floor": round(f1_clear, 4),
              "events_above_floor": int(clear.sum())}  # fmt: skip
    if args.knobs:
        proton, said = y[va] == 0, calls[va] == 0
        print("| setting | quarter of its values | events | protons missed "
              "| other called proton | proton F1 |\n|---|---|---|---|---|---|")  # fmt: skip
        result["knobs"] = {}
        for knob, values in knob_values(args.sims, keys).items():
            rows = by_knob(values, proton, said)
            if len(rows) < 2:  # a setting the simulation did not vary
                continue
            result["knobs"][knob] = [round(r[4], 4) for r in rows]
            for span, n, missed, false, f1_bin in rows:
                print(f"| {knob} | {span} | {n} | {missed} | {false} | {f1_bin:.3f} |")
        print()
    if args.oracle_gain:
        med_q = np.array([info[k]["median_q"] for k in every])
        gain = np.array([info[k]["gain"] for k in every])
        print("| one-stage trees (scikit-learn) on | proton F1 | macro-F1 |\n|---|---|---|")
        result["charge_scales"] = charge_scales(x, y, runs, med_q, gain, names, args.seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
