"""Projections: shapes, orientation, range cuts, fixed charge scale, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.images import VIEW_AXES, ImageConfig, project, project_arrays


def _event(points, event_id=0):
    return Event(run=1, event_id=event_id, points=np.asarray(points, dtype=np.float64))


def _reference(points: np.ndarray, config: ImageConfig) -> np.ndarray:
    """One event, one view at a time, with np.histogram2d (independent of project)."""
    ranges = config.ranges
    views = []
    for view in config.views:
        col_axis, row_axis = VIEW_AXES[view]
        p = points
        inside = np.all((p[:, :3] >= ranges[:, 0]) & (p[:, :3] < ranges[:, 1]), axis=1)
        p = p[inside]
        h, _, _ = np.histogram2d(
            p[:, row_axis],
            p[:, col_axis],
            bins=config.size,
            range=[ranges[row_axis], ranges[col_axis]],
            weights=p[:, 3],
        )
        views.append(h)
    summed = np.stack(views)
    scaled = np.log1p(summed) / np.log1p(config.charge_scale)
    return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("views", "size"),
    [(("xy",), 4), (("xy", "zy"), 17), (("zx", "xy", "zy"), 64), (("zy", "zx"), 128)],
)
def test_any_views_and_size_match_histogram2d(views, size):
    rng = np.random.default_rng(size)
    config = ImageConfig(views=views, size=size, voxel_grid=0)
    events = []
    for i in range(5):
        n = int(rng.integers(5, 80))
        pts = np.column_stack(
            [
                rng.uniform(-300, 300, (n, 2)),
                rng.uniform(-50, 1050, n),
                rng.uniform(1, 500, n),
            ]
        )
        events.append(_event(pts, i))
    proj = project(events, config)
    assert proj.images.shape == (5, len(views), size, size)
    assert proj.images.dtype == np.uint8 and proj.voxels is None
    for i, e in enumerate(events):
        np.testing.assert_array_equal(proj.images[i], _reference(e.points, config))


def test_orientation_point_lands_in_the_expected_pixel():
    config = ImageConfig(views=("xy", "zy", "zx"), size=10, voxel_grid=5)
    # x = +200 (column 8 of 10 over [-275, 275)), y = -200 (row 1), z = 150 (column 1)
    proj = project([_event([[200.0, -200.0, 150.0, 500.0]])], config)
    xy, zy, zx = proj.images[0]
    assert np.argwhere(xy).tolist() == [[1, 8]]  # row = y ascending, column = x
    assert np.argwhere(zy).tolist() == [[1, 1]]  # row = y, column = z
    assert np.argwhere(zx).tolist() == [[8, 1]]  # row = x, column = z
    assert np.argwhere(proj.voxels[0]).tolist() == [[4, 0, 0]]  # voxel (x, y, z)


def test_range_cuts_drop_and_count_points_and_flag_empty_events():
    config = ImageConfig(size=8, voxel_grid=0)
    inside = [0.0, 0.0, 500.0, 100.0]
    events = [
        _event([inside, [400.0, 0.0, 500.0, 100.0], [0.0, 0.0, 1000.0, 1.0]]),  # 2 out
        _event([[0.0, 0.0, -1.0, 50.0]]),  # z below the range: empty
        _event([[275.0, 0.0, 10.0, 9.0], [-275.0, -275.0, 0.0, 9.0]]),  # upper edge out
    ]
    proj = project(events, config)
    assert proj.n_outside.tolist() == [2, 1, 1]
    assert proj.n_points.tolist() == [3, 1, 2]
    assert proj.empty.tolist() == [False, True, False]
    assert proj.images[1].sum() == 0
    assert proj.images[0, 0].astype(bool).sum() == 1  # the two outside points left no trace
    assert proj.images[2, 0, 0, 0] > 0  # the lower edge is inside


def test_charge_scale_is_fixed_not_per_event():
    config = ImageConfig(views=("xy",), size=4, voxel_grid=0, charge_scale=1000.0)
    weak = _event([[0.0, 0.0, 500.0, 10.0]])
    strong = _event([[0.0, 0.0, 500.0, 10.0], [-200.0, -200.0, 500.0, 1000.0]])
    a, b = project([weak, strong], config).images[:, 0]
    assert a.max() == b[np.nonzero(a)].item()  # the same pixel keeps its value
    assert b.max() == 255  # charge_scale maps to 1.0
    assert a.max() == round(255 * np.log1p(10.0) / np.log1p(1000.0))
    # Charges in one pixel add up before the transform; beyond the scale they clip.
    both = project([_event([[0, 0, 500, 600.0], [1, 1, 501, 600.0]])], config).images
    assert both.max() == 255
    lin = ImageConfig(views=("xy",), size=4, voxel_grid=0, charge_transform="linear")
    assert project([weak], lin).images.max() == round(255 * 10.0 / lin.charge_scale)
    binary = ImageConfig(views=("xy",), size=4, voxel_grid=0, charge_transform="binary")
    assert project([weak], binary).images.max() == 255


def test_deterministic_batch_independent_and_float16():
    rng = np.random.default_rng(0)
    events = []
    for i in range(40):
        n = int(rng.integers(1, 300))
        pts = np.column_stack([rng.normal(0, 100, (n, 2)), rng.uniform(0, 1000, n)])
        events.append(_event(np.column_stack([pts, rng.gamma(2, 100, n)]), i))
    config = ImageConfig(size=32, voxel_grid=8)
    whole = project(events, config)
    again = project(events, config)
    pieces = [project(events[i : i + 7], config) for i in range(0, 40, 7)]
    np.testing.assert_array_equal(whole.images, again.images)
    np.testing.assert_array_equal(whole.images, np.concatenate([p.images for p in pieces]))
    np.testing.assert_array_equal(whole.voxels, np.concatenate([p.voxels for p in pieces]))
    half = project(events, ImageConfig(size=32, voxel_grid=8, dtype="float16"))
    assert half.images.dtype == np.float16
    np.testing.assert_array_equal(
        np.rint(half.images.astype(np.float64) * 255) > 0, whole.images > 0
    )
    assert 0 <= half.images.min() and half.images.max() <= 1


def test_large_batches_are_sliced_with_identical_results(monkeypatch):
    import data_prep.images as images

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 50, 30)
    pts = np.column_stack(
        [rng.uniform(-280, 280, (counts.sum(), 2)), rng.uniform(0, 1000, counts.sum())]
    )
    pts = np.column_stack([pts, rng.uniform(1, 100, counts.sum())])
    config = ImageConfig(size=16, voxel_grid=4)
    whole = project_arrays(pts, counts, config)
    monkeypatch.setattr(images, "_MAX_BUFFER", 3 * 16 * 16 * 2)  # ~3 events per pass
    sliced = project_arrays(pts, counts, config)
    for name in ("images", "voxels", "n_outside", "n_points"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(sliced, name))
    empty = project_arrays(np.zeros((0, 4)), np.zeros(3, np.int64), config)
    assert empty.images.shape == (3, 2, 16, 16) and empty.empty.all()


def test_config_validation_and_round_trip():
    for bad in (
        {"views": ("xy", "yx")},
        {"size": 2},
        {"z_range": (10.0, 10.0)},
        {"charge_transform": "sqrt"},
        {"dtype": "int16"},
    ):
        with pytest.raises(InputError):
            ImageConfig(**bad)
    for views in itertools.permutations(("xy", "zy", "zx"), 2):
        cfg = ImageConfig(views=views, size=48)
        assert ImageConfig.from_json(cfg.to_json()) == cfg
