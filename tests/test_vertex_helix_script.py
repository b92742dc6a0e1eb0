"""scripts/vertex_helix.py: where it puts the true vertex, and the elastic line it reads
the residuals from, by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from _scripts import load_script

ROW = np.zeros(1, dtype=[(n, "f4") for n in ("vertex_x", "vertex_y", "vertex_z", "tilt_deg",
                                             "z_scale", "z_offset_mm", "beam_energy_mev_u",
                                             "pressure_factor", "field_factor")])[0]  # fmt: skip


def test_true_vertex_moves_as_the_points_did() -> None:
    vh = load_script("vertex_helix")
    row = ROW.copy()
    row["vertex_x"], row["vertex_y"], row["vertex_z"] = 3.0, -4.0, 400.0
    row["tilt_deg"], row["z_scale"], row["z_offset_mm"] = 5.0, 1.02, 10.0
    # a drift shear along +y of (1,000 - 400) mm x tan(5 deg); the run's line x = 1 + 0.01 z,
    # y = 2, read at the vertex's measured z = 1.02 x 400 + 10 = 418 mm
    generator = SimpleNamespace(
        config=SimpleNamespace(detector=SimpleNamespace(length_mm=1000.0)),
        shear_offset=lambda drift, tilt: np.outer(drift * math.tan(math.radians(tilt)), [0, 1]),
    )
    got = vh.true_vertex(row, (1.0, 0.01, 2.0, 0.0), generator)
    want = np.array([3.0 - (1.0 + 0.01 * 418.0), -4.0 + 600.0 * math.tan(math.radians(5)) - 2.0])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_elastic_line_at_the_window_is_the_hand_value() -> None:
    from attpc_classify.config import load_config
    from data_prep.sim.physics import EventGenerator
    from data_prep.simulate import SimConfig

    vh = load_script("vertex_helix")
    generator = EventGenerator(load_config(SimConfig, "e15503b_randomized", []))
    row = ROW.copy()
    row["beam_energy_mev_u"], row["pressure_factor"], row["field_factor"] = 4.6, 1.0, 1.0
    # a vertex at the window (no gas crossed): p_max = 2 m_p v M / (M + m_p) with the beam
    # at 4.6 - 0.43 MeV/u, over q B = 0.2998 x 1.68 T: log10 2.538 (docs/sim-to-real.md)
    assert vh.elastic_line(row, generator) == pytest.approx(2.538, abs=0.002)
    row["vertex_z"] = 500.0  # deeper, a slower beam: a lower line
    assert vh.elastic_line(row, generator) < 2.538 - 0.05
