"""scripts/track_identity.py: the event columns made from per-track names, by hand."""

from __future__ import annotations

import numpy as np
from _scripts import load_script

ti = load_script("track_identity")


def test_event_columns_follow_the_track_most_like_the_light_product():
    # event 0: t1 probably the heavy product, t2 the light product; event 1: no track
    rows = np.array([[0.0, 40.0, 7.0], [1.0, 25.0, 3.0]])
    proba = np.array([[0.2, 0.7, 0.1, 0.0, 0.0], [0.9, 0.0, 0.05, 0.05, 0.0]])
    out = ti.identity_columns(2, rows, proba, np.array([0, 0]), np.array([0, 1]))
    k = ti.K
    np.testing.assert_allclose(out[0, :k], [0.2, 0.9] + [np.nan] * (k - 2))
    assert out[0, k] == 0.9 and out[0, k + 1] == 1  # the largest p(light) and its rank
    assert out[0, k + 2] == 0.7 and out[0, k + 3] == 0.1  # t1: p(heavy), p(beam)
    np.testing.assert_array_equal(out[0, k + 4 :], rows[1])  # the light product's row
    assert np.isnan(out[1]).all()
