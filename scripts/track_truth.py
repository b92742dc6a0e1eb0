"""What the trees' first track (t1) really is, for the events they get right and wrong.

    .venv/bin/python scripts/track_truth.py RUN SIM_DIR FEATURE_FILE [SIM_DIR FEATURE_FILE ...]
    .venv/bin/python scripts/track_truth.py --no-model SIM_DIR [SIM_DIR ...]

The features describe the largest off-axis clusters one by one (t1, t2, t3;
`data_prep.features`), assuming the largest is the reaction's track. For each simulated
run directory, with the feature file made from it by RUN's preprocessing: the points go
through the same steps as the features (per-file beam axis, structured-noise rules,
`data_prep.features.track_clusters`), and t1's points are read against the simulator's
per-point truth: mostly the light product (the proton or the 12C recoil), mostly the
heavy one (the scattered 46Ar), mostly beam ions, mostly noise, or no cluster at all.
Per channel (p_elastic, c12_elastic) and per call of RUN (right / wrong); the labels only
score. ``--no-model``: the shares over all such events of each run directory, with
``configs/prep/features.yaml``'s steps (which detector conditions put another particle
first). docs/sim-to-real.md, "Where it still fails".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py

from attpc_classify.checkpoint import load_run
from attpc_classify.data import task_labels
from data_prep.build import expand_inputs
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig
from data_prep.quantiles import beam_axes
from data_prep.tracktruth import KINDS as TRACK_KINDS
from data_prep.tracktruth import cluster_kinds, truth_tracks

#: channel -> its class in the 3-class task
CHANNELS = {"p_elastic": 0, "c12_elastic": 1}
#: what t1 can be: `data_prep.tracktruth.KINDS`, then no cluster at all (index `NO_TRACK`,
#: -1)
KINDS = (*TRACK_KINDS, "no cluster")
HEADER = (
    "| test set | channel | calls | events | t1 mostly: "
    + " / ".join(KINDS)
    + " |\n|---|---|---|---|---|"
)


def kinds(config: ImageConfig, sim_dir: str) -> dict[tuple[int, int], tuple[str, str]]:
    """(run, event) -> (channel, t1 kind) for the events of `CHANNELS` in ``sim_dir``;
    t1's kind by `data_prep.tracktruth.cluster_kinds`, "no cluster" when there is none."""
    files = [str(p) for p in sorted(expand_inputs([sim_dir]))]
    axes = beam_axes(config, files)
    out = {}
    for path in files:
        with h5py.File(path) as f:
            table = f["events"]
            channels = dict(zip(table["event"].tolist(), table["channel"], strict=True))
        axis = axes[path].axis if axes else None
        for event, pts, labels, noise, beam in truth_tracks(Path(path), config, axis):
            channel = channels[int(event.event_id)].decode()
            if channel in CHANNELS:
                kind = int(cluster_kinds(pts[:, 4], labels, noise, beam, 1)[0])
                out[(event.run, event.event_id)] = (channel, KINDS[kind])
    return out


def measure(run: str, sim_dir: str, data: str) -> dict[tuple[str, str], list[str]]:
    """(channel, "right" / "wrong") -> the t1 kind of each such event of one test set."""
    trained = load_run(run, device="cpu")
    s = read_images(data, features=True)
    calls = trained.predict_proba(s.images, features=s.features).argmax(1)
    y = task_labels(s.label, trained.info.task)
    ids = zip(s.run, s.event_id, calls, y, strict=True)
    right = {(int(r), int(e)): bool(c == t) for r, e, c, t in ids}
    out: dict[tuple[str, str], list[str]] = {}
    for key, (channel, kind) in kinds(trained.info.image_config, sim_dir).items():
        out.setdefault((channel, "right" if right[key] else "wrong"), []).append(kind)
    return out


def rows(test: str, found: dict[tuple[str, str], list[str]]) -> list[str]:
    """Markdown rows of `HEADER` for one test set."""
    out = []
    for channel in CHANNELS:
        for call in ("right", "wrong"):
            got = found.get((channel, call), [])
            if got:
                shares = " / ".join(f"{got.count(k) / len(got):.2f}" for k in KINDS)
                out.append(f"| {test} | {channel} | {call} | {len(got)} | {shares} |")
    return out


def not_light(found: dict[tuple[str, str], list[str]], call: str) -> tuple[int, int]:
    """Events (of both channels) called ``call`` whose t1 is not the light product, of all."""
    got = [k for (_, c), ks in found.items() if c == call for k in ks]
    return sum(k != "light product" for k in got), len(got)


def shares_without_model(sim_dirs: list[str]) -> list[str]:
    """Markdown table: per run directory and channel, the share of each t1 kind."""
    from attpc_classify.config import load_config

    config = load_config(ImageConfig, Path(__file__).resolve().parents[1]
                         / "configs/prep/features.yaml", [])  # fmt: skip
    out = ["| simulation | channel | events | t1 mostly: " + " / ".join(KINDS) + " |",
           "|---|---|---|---|"]  # fmt: skip
    for d in sim_dirs:
        found = kinds(config, d)
        for channel in CHANNELS:
            got = [k for ch, k in found.values() if ch == channel]
            if got:
                shares = " / ".join(f"{got.count(k) / len(got):.2f}" for k in KINDS)
                out.append(f"| {Path(d).name} | {channel} | {len(got)} | {shares} |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-model", action="store_true", help="only SIM_DIRs: t1 shares")
    ap.add_argument("args", nargs="+", help="RUN SIM_DIR FEATURE_FILE [SIM_DIR FEATURE_FILE]")
    args = ap.parse_args()
    if args.no_model:
        print("\n".join(shares_without_model(args.args)))
        return 0
    run, pairs = args.args[0], args.args[1:]
    if not pairs or len(pairs) % 2:
        ap.error("give RUN and SIM_DIR FEATURE_FILE pairs")
    print(HEADER)
    for sim_dir, data in zip(pairs[::2], pairs[1::2], strict=True):
        found = measure(run, sim_dir, data)
        print("\n".join(rows(Path(sim_dir).name, found)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
