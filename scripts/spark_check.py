"""A model on events that hold a spark: what does it call them, and how fast?

    .venv/bin/python scripts/spark_check.py RUN SIM_DIR --out DIR [--files 5]
        [--fraction 0.1] [--radius 60 275] [--seed 0]
    .venv/bin/python scripts/spark_check.py --scan SIM_DIR [SIM_DIR ...]

The simulation has no sparks (docs/simulation.md, "Not modelled"). In the detector a
discharge of the micromegas fires a whole region of the pad plane at once, near
saturation, and the event is junk ("other"). This script copies the first ``--files`` run
files of SIM_DIR (Spyral format, our simulation's) into ``DIR/spark`` with one spark
added to a seeded ``--fraction`` of the events (`spark_rows`: every pad outside the beam
pads within a disk of radius 60-275 mm about a point of the pad plane, at one drift depth
with a few mm of spread, amplitudes uniform in 1,500-4,095 ADC; labelled "other"),
classifies
the originals and the copies with RUN (`attpc-classify classify`, the model's own
preprocessing of raw files) and prints a markdown table: events called proton, carbon,
other and empty, how many spark events get the call of the same event without the spark,
and the classify rate. With ``structured_noise: rules`` the cleaning's spark rule drops
the spark (`data_prep.structured.spark_mask`). docs/sim-to-real.md, "Events with a
spark".

``--scan`` reads every event of each simulated run directory and prints, per directory,
the most inner cells of any z slab of any event (`data_prep.structured.spark_cells`, what
the spark rule compares with ``spark_min_cells``) and how many events the rule would
clean: that it leaves simulated events alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]
#: radius of the beam pads [mm]: a spark there reads nothing, as the simulation's beam pads
BEAM_PAD_RADIUS_MM = 20.0
SPARK_RADIUS_MM = (60.0, 275.0)
SPARK_ADC = (1500.0, 4095.0)
SPARK_Z_MM = (50.0, 950.0)
SPARK_Z_SPREAD_MM = 4.0


def spark_rows(
    pad_xy: np.ndarray,
    rng: np.random.Generator,
    radius_mm: tuple[float, float] = SPARK_RADIUS_MM,
) -> np.ndarray:
    """Spyral point rows (x, y, z, amplitude, integral, pad, time bucket, scale) of one
    spark: the pads of ``pad_xy`` (pad id = row) outside the beam pads within a disk of
    random centre and radius, at one random depth."""
    centre = rng.uniform(-150.0, 150.0, 2)
    radius = rng.uniform(*radius_mm)
    inside = np.hypot(*(pad_xy - centre).T) < radius
    pads = np.flatnonzero(inside & (np.hypot(*pad_xy.T) > BEAM_PAD_RADIUS_MM))
    z = rng.uniform(*SPARK_Z_MM)
    amplitude = rng.uniform(*SPARK_ADC, size=len(pads))
    rows = np.zeros((len(pads), 8))
    rows[:, 0:2] = pad_xy[pads]
    rows[:, 2] = z + rng.normal(0.0, SPARK_Z_SPREAD_MM, size=len(pads))
    rows[:, 3] = amplitude
    rows[:, 4] = 8.0 * amplitude  # the pulse's integral, about 8 buckets wide
    rows[:, 5] = pads
    rows[:, 6] = 500.0 - z / 2.0  # time bucket: 2 mm per bucket from the micromegas
    rows[:, 7] = 1.0
    return rows


def insert_noise(group, name: str, rows: np.ndarray):
    """Put the noise ``rows`` into the Spyral cloud ``group[name]``: the cloud rewritten
    sorted in z (as Spyral's), its attributes kept, and the simulation's per-point truth
    ``labels_<n>``, where there is one, -1 for the new points. Returns the new dataset."""
    points = group[name][...].reshape(-1, 8)
    attrs = dict(group[name].attrs)
    order = np.argsort(np.concatenate([points[:, 2], rows[:, 2]]), kind="stable")
    labels_name = "labels_" + name.split("_", 1)[1]
    if labels_name in group:
        labels = group[labels_name][...]
        labels = np.concatenate([labels, np.full(len(rows), -1, labels.dtype)])
        del group[labels_name]
        group.create_dataset(labels_name, data=labels[order])
    del group[name]
    cloud = group.create_dataset(name, data=np.concatenate([points, rows])[order])
    for key, value in attrs.items():
        cloud.attrs[key] = value
    return cloud


def add_sparks(
    src: Path,
    dst: Path,
    pad_xy: np.ndarray,
    rng: np.random.Generator,
    fraction: float,
    radius_mm: tuple[float, float] = SPARK_RADIUS_MM,
) -> list[int]:
    """``dst``: the run file ``src`` with one spark in a random ``fraction`` of its events
    (labelled other); returns their event ids."""
    shutil.copy(src, dst)
    chosen = []
    with h5py.File(dst, "r+") as f:
        group = f["cloud"]
        names = sorted((k for k in group if k.startswith("cloud_")), key=lambda k: int(k[6:]))
        for name in names:
            if rng.uniform() >= fraction:
                continue
            chosen.append(int(name[6:]))  # the event id
            cloud = insert_noise(group, name, spark_rows(pad_xy, rng, radius_mm))
            cloud.attrs["label"] = 2  # other
            cloud.attrs["channel"] = "spark"
    return chosen


def classify(run: Path, files: list[Path], out: Path) -> tuple[list[dict], float]:
    """The rows (run, event_id, label, ...) and the events/s (classify's own summary
    line: the work, not the start-up) of ``classify RUN FILES``."""
    command = [*CLI, "classify", str(run), *map(str, files), "--out", str(out), "--quiet"]
    done = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    rate = re.search(r"([\d,.]+) events/s", done.stdout)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, float(rate.group(1).replace(",", "")) if rate else float("nan")


def scan(directories: list[Path]) -> None:
    """Per simulated run directory: events, the most inner cells of any slab, the events
    with 2 or more, and the events the spark rule (default ``spark_min_cells``) cleans."""
    from data_prep.readers import open_events
    from data_prep.structured import StructuredNoiseRules, spark_cells

    threshold = StructuredNoiseRules().spark_min_cells
    print(f"| simulated set | events | most inner cells in a slab | events with >= 2 | "
          f"events the rule cleans (>= {threshold}) |\n|---|---|---|---|---|")  # fmt: skip
    for directory in directories:
        cells = []
        for path in sorted(directory.glob("run_*.h5")):
            with open_events(path) as reader:
                events = list(reader.iter_events(0, len(reader), skip_bad=True))
            counts = np.array([len(e.points) for e in events])
            xyz = np.concatenate([e.points[:, :3] for e in events])
            cells.append(spark_cells(xyz, counts))
        c = np.concatenate(cells)
        print(f"| {directory.name} | {len(c)} | {c.max()} | {int((c >= 2).sum())} | "
              f"{int((c >= threshold).sum())} |")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--scan":
        scan([Path(d) for d in sys.argv[2:]])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("sim", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.1,
                    help="share of the events given a spark (a run's sparks are rare: "
                    "in most events a pad would be a hot pad)")  # fmt: skip
    ap.add_argument("--radius", type=float, nargs=2, default=SPARK_RADIUS_MM,
                    metavar=("LO", "HI"), help="sparks' radii [mm], uniform in LO-HI")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    originals = sorted(args.sim.glob("run_*.h5"))[: args.files]
    spark_dir = args.out / "spark"
    if not spark_dir.exists():
        args.out.mkdir(parents=True, exist_ok=True)
        from data_prep.padplane import pad_centres  # attpc-engine's, as the simulation's

        pad_xy, rng = pad_centres(), np.random.default_rng(args.seed)
        tmp = Path(tempfile.mkdtemp(dir=args.out, prefix=".spark."))
        chosen = {s.name: add_sparks(s, tmp / s.name, pad_xy, rng, args.fraction, args.radius)
                  for s in originals}  # fmt: skip
        (tmp / "sparked.json").write_text(json.dumps(chosen))
        tmp.rename(spark_dir)
    chosen = json.loads((spark_dir / "sparked.json").read_text())
    sparked = [spark_dir / p.name for p in originals]
    plain, plain_rate = classify(args.run, originals, args.out / "as.csv")
    spark, spark_rate = classify(args.run, sparked, args.out / "a.csv")
    # the events given a spark, by (run, event id): each file's rows come together, in
    # the order of the files given
    wanted, first = [], 0
    for path in originals:
        with h5py.File(path, "r") as f:
            n = len(f["events"])
        run = plain[first]["run"]
        wanted += [(run, str(i)) for i in chosen[path.name]]
        first += n
    calls = [{(r["run"], r["event_id"]): r["label"] for r in rows} for rows in (plain, spark)]
    before, after = ([c[key] for key in wanted] for c in calls)
    same = sum(a == b for a, b in zip(before, after, strict=True))
    print(f"{len(wanted)} of {len(plain)} events given a spark; classify: {plain_rate:.0f} "
          f"events/s as simulated, {spark_rate:.0f} with the sparks")  # fmt: skip
    print("| the events given a spark | called proton | called carbon | called other | "
          "empty | same call as without |\n|---|---|---|---|---|---|")  # fmt: skip
    summary = {"events": len(wanted), "events_per_s": [round(plain_rate), round(spark_rate)]}
    for name, labels in (("without it", before), ("with it", after)):
        counts = {c: labels.count(c) for c in ("proton", "carbon", "other", "empty")}
        agree = f"{same} of {len(labels)}" if labels is after else ""
        print(f"| {name} | {' | '.join(str(v) for v in counts.values())} | {agree} |")
        summary[name] = counts
    summary["same_call"] = same
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
