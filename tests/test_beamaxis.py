"""The run's beam axis (data_prep.beamaxis, ``beam_axis: run``): fitted per run file on
hand-made runs whose beam line is known by construction, applied first of all by
preprocess, and by classify and adapt exactly as preprocess does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _formats import write_spyral

from data_prep.beamaxis import BACKWARD, NO_AXIS, centre_on_beam, line_xy, track_direction
from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.imagefile import read_images, read_info
from data_prep.images import QUANTILE_LEVELS, ImageConfig, project_arrays
from data_prep.quantiles import file_beam_axis

#: the e15503b shear: 6.2 deg along +y, from (1000 mm - z) of drift
SHEAR = float(np.tan(np.radians(6.2)))
SHEARED = (4.0, 0.0, 1000 * SHEAR, -SHEAR)
OTHER = (-6.0, 0.02, 5.0, 0.1)
#: the fit's promise on these runs: the fitted line within this distance of the true one
#: at every depth 0-1000 mm (the beam mask is 30 mm)
TOLERANCE_MM = 3.0


#: a hot pad near the detector axis (one point at any z in every event)
HOT_PAD_XY = (15.0, 10.0)


def _event(rng: np.random.Generator, axis, event_id: int, *, beam: bool = True) -> Event:
    """One event in the detector's frame: the beam ion along ``axis`` (spot sigma 3 mm)
    up to a vertex on it, blind within 20 mm of the detector axis (its beam pads); a
    reaction track from the vertex, always into the +x half plane (the worst case for a
    bias); 5-40 noise hits and one hit of a hot pad at `HOT_PAD_XY`. Without ``beam``,
    the track starts anywhere."""
    parts = []
    vz = rng.uniform(100, 900)
    if beam:
        z = np.arange(0.0, vz, 4.0) + rng.uniform(0, 4)
        x, y = line_xy(axis, z)
        b = np.column_stack([x + rng.normal(0, 3), y + rng.normal(0, 3), z, np.full_like(z, 200)])
        b[:, :2] += rng.normal(0, 1.5, (len(z), 2))
        parts.append(b[np.hypot(b[:, 0], b[:, 1]) >= 20])
    vertex = np.array([*line_xy(axis, vz), vz]) if beam else rng.uniform(-200, 200, 3) + 500
    theta, phi = rng.uniform(0.3, 1.4), rng.uniform(-np.pi / 2, np.pi / 2)
    d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    t = rng.uniform(0, rng.uniform(50, 300), int(rng.integers(40, 150)))
    track = vertex + t[:, None] * d + rng.normal(0, 2, (len(t), 3))
    parts.append(np.column_stack([track, rng.exponential(100, len(t))]))
    m = int(rng.integers(5, 40))
    noise = rng.uniform([-250, -250, 0], [250, 250, 1000], (m, 3))
    parts.append(np.column_stack([noise, rng.exponential(50, m)]))
    parts.append(np.array([[*HOT_PAD_XY, rng.uniform(0, 1000), 80.0]]))
    return Event(run=1, event_id=event_id, points=np.concatenate(parts), label=event_id % 3)


def _run(path: Path, axis, n: int, seed: int, *, run: int = 1, beam: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    events = [_event(rng, axis, i, beam=beam) for i in range(n)]
    events = [Event(run=run, event_id=e.event_id, points=e.points, label=e.label) for e in events]
    return write_spyral(path, events)


def _distance(fit, true) -> float:
    """Largest distance in x or y between two lines over z in [0, 1000] mm."""
    z = np.linspace(0, 1000, 101)
    (fx, fy), (tx, ty) = line_xy(fit, z), line_xy(true, z)
    return float(max(np.abs(fx - tx).max(), np.abs(fy - ty).max()))


@pytest.mark.parametrize("axis", [SHEARED, OTHER])
def test_fit_recovers_the_beam_line_despite_tracks_and_noise(tmp_path, axis):
    path = _run(tmp_path / "run_0001.h5", axis, 300, seed=1)
    fit = file_beam_axis(path, ImageConfig())
    assert fit.note.startswith("fitted"), fit.note
    assert _distance(fit.axis, axis) < TOLERANCE_MM, (fit.axis, axis)


def test_a_run_without_a_visible_beam_keeps_the_detector_axis(tmp_path):
    """... and the hot pad near the axis, a line of points at one place over all z
    (one per event), does not pass for a beam."""
    path = _run(tmp_path / "run_0002.h5", SHEARED, 500, seed=2, beam=False)
    fit = file_beam_axis(path, ImageConfig())
    assert fit.axis == NO_AXIS and "no visible beam" in fit.note


def test_points_are_measured_from_the_beam_line():
    axis = (2.0, 0.1, -3.0, -0.05)
    # at z = 400 the line is at (42, -23): a point 5 mm right of it and 7 mm below
    pts = np.array([[47.0, -30.0, 400.0, 10.0, 99.0]])
    np.testing.assert_allclose(centre_on_beam(pts, axis), [[5.0, -7.0, 400.0, 10.0, 99.0]])
    # so the beam mask drops it (within 30 mm of the beam, 55 mm off the detector axis)
    cfg = ImageConfig(views=("xy",), size=10, voxel_grid=0, x_range=(-50, 50), y_range=(-50, 50),
                      beam_mask_mm=30.0, beam_axis="run", run_beam_axis=axis)  # fmt: skip
    assert project_arrays(pts[:, :4], np.array([1]), cfg).n_removed[0] == 1
    # and keeps one 40 mm off the beam, 23 mm off the detector axis, at (-40, 0) from it:
    # column 1 (x in [-40, -30)), row 5 (y in [0, 10))
    kept = project_arrays(np.array([[2.0, -23.0, 400.0, 10.0]]), np.array([1]), cfg)
    assert kept.n_removed[0] == 0
    assert kept.images[0, 0, 5, 1] > 0 and kept.images.sum() == kept.images[0, 0, 5, 1]


def test_a_run_along_minus_z_is_turned_into_the_simulation_frame():
    """By hand: centred on the line as above, then y -> -y and z -> 0 + 1000 - z."""
    pts = np.array([[47.0, -30.0, 400.0, 10.0, 99.0]])
    got = centre_on_beam(pts, (2.0, 0.1, -3.0, -0.05, BACKWARD), (0.0, 1000.0))
    np.testing.assert_allclose(got, [[5.0, 7.0, 600.0, 10.0, 99.0]])
    np.testing.assert_allclose(centre_on_beam(pts, (0, 0, 0, 0, BACKWARD), (100.0, 500.0)),
                               [[47.0, 30.0, 200.0, 10.0, 99.0]])  # fmt: skip


def test_one_track_says_which_way_it_leaves_the_beam_line():
    t = np.linspace(0.0, 1.0, 20)[:, None]
    out = np.array([30.0, 0.0, 100.0]) + t * np.array([100.0, 40.0, 200.0])  # r and z grow
    assert track_direction(out) == 1.0
    assert track_direction(out * [1, 1, -1]) == -1.0  # r grows as z falls
    assert track_direction(out[::-1]) == 1.0  # the order of the points does not matter
    assert track_direction(out * [1, 1, 0]) == 0.0  # in the pad plane: no direction
    assert track_direction(out[:5]) == 0.0  # too few points
    # along z at one radius (a hot pad's column): r does not grow along it
    column = np.column_stack([np.full(20, 60.0), np.zeros(20), np.linspace(0, 500, 20)])
    assert track_direction(column) == 0.0


def test_a_file_in_the_pytpc_frame_gives_the_same_images_and_features(tmp_path):
    """The same events stored turned 180 deg about x (pytpc's frame: the beam along -z)
    and read as they are: the fit finds the beam along -z and preprocessing turns the
    run back, so images and features are those of the file in the simulation frame."""
    from attpc_classify.cli import main

    a = _run(tmp_path / "run_0006.h5", SHEARED, 250, seed=6, run=6)  # > DIRECTION_EVENTS
    from data_prep.readers import open_events

    with open_events(a) as reader:
        events = list(reader.iter_events())
    turned = []
    for e in events:
        p = e.points.copy()
        p[:, 1], p[:, 2] = -p[:, 1], 1000.0 - p[:, 2]
        turned.append(Event(run=7, event_id=e.event_id, points=p, label=e.label))
    b = write_spyral(tmp_path / "run_0007.h5", turned)
    fit_a, fit_b = file_beam_axis(a, ImageConfig()), file_beam_axis(b, ImageConfig())
    assert len(fit_a.axis) == 4 and "beam along +z" in fit_a.note, fit_a
    assert len(fit_b.axis) == 5 and fit_b.axis[4] == BACKWARD, fit_b
    assert "beam along -z" in fit_b.note
    out = {}
    for path in (a, b):
        img = tmp_path / f"{path.stem}_images.h5"
        assert main(["preprocess", str(path), "--out", str(img), *PREP]) == 0
        out[path] = read_images(img, features=True)
    # the two fits agree to ~0.002 mm (the slice medians are not exactly mirror
    # symmetric), which moves a handful of points across a pixel edge
    differ = out[a].images != out[b].images
    assert differ.mean() < 1e-3, differ.sum()
    np.testing.assert_allclose(out[a].features, out[b].features, rtol=1e-3, atol=1e-3)


def test_bad_settings_are_one_line_errors():
    for bad in ({"beam_axis": "fit"}, {"run_beam_axis": (0, 0.5, 0, 0)},
                {"run_beam_axis": (0, 0, float("nan"), 0)}, {"run_beam_axis": (1, 2)},
                {"run_beam_axis": ("a", 0, 0, 0)},
                {"run_beam_axis": (0, 0, 0, 0, 1.0)}):  # fmt: skip
        with pytest.raises(InputError) as err:
            ImageConfig(**bad)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="run_beam_axis"):  # run without its line
        project_arrays(np.zeros((1, 4)), np.array([1]), ImageConfig(beam_axis="run"))


PREP = ["--size", "16", "--set", "voxel_grid=0", "--set", "dtype=float16", "--set",
        "beam_axis=run", "--set", "beam_mask_mm=30", "--set", "features=tracks_v1",
        "--set", "charge_norm=quantile",
        "--quiet", "--workers", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two run files with other beam lines, and their image file (beam_axis: run; the
    charge quantiles of the two together, from their beam-centred points)."""
    from attpc_classify.cli import main

    d = tmp_path_factory.mktemp("beamaxis")
    a = _run(d / "run_0003.h5", SHEARED, 200, seed=3, run=3)
    b = _run(d / "run_0004.h5", OTHER, 200, seed=4, run=4)
    img = d / "train.h5"
    # two tasks per file and a task spanning both: a batch must not mix their lines
    assert main(["preprocess", str(a), str(b), "--out", str(img), *PREP,
                 "--events-per-task", "150", "--batch-size", "64"]) == 0  # fmt: skip
    return a, b, img


def test_preprocess_fits_and_records_each_files_own_line(two_runs):
    a, b, img = two_runs
    info = read_info(img)
    axes = info["beam_axes"]
    assert _distance(axes[str(a)], SHEARED) < TOLERANCE_MM
    assert _distance(axes[str(b)], OTHER) < TOLERANCE_MM
    assert info["image_config"].beam_axis == "run" and not info["image_config"].run_beam_axis
    # each file's events, centred by hand on its recorded line and projected without
    # the option, give the stored images and features
    from data_prep.readers import open_events

    data = read_images(img, features=True)
    plain = ImageConfig.from_dict({**info["image_config"].to_dict(), "beam_axis": "none"})
    row, charges = 0, []
    for path in (a, b):
        x0, ax, y0, ay = axes[str(path)]
        with open_events(path) as reader:
            events = list(reader.iter_events())
        pts = np.concatenate([e.points[:, :4] for e in events])
        pts[:, 0] -= x0 + ax * pts[:, 2]
        pts[:, 1] -= y0 + ay * pts[:, 2]
        # the quantiles see what the images see: the charges outside 30 mm of the beam
        charges.append(pts[(np.hypot(pts[:, 0], pts[:, 1]) >= 30) & (pts[:, 3] > 0), 3])
        proj = project_arrays(pts, np.array([len(e.points) for e in events]), plain)
        rows = slice(row, row + len(events))
        np.testing.assert_array_equal(proj.images, data.images[rows])
        np.testing.assert_allclose(proj.features, data.features[rows], rtol=1e-6)
        row += len(events)
    want = np.quantile(np.concatenate(charges), QUANTILE_LEVELS)  # 400 events: all sampled
    np.testing.assert_allclose(info["image_config"].charge_quantiles, want)


def test_classify_and_adapt_centre_raw_files_as_preprocess_did(two_runs, tmp_path):
    """A model given the raw run files fits each file's line itself: its probabilities
    equal those on the image file; adapt's target images equal the file's images."""
    from attpc_classify.adapt import target_inputs
    from attpc_classify.checkpoint import load_run
    from attpc_classify.cli import main
    from attpc_classify.predict import read_predictions

    torch.set_num_threads(1)
    a, b, img = two_runs
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", str(img), "--out", str(run), "model.width=4",
                 "model.depth=2", "optim.epochs=1", "optim.batch_size=32"]) == 0  # fmt: skip
    raw, stored = tmp_path / "raw.csv", tmp_path / "stored.csv"
    opts = ["--quiet", "--device", "cpu", "--precision", "fp32"]
    assert main(["classify", str(run), str(a), str(b), "--out", str(raw), *opts]) == 0
    assert main(["classify", str(run), str(img), "--out", str(stored), *opts]) == 0
    got, want = read_predictions(raw), read_predictions(stored)
    np.testing.assert_array_equal(got["event_id"], want["event_id"])
    np.testing.assert_allclose(got["p_proton"], want["p_proton"], atol=1e-5)
    images = target_inputs(load_run(run), [str(a), str(b)], max_events=1000, seed=0)
    np.testing.assert_array_equal(images, read_images(img).images)


def test_detector_augmentation_centres_the_source_points_on_their_line(two_runs):
    """The point bank behind detector augmentation, projected without augmenting, gives
    the stored images: each source file's points were centred on its recorded line."""
    from attpc_classify.augment import augmented_images, load_points
    from attpc_classify.train_config import DetectorAugment

    images = read_images(two_runs[2])
    bank = load_points(images)
    idx = np.arange(len(images))
    off = DetectorAugment(probability=0.0)
    got = augmented_images(bank, idx, off, images.config, np.random.default_rng(0))
    np.testing.assert_array_equal(got, images.images)


def test_pads_along_the_sheared_beam_are_not_hot_pads(tmp_path):
    """The beam core that hot-pad finding leaves out follows the file's beam line: pads
    the sheared beam crosses in every event (Spyral writer: the i-th point of each event
    is on pad i, so the beam is on pads 0-9) are hot about the detector axis, not about
    the beam."""
    from data_prep.readers import open_events
    from data_prep.structured import find_hot_pads

    rng = np.random.default_rng(5)
    z = np.linspace(50.0, 500.0, 10)  # 54-103 mm off the detector axis
    events = []
    for i in range(40):
        beam = np.column_stack([*line_xy(SHEARED, z), z, np.full(10, 300.0)])
        other = np.column_stack([rng.uniform(-250, 250, (30, 2)), rng.uniform(0, 1000, 30),
                                 np.full(30, 50.0)])  # fmt: skip
        events.append(Event(run=9, event_id=i, points=np.vstack([beam, other]), label=0))
    path = write_spyral(tmp_path / "run_0009.h5", events)
    with open_events(path) as reader:
        about_axis = find_hot_pads(reader, 0.5, 500)[9]
        about_beam = find_hot_pads(reader, 0.5, 500, SHEARED)[9]
    assert set(range(10)) <= set(about_axis.tolist())
    assert not set(range(10)) & set(about_beam.tolist())


# -- the event's own line (event_beam_line) ---------------------------------------------


def _diverged_event(rng: np.random.Generator, spot, slope, *, blind_mm: float = 20.0):
    """Points measured from the run's line: an ion from ``spot`` at the window along
    ``slope`` (mm/mm in x and y), blind within ``blind_mm`` of the run's line, up to a
    vertex at 600 mm, its residue on along the same line; a proton from the vertex at 45
    deg curling on a 120 mm circle (half a turn); 30 noise hits. Returns (points, is_ion)."""
    z = np.arange(0.0, 1000.0, 6.0)
    ion = np.column_stack([spot[0] + slope[0] * z, spot[1] + slope[1] * z, z])
    ion[:, :2] += rng.normal(0.0, 1.5, (len(z), 2))  # diffusion
    ion = ion[np.hypot(ion[:, 0], ion[:, 1]) > blind_mm]
    vx, vy = spot[0] + slope[0] * 600.0, spot[1] + slope[1] * 600.0
    phase = np.linspace(0.0, 1.0 * np.pi, 120)  # ~5 mm apart, as pads sample it
    proton = np.column_stack([vx + 120.0 * (1 - np.cos(phase)), vy + 120.0 * np.sin(phase),
                              600.0 + 120.0 * phase])  # fmt: skip
    noise = np.column_stack([rng.uniform(-250, 250, (30, 2)), rng.uniform(0, 1000, 30)])
    points = np.concatenate([ion, proton, noise])
    is_ion = np.zeros(len(points), dtype=bool)
    is_ion[: len(ion)] = True
    return points, is_ion


def test_event_line_finds_a_diverged_ion_by_its_known_line() -> None:
    from data_prep.beamaxis import event_line

    rng = np.random.default_rng(3)
    # 2.3 deg off the run's line, entering 3 mm off it: 40 mm off at 1 m, outside the core
    points, _ = _diverged_event(rng, (3.0, -2.0), (0.035, 0.02))
    x0, ax, y0, ay = event_line(points)
    assert (ax, ay) == pytest.approx((0.035, 0.02), abs=0.003)
    # the known line, at the window and at 1 m, within 3 mm
    for z in (0.0, 1000.0):
        assert x0 + ax * z == pytest.approx(3.0 + 0.035 * z, abs=3.0)
        assert y0 + ay * z == pytest.approx(-2.0 + 0.02 * z, abs=3.0)


def test_event_line_leaves_the_run_line_where_no_ion_counts() -> None:
    from data_prep.beamaxis import event_line

    rng = np.random.default_rng(4)
    # an ion inside the blind core all the way (0.5 deg): nothing shows, nothing to find
    assert event_line(_diverged_event(rng, (0.0, 0.0), (0.008, 0.0))[0]) is None
    # 6 deg off the run's line: a track, not the beam (the cut is ~4 deg)
    assert event_line(_diverged_event(rng, (0.0, 0.0), (0.1, 0.0))[0]) is None
    # an ion of the readout window that came earlier: its line drifted 400 mm along z,
    # 16 mm off the run's line at the window
    points, is_ion = _diverged_event(rng, (0.0, 0.0), (0.04, 0.0))
    points[is_ion, 2] -= 400.0
    keep = ~is_ion | (points[:, 2] >= 0)
    assert event_line(points[keep]) is None


def test_centre_on_event_lines_moves_each_event_by_its_own_line() -> None:
    from data_prep.beamaxis import centre_on_event_lines

    rng = np.random.default_rng(5)
    a, a_ion = _diverged_event(rng, (3.0, -2.0), (0.035, 0.02))
    b, _ = _diverged_event(rng, (0.0, 0.0), (0.008, 0.0))  # no line: kept as it was
    points = np.column_stack([np.concatenate([a, b]), np.ones(len(a) + len(b))])
    out = centre_on_event_lines(points, np.array([len(a), len(b)]))
    # the first event's ion, measured from the known line by hand, is within ~2 sigma of
    # the diffusion; from the run's line it was up to 40 mm off
    ion = out[: len(a)][a_ion]
    assert np.hypot(ion[:, 0], ion[:, 1]).max() < 8.0
    assert np.hypot(a[a_ion, 0], a[a_ion, 1]).max() > 30.0
    np.testing.assert_array_equal(out[len(a) :], points[len(a) :])
    np.testing.assert_array_equal(out[:, 2:], points[:, 2:])  # z and charge untouched


def test_the_event_line_takes_a_diverged_ion_off_the_tracks() -> None:
    rng = np.random.default_rng(6)
    points, _ = _diverged_event(rng, (3.0, -2.0), (0.04, 0.0), blind_mm=25.0)
    points = np.column_stack([points, np.full(len(points), 200.0)])
    counts = np.array([len(points)])
    base = dict(views=("xy",), size=8, voxel_grid=0, beam_axis="run", run_beam_axis=NO_AXIS,
                features="tracks_v1")  # fmt: skip
    names = ImageConfig(**base).feature_names
    run = project_arrays(points, counts, ImageConfig(**base)).features[0]
    own = project_arrays(points, counts, ImageConfig(**base, event_beam_line=True)).features[0]
    # about the run's line the ion's far half (25-40 mm off it) is a track beside the
    # proton; about its own line it is beam core, and the proton is the only track
    assert run[names.index("n_tracks")] == 2
    assert own[names.index("n_tracks")] == 1
    assert own[names.index("core_points_frac")] > run[names.index("core_points_frac")]


def test_event_beam_line_needs_the_run_line() -> None:
    with pytest.raises(InputError, match="event_beam_line needs beam_axis=run"):
        ImageConfig(event_beam_line=True)
