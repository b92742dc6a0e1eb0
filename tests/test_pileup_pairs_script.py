"""scripts/pileup_pairs.py: clusters named by their truth, and the differences of two
helices from two vertices, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _scripts import load_script

pp = load_script("pileup_pairs")


def helix(z0: float, radius: float, centre_dir: tuple[float, float], cot: float) -> np.ndarray:
    """Points of a helix from the beam axis at z0 (circle through the origin, centre at
    ``radius`` along ``centre_dir``), phi = 0.5-2.5 rad about the centre, 2 mm apart."""
    c = radius * np.asarray(centre_dir, dtype=float)
    phi = np.arange(0.5, 2.5, 2.0 / radius)
    start = -c / radius  # unit vector from the centre to the origin
    rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])  # (2, 2, n)
    xy = c[:, None] + radius * np.einsum("ijn,j->in", rot, start)
    return np.column_stack([xy.T, z0 + cot * radius * phi])


A = helix(100.0, 80.0, (1.0, 0.0), 1.0)
B = helix(400.0, 120.0, (0.0, -1.0), 0.5)


def test_reaction_is_the_majority_of_the_points_truth() -> None:
    assert pp.reaction(np.array([2, 2, 3, -1])) == (0, 2)
    assert pp.reaction(np.array([12, 13, 13, 2])) == (1, 3)  # a pile-up's second reaction
    assert pp.reaction(np.array([-2, -2, 2])) is None  # mostly beam ions
    assert pp.reaction(np.array([-1, -1, 12])) is None  # mostly noise


def test_two_helices_from_two_vertices() -> None:
    a, b = pp.own_vertex(A), pp.own_vertex(B)
    assert abs(a["z"] - 100.0) < 1.0 and abs(b["z"] - 400.0) < 1.0
    assert abs(a["radius"] - 80.0) < 0.5 and abs(b["radius"] - 120.0) < 0.5
    # inner ends: the first points, phi = 0.5 about each centre
    assert math.isclose(a["inner_z"], 100.0 + 80.0 * 0.5)
    assert math.isclose(b["inner_z"], 400.0 + 0.5 * 120.0 * 0.5)
    own, inner, centres, radii, overlap, turns = pp.pair_differences(a, b)
    assert abs(own - 300.0) < 2.0
    assert math.isclose(inner, 430.0 - 140.0)
    assert abs(centres - math.hypot(80.0, 120.0) / 120.0) < 0.01
    assert abs(radii - math.log(120.0 / 80.0)) < 0.01
    # the fitted circles' distance and radii reach the overlap (its formula: below)
    assert abs(overlap - pp.circle_overlap(math.hypot(80.0, 120.0), 80.0, 120.0)) < 0.01
    # 300 mm over a pitch of 2 pi x 100 mm (the mean radius) x 0.75 (the mean cot)
    pitch = 2 * math.pi * 100.0 * 0.75
    assert abs(turns - abs(300.0 / pitch - round(300.0 / pitch))) < 0.01


def test_pieces_of_one_helix_lie_whole_turns_apart() -> None:
    """A helix's second turn reads its vertex a pitch (2 pi R cot) above the first's."""
    first = pp.own_vertex(A)
    second = pp.own_vertex(helix(100.0 + 2 * math.pi * 80.0, 80.0, (1.0, 0.0), 1.0))
    assert abs(second["z"] - first["z"] - 2 * math.pi * 80.0) < 2.0
    assert pp.turns_apart(first, second) < 0.01
    assert math.isnan(pp.turns_apart(first, {**second, "z": float("nan")}))


def test_event_pairs_names_clusters_and_drops_the_beam() -> None:
    beam = np.column_stack([np.zeros(50), np.zeros(50), np.linspace(0.0, 500.0, 50)])
    xyz = np.concatenate([A, B, beam])
    labels = np.concatenate([np.full(len(A), 2), np.full(len(B), 12), np.full(50, -2)])
    (pair,) = pp.event_pairs(xyz, labels)  # the beam sits in the core: no cluster
    two, one_particle, diff = pair
    assert two and not one_particle
    assert abs(diff[0] - 300.0) < 2.0
    # the same two helices as one reaction's ejectile and residual, then as one particle
    (pair,) = pp.event_pairs(xyz, np.where(labels == 12, 3, labels))
    assert pair[:2] == (False, False)
    (pair,) = pp.event_pairs(xyz, np.where(labels == 12, 2, labels))
    assert pair[:2] == (False, True)


def test_a_beam_like_track_has_no_vertex_depth() -> None:
    """|cot| >= 4 (within ~14 deg of the axis): the circle stays, its vertex z does not,
    as `tracks_v7` reads no window column for it."""
    steep = pp.own_vertex(helix(100.0, 80.0, (1.0, 0.0), 5.0))
    assert steep is not None and abs(steep["radius"] - 80.0) < 0.5
    assert math.isnan(steep["z"])


def test_no_pairs_is_a_one_line_exit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["pileup_pairs.py", str(tmp_path)])
    with pytest.raises(SystemExit, match="no pair of product clusters"):
        pp.main()
