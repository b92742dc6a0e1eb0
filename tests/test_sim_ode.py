"""`data_prep.sim.ode`: attpc-engine's tracks, bit for bit, through the faster solver.

The reference is attpc-engine's own ``generate_trajectory`` (SciPy's Radau and
attpc-engine's right-hand side), called directly; equality is exact, not approximate:
any difference would change every simulated event of every seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attpc_classify.config import load_config
from data_prep.sim import ode
from data_prep.sim.config import SimConfig
from data_prep.sim.physics import EventGenerator
from data_prep.sim.randomize import draw_knobs
from data_prep.sim.runner import event_rng, knob_rng


@pytest.fixture(scope="module")
def generator() -> EventGenerator:
    return EventGenerator(load_config(SimConfig, "e15503b_randomized"))


def _events(generator: EventGenerator, channels: list[str]) -> list:
    cfg = generator.config
    return [
        generator.generate(ch, event_rng(5, i), draw_knobs(cfg, knob_rng(5, i, 0, "event")))
        for i, ch in enumerate(channels)
    ]


def test_tracks_equal_attpc_engines_own_bit_for_bit(generator):
    from attpc_engine import nuclear_map

    params = generator.engine.det_params
    rng = np.random.default_rng(3)
    # protons, alphas, 12C and 46Ar: fast and slow, curling and straight, both directions
    for z, a, kinetic in [(1, 1, 4.0), (1, 1, 0.4), (2, 4, 9.0), (6, 12, 5.0), (18, 46, 60.0)]:
        nucleus = nuclear_map.get_data(z, a)
        for _ in range(3):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            p = np.sqrt(kinetic * (kinetic + 2.0 * nucleus.mass))
            momentum = np.array([*(p * direction), kinetic + nucleus.mass])
            vertex = np.array([rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01), 0.4])
            want = ode.engine_generate_trajectory()(vertex, momentum, nucleus, params)
            got = ode.generate_trajectory(vertex, momentum, nucleus, params)
            assert len(want) > 1
            np.testing.assert_array_equal(got, want)


def test_events_equal_those_made_with_attpc_engines_solver(generator, monkeypatch):
    """Whole events (reaction draws refused and redrawn, beam ions, point formation) of
    several channels: identical arrays with either tracking function."""
    from attpc_engine.detector import solver

    channels = ["p_elastic", "c12_elastic", "alpha_43cl", "pileup"]
    monkeypatch.setattr(solver, "generate_trajectory", ode.engine_generate_trajectory())
    want = _events(generator, channels)
    monkeypatch.setattr(solver, "generate_trajectory", ode.generate_trajectory)
    got = _events(generator, channels)
    for a, b in zip(want, got, strict=True):
        _assert_same(b, a)


def _assert_same(got, want, where: str = "event") -> None:
    """Equal field by field, arrays exactly, nested dataclasses (the knobs) too."""
    if dataclasses.is_dataclass(want):
        for field in dataclasses.fields(want):
            name = f"{where}.{field.name}"
            _assert_same(getattr(got, field.name), getattr(want, field.name), name)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert got == want, where


def test_lu_helpers_match_scipys():
    import scipy.linalg

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.complex128):
        a = rng.normal(size=(6, 6)).astype(dtype)
        b = rng.normal(size=6).astype(dtype)
        if dtype is np.complex128:
            a = a + 1j * rng.normal(size=(6, 6))
            b = b + 1j * rng.normal(size=6)
        lu, piv = ode.lu_factor(a.copy())
        want_lu, want_piv = scipy.linalg.lu_factor(a.copy())
        np.testing.assert_array_equal(lu, want_lu)
        np.testing.assert_array_equal(piv, want_piv)
        np.testing.assert_array_equal(
            ode.lu_solve((lu, piv), b.copy()), scipy.linalg.lu_solve((want_lu, want_piv), b)
        )
    with pytest.raises(ValueError):
        ode.lu_factor(np.full((2, 2), np.nan))
