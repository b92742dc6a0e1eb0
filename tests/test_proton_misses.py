"""scripts/proton_misses.py: the turns of a track about its circle, against helices drawn
with a known number of turns."""

from __future__ import annotations

import numpy as np
import pytest
from _scripts import load_script


@pytest.mark.parametrize("n_turns", [0.3, 1.0, 2.5])
def test_turns_of_a_drawn_helix(n_turns: float) -> None:
    pm = load_script("proton_misses")
    # a helix from the beam axis: circle of radius 80 mm through the origin, centre at
    # (40, 69), 2 mm pad-plane steps with 1 mm of noise, z climbing 0.5 mm per mm of arc
    radius, rng = 80.0, np.random.default_rng(1)
    centre = radius * np.array([np.cos(1.05), np.sin(1.05)])
    phi = np.linspace(0.0, 2.0 * np.pi * n_turns, int(radius * 2.0 * np.pi * n_turns / 2.0))
    start = np.arctan2(-centre[1], -centre[0])
    xy = centre + radius * np.column_stack([np.cos(start - phi), np.sin(start - phi)])
    xyz = np.column_stack([xy + rng.normal(0.0, 1.0, xy.shape), 0.5 * radius * phi])
    assert pm.turns(xyz) == pytest.approx(n_turns, abs=0.02)
    assert pm.turns(xyz[::-1]) == pytest.approx(n_turns, abs=0.02)  # point order is z's


def test_pieces_counts_the_clusters_that_are_mostly_the_proton() -> None:
    pm = load_script("proton_misses")
    # a radial proton track from 40 to 200 mm with a 60 mm gap (dead pads) from 100 to
    # 160 mm: two clusters of 4 mm steps; a 3-point stub (too small); a beam-ion line
    # (label -2) of its own far from them
    r = np.concatenate([np.arange(40.0, 100.0, 4.0), np.arange(160.0, 200.0, 4.0), [210, 214, 218]])
    proton = np.column_stack([r, np.zeros_like(r), 300.0 + r])
    beam = np.column_stack([np.full(20, -80.0), np.zeros(20), 500.0 + 4.0 * np.arange(20)])
    stub = proton[-3:] + np.array([0.0, 0.0, 200.0])  # moved away from the track
    xyz = np.vstack([proton[:-3], beam, stub])
    lab = np.concatenate([np.full(len(proton) - 3, 2), np.full(20, -2), np.full(3, 2)])
    assert pm.pieces(xyz, lab) == 2
