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


# --------------------------------------------------------------------------- robust inputs


def _tracks_and_noise(rng: np.random.Generator, n_events: int = 6) -> list:
    """Events of a dense straight track (points 5 mm apart) plus scattered single hits."""
    events = []
    for i in range(n_events):
        t = np.arange(40)[:, None] * 5.0
        track = np.hstack([t * 0.3 - 60, t * 0.1 + 20, 100 + t, rng.uniform(50, 500, (40, 1))])
        noise = np.column_stack(
            [rng.uniform(-250, 250, (25, 2)), rng.uniform(0, 1000, 25), rng.uniform(20, 80, 25)]
        )
        events.append(_event(np.vstack([track, noise]), event_id=i))
    return events


def test_dbscan_noise_matches_scikit_learn_per_event():
    from sklearn.cluster import DBSCAN

    from data_prep.images import dbscan_noise

    rng = np.random.default_rng(3)
    events = _tracks_and_noise(rng)
    counts = np.array([e.n_points for e in events])
    points = np.concatenate([e.points for e in events])
    got = dbscan_noise(points, counts, eps=12.0, min_samples=3)
    want = np.concatenate(
        [DBSCAN(eps=12.0, min_samples=3).fit(e.points[:, :3]).labels_ == -1 for e in events]
    )
    np.testing.assert_array_equal(got, want)
    assert want.sum() >= 100  # most of the 150 scattered hits are noise


def test_denoise_and_beam_mask_remove_points_and_count_them():
    rng = np.random.default_rng(4)
    events = _tracks_and_noise(rng, 2)
    cfg = ImageConfig(views=("xy",), size=32, voxel_grid=0, denoise="dbscan",
                      denoise_eps_mm=12.0, denoise_min_samples=3)  # fmt: skip
    proj = project(events, cfg)
    track_only = [_event(e.points[:40]) for e in events]
    np.testing.assert_array_equal(proj.images, project(track_only, ImageConfig(
        views=("xy",), size=32, voxel_grid=0)).images)  # fmt: skip
    np.testing.assert_array_equal(proj.n_removed, [25, 25])
    # beam mask: a point at r = 10 mm goes, one at r = 30 mm stays
    ev = _event([[10.0, 0, 500, 100], [0, 30.0, 500, 100]])
    masked = project([ev], ImageConfig(views=("xy",), size=8, voxel_grid=0, beam_mask_mm=20.0))
    assert masked.n_removed.tolist() == [1] and (masked.images > 0).sum() == 1
    assert not masked.empty[0]
    gone = project([_event([[1.0, 1.0, 5, 9]])], ImageConfig(voxel_grid=0, beam_mask_mm=5.0))
    assert gone.empty[0] and gone.images.max() == 0


def test_event_charge_norm_removes_an_unknown_gain():
    rng = np.random.default_rng(5)
    ev = _tracks_and_noise(rng, 1)[0]
    cfg = ImageConfig(views=("xy", "zy"), size=32, voxel_grid=0, charge_norm="event",
                      charge_reference=150.0, dtype="float16")  # fmt: skip
    scaled = _event(ev.points * np.array([1, 1, 1, 2.7]))
    a, b = project([ev], cfg).images, project([scaled], cfg).images
    np.testing.assert_allclose(a.astype(float), b.astype(float), atol=1e-3)
    # the median point charge becomes the reference: one point alone gets exactly 150
    one = project([_event([[0, 0, 500, 37.0]])], cfg).images.astype(float)
    assert one.max() == pytest.approx(np.log1p(150) / np.log1p(cfg.charge_scale), abs=1e-3)


def test_max_and_occupancy_channels_by_hand():
    cfg = ImageConfig(views=("xy", "zy"), size=4, voxel_grid=0, dtype="float16",
                      pixel_values=("sum", "max", "occupancy"), charge_transform="linear",
                      charge_scale=100.0)  # fmt: skip
    # two points in one pixel (charges 10 and 30), one in another (charge 5)
    pts = [[-200.0, -200.0, 100, 10], [-190.0, -210.0, 110, 30], [200.0, 200.0, 900, 5]]
    img = project([_event(pts)], cfg).images[0].astype(float)
    assert img.shape == (6, 4, 4) and cfg.n_channels == 6
    np.testing.assert_allclose(img[0][0, 0], 0.40, atol=1e-3)  # xy sum: 40 / 100
    np.testing.assert_allclose(img[1][0, 0], 0.30, atol=1e-3)  # xy max: 30 / 100
    assert img[2][0, 0] == 1.0 and img[2][3, 3] == 1.0 and img[2].sum() == 2  # xy occupancy
    np.testing.assert_allclose(img[4][3, 3], 0.05, atol=1e-3)  # zy max at (y, z) = (200, 900)
    assert img[5].sum() == 2


def test_robust_config_validation():
    for bad in (
        {"pixel_values": ()},
        {"pixel_values": ("sum", "sum")},
        {"charge_norm": "run"},
        {"denoise": "optics"},
        {"charge_norm": "quantile", "charge_quantiles": (3.0, 2.0)},
        {"beam_mask_mm": -1.0},
        {"denoise_min_samples": 0},
    ):
        with pytest.raises(InputError):
            ImageConfig(**bad)
    cfg = ImageConfig(pixel_values=("sum", "occupancy"), denoise="dbscan", beam_mask_mm=15.0)
    assert ImageConfig.from_json(cfg.to_json()) == cfg


def test_dbscan_noise_counts_a_neighbour_at_exactly_eps_as_scikit_learn_does():
    from sklearn.cluster import DBSCAN

    from data_prep.images import dbscan_noise

    # a lattice: neighbours lie at exactly eps = 10 mm (and sqrt(2) eps), the tie cases
    grid = np.array([[x, y, 0.0, 1.0] for x in (0, 10, 20, 50) for y in (0, 10, 40)])
    for min_samples in (2, 3, 4, 5):
        want = DBSCAN(eps=10.0, min_samples=min_samples).fit(grid[:, :3]).labels_ == -1
        got = dbscan_noise(grid, np.array([len(grid)]), eps=10.0, min_samples=min_samples)
        np.testing.assert_array_equal(got, want)


def test_isolated_points_are_scikit_learns_dbscan_noise_at_two_samples():
    """The burst rule's question for a subset of points: per event, scikit-learn's noise
    at min_samples=2, on tracks with scattered hits and on a lattice (ties at eps)."""
    from sklearn.cluster import DBSCAN

    from data_prep.cluster import isolated_points

    rng = np.random.default_rng(8)
    events = _tracks_and_noise(rng)
    counts = np.array([e.n_points for e in events])
    points = np.concatenate([e.points for e in events])
    want = np.concatenate(
        [DBSCAN(eps=12.0, min_samples=2).fit(e.points[:, :3]).labels_ == -1 for e in events]
    )
    which = np.flatnonzero(rng.uniform(size=len(points)) < 0.5)
    np.testing.assert_array_equal(isolated_points(points, counts, 12.0, which), want[which])
    assert 50 < want[which].sum() < len(which) - 50  # both answers are asked
    grid = np.array([[x, y, 0.0, 1.0] for x in (0, 10, 20, 50) for y in (0, 10, 40)])
    want = DBSCAN(eps=10.0, min_samples=2).fit(grid[:, :3]).labels_ == -1
    got = isolated_points(grid, np.array([len(grid)]), 10.0, np.arange(len(grid)))
    np.testing.assert_array_equal(got, want)
    assert want.any() and not want.all()
    assert len(isolated_points(grid, np.array([len(grid)]), 10.0, np.array([], int))) == 0


def test_hdbscan_noise_drops_scattered_hits_and_keeps_tracks():
    from data_prep.images import hdbscan_noise

    rng = np.random.default_rng(6)
    events = _tracks_and_noise(rng, 3)
    counts = np.array([e.n_points for e in events])
    noise = hdbscan_noise(np.concatenate([e.points for e in events]), counts, 10, 4)
    per_event = np.split(noise, np.cumsum(counts)[:-1])
    for flags in per_event:
        # the 40-point track, 5 mm apart, is one cluster (HDBSCAN may shed an end point)
        assert flags[:40].sum() <= 2
        assert flags[40:].sum() >= 20  # of 25 hits scattered over the whole chamber
    # an event smaller than the smallest cluster is all noise
    assert hdbscan_noise(np.zeros((3, 4)), np.array([3]), 10, 4).all()


def test_map_quantiles_by_hand():
    from data_prep.images import map_quantiles

    run_q, ref_q = [10.0, 20.0, 20.0, 40.0], [100.0, 150.0, 170.0, 300.0]
    q = np.array([5.0, 10.0, 15.0, 30.0, 40.0, 80.0, 0.0, -3.0])
    # inside: linear between (10, 100), (20, 150), (40, 300) (the repeated 20 keeps 150);
    # outside: scaled by 100 / 10 below and 300 / 40 above; charge <= 0 untouched
    want = [50.0, 100.0, 125.0, 225.0, 300.0, 600.0, 0.0, -3.0]
    np.testing.assert_allclose(map_quantiles(q, run_q, ref_q), want)
    np.testing.assert_allclose(map_quantiles(q[1:5], run_q, ref_q),
                               np.interp(q[1:5], [10, 20, 40], [100, 150, 300]))  # fmt: skip


def test_quantile_norm_removes_a_run_gain_and_matches_the_reference():
    from data_prep.images import QUANTILE_LEVELS, clean_points
    from data_prep.quantiles import charge_quantiles

    rng = np.random.default_rng(7)
    events = _tracks_and_noise(rng, 20)
    counts = np.array([e.n_points for e in events])
    points = np.concatenate([e.points for e in events])
    base = ImageConfig(views=("xy",), size=32, voxel_grid=0, dtype="float16",
                       charge_norm="quantile")  # fmt: skip
    ref = charge_quantiles(points, counts, base)
    np.testing.assert_allclose(ref, np.quantile(points[:, 3], QUANTILE_LEVELS))
    # the same events at 3.7 x the gain, mapped with their own quantiles onto the reference
    hot = points * np.array([1, 1, 1, 3.7])
    hot_q = tuple(np.quantile(hot[:, 3], QUANTILE_LEVELS))
    cfg = ImageConfig(**{**base.to_dict(), "charge_quantiles": tuple(ref), "run_quantiles": hot_q})
    mapped, _ = clean_points(hot, counts, cfg)
    np.testing.assert_allclose(mapped[:, 3], points[:, 3], rtol=1e-9)
    same = ImageConfig(**{**cfg.to_dict(), "run_quantiles": tuple(ref)})
    np.testing.assert_array_equal(project_arrays(hot, counts, cfg).images,
                                  project_arrays(points, counts, same).images)  # fmt: skip
    with pytest.raises(InputError, match="run_quantiles"):
        project_arrays(points, counts, base)
