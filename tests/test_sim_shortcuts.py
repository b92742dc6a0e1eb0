"""The simulation's shortcuts: attpc-engine's tracks (`data_prep.sim.ode`), its electron
transport (`data_prep.sim.transport`) and Spyral's peaks
(`data_prep.sim.points.spyral_peaks`), bit for bit, with less overhead.

The references are attpc-engine's own ``generate_trajectory`` (SciPy's Radau and
attpc-engine's right-hand side), ``generate_electrons`` and ``transport_track``, and
Spyral's own ``GetTrace``, called directly; equality
is exact, not approximate: any difference would change every simulated event of every
seed.
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


def _launches(rng: np.random.Generator, per_kind: int, vertex_z=lambda rng: 0.4):
    """(nucleus, 4-momentum, vertex) of protons, alphas, 12C and 46Ar: fast and slow,
    curling and straight, in random directions."""
    from attpc_engine import nuclear_map

    for z, a, kinetic in [(1, 1, 4.0), (1, 1, 0.4), (2, 4, 9.0), (6, 12, 5.0), (18, 46, 60.0)]:
        nucleus = nuclear_map.get_data(z, a)
        for _ in range(per_kind):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            p = np.sqrt(kinetic * (kinetic + 2.0 * nucleus.mass))
            momentum = np.array([*(p * direction), kinetic + nucleus.mass])
            vertex = np.array([rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01), vertex_z(rng)])
            yield nucleus, momentum, vertex


def test_tracks_equal_attpc_engines_own_bit_for_bit(generator):
    params = generator.engine.det_params
    for nucleus, momentum, vertex in _launches(np.random.default_rng(3), 3):
        want = ode.engine_functions()["generate_trajectory"](vertex, momentum, nucleus, params)
        got = ode.generate_trajectory(vertex, momentum, nucleus, params)
        assert len(want) > 1
        np.testing.assert_array_equal(got, want)


def test_events_equal_those_made_with_attpc_engine_and_spyral(generator, monkeypatch):
    """Whole events (reaction draws refused and redrawn, beam ions, point formation) of
    several channels: identical arrays made with attpc-engine's tracking and Spyral's
    GetTrace, or with ours."""
    from data_prep.sim import points

    channels = ["p_elastic", "c12_elastic", "alpha_43cl", "pileup", "noise"]
    monkeypatch.setattr(points, "spyral_peaks", points.gettrace_peaks)
    ode.use_functions("engine")
    try:
        want = _events(generator, channels)
    finally:
        ode.use_functions("ours")
    monkeypatch.undo()  # ours again: points.spyral_peaks
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


def test_electron_counts_equal_attpc_engines_with_the_stream_in_step(generator):
    from attpc_engine import nuclear_map

    params = generator.engine.det_params
    nucleus = nuclear_map.get_data(1, 1)
    momentum = np.array([0.0, 60.0, 60.0, 0.0])
    momentum[3] = np.sqrt(momentum[:3] @ momentum[:3] + nucleus.mass**2)
    track = ode.generate_trajectory(np.array([0.0, 0.0, 0.5]), momentum, nucleus, params)
    assert len(track) > 100
    for seed in range(3):
        mine, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        want = ode.engine_functions()["generate_electrons"](track, nucleus, params, theirs)
        got = ode.generate_electrons(track, nucleus, params, mine)
        assert got.dtype == want.dtype == np.int64
        np.testing.assert_array_equal(got, want)
        assert mine.random() == theirs.random()
    empty = track[:0]
    assert len(ode.generate_electrons(empty, nucleus, params, np.random.default_rng(0))) == 0


def test_transport_fills_the_dict_attpc_engines_transport_fills(generator):
    """The (time bucket, pad) -> (electrons, label) dict, items in order, of attpc-engine's
    `transport_track` and ours for tracks of every kind: with and without diffusion, on
    the engine's pad grid and on `see_through`'s (beam pads under offset ids), two tracks
    into one dict (the second's label on the pads they share)."""
    from attpc_engine.detector.transporter import transport_track as theirs
    from numba.core import types
    from numba.typed import Dict

    from data_prep.sim.transport import transport_track as ours

    engine, params = generator.engine, generator.engine.det_params
    rng = np.random.default_rng(3)
    tracks = []
    for nucleus, momentum, vertex in _launches(rng, 2, lambda rng: rng.uniform(0.05, 0.9)):
        track = ode.generate_trajectory(vertex, momentum, nucleus, params)
        electrons = ode.generate_electrons(track, nucleus, params, rng) * params.mpgd_gain
        # z -> time bucket, as attpc-engine's generate_point_cloud converts it
        track[:, 2] = (params.length - track[:, 2]) / engine.drift_velocity
        track[:, 2] += engine.elec_params.micromegas_edge
        tracks.append((track, electrons))

    def fill(transport, grid, diffusion) -> list:
        items = []
        for label, (track, electrons) in enumerate(tracks):
            points = Dict.empty(types.int64, types.Tuple([types.int64, types.int64]))
            args = (grid, engine.pad_grid_edges, diffusion, params.efield, engine.drift_velocity)
            transport(*args, track, electrons, points, label)
            transport(*args, track[::-1].copy(), electrons[::-1].copy(), points, 99)
            items.append(list(points.items()))
        return items

    see_through = generator.see_through(engine).pad_grid
    for grid in (engine.pad_grid, see_through):
        for diffusion in (params.diffusion, 0.0):
            want = fill(theirs, grid, diffusion)
            assert fill(ours, grid, diffusion) == want
            assert sum(len(items) for items in want) > 500  # every case fills the dict


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


# -- point formation: Spyral's peak finding without its per-call overhead --------------------


def test_spyral_peaks_equal_spyrals_gettrace_on_every_trace():
    from data_prep.sim.points import gettrace_peaks, spyral_peaks

    rng = np.random.default_rng(4)
    t = np.arange(512.0)
    traces = []
    for _ in range(400):  # pulses of every height, width and spacing, saturation, noise
        trace = rng.normal(0, rng.uniform(0, 8), 512)
        for _ in range(rng.integers(0, 7)):
            centre, width = rng.uniform(0, 512), rng.uniform(0.5, 40)
            trace += rng.uniform(5, 6000) * np.exp(-0.5 * ((t - centre) / width) ** 2)
        traces.append(np.clip(trace, 0, 4095))
    traces.append(np.zeros(512))
    traces.append(np.full(512, 4095.0))
    options = dict(separation=50.0, prominence=20.0, max_width=50.0, threshold=30.0)
    seeds = np.random.SeedSequence(7).spawn(2)
    mine, theirs = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[0])
    counts = []
    for trace in traces:
        want = gettrace_peaks(trace, **options, rng=theirs)
        assert spyral_peaks(trace, **options, rng=mine) == want
        counts.append(len(want))
    assert mine.random() == theirs.random()  # the jitter draws kept in step
    # the traces exercised every case: none, one and several peaks kept
    assert sum(counts) > 200 and counts.count(0) > 20 and sum(c > 1 for c in counts) > 20
