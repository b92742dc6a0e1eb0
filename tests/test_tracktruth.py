"""data_prep.tracktruth: each of the largest clusters named by the majority of its
points' truth, by hand."""

from __future__ import annotations

import numpy as np

from data_prep.tracktruth import EJECTILE, NO_TRACK, RESIDUE, cluster_kinds

NOISE, BEAM = 98, 99


def test_clusters_are_named_by_their_majority_largest_first():
    # cluster 7: 5 points, 3 of the residue (heavy); cluster 2: 4 points of the ejectile;
    # cluster 5: 3 points, 2 beam; cluster 1: 2 noise points; cluster 0: 1 target point
    labels = np.array([7] * 5 + [2] * 4 + [5] * 3 + [1] * 2 + [0] + [-1] * 3)
    truth = np.array([RESIDUE, RESIDUE, RESIDUE, EJECTILE, EJECTILE,
                      EJECTILE, EJECTILE, EJECTILE, EJECTILE,
                      BEAM, BEAM, NOISE, NOISE, NOISE, 0,
                      EJECTILE, EJECTILE, EJECTILE])  # fmt: skip
    np.testing.assert_array_equal(cluster_kinds(truth, labels, NOISE, BEAM), [1, 0, 2, 3, 4])
    # fewer clusters than asked: the rest is NO_TRACK; unclustered points never count
    got = cluster_kinds(truth[:9], labels[:9], NOISE, BEAM)
    np.testing.assert_array_equal(got, [1, 0, NO_TRACK, NO_TRACK, NO_TRACK])
