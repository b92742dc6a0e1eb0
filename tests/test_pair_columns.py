"""scripts/pair_columns.py: the pair columns of given clusters, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from _scripts import load_script
from test_features import helix


def test_pair_columns_of_two_reactions_by_hand():
    """Two helices from the axis, circles' centres at 35 and 200 deg, vertices at z = 300
    and 520: the pair (1, 2) has angle 165 deg and gap 220 mm; no third track."""
    pc = load_script("pair_columns")
    first = helix(300.0, 150.0, 50.0, azimuth_deg=35.0, sense=1)
    second = helix(520.0, 250.0, 70.0, azimuth_deg=200.0, sense=-1, phi_max=1.0)
    pts = np.concatenate([first, second])
    labels = np.r_[np.zeros(len(first), int), np.ones(len(second), int)]
    got = pc.pair_columns(pts, labels)
    assert got.shape == (len(pc.PAIRS), 2)
    assert got[0, 0] == pytest.approx(np.deg2rad(165.0), abs=1e-6)
    assert got[0, 1] == pytest.approx(220.0, abs=1e-6)
    assert np.isnan(got[1:]).all()  # pairs with a third, fourth or fifth track
