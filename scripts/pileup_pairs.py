"""Can two of an event's tracks tell one reaction from two (pile-up)? Pairs of clusters
read against the simulation's truth.

    .venv/bin/python scripts/pileup_pairs.py SIM_DIR [SIM_DIR ...] [--files 20]

SIM_DIR: run files of `simulate --config e15503b_randomized`. For the elastic events
(46Ar(p,p), 46Ar(12C,12C)) and the pile-ups of two of them, the five largest clusters
as the recommended model's features see them (points centred on the run file's fitted
beam line, the features' DBSCAN with the recipe's z weight 0.5; before the
structured-noise rules, which remove noise hits, not track points). Each cluster is
named by the majority of its points' truth: a product of the first or of the second
reaction of the event, or neither (beam ions, noise). For each pair of product clusters
that both have a vertex of their own (`data_prep.features.vertex_helix`: the point of
the free circle nearest the beam line, the helix read about it), five differences:

* own-vertex z gap: |z1 - z2| of the two vertices (`tracks_v7`'s reading: none for a
  track within ~14 deg of the axis, |cot| >= 4, as for its window column);
* inner-end z gap: |z1 - z2| of each cluster's point nearest the beam line;
* centre distance: between the two free circles' centres, over the larger radius;
* radius ratio: |log(R1 / R2)|;
* circle overlap: the area the two pad-plane circles share over the smaller one's area,
  the quantity Spyral's clustering phase joins clusters on (`join_clusters_overlap` in
  ATTPC/Spyral's `src/spyral/core/clusterize.py`, above 0.25 in its current
  configurations; the lens area from the circles' geometry,
  `data_prep.features.circle_overlap`);
* turns apart: how far the vertex gap lies from a whole number of the helix's turns,
  |dz / pitch - round(dz / pitch)| with pitch = 2 pi R |cot| (the two clusters' means):
  pieces of one helix, each reading its vertex where its own turn began, lie whole
  turns apart (ours; `data_prep.features.turns_apart`).

Printed: a Markdown table of each difference's quartiles for pairs of one reaction and
pairs of two, and its ROC AUC for "two reactions" (0.5: no information); then what one
reaction's pairs are (two pieces of one particle, or its ejectile and its residual) and
how many of each, of those whose vertices both have a z, have them over 100 mm apart;
and which share of each kind of pair a join on the circle overlap would merge, at
`OVERLAP_CUTS`, and with the vertices also whole turns apart (the join the image
config's ``cluster_join: helix_turns`` makes, `data_prep.features.join_pieces`). ~4 s
per 1,000 events. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from proton_misses import centred_events_with_axis  # the features' centring
from sklearn.metrics import roc_auc_score

from data_prep.features import (
    JOIN_OVERLAP,
    JOIN_TURNS,
    N_NAMED,
    circle_overlap,
    has_depth,
    largest_tracks,
    track_clusters,
)
from data_prep.features import own_vertex as features_own_vertex
from data_prep.features import turns_apart as features_turns_apart
from data_prep.sim.physics import PILEUP_OFFSET

CHANNELS = (b"p_elastic", b"c12_elastic", b"pileup")
RECIPE_Z_SCALE = 0.5  # the recommended command's --set cluster_z_scale=0.5
FAR_MM = 100.0  # own vertices this far apart read as two vertices
PRODUCTS = (2, 3)  # attpc-engine's nucleus index: ejectile, residual
DIFFERENCES = ("own-vertex z gap [mm]", "inner-end z gap [mm]", "centre distance / R",
               "abs. log R1 / R2", "circle overlap", "turns apart")  # fmt: skip
OVERLAP_CUTS = (JOIN_OVERLAP, 0.5, 0.75)  # Spyral's circle_overlap_ratio: 0.25, 0.5 before
TURNS_TOLERANCE = JOIN_TURNS  # "whole turns apart": within this fraction of a turn


def reaction(labels: np.ndarray) -> tuple[int, int] | None:
    """Which reaction of the event made most of a cluster's points, 0 (the first) or 1 (the
    second of a pile-up), and which of its products (2 ejectile, 3 residual); None where
    most are beam ions or noise."""
    values, counts = np.unique(labels, return_counts=True)
    top = int(values[counts.argmax()])
    for k in (0, 1):
        for product in PRODUCTS:
            if top == product + PILEUP_OFFSET * k:
                return k, product
    return None


def own_vertex(xyz: np.ndarray) -> dict | None:
    """A cluster's free circle, its vertex depth (where the helix about its own vertex
    meets the axis; none within ~14 deg of the axis, as `tracks_v7` reads it), its cot
    and its inner end; None where it has no vertex of its own
    (`data_prep.features.own_vertex`)."""
    found = features_own_vertex(xyz)
    if found is None:
        return None
    cot = float(found.helix[1])
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    return {
        "centre": found.centre,
        "radius": found.radius,
        "z": found.z if has_depth(found) else np.nan,  # a beam-like line: anywhere
        "cot": cot,
        "inner_z": float(xyz[r.argmin(), 2]),
    }


def turns_apart(a: dict, b: dict) -> float:
    """How far two `own_vertex` readings' vertex gap lies from a whole number of turns of
    their helix (`data_prep.features.turns_apart`); NaN without both depths."""
    return features_turns_apart(a["z"], b["z"], (a["radius"], b["radius"]), (a["cot"], b["cot"]))


def pair_differences(a: dict, b: dict) -> tuple[float, ...]:
    """The `DIFFERENCES` of two clusters' `own_vertex` readings."""
    d = float(np.hypot(*(a["centre"] - b["centre"])))
    return (
        abs(a["z"] - b["z"]),
        abs(a["inner_z"] - b["inner_z"]),
        d / max(a["radius"], b["radius"]),
        abs(float(np.log(a["radius"] / b["radius"]))),
        circle_overlap(d, a["radius"], b["radius"]),
        turns_apart(a, b),
    )


def event_pairs(xyz: np.ndarray, labels: np.ndarray) -> list[tuple[bool, bool, tuple]]:
    """(two reactions?, one particle?, `pair_differences`) for each pair of product
    clusters among one event's `N_NAMED` largest that both have a vertex of their own."""
    points = np.column_stack([xyz, np.ones(len(xyz))])
    _, cluster = track_clusters(points, np.array([len(points)]), z_scale=RECIPE_Z_SCALE)
    named = []
    for c in largest_tracks(cluster, N_NAMED):
        sel = cluster == c
        k, reading = reaction(labels[sel]), own_vertex(xyz[sel])
        if k is not None and reading is not None:
            named.append((k, reading))
    return [(ka[0] != kb[0], ka == kb, pair_differences(a, b))
            for i, (ka, a) in enumerate(named) for kb, b in named[i + 1:]]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sims", nargs="+", type=Path)
    ap.add_argument("--files", type=int, default=20, help="run files read per SIM_DIR")
    args = ap.parse_args()
    pairs = [
        p
        for sim in args.sims
        for _, _, _, xyz, labels, _ in centred_events_with_axis(
            sim, lambda r: r["channel"] in CHANNELS, args.files
        )
        for p in event_pairs(xyz, labels)
    ]
    if not pairs:
        raise SystemExit("no pair of product clusters in these run files")
    two = np.array([t for t, _, _ in pairs], dtype=bool)
    same = np.array([s for _, s, _ in pairs], dtype=bool)
    values = np.array([d for _, _, d in pairs], dtype=float).reshape(-1, len(DIFFERENCES))
    print(f"{len(pairs)} pairs of product clusters: {int((~two).sum())} of one reaction, "
          f"{int(two.sum())} of two\n")  # fmt: skip
    print("| difference | one reaction: quartiles | two reactions: quartiles | ROC AUC |")
    print("|---|---|---|---|")
    summary = {}
    for k, name in enumerate(DIFFERENCES):
        ok = np.isfinite(values[:, k])
        cells = [" / ".join(f"{v:.3g}" for v in np.percentile(values[sel, k], [25, 50, 75]))
                 if sel.any() else "-"
                 for sel in (ok & ~two, ok & two)]  # fmt: skip
        auc = float(roc_auc_score(two[ok], values[ok, k])) if len(set(two[ok])) == 2 else None
        print(f"| {name} | {cells[0]} | {cells[1]} | "
              f"{'-' if auc is None else f'{auc:.3f}'} |")  # fmt: skip
        summary[name] = None if auc is None else round(auc, 3)
    # what one reaction's pairs are, and how often their own vertices lie far apart
    depth = np.isfinite(values[:, 0])  # both vertices have a z
    far = depth & (values[:, 0] > FAR_MM)
    kinds = {}
    for name, sel in (("pieces of one particle", ~two & same),
                      ("ejectile and residual", ~two & ~same)):  # fmt: skip
        kinds[name] = [int(sel.sum()), int((sel & depth).sum()), int((sel & far).sum())]
        n, with_z, apart = kinds[name]
        print(f"\none reaction, {name}: {n} pairs; of the {with_z} whose vertices both "
              f"have a z, {apart} > {FAR_MM:g} mm apart", end="")  # fmt: skip
    heads = [f"joined at overlap > {c:g}" for c in OVERLAP_CUTS]
    heads.append(f"overlap > {OVERLAP_CUTS[0]:g} and whole turns apart (+-{TURNS_TOLERANCE:g})")
    print("\n\n| pairs | " + " | ".join(heads) + " |\n|---|" + "---|" * len(heads))
    joined = {}
    overlap = values[:, DIFFERENCES.index("circle overlap")]
    whole = values[:, DIFFERENCES.index("turns apart")] < TURNS_TOLERANCE  # NaN: False
    for name, sel in (("one reaction: pieces of one particle", ~two & same),
                      ("one reaction: ejectile and residual", ~two & ~same),
                      ("two reactions", two)):  # fmt: skip
        if not sel.any():
            print(f"| {name} (0) |" + " - |" * len(heads))
            continue
        shares = [float(np.mean(overlap[sel] > c)) for c in OVERLAP_CUTS]
        shares.append(float(np.mean((overlap[sel] > OVERLAP_CUTS[0]) & whole[sel])))
        joined[name] = [round(v, 3) for v in shares]
        print(f"| {name} ({int(sel.sum())}) | " + " | ".join(f"{v:.0%}" for v in shares) + " |")
    print(json.dumps({"pairs": len(pairs), "two_reactions": int(two.sum()), "auc": summary,
                      "one_reaction_kinds": kinds, "joined": joined}))  # fmt: skip


if __name__ == "__main__":
    main()
