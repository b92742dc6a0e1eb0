"""scripts/transform_runs.py: points moved as another analysis chain would place them,
checked against positions worked out by hand."""

from __future__ import annotations

import sys

import h5py
import numpy as np
from _scripts import load_script


def test_points_move_away_from_the_micromegas_by_the_factor(tmp_path, monkeypatch):
    sim, out = tmp_path / "sim", tmp_path / "out"
    sim.mkdir()
    points = np.array([[1.0, 2.0, 1000.0, 50.0], [3.0, 4.0, 600.0, 70.0], [5.0, 6.0, 0.0, 9.0]])
    with h5py.File(sim / "run_0000.h5", "w") as f:
        f.attrs["class_names"] = '["proton", "carbon", "other"]'
        f["cloud/cloud_0"] = points
        f["cloud/cloud_0"].attrs["label"] = 2
        f["cloud/cloud_1"] = np.zeros(0)  # an event without points
    monkeypatch.setattr(sys, "argv", ["transform_runs", str(sim), "--drift-scale", "1.1",
                                      "--out", str(out)])  # fmt: skip
    load_script("transform_runs").main()
    with h5py.File(out / "run_0000.h5", "r") as f:
        got = f["cloud/cloud_0"][()]
        # by hand: the micromegas (1,000 mm) stays, 400 mm of drift become 440, 1,000 -> 1,100
        np.testing.assert_allclose(got[:, 2], [1000.0, 560.0, -100.0])
        np.testing.assert_array_equal(got[:, [0, 1, 3]], points[:, [0, 1, 3]])
        assert f["cloud/cloud_0"].attrs["label"] == 2 and f["cloud/cloud_1"].shape == (0,)
        assert f.attrs["class_names"] == '["proton", "carbon", "other"]'
    assert not list(out.glob("*.partial"))


def test_offset_mirror_and_rotation_by_hand():
    import argparse

    transform = load_script("transform_runs").transform
    points = np.array([[10.0, 0.0, 500.0, 1.0], [0.0, 20.0, 250.0, 2.0]])
    args = argparse.Namespace(drift_scale=1.0, z_offset_mm=-30.0, mirror_x=True,
                              rotate_deg=90.0, charge_scale=1.0, length_mm=1000.0)  # fmt: skip
    got = transform(points, args)
    # x -> -x, then a quarter turn: (-10, 0) -> (0, -10); (0, 20) -> (-20, 0); z - 30 mm
    np.testing.assert_allclose(got[:, :2], [[0.0, -10.0], [-20.0, 0.0]], atol=1e-12)
    np.testing.assert_array_equal(got[:, 2], [470.0, 220.0])
    np.testing.assert_array_equal(got[:, 3], points[:, 3])
    args.charge_scale = 10.0
    np.testing.assert_array_equal(transform(points, args)[:, 3], [10.0, 20.0])
