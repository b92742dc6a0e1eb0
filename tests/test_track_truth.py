"""scripts/track_truth.py: which particle the features' first track is, on hand-made truth."""

from __future__ import annotations

import numpy as np
from _scripts import load_script

from data_prep.sim.stats import EJECTILE
from data_prep.tracktruth import cluster_kinds

NOISE, BEAM = -1, -2


def test_t1_is_the_largest_cluster_read_by_its_majority_truth():
    kinds = load_script("track_truth").KINDS

    def t1_kind(truth, labels, noise, beam):  # as track_truth.kinds names t1
        return kinds[cluster_kinds(truth, labels, noise, beam, 1)[0]]

    # cluster 0: 5 points, 3 of the residue (EJECTILE + 1), 2 of the ejectile;
    # cluster 1: 4 points of the ejectile; -1: core or DBSCAN noise (ignored)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1])
    truth = np.array([EJECTILE + 1] * 3 + [EJECTILE] * 2 + [EJECTILE] * 4 + [BEAM, BEAM])
    assert t1_kind(truth, labels, NOISE, BEAM) == "heavy product"
    # the same points with cluster 1 made larger: t1 is now the ejectile's track
    labels2 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    truth2 = truth.copy()
    truth2[9:] = EJECTILE
    assert t1_kind(truth2, labels2, NOISE, BEAM) == "light product"
    # a beam ion off the core as the largest cluster; no cluster at all
    assert t1_kind(np.array([BEAM, BEAM, NOISE]), np.array([3, 3, 3]), NOISE, BEAM) == "beam ions"
    assert t1_kind(truth, np.full(len(truth), -1), NOISE, BEAM) == "no cluster"
    # a cluster of the target nucleus (index 0): none of the four kinds
    assert t1_kind(np.array([0, 0, 0]), np.array([2, 2, 2]), NOISE, BEAM) == "other"
