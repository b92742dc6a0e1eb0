"""Structured-noise cleaning (data_prep.structured): each rule on hand-made events whose
noise points are known by construction, hot pads found from simulated run files against
the simulation's own faults, and the option applied by preprocess before the features."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from attpc_classify.config import load_config
from data_prep.build import build_images
from data_prep.errors import InputError
from data_prep.features import event_features
from data_prep.images import ImageConfig, project_arrays
from data_prep.readers import open_events
from data_prep.simulate import SimConfig, simulate
from data_prep.structured import (
    StructuredNoiseRules,
    find_hot_pads,
    group_medians,
    hot_pads_from_events,
    spark_cells,
    spark_mask,
    structured_noise_mask,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"
RULES = StructuredNoiseRules()


def _track(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A straight track from near the axis outwards and downstream: points 4 mm apart,
    each on its own pad, at most 8 consecutive pads of one 64-pad chip."""
    t = np.arange(n) * 4.0
    xyz = np.column_stack([30 + 0.6 * t, 10 + 0.3 * t, 200 + 0.7 * t])
    pads = 2000 + (np.arange(n) // 8) * 64 + np.arange(n) % 8
    return xyz, pads


def _rows(xyz: np.ndarray) -> np.ndarray:
    return np.column_stack([xyz, np.full(len(xyz), 100.0)])


def test_fired_chip_goes_and_the_track_stays():
    rng = np.random.default_rng(0)
    track, track_pads = _track()
    # chip 40 (pads 2560-2623) fires at z = 600 (+- 1 bucket ~ 4 mm), anywhere on the plane
    chip_pads = 40 * 64 + np.arange(64)
    chip = np.column_stack(
        [rng.uniform(-200, 200, 64), rng.uniform(-200, 200, 64), 600 + rng.normal(0, 4, 64)]
    )
    points = _rows(np.concatenate([track, chip]))
    pads = np.concatenate([track_pads, chip_pads])
    drop = structured_noise_mask(
        points, np.array([len(points)]), pads, np.zeros(len(pads), bool), RULES
    )
    expected = np.r_[np.zeros(len(track), bool), np.ones(64, bool)]
    np.testing.assert_array_equal(drop, expected)
    # the same chip with a third of its channels silent (dead, under the beam): still a fire
    some = np.sort(rng.choice(64, 50, replace=False))
    points = _rows(np.concatenate([track, chip[some]]))
    pads = np.concatenate([track_pads, chip_pads[some]])
    drop = structured_noise_mask(
        points, np.array([len(points)]), pads, np.zeros(len(pads), bool), RULES
    )
    np.testing.assert_array_equal(drop, np.r_[np.zeros(len(track), bool), np.ones(50, bool)])


def test_track_along_one_chip_at_one_time_is_not_a_chip_fire():
    """A track crossing the plane at one z lights up at most a few dozen pads of a chip:
    below the 48 that call it a fire."""
    x = np.linspace(20, 200, 40)
    points = _rows(np.column_stack([x, np.zeros(40), np.full(40, 400.0)]))
    pads = 64 * 10 + np.arange(40)
    drop = structured_noise_mask(points, np.array([40]), pads, np.zeros(40, bool), RULES)
    assert not drop.any()


def test_burst_goes_and_a_track_in_the_same_slice_stays():
    rng = np.random.default_rng(1)
    # a track perpendicular to the beam in the burst's own z slice: 50 points 4 mm apart
    r = 30 + 4.0 * np.arange(50)
    track = np.column_stack([r * 0.8, r * 0.6, 300 + rng.normal(0, 1, 50)])
    # a burst: 60 hits on random pads all over the plane within +- 3 buckets
    radius = 275 * np.sqrt(rng.uniform(0.05, 1, 60))
    phi = rng.uniform(0, 2 * np.pi, 60)
    burst = np.column_stack(
        [radius * np.cos(phi), radius * np.sin(phi), 300 + rng.normal(0, 12, 60)]
    )
    points = _rows(np.concatenate([track, burst]))
    drop = structured_noise_mask(
        points,
        np.array([len(points)]),
        np.full(len(points), -1),
        np.zeros(len(points), bool),
        RULES,
    )
    assert not drop[:50].any()
    # a burst point with another burst point within 20 mm stays (kept by the isolation
    # test, as a track point would be): count those by hand
    gaps = np.linalg.norm(burst[:, None] - burst[None], axis=2) + np.eye(60) * 1e9
    near_track = np.linalg.norm(burst[:, None] - track[None], axis=2).min(axis=1)
    isolated = (gaps.min(axis=1) > 20) & (near_track > 20)
    # ... and whose +-12.5 mm slice is dense (>= 15 points) and plane-wide (rms >= 120 mm)
    all_xyz = np.concatenate([track, burst])
    for i, z in enumerate(burst[:, 2]):
        sl = all_xyz[np.abs(all_xyz[:, 2] - z) <= 12.5, :2]
        rms = np.sqrt(((sl - sl.mean(axis=0)) ** 2).sum(axis=1).mean())
        isolated[i] &= len(sl) >= 15 and rms >= 120
    np.testing.assert_array_equal(drop[50:], isolated)
    assert isolated.mean() > 0.7
    # the same burst points spread over 20 events (a few per slice) are not a burst
    counts = np.full(20, 3)
    drop = structured_noise_mask(_rows(burst), counts, np.full(60, -1), np.zeros(60, bool), RULES)
    assert not drop.any()


def test_hot_pads_are_the_pads_firing_in_most_events():
    events = [
        np.array([7, 1234, 55, 1234]) if i < 5 else np.array([1234, 9, 10 + i]) for i in range(20)
    ]
    events[3] = np.array([9])  # 1234 misses one event: 19 of 20 > 0.5
    # by hand: 1234 in 19 events, 9 in 16 (15 + event 3), 7 and 55 in 4, others once
    np.testing.assert_array_equal(hot_pads_from_events(events, 0.5), [9, 1234])
    np.testing.assert_array_equal(hot_pads_from_events(events, 0.9), [1234])
    assert len(hot_pads_from_events([], 0.5)) == 0


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """Tiny simulation whose only noise is 5 hot pads and 3 chip fires per event (no
    random hits, no bursts), and the generator's own fixed faults as the truth."""
    from data_prep.sim.physics import EventGenerator

    config = load_config(
        SimConfig,
        CONFIGS / "tiny.yaml",
        [
            "noise.chip_rate=3",
            "noise.hot_pads=5",
            "noise.burst_rate=0",
            "noise.hits_per_event=[0, 0]",
            "noise.noise_event_hits=[0, 0]",
        ],
    )
    out = tmp_path_factory.mktemp("noisy")
    summary = simulate(config, 12, out, seed=4, events_per_file=12)
    return summary.files[0], EventGenerator(config).faults.hot_pads


def test_find_hot_pads_recovers_the_simulated_hot_pads(noisy_run):
    """Exactly the generator's hot pads are found: the pads beside the beam, which fire in
    most events too, are physics and left alone."""
    path, truth = noisy_run
    with open_events(path) as reader:
        found = find_hot_pads(reader, 0.5, 500)
        run = next(iter(reader.iter_events(0, 1))).run
        assert list(found) == [run]
        np.testing.assert_array_equal(found[run], np.sort(truth))
        # a sample of 6 of the 12 events still finds them (seeded: the same 6 each time)
        np.testing.assert_array_equal(find_hot_pads(reader, 0.5, 6)[run], np.sort(truth))


def _sim_events(path):
    with h5py.File(path) as f:
        for e in f["events"]["event"]:
            yield f[f"cloud/cloud_{e}"][()], f[f"cloud/labels_{e}"][()]


def test_rules_remove_the_simulated_structured_noise(noisy_run):
    """On simulated events whose only noise is hot pads and chip fires: every hot-pad
    point and every point of a chip fire with >= 48 visible channels goes (by the
    simulation's truth: noise label, the generator's hot pads), and hardly any track."""
    path, truth = noisy_run
    signal_lost = signal = 0
    for pts, lab in _sim_events(path):
        pads = pts[:, 5].astype(int)
        noise = lab == -1
        blocks, n = np.unique(pads[noise] // 64, return_counts=True)
        fired = noise & np.isin(pads // 64, blocks[n >= 48])
        expected = noise & (np.isin(pads, truth) | fired)
        drop = structured_noise_mask(pts, np.array([len(pts)]), pads, np.isin(pads, truth), RULES)
        np.testing.assert_array_equal(drop & noise, expected)
        signal_lost += int((drop & ~noise).sum())
        signal += int((~noise).sum())
    assert signal_lost <= 0.005 * signal


def test_preprocess_removes_structured_noise_before_the_features(noisy_run, tmp_path):
    """The features preprocess stores with ``structured_noise: rules`` are those of the
    events without the points the rules drop (hot pads found from the file itself)."""
    path, truth = noisy_run
    base = dict(views=("xy",), size=32, voxel_grid=0, features="tracks_v1")
    build_images([path], tmp_path / "plain.h5", ImageConfig(**base))
    build_images([path], tmp_path / "clean.h5", ImageConfig(**base, structured_noise="rules"))
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "clean.h5") as b:
        assert '"structured_noise": "rules"' in b.attrs["image_config"]
        plain, clean = a["features"][()], b["features"][()]
    kept = []
    for pts, _ in _sim_events(path):
        pads = pts[:, 5].astype(int)
        drop = structured_noise_mask(pts, np.array([len(pts)]), pads, np.isin(pads, truth), RULES)
        kept.append(pts[~drop, :4])
    want = event_features(np.concatenate(kept), np.array([len(k) for k in kept]), "tracks_v1")
    np.testing.assert_allclose(clean, want, rtol=1e-5, atol=1e-4)
    assert not np.allclose(plain, want, rtol=1e-4, atol=1e-3, equal_nan=True)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(InputError, match="structured_noise"):
        ImageConfig(structured_noise="yes")
    with pytest.raises(InputError, match="hot_pad_fraction"):
        ImageConfig(structured_noise="rules", hot_pad_fraction=1.5)
    # without pad ids only the burst rule acts: a chip fire stays, nothing breaks
    rng = np.random.default_rng(2)
    chip = _rows(
        np.column_stack([rng.uniform(-50, 50, 64), rng.uniform(-50, 50, 64), np.full(64, 500.0)])
    )
    proj = project_arrays(
        chip,
        np.array([64]),
        ImageConfig(views=("xy",), size=16, voxel_grid=0, structured_noise="rules"),
    )
    assert proj.n_removed[0] == 0


def test_classify_cleans_a_run_as_preprocess_did(noisy_run, tmp_path):
    """A model trained on cleaned features, given the raw run file, finds the run's hot
    pads and applies the rules itself: its probabilities equal those on the preprocessed
    (cleaned) features, which differ from the raw ones."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.cli import main
    from data_prep.imagefile import read_images

    path, _ = noisy_run
    data, raw = tmp_path / "clean.h5", tmp_path / "raw.h5"
    prep = ["--config", "configs/prep/features.yaml", "--quiet"]
    assert main(["preprocess", str(path), "--out", str(data), *prep]) == 0  # cleans
    assert main(["preprocess", str(path), "--out", str(raw), *prep, "--set",
                 "structured_noise=none"]) == 0  # fmt: skip
    run = tmp_path / "run"
    train = ["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
             str(run), "--quiet", f"data.val_path={data}", "model.max_iter=10"]  # fmt: skip
    assert main(train) == 0
    cleaned = read_images(data, features=True)
    assert not np.allclose(cleaned.features, read_images(raw, features=True).features,
                           equal_nan=True)  # fmt: skip
    want = load_run(run, device="cpu").predict_proba(cleaned.images, features=cleaned.features)
    out = tmp_path / "pred.csv"
    assert main(["classify", str(run), str(path), "--out", str(out), "--quiet"]) == 0
    got = np.genfromtxt(out, delimiter=",", names=True)
    np.testing.assert_allclose(got["p_proton"], want[:, 0], atol=1e-5)
    # the features classify computes from the raw file are the cleaned ones, hot pads too
    from attpc_classify.predict import _event_batches
    from data_prep.quantiles import beam_axes

    # the run file's own beam line (features.yaml centres on it), as classify fits it
    axis = beam_axes(cleaned.config, [str(path)])[str(path)].axis
    config = replace(cleaned.config, run_beam_axis=axis)
    batches = _event_batches(Path(path), "auto", config, 5, 0, None, skip_bad=False,
                             on_skip=lambda *a: None, reader_options={})  # fmt: skip
    features = np.concatenate([b.features for b in batches])
    np.testing.assert_allclose(features, cleaned.features, rtol=1e-6, atol=1e-6)


def test_group_medians_are_numpys_median_of_each_group():
    rng = np.random.default_rng(3)
    group = rng.integers(0, 40, size=1001)
    group[:40] = np.arange(40)  # every group present, some of one value, odd and even sizes
    values = rng.normal(0.0, 300.0, size=len(group)).round(1)  # ties too
    expected = [np.median(values[group == g]) for g in range(40)]
    np.testing.assert_array_equal(group_medians(values, group, 40), expected)
    # groups with no value (an event without points) give 0
    np.testing.assert_array_equal(group_medians(values, group, 42), [*expected, 0.0, 0.0])


def _disk(centre: tuple[float, float], radius: float, z: float, pitch: float, rng) -> np.ndarray:
    """A spark: a point on every pad of a square grid of ``pitch`` within the disk, at
    ``z`` +- a few mm."""
    g = np.arange(-300.0, 300.0, pitch)
    xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    xy = xy[(np.hypot(*(xy - centre).T) < radius) & (np.hypot(*xy.T) > 20)]
    return np.column_stack([xy, z + rng.normal(0.0, 3.0, len(xy))])


def test_a_spark_goes_and_tracks_at_its_depth_stay():
    """The spark's disk is dropped; a proton curling three times within the spark rule's
    slab (a band of turns 20 mm wide, drawn every 3 mm) and a straight track through the
    disk's depth elsewhere stay: neither fills a 60 mm square of 20 mm cells."""
    rng = np.random.default_rng(5)
    spark = _disk((60.0, -40.0), 90.0, 500.0, 6.0, rng)
    t = np.linspace(0.0, 6 * np.pi, 400)  # three turns, radius 70 -> 50 mm, 21 mm of z
    radius = 70.0 - 20.0 * t / t[-1]
    curl = np.column_stack([-150 + radius * np.cos(t), 140 + radius * np.sin(t),
                            490.0 + 21.0 * t / t[-1]])  # fmt: skip
    straight = np.column_stack([np.linspace(-250, -60, 60), np.full(60, -200.0),
                                np.full(60, 505.0)])  # fmt: skip
    tracks = np.concatenate([curl, straight])
    xyz = np.concatenate([tracks, spark])
    event = np.zeros(len(xyz), dtype=np.int64)
    drop = spark_mask(xyz, event, RULES)
    assert not drop[: len(tracks)].any()
    # what the rule compares: the disk's inner cells, the tracks' (each its own event)
    cells = spark_cells(np.concatenate([spark, curl, straight]),
                        np.array([len(spark), len(curl), len(straight)]))  # fmt: skip
    assert cells[0] >= RULES.spark_min_cells and cells[1] < 2 and cells[2] == 0
    assert drop[len(tracks) :].all()  # the disk's rim too: its cells touch inner ones
    # the same disk split over events (a tenth each) is no spark; the rule can be off
    split = np.arange(len(spark)) % 10
    assert not spark_mask(spark, split, RULES).any()
    assert not spark_mask(xyz, event, replace(RULES, spark_min_cells=0)).any()


def test_the_spark_rule_is_part_of_the_rules_for_formats_without_pads():
    rng = np.random.default_rng(6)
    spark = _disk((0.0, 0.0), 150.0, 300.0, 8.0, rng)
    points = _rows(spark)
    drop = structured_noise_mask(points, np.array([len(points)]), np.full(len(points), -1),
                                 np.zeros(len(points), bool), RULES)  # fmt: skip
    assert drop.all()


def test_run_quantiles_are_of_the_points_left_after_the_rules(noisy_run):
    """charge_norm=quantile maps the run's point charges: with the structured-noise rules
    on, of the points they leave (the points the images are made of). By hand: every
    event of the run, the rules' mask with the run's own hot pads, then the beam mask and
    denoising, then numpy's quantiles."""
    from data_prep.images import QUANTILE_LEVELS, clean_points, event_pads
    from data_prep.quantiles import run_quantiles

    path, _ = noisy_run
    config = ImageConfig(structured_noise="rules", charge_norm="quantile", beam_mask_mm=30.0,
                         denoise="dbscan")  # fmt: skip
    with open_events(path) as reader:
        events = list(reader.iter_events(0, len(reader)))
        hot = find_hot_pads(reader, config.hot_pad_fraction, config.hot_pad_sample)
    counts = np.array([len(e.points) for e in events])
    points = np.concatenate([e.points[:, :4] for e in events])
    pads, on_hot = event_pads(events, hot)
    drop = structured_noise_mask(points, counts, pads, on_hot, config.rules)
    assert drop.sum() > 50  # the run's hot pads and chip fires
    event = np.repeat(np.arange(len(counts)), counts)
    kept, _ = clean_points(points[~drop], np.bincount(event[~drop], minlength=len(counts)),
                           config, normalise=False)  # fmt: skip
    expected = np.quantile(kept[:, 3][kept[:, 3] > 0], QUANTILE_LEVELS)
    np.testing.assert_allclose(run_quantiles([path], config), expected, rtol=1e-12)
    # a config recorded before the option (its quantiles set, the key absent) keeps the
    # old way: the quantiles of every point the beam mask and denoising leave
    recorded = config.to_dict() | {"charge_quantiles": list(expected)}
    del recorded["quantiles_after_rules"]
    legacy = ImageConfig.from_dict(recorded)
    assert not legacy.quantiles_after_rules
    assert ImageConfig.from_dict(config.to_dict()).quantiles_after_rules  # no quantiles yet
    everything, _ = clean_points(points, counts, config, normalise=False)
    old = np.quantile(everything[:, 3][everything[:, 3] > 0], QUANTILE_LEVELS)
    np.testing.assert_allclose(run_quantiles([path], legacy), old, rtol=1e-12)
    assert np.abs(np.log(old / expected)).max() > 0.05  # the noise did move them


def test_spark_check_writes_a_spark_the_rule_finds(tmp_path):
    """scripts/spark_check.py's spark, on a square pad grid: the pads outside the beam
    pads within its disk, one depth, amplitudes in range; the copy of a run file holds it
    in the chosen events only, labelled other, with the point truth -1; the rule finds
    exactly those events and drops the spark's points."""
    from _scripts import load_script

    spark_check = load_script("spark_check")
    g = np.arange(-270.0, 271.0, 6.0)
    pad_xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    rows = spark_check.spark_rows(pad_xy, np.random.default_rng(0))
    r_beam = np.hypot(rows[:, 0], rows[:, 1])
    assert len(rows) > 300 and r_beam.min() > spark_check.BEAM_PAD_RADIUS_MM
    assert rows[:, 3].min() >= 1500 and rows[:, 3].max() <= 4095
    assert np.ptp(rows[:, 2]) < 8 * spark_check.SPARK_Z_SPREAD_MM
    np.testing.assert_array_equal(pad_xy[rows[:, 5].astype(int)], rows[:, :2])

    src = tmp_path / "run_0000.h5"
    with h5py.File(src, "w") as f:
        cloud = f.create_group("cloud")
        for i in range(6):
            xyz = np.column_stack([np.linspace(40, 200, 30), np.zeros(30), np.full(30, 100.0 * i)])
            cloud.create_dataset(f"cloud_{i}", data=np.column_stack([xyz, np.ones((30, 5))]))
            cloud[f"cloud_{i}"].attrs["label"] = 0
            cloud.create_dataset(f"labels_{i}", data=np.zeros(30, np.int64))
    chosen = spark_check.add_sparks(src, tmp_path / "copy.h5", pad_xy,
                                    np.random.default_rng(1), 0.5)  # fmt: skip
    assert 0 < len(chosen) < 6
    with h5py.File(tmp_path / "copy.h5") as f:
        for i in range(6):
            points, truth = f["cloud"][f"cloud_{i}"][...], f["cloud"][f"labels_{i}"][...]
            sparked = i in chosen
            assert (len(points) > 30) == sparked and len(truth) == len(points)
            assert f["cloud"][f"cloud_{i}"].attrs["label"] == (2 if sparked else 0)
            assert np.all(np.diff(points[:, 2]) >= 0)  # sorted in z, as Spyral's
            drop = spark_mask(points[:, :3], np.zeros(len(points), np.int64), RULES)
            np.testing.assert_array_equal(drop, truth == -1)


def test_preprocess_and_classify_count_the_events_with_a_spark(noisy_run, tmp_path, capsys):
    """A detector-health count: preprocess's summary (and the image file's) and
    classify's summary on the raw file give the number of events with a spark, known here
    by construction (scripts/spark_check.py's sparks in chosen events of the run); without
    the rules nothing is counted."""
    from _scripts import load_script

    from attpc_classify.checkpoint import load_run
    from attpc_classify.cli import main
    from attpc_classify.predict import classify_files

    spark_check = load_script("spark_check")
    path, _ = noisy_run
    g = np.arange(-270.0, 271.0, 6.0)
    pad_xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    sparked = tmp_path / "run_0000.h5"
    chosen = spark_check.add_sparks(path, sparked, pad_xy, np.random.default_rng(3), 0.4)
    assert 0 < len(chosen) < 12
    base = dict(views=("xy",), size=16, voxel_grid=0, features="tracks_v1")
    rules = ImageConfig(**base, structured_noise="rules")
    summary = build_images([sparked], tmp_path / "a.h5", rules)
    assert summary.sparks == len(chosen)
    assert f"{len(chosen)} spark" in summary.describe()
    with h5py.File(tmp_path / "a.h5") as f:
        assert json.loads(f.attrs["summary"])["sparks"] == len(chosen)
    plain = build_images([sparked], tmp_path / "b.h5", ImageConfig(**base))
    assert plain.sparks == 0 and "spark" not in plain.describe()

    run = tmp_path / "run"
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(tmp_path / "a.h5"),
                 "--out", str(run), "--quiet", f"data.val_path={tmp_path / 'a.h5'}",
                 "model.max_iter=5"]) == 0  # fmt: skip
    trained = load_run(run, device="cpu")
    result = classify_files(trained, [sparked], tmp_path / "p.csv")
    assert result.n_sparks == len(chosen) and result.n_events == 12
    assert result.to_dict()["n_sparks"] == len(chosen)
    capsys.readouterr()
    assert main(["classify", str(run), str(sparked), "--out", str(tmp_path / "r.csv")]) == 0
    assert f"{len(chosen)} events with a spark" in capsys.readouterr().out
    from_images = classify_files(trained, [tmp_path / "a.h5"], tmp_path / "q.csv")
    assert from_images.n_sparks == 0  # cleaned when the images were made


@pytest.mark.parametrize("fmt", ["pytpc", "attpcroot"])
def test_a_copy_of_a_run_in_another_format_is_cleaned_as_the_run(noisy_run, tmp_path, fmt):
    """The same events as a pytpc file (pad ids in its column 4, the neighbour count in
    Spyral's pad column) or an ATTPCROOT export (no pad ids: the pad at each point's
    position): the same hot pads (the simulation's own), the same points dropped (chip
    fires too) and the same images and features. Before readers named their pad column,
    pytpc's neighbour count (2 in every point here) was read as the pad id, one "hot pad"
    holding every point; an ATTPCROOT run had no hot-pad or chip rule at all."""
    from _formats import WRITERS

    from data_prep.images import project

    path, truth = noisy_run
    with open_events(path) as reader:
        events = list(reader.iter_events(0, len(reader)))
        hot = find_hot_pads(reader, 0.5, 500)
    with open_events(WRITERS[fmt](tmp_path / "run_0000.h5", events)) as reader:
        copies = list(reader.iter_events(0, len(reader)))
        copy_hot = find_hot_pads(reader, 0.5, 500)
    np.testing.assert_array_equal(hot[events[0].run], np.sort(truth))
    np.testing.assert_array_equal(copy_hot[copies[0].run], np.sort(truth))
    config = ImageConfig(views=("xy",), size=32, voxel_grid=0, features="tracks_v1",
                         structured_noise="rules")  # fmt: skip
    a, b = project(events, config, hot), project(copies, config, copy_hot)
    assert a.n_removed.sum() > 50  # the hot pads and chip fires went
    np.testing.assert_array_equal(a.n_removed, b.n_removed)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)


def test_the_electronics_map_groups_the_real_chips(tmp_path):
    """A chip fire on an AGET whose 64 pads are not consecutive ids (as on the real
    detector): without the run's map the chip rule cannot see it; with the map (reader
    option ``pad_electronics``) exactly its points go and the track stays. The map here
    is made up: one chip holds the 64 pads nearest a point of the plane (a compact patch,
    as a real AGET's, across several rings of ids), the other chips the remaining pads in
    id order, 64 at a time."""
    from data_prep.images import project
    from data_prep.padplane import pad_centres

    centres = pad_centres()
    fire = np.sort(np.argsort(np.hypot(*(centres - [120.0, -80.0]).T))[:64])
    assert np.bincount(fire // 64).max() < RULES.chip_min_pads  # no id block sees it
    rest = np.setdiff1d(np.arange(10240), fire)
    chip_of = np.empty(10240, np.int64)
    chip_of[fire], chip_of[rest] = 159, np.arange(len(rest)) // 64
    rows = [(int(k) // 16, (int(k) // 4) % 4, int(k) % 4, p % 64, p) for p, k in enumerate(chip_of)]
    electronics = tmp_path / "map.csv"
    electronics.write_text("cobo,asad,aget,aget channel,pad\n"
                           + "\n".join(",".join(map(str, r)) for r in rows))  # fmt: skip
    rng = np.random.default_rng(9)
    track = np.flatnonzero((np.abs(centres[:, 1] - 60) < 2) & (centres[:, 0] > 40))[:40]
    track = track[~np.isin(track, fire)]
    pads = np.concatenate([track, fire])
    z = np.concatenate([np.linspace(200, 400, len(track)), 650 + rng.normal(0, 3, len(fire))])
    cloud = np.zeros((len(pads), 8))
    cloud[:, :2], cloud[:, 2], cloud[:, 3], cloud[:, 5] = centres[pads], z, 200.0, pads
    path = tmp_path / "run_0003.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("cloud")
        g.attrs["min_event"], g.attrs["max_event"] = 0, 0
        g.create_dataset("cloud_0", data=cloud)
    config = ImageConfig(views=("xy",), size=16, voxel_grid=0, structured_noise="rules")
    for options, dropped in (({}, 0), ({"pad_electronics": str(electronics)}, len(fire))):
        with open_events(path, **options) as reader:
            events = list(reader.iter_events(0, 1))
        proj = project(events, config, {})
        assert proj.n_removed.tolist() == [dropped], options


def test_chip_check_adds_fires_on_the_chips_it_is_given(tmp_path):
    """scripts/chip_check.py: a map's chips are its (cobo, asad, aget) groups; each fire
    lights one chip's pads outside the beam pads at one depth, the event keeps its label
    and its track, the fire's points get the truth -1, and the cloud stays sorted in z."""
    from _scripts import load_script

    from data_prep.padplane import pad_centres

    chip_check = load_script("chip_check")
    rows = [(k // 16, (k // 4) % 4, k % 4, p % 64, p) for p in range(10240) for k in [p // 64]]
    electronics = tmp_path / "map.csv"
    electronics.write_text("cobo,asad,aget,aget channel,pad\n"
                           + "\n".join(",".join(map(str, r)) for r in rows))  # fmt: skip
    chips = chip_check.map_chips(electronics)
    assert len(chips) == 160 and all(len(c) == 64 for c in chips)
    assert sorted(np.concatenate(chips).tolist()) == list(range(10240))
    src = tmp_path / "run_0000.h5"
    track = np.column_stack([np.linspace(40, 200, 30), np.zeros(30), np.linspace(100, 400, 30),
                             np.ones((30, 5))])  # fmt: skip
    with h5py.File(src, "w") as f:
        cloud = f.create_group("cloud")
        for i in range(8):
            cloud.create_dataset(f"cloud_{i}", data=track)
            cloud[f"cloud_{i}"].attrs["label"] = 1
            cloud.create_dataset(f"labels_{i}", data=np.zeros(30, np.int64))
    chip_check.add_fires(src, tmp_path / "copy.h5", chips, np.random.default_rng(0), 1.5)
    centres = pad_centres()
    outside = np.hypot(*centres.T) > chip_check.BEAM_PAD_RADIUS_MM
    fired = 0
    with h5py.File(tmp_path / "copy.h5") as f:
        for i in range(8):
            points, truth = f["cloud"][f"cloud_{i}"][...], f["cloud"][f"labels_{i}"][...]
            assert f["cloud"][f"cloud_{i}"].attrs["label"] == 1 and len(truth) == len(points)
            assert np.all(np.diff(points[:, 2]) >= 0)
            fire = points[truth == -1]
            assert (truth == 0).sum() == 30
            if not len(fire):
                continue
            fired += 1
            pads = np.rint(fire[:, 5]).astype(int)
            np.testing.assert_allclose(fire[:, :2], centres[pads])
            assert outside[pads].all()
            for chip in np.unique(pads // 64):  # every chip touched lit whole (off the beam)
                whole = np.arange(64 * chip, 64 * chip + 64)
                assert set(whole[outside[whole]].tolist()) <= set(pads.tolist())
    assert fired >= 4


def test_formats_check_scores_every_event():
    """scripts/formats_check.py: an event called empty counts as called other (by hand:
    3 protons, one found, one called empty, one carbon) and a binary model gets proton F1
    alone."""
    from _scripts import load_script

    formats_check = load_script("formats_check")
    labels = {(1, i): c for i, c in enumerate([0, 0, 0, 2, 2, 1])}
    calls = ["proton", "empty", "carbon", "other", "proton", "carbon"]
    rows = {k: {"label": c, "p_proton": "nan" if c == "empty" else "0.5"}
            for k, c in zip(labels, calls, strict=True)}  # fmt: skip
    f1, macro = formats_check.scores(rows, labels, ["proton", "carbon", "other"], 0)
    # protons: 1 of 3 found, 1 false -> F1 = 2 * 1 / (3 + 2) = 0.4
    assert f1.startswith("0.400")
    assert macro != "-"
    binary = {k: {"label": "proton" if r["label"] == "proton" else "rest", "p_proton": "0.5"}
              for k, r in rows.items()}  # fmt: skip
    assert formats_check.scores(binary, labels, ["proton", "carbon", "other"], 0)[1] == "-"
