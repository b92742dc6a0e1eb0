"""The beam-line mask (data_prep.beamline, ``ImageConfig.beam_line``) on events built by
hand: which points are beam is counted from the geometry, not from the function."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.features import event_features, feature_names
from data_prep.images import ImageConfig, project

NAMES = feature_names("tracks_v1")


def line(start, direction, length: float, step: float) -> np.ndarray:
    """x, y, z, charge=100 every ``step`` mm from ``start`` along ``direction``."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    t = np.arange(0.0, length + 1e-9, step)
    xyz = np.asarray(start, float) + t[:, None] * d
    return np.column_stack([xyz, np.full(len(t), 100.0)])


def polar(theta_deg: float, phi_deg: float = 90.0) -> list[float]:
    t, p = np.deg2rad(theta_deg), np.deg2rad(phi_deg)
    return [np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)]


def beam_and_proton() -> tuple[np.ndarray, int, int]:
    """A beam ion tilted 2 deg from z in the x-z plane, entering at (5, -3, 0), one point
    per 4 mm of z up to z = 496; the vertex at z = 500 on its line; a proton leaving the
    vertex at 60 deg to z along +y, one point per 5 mm over 200 mm."""
    a = np.deg2rad(2.0)
    beam = line([5.0, -3.0, 0.0], polar(2.0, 0.0), 496.0 / np.cos(a), 4.0 / np.cos(a))
    vertex = [5.0 + 500.0 * np.tan(a), -3.0, 500.0]
    proton = line(vertex, polar(60.0), 200.0, 5.0)
    return np.concatenate([beam, proton]), len(beam), len(proton)


def test_tilted_beam_goes_the_proton_from_its_vertex_stays() -> None:
    pts, n_beam, n_proton = beam_and_proton()
    assert (n_beam, n_proton) == (125, 41)
    # by hand: the proton's direction makes arccos(cos 2 deg * cos 60 deg) = 60.02 deg with
    # the beam line, so its point at t mm from the vertex lies t * sin(60.02 deg) = 0.866 t
    # from it: t = 0, 5, 10 (0, 4.3, 8.7 mm) are within the 12 mm radius, t = 15 (13.0 mm)
    # is not. Beam 125 + proton 3 = 128 points go, 38 proton points stay.
    cfg = ImageConfig(beam_line="ransac", beam_line_radius_mm=12.0)
    beam = cfg.beam_points(pts, np.array([len(pts)]))
    assert beam[:n_beam].all()
    np.testing.assert_array_equal(np.flatnonzero(beam[n_beam:]), [0, 1, 2])
    # through the projection: n_removed counts them, with no fixed cylinder
    proj = project([Event(run=0, event_id=0, points=pts)], ImageConfig(
        views=("xy",), size=32, voxel_grid=0, beam_line="ransac"))  # fmt: skip
    assert proj.n_removed.tolist() == [128]


def test_event_without_beam_keeps_everything() -> None:
    # a proton at 40 deg and a carbon at 20 deg from a vertex on the axis: no line
    # within 8 deg of z, so nothing is beam
    vertex = [0.0, 0.0, 300.0]
    pts = np.concatenate([line(vertex, polar(40.0, 30.0), 250.0, 5.0),
                          line(vertex, polar(20.0, 210.0), 120.0, 4.0)])  # fmt: skip
    cfg = ImageConfig(beam_line="ransac")
    assert not cfg.beam_points(pts, np.array([len(pts)])).any()


def test_a_line_ten_degrees_off_z_is_not_beam_but_one_at_seven_is() -> None:
    cfg = ImageConfig(beam_line="ransac", beam_line_max_angle_deg=8.0)
    ten = line([0.0, 0.0, 100.0], polar(10.0, 45.0), 300.0, 4.0)  # r reaches 52 mm < 60
    assert not cfg.beam_points(ten, np.array([len(ten)])).any()
    seven = line([0.0, 0.0, 100.0], polar(7.0, 45.0), 300.0, 4.0)
    assert cfg.beam_points(seven, np.array([len(seven)])).all()


def test_two_ions_and_events_of_a_batch_are_independent() -> None:
    # event 0: two ions (one on the axis, one 40 mm off it, parallel to z); event 1: the
    # same second ion alone. Both ions are beam; the batch gives each event's own answer.
    on_axis = line([0.0, 0.0, 0.0], [0, 0, 1], 900.0, 4.0)
    off_axis = line([40.0, 0.0, 50.0], [0, 0, 1], 900.0, 4.0)
    pts = np.concatenate([on_axis, off_axis, off_axis])
    counts = np.array([len(on_axis) + len(off_axis), len(off_axis)])
    cfg = ImageConfig(beam_line="ransac")
    beam = cfg.beam_points(pts, counts)
    assert beam.all()
    alone = cfg.beam_points(off_axis, np.array([len(off_axis)]))
    np.testing.assert_array_equal(beam[counts[0] :], alone)
    # max_lines = 1: only one of the two ions of event 0 goes (the larger share)
    one = ImageConfig(beam_line="ransac", beam_line_max_lines=1).beam_points(pts, counts)
    assert one[: counts[0]].sum() == len(on_axis)


def test_a_line_starting_downstream_is_not_beam_with_max_start() -> None:
    # nearly along z but from a vertex at z = 500: a forward track, not an ion that entered
    fwd = line([10.0, 0.0, 500.0], polar(3.0, 0.0), 400.0, 4.0)
    counts = np.array([len(fwd)])
    assert ImageConfig(beam_line="ransac").beam_points(fwd, counts).all()
    late = ImageConfig(beam_line="ransac", beam_line_max_start_mm=300.0)
    assert not late.beam_points(fwd, counts).any()


def test_stop_at_vertex_keeps_forward_products_along_the_beam() -> None:
    # the beam along z on the axis up to the vertex at z = 500 (one point per 4 mm, z = 0
    # ... 496); two forward products at 5 deg on either side in x (every 10 mm for 400 mm;
    # symmetric, so they do not pull the fit) and a proton at 60 deg along +y (every 5 mm)
    beam = line([0.0, 0.0, 0.0], [0, 0, 1], 496.0, 4.0)
    fwd = [line([0.0, 0.0, 500.0], polar(5.0, phi), 400.0, 10.0) for phi in (0.0, 180.0)]
    proton = line([0.0, 0.0, 500.0], polar(60.0), 200.0, 5.0)
    pts = np.concatenate([beam, *fwd, proton])
    counts = np.array([len(pts)])
    n_b, n_f = len(beam), 2 * len(fwd[0])
    # max_start: a product, a line from z = 500, is not taken as a second ion
    whole = ImageConfig(beam_line="ransac", beam_line_max_start_mm=300.0)
    stop = ImageConfig(beam_line="ransac", beam_line_max_start_mm=300.0,
                       beam_line_stop_at_vertex=True)  # fmt: skip
    whole, stop = whole.beam_points(pts, counts), stop.beam_points(pts, counts)
    assert whole[:n_b].all() and stop[:n_b].all()
    # without the stop the line runs on through the products: a product's point at t mm
    # lies t sin 5 deg = 0.087 t from the z axis, within 12 mm up to t = 130 (14 points
    # each); a fit leaning towards one product trades them, but dozens go either way
    assert whole[n_b : n_b + n_f].sum() >= 28
    # with it: the proton's points at t = 5, 10 mm (4.3, 8.7 mm off the axis) are on it;
    # its next three (13.0, 17.3, 21.7 mm, within 3 radii) start a track at z = 500 + 15
    # cos 60 deg = 507.5; the line ends 12 mm further, at z = 519.5: of each product only
    # t = 0, 10 (z = 500, 510) go
    assert stop[n_b : n_b + n_f].sum() == 4
    # and of the proton at most those 3 (how the fit leans decides the one at 8.7 mm)
    assert set(np.flatnonzero(stop[n_b + n_f :])) <= {0, 1, 2}


def test_features_count_beam_line_points_as_beam_not_as_a_track() -> None:
    # a beam entering at (20, 0, 0), 2.5 deg off z towards +x: it leaves the 30 mm core at
    # z = 10 / tan(2.5 deg) = 229 mm and reaches the vertex at x = 41.8 mm, z = 500; a
    # proton leaves the vertex at 60 deg to z along +y over 200 mm.
    a = np.deg2rad(2.5)
    beam = line([20.0, 0.0, 0.0], polar(2.5, 0.0), 496.0 / np.cos(a), 4.0 / np.cos(a))
    vertex = [20.0 + 500.0 * np.tan(a), 0.0, 500.0]
    proton = line(vertex, polar(60.0), 200.0, 5.0)
    pts = np.concatenate([beam, proton])
    counts = np.array([len(pts)])
    cfg = ImageConfig(beam_line="ransac")
    on_line = cfg.beam_points(pts, counts)
    plain = event_features(pts, counts)[0]
    lined = event_features(pts, counts, beam=on_line)[0]
    # without the line, the off-axis beam and the proton touch at the vertex: one track
    # longer than the proton; with it, the track is the proton past the points within
    # 12 mm of the line: by hand its first 3 (t = 0, 5, 10 mm), so 185 mm at 60 deg
    assert plain[NAMES.index("n_tracks")] == 1 == lined[NAMES.index("n_tracks")]
    assert plain[NAMES.index("t1_length_mm")] > 250.0
    assert lined[NAMES.index("t1_length_mm")] == pytest.approx(185.0, abs=1e-6)
    assert lined[NAMES.index("t1_cos_polar")] == pytest.approx(0.5, abs=1e-6)
    # the beam counts with the core: every beam point plus those 3 proton points, of all
    r = np.hypot(pts[:, 0], pts[:, 1])
    assert on_line[: len(beam)].all() and on_line[len(beam) :].sum() == 3
    assert lined[NAMES.index("core_points_frac")] == pytest.approx(
        (len(beam) + 3) / len(pts), rel=1e-6)  # fmt: skip
    assert plain[NAMES.index("core_points_frac")] == pytest.approx(
        np.sum(r < 30.0) / len(pts), rel=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        {"beam_line": "hough"},
        {"beam_line_radius_mm": 0.0},
        {"beam_line_max_angle_deg": 60.0},
        {"beam_line_min_points": 1},
        {"beam_line_max_lines": 0},
        {"beam_line_search_mm": -5.0},
        {"beam_line_stop_at_vertex": "yes"},
    ],
)
def test_beam_line_config_is_validated(bad: dict) -> None:
    with pytest.raises(InputError):
        ImageConfig(**bad)
    cfg = ImageConfig(beam_line="ransac", beam_line_radius_mm=9.0)
    assert ImageConfig.from_json(cfg.to_json()) == cfg
