"""A run's charge unit (``charge_calibration: proton_band``): the median charge per mm of
its elastic-proton band, and the features' charges in that unit.

Checked by hand: the band's median and the run columns of an event whose numbers are
worked out below; end to end: two run files written in Spyral's layout, one at three
times the other's gain, give the same run columns and units in the ratio 3."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from attpc_classify.cli import main
from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.features import band_unit, event_features, feature_names, run_columns
from data_prep.images import ImageConfig, project_arrays
from tests._formats import write_spyral

V3_RUN = feature_names("tracks_v3", run_unit=True)


def _band_rows(rows: list[tuple[float, float, float]]) -> np.ndarray:
    """Feature rows with only t1's cot, log10 invariant and log10 ADC per mm set."""
    x = np.full((len(rows), len(V3_RUN)), np.nan, np.float32)
    for i, (cot, inv, per_mm) in enumerate(rows):
        x[i, V3_RUN.index("t1_helix_cot_polar")] = cot
        x[i, V3_RUN.index("t1_helix_log10_invariant")] = inv
        x[i, V3_RUN.index("t1_log10_charge_per_mm_run")] = np.log10(per_mm)
    return x


def test_band_unit_is_the_median_of_the_band_tracks_only() -> None:
    rows = [
        (1.0, 2.45, 10.0),  # in the band
        (0.6, 2.35, 40.0),  # in
        (1.9, 2.55, 20.0),  # in
        (0.4, 2.45, 1000.0),  # too steep a track (cot <= 0.5): out
        (1.0, 2.7, 1000.0),  # off the elastic line: out
        (-1.0, 2.45, 1000.0),  # backward: out
        (np.nan, np.nan, 1000.0),  # no helix: out
    ]
    unit, n = band_unit(_band_rows(rows), "tracks_v3")
    assert n == 3 and unit == pytest.approx(20.0, rel=1e-5)  # median of 10, 40, 20
    unit, n = band_unit(_band_rows(rows[:2] + rows[3:]), "tracks_v3")
    assert n == 2 and np.isnan(unit)  # fewer than BAND_MIN_TRACKS = 3
    # the band is the caller's: a wider invariant range takes the 1000 in
    unit, n = band_unit(_band_rows(rows), "tracks_v3", log10_invariant=(2.3, 2.8))
    # (taken on log10: of an even count, the geometric mean of the middle two)
    assert n == 4 and unit == pytest.approx(np.sqrt(20.0 * 40.0), rel=1e-5)


def _line_event() -> np.ndarray:
    """A straight track of 21 points from (40, 0, 520) to (140, 0, 570) mm with charges
    100, 300, 100, ... (11 x 100, 10 x 300) and 5 beam-core points of charge 50."""
    s = np.linspace(0.0, 1.0, 21)
    track = np.column_stack(
        [40 + 100 * s, 0 * s, 520 + 50 * s, np.where(np.arange(21) % 2, 300.0, 100.0)]
    )
    core = np.column_stack([np.zeros(5), np.zeros(5), np.linspace(100, 500, 5), np.full(5, 50.0)])
    return np.vstack([core, track])


def test_run_columns_of_a_track_by_hand() -> None:
    pts = _line_event()
    x = event_features(pts, np.array([len(pts)]), "tracks_v3", run_unit=10.0)
    names = feature_names("tracks_v3", run_unit=True)
    assert x.shape == (1, len(names))
    # median of the 26 kept charges (5 x 50, 11 x 100, 10 x 300) = 100 ADC; / 10
    assert x[0, names.index("log10_charge_median_run")] == pytest.approx(1.0, abs=1e-6)
    # t1: 4,100 ADC over its length sqrt(100^2 + 50^2) = 111.80 mm, in units of 10
    per_mm = 4100.0 / np.hypot(100.0, 50.0) / 10.0
    assert x[0, names.index("t1_log10_charge_per_mm_run")] == pytest.approx(
        np.log10(per_mm), abs=1e-5
    )
    assert np.isnan(x[0, names.index("t2_log10_charge_per_mm_run")])  # no second track
    # without a unit the columns are not there; the others do not change
    plain = event_features(pts, np.array([len(pts)]), "tracks_v3")
    np.testing.assert_array_equal(plain, x[:, : plain.shape[1]])
    # a run without a unit: NaN columns
    nan = run_columns(plain, np.array([100.0]), "tracks_v3", float("nan"))
    assert np.isnan(nan).all() and nan.shape == (1, len(names) - plain.shape[1])


def test_the_config_asks_for_helix_features_and_the_files_unit() -> None:
    with pytest.raises(InputError, match="tracks_v2 or later"):
        ImageConfig(features="tracks_v1", charge_calibration="proton_band")
    with pytest.raises(InputError, match="charge_calibration must be one of"):
        ImageConfig(features="tracks_v3", charge_calibration="gain")
    cfg = ImageConfig(views=("xy",), size=8, features="tracks_v3", charge_calibration="proton_band")
    pts = _line_event()
    with pytest.raises(InputError, match="run_charge_unit"):
        project_arrays(pts, np.array([len(pts)]), cfg)
    assert len(cfg.feature_names) == len(feature_names("tracks_v3")) + 6


def _band_proton(rng: np.random.Generator, gain: float) -> np.ndarray:
    """An elastic-proton-like helix from the axis at 45 deg (cot 1) on a circle of radius
    141 mm: log10 R (1 + cot^2) / cot = 2.45, in the band; charges ~100 x ``gain``."""
    radius, phi = 141.0, np.linspace(0.02, 1.2, 60)
    x, y = radius - radius * np.cos(phi), radius * np.sin(phi)
    z = 300.0 + radius * phi  # dz / ds = 1
    q = gain * rng.uniform(80.0, 120.0, len(phi))
    return np.column_stack([x, y, z, q])


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_at_three_times_the_gain_reads_the_same_in_its_own_unit(tmp_path, workers) -> None:
    """(With 2 workers the units are measured on the pool's workers, a task per file.)"""
    rng = np.random.default_rng(3)
    protons = [_band_proton(rng, 1.0) for _ in range(5)]
    carbons = [
        np.column_stack([p[:, 0] * 0.5, p[:, 1] * 0.5, p[:, 2], p[:, 3] * 6]) for p in protons
    ]
    clouds = protons + carbons
    paths = []
    for gain, name in ((1.0, "run_0001.h5"), (3.0, "run_0002.h5")):
        events = [
            Event(run=1, event_id=i, label=0, points=c * [1, 1, 1, gain])
            for i, c in enumerate(clouds)
        ]
        paths.append(write_spyral(tmp_path / name, events))
    out = tmp_path / "f.h5"
    assert main(["preprocess", *map(str, paths), "--out", str(out), "--set", "features=tracks_v3",
                 "--set", "charge_calibration=proton_band", "--quiet", "--workers", str(workers),
                 "--events-per-task", "4"]) == 0  # fmt: skip
    with h5py.File(out) as f:
        x, run_of = f["features"][()], f["run"][()]
        units = json.loads(f.attrs["charge_units"])
        names = json.loads(f["features"].attrs["feature_names"])
    u1, u2 = (units[str(p)] for p in paths)
    assert u2 / u1 == pytest.approx(3.0, rel=1e-5)
    # the unit is the median charge per mm of the five band protons (the carbon-like
    # tracks, half the radius, sit off the elastic line), by hand from the first file
    # (the track is its points off the 30-mm beam core; length along its principal axis)
    assert u1 == pytest.approx(float(np.median([_per_mm_by_hand(p) for p in protons])), rel=1e-4)
    run_cols = [names.index(n) for n in names if n.endswith("_run")]
    a, b = x[: len(clouds)], x[len(clouds) :]
    assert np.isfinite(a[:, run_cols[1]]).all()
    np.testing.assert_allclose(a[:, run_cols], b[:, run_cols], atol=1e-5)  # gain-free per run
    assert run_of.tolist() == [1] * len(clouds) + [2] * len(clouds)  # from the file names


def test_a_run_without_band_tracks_has_no_unit_and_nan_columns(tmp_path, capsys) -> None:
    rng = np.random.default_rng(4)
    events = [Event(run=1, event_id=i, label=2, points=np.column_stack(
        [rng.uniform(-200, 200, 30), rng.uniform(-200, 200, 30), rng.uniform(0, 900, 30),
         rng.uniform(10, 100, 30)])) for i in range(6)]  # fmt: skip
    path = write_spyral(tmp_path / "run_0003.h5", events)
    out = tmp_path / "f.h5"
    assert main(["preprocess", str(path), "--out", str(out), "--set", "features=tracks_v3",
                 "--set", "charge_calibration=proton_band"]) == 0  # fmt: skip
    assert "no charge unit: 0 band tracks in 6 events" in capsys.readouterr().err
    with h5py.File(out) as f:
        assert json.loads(f.attrs["charge_units"]) == {str(path): None}
        names = json.loads(f["features"].attrs["feature_names"])
        x = f["features"][()]
    assert np.isnan(x[:, [names.index(n) for n in names if n.endswith("_run")]]).all()


def _per_mm_by_hand(p: np.ndarray) -> float:
    """A track's charge per mm as the features measure it: its points off the 30-mm beam
    core, over its extent along its principal axis."""
    p = p[np.hypot(p[:, 0], p[:, 1]) >= 30.0]
    centred = p[:, :3] - p[:, :3].mean(axis=0)
    return float(p[:, 3].sum() / np.ptp(centred @ np.linalg.svd(centred)[2][0]))


def test_short_files_of_one_run_read_in_their_pooled_unit(tmp_path, capsys) -> None:
    # five band protons spread over three files, fewer than 3 in each: no file has a unit
    # of its own, together they have one, the median of all five
    rng = np.random.default_rng(6)
    protons = [_band_proton(rng, 1.0) for _ in range(5)]
    paths = []
    for k, share in enumerate((protons[:2], protons[2:4], protons[4:])):
        events = [Event(run=7, event_id=i, label=0, points=p) for i, p in enumerate(share)]
        paths.append(str(write_spyral(tmp_path / f"run_000{k}.h5", events)))
    sets = ["--set", "features=tracks_v3", "--set", "charge_calibration=proton_band"]
    out = tmp_path / "pooled.h5"
    assert main(["preprocess", *paths, "--out", str(out), *sets]) == 0
    err = capsys.readouterr().err
    assert err.count("the unit of the 3 files' band tracks pooled") == 3, err
    with h5py.File(out) as f:
        units = json.loads(f.attrs["charge_units"])
    want = float(np.median([_per_mm_by_hand(p) for p in protons]))
    assert list(units.values()) == pytest.approx([want] * 3, rel=1e-4)
    # without the fallback each file stays without a unit
    alone = tmp_path / "alone.h5"
    assert main(["preprocess", *paths, "--out", str(alone), *sets,
                 "--set", "calibration_fallback=none", "--quiet"]) == 0  # fmt: skip
    with h5py.File(alone) as f:
        assert set(json.loads(f.attrs["charge_units"]).values()) == {None}


def test_calibration_without_helix_features_is_one_line_exit_2(tmp_path, capsys) -> None:
    path = write_spyral(tmp_path / "run_0003.h5", [Event(run=1, event_id=0, label=0,
                                                         points=_line_event())])  # fmt: skip
    code = main(["preprocess", str(path), "--out", str(tmp_path / "f.h5"),
                 "--set", "charge_calibration=proton_band"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "tracks_v2 or later" in err


def test_classify_measures_each_files_unit_as_preprocess_did(tmp_path, capsys) -> None:
    from attpc_classify.predict import read_predictions

    rng = np.random.default_rng(5)
    paths = []
    for k, gain in enumerate((1.0, 2.0)):
        events = []
        for i in range(12):
            p = _band_proton(rng, gain)
            if i % 2:  # a carbon-like track: tighter, six times the charge per mm
                p = np.column_stack([p[:, 0] * 0.5, p[:, 1] * 0.5, p[:, 2], p[:, 3] * 6])
            events.append(Event(run=k, event_id=i, label=i % 2, points=p))
        paths.append(str(write_spyral(tmp_path / f"run_000{k}.h5", events)))
    data, run = tmp_path / "f.h5", tmp_path / "run"
    sets = ["--set", "features=tracks_v2", "--set", "charge_calibration=proton_band"]
    assert main(["preprocess", *paths, "--out", str(data), *sets, "--quiet"]) == 0
    train = ["--data", str(data), "--out", str(run), "model.max_iter=5", "data.val_fraction=0.25"]
    assert main(["train", "--config", "configs/train/gbt.yaml", *train, "--quiet"]) == 0
    raw, stored = tmp_path / "raw.csv", tmp_path / "stored.csv"
    capsys.readouterr()
    assert main(["classify", str(run), *paths, "--out", str(raw)]) == 0
    assert "charge unit of 2 of 2 file(s)" in capsys.readouterr().err
    assert main(["classify", str(run), str(data), "--out", str(stored), "--quiet"]) == 0
    got, want = read_predictions(raw), read_predictions(stored)
    np.testing.assert_allclose(got["p_proton"], want["p_proton"], atol=1e-6)
    # an evaluation of the same images with other features (the file featured again, by
    # other code or in another unit) is not what `compare --data` reports for it
    other = tmp_path / "other" / data.name
    other.parent.mkdir()
    other.write_bytes(data.read_bytes())
    with h5py.File(other, "r+") as f:
        names = json.loads(f["features"].attrs["feature_names"])
        x = f["features"][:]
        x[:, [i for i, n in enumerate(names) if n.endswith("_run")]] = np.nan
        f["features"][...] = x
    quiet = ["--n-boot", "0", "--no-figures", "--quiet"]
    assert main(["evaluate", str(run), "--data", str(data), *quiet]) == 0
    cmp = ["compare", str(run), "--data", str(other), "--out", str(tmp_path / "cmp")]
    assert main([*cmp, "--n-boot", "0"]) == 0
    evaluated = [json.loads(p.read_text())["data"] for p in (run / "eval").glob("*/metrics.json")]
    assert sorted(evaluated) == sorted([str(data), str(other)])
    # data.unit_dropout reaches the fit (a tenth of 2 runs: one run hidden)
    hidden = tmp_path / "hidden"
    assert main(["train", "--config", "configs/train/gbt.yaml", *train[:2], "--out", str(hidden),
                 *train[4:], "data.unit_dropout=0.1"]) == 0  # fmt: skip
    assert "charge unit hidden for 10% of the training run files" in capsys.readouterr().out
    # a refit of those trees (adapt, model.init=run:) reads the simulation as they did:
    # one run's charges in the unit hidden, the other's as stored
    from attpc_classify.trees_adapt import source_inputs, source_sets

    cfg, source, _ = source_sets(hidden)
    x, _ = source_inputs(None, cfg, source, cfg.data.task)
    cols = [i for i, n in enumerate(source.config.feature_names) if n.endswith("_run")]
    want = {r: source.features[source.run == r][:, cols] for r in (0, 1)}
    got = {r: x[source.run == r][:, cols] for r in (0, 1)}
    assert np.isfinite(want[0][:, 0]).all() and np.isfinite(want[1][:, 0]).all()
    assert sorted(bool(np.isnan(got[r]).all()) for r in (0, 1)) == [False, True]
    for r in (0, 1):
        if not np.isnan(got[r]).all():
            np.testing.assert_array_equal(got[r], want[r])
    # an image file made without the calibration does not fit the model
    plain = tmp_path / "plain.h5"
    assert main(["preprocess", *paths, "--out", str(plain), "--set", "features=tracks_v2",
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["classify", str(run), str(plain), "--out", str(tmp_path / "x.csv")]) == 2
    assert "charge_calibration" in capsys.readouterr().err


def test_unit_dropout_hides_the_run_columns_of_whole_runs() -> None:
    from attpc_classify.data import hide_run_units
    from attpc_classify.train_config import DataConfig

    names = [
        "n_tracks",
        "log10_charge_median_run",
        "t1_helix_cot_polar",
        "t1_log10_charge_per_mm_run",
    ]
    runs = np.array([1, 1, 2, 2, 2, 3])
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    got = hide_run_units(x, runs, names, 0.34, seed=0)  # round(0.34 x 3) = 1 run of 3
    hidden = np.isnan(got).any(axis=1)
    assert len(np.unique(runs[hidden])) == 1 and set(runs[~hidden]) | set(runs[hidden]) == {1, 2, 3}
    assert np.isnan(got[hidden][:, [1, 3]]).all()  # both run columns of every event of the run
    np.testing.assert_array_equal(got[:, [0, 2]], x[:, [0, 2]])  # the rest as it was
    np.testing.assert_array_equal(got[~hidden], x[~hidden])
    assert not np.isnan(x).any()  # a copy
    np.testing.assert_array_equal(hide_run_units(x, runs, names, 0.0, seed=0), x)
    with pytest.raises(InputError, match="unit_dropout"):
        DataConfig(unit_dropout=1.0)


def test_the_elastic_invariant_agrees_with_relativistic_two_body_kinematics() -> None:
    from data_prep.features import elastic_invariant_mm

    # 46Ar at 4.6 MeV/u on a proton in 1.68 T (the e15503b presets): the struck proton's
    # momentum from relativistic elastic kinematics, p3 = 2 m p1 (E1 + m) cos / ((E1 +
    # m)^2 - p1^2 cos^2), then R = p3 sin / (0.2998 B), over sin cos, at several angles
    m, big = 938.272, 46 * 931.494
    e1 = big + 46 * 4.6
    p1 = np.sqrt(e1**2 - big**2)
    for deg in (10.0, 30.0, 45.0, 60.0, 80.0):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        p3 = 2 * m * p1 * (e1 + m) * c / ((e1 + m) ** 2 - (p1 * c) ** 2)
        radius_mm = p3 / 1000 / (0.299792458 * 1.68) * 1000 * s
        assert elastic_invariant_mm(4.6, 1.68, 46) == pytest.approx(radius_mm / (s * c), rel=0.01)
    # the band's ends: 362 mm (log10 2.56) at the window, 2.30 for a beam slowed to 1.4 MeV/u
    assert np.log10(elastic_invariant_mm(4.6, 1.68, 46)) == pytest.approx(2.56, abs=0.005)
    assert np.log10(elastic_invariant_mm(1.4, 1.68, 46)) == pytest.approx(2.30, abs=0.005)
