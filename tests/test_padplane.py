"""The pad at a position (data_prep.padplane) against a brute-force nearest centre."""

from __future__ import annotations

from importlib import resources

import numpy as np

from data_prep.padplane import PAD_MATCH_MM, pad_centres, pads_at


def test_pad_centres_are_attpc_engines_and_spyrals_file():
    """Row = pad id of attpc-engine's padxy.csv, which Spyral ships too, read by hand."""
    rows = []
    for package in ("attpc_engine.detector.data", "spyral.data"):
        text = resources.files(package).joinpath("padxy.csv").read_text()
        rows.append([[float(v) for v in line.split(",")] for line in text.split()[1:]])
    assert rows[0] == rows[1] and len(rows[0]) == 10240
    np.testing.assert_array_equal(pad_centres(), rows[0])


def test_pads_at_is_the_nearest_centre_within_the_tolerance():
    centres = pad_centres()
    rng = np.random.default_rng(0)
    pads = rng.integers(0, len(centres), 300)
    # at a centre, a little off it, mirrored (the plane's symmetry), and anywhere
    xy = np.concatenate([
        centres[pads],
        centres[pads] + rng.normal(0.0, 0.4, (300, 2)),
        centres[pads] * [1.0, -1.0],
        rng.uniform(-280.0, 280.0, (600, 2)),
    ])  # fmt: skip
    distance = np.hypot(*(xy[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    nearest = distance.argmin(axis=1)
    want = np.where(distance.min(axis=1) <= PAD_MATCH_MM, nearest, -1)
    got = pads_at(xy)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:300], pads)  # exactly at a centre: that pad
    assert (got[600:900] >= 0).all()  # a mirrored centre is a centre
    assert 0 < (got[900:] < 0).sum() < 600  # anywhere: some near a centre, some not
    assert len(pads_at(np.zeros((0, 2)))) == 0
