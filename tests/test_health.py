"""Detector health of run files (`data_prep.health`, ``attpc-classify health``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from _formats import WRITERS, write_spyral
from _scripts import load_script
from _synthetic import make_image_file, train_tiny_cnn

from attpc_classify.cli import main
from attpc_classify.commands.health import RECIPE_SETTINGS
from data_prep.beamaxis import FileAxis
from data_prep.events import Event
from data_prep.health import (
    ADC_FULL_SCALE,
    FileHealth,
    Known,
    dead_pads,
    file_health,
    not_measured,
    outside,
    reference_ranges,
)
from data_prep.images import ImageConfig
from data_prep.padplane import pad_centres
from data_prep.structured import StructuredNoiseRules, chip_fires

CONFIG = ImageConfig(structured_noise="rules")
N_EVENTS = 200
RULE_CHIP = np.arange(6400, 6464)  # 64 consecutive ids: one chip by the rule's grouping
CHIP_EVENTS = 20


def _band() -> np.ndarray:
    """Pads 100-140 mm from the axis, outside the rule's chip."""
    r = np.hypot(*pad_centres().T)
    band = np.flatnonzero((r >= 100) & (r < 140))
    return band[~np.isin(band, RULE_CHIP)]


def _run(seed: int, *, dead: int = 0, hot: int | None = None, chips: bool = False,
         saturate: float = 0.0, deep: int = 0) -> tuple[list[Event], dict]:  # fmt: skip
    """Events of a detector whose faults are known by construction: every pad of the
    band fires in 30 % of the events at a random depth, except ``dead`` of them; the pad
    ``hot`` fires in every event; with ``chips`` the rule's chip fires whole (all 64
    pads within 2 mm) in `CHIP_EVENTS` events; ``saturate``: the share of points at the
    ADC's full scale; ``deep`` points per event below the drift window (z > 1000)."""
    rng = np.random.default_rng(seed)
    centres = pad_centres()
    band = _band()
    silent = rng.choice(band, dead, replace=False) if dead else np.empty(0, np.int64)
    live = band[~np.isin(band, silent)]
    chip_events = set(rng.choice(N_EVENTS, CHIP_EVENTS, replace=False).tolist()) if chips else set()
    events = []
    for i in range(N_EVENTS):
        pads = live[rng.random(len(live)) < 0.3]
        z = rng.uniform(50, 950, len(pads))
        if hot is not None:
            pads, z = np.append(pads, hot), np.append(z, rng.uniform(50, 950))
        if i in chip_events:
            pads = np.concatenate([pads, RULE_CHIP])
            z = np.concatenate([z, 500 + rng.uniform(-2, 2, len(RULE_CHIP))])
        z[:deep] = rng.uniform(1010, 1100, min(deep, len(z)))
        charge = rng.uniform(50, 2000, len(pads))
        charge[rng.random(len(pads)) < saturate] = ADC_FULL_SCALE
        # the pad id in column 5, where Spyral keeps it (pytpc's writer copies it)
        points = np.column_stack([centres[pads], z, charge, np.zeros(len(pads)), pads])
        events.append(Event(run=7, event_id=i, points=points, pad_column=5))
    return events, {"dead": sorted(silent.tolist())}


def _write(path: Path, events: list[Event]) -> Path:
    return write_spyral(path, events, run_attr=7, pads=True)


def _stored(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every point (x, y, z, amplitude) and points per event, read with h5py alone."""
    with h5py.File(path, "r") as f:
        clouds = [f["cloud"][k][()] for k in f["cloud"] if k.startswith("cloud_")]
    return np.concatenate([c[:, :4] for c in clouds]), np.array([len(c) for c in clouds])


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_file_health_reads_every_format(tmp_path, fmt):
    """The same events written by each format's writer: the numbers that do not depend on
    the frame come out as computed from the events themselves (points per event, median
    charge, saturation), and the hot pad is found where the format has pad ids or the
    points sit on pad centres (all four)."""
    events, _ = _run(5, hot=3000, saturate=0.05)
    name = tmp_path / f"run_0007.{'root' if fmt == 'root' else 'h5'}"
    path = WRITERS[fmt](name, events, **({"pads": True} if fmt == "spyral" else {}))
    health = file_health(path, CONFIG)
    points = np.concatenate([e.points for e in events])
    assert health.sampled == N_EVENTS
    assert health.points_per_event == np.median([e.n_points for e in events])
    assert health.charge_median == pytest.approx(np.median(points[:, 3]))
    assert health.saturated_fraction == pytest.approx(np.mean(points[:, 3] >= ADC_FULL_SCALE))
    assert health.hot_pad_ids == (3000,)


def test_a_unit_measured_before_is_the_reports_own(tmp_path):
    """``classify`` hands the report the charge units and beam lines it measured (matched
    on the resolved path): with the recipe's preprocessing on a simulated run file, the
    report is the same as measuring them again; a unit pooled from other files is not
    the file's own (NaN)."""
    from attpc_classify.config import load_config
    from data_prep.quantiles import ChargeUnit, beam_axes, charge_units
    from data_prep.simulate import SimConfig, simulate

    config = load_config(ImageConfig, "features", list(RECIPE_SETTINGS))
    simulate(load_config(SimConfig, "tiny"), 30, tmp_path, seed=4, events_per_file=30)
    [path] = sorted(tmp_path.glob("run_*.h5"))
    fits = beam_axes(config, [path])
    units = charge_units(config, [path], axes={k: v.axis for k, v in fits.items()})
    again = file_health(path, config).to_json()
    spelled = tmp_path / ".." / tmp_path.name / path.name  # the same file, named otherwise
    known = Known(units, fits).of([spelled])
    assert known.units == {str(spelled): units[str(path)]}
    assert known.axes == {str(spelled): fits[str(path)]}
    given = file_health(path, config, unit=units[str(path)], axis=fits[str(path)])
    assert given.to_json() == again
    pooled = ChargeUnit(20.0, 1, 30, (), pooled=3)
    assert np.isnan(file_health(path, config, unit=pooled).charge_unit)


def test_dead_pads_by_hand():
    """Three rings of pads: the inner ring (10 events each) judges its silent pad dead,
    the outer ring (median 5) judges none, a silent pad in the beam core is not judged."""
    centres = np.array([[0, 5], [0, -5], [5, 0],                       # core, r = 5
                        [50, 1], [-50, 1], [1, 50], [1, -50],          # ring r ~ 50
                        [200, 1], [-200, 1], [1, 200]], np.float64)  # fmt: skip
    events = np.array([0, 20, 20, 10, 10, 0, 12, 0, 5, 6])
    dead, judged = dead_pads(events, centres, core_mm=30.0)
    assert dead.tolist() == [5]
    assert judged == 4


def test_chip_fires_count_whole_chips_per_event():
    """Event 0: one chip whole at z 100 and another at z 700; event 1: a chip's 64 pads
    spread over 600 mm (a track, not a fire); event 2: 40 pads of a chip at one z (under
    the rule's 48). Counted by hand: 2, 0, 0."""
    rules = StructuredNoiseRules()
    rng = np.random.default_rng(0)
    z0 = np.concatenate([100 + rng.uniform(-2, 2, 64), 700 + rng.uniform(-2, 2, 64)])
    p0 = np.concatenate([np.arange(128, 192), np.arange(640, 704)])
    z1, p1 = np.linspace(100, 700, 64), np.arange(128, 192)
    z2, p2 = 300 + rng.uniform(-2, 2, 40), np.arange(1000, 1040)
    z = np.concatenate([z0, z1, z2])
    pads = np.concatenate([p0, p1, p2])
    assert chip_fires(z, pads, np.array([128, 64, 40]), rules).tolist() == [2, 0, 0]


def test_file_health_finds_the_faults_built_in(tmp_path):
    """A Spyral file with 9 dead pads, a hot pad, the rule's chip firing in 20 of 200
    events, 5 % saturated points and 3 points per event past the drift window: each
    number against the construction or against the points read with h5py alone."""
    hot = 3000
    events, truth = _run(1, dead=9, hot=hot, chips=True, saturate=0.05, deep=3)
    path = _write(tmp_path / "run_0007.h5", events)
    health = file_health(path, CONFIG)
    points, counts = _stored(path)
    assert (health.events, health.sampled, health.bad) == (N_EVENTS, N_EVENTS, 0)
    assert health.dead_pads == len(truth["dead"]) == 9
    assert health.judged_pads == len(_band())
    assert health.dead_fraction == pytest.approx(9 / len(_band()))
    assert health.hot_pad_ids == (hot,)
    assert health.chip_fires_per_event == pytest.approx(CHIP_EVENTS / N_EVENTS)
    assert health.points_per_event == pytest.approx(np.median(counts))
    assert health.saturated_fraction == pytest.approx(np.mean(points[:, 3] >= 4095))
    assert health.outside_z_fraction == pytest.approx(3 * N_EVENTS / len(points))
    assert health.charge_median == pytest.approx(np.median(points[:, 3]))
    assert health.spark_fraction == 0.0
    assert health.beam_angle_deg == 0.0  # no beam drawn: the detector axis
    assert np.isnan(health.charge_unit)  # no features, no band


def _health(**values: float) -> FileHealth:
    """A file's health with every number 1 but ``values`` (for the comparisons)."""
    base = dict(path="a", events=1, sampled=1, bad=0, beam_backward=False, beam_note="",
                hot_pad_ids=(), judged_pads=0, learned_chips=-1)  # fmt: skip
    numbers = {name: 1.0 for name in FileHealth.__dataclass_fields__ if name not in base}
    return FileHealth(**{**base, **numbers, **values})


def _rays(n_seen: int, n_blind: int, n_far: int, seed: int = 2) -> list[Event]:
    """Tracks out of the beam axis on the pads within 4 mm of a ray at a random angle,
    to 80 mm: ``n_seen`` whole, ``n_blind`` with the pads inside 40 mm silent (a detector
    blind past a 30 mm core), and ``n_far`` events of pads 100-120 mm out only."""
    rng = np.random.default_rng(seed)
    centres = pad_centres()
    radius = np.hypot(*centres.T)
    events = []
    for i in range(n_seen + n_blind + n_far):
        phi = rng.uniform(0, 2 * np.pi)
        along = centres @ np.array([np.cos(phi), np.sin(phi)])
        across = np.abs(centres @ np.array([-np.sin(phi), np.cos(phi)]))
        on_ray = (along > 0) & (across < 4)
        if i < n_seen:
            pads = np.flatnonzero(on_ray & (radius < 80))
        elif i < n_seen + n_blind:
            pads = np.flatnonzero(on_ray & (radius >= 40) & (radius < 80))
        else:
            pads = np.flatnonzero(on_ray & (radius >= 100) & (radius < 120))
        z = rng.uniform(100, 900, len(pads))
        points = np.column_stack([centres[pads], z, np.full(len(pads), 500.0),
                                  np.zeros(len(pads)), pads])  # fmt: skip
        events.append(Event(run=7, event_id=i, points=points, pad_column=5))
    return events


def test_core_edge_seen_by_hand(tmp_path):
    """150 tracks seen whole, 50 with the pads inside 40 mm silent, 20 far out only: of
    the 200 events reaching 40-60 mm, the 150 whole ones have a point at 30-40 mm (the
    construction, checked on the points), so 0.75; read with a 45 mm core, every track
    reaching 55-75 mm is seen at 45-55 mm: 1.0."""
    events = _rays(150, 50, 20)
    radii = [np.hypot(*e.points[:, :2].T) for e in events]
    assert all(np.any((r >= 30) & (r < 40)) for r in radii[:150])
    assert all(np.any((r >= 40) & (r < 60)) for r in radii[:200])
    assert not any(np.any(r < 100) for r in radii[200:])
    path = _write(tmp_path / "run_0007.h5", events)
    # the rays' axis given as the beam line: a fit to rays alone may sit a few mm off
    axis = FileAxis((0.0, 0.0, 0.0, 0.0), "the detector axis")
    health = file_health(path, CONFIG, axis=axis)
    assert health.core_edge_seen == pytest.approx(150 / 200)
    wide = file_health(path, replace(CONFIG, track_core_mm=45.0), axis=axis)
    assert wide.core_edge_seen == pytest.approx(1.0)


def test_a_report_without_the_core_edge_is_read_as_not_measured():
    """Reports written before the number was measured lack it: NaN, so not judged."""
    data = _health().to_json()
    del data["core_edge_seen"]
    old = FileHealth.from_json(data)
    assert np.isnan(old.core_edge_seen)
    assert outside(old, {"core_edge_seen": (0.9, 1.0)}) == []


def test_reference_ranges_and_outside_by_hand():
    a = _health(hot_pads=1, charge_unit=float("nan"))
    b = _health(hot_pads=4, charge_unit=20.0)
    ranges = reference_ranges([a, b])
    assert ranges["hot_pads"] == (1.0, 4.0)
    assert ranges["charge_unit"] == (20.0, 20.0)  # the NaN is not a value
    c = _health(hot_pads=9, charge_unit=float("nan"))
    assert outside(c, ranges) == [("hot_pads", 9.0, 1.0, 4.0)]  # NaN is not judged
    # chips learned grow with a file's length: judged against files of about its length
    short = [_health(sampled=100, learned_fires_per_event=0.1) for _ in range(2)]
    ranges = reference_ranges(short)
    assert ranges["sampled"] == (100.0, 100.0)
    fires = [("learned_fires_per_event", 0.7, 0.1, 0.1)]
    assert outside(_health(sampled=150, learned_fires_per_event=0.7), ranges) == fires
    assert outside(_health(sampled=1000, learned_fires_per_event=0.7), ranges) == []


def test_health_check_counts_files_outside_and_their_side():
    """scripts/health_check.py's summary: per metric the files outside the reference and
    on which side, most files first, counted by hand; a set's reader options."""
    script = load_script("health_check")
    flagged = script.flagged_metrics
    fmt, options, _ = script.reader_settings("--format pytpc --frame simulation")
    assert (fmt, options) == ("pytpc", {"frame": "simulation"})
    assert script.reader_settings("")[:2] == ("auto", {})
    files = [_health(hot_pads=30, dead_fraction=d) for d in (0.0, 0.2)]
    ranges = {"hot_pads": (0.0, 20.0), "dead_fraction": (0.01, 0.1), "charge_unit": (0.5, 2.0)}
    assert flagged(files, ranges) == (
        "hot_pads (2 of 2, above), dead_fraction (2 of 2, above/below)"
    )
    assert flagged(files[:1], {"charge_unit": (0.5, 2.0)}) == "none"


def test_health_command_names_what_differs_from_the_reference(tmp_path, capsys):
    """A healthy run measured once as the reference report, then a faulty one against
    it: the report names its dead pads, hot pad and chip fires, and nothing of the
    healthy one measured again."""
    good = _write(tmp_path / "run_0001.h5", _run(2)[0])
    bad = _write(tmp_path / "run_0002.h5", _run(3, dead=12, hot=3000, chips=True)[0])
    ref = tmp_path / "ref.json"
    assert main(["health", str(good), "--config", "default", "--set", "structured_noise=rules",
                 "--out", str(ref)]) == 0  # fmt: skip
    out = tmp_path / "health.json"
    # --reference before the inputs takes one path (repeat it for more)
    assert main(["health", "--reference", str(ref), str(bad), str(good), "--config", "default",
                 "--set", "structured_noise=rules", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    flagged = {
        path: {o[0] for o in found} for path, found in report["reference"]["outside"].items()
    }
    assert {"dead_fraction", "hot_pads", "chip_fires_per_event"} <= flagged[str(bad)]
    assert flagged[str(good)] == set()
    assert [f["path"] for f in report["files"]] == [str(bad), str(good)]
    text = capsys.readouterr().out
    assert f"{bad}: outside the reference" in text
    assert f"{good}: outside" not in text


def test_a_report_beside_the_model_is_its_reference(tmp_path, capsys):
    """``--model RUN`` measures with the run's preprocessing and, without ``--reference``,
    compares with ``RUN/health.json``; with ``--config`` too it is refused. ``classify
    RUN`` names the inputs outside that report's ranges."""
    run = train_tiny_cnn(make_image_file(tmp_path / "train.h5", n_per_class=4), tmp_path / "run")
    good = _write(tmp_path / "run_0001.h5", _run(2)[0])
    bad = _write(tmp_path / "run_0002.h5", _run(3, hot=3000, chips=True)[0])
    assert main(["health", str(good), "--model", str(run), "--out", str(run / "health.json")]) == 0
    capsys.readouterr()
    assert main(["health", str(bad), "--model", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"reference: {run / 'health.json'}" in text
    assert f"{bad}: outside the reference" in text and "hot_pads" in text
    assert main(["health", str(bad), "--model", str(run), "--config", "default"]) == 2
    # classify checks its point-cloud inputs against the report (not with --no-health)
    capsys.readouterr()
    for extra, checked in (([], True), (["--no-health"], False)):
        out = tmp_path / f"calls{len(extra)}.csv"
        assert main(["classify", str(run), str(bad), "--out", str(out), "--quiet", *extra]) == 0
        err = capsys.readouterr().err
        assert ("1 file of 1 with numbers outside" in err) is checked
        assert (f"{bad}: outside the reference: " in err) is checked
    # a file health cannot measure (no readable event) is named; the calls stand
    nothing = [Event(7, i, np.empty((0, 4))) for i in range(3)]
    empty = write_spyral(tmp_path / "run_0009.h5", nothing)
    out = tmp_path / "empty.csv"
    assert main(["classify", str(run), str(empty), "--out", str(out), "--quiet", "--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert f"health not measured: {empty}: no readable event to measure" in err and out.exists()
    # on 2 workers the same: the files at once, and the one that fails named on its own
    assert main(["classify", str(run), str(bad), str(empty), "--out", str(out), "--quiet",
                 "--skip-bad", "--workers", "2"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"health not measured: {empty}: no readable event to measure" in err
    assert f"{bad}: outside the reference: " in err and "1 file of 1 with numbers" in err


def test_a_file_not_measured_is_one_line():
    """Where runs are classified, a file the report cannot measure is named in one line:
    a bad file by its own message, anything else by its error's name."""
    from data_prep.errors import InputError

    bad = InputError("no readable event to measure", path="run_0001.h5")
    assert not_measured("run_0001.h5", bad) == "run_0001.h5: no readable event to measure"
    assert not_measured("run_0002.h5", ValueError("odd")) == (
        "run_0002.h5: ValueError: odd (please report it)"
    )


def test_health_command_bad_input_is_one_line(tmp_path, capsys):
    """A reference that is no report, a missing run file and an image file: exit 2, one
    line naming the file, no traceback."""
    run = _write(tmp_path / "run_0001.h5", _run(4)[0][:20])
    not_report = tmp_path / "notes.json"
    not_report.write_text('{"hello": 1}')
    assert main(["health", str(run), "--reference", str(not_report)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(not_report) in err and "Traceback" not in err
    missing = tmp_path / "run_9999.h5"
    images = make_image_file(tmp_path / "images.h5", n_per_class=2)
    for bad in (missing, images):
        assert main(["health", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err


def test_a_number_outside_prints_apart_from_the_bound_it_crossed() -> None:
    from data_prep.health import outside_items

    # 12.57 below 12.6: three digits would print "12.6 (12.6-125)"
    assert outside_items([("charge_unit", 12.57, 12.6, 125.0)]) == "charge_unit 12.57 (12.6-125)"
    # 1,005.3 above 1,005.2: one decimal tells them apart
    assert outside_items([("z_p99", 1005.3, 1004.0, 1005.2)]) == "z_p99 1,005.3 (1,004.0-1,005.2)"
    # 999.7 would print "1e+03" beside 1,000.2's "1,000": fixed point with one decimal
    assert outside_items([("z", 1000.2, 0.0, 999.7)]) == "z 1,000.2 (0-999.7)"
    # already apart: as before
    assert (
        outside_items([("x", 0.5, 1.0, 2.0), ("y", 3000.0, 1.0, 2.0)])
        == "x 0.5 (1-2), y 3,000 (1-2)"
    )
