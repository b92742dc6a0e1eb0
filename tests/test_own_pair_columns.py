"""tracks_v9's pair columns (data_prep.features.own_pair_values): per pair of named tracks,
the overlap of their free circles and how far their own vertices lie from a whole number
of turns apart, checked on helices wound by hand against the geometry they were wound
with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helices import wound

from data_prep.features import (
    OWN_PAIR_FEATURES,
    PAIR_FEATURES,
    event_features,
    feature_names,
    pair_columns,
    track_pairs,
)

V9 = feature_names("tracks_v9")


def v9_row(points: np.ndarray) -> dict[str, float]:
    (row,) = event_features(points, np.array([len(points)]), "tracks_v9")
    return dict(zip(V9, row.tolist(), strict=True))


def test_the_pieces_of_one_helix_share_a_circle_and_lie_whole_turns_apart() -> None:
    # the beam core cuts a three-turn proton (R 80 mm, cot 0.5) into three pieces
    row = v9_row(wound(100.0, 80.0, 0.3, 0.5, 3.0))
    pitch = 2 * math.pi * 80.0 * 0.5  # 251 mm a turn, by hand
    assert row["n_tracks"] == 3
    for i, j in ((1, 2), (1, 3), (2, 3)):
        assert row[f"p{i}{j}_circle_overlap"] == pytest.approx(1.0, abs=0.02)
        assert row[f"p{i}{j}_turns_apart"] == pytest.approx(0.0, abs=0.03)
        # a whole number of turns: 0 too, where a piece's whole turn reads backwards
        # (`_helix` picks a sense per piece) and its vertex lands on its neighbour's
        gap = row[f"p{i}{j}_own_vertex_dz_mm"] / pitch
        assert gap == pytest.approx(round(gap), abs=0.03) and round(gap) <= 2
    assert np.isnan(row["p14_circle_overlap"]) and np.isnan(row["p45_turns_apart"])


def test_two_reactions_half_a_turn_apart_and_on_opposite_sides() -> None:
    pitch = 2 * math.pi * 80.0 * 0.5
    # same side, 1.5 pitches apart: the circles overlap (centres 0.2 rad apart about the
    # axis) but the vertices lie half a turn off a whole number
    near = np.concatenate([wound(100.0, 80.0, 0.3, 0.5, 0.9),
                           wound(100.0 + 1.5 * pitch, 80.0, 0.5, 0.5, 0.9)])  # fmt: skip
    row = v9_row(near)
    assert row["n_tracks"] == 2
    d = 2 * 80.0 * math.sin(0.1)  # chord between the centres, by hand
    a = math.acos(d / 160.0)  # each circle's half-angle of the lens
    lens = 2 * 80.0**2 * (a - math.sin(a) * math.cos(a))
    assert row["p12_circle_overlap"] == pytest.approx(lens / (math.pi * 80.0**2), abs=0.02)
    assert row["p12_turns_apart"] == pytest.approx(0.5, abs=0.03)
    assert row["p12_own_vertex_dz_mm"] == pytest.approx(1.5 * pitch, rel=0.02)
    # opposite sides of the axis: the circles touch at the axis only, no area shared
    apart = np.concatenate([wound(100.0, 80.0, 0.0, 0.5, 0.9),
                            wound(100.0 + pitch, 80.0, math.pi, 0.5, 0.9)])  # fmt: skip
    row = v9_row(apart)
    assert row["p12_circle_overlap"] == pytest.approx(0.0, abs=0.02)
    assert row["p12_centre_angle"] == pytest.approx(math.pi, abs=0.02)


def test_a_track_along_the_axis_has_overlap_but_no_turns() -> None:
    # |cot| 4.5: beyond MAX_VERTEX_COT, its vertex depth means nothing, so the vertex
    # columns are empty while the circles still compare
    both = np.concatenate([wound(100.0, 80.0, 0.3, 0.5, 0.9),
                           wound(400.0, 80.0, 0.3, 4.5, 0.9)])  # fmt: skip
    row = v9_row(both)
    assert row["n_tracks"] == 2
    assert row["p12_circle_overlap"] == pytest.approx(1.0, abs=0.02)
    assert np.isnan(row["p12_turns_apart"]) and np.isnan(row["p12_own_vertex_dz_mm"])


def test_tracks_v9_is_tracks_v8_plus_the_own_pair_columns() -> None:
    cloud = np.concatenate([wound(100.0, 80.0, 0.3, 0.5, 2.0),
                            wound(350.0, 150.0, 2.0, 0.8, 0.7)])  # fmt: skip
    cloud[:, :2] += np.array([6.0, -3.0])  # the beam ion entered off the run's line
    counts = np.array([len(cloud)])
    v8 = dict(zip(feature_names("tracks_v8"), event_features(cloud, counts, "tracks_v8")[0],
                  strict=True))  # fmt: skip
    v9 = v9_row(cloud)
    new = [n for n in V9 if n not in v8]
    assert len(new) == len(track_pairs()) * len(OWN_PAIR_FEATURES) == 30
    np.testing.assert_array_equal([v9[n] for n in v8], list(v8.values()))
    # the trees' light pair reads every pair column, the centre angle first
    cols = pair_columns("tracks_v9")
    want = [f"p12_{n}" for n in PAIR_FEATURES + OWN_PAIR_FEATURES]
    assert [V9[c] for c in cols[0]] == want
    assert len(cols) == len(track_pairs())
