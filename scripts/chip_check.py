"""A model on runs whose AGET chips fire as the real electronics wires them.

    .venv/bin/python scripts/chip_check.py RUN FILE [FILE ...] --map CSV --out DIR
        [--rate 0.8] [--seed 0] [--other-runs K]

An AGET chip reads 64 pads; when it fires as a whole, all of them show a hit at one
time. The simulation's chip is 64 consecutive pad ids (docs/simulation.md): on the pad
plane an arc along a ring of pads, 76-540 mm long. A real chip's 64 pads form a compact,
interleaved patch (80-120 mm across for half of the chips, per the detector's map). The
chip-fire rule groups pads as the simulation does unless the run's map is given
(reader option ``pad_electronics``, `--pad-electronics`). This copies the simulated
Spyral run files FILE twice into DIR (atomic: a temporary directory renamed when done),
adding to each event a Poisson(``--rate``) number of chip fires: on the simulation's
chips (``DIR/sim_chips``) and on the chips of the map CSV (``DIR/map_chips``; columns
cobo, asad, aget, aget channel, pad, as Spyral's ``pad_electronics.csv``); each fire's
pads outside the beam pads at one random depth (+-4 mm), amplitudes uniform in 50-400
ADC, the event's label kept. It classifies the originals and the copies with RUN, with
and without the map, and with the chips ``attpc-classify chips`` learns from the map's
copies themselves, from ``--other-runs`` further copies (the same events, fires drawn
again: other events of the run) and from the originals (``DIR/learned_*.csv``), and
prints two markdown tables: what each learning found (against the map), and events
called as without the fires, proton F1 and macro-F1 against the simulation's labels
with 95 % bootstrap intervals.
Run it on files simulated without chip fires (``--set noise.chip_rate=0``), so that
every fire in a copy is one of this script's. docs/sim-to-real.md, "Chip fires on the
real electronics".
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

import h5py
import numpy as np
from formats_check import CLI, ROOT, classify, result_cells, truth  # scripts/ on the path
from spark_check import insert_noise

BEAM_PAD_RADIUS_MM = 20.0  # the beam pads read nothing, as the simulation's
FIRE_ADC = (50.0, 400.0)
FIRE_Z_MM = (50.0, 950.0)
FIRE_Z_SPREAD_MM = 4.0


def map_chips(path: Path) -> list[np.ndarray]:
    """The pads of each chip of an electronics map CSV."""
    from data_prep.padplane import CHIP_PADS, electronics_order

    order = electronics_order(path)
    pads = np.flatnonzero(order >= 0)
    chip = order[pads] // CHIP_PADS
    return [pads[chip == c] for c in np.unique(chip)]


def fire_rows(pads: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spyral point rows (x, y, z, amplitude, integral, pad, time bucket, scale) of one
    chip firing: its pads outside the beam pads, at one random depth."""
    from data_prep.padplane import pad_centres

    xy = pad_centres()
    pads = pads[np.hypot(*xy[pads].T) > BEAM_PAD_RADIUS_MM]
    z = rng.uniform(*FIRE_Z_MM)
    rows = np.zeros((len(pads), 8))
    rows[:, 0:2] = xy[pads]
    rows[:, 2] = z + rng.normal(0.0, FIRE_Z_SPREAD_MM, size=len(pads))
    rows[:, 3] = rng.uniform(*FIRE_ADC, size=len(pads))
    rows[:, 4] = 8.0 * rows[:, 3]  # the pulse's integral, about 8 buckets wide
    rows[:, 5] = pads
    rows[:, 6] = 500.0 - z / 2.0  # time bucket: 2 mm per bucket from the micromegas
    rows[:, 7] = 1.0
    return rows


def add_fires(src: Path, dst: Path, chips: list[np.ndarray], rng, rate: float) -> None:
    """``dst``: the run file ``src`` with Poisson(``rate``) chip fires in each event (the
    simulation's per-point truth -1 for them, the event's label kept)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        group = f["cloud"]
        names = sorted((k for k in group if k.startswith("cloud_")), key=lambda k: int(k[6:]))
        for name in names:
            n = int(rng.poisson(rate))
            if n:
                rows = [fire_rows(chips[rng.integers(len(chips))], rng) for _ in range(n)]
                insert_noise(group, name, np.concatenate(rows))


def learned_stats(path: Path, truth_chip: np.ndarray) -> tuple[int, int, str]:
    """Of a learned map (``attpc-classify chips``): the chips learned, the map's chips
    they found (each learned chip's most common map chip) and the range over learned
    chips of the share of their pads from that chip."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["cobo"] == "0"]
    by_chip: dict[int, list[int]] = {}
    for r in rows:
        by_chip.setdefault(int(r["aget"]), []).append(int(r["pad"]))
    found, shares = set(), []
    for pads in by_chip.values():
        chips, n = np.unique(truth_chip[pads], return_counts=True)
        found.add(int(chips[np.argmax(n)]))
        shares.append(n.max() / len(pads))
    share = f"{min(shares):.0%}-{max(shares):.0%}" if shares else "-"
    return len(by_chip), len(found), share


def learn(files: list[Path], out: Path) -> str:
    """``attpc-classify chips FILES --out OUT``, as a physicist without the map runs it;
    its summary line."""
    done = subprocess.run([*CLI, "chips", *map(str, files), "--out", str(out)], cwd=ROOT,
                          check=True, capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip().splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("files", type=Path, nargs="+", help="simulated Spyral run files")
    ap.add_argument("--map", type=Path, required=True, help="electronics map CSV")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=0.8, help="chip fires per event (mean)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--other-runs", type=int, default=0,
                    help="K further copies, the map's fires drawn again (seeds seed+1.."
                         "seed+K): other events of the run to learn the chips from")  # fmt: skip
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    originals = list(args.files)
    from data_prep.padplane import pad_centres
    from data_prep.sim.randomize import chip_pads

    chips_of_map = map_chips(args.map)
    copies = {"sim_chips": (list(chip_pads("blocks", pad_centres())), args.seed),
              "map_chips": (chips_of_map, args.seed)}  # fmt: skip
    for k in range(1, args.other_runs + 1):
        copies[f"map_chips_{k}"] = (chips_of_map, args.seed + k)
    for name, (chips, seed) in copies.items():
        if not (args.out / name).exists():
            rng = np.random.default_rng(seed)
            tmp = Path(tempfile.mkdtemp(dir=args.out, prefix=f".{name}."))
            for path in originals:
                add_fires(path, tmp / path.name, chips, rng, args.rate)
            tmp.rename(args.out / name)
    labels = truth(originals)
    names = ["proton", "carbon", "other"]
    base = classify(args.run, originals, args.out / "as_simulated.csv")
    if isinstance(base, str):
        raise SystemExit(f"classify of the originals failed: {base}")
    with_map = ("--pad-electronics", str(args.map))

    # the chips learned (attpc-classify chips), as a physicist without the map would: from
    # the fired copies themselves, from other events of the run, from events without fires
    truth_chip = np.full(len(pad_centres()), -1)
    for i, pads in enumerate(chips_of_map):
        truth_chip[pads] = i
    sets = {"the fired events classified below": [args.out / "map_chips" / p.name
                                                  for p in originals]}  # fmt: skip
    for k in sorted({1, 2, 4, args.other_runs} & set(range(1, args.other_runs + 1))):
        sets[f"{k * len(labels):,} other fired events"] = [
            args.out / f"map_chips_{j}" / p.name for j in range(1, k + 1) for p in originals
        ]
    sets["the same events without chip fires"] = originals
    learned: dict[str, Path] = {}
    stats = ["| learned from | `attpc-classify chips` says | chips | the map's chips found "
             "| pads of a learned chip from its map chip |", "|---|---|---|---|---|"]  # fmt: skip
    for i, (name, files) in enumerate(sets.items()):
        learned[name] = args.out / f"learned_{i}.csv"
        said = learn(files, learned[name])
        n, found, share = learned_stats(learned[name], truth_chip)
        stats.append(f"| {name} | {said.split(' -> ')[0]} | {n} | {found} of "
                     f"{len(chips_of_map)} | {share} |")  # fmt: skip

    lines = [
        "| chip fires | map given | events | called as without the fires | proton F1 [95 %] "
        "| macro-F1 [95 %] |",
        "|---|---|---|---|---|---|",
    ]
    mine = ("--pad-electronics", str(learned["the fired events classified below"]))
    runs = [("none", "no", originals, ()), ("none", "yes", originals, with_map),
            ("simulation's chips (64 consecutive ids)", "no", "sim_chips", ()),
            ("the map's chips", "no", "map_chips", ()),
            ("the map's chips", "yes", "map_chips", with_map),
            ("the map's chips", "learned from these files", "map_chips", mine)]  # fmt: skip
    if args.other_runs:
        name = f"{len(labels):,} other fired events"
        other = ("--pad-electronics", str(learned[name]))
        runs += [("the map's chips", f"learned from {name}", "map_chips", other),
                 ("none", f"learned from {name}", originals, other)]  # fmt: skip
    for i, (fires, given, files, extra) in enumerate(runs):
        if isinstance(files, str):
            files = [args.out / files / p.name for p in originals]
        rows = classify(args.run, files, args.out / f"run{i}.csv", extra)
        cells = result_cells(rows, base, labels, names, args.seed)
        lines.append(f"| {fires} | {given} | {cells} |")
    print("\n".join([*stats, "", *lines]))


if __name__ == "__main__":
    main()
