"""Physics features (data_prep.features) and the gradient-boosted-tree model (models.gbt).

Features are checked against hand computations on straight tracks of known length and
angle, and for invariance under what a detector change does (rotation about the beam
axis, a charge scale, a z shift); the tree walk against scikit-learn's predict_proba.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_prep.errors import InputError
from data_prep.features import (
    BEAM_SPEED,
    BEAM_SPEED_Z_MM,
    CORE_MM,
    MAX_RADIUS_MM,
    MAX_VERTEX_MISS_MM,
    circle_fit,
    event_features,
    feature_names,
    track_columns,
)
from data_prep.images import ImageConfig, project_arrays

NAMES = feature_names("tracks_v1")
NAMES_V2 = feature_names("tracks_v2")


def col(row: np.ndarray, name: str) -> float:
    return float(row[NAMES.index(name)])


def line(start, direction, length: float, step: float = 5.0, charge: float = 100.0):
    """Points every ``step`` mm from ``start`` along unit ``direction`` (length exact)."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    t = np.arange(0.0, length + 1e-9, step)
    xyz = np.asarray(start, float) + t[:, None] * direction
    return np.column_stack([xyz, np.full(len(t), charge)])


def features_of(*clouds: np.ndarray) -> np.ndarray:
    counts = np.array([len(c) for c in clouds])
    return event_features(np.concatenate(clouds), counts)


def test_straight_track_by_hand() -> None:
    theta = np.deg2rad(40.0)  # polar angle to the beam axis
    phi = np.deg2rad(25.0)
    d = [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    start = np.array([35.0 * np.cos(phi), 35.0 * np.sin(phi), 300.0])  # r = 35 mm
    track = line(start, d, 200.0)  # 41 points, 200 mm
    stray = np.array([[-200.0, 150.0, 900.0, 100.0]])  # far from everything: DBSCAN noise
    beam = np.column_stack([np.zeros(9), np.zeros(9), np.linspace(0, 290, 9), np.full(9, 100)])
    (row,) = features_of(np.concatenate([track, stray, beam]))
    n = len(track)
    assert n == 41
    assert col(row, "n_tracks") == 1
    assert col(row, "log10_points") == pytest.approx(np.log10(n + 9 + 1))  # stray dropped
    assert col(row, "noise_frac") == pytest.approx(1 / (n + 1))
    assert col(row, "core_points_frac") == pytest.approx(9 / (n + 9))
    assert col(row, "core_charge_frac") == pytest.approx(9 / (n + 9))
    assert col(row, "t1_length_mm") == pytest.approx(200.0)
    assert col(row, "t1_cos_polar") == pytest.approx(np.cos(theta))
    assert col(row, "t1_r_min_mm") == pytest.approx(35.0)
    assert col(row, "t1_r_max_mm") == pytest.approx(35.0 + 200.0 * np.sin(theta))
    assert col(row, "t1_z_extent_mm") == pytest.approx(200.0 * np.cos(theta))
    assert col(row, "t1_linearity2") == pytest.approx(0.0, abs=1e-6)
    assert col(row, "t1_width_mm") == pytest.approx(0.0, abs=1e-6)
    assert col(row, "t1_points_frac") == 1.0 and col(row, "t1_charge_frac") == 1.0
    assert col(row, "t1_charge_median_rel") == pytest.approx(1.0)
    # 20 points beyond the middle, 21 up to it (the middle point counts as inner)
    assert col(row, "t1_charge_asymmetry") == pytest.approx((20 - 21) / 41)
    assert col(row, "t1_points_per_mm") == pytest.approx(n / 200.0)
    assert col(row, "t1_charge_per_mm_rel") == pytest.approx(n / 200.0)
    assert np.isnan(col(row, "t2_length_mm")) and np.isnan(col(row, "cos_12"))


def test_two_tracks_from_one_vertex_and_a_bragg_peak() -> None:
    # track 1 along +x leaving the axis, its last quarter 4x the charge (a Bragg peak);
    # track 2 backwards, at 120 deg to it, from a vertex 10 mm further along z
    t1 = line([32.0, 0.0, 500.0], [1.0, 0.0, 0.0], 150.0)
    t1[t1[:, 0] > 32.0 + 112.5, 3] = 400.0
    d2 = np.array([np.cos(np.deg2rad(120.0)), np.sin(np.deg2rad(120.0)), 0.0])
    t2 = line(np.array([0.0, 0.0, 510.0]) + 40.0 * d2, d2, 60.0)
    (row,) = features_of(np.concatenate([t1, t2]))
    assert col(row, "n_tracks") == 2
    assert col(row, "t1_length_mm") == pytest.approx(150.0)  # the larger cluster first
    assert col(row, "t2_length_mm") == pytest.approx(60.0)
    assert col(row, "cos_12") == pytest.approx(np.cos(np.deg2rad(120.0)))
    assert col(row, "dz_inner_12_mm") == pytest.approx(10.0)
    q1 = t1[:, 3]
    outer = t1[:, 0] > 32.0 + 75.0  # beyond the middle of the track
    want = (q1[outer].sum() - q1[~outer].sum()) / q1.sum()
    assert want > 0.3 and col(row, "t1_charge_asymmetry") == pytest.approx(want)
    q_ref = np.median(np.concatenate([q1, t2[:, 3]]))
    assert col(row, "t1_charge_max_rel") == pytest.approx(400.0 / q_ref)
    assert col(row, "t1_points_frac") == pytest.approx(len(t1) / (len(t1) + len(t2)))


def _cloud(rng: np.random.Generator) -> np.ndarray:
    parts = []
    for length, n in ((180.0, 60), (50.0, 40)):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        v = np.array([0.0, 0.0, rng.uniform(200, 700)])
        t = rng.uniform(0, length, n)
        xyz = v + t[:, None] * d + rng.normal(0, 1.5, (n, 3))
        parts.append(np.column_stack([xyz, rng.exponential(100.0, n)]))
    noise = np.column_stack(
        [rng.uniform([-250, -250, 0], [250, 250, 1000], (30, 3)), rng.exponential(50.0, 30)]
    )
    return np.concatenate([*parts, noise])


def helix(
    z0: float,
    radius: float,
    theta_deg: float,
    azimuth_deg: float,
    sense: int,
    phi_max: float = 2.5,
    step_mm: float = 4.0,
    charge: float = 100.0,
) -> np.ndarray:
    """Points of a helix leaving the beam axis at z0: a circle of ``radius`` through the
    origin on the pad plane (centre at ``azimuth_deg``), turning ``sense`` (+1 / -1), z
    rising by ``radius x turn x cot(theta)``; every ``step_mm`` of pad-plane arc."""
    a = np.deg2rad(azimuth_deg)
    centre = radius * np.array([np.cos(a), np.sin(a)])
    phi = np.arange(step_mm / radius, phi_max, step_mm / radius)
    start = np.arctan2(-centre[1], -centre[0])  # direction from the centre to the origin
    x = centre[0] + radius * np.cos(start + sense * phi)
    y = centre[1] + radius * np.sin(start + sense * phi)
    z = z0 + radius * phi / np.tan(np.deg2rad(theta_deg))
    return np.column_stack([x, y, z, np.full(len(phi), charge)])


@pytest.mark.parametrize("sense", [1, -1])
def test_helix_features_by_hand(sense: int) -> None:
    radius, theta = 150.0, 50.0
    track = helix(300.0, radius, theta, azimuth_deg=35.0, sense=sense)
    (v2,) = event_features(track, np.array([len(track)]), "tracks_v2")
    (v1,) = event_features(track, np.array([len(track)]), "tracks_v1")
    np.testing.assert_array_equal(v2[: len(NAMES)], v1)  # tracks_v2 extends tracks_v1
    got = dict(zip(NAMES_V2, v2, strict=True))
    cot = 1.0 / np.tan(np.deg2rad(theta))
    sin, cos = np.sin(np.deg2rad(theta)), np.cos(np.deg2rad(theta))
    assert got["n_tracks"] == 1
    assert got["t1_helix_log10_radius_mm"] == pytest.approx(np.log10(radius), abs=1e-6)
    assert got["t1_helix_cot_polar"] == pytest.approx(cot, rel=1e-6)
    # the elastic invariant R / (sin theta cos theta), by the hand formula
    assert got["t1_helix_log10_invariant"] == pytest.approx(np.log10(radius / (sin * cos)))
    assert got["t1_helix_rms_mm"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(got["vertex_dz_max_mm"]) and np.isnan(got["t2_helix_cot_polar"])


def test_tracks_v7_reads_the_helix_about_the_tracks_own_vertex_by_hand() -> None:
    # a beam ion that entered off the run's beam line: the proton's helix starts 15 mm
    # from the axis, on the side away from its circle's centre, so that point is also the
    # circle's point nearest the axis (the vertex tracks_v7 takes)
    radius, theta, z0, azimuth = 150.0, 50.0, 300.0, 35.0
    track = helix(z0, radius, theta, azimuth_deg=azimuth, sense=1)
    away = -15.0 * np.array([np.cos(np.deg2rad(azimuth)), np.sin(np.deg2rad(azimuth))])
    track[:, :2] += away
    counts = np.array([len(track)])
    (v3,) = event_features(track, counts, "tracks_v3")
    (v7,) = event_features(track, counts, "tracks_v7")
    np.testing.assert_array_equal(v7[: len(v3)], v3)  # tracks_v7 extends tracks_v3
    got = dict(zip(feature_names("tracks_v7"), v7, strict=True))
    sin, cos = np.sin(np.deg2rad(theta)), np.cos(np.deg2rad(theta))
    invariant = np.log10(radius / (sin * cos))  # the hand formula
    # forced through the axis, the circle misreads the track; about its vertex it does not
    assert abs(got["t1_helix_log10_invariant"] - invariant) > 0.01
    assert got["t1_vhelix_cot_polar"] == pytest.approx(cos / sin, rel=1e-6)
    assert got["t1_vhelix_log10_invariant"] == pytest.approx(invariant, abs=1e-6)
    # at the window: over the beam's speed at z0 = 300 mm, the table's 7th entry
    assert got["t1_vhelix_log10_invariant_window"] == pytest.approx(
        invariant - np.log10(BEAM_SPEED[6]), abs=1e-6
    )
    assert np.isnan(got["t2_vhelix_log10_invariant"])  # no second track
    # the track model reads them with the track's other columns
    t1 = track_columns("tracks_v7")[0]
    assert v7[t1[-1]] == got["t1_vhelix_log10_invariant_window"]


def test_tracks_v8_is_tracks_v6_plus_the_vertex_helix_of_tracks_v7() -> None:
    first = helix(300.0, 150.0, 50.0, azimuth_deg=35.0, sense=1)
    second = helix(520.0, 250.0, 70.0, azimuth_deg=200.0, sense=1, phi_max=1.0)
    cloud = np.concatenate([first, second])
    cloud[:, :2] += np.array([7.0, 4.0])
    counts = np.array([len(cloud)])
    rows = {s: event_features(cloud, counts, s)[0] for s in ("tracks_v6", "tracks_v7", "tracks_v8")}
    names = feature_names("tracks_v8")
    np.testing.assert_array_equal(rows["tracks_v8"][: len(rows["tracks_v6"])], rows["tracks_v6"])
    v7 = dict(zip(feature_names("tracks_v7"), rows["tracks_v7"], strict=True))
    v8 = dict(zip(names, rows["tracks_v8"], strict=True))
    vertex = [n for n in names if "_vhelix_" in n]
    assert len(vertex) == 15 and names[-15:] == tuple(vertex)
    assert np.isfinite(v8["t2_vhelix_log10_invariant"])
    np.testing.assert_array_equal([v8[n] for n in vertex], [v7[n] for n in vertex])
    t2 = track_columns("tracks_v8")[1]
    assert names[t2[-1]] == "t2_vhelix_log10_invariant_window"


def test_tracks_v7_keeps_radius_and_angle_for_any_offset_and_skips_far_circles() -> None:
    # offset sideways, the vertex's own point is not the circle's nearest to the axis:
    # the radius and the slope (dz / ds) are still the track's, only z0 moves
    radius, theta = 200.0, 40.0
    track = helix(500.0, radius, theta, azimuth_deg=120.0, sense=-1, phi_max=2.0)
    track[:, :2] += np.array([9.0, -11.0])
    (row,) = event_features(track, np.array([len(track)]), "tracks_v7")
    got = dict(zip(feature_names("tracks_v7"), row, strict=True))
    sin, cos = np.sin(np.deg2rad(theta)), np.cos(np.deg2rad(theta))
    assert got["t1_vhelix_cot_polar"] == pytest.approx(cos / sin, rel=1e-6)
    assert got["t1_vhelix_log10_invariant"] == pytest.approx(np.log10(radius / (sin * cos)))
    # a circle that passes 45 mm from the axis does not come from it
    far = helix(500.0, radius, theta, azimuth_deg=120.0, sense=-1, phi_max=2.0)
    far[:, :2] -= (MAX_VERTEX_MISS_MM + 15.0) * np.array([np.cos(np.deg2rad(120)),
                                                          np.sin(np.deg2rad(120))])  # fmt: skip
    (row,) = event_features(far, np.array([len(far)]), "tracks_v7")
    got = dict(zip(feature_names("tracks_v7"), row, strict=True))
    assert got["n_tracks"] == 1 and np.isnan(got["t1_vhelix_log10_invariant"])


def test_circle_fit_is_the_geometric_least_squares_circle() -> None:
    # a short noisy arc (a quarter turn): compared with scipy's least_squares on the
    # distances, an independent minimiser of the same sum
    from scipy.optimize import least_squares

    rng = np.random.default_rng(3)
    phi = rng.uniform(0.2, 1.8, size=60)
    xy = np.column_stack([40 + 180 * np.cos(phi), -25 + 180 * np.sin(phi)])
    xy += rng.normal(0.0, 1.0, size=xy.shape)
    centre, radius = circle_fit(xy)
    ref = least_squares(lambda p: np.hypot(*(xy - p[:2]).T) - p[2], x0=[0.0, 0.0, 100.0]).x
    np.testing.assert_allclose([*centre, radius], ref, atol=1e-3)
    assert radius == pytest.approx(180.0, rel=0.03)
    line_ = np.column_stack([np.arange(10.0), 2.0 * np.arange(10.0)])
    assert circle_fit(line_)[1] == np.inf or circle_fit(line_)[1] > MAX_RADIUS_MM


def test_beam_speed_table_is_pycatimas_energy_loss() -> None:
    # recomputed here from pycatima's energy loss (spyral-utils' GasTarget) for the beam
    # and gas the table names: 46Ar, 4.6 - 0.43 MeV/u, C4H10 at 19.2 Torr
    from attpc_engine import nuclear_map
    from spyral_utils.nuclear.target import GasTarget

    gas = GasTarget([(6, 12, 4), (1, 1, 10)], 19.2, nuclear_map)
    argon = nuclear_map.get_data(18, 46)
    e0 = (4.6 - 0.43) * 46
    for z, speed in zip(BEAM_SPEED_Z_MM, BEAM_SPEED, strict=True):
        loss = gas.get_energy_loss(argon, e0, np.array([z / 1000.0]))[0]
        assert speed == pytest.approx(np.sqrt((e0 - loss) / e0), abs=1e-4)
    assert BEAM_SPEED_Z_MM[0] == 0 and BEAM_SPEED_Z_MM[-1] == 1000


def test_two_vertices_and_a_beam_like_line() -> None:
    # pile-up: a proton-like helix from z = 300 and a carbon-like one from z = 520;
    # a straight line at 5 deg to the axis (a scattered beam ion) meets the axis nowhere
    # in particular and gives no vertex
    first = helix(300.0, 150.0, 50.0, azimuth_deg=35.0, sense=1)
    second = helix(520.0, 250.0, 70.0, azimuth_deg=200.0, sense=1, phi_max=1.0)
    beam_ion = line([0.0, -40.0, 100.0], [0.0, -np.sin(np.deg2rad(5)), np.cos(np.deg2rad(5))],
                    400.0)  # fmt: skip
    cloud = np.concatenate([first, second, beam_ion])
    (row,) = event_features(cloud, np.array([len(cloud)]), "tracks_v2")
    got = dict(zip(NAMES_V2, row, strict=True))
    assert got["n_tracks"] == 3
    assert got["vertex_dz_max_mm"] == pytest.approx(220.0, abs=1e-6)
    straight = [
        k for k in (1, 2, 3) if got[f"t{k}_helix_log10_radius_mm"] == np.log10(MAX_RADIUS_MM)
    ]
    assert len(straight) == 1  # the beam ion: capped radius, its cot ~ 11.4 (5 deg)
    assert abs(got[f"t{straight[0]}_helix_cot_polar"]) > 4.0


def test_pair_columns_tell_two_reactions_from_one_cut_helix() -> None:
    """tracks_v6: per pair of tracks the angle about the axis between their circles'
    centres and their vertex gap. Two reactions (centres at 35 and 200 deg, vertices at
    z = 300 and 520) against one helix whose middle is missing (two clusters on one
    circle from one vertex)."""
    names = feature_names("tracks_v6")
    first = helix(300.0, 150.0, 50.0, azimuth_deg=35.0, sense=1)
    second = helix(520.0, 250.0, 70.0, azimuth_deg=200.0, sense=1, phi_max=1.0)
    one = helix(300.0, 150.0, 50.0, azimuth_deg=35.0, sense=1)
    arc = np.arctan2(one[:, 1] - 150 * np.sin(np.deg2rad(35)), one[:, 0] - 150 * np.cos(
        np.deg2rad(35)))  # fmt: skip
    gap = np.abs(np.angle(np.exp(1j * (arc - arc[len(arc) // 2])))) < 0.4  # 120 mm of arc
    cut = one[~gap]
    rows = event_features(np.concatenate([first, second, cut]),
                          np.array([len(first) + len(second), len(cut)]), "tracks_v6")  # fmt: skip
    two, pieces = (dict(zip(names, r, strict=True)) for r in rows)
    v3 = event_features(cut, np.array([len(cut)]), "tracks_v3")[0]
    np.testing.assert_array_equal(rows[1, : len(v3)], v3)  # tracks_v6 extends tracks_v3
    assert two["n_tracks"] == 2 and pieces["n_tracks"] == 2
    assert two["p12_centre_angle"] == pytest.approx(np.deg2rad(165.0), abs=1e-6)
    assert two["p12_vertex_dz_mm"] == pytest.approx(220.0, abs=1e-6)
    assert pieces["p12_centre_angle"] == pytest.approx(0.0, abs=1e-6)
    assert pieces["p12_vertex_dz_mm"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(two["p13_centre_angle"]) and np.isnan(two["p45_vertex_dz_mm"])


@pytest.mark.parametrize("feature_set", ["tracks_v1", "tracks_v2", "tracks_v6"])
def test_invariant_under_rotation_charge_scale_and_z_shift(feature_set: str) -> None:
    rng = np.random.default_rng(3)
    clouds = [_cloud(rng) for _ in range(6)]
    clouds[0] = np.concatenate([clouds[0], helix(400.0, 120.0, 60.0, 80.0, -1)])
    counts = np.array([len(c) for c in clouds])
    points = np.concatenate(clouds)
    before = event_features(points, counts, feature_set)
    a = 1.234  # rad, about the beam axis
    moved = points.copy()
    moved[:, 0] = np.cos(a) * points[:, 0] - np.sin(a) * points[:, 1]
    moved[:, 1] = np.sin(a) * points[:, 0] + np.cos(a) * points[:, 1]
    moved[:, 2] += 17.5  # z offset
    moved[:, 3] *= 2.7  # gain
    after = event_features(moved, counts, feature_set)
    assert np.isfinite(before[:, NAMES.index("t2_length_mm")]).all()  # two tracks found
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_core_only_event_and_all_noise_event() -> None:
    beam = np.column_stack([np.full(5, 5.0), np.zeros(5), np.arange(5) * 10.0, np.ones(5)])
    (row,) = features_of(beam)
    assert col(row, "n_tracks") == 0 and col(row, "core_points_frac") == 1.0
    assert 5.0 < CORE_MM
    assert np.isnan(col(row, "t1_length_mm"))
    lone = np.array([[100.0, 0.0, 500.0, 10.0]])  # one stray hit: nothing is kept
    (row,) = features_of(lone)
    assert col(row, "log10_points") == 0.0 and col(row, "noise_frac") == 1.0
    assert col(row, "n_tracks") == 0 and np.isnan(col(row, "core_points_frac"))


def _sklearn_data(rng: np.random.Generator, n: int, k: int):
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    if k == 3:
        y[x[:, 2] > 0.8] = 2
    x[rng.random(x.shape) < 0.15] = np.nan  # missing features take the learnt side
    return x.astype(np.float32), y


@pytest.mark.parametrize("k", [2, 3, 5])
def test_compiled_walk_equals_the_tensor_walk_bit_for_bit(k: int, monkeypatch) -> None:
    """`gbt.walk_trees` (the CPU default) and the tensor walk add the same leaf values in
    the same order: equal scores, not close ones (NaN routing and ties included)."""
    from attpc_classify.models import gbt

    rng = np.random.default_rng(k)
    x = rng.normal(size=(800, 6))
    x[:, 1] = np.round(x[:, 1], 1)  # values on the thresholds
    y = np.digitize(x[:, 0] + x[:, 1] * x[:, 2], np.linspace(-1, 1, k - 1))
    x[rng.random(x.shape) < 0.15] = np.nan
    model = gbt.GBTClassifier(6, k)
    gbt.fit_gbt(model, x, y, params={"max_iter": 40, "max_leaf_nodes": 15})
    test = torch.from_numpy(np.concatenate([x, rng.normal(size=(200, 6))]))
    with torch.no_grad():
        compiled = model.raw_scores(test)
        monkeypatch.setattr(gbt, "WALK", "torch")
        tensor = model.raw_scores(test)
    assert model.feature.shape[0] > gbt.TREE_CHUNK  # several chunks of the tensor walk
    assert torch.equal(compiled, tensor)


@pytest.mark.parametrize("k", [2, 3])
def test_tree_walk_matches_sklearn_predict_proba(k: int) -> None:
    from attpc_classify.models import create_model
    from attpc_classify.models.gbt import TREE_CHUNK, fit_gbt

    rng = np.random.default_rng(0)
    x, y = _sklearn_data(rng, 600, k)
    x_val, y_val = _sklearn_data(rng, 200, k)
    model = create_model("gbt", {"n_features": 6, "num_classes": k})
    clf = fit_gbt(model, x, y, x_val=x_val, y_val=y_val,
                  params={"max_iter": 40, "max_leaf_nodes": 7}, balanced=False)  # fmt: skip
    x_test, _ = _sklearn_data(rng, 300, k)
    assert model.feature.shape[0] > TREE_CHUNK  # the walk goes through several chunks
    with torch.no_grad():
        got = model(torch.from_numpy(x_test)).softmax(-1).numpy()
    np.testing.assert_allclose(got, clf.predict_proba(x_test), atol=1e-6)
    # the checkpoint round trip: the spec's shapes rebuild the module, the buffers load
    spec = model.model_spec["args"]
    again = create_model("gbt", spec)
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(x_test)).numpy(),
                                      model(torch.from_numpy(x_test)).numpy())  # fmt: skip


def test_gbt_trains_and_classifies_through_the_cli(tmp_path) -> None:
    from _synthetic import SMALL_CONFIG, make_image_file
    from sklearn.ensemble import HistGradientBoostingClassifier

    from attpc_classify.checkpoint import load_run
    from attpc_classify.cli import main
    from data_prep.imagefile import read_images
    from data_prep.images import ImageConfig

    config = ImageConfig.from_dict(
        {**SMALL_CONFIG.to_dict(), "voxel_grid": 0, "features": "tracks_v1"}
    )
    data = make_image_file(tmp_path / "train.h5", n_per_class=40, config=config)
    val = make_image_file(tmp_path / "val.h5", n_per_class=20, seed=1, config=config)
    run = tmp_path / "run"
    # the settings spelled out: the same fit by scikit-learn below must not follow the yaml
    settings = ["model.max_iter=20", "model.learning_rate=0.1", "model.max_leaf_nodes=15",
                "optim.balance=none", "model.l2_regularization=1.0"]  # fmt: skip
    rc = main(["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
               str(run), "--quiet", f"data.val_path={val}", *settings])  # fmt: skip
    assert rc == 0
    trained = load_run(run, device="cpu")
    assert trained.info.input == "features"
    assert trained.info.image_config.features == "tracks_v1"
    assert trained.info.model["args"]["feature_names"] == list(NAMES)
    train, test = read_images(data, features=True), read_images(val, features=True)
    # the same fit by scikit-learn directly, on the features the file holds
    clf = HistGradientBoostingClassifier(
        learning_rate=0.1, max_iter=20, max_leaf_nodes=15, l2_regularization=1.0,
        early_stopping=True, random_state=0,
    )  # fmt: skip
    x = train.features.astype(np.float64)
    x[:, np.isnan(x).all(axis=0)] = 0.0  # as fit_gbt does: sklearn cannot bin all-NaN
    clf.fit(x, train.label, X_val=test.features, y_val=test.label)
    want = clf.predict_proba(test.features)
    got = trained.predict_proba(test.images, features=test.features)
    np.testing.assert_allclose(got, want, atol=1e-5)
    out = tmp_path / "pred.csv"
    assert main(["classify", str(run), str(val), "--out", str(out), "--quiet"]) == 0
    p = np.genfromtxt(out, delimiter=",", names=True)
    np.testing.assert_allclose(p["p_proton"], want[:, 0], atol=1e-5)


def test_preprocess_stores_each_events_features_in_order(tmp_path) -> None:
    """Parts of several tasks, merged: row i of /features belongs to event i."""
    from _formats import write_spyral

    from attpc_classify.cli import main
    from data_prep.events import Event
    from data_prep.imagefile import read_images
    from data_prep.readers import open_events

    rng = np.random.default_rng(5)
    paths = []
    for run in (1, 2):
        events = [
            Event(
                run=run,
                event_id=i,
                points=_cloud(rng)[: int(rng.integers(40, 130))],
                label=int(rng.integers(0, 3)),
            )
            for i in range(12)
        ]
        paths.append(write_spyral(tmp_path / f"run_{run:04d}.h5", events))
    out = tmp_path / "f.h5"
    sets = ["--set", "features=tracks_v1", "--set", "voxel_grid=0", "--size", "16"]
    args = ["preprocess", *map(str, paths), "--out", str(out), *sets, "--events-per-task", "5",
            "--quiet"]  # fmt: skip
    rc = main(args)
    assert rc == 0
    stored = read_images(out, features=True)
    want = []
    for path in paths:
        with open_events(path) as reader:
            evs = list(reader.iter_events())
        want.append(features_of(*[e.points[:, :4] for e in evs]))
    want = np.concatenate(want)
    assert stored.features.shape == (24, len(NAMES))
    np.testing.assert_array_equal(stored.features, want.astype(np.float32))


def test_z_scale_keeps_a_steep_sparse_track_in_one_cluster() -> None:
    # One radial track, a point per 4 mm pad: shallow (z +2 mm per pad), then steep (z
    # +11.3 mm per pad: 12 mm apart in 3-D, so a point has only its two neighbours within
    # EPS_MM and is no DBSCAN core), then shallow again. By hand: in 3-D the steep stretch
    # cuts the track in two; with z counted half the steep points are 6.9 mm apart, four
    # neighbours each, and the track is one cluster.
    dz = np.concatenate([np.full(15, 2.0), np.full(10, 11.3), np.full(15, 2.0)])
    r = 40.0 + 4.0 * np.arange(len(dz))
    track = np.column_stack([r, np.zeros_like(r), 300.0 + np.cumsum(dz), np.full(len(r), 100.0)])
    counts = np.array([len(track)])
    n_tracks = NAMES.index("n_tracks")
    assert event_features(track, counts, "tracks_v1")[0, n_tracks] == 2
    assert event_features(track, counts, "tracks_v1", z_scale=0.5)[0, n_tracks] == 1
    with pytest.raises(InputError, match="cluster_z_scale"):
        ImageConfig(cluster_z_scale=0.0)


def test_track_core_radius_by_hand() -> None:
    # A radial track from r = 12 mm to 112 mm every 5 mm (21 points, z rising 3 mm a step)
    # and a beam line on the axis. With the default 30 mm core the track starts at its
    # first point >= 30 mm (r = 32: 17 points, 80 mm); with a 10 mm core all 21 points
    # (100 mm) are a track, and the beam on the axis stays core either way.
    r = 12.0 + 5.0 * np.arange(21)
    track = np.column_stack([r, np.zeros(21), 400.0 + 3.0 * np.arange(21), np.full(21, 50.0)])
    beam = np.column_stack([np.zeros(9), np.zeros(9), np.linspace(0, 400, 9), np.full(9, 500.0)])
    points, counts = np.concatenate([track, beam]), np.array([30])
    (wide,) = event_features(points, counts)
    (narrow,) = event_features(points, counts, core_mm=10.0)
    assert col(wide, "n_tracks") == 1 == col(narrow, "n_tracks")
    assert col(wide, "t1_r_min_mm") == pytest.approx(32.0)
    assert col(narrow, "t1_r_min_mm") == pytest.approx(12.0)
    assert col(wide, "t1_length_mm") == pytest.approx(np.hypot(80.0, 48.0))
    assert col(narrow, "t1_length_mm") == pytest.approx(np.hypot(100.0, 60.0))
    assert col(wide, "core_points_frac") == pytest.approx((9 + 4) / 30)
    assert col(narrow, "core_points_frac") == pytest.approx(9 / 30)
    # the image config carries it to the features (and refuses a negative radius)
    cfg = ImageConfig(features="tracks_v1", track_core_mm=10.0, views=("xy",), size=8)
    proj = project_arrays(points, counts, cfg)
    np.testing.assert_allclose(proj.features[0], narrow, equal_nan=True)
    with pytest.raises(InputError, match="track_core_mm"):
        ImageConfig(track_core_mm=-1.0)
