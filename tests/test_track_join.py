"""The features' join of a helix's pieces (data_prep.features.join_pieces,
``cluster_join: helix_turns``): helices wound by hand, cut by the beam core into one piece
per turn, joined or kept apart as their geometry says."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _helices import wound

from data_prep.errors import InputError
from data_prep.features import (
    CORE_MM,
    circle_overlap,
    event_features,
    feature_names,
    has_depth,
    join_pieces,
    own_vertex,
    track_clusters,
    turns_apart,
)
from data_prep.images import ImageConfig

NAMES = feature_names("tracks_v7")
FEATURES_YAML = Path(__file__).resolve().parents[1] / "configs/prep/features.yaml"


def row_of(points: np.ndarray, join: str) -> np.ndarray:
    return event_features(points, np.array([len(points)]), "tracks_v7", join=join)[0]


def col(row: np.ndarray, name: str) -> float:
    return float(row[NAMES.index(name)])


def test_a_three_turn_helix_is_three_pieces_joined_into_one() -> None:
    track = wound(100.0, 80.0, 0.3, 0.5, 3.0)
    off_core = int((np.hypot(track[:, 0], track[:, 1]) >= CORE_MM).sum())
    apart, joined = row_of(track, "none"), row_of(track, "helix_turns")
    # the core cuts a turn where it passes the axis: three pieces
    assert col(apart, "n_tracks") == 3
    assert col(joined, "n_tracks") == 1
    assert col(joined, "t1_points_frac") == 1.0
    assert col(joined, "t1_log10_points") == pytest.approx(math.log10(off_core))
    # the helix read on the first turn alone: R = 80 mm, |cot| 0.5 (a whole turn on the pad
    # plane reads as well backwards: `_helix` picks a sense, so the sign is not tested)
    assert col(joined, "t1_helix_log10_radius_mm") == pytest.approx(math.log10(80.0), abs=0.01)
    assert abs(col(joined, "t1_helix_cot_polar")) == pytest.approx(0.5, abs=0.01)
    assert abs(col(joined, "t1_vhelix_cot_polar")) == pytest.approx(0.5, abs=0.01)
    # unjoined, the same column reads one piece too: the join changes which points, not
    # how a piece is read
    assert abs(col(apart, "t1_helix_cot_polar")) == pytest.approx(0.5, abs=0.01)
    # the whole track's extent in z: three turns of pitch 2 pi R cot, less the core's cuts
    assert col(joined, "t1_z_extent_mm") > 2.5 * 2 * math.pi * 80.0 * 0.5


def test_a_slowing_helix_is_read_on_its_first_turn() -> None:
    """A proton curls tighter each turn: R 80 mm, then 70 mm a pitch (2 pi x 75 x 0.5, the
    pair's mean) above. The joined track's radius is the first turn's, not a blend."""
    pitch = 2 * math.pi * 75.0 * 0.5
    track = np.concatenate([wound(100.0, 80.0, 0.3, 0.5, 0.9),
                            wound(100.0 + pitch, 70.0, 0.3, 0.5, 0.9)])  # fmt: skip
    row = row_of(track, "helix_turns")
    assert col(row, "n_tracks") == 1
    assert col(row, "t1_helix_log10_radius_mm") == pytest.approx(math.log10(80.0), abs=0.003)
    assert col(row, "t1_vhelix_cot_polar") == pytest.approx(0.5, abs=0.01)


def test_joins_chain_and_the_lowest_piece_leads() -> None:
    """a overlaps b, b overlaps c, a and c barely (centres 60 degrees apart each step, equal
    radii: shares 0.39 and 0.06); each a whole pitch above the last: one track, led by a.
    The points come a, c, b, so DBSCAN numbers them a, c, b and the chain's link (b) has
    the largest id: a join that overwrote a link instead of merging roots would lose a."""
    pitch = 2 * math.pi * 80.0 * 0.5
    pieces = [wound(100.0 + k * pitch, 80.0, k * math.pi / 3, 0.5, 0.9) for k in range(3)]
    ends = [own_vertex(p[:, :3]) for p in pieces]
    d_ac = float(np.hypot(*(ends[0].centre - ends[2].centre)))
    assert circle_overlap(d_ac, ends[0].radius, ends[2].radius) < 0.25  # a, c: no pair
    track = np.concatenate([pieces[0], pieces[2], pieces[1]])
    counts = np.array([len(track)])
    _, labels = track_clusters(track, counts)
    joined, first = join_pieces(track, counts, labels)
    assert len(np.unique(labels[labels >= 0])) == 3
    assert labels[len(pieces[0]) + len(pieces[2]) + len(pieces[1]) // 2] == 2  # b: the last
    assert len(np.unique(joined[joined >= 0])) == 1
    lead = track[first & (joined >= 0)]
    assert lead[:, 2].max() < 100.0 + pitch  # the first piece is a's, all of it
    assert (first & (joined >= 0)).sum() == (np.hypot(*pieces[0][:, :2].T) >= CORE_MM).sum()


def test_a_track_along_the_axis_has_no_depth_to_join_on() -> None:
    """|cot| >= 4 (within ~14 deg of the beam): no vertex depth, never joined (as
    `tracks_v7` reads no window column for it)."""
    assert has_depth(own_vertex(wound(100.0, 80.0, 0.3, 0.5, 0.9)[:, :3]))
    assert not has_depth(own_vertex(wound(100.0, 80.0, 0.3, 5.0, 0.9)[:, :3]))
    assert not has_depth(None)


def test_the_first_piece_is_the_one_nearest_the_window_in_any_point_order() -> None:
    """The beam runs to +z: a recoil's first turn is its lowest, whichever piece DBSCAN
    numbers first (the points reversed: the top turn gets id 0)."""
    track = wound(100.0, 80.0, 2.0, 0.5, 2.0)[::-1].copy()
    counts = np.array([len(track)])
    _, labels = track_clusters(track, counts)
    joined, first = join_pieces(track, counts, labels)
    assert len(np.unique(labels[labels >= 0])) == 2
    assert len(np.unique(joined[joined >= 0])) == 1
    on_first, later = track[first & (joined >= 0)], track[~first & (joined >= 0)]
    assert on_first[:, 2].max() < later[:, 2].min()  # the first turn lies below
    assert labels[first & (joined >= 0)][0] == 1  # ... and is not the piece numbered 0
    row = row_of(track, "helix_turns")
    assert abs(col(row, "t1_helix_cot_polar")) == pytest.approx(0.5, abs=0.01)


def test_two_reactions_half_a_turn_apart_stay_two_tracks() -> None:
    """Overlapping circles, but the second vertex half a pitch above the first: two
    reactions (a pile-up), never one helix."""
    pitch = 2 * math.pi * 80.0 * 0.5
    first = wound(100.0, 80.0, 0.3, 0.5, 0.9)
    second = wound(100.0 + 1.5 * pitch, 80.0, 0.5, 0.5, 0.9)
    both = np.concatenate([first, second])
    assert col(row_of(both, "none"), "n_tracks") == 2
    assert col(row_of(both, "helix_turns"), "n_tracks") == 2
    # the same second track a whole pitch above: one helix's next turn, joined
    again = np.concatenate([first, wound(100.0 + 2 * pitch, 80.0, 0.3, 0.5, 0.9)])
    assert col(row_of(again, "helix_turns"), "n_tracks") == 1


def test_circles_apart_are_never_joined() -> None:
    """Whole pitches apart in z, but on the other side of the axis: no overlap."""
    pitch = 2 * math.pi * 80.0 * 0.5
    both = np.concatenate([wound(100.0, 80.0, 0.0, 0.5, 0.9),
                           wound(100.0 + pitch, 80.0, math.pi, 0.5, 0.9)])  # fmt: skip
    assert col(row_of(both, "helix_turns"), "n_tracks") == 2


def test_without_a_join_the_features_are_unchanged_and_a_join_is_checked() -> None:
    track = wound(100.0, 80.0, 0.3, 0.5, 1.5)
    default = event_features(track, np.array([len(track)]), "tracks_v7")
    np.testing.assert_array_equal(default[0], row_of(track, "none"))
    with pytest.raises(ValueError, match="unknown cluster join"):
        row_of(track, "spyral")
    with pytest.raises(InputError, match="cluster_join"):
        ImageConfig(cluster_join="spyral")
    # a model recorded before the key reads its features unjoined
    recorded = ImageConfig(cluster_join="helix_turns").to_dict()
    recorded.pop("cluster_join")
    assert ImageConfig.from_dict(recorded).cluster_join == "none"


def test_turns_apart_by_hand() -> None:
    # pitch 2 pi x 100 mm x 0.75: 300 mm is 0.6366 of a turn, 0.3634 from a whole one
    pitch = 2 * math.pi * 100.0 * 0.75
    assert turns_apart(100.0, 400.0, (80.0, 120.0), (1.0, -0.5)) == pytest.approx(
        abs(300.0 / pitch - round(300.0 / pitch))
    )
    assert turns_apart(0.0, 2 * pitch, (100.0, 100.0), (0.75, float("nan"))) == pytest.approx(0)
    assert math.isnan(turns_apart(0.0, float("nan"), (80.0, 80.0), (1.0, 1.0)))
    assert math.isnan(turns_apart(0.0, 10.0, (80.0, 80.0), (0.0, 0.0)))  # no pitch
    assert math.isnan(turns_apart(0.0, 10.0, (math.inf, 80.0), (1.0, 1.0)))


def test_circle_overlap_by_hand_and_by_counting() -> None:
    # two unit circles one radius apart share 2 pi / 3 - sqrt(3) / 2 (two 60-degree
    # segments); one inside the other shares all of the smaller; apart, nothing
    assert math.isclose(
        circle_overlap(1.0, 1.0, 1.0), (2 * math.pi / 3 - math.sqrt(3) / 2) / math.pi
    )
    assert circle_overlap(0.5, 3.0, 1.0) == 1.0
    assert circle_overlap(4.1, 3.0, 1.0) == 0.0
    assert math.isnan(circle_overlap(math.nan, 3.0, 1.0))
    # unequal circles: the share of the smaller circle's points inside the larger one
    rng = np.random.default_rng(0)
    r = np.sqrt(rng.random(400_000))  # uniform in the unit disc at the origin
    phi = rng.random(400_000) * 2 * np.pi
    x, y = r * np.cos(phi), r * np.sin(phi)
    inside = np.mean((x - 2.0) ** 2 + y**2 < 1.6**2)  # the circle of radius 1.6 at (2, 0)
    assert abs(circle_overlap(2.0, 1.0, 1.6) - inside) < 0.005


def test_the_named_tracks_are_the_joined_tracks(tmp_path) -> None:
    """With ``cluster_join`` the track names (`truth_tracks`, what the track trees learn)
    read the same joined clusters as the features: per event, as many as ``n_tracks``."""
    from attpc_classify.cli import main
    from data_prep.imagefile import read_images, source_path
    from data_prep.tracktruth import truth_tracks

    sim, data = tmp_path / "sim", tmp_path / "train.h5"
    assert main(["simulate", "--config", "e15503b_randomized", "--events", "60", "--seed", "3",
                 "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    assert main(["preprocess", str(sim), "--config", str(FEATURES_YAML),
                 "--set", "features=tracks_v7", "--set", "cluster_z_scale=0.5",
                 "--set", "cluster_join=helix_turns", "--out", str(data),
                 "--quiet"]) == 0  # fmt: skip
    images = read_images(data, features=True)
    (source,) = images.attrs["sources"]
    path, axis = source_path(str(source), data), images.attrs["beam_axes"][str(source)]
    n_tracks = images.features[:, feature_names("tracks_v7").index("n_tracks")]
    order = {int(e): k for k, e in enumerate(images.event_id)}
    joined_any = 0
    for event, points, labels, _, _ in truth_tracks(path, images.config, axis):
        if event.event_id not in order:  # empty inside the image ranges: not written
            continue
        assert len(np.unique(labels[labels >= 0])) == n_tracks[order[event.event_id]]
        _, apart = track_clusters(points, np.array([len(points)]), z_scale=0.5)
        joined_any += len(np.unique(apart[apart >= 0])) > n_tracks[order[event.event_id]]
    assert joined_any > 0  # the join did join something here
