"""scripts/kinematic_oracle.py: the beam's speed against the features' own table, and one
track's columns read with known knobs, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _scripts import load_script

from data_prep.features import BEAM_SPEED, BEAM_SPEED_Z_MM


@pytest.fixture(scope="module")
def oracle():
    from attpc_classify.config import load_config
    from data_prep.simulate import SimConfig

    module = load_script("kinematic_oracle")
    return module, module.speed_grid(load_config(SimConfig, "e15503b_randomized", []))


def nominal_speed(depth_mm: float) -> float:
    """The features' table (computed and tested apart from the script)."""
    return float(np.interp(depth_mm, BEAM_SPEED_Z_MM, BEAM_SPEED))


def test_speed_at_the_window_and_in_the_gas(oracle) -> None:
    _, speed = oracle
    # at the window no gas is crossed: sqrt((E_u - 0.43) / (4.6 - 0.43))
    assert speed([[4.6, 1.0, 0.0]])[0] == pytest.approx(1.0, abs=1e-6)
    assert speed([[4.45, 1.0, 0.0]])[0] == pytest.approx(math.sqrt(4.02 / 4.17), abs=1e-6)
    for depth in (250.0, 500.0, 800.0):  # the nominal beam: the features' table
        assert speed([[4.6, 1.0, depth]])[0] == pytest.approx(nominal_speed(depth), abs=0.003)
    # denser gas or a slower beam: slower at the same depth
    assert speed([[4.6, 1.05, 800.0]])[0] < nominal_speed(800.0) - 0.01
    assert speed([[4.5, 1.0, 800.0]])[0] < nominal_speed(800.0) - 0.01


def test_one_track_read_with_its_knobs(oracle) -> None:
    module, speed = oracle
    names = ["t1_helix_log10_radius_mm", "t1_helix_cot_polar", "t1_helix_log10_invariant",
             "t1_vhelix_cot_polar", "t1_vhelix_log10_invariant",
             "t1_vhelix_log10_invariant_window", "n_tracks"]  # fmt: skip
    # a helix of R = 100 mm at cot 1 (45 deg), about the line and about its own vertex,
    # whose vertex the features put at 410 mm (z as measured)
    inv = math.log10(100.0 * 2.0)
    x = np.array([[2.0, 1.0, inv, 1.0, inv, inv - math.log10(nominal_speed(410.0)), 3.0]])
    # field 3 % high (R 3 % small), z stretched by 2 % and shifted 10 mm, nominal beam
    knobs = np.array([[1.03, 4.6, 1.0, 1.02, 10.0]])
    got = module.corrected(x, names, knobs, speed)[0]
    cot = 1.0 / 1.02
    want_inv = math.log10(103.0 * (1.0 + cot**2) / cot)
    true_depth = (410.0 - 10.0) / 1.02
    want = [math.log10(103.0), cot, want_inv, cot, want_inv,
            want_inv - math.log10(nominal_speed(true_depth)), 3.0]  # fmt: skip
    np.testing.assert_allclose(got, want, atol=0.002)
    assert x[0, 0] == 2.0  # the input is left as it was
