"""Labelled simulation: file layout, labels, determinism, resume, physics, bad configs.

One tiny simulation (12 events: 4 per class, every "other" channel once) is written by
the real `simulate` in this process and shared by the tests; each test that simulates
again stays at a handful of events. numba's compilation of attpc-engine (~5 s without
its on-disk cache) is paid once per process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from attpc_classify.cli import main
from attpc_classify.config import load_config
from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES
from data_prep.sim.channels import plan_channels
from data_prep.sim.runfile import EVENT_DTYPE, FORMAT, FORMAT_VERSION, ROOT_ATTRS
from data_prep.sim.stats import class_statistics
from data_prep.simulate import CHANNELS, SimConfig, check_config, simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"
SEED = 7
N_EVENTS = 12
PER_FILE = 5


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_config() -> SimConfig:
    return load_config(SimConfig, CONFIGS / "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_run(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    summary = simulate(tiny_config, N_EVENTS, out, seed=SEED, events_per_file=PER_FILE)
    return out, summary


def test_summary_counts_every_class_and_channel(tiny_run):
    _, summary = tiny_run
    assert summary.n_events == N_EVENTS
    assert summary.classes == {"proton": 4, "carbon": 4, "other": 4}
    # alpha_43cl is closed at the deepest vertices, where an open "other" channel replaces it
    open_everywhere = ("p_elastic", "c12_elastic", "noise", "fusion_evap", "pileup")
    assert all(summary.channels[name] >= 1 for name in open_everywhere)
    assert summary.channels["alpha_54ti"] == 0  # weight 0 in tiny
    assert [p.name for p in summary.files] == ["run_0000.h5", "run_0001.h5", "run_0002.h5"]
    assert set(summary.rejected) == set(CLASS_NAMES)


def test_file_layout_and_labels(tiny_run, tiny_config):
    out, _ = tiny_run
    from attpc_engine.detector.beam_pads import BEAM_PADS

    events_seen = []
    for run, path in enumerate(sorted(out.glob("run_*.h5"))):
        with h5py.File(path, "r") as f:
            assert set(ROOT_ATTRS) <= set(f.attrs)
            assert f.attrs["format"] == FORMAT
            assert f.attrs["format_version"] == FORMAT_VERSION
            assert json.loads(f.attrs["class_names"]) == list(CLASS_NAMES)
            assert int(f.attrs["run"]) == run and int(f.attrs["seed"]) == SEED
            assert SimConfig().to_dict().keys() == json.loads(f.attrs["simulation_config"]).keys()
            table = f["events"][()]
            assert table.dtype == EVENT_DTYPE
            cloud = f["cloud"]
            assert cloud.attrs["min_event"] == table["event"].min()
            assert cloud.attrs["max_event"] == table["event"].max()
            for row in table:
                n = int(row["event"])
                events_seen.append(n)
                dset = cloud[f"cloud_{n}"]
                points, labels = dset[()], cloud[f"labels_{n}"][()]
                channel = row["channel"].decode()
                assert points.dtype == np.float64 and points.shape == (row["n_points"], 8)
                assert labels.dtype == np.int64 and labels.shape == (len(points),)
                assert int(dset.attrs["label"]) == row["label"] == CHANNELS[channel].label
                assert dset.attrs["channel"] == channel
                assert dset.attrs["orig_run"] == run and dset.attrs["orig_event"] == n
                assert np.sum(labels == -1) == row["n_noise"]
                assert np.sum(labels == -2) == row["n_beam"]
                assert row["n_signal"] + row["n_noise"] + row["n_beam"] == len(points)
                assert np.all(np.diff(points[:, 2]) >= 0)  # sorted in z as Spyral's
                # every point, noise included, sits in the drift volume and time window
                assert np.all((points[:, 2] >= 0) & (points[:, 2] <= 1000))
                assert np.all((points[:, 6] >= 0) & (points[:, 6] < 512))
                assert np.all(points[:, 3] > tiny_config.electronics.adc_threshold)
                assert not np.isin(points[:, 5].astype(int), BEAM_PADS).any()
                if channel == "noise":
                    assert row["n_signal"] == 0 and 20 <= row["n_noise"] <= 300
                else:
                    assert row["n_signal"] >= tiny_config.min_signal_points
    assert events_seen == list(range(N_EVENTS))


def test_points_lie_on_real_pads(tiny_run):
    """x, y of every point (noise hits included) is the centre of its pad in column 5."""
    from importlib import resources

    geometry = resources.files("attpc_engine.detector.data").joinpath("padxy.csv")
    with resources.as_file(geometry) as csv:
        pads = np.loadtxt(csv, delimiter=",", skiprows=1)
    out, _ = tiny_run
    with h5py.File(out / "run_0000.h5", "r") as f:
        for name in f["cloud"]:
            if name.startswith("cloud_"):
                points = f["cloud"][name][()]
                np.testing.assert_allclose(points[:, :2], pads[points[:, 5].astype(int)])


def test_spyral_reader_returns_labels(tiny_run):
    from data_prep.readers import detect_format, open_events

    out, _ = tiny_run
    path = out / "run_0001.h5"
    assert detect_format(path) == "spyral"
    with h5py.File(path, "r") as f:
        table = f["events"][()]
    with open_events(path) as reader:
        events = list(reader)
    assert [e.event_id for e in events] == table["event"].tolist()
    assert [e.label for e in events] == table["label"].tolist()
    assert all(
        e.run == 1 and e.n_points == n for e, n in zip(events, table["n_points"], strict=True)
    )


def test_same_seed_gives_same_bytes(tiny_run, tiny_config, tmp_path):
    out, _ = tiny_run
    again = simulate(tiny_config, N_EVENTS, tmp_path / "a", seed=SEED, events_per_file=PER_FILE)
    for path in again.files:
        assert _digest(path) == _digest(out / path.name)
    with h5py.File(out / "run_0000.h5") as f1, h5py.File(again.files[0]) as f2:
        n = int(f1["events"]["event"][0])
        assert f1[f"cloud/cloud_{n}"][()].tobytes() == f2[f"cloud/cloud_{n}"][()].tobytes()


def test_other_seed_and_file_split_independence(tiny_run, tiny_config, tmp_path):
    out, _ = tiny_run
    # one file instead of three: the same events, byte for byte
    single = simulate(tiny_config, N_EVENTS, tmp_path / "one", seed=SEED, events_per_file=100)
    other = simulate(tiny_config, 3, tmp_path / "seed", seed=SEED + 1, events_per_file=100)
    with h5py.File(single.files[0]) as one, h5py.File(other.files[0]) as diff:
        for path in sorted(out.glob("run_*.h5")):
            with h5py.File(path) as split:
                for name in split["cloud"]:
                    np.testing.assert_array_equal(split["cloud"][name][()], one["cloud"][name][()])
        first = diff["cloud/cloud_0"][()]
        assert first.shape != one["cloud/cloud_0"][()].shape or not np.array_equal(
            first, one["cloud/cloud_0"][()]
        )


def test_first_run_numbers_the_files_and_keeps_the_events(tiny_run, tiny_config, tmp_path):
    out, _ = tiny_run
    moved = simulate(
        tiny_config, N_EVENTS, tmp_path / "r", seed=SEED, events_per_file=PER_FILE, first_run=40
    )
    assert [p.name for p in moved.files] == ["run_0040.h5", "run_0041.h5", "run_0042.h5"]
    with h5py.File(moved.files[1]) as f, h5py.File(out / "run_0001.h5") as ref:
        assert int(f.attrs["run"]) == 41
        assert f["events"][()].tobytes() == ref["events"][()].tobytes()  # NaN vertices too
        for name in ref["cloud"]:
            np.testing.assert_array_equal(f["cloud"][name][()], ref["cloud"][name][()])


@pytest.mark.slow
def test_workers_do_not_change_files(tiny_config, tmp_path):
    """2 spawned workers write the same bytes as 1 process (slow: 2 process start-ups)."""
    n = 2 * PER_FILE
    summary = simulate(
        tiny_config, n, tmp_path / "w2", seed=SEED, workers=2, events_per_file=PER_FILE
    )
    serial = simulate(tiny_config, n, tmp_path / "w1", seed=SEED, events_per_file=PER_FILE)
    assert [_digest(p) for p in summary.files] == [_digest(p) for p in serial.files]


def test_resume_rewrites_only_missing_files(tiny_run, tiny_config, tmp_path):
    out, _ = tiny_run
    work = tmp_path / "resume"
    shutil.copytree(out, work)
    (work / "run_0001.h5").unlink()
    (work / "run_0002.h5.partial").write_bytes(b"left by a killed run")
    with pytest.raises(InputError, match="--resume"):
        simulate(tiny_config, N_EVENTS, work, seed=SEED, events_per_file=PER_FILE)
    with pytest.raises(InputError, match="seed differs"):
        simulate(tiny_config, N_EVENTS, work, seed=SEED + 1, events_per_file=PER_FILE, resume=True)
    done = []
    summary = simulate(
        tiny_config,
        N_EVENTS,
        work,
        seed=SEED,
        events_per_file=PER_FILE,
        resume=True,
        progress=done.append,
    )
    assert [p.name for p in summary.resumed] == ["run_0000.h5", "run_0002.h5"]
    assert sum(done) == N_EVENTS and summary.classes == {"proton": 4, "carbon": 4, "other": 4}
    assert _digest(work / "run_0001.h5") == _digest(out / "run_0001.h5")
    assert not list(work.glob("*.partial"))


@pytest.fixture(scope="module")
def stats_run(tiny_config, tmp_path_factory):
    """40 events (~13 per class): medians of 4 events per class (``tiny_run``) swing with
    one long forward carbon recoil (a 12C of tens of MeV runs tens of cm)."""
    out = tmp_path_factory.mktemp("sim") / "stats"
    simulate(tiny_config, 40, out, seed=SEED, events_per_file=20)
    return out


def test_class_statistics_follow_physics(stats_run):
    """Protons: long tracks, little charge per mm. Carbon recoils: short, dense."""
    stats = class_statistics(sorted(stats_run.glob("run_*.h5")))
    proton, carbon = stats["proton"], stats["carbon"]
    assert proton["median_track_mm"] > 150  # hundreds of mm
    assert carbon["median_track_mm"] < 120
    assert proton["median_track_mm"] > 2 * carbon["median_track_mm"]
    assert carbon["median_charge_per_mm"] > 5 * proton["median_charge_per_mm"]
    assert carbon["median_points_per_mm"] > proton["median_points_per_mm"]
    assert carbon["median_amplitude_adc"] > 2 * proton["median_amplitude_adc"]


def test_plan_has_exact_paper_mix():
    plan = plan_channels(SimConfig().mix, 2689, np.random.default_rng(0))
    labels = np.array([list(CHANNELS.values())[i].label for i in plan])
    assert np.bincount(labels).tolist() == [663, 340, 1686]


def test_presets_load_and_differ():
    nominal = load_config(SimConfig, CONFIGS / "e15503b_nominal.yaml")
    shifted = load_config(SimConfig, CONFIGS / "e15503b_shifted.yaml")
    assert nominal == SimConfig()  # the preset spells out the code defaults
    check_config(shifted)
    assert shifted.gas.pressure_torr != nominal.gas.pressure_torr
    assert shifted.detector.magnetic_field_t != nominal.detector.magnetic_field_t
    assert shifted.detector.mpgd_gain != nominal.detector.mpgd_gain
    assert shifted.electronics.adc_threshold != nominal.electronics.adc_threshold
    assert shifted.noise != nominal.noise and shifted.beam.energy_spread > 0.003
    assert shifted.mix == nominal.mix


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("beam.nucleus=46Xx", "unknown element"),
        ("beam.nucleus=99Ar", "unknown nucleus"),
        ("gas.pressure_torr=-5", "gas.pressure_torr"),
        ("detector.magnetic_field_t=null", "magnetic_field_t"),
        ("detector.electric_field_v_m=0", "electric_field_v_m"),
        ("gas.pressure_torr=40", "beam stops"),
        ("gas.components=[12C,2H]", "needs 1H"),
        ("mix.nosuch=1", "unknown config key"),
        ("randomize.gain_factor=[3,1]", "randomize.gain_factor"),
        ("randomize.per=run", "randomize.per"),
        ("randomize.dead_pad_fraction=[0,1.5]", "dead_pad_fraction"),
        ("randomize.pressure_factor=[1,3]", "beam stops"),
        ("randomize.hot_pads=[0,5]", "randomize.faults: file"),
        ("randomize.faults=run", "randomize.faults"),
        ("randomize.chip_rate=[-1,1]", "randomize.chip_rate"),
        ("randomize.divergence_deg=[0,20]", "randomize.divergence_deg"),
        ("randomize.extra_ions=[0,1.5]", "randomize.extra_ions"),
        ("randomize.scattered_fraction=[0.5,2]", "randomize.scattered_fraction"),
        ("randomize.spot_sigma_mm=[-1,2]", "randomize.spot_sigma_mm"),
        ("randomize.point_formation=[bucket]", "randomize.point_formation"),
        ("randomize.point_formation=[peak]", "randomize.point_formation"),
        ("randomize.shaping_time_ns=[232, -5]", "randomize.shaping_time_ns"),
        ("randomize.shaping_time_ns=[1e6]", "randomize.shaping_time_ns"),
    ],
)
def test_bad_config_is_one_line_exit_2(override, message, tmp_path, capsys):
    rc = main(["simulate", "--events", "3", "--out", str(tmp_path), "--set", override])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_library_rejects_bad_arguments(tiny_config, tmp_path):
    with pytest.raises(InputError, match="n_events"):
        simulate(tiny_config, 0, tmp_path)
    with pytest.raises(InputError, match="workers"):
        simulate(tiny_config, 3, tmp_path, workers=0)


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(
        ["simulate", "--config", "tiny", "--events", "3", "--out", str(out), "--quiet", "--stats",
         "--first-run", "7", "--events-per-file", "2"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    assert "3 events (tiny, seed 0) in 2 run files" in text and "track mm" in text
    assert f"wrote {out / 'run_0007.h5'} ... run_0008.h5" in text
    assert (out / "run_0008.h5").is_file()


def test_54ti_excitation_is_cut_at_what_the_energy_allows():
    """Deep in the gas E_cm + Q is below most of the N(35, 5) MeV 54Ti* excitation; the
    draw is cut at the open limit (computed by hand from the masses) instead of refused."""
    import dataclasses

    from data_prep.sim.nuclei import nuclear_map
    from data_prep.sim.physics import EventGenerator
    from data_prep.sim.runner import event_rng

    config = SimConfig()
    config = dataclasses.replace(
        config, beam=dataclasses.replace(config.beam, vertex_z_mm=(950.0, 1000.0))
    )
    gen = EventGenerator(config)
    nm = nuclear_map()
    ar, c12, he4, ti54 = (
        nm.get_data(18, 46),
        nm.get_data(6, 12),
        nm.get_data(2, 4),
        nm.get_data(22, 54),
    )
    for i in range(5):
        rng = event_rng(0, i)
        start = gen.start(rng, gen.fixed)
        products = gen.kinematics("alpha_54ti", start, rng)
        assert products is not None
        e = start.energy
        sqrt_s = np.sqrt((ar.mass + c12.mass + e) ** 2 - e * (e + 2 * ar.mass))
        residual = products.momenta[3]
        ex = np.sqrt(residual[3] ** 2 - residual[:3] @ residual[:3]) - ti54.mass
        assert 0 <= ex <= sqrt_s - he4.mass - ti54.mass


def test_vertex_z_does_not_tell_the_class():
    """Per-class vertex z of 2,000 events of the paper mix agree (two-sample KS p > 0.01).

    The vertex stage alone (kinematics, channel substitution, refusals), not the detector:
    before, a closed alpha channel redrew the vertex and sat ~300 mm upstream."""
    from scipy.stats import ks_2samp

    from data_prep.sim.channels import CHANNEL_NAMES
    from data_prep.sim.physics import EventGenerator
    from data_prep.sim.runner import event_rng

    config = SimConfig()
    gen = EventGenerator(config)
    plan = plan_channels(config.mix, 2000, np.random.default_rng(3))
    z = {name: [] for name in CLASS_NAMES}
    for i, channel_id in enumerate(plan):
        channel = CHANNEL_NAMES[channel_id]
        if channel == "noise":
            continue
        used, _, start, _ = gen.signal(channel, event_rng(3, i), gen.fixed, detect=False)
        z[CLASS_NAMES[CHANNELS[used].label]].append(1000.0 * start.vertex[2])
    assert min(len(v) for v in z.values()) > 200
    for a, b in (("proton", "carbon"), ("proton", "other"), ("carbon", "other")):
        assert ks_2samp(z[a], z[b]).pvalue > 0.01, (a, b)
    # and the closed channel really was replaced at depth, not moved upstream
    assert max(z["other"]) > 950


def _table(summary) -> np.ndarray:
    tables = []
    for path in summary.files:
        with h5py.File(path) as f:
            tables.append(f["events"][()])
    return np.concatenate(tables)


def test_randomized_preset_draws_stores_and_repeats(tmp_path):
    """Every knob is drawn inside its range, differs between events, is stored per event,
    and the same seed gives the same bytes; z follows the drawn calibration."""
    config = load_config(SimConfig, CONFIGS / "e15503b_randomized.yaml")
    check_config(config)
    one = simulate(config, 6, tmp_path / "a", seed=2, events_per_file=3)
    two = simulate(config, 6, tmp_path / "b", seed=2, events_per_file=3)
    assert [_digest(p) for p in one.files] == [_digest(p) for p in two.files]
    table = _table(one)
    for knob in config.randomize.active:
        lo, hi = getattr(config.randomize, knob)
        values = table[knob]
        assert np.all((values >= np.float32(lo)) & (values <= np.float32(hi))), knob
        assert len(np.unique(values)) > 1, knob
    window = SimConfig().window_tb
    with h5py.File(one.files[0]) as f:
        for row in f["events"][()]:
            points = f[f"cloud/cloud_{row['event']}"][()]
            # z = scale * (window - tb) / (window - micromegas) * L + offset, by hand
            z = (window - points[:, 6]) / (window - 20) * 1000.0
            expected = np.float32(row["z_scale"]) * z + np.float32(row["z_offset_mm"])
            np.testing.assert_allclose(points[:, 2], expected, rtol=1e-5, atol=1e-3)
            radius = np.hypot(points[:, 0], points[:, 1])
            assert np.all(radius >= row["beam_pad_radius_mm"] - 1e-3)
            assert np.all(points[:, 3] > row["adc_threshold"] - 1e-3)


def test_randomize_per_file_holds_one_setting_per_file(tmp_path):
    config = load_config(SimConfig, CONFIGS / "e15503b_randomized.yaml", ["randomize.per=file"])
    summary = simulate(config, 4, tmp_path, seed=5, events_per_file=2)
    table = _table(summary)
    gain = table["gain_factor"].reshape(2, 2)
    assert np.all(gain[:, 0] == gain[:, 1]) and gain[0, 0] != gain[1, 0]


def test_per_run_knobs_hold_one_value_per_file_and_leave_the_rest_per_event(tmp_path):
    """randomize.per_run: [tilt_deg]: one tilt per run file (files differ), while the other
    knobs keep exactly the per-event draws they have without it."""
    sets = ["randomize.extra_ions=[0,0]", "randomize.noise_hits=[0,5]"]
    per_event = load_config(
        SimConfig, CONFIGS / "e15503b_randomized.yaml", [*sets, "randomize.per_run=[]"]
    )
    per_run = load_config(
        SimConfig, CONFIGS / "e15503b_randomized.yaml", [*sets, "randomize.per_run=[tilt_deg]"]
    )
    a = _table(simulate(per_event, 4, tmp_path / "a", seed=5, events_per_file=2))
    b = _table(simulate(per_run, 4, tmp_path / "b", seed=5, events_per_file=2))
    tilt = b["tilt_deg"].reshape(2, 2)
    assert np.all(tilt[:, 0] == tilt[:, 1]) and tilt[0, 0] != tilt[1, 0]
    assert len(set(a["tilt_deg"].tolist())) == 4  # without it: a tilt per event
    for name in ("gain_factor", "adc_threshold", "z_offset_mm", "divergence_deg"):
        assert np.array_equal(a[name], b[name])
    faulty = ["randomize.per_run=[hot_pads]"]
    with pytest.raises(InputError, match="per_run"):
        check_config(load_config(SimConfig, CONFIGS / "e15503b_randomized.yaml", faulty))


def test_standin_preset_differs_structurally(tmp_path):
    nominal = SimConfig()
    standin = load_config(SimConfig, CONFIGS / "e15503b_standin.yaml")
    check_config(standin)
    assert standin.electronics.shaping_time_ns != nominal.electronics.shaping_time_ns
    assert standin.noise.hits_per_event[0] > nominal.noise.hits_per_event[1]
    assert standin.detector.beam_pad_radius_mm > 20 and standin.detector.dead_pad_fraction > 0
    summary = simulate(standin, 3, tmp_path, seed=1)
    assert summary.n_events == 3


def test_point_formation_finds_one_point_per_pulse():
    """Two charges far apart on one pad make two Spyral peaks, at the charge times, with
    amplitude electrons x the response maximum (by hand); pytpc's one point per pad keeps
    the larger; a pad below threshold gives nothing."""
    from data_prep.sim.points import trace_points

    tb = np.arange(512.0)
    x = tb / (502 * 12.5 * 0.001)
    response = np.clip(0.01 * np.exp(-3.0 * x) * x**3 * np.sin(x), 0, None)
    raw = np.array([[7, 100.3, 2e5], [7, 300.6, 1e5], [9, 200.0, 1e3]])
    labels = np.array([2, 3, 2])
    spyral = dict(
        baseline_window_scale=20, peak_separation=50, peak_prominence=20, peak_max_width=50
    )
    rows, labs = trace_points(
        raw,
        labels,
        response,
        mode="peaks",
        threshold=30,
        spyral=spyral,
        rng=np.random.default_rng(0),
    )
    assert rows[:, 0].tolist() == [7, 7] and labs.tolist() == [2, 3]
    np.testing.assert_allclose(rows[:, 1], [100, 300], atol=0.01)
    np.testing.assert_allclose(
        rows[:, 2], np.rint([2e5 * response.max(), 1e5 * response.max()]), rtol=1e-3
    )
    one, _ = trace_points(
        raw, labels, response, mode="pad", threshold=30, spyral=spyral, rng=np.random.default_rng(0)
    )
    assert one[:, 0].tolist() == [7] and abs(one[0, 1] - 100) < 1


def test_spyral_point_formation_gives_few_points_per_pad(tiny_run):
    """No pad of a reaction carries more than Spyral's 5 peaks; tracks give ~1 point per pad
    (the bucket formation gave columns of several points per pad)."""
    out, _ = tiny_run
    per_pad = []
    with h5py.File(out / "run_0000.h5") as f:
        for row in f["events"][()]:
            n = int(row["event"])
            points, labels = f[f"cloud/cloud_{n}"][()], f[f"cloud/labels_{n}"][()]
            for lab in set(labels.tolist()) - {-1}:
                _, counts = np.unique(points[labels == lab, 5], return_counts=True)
                per_pad.extend(counts.tolist())
    assert max(per_pad) <= 5 and np.median(per_pad) == 1


def test_incoming_beam_runs_from_window_to_vertex(tmp_path):
    """With the beam spot moved 30 mm off axis (past the beam pads) the reacting ion's own
    track is read out: on the beam line (x ~ 30 mm), upstream of the vertex only; a noise
    event's triggering ion, unreacted, on the same line past every vertex."""
    config = load_config(
        SimConfig,
        CONFIGS / "tiny.yaml",
        ["beam.spot_offset_mm=[30,0]", "beam.divergence_deg=0", "beam_axis.extra_ions=[0,0]",
         "electronics.point_formation=bucket"],
    )  # fmt: skip
    # bucket points: along z a pad under the beam sees one long pulse, which Spyral's
    # peak finder (max width 50 buckets) mostly does not call a peak
    summary = simulate(config, 3, tmp_path, seed=4)
    channels = []
    with h5py.File(summary.files[0]) as f:
        for row in f["events"][()]:
            points = f[f"cloud/cloud_{row['event']}"][()]
            beam = points[f[f"cloud/labels_{row['event']}"][()] == -2]
            channels.append(row["channel"])
            assert len(beam) > 10
            pad_pitch = 12.0  # mm, largest pad size, plus the 2 mm spot and diffusion
            assert np.all(np.abs(beam[:, 0] - 30) < pad_pitch) and np.all(
                np.abs(beam[:, 1]) < pad_pitch
            )
            if row["channel"] == b"noise":  # no reaction: past the last possible vertex
                assert beam[:, 2].max() > config.beam.vertex_z_mm[1] - 50.0
                continue
            assert beam[:, 2].max() < row["vertex_z"] + 15.0  # a few buckets of pulse width
            assert beam[:, 2].max() > row["vertex_z"] - 50.0
    assert b"noise" in channels and len(set(channels)) > 1


def test_beam_ion_before_the_trigger_keeps_only_charge_inside_the_window(monkeypatch):
    """An extra ion that arrived before the trigger drifts part of its charge out of the
    window. attpc-engine's transport takes sqrt(time), so a time < 0 gives NaN and a pad
    index read outside the grid (the defect that made one seed give different events in
    different processes): no such time may reach it, and every point kept lies in the
    sampled buckets, each with a time the transport saw (its bucket or one below)."""
    from attpc_engine.detector import solver

    from data_prep.sim.beam import straight_track
    from data_prep.sim.physics import EventGenerator

    gen = EventGenerator(load_config(SimConfig, CONFIGS / "tiny.yaml"))
    seen: list[np.ndarray] = []
    original = solver.transport_track  # the one the beam ions use: ours, once installed

    def recording(grid, edges, diffusion, efield, dv, track, electrons, points, label):
        seen.append(track[:, 2].copy())
        return original(grid, edges, diffusion, efield, dv, track, electrons, points, label)

    monkeypatch.setattr(solver, "transport_track", recording)
    start = gen.start(np.random.default_rng(3), gen.fixed)
    entry = np.array([0.025, 0.0, 0.0])  # past the beam pads: its charge reads out
    direction = np.array([0.0, 0.0, 1.0])
    raw, _ = straight_track(
        gen.engine, gen.gas(1.0), gen.projectile, entry, direction, start.window_energy,
        gen.config.detector.length_mm / 1000.0, -150.0, np.random.default_rng(0), -2,
    )  # fmt: skip
    times = seen[0]
    assert np.all(times >= 0) and np.all(times < 512)
    # 240 buckets of drift + 20 (micromegas) - 150: only z < 0.46 m arrives after t = 0
    assert 0.35 < len(times) / len(np.arange(0.004, 1.0, 0.004)) < 0.5
    assert len(raw) > 0 and np.all((raw[:, 1] >= 0) & (raw[:, 1] < 512))
    assert set(np.floor(raw[:, 1]).astype(int)) <= set(np.floor(times).astype(int))


def test_randomized_beam_spot_and_extra_ions_are_the_ones_used(tmp_path):
    """The beam knobs drawn per event drive the physics: every vertex lies within a few of
    its event's drawn spot sigmas of the spot centre (the config's fixed 2 mm would not),
    and a noise event (its triggering ion switched off: `beam_axis.trigger_ion`) has beam
    points exactly when its drawn number of extra ions is not 0 (the config's own range is
    [0, 0])."""
    base = ["beam.spot_offset_mm=[30, 0]", "beam_axis.extra_ions=[0, 0]",
            "electronics.point_formation=bucket", "randomize.divergence_deg=[0, 0]",
            "randomize.scattered_fraction=[0, 0]", "mix.proton=0", "mix.carbon=0"]  # fmt: skip
    spot_range = "randomize.spot_sigma_mm=[0.1, 0.3]"
    spot = load_config(SimConfig, CONFIGS / "tiny.yaml", [*base, spot_range])
    table = _table(simulate(spot, 8, tmp_path / "spot", seed=3))
    assert np.all(table["divergence_deg"] == 0) and np.all(table["scattered_fraction"] == 0)
    reacting = table[table["channel"] != b"noise"]
    rho = np.hypot(reacting["vertex_x"] - 30.0, reacting["vertex_y"])
    assert len(rho) >= 4 and np.all(rho <= 4.5 * reacting["spot_sigma_mm"] + 1e-3)
    ions = load_config(
        SimConfig,
        CONFIGS / "tiny.yaml",
        [*base, "randomize.extra_ions=[0, 3]", "mix.alpha_43cl=0", "mix.fusion_evap=0",
         "mix.pileup=0", "beam_axis.trigger_ion=false"],
    )  # fmt: skip
    table = _table(simulate(ions, 16, tmp_path / "ions", seed=3))
    assert np.all(table["channel"] == b"noise")
    none = table["extra_ions"] == 0
    assert 0 < none.sum() < len(table)
    assert np.all(table["n_beam"][none] == 0)
    # an ion arriving far from the trigger time can drift out of the window: most, not all
    assert np.mean(table["n_beam"][~none] > 0) >= 0.75


def test_structured_noise_hot_pads_chips_and_gains(tmp_path):
    """Hot pads fire in every event; a firing AGET chip is a block of 64 pad ids hit within
    a few buckets; per-pad gains are lognormal with mean 1 and the configured spread."""
    from data_prep.sim.physics import EventGenerator

    config = load_config(
        SimConfig,
        CONFIGS / "tiny.yaml",
        ["noise.chip_rate=3", "noise.hot_pads=4", "noise.burst_rate=0", "detector.dead_chips=2"],
    )
    summary = simulate(config, 4, tmp_path, seed=9)
    gen = EventGenerator(config)
    hot = set(gen.faults.hot_pads.tolist())
    dead = set(gen.faults.dead_pads.tolist())
    assert len(dead) == 128 and all(p % 64 == 0 for p in sorted(dead)[::64])
    with h5py.File(summary.files[0]) as f:
        for row in f["events"][()]:
            points = f[f"cloud/cloud_{row['event']}"][()]
            noise = points[f[f"cloud/labels_{row['event']}"][()] == -1]
            pads = noise[:, 5].astype(int)
            assert hot <= set(pads.tolist())
            assert not dead & set(points[:, 5].astype(int).tolist())
            chips, counts = np.unique(pads // 64, return_counts=True)
            for chip in chips[counts > 30]:  # random hits never put 30 on one chip
                tb = noise[pads // 64 == chip, 6]
                assert np.mean(np.abs(tb - np.median(tb)) < 4.0) > 0.8  # one time, +- jitter
    gains = gen.faults.pad_gain
    assert abs(gains.mean() - 1) < 0.01 and abs(np.log(gains).std() - 0.15) < 0.01


def test_chip_layout_patches_fire_compact_patches(tmp_path):
    """With ``noise.chip_layout: patches`` a firing chip lights 64 pads of one ring of the
    pad plane within a sector (checked by hand on the fired pads: one radius band, one
    angular sector of at most 1/16 turn plus a pad), not 64 consecutive ids; the layout
    drawn per run file is recorded in the event table."""
    from data_prep.padplane import pad_centres
    from data_prep.sim.config import CHIP_LAYOUTS

    config = load_config(SimConfig, CONFIGS / "tiny.yaml", [
        "noise.chip_rate=3", "noise.hot_pads=0", "noise.burst_rate=0",
        "noise.hits_per_event=[0, 0]", "noise.noise_event_hits=[0, 0]",
        "noise.chip_layout=patches"])  # fmt: skip
    summary = simulate(config, 4, tmp_path, seed=9)
    xy = pad_centres()
    radius, angle = np.hypot(*xy.T), np.arctan2(xy[:, 1], xy[:, 0])
    ring_edges = np.sort(radius)[::1024]  # 10 rings of 1,024 pads
    fires = 0
    with h5py.File(summary.files[0]) as f:
        assert set(f["events"]["chip_layout"][()]) == {CHIP_LAYOUTS.index("patches")}
        for row in f["events"][()]:
            points = f[f"cloud/cloud_{row['event']}"][()]
            noise = points[f[f"cloud/labels_{row['event']}"][()] == -1]
            tb = np.rint(noise[:, 6])
            for t in np.unique(tb):  # a fire: one time +- jitter; split by ring
                pads = noise[np.abs(tb - t) <= 3, 5].astype(int)
                rings = np.searchsorted(ring_edges, radius[pads], side="right")
                for ring in np.unique(rings):
                    group = np.unique(pads[rings == ring])
                    if len(group) < 40:
                        continue
                    fires += 1
                    spread = np.ptp(np.unwrap(np.sort(angle[group])))
                    assert min(spread, 2 * np.pi - spread) < 2 * np.pi / 16 + 0.3
                    assert np.ptp(group) > 64  # not a block of consecutive ids
    assert fires >= 4
    from data_prep.sim.config import validate_config

    for bad in ("noise.chip_layout=rings", "randomize.chip_layout=[blocks, rings]"):
        with pytest.raises(InputError, match="chip_layout"):
            validate_config(load_config(SimConfig, CONFIGS / "tiny.yaml", [bad]))


def test_chip_layout_stripes_fire_bands_a_few_pads_wide(tmp_path):
    """With ``noise.chip_layout: stripes`` a firing chip lights a band of pads: for most
    fires the (x, y) of their pads spread under 8 mm across the principal axis and at
    least 3 times that along it (standard deviations, from numpy's eigenvalues; a
    ``patches`` chip passes this 1 time in 4), not 64 consecutive ids; every layout gives
    each pad to exactly one chip."""
    from data_prep.padplane import pad_centres
    from data_prep.sim.config import CHIP_LAYOUTS
    from data_prep.sim.randomize import chip_pads

    xy = pad_centres()
    for layout in CHIP_LAYOUTS:
        assert np.array_equal(np.sort(chip_pads(layout, xy).ravel()), np.arange(len(xy)))
    config = load_config(SimConfig, CONFIGS / "tiny.yaml", [
        "noise.chip_rate=3", "noise.hot_pads=0", "noise.burst_rate=0",
        "noise.hits_per_event=[0, 0]", "noise.noise_event_hits=[0, 0]",
        "noise.chip_layout=stripes"])  # fmt: skip
    summary = simulate(config, 4, tmp_path, seed=9)
    narrow, fires = 0, 0
    with h5py.File(summary.files[0]) as f:
        assert set(f["events"]["chip_layout"][()]) == {CHIP_LAYOUTS.index("stripes")}
        for row in f["events"][()]:
            points = f[f"cloud/cloud_{row['event']}"][()]
            noise = points[f[f"cloud/labels_{row['event']}"][()] == -1]
            tb = np.rint(noise[:, 6])
            for t in np.unique(tb):
                pads = np.unique(noise[np.abs(tb - t) <= 3, 5].astype(int))
                if len(pads) < 40:
                    continue
                fires += 1
                minor, major = np.sqrt(np.linalg.eigvalsh(np.cov(xy[pads].T)))
                narrow += minor < 8.0 and major >= 3 * minor
                assert np.ptp(pads) > 64  # not a block of consecutive ids
    assert fires >= 4 and narrow >= 0.7 * fires


def test_tilt_shears_the_side_view_by_tan_tilt():
    """The same proton with the drift 6 deg off axis: its y grows with drift length by
    tan(6 deg) = 0.105 more than without (slope of y against depth, fitted)."""
    from data_prep.sim.physics import EventGenerator
    from data_prep.sim.runner import event_rng

    quiet = ["electronics.point_formation=bucket", "beam_axis.extra_ions=[0,0]"]
    protons = []
    for tilt in (0, 6):
        config = load_config(
            SimConfig, CONFIGS / "tiny.yaml", [*quiet, f"detector.tilt_deg={tilt}"]
        )
        event = EventGenerator(config).generate("p_elastic", event_rng(1, 1))
        protons.append(event.points[event.point_labels == 2])
    # the depths both show: tilted, the start of the track leaves the beam pads too
    lo = max(p[:, 2].min() for p in protons) + 5.0
    slopes = [np.polyfit(1000.0 - p[p[:, 2] > lo, 2], p[p[:, 2] > lo, 1], 1)[0] for p in protons]
    assert abs((slopes[1] - slopes[0]) - np.tan(np.radians(6))) < 0.03


def test_tilt_moves_the_beam_on_the_axis_off_the_beam_pads():
    """An ion exactly on the axis drops all its charge on the beam pads, unless the drift is
    tilted: then its electrons land (depth) x tan(6 deg) off the axis, and the line shows
    wherever that clears the beam pads (their outer edge 22 mm out), as in real data."""
    from data_prep.sim.physics import EventGenerator
    from data_prep.sim.runner import event_rng

    on_axis = ["beam_axis.extra_ions=[0,0]", "beam.spot_sigma_mm=0.0", "beam.divergence_deg=0.0"]
    beam = {}
    for tilt in (0, 6):
        config = load_config(
            SimConfig, CONFIGS / "tiny.yaml", [*on_axis, f"detector.tilt_deg={tilt}"]
        )
        event = EventGenerator(config).generate("p_elastic", event_rng(1, 1))
        beam[tilt] = event.points[event.point_labels == -2]
        vertex_z = event.vertex[2]
    assert len(beam[0]) == 0  # all of it on the beam pads
    b = beam[6]
    depth = 1000.0 - b[:, 2]
    expected = depth * np.tan(np.radians(6))
    assert len(b) > 50
    assert np.median(np.abs(np.hypot(b[:, 0], b[:, 1]) - expected)) < 4.0  # pads ~5-10 mm
    assert expected.min() > 20.0  # nothing from where the shear leaves it on the beam pads
    assert b[:, 2].max() < vertex_z + 10.0  # the incoming ion stops at the vertex


def _turning(points: np.ndarray, travel_up: bool) -> float:
    """Mean d(phi) per point about the fitted circle centre, in the order of travel
    (z rising when ``travel_up``): > 0 is counterclockwise seen from +z."""
    xy = points[np.argsort(points[:, 2])[:: 1 if travel_up else -1], :2]
    # algebraic circle fit: x^2 + y^2 = 2 a x + 2 b y + c
    a, b, _ = np.linalg.lstsq(
        np.column_stack([2 * xy, np.ones(len(xy))]), (xy**2).sum(1), rcond=None
    )[0]
    phi = np.unwrap(np.arctan2(xy[:, 1] - b, xy[:, 0] - a))
    return float(np.mean(np.diff(phi)))


def test_pytpc_file_of_a_simulated_proton_reads_back_with_the_same_curl(tmp_path):
    """A simulated proton written in pytpc's frame (z = 0 at the micromegas, beam along -z)
    reads back in the simulation frame point for point, turning counterclockwise seen from
    +z as the Lorentz force q v x B says for attpc-engine's field (it integrates with
    -bfield: B along -z); mirroring z alone would reverse the curl."""
    from data_prep.events import Event
    from data_prep.readers import open_events
    from data_prep.sim.physics import EventGenerator
    from data_prep.sim.runner import event_rng
    from tests._formats import write_pytpc

    config = load_config(SimConfig, CONFIGS / "tiny.yaml", ["electronics.point_formation=bucket"])
    gen = EventGenerator(config)
    rng = event_rng(5, 0)
    start = gen.start(rng, gen.fixed)
    products = gen.kinematics("p_elastic", start, rng)
    points, labels = gen.detect(products, start, gen.fixed, rng)
    proton = points[labels == 2][:, :4]
    travel_up = products.momenta[2, 2] > 0
    assert len(proton) > 30 and _turning(proton, travel_up) > 0  # the simulation itself

    path = write_pytpc(tmp_path / "p.h5", [Event(run=0, event_id=0, points=proton)])
    with open_events(path) as reader:
        got = next(iter(reader)).points[:, :4]
    np.testing.assert_allclose(got, proton, rtol=0, atol=1e-6)
    assert _turning(got, travel_up) > 0
    with h5py.File(path) as f:
        stored = f["clean/0"][()]
    mirrored = np.column_stack([stored[:, 0], stored[:, 1], 1000.0 - stored[:, 2] * 4.16])
    assert _turning(mirrored, travel_up) < 0  # z flipped alone: the curl reverses


def test_attpcroot_frame_option_rotates_about_x(tmp_path):
    """ATTPCROOT files are read as stored unless told their frame; frame="pytpc" applies
    the same proper rotation as pytpc files: (x, y, z) -> (x, -y, L - z)."""
    from data_prep.events import Event
    from data_prep.readers import open_events
    from tests._formats import write_attpcroot

    points = np.array([[10.0, 20.0, 300.0, 50.0], [-5.0, 7.0, 650.0, 80.0]])
    path = write_attpcroot(tmp_path / "a.h5", [Event(run=0, event_id=3, points=points)])
    with open_events(path) as reader:
        np.testing.assert_array_equal(next(iter(reader)).points[:, :4], points)
    with open_events(path, frame="pytpc", length_mm=900.0) as reader:
        got = next(iter(reader)).points[:, :4]
    expected = points * [1, -1, -1, 1] + [0, 0, 900.0, 0]
    np.testing.assert_allclose(got, expected)


def test_randomized_faults_differ_per_file_and_repeat_per_seed(tmp_path):
    """With ``randomize.faults: file`` each run file is its own faulty detector: the
    structured-noise knobs stay in their ranges, one fault setting holds a whole file, two
    files get different hot pads (the pads that fire in every event of a file), the same
    seed gives the same faults, and the nominal preset keeps its one fixed detector."""
    config = load_config(
        SimConfig,
        CONFIGS / "e15503b_randomized.yaml",
        # nothing else may hide a hot pad: no dead pads or chips, no blind core; and no
        # drift tilt, which shows the beam on the same pads in every event
        [
            "randomize.tilt_deg=[]",
            "randomize.hot_pads=[6, 10]",
            "randomize.noise_hits=[0, 5]",
            "randomize.dead_pad_fraction=[]",
            "randomize.beam_pad_radius_mm=[]",
            "randomize.dead_chips=[0, 0]",
        ],
    )
    check_config(config)
    one = simulate(config, 8, tmp_path / "a", seed=3, events_per_file=4)
    again = simulate(config, 8, tmp_path / "b", seed=3, events_per_file=4)
    assert [_digest(p) for p in one.files] == [_digest(p) for p in again.files]
    table = _table(one)
    for knob in ("chip_rate", "burst_rate", "hot_pads", "dead_chips", "pad_gain_spread"):
        lo, hi = getattr(config.randomize, knob)
        assert np.all((table[knob] >= np.float32(lo)) & (table[knob] <= np.float32(hi))), knob
    for knob in ("hot_pads", "dead_chips", "pad_gain_spread"):  # one detector per file
        per_file = table[knob].reshape(2, 4)
        assert np.all(per_file == per_file[:, :1]), knob
    hot = []
    for path, n_hot in zip(one.files, table["hot_pads"][::4], strict=True):
        with h5py.File(path) as f:
            sets = [
                set(f[f"cloud/cloud_{e}"][()][:, 5].astype(int).tolist())
                for e in f["events"]["event"]
            ]
        always = set.intersection(*sets)  # pads in every event of the file
        assert len(always) >= n_hot
        assert len(always) <= n_hot + 2  # beyond the hot pads, hardly a pad fires always
        hot.append(always)
    assert hot[0] != hot[1]
    nominal = load_config(SimConfig, CONFIGS / "e15503b_nominal.yaml")
    assert nominal.randomize.faults == "fixed"
    with pytest.raises(InputError, match="faults: file"):
        check_config(
            load_config(SimConfig, CONFIGS / "e15503b_nominal.yaml", ["randomize.hot_pads=[0, 3]"])
        )


def _carbon_points_off_the_beam(config, tmp_path, seed: int) -> list[int]:
    """Per carbon event: its carbon points (label 2) >= 30 mm from the reacting ion's line,
    by hand: the beam is straight along z through the stored vertex (no divergence), and a
    drift shear moves every point by (drift length) x tan(tilt) along the tilt azimuth."""
    d = config.detector
    azimuth, slope = np.deg2rad(d.tilt_azimuth_deg), np.tan(np.deg2rad(d.tilt_deg))
    summary = simulate(config, 8, tmp_path, seed=seed)
    counts = []
    for path in summary.files:
        with h5py.File(path) as f:
            for row in f["events"][()]:
                if row["channel"] != b"c12_elastic":
                    continue
                points = f[f"cloud/cloud_{row['event']}"][()]
                carbon = points[f[f"cloud/labels_{row['event']}"][()] == 2]
                shift = (d.length_mm - carbon[:, 2]) * slope  # z = 0 at the window
                x = carbon[:, 0] - row["vertex_x"] - shift * np.cos(azimuth)
                y = carbon[:, 1] - row["vertex_y"] - shift * np.sin(azimuth)
                counts.append(int(np.sum(np.hypot(x, y) >= 30.0)))
    return counts


@pytest.mark.parametrize("tilt", [0.0, 6.2])
def test_a_reaction_must_show_outside_the_beams_core(tmp_path, tilt):
    """With `min_signal_radius_mm` 30 every carbon event has >= `min_signal_points` carbon
    points 30 mm or more from the beam, sheared or not; with 0 (points anywhere count) some
    do not: a carbon hidden in the beam's core, which no reader can tell from noise."""
    base = ["beam.divergence_deg=0", "beam.spot_sigma_mm=0.5", f"detector.tilt_deg={tilt}",
            "mix.proton=0", "mix.other=0", "mix.carbon=1"]  # fmt: skip
    kept = load_config(SimConfig, CONFIGS / "tiny.yaml", base)
    assert kept.min_signal_radius_mm == 30.0
    counts = _carbon_points_off_the_beam(kept, tmp_path / "kept", seed=5)
    assert len(counts) == 8 and min(counts) >= kept.min_signal_points
    anywhere = load_config(SimConfig, CONFIGS / "tiny.yaml", [*base, "min_signal_radius_mm=0"])
    counts = _carbon_points_off_the_beam(anywhere, tmp_path / "anywhere", seed=5)
    assert min(counts) < anywhere.min_signal_points
