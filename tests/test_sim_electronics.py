"""Electronics drawn per run file: point formation (Spyral peaks / pytpc one point per pad)
and GET shaping time (``randomize.point_formation``, ``randomize.shaping_time_ns``).

One tiny simulation (12 events, 3 per file) whose four files draw the four combinations
of {peaks, pad} x {232, 1014 ns} (seed 16; found by drawing the file settings alone) is
written by the real `simulate` and shared. The properties checked are those of the
points, not of the drawing code: one point per pad in a pad file, several on some pad in
a peaks file, pulses as wide as the GET response formula says for the file's setting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from attpc_classify.config import load_config
from data_prep.sim.physics import PILEUP_OFFSET
from data_prep.simulate import SimConfig, simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"
SEED = 16
PER_FILE = 3
DRAWN = ["randomize.point_formation=[peaks, pad]", "randomize.shaping_time_ns=[232, 1014]"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _events(path: Path):
    """(table row, points, labels) of every event of a run file."""
    with h5py.File(path) as f:
        for row in f["events"][()]:
            n = int(row["event"])
            yield row, f[f"cloud/cloud_{n}"][()], f[f"cloud/labels_{n}"][()]


def _width_buckets(shaping_time_ns: float, clock_mhz: float) -> float:
    """Integral / maximum of the GET response exp(-3c) c^3 sin(c), c = t / (tau f), as
    the sampled trace sees it, by hand: the response is cut to zero where sin < 0, so the
    integral is that of its positive lobes (scipy's quad on [0, pi] and [2 pi, 3 pi];
    later lobes are < 1e-8 of it) in c, i.e. that / dc in samples, dc = step / (tau f)
    with attpc-engine's sample step 512/511 buckets; the maximum is taken over those
    samples (a short pulse is sampled below its top)."""
    from scipy.integrate import quad

    def f(c: float) -> float:
        return float(np.exp(-3 * c) * c**3 * np.sin(c))

    integral = quad(f, 0, np.pi)[0] + quad(f, 2 * np.pi, 3 * np.pi)[0]
    dc = (512 / 511) / (shaping_time_ns * clock_mhz * 1e-3)
    c = np.arange(1, 512) * dc
    peak = float(np.max(np.exp(-3 * c) * c**3 * np.sin(c)))
    return integral / dc / peak


@pytest.fixture(scope="module")
def drawn_config() -> SimConfig:
    return load_config(SimConfig, CONFIGS / "tiny.yaml", DRAWN)


@pytest.fixture(scope="module")
def drawn_run(drawn_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("elec") / "run"
    return simulate(drawn_config, 12, out, seed=SEED, events_per_file=PER_FILE)


def _file_settings(summary) -> list[tuple[int, float]]:
    settings = []
    for path in summary.files:
        with h5py.File(path) as f:
            table = f["events"][()]
        # one setting holds the whole file
        assert len(set(zip(table["point_formation"], table["shaping_time_ns"], strict=True))) == 1
        settings.append((int(table["point_formation"][0]), float(table["shaping_time_ns"][0])))
    return settings


def test_electronics_are_drawn_per_file_and_stored(drawn_run):
    settings = _file_settings(drawn_run)
    # codes 0 = peaks, 1 = pad; values from the listed choices; the files differ
    assert sorted(settings) == [(0, 232.0), (0, 1014.0), (1, 232.0), (1, 1014.0)]


def test_pad_files_have_one_point_per_pad(drawn_run):
    """In a pad file a reaction (and the beam ions, formed together) leave at most one
    point per pad; the peaks files of this tiny run hold single pulses per pad too (two
    pulses need 50 buckets between them), so the next test makes them by hand."""
    most = {0: 0, 1: 0}
    for path, (mode, _) in zip(drawn_run.files, _file_settings(drawn_run), strict=True):
        for _, points, labels in _events(path):
            groups = np.where(labels >= 0, labels // PILEUP_OFFSET, labels)  # one reaction
            for group in set(groups.tolist()) - {-1}:  # noise hits are not formed
                _, counts = np.unique(points[groups == group, 5], return_counts=True)
                most[mode] = max(most[mode], int(counts.max()))
    assert most[1] == 1 and most[0] >= 1


def test_the_generator_forms_points_as_the_knobs_say(drawn_run, drawn_config):
    """Two charges 200 buckets apart on one pad: the peaks formation gives two points at
    the charge times, the pad formation one, whatever shaping time the file drew."""
    from data_prep.sim.randomize import fixed_knobs
    from data_prep.sim.runner import _generator

    gen = _generator(drawn_config)  # the one the fixture's run used (cached per process)
    pad = int(gen.noise_pads[5000])
    raw = np.array([[pad, 60.0, 3e5], [pad, 260.0, 2e5]])
    for tau in (232.0, 1014.0):
        counts = {}
        for mode in (0, 1):
            knobs = fixed_knobs(drawn_config)
            knobs.point_formation, knobs.shaping_time_ns, knobs.pad_gain_spread = mode, tau, 0
            rng = np.random.default_rng(0)
            points, labels = gen.form(raw, np.array([0, 1]), gen.engine, knobs, rng)
            counts[mode] = len(points)
            if mode == 0:
                np.testing.assert_allclose(points[:, 6], [60, 260], atol=1.0)
                assert labels.tolist() == [0, 1]
        assert counts == {0: 2, 1: 1}, tau


def test_pulse_width_follows_the_files_shaping_time(drawn_run, drawn_config):
    """integral / amplitude of a point is at least the response's own width (the trace is
    the response convolved with non-negative charge); noise hits have exactly that width;
    the 1014 ns files' points are wider than the 232 ns files'."""
    clock = drawn_config.electronics.clock_mhz
    medians = {}
    for path, (mode, tau) in zip(drawn_run.files, _file_settings(drawn_run), strict=True):
        width = _width_buckets(tau, clock)
        ratio, noise = [], []
        for _, points, labels in _events(path):
            r = points[:, 4] / points[:, 3]
            noise.extend(r[labels == -1].tolist())
            ratio.extend(r[labels >= 0].tolist())
        np.testing.assert_allclose(noise, width, rtol=0.005)
        if mode == 1:  # pad: integral of the whole trace (peaks: Spyral's bounds)
            assert min(ratio) >= 0.98 * width, (tau, min(ratio), width)
        medians[(mode, tau)] = float(np.median(ratio))
    for mode in (0, 1):
        assert medians[(mode, 1014.0)] > 2.5 * medians[(mode, 232.0)], medians


def test_physics_draws_do_not_move(drawn_run, drawn_config, tmp_path):
    """The same seed without drawn electronics gives the same channels and vertices (the
    electronics come from their own stream) wherever neither run redrew the reaction."""
    plain = load_config(SimConfig, CONFIGS / "tiny.yaml")
    fixed = simulate(plain, 12, tmp_path / "plain", seed=SEED, events_per_file=PER_FILE)
    tables = []
    for summary in (drawn_run, fixed):
        tables.append(np.concatenate([[r for r, _, _ in _events(p)] for p in summary.files]))
    drawn, nominal = tables
    assert np.all(nominal["point_formation"] == 0) and np.all(nominal["shaping_time_ns"] == 502)
    assert drawn["channel"].tolist() == nominal["channel"].tolist()
    same = (drawn["draws"] == 1) & (nominal["draws"] == 1)
    assert same.sum() >= 6
    for axis in ("vertex_x", "vertex_y", "vertex_z"):
        np.testing.assert_array_equal(drawn[axis][same], nominal[axis][same])


@pytest.mark.slow
def test_two_workers_give_the_same_bytes(drawn_run, drawn_config, tmp_path):
    """Two spawned workers write the files of one process (slow: 2 process start-ups)."""
    twice = simulate(drawn_config, 12, tmp_path / "w2", seed=SEED, workers=2, events_per_file=3)
    assert [_digest(p) for p in twice.files] == [_digest(p) for p in drawn_run.files]


def test_randomized_preset_draws_both_knobs():
    config = load_config(SimConfig, CONFIGS / "e15503b_randomized.yaml")
    assert set(config.randomize.point_formation) == {"peaks", "pad"}
    standin = load_config(SimConfig, CONFIGS / "e15503b_standin.yaml")
    # the stand-in's electronics now lie inside the training choices
    assert standin.electronics.point_formation in config.randomize.point_formation
    assert standin.electronics.shaping_time_ns in config.randomize.shaping_time_ns
