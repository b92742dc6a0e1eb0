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


def test_a_chunk_of_events_gives_each_event_its_own_tracks(tmp_path):
    """`truth_tracks` runs the features' steps on a chunk of events: each event's points
    and clusters (as a partition; ids are unique within the chunk) and names equal those
    of a chunk of one, under the demo's settings (run beam axis, structured-noise rules)."""
    from attpc_classify.cli import main
    from data_prep.imagefile import read_images, source_path
    from data_prep.tracktruth import truth_tracks

    sim, data = tmp_path / "sim", tmp_path / "train.h5"
    assert main(["simulate", "--config", "tiny", "--events", "40", "--seed", "3",
                 "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    assert main(["preprocess", str(sim), "--config", "robust", "--set", "voxel_grid=0",
                 "--set", "structured_noise=rules", "--set", "features=tracks_v6",
                 "--set", "cluster_z_scale=0.5", "--out", str(data), "--quiet"]) == 0  # fmt: skip
    images = read_images(data)
    (source,) = images.attrs["sources"]
    path, axis = source_path(str(source), data), images.attrs["beam_axes"][str(source)]
    one = list(truth_tracks(path, images.config, axis, chunk=1))
    seven = list(truth_tracks(path, images.config, axis, chunk=7))  # 40 = 5 x 7 + 5
    assert len(one) == len(seven) == 40
    clustered = 0
    for (e1, p1, l1, noise, beam), (e7, p7, l7, _, _) in zip(one, seven, strict=True):
        assert e1.event_id == e7.event_id
        np.testing.assert_array_equal(p1, p7)
        # the same partition of the points into clusters (-1 where -1)
        assert np.array_equal(l1 < 0, l7 < 0)
        pairs = set(zip(l1[l1 >= 0].tolist(), l7[l7 >= 0].tolist(), strict=True))
        assert len(pairs) == len(set(l1[l1 >= 0].tolist())) == len(set(l7[l7 >= 0].tolist()))
        np.testing.assert_array_equal(cluster_kinds(p1[:, 4], l1, noise, beam),
                                      cluster_kinds(p7[:, 4], l7, noise, beam))  # fmt: skip
        clustered += int((l1 >= 0).any())
    assert clustered > 20  # most events have a track
