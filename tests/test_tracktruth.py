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


def test_both_reactions_of_a_pile_up_are_named_alike():
    # a pile-up: the second reaction's nuclei carry PILEUP_OFFSET (data_prep.sim.physics)
    # cluster 4: 6 points of the second reaction's ejectile; cluster 3: 5 of the first's;
    # cluster 8: 4 of the second's residue; cluster 6: 3 beam points
    offset = 10
    labels = np.array([4] * 6 + [3] * 5 + [8] * 4 + [6] * 3)
    truth = np.array([EJECTILE + offset] * 6 + [EJECTILE] * 5 + [RESIDUE + offset] * 4
                     + [BEAM] * 3)  # fmt: skip
    # light, light, heavy, beam -- not "other" for the second reaction
    np.testing.assert_array_equal(cluster_kinds(truth, labels, NOISE, BEAM, 4), [0, 0, 1, 2])
    # noise and beam labels at or above the offset (98, 99 here) are not folded
    np.testing.assert_array_equal(
        cluster_kinds(np.array([NOISE] * 3 + [BEAM] * 2), np.array([0] * 3 + [1] * 2),
                      NOISE, BEAM, 2), [3, 2])  # fmt: skip
